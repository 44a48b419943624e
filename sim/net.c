/* Networks of masked dense layers: storage, the forward pass of one sample
 * with explicit or key-drawn masks, and its backward pass.
 *
 *   h_0 = x;  z_l = (W_l o M_l) h_{l-1} + b_l;  h_l = phi_l(z_l)
 *   y = V h_L + e (or y = h_L);  l = 1/2 |y - t|^2  or  -log softmax(y)_c
 *
 * Masks drawn from keys go through pnd_layer_forward/pnd_layer_backward
 * (sim/mask.c), so the simulator and the trainer mask in one way.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnd/error.h"
#include "pnd/mask.h"
#include "pnd/net.h"
#include "sim/net_private.h"

const char *const pnd_activation_names[] = {
    "identity", "tanh", "sigmoid", "softplus", "relu", NULL
};

const char *const pnd_loss_names[] = {"squared", "softmax-xent", NULL};

const char *
pnd_activation_name(enum pnd_activation act)
{
    if ((unsigned) act > PND_ACT_RELU)
        return "unknown";
    return pnd_activation_names[act];
}

int
pnd_activation_parse(const char *name, enum pnd_activation *act)
{
    for (int i = 0; pnd_activation_names[i] != NULL; i++) {
        if (strcmp(name, pnd_activation_names[i]) == 0) {
            *act = (enum pnd_activation) i;
            return PND_OK;
        }
    }
    PND_ERROR(PND_EINVAL,
              "unknown activation '%s': use identity, tanh, sigmoid, softplus or relu",
              name);
}

const char *
pnd_loss_name(enum pnd_loss loss)
{
    if ((unsigned) loss > PND_LOSS_SOFTMAX_XENT)
        return "unknown";
    return pnd_loss_names[loss];
}

int
pnd_loss_parse(const char *name, enum pnd_loss *loss)
{
    for (int i = 0; pnd_loss_names[i] != NULL; i++) {
        if (strcmp(name, pnd_loss_names[i]) == 0) {
            *loss = (enum pnd_loss) i;
            return PND_OK;
        }
    }
    PND_ERROR(PND_EINVAL, "unknown loss '%s': use squared or softmax-xent",
              name);
}

/* --- storage ------------------------------------------------------------ */

struct pnd_net *
pnd_net_alloc(size_t n_layers, const size_t *widths, size_t n_out,
              enum pnd_loss loss)
{
    struct pnd_net *net = NULL;
    size_t last;

    if (n_layers == 0 || n_layers > PND_NET_MAX_LAYERS) {
        pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                      "invalid number of layers %zu: use 1 to %d", n_layers,
                      PND_NET_MAX_LAYERS);
        return NULL;
    }
    for (size_t l = 0; l <= n_layers; l++) {
        if (widths[l] == 0) {
            pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                          "invalid network width 0 at position %zu: every dimension must be at least 1",
                          l);
            return NULL;
        }
    }

    net = calloc(1, sizeof *net);
    if (net == NULL)
        goto fail;
    net->layers = calloc(n_layers, sizeof *net->layers);
    if (net->layers == NULL)
        goto fail;
    net->n_layers = n_layers;
    net->loss = loss;
    for (size_t l = 0; l < n_layers; l++) {
        struct pnd_layer *layer = &net->layers[l];

        layer->d_in = widths[l];
        layer->d_out = widths[l + 1];
        layer->W = calloc(layer->d_in * layer->d_out, sizeof *layer->W);
        layer->b = calloc(layer->d_out, sizeof *layer->b);
        if (layer->W == NULL || layer->b == NULL)
            goto fail;
        layer->act = PND_ACT_IDENTITY;
        layer->mask.scheme = PND_SCHEME_NONE;
        layer->mask.p = 0.0;
        layer->mask.fixed_bits = NULL;
    }

    last = widths[n_layers];
    if (n_out > 0) {
        net->n_out = n_out;
        net->V = calloc(n_out * last, sizeof *net->V);
        net->e = calloc(n_out, sizeof *net->e);
        if (net->V == NULL || net->e == NULL)
            goto fail;
    } else {
        net->n_out = last;
    }
    return net;

fail:
    pnd_net_free(net);
    pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                  "out of memory allocating a network of %zu layers", n_layers);
    return NULL;
}

void
pnd_net_free(struct pnd_net *net)
{
    if (net == NULL)
        return;
    if (net->layers != NULL) {
        for (size_t l = 0; l < net->n_layers; l++) {
            free(net->layers[l].W);
            free(net->layers[l].b);
            free(net->layers[l].fixed_bits);
        }
    }
    free(net->layers);
    free(net->V);
    free(net->e);
    free(net);
}

struct pnd_data *
pnd_data_alloc(size_t n, size_t d, size_t c, int with_labels)
{
    struct pnd_data *data;

    if (n == 0 || d == 0 || c == 0) {
        pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                      "invalid data shape n=%zu, d=%zu, c=%zu: every dimension must be at least 1",
                      n, d, c);
        return NULL;
    }
    data = calloc(1, sizeof *data);
    if (data == NULL)
        goto fail;
    data->n = n;
    data->d = d;
    data->c = c;
    data->X = calloc(n * d, sizeof *data->X);
    if (data->X == NULL)
        goto fail;
    if (with_labels)
        data->labels = calloc(n, sizeof *data->labels);
    else
        data->T = calloc(n * c, sizeof *data->T);
    if (data->labels == NULL && data->T == NULL)
        goto fail;
    return data;

fail:
    pnd_data_free(data);
    pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                  "out of memory allocating a data set of %zu x %zu", n, d);
    return NULL;
}

void
pnd_data_free(struct pnd_data *data)
{
    if (data == NULL)
        return;
    free(data->X);
    free(data->T);
    free(data->labels);
    free(data);
}

int
pnd_net_check_data(const struct pnd_net *net, const struct pnd_data *data)
{
    size_t d = net->layers[0].d_in;

    if (data->n == 0)
        PND_ERROR(PND_EINVAL, "the data set has no samples");
    if (data->d != d)
        PND_ERROR(PND_EINVAL,
                  "the inputs have %zu columns but the first layer takes %zu: make the input width match the weights",
                  data->d, d);
    for (size_t l = 1; l < net->n_layers; l++)
        if (net->layers[l].d_in != net->layers[l - 1].d_out)
            PND_ERROR(PND_EINVAL,
                      "layer %zu takes %zu inputs but layer %zu has %zu outputs",
                      l + 1, net->layers[l].d_in, l, net->layers[l - 1].d_out);
    if (net->loss == PND_LOSS_SQUARED) {
        if (data->T == NULL)
            PND_ERROR(PND_EINVAL, "the squared loss needs targets, and the data set has none");
        if (data->c != net->n_out)
            PND_ERROR(PND_EINVAL,
                      "the targets have %zu columns but the network has %zu outputs",
                      data->c, net->n_out);
    } else {
        if (data->labels == NULL)
            PND_ERROR(PND_EINVAL, "the softmax cross-entropy loss needs labels, and the data set has none");
        if (net->n_out < 2)
            PND_ERROR(PND_EINVAL, "softmax cross-entropy needs at least 2 outputs, not %zu",
                      net->n_out);
        for (size_t k = 0; k < data->n; k++)
            if (data->labels[k] < 0 || (size_t) data->labels[k] >= net->n_out)
                PND_ERROR(PND_EINVAL,
                          "label %d of sample %zu is outside [0, %zu)",
                          data->labels[k], k, net->n_out);
    }
    return PND_OK;
}

int
pnd_net_set_scheme(struct pnd_net *net, enum pnd_scheme scheme, double p,
                   uint64_t seed)
{
    PND_TRY(pnd_check_p(p, "p"));
    if ((unsigned) scheme >= PND_SCHEME_COUNT)
        PND_ERROR(PND_EINVAL, "invalid scheme %d", (int) scheme);

    for (size_t l = 0; l < net->n_layers; l++) {
        struct pnd_layer *layer = &net->layers[l];

        free(layer->fixed_bits);
        layer->fixed_bits = NULL;
        layer->mask.scheme = scheme;
        layer->mask.p = p;
        layer->mask.fixed_bits = NULL;
        if (scheme == PND_SCHEME_FIXED_MASK) {
            size_t words = layer->d_out * ((layer->d_in + 63) / 64);

            layer->fixed_bits = calloc(words, sizeof *layer->fixed_bits);
            if (layer->fixed_bits == NULL)
                PND_ERROR(PND_ENOMEM, "out of memory for the fixed mask of layer %zu",
                          l + 1);
            PND_TRY(pnd_mask_fixed_bits(seed, l, p, layer->d_out, layer->d_in,
                                        layer->fixed_bits));
            layer->mask.fixed_bits = layer->fixed_bits;
        }
    }
    return PND_OK;
}

/* --- workspace ---------------------------------------------------------- */

struct pnd_net_workspace *
pnd_net_workspace_alloc(const struct pnd_net *net)
{
    struct pnd_net_workspace *w = calloc(1, sizeof *w);
    size_t width_max = net->n_out, weights_max = 0;

    if (w == NULL)
        goto fail;
    for (size_t l = 0; l < net->n_layers; l++) {
        const struct pnd_layer *layer = &net->layers[l];

        if (layer->d_in > width_max)
            width_max = layer->d_in;
        if (layer->d_out > width_max)
            width_max = layer->d_out;
        if (layer->d_in * layer->d_out > weights_max)
            weights_max = layer->d_in * layer->d_out;
    }
    w->n_layers = net->n_layers;
    w->width_max = width_max;
    w->z = calloc(net->n_layers, sizeof *w->z);
    w->a = calloc(net->n_layers, sizeof *w->a);
    w->mask_w = calloc(net->n_layers, sizeof *w->mask_w);
    w->y = malloc(net->n_out * sizeof *w->y);
    w->dy = malloc(net->n_out * sizeof *w->dy);
    w->da = malloc(width_max * sizeof *w->da);
    w->dz = malloc(width_max * sizeof *w->dz);
    w->masked_W = malloc(weights_max * sizeof *w->masked_W);
    w->z_draws = malloc(PND_NET_DRAWS * net->layers[0].d_out
                        * sizeof *w->z_draws);
    if (w->z == NULL || w->a == NULL || w->mask_w == NULL || w->y == NULL
        || w->dy == NULL || w->da == NULL || w->dz == NULL
        || w->masked_W == NULL || w->z_draws == NULL)
        goto fail;
    for (size_t l = 0; l < net->n_layers; l++) {
        const struct pnd_layer *layer = &net->layers[l];

        w->z[l] = malloc(layer->d_out * sizeof *w->z[l]);
        w->a[l] = malloc(layer->d_out * sizeof *w->a[l]);
        w->mask_w[l] = pnd_mask_workspace_alloc(layer->d_out, layer->d_in);
        if (w->z[l] == NULL || w->a[l] == NULL || w->mask_w[l] == NULL)
            goto fail;
    }
    return w;

fail:
    pnd_net_workspace_free(w);
    pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                  "out of memory allocating a network workspace");
    return NULL;
}

void
pnd_net_workspace_free(struct pnd_net_workspace *w)
{
    if (w == NULL)
        return;
    for (size_t l = 0; l < w->n_layers; l++) {
        if (w->z != NULL)
            free(w->z[l]);
        if (w->a != NULL)
            free(w->a[l]);
        if (w->mask_w != NULL)
            pnd_mask_workspace_free(w->mask_w[l]);
    }
    free(w->z);
    free(w->a);
    free(w->mask_w);
    free(w->y);
    free(w->dy);
    free(w->da);
    free(w->dz);
    free(w->masked_W);
    free(w->z_draws);
    free(w->V_t);
    free(w);
}

/* Entries of a row of the transposed readout: n_out rounded up to a
 * multiple of 4. */
static size_t
readout_stride(size_t c)
{
    return (c + 3) / 4 * 4;
}

int
pnd_net_workspace_fix_input(struct pnd_net_workspace *w,
                            const struct pnd_net *net,
                            const struct pnd_data *data)
{
    const struct pnd_layer *first = &net->layers[0];

    if (net->V != NULL) {
        size_t c = net->n_out, c4 = readout_stride(c);
        size_t h = net->layers[net->n_layers - 1].d_out;

        free(w->V_t);
        w->V_t = calloc(h * c4, sizeof *w->V_t);
        if (w->V_t == NULL)
            PND_ERROR(PND_ENOMEM, "out of memory for a copy of V (%zu x %zu)",
                      c, h);
        for (size_t u = 0; u < h; u++)
            for (size_t i = 0; i < c; i++)
                w->V_t[u * c4 + i] = net->V[i * h + u];
    }
    if (first->mask.scheme != PND_SCHEME_PERNODEDROP || first->mask.p == 0.0
        || data->d != first->d_in)
        return PND_OK;
    return pnd_mask_workspace_fix_product(w->mask_w[0], first->d_out,
                                          first->d_in, first->W, data->n,
                                          data->X);
}

/* --- forward and backward ----------------------------------------------- */

static double
softplus(double x)
{
    /* log(1 + e^x) without overflow for large x. */
    return x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

static void
activation_forward(enum pnd_activation act, size_t n,
                   const double *z /* (n) */, double *a /* (n) */)
{
    /* One loop per activation: a switch inside the loop would branch on
     * every element. */
    switch (act) {
    case PND_ACT_TANH:
        for (size_t u = 0; u < n; u++)
            a[u] = tanh(z[u]);
        break;
    case PND_ACT_SIGMOID:
        for (size_t u = 0; u < n; u++)
            a[u] = 1.0 / (1.0 + exp(-z[u]));
        break;
    case PND_ACT_SOFTPLUS:
        for (size_t u = 0; u < n; u++)
            a[u] = softplus(z[u]);
        break;
    case PND_ACT_RELU:
        for (size_t u = 0; u < n; u++)
            a[u] = z[u] > 0.0 ? z[u] : 0.0;
        break;
    case PND_ACT_IDENTITY:
    default:
        if (a != z)
            memmove(a, z, n * sizeof *a);
        break;
    }
}

/* dz = da * phi'(z), elementwise; a = phi(z) is reused where it helps. */
static void
activation_backward(enum pnd_activation act, size_t n,
                    const double *z /* (n) */, const double *a /* (n) */,
                    const double *da /* (n) */, double *dz /* (n) */)
{
    for (size_t u = 0; u < n; u++) {
        double slope;

        switch (act) {
        case PND_ACT_TANH:
            slope = 1.0 - a[u] * a[u];
            break;
        case PND_ACT_SIGMOID:
            slope = a[u] * (1.0 - a[u]);
            break;
        case PND_ACT_SOFTPLUS:
            slope = 1.0 / (1.0 + exp(-z[u]));
            break;
        case PND_ACT_RELU:
            slope = z[u] > 0.0 ? 1.0 : 0.0;
            break;
        case PND_ACT_IDENTITY:
        default:
            slope = 1.0;
            break;
        }
        dz[u] = da[u] * slope;
    }
}

/* Computes y[i] = e[i] + sum_u V[i h + u] h_last[u] for the m <= 8 rows
 * i < m, with the terms added in the order u = 0..h-1. Inlined with a constant
 * m, the m sums stay in registers. */
static inline __attribute__((always_inline)) void
readout_rows(size_t m, size_t h, const double *V /* (m, h) */,
             const double *e /* (m) or NULL */, const double *h_last,
             double *y /* (m) */)
{
    double s[8];

#pragma GCC unroll 8
    for (size_t i = 0; i < m; i++)
        s[i] = e != NULL ? e[i] : 0.0;
    for (size_t u = 0; u < h; u++) {
#pragma GCC unroll 8
        for (size_t i = 0; i < m; i++)
            s[i] += V[i * h + u] * h_last[u];
    }
#pragma GCC unroll 8
    for (size_t i = 0; i < m; i++)
        y[i] = s[i];
}

typedef double vec4d __attribute__((vector_size(32)));

/* readout_rows for rows r0 .. r0 + 4 nv - 1 (clipped to c) from V_t, the
 * transpose of V with rows of c4 = readout_stride(c) entries: lane i of
 * vector v adds the terms of row r0 + 4 v + i in the order u = 0..h-1, so
 * each row's sum has the bits of readout_rows. The columns of V_t past c
 * are 0. A macro, not a function, because GCC notes an ABI change for a
 * function of 32-byte vectors in the baseline clone. */
#define READOUT_VECTORS(nv, r0) \
    do { \
        vec4d s_[nv]; \
        for (size_t v_ = 0; v_ < (nv); v_++) \
            for (size_t i_ = 0; i_ < 4; i_++) \
                s_[v_][i_] = e != NULL && (r0) + 4 * v_ + i_ < c \
                             ? e[(r0) + 4 * v_ + i_] : 0.0; \
        for (size_t u_ = 0; u_ < h; u_++) { \
            vec4d a_ = { h_last[u_], h_last[u_], h_last[u_], h_last[u_] }; \
            for (size_t v_ = 0; v_ < (nv); v_++) { \
                vec4d m_; \
                memcpy(&m_, V_t + u_ * c4 + (r0) + 4 * v_, sizeof m_); \
                s_[v_] += m_ * a_; \
            } \
        } \
        for (size_t v_ = 0; v_ < (nv); v_++) \
            for (size_t i_ = 0; i_ < 4 && (r0) + 4 * v_ + i_ < c; i_++) \
                y[(r0) + 4 * v_ + i_] = s_[v_][i_]; \
    } while (0)

/* The readout from the transposed copy of V, 16, 8 or 4 rows at a time in
 * vectors of 4. Neither clone has FMA, so each product is rounded before
 * its addition, as in readout_rows. */
__attribute__((target_clones("avx2", "default"))) static void
readout_transposed(size_t c, size_t h, const double *V_t,
                   const double *e /* (c) or NULL */, const double *h_last,
                   double *y /* (c) */)
{
    size_t c4 = readout_stride(c), r = 0;

    for (; r + 16 <= c4; r += 16)
        READOUT_VECTORS(4, r);
    if (r + 8 <= c4) {
        READOUT_VECTORS(2, r);
        r += 8;
    }
    if (r < c4)
        READOUT_VECTORS(1, r);
}

#undef READOUT_VECTORS

/* y = V h_last + e, from V_t (pnd_net_workspace_fix_input) when it is not
 * NULL: the same bits either way. */
static void
readout(const struct pnd_net *net, const double *V_t, const double *h_last,
        double *y /* (n_out) */)
{
    size_t c = net->n_out;
    size_t h = net->layers[net->n_layers - 1].d_out;
    const double *e = net->e;    /* (n_out) or NULL */
    size_t r = 0;

    if (net->V == NULL) {
        memcpy(y, h_last, c * sizeof *y);
        return;
    }
    if (V_t != NULL) {
        readout_transposed(c, h, V_t, e, h_last, y);
        return;
    }
    /* Eight, four or two rows at a time, so that independent sums advance
     * together instead of one add waiting for the last. Each row still
     * adds its terms in the order u = 0..h-1, so the result has the same
     * bits. */
    for (; r + 8 <= c; r += 8)
        readout_rows(8, h, net->V + r * h, e ? e + r : NULL, h_last, y + r);
    for (; r + 4 <= c; r += 4)
        readout_rows(4, h, net->V + r * h, e ? e + r : NULL, h_last, y + r);
    for (; r + 2 <= c; r += 2)
        readout_rows(2, h, net->V + r * h, e ? e + r : NULL, h_last, y + r);
    for (; r < c; r++)
        readout_rows(1, h, net->V + r * h, e ? e + r : NULL, h_last, y + r);
}

/* Readout y = V h_L + e (or a copy of h_L), then the loss of sample k and,
 * when dy is not NULL, dl/dy. */
static int
output_loss(const struct pnd_net *net, const struct pnd_data *data, size_t k,
            const double *h_last, const double *V_t, double *y /* (n_out) */,
            double *dy /* (n_out) or NULL */, double *loss)
{
    size_t c = net->n_out;
    double value = 0.0;

    readout(net, V_t, h_last, y);
    if (net->loss == PND_LOSS_SQUARED) {
        const double *t = data->T + k * c;

        for (size_t r = 0; r < c; r++) {
            double diff = y[r] - t[r];

            value += 0.5 * diff * diff;
            if (dy != NULL)
                dy[r] = diff;
        }
    } else {
        size_t label = (size_t) data->labels[k];
        double y_max = y[0], sum = 0.0, log_z;

        for (size_t r = 1; r < c; r++)
            if (y[r] > y_max)
                y_max = y[r];
        for (size_t r = 0; r < c; r++)
            sum += exp(y[r] - y_max);
        log_z = y_max + log(sum);
        value = log_z - y[label];
        if (dy != NULL)
            for (size_t r = 0; r < c; r++)
                dy[r] = exp(y[r] - log_z) - (r == label ? 1.0 : 0.0);
    }

    if (!isfinite(value))
        PND_ERROR(PND_ENUMERIC,
                  "the loss of sample %zu is not finite (%g): reduce the weight scale",
                  k, value);
    *loss = value;
    return PND_OK;
}

/* Clean or explicitly masked forward pass of one input x (d) up to the
 * last layer's activation; fills w->z and w->a. A layer without explicit
 * mask values goes through the unmasked kernel of pnd_layer_forward, so
 * that the clean network and a masked one at p = 0 add their terms in the
 * same order and agree bit for bit. */
static int
forward_with_masks(const struct pnd_net *net, const double *x,
                   const double *const *masks, struct pnd_net_workspace *w)
{
    static const struct pnd_mask_spec unmasked = {
        .scheme = PND_SCHEME_NONE, .p = 0.0, .fixed_bits = NULL
    };
    const struct pnd_mask_key key = {0};
    const double *input = x;

    for (size_t l = 0; l < net->n_layers; l++) {
        const struct pnd_layer *layer = &net->layers[l];
        const double *M = masks != NULL ? masks[l] : NULL;   /* (d_out, d_in) */
        const double *W = layer->W;                          /* (d_out, d_in) */
        size_t d_in = layer->d_in, d_out = layer->d_out;

        if (M == NULL) {
            PND_TRY(pnd_layer_forward(&unmasked, &key, 1, d_out, d_in, W,
                                      layer->b, input, w->z[l], w->mask_w[l]));
            activation_forward(layer->act, d_out, w->z[l], w->a[l]);
            input = w->a[l];
            continue;
        }

        for (size_t e = 0; e < d_in * d_out; e++)
            w->masked_W[e] = W[e] * M[e];
        W = w->masked_W;
        for (size_t u = 0; u < d_out; u++) {
            double sum = layer->b != NULL ? layer->b[u] : 0.0;

            for (size_t i = 0; i < d_in; i++)
                sum += W[u * d_in + i] * input[i];
            w->z[l][u] = sum;
        }
        activation_forward(layer->act, d_out, w->z[l], w->a[l]);
        input = w->a[l];
    }
    return PND_OK;
}

const double *
pnd_net_output_clean(const struct pnd_net *net, const double *x,
                     struct pnd_net_workspace *w)
{
    if (forward_with_masks(net, x, NULL, w) != PND_OK)
        return NULL;
    readout(net, w->V_t, w->a[net->n_layers - 1], w->y);
    return w->y;
}

/* Raises PND_EINVAL when k is not a sample index of data. */
static int
check_sample(const struct pnd_data *data, size_t k)
{
    if (k >= data->n)
        PND_ERROR(PND_EINVAL, "sample %zu is outside the data set of %zu "
                  "samples: use an index below %zu", k, data->n, data->n);
    return PND_OK;
}

int
pnd_net_loss_with_masks(const struct pnd_net *net,
                        const struct pnd_data *data, size_t k,
                        const double *const *masks,
                        struct pnd_net_workspace *w, double *loss)
{
    PND_TRY(check_sample(data, k));
    PND_TRY(forward_with_masks(net, data->X + k * data->d, masks, w));
    return output_loss(net, data, k, w->a[net->n_layers - 1], w->V_t, w->y,
                       NULL, loss);
}

/* Runs the forward pass from layer `first` to the last on input, the input
 * of layer `first`, with masks drawn from key. Fills w->z and w->a of those
 * layers. */
static int
forward_layers(const struct pnd_net *net, size_t first, const double *input,
               const struct pnd_mask_key *key, struct pnd_net_workspace *w,
               const double **h_last)
{
    for (size_t l = first; l < net->n_layers; l++) {
        const struct pnd_layer *layer = &net->layers[l];
        struct pnd_mask_key layer_key = *key;

        layer_key.layer = l;
        PND_TRY(pnd_layer_forward(&layer->mask, &layer_key, 1, layer->d_out,
                                  layer->d_in, layer->W, layer->b, input,
                                  w->z[l], w->mask_w[l]));
        activation_forward(layer->act, layer->d_out, w->z[l], w->a[l]);
        input = w->a[l];
    }
    *h_last = input;
    return PND_OK;
}

/* Runs the forward pass of sample k with masks drawn from key and fills
 * w->z and w->a. */
static int
forward_sample(const struct pnd_net *net, const struct pnd_data *data,
               size_t k, const struct pnd_mask_key *key,
               struct pnd_net_workspace *w, const double **h_last)
{
    PND_TRY(check_sample(data, k));
    return forward_layers(net, 0, data->X + k * data->d, key, w, h_last);
}

int
pnd_net_loss_sample_draws(const struct pnd_net *net,
                          const struct pnd_data *data, size_t k,
                          const struct pnd_mask_key *keys, size_t m,
                          struct pnd_net_workspace *w, double *losses)
{
    const struct pnd_layer *first = &net->layers[0];
    struct pnd_mask_key first_keys[PND_NET_DRAWS];

    if (m == 0 || m > PND_NET_DRAWS)
        PND_ERROR(PND_EINVAL, "pnd_net_loss_sample_draws: m = %zu draws; "
                  "use 1 to %d", m, PND_NET_DRAWS);
    PND_TRY(check_sample(data, k));
    for (size_t t = 0; t < m; t++) {
        first_keys[t] = keys[t];
        first_keys[t].layer = 0;
    }
    PND_TRY(pnd_layer_forward_draws(&first->mask, first_keys, m,
                                    first->d_out, first->d_in, first->W,
                                    first->b, data->X + k * data->d,
                                    w->z_draws, w->mask_w[0]));
    for (size_t t = 0; t < m; t++) {
        const double *h_last;

        memcpy(w->z[0], w->z_draws + t * first->d_out,
               first->d_out * sizeof *w->z[0]);
        activation_forward(first->act, first->d_out, w->z[0], w->a[0]);
        PND_TRY(forward_layers(net, 1, w->a[0], &keys[t], w, &h_last));
        PND_TRY(output_loss(net, data, k, h_last, w->V_t, w->y, NULL,
                            &losses[t]));
    }
    return PND_OK;
}

int
pnd_net_loss_sample(const struct pnd_net *net, const struct pnd_data *data,
                    size_t k, const struct pnd_mask_key *key,
                    struct pnd_net_workspace *w, double *loss)
{
    const double *h_last;

    PND_TRY(forward_sample(net, data, k, key, w, &h_last));
    return output_loss(net, data, k, h_last, w->V_t, w->y, NULL, loss);
}

int
pnd_net_grad_sample(const struct pnd_net *net, const struct pnd_data *data,
                    size_t k, const struct pnd_mask_key *key, double weight,
                    struct pnd_net_workspace *w, double *loss,
                    double *const *dW)
{
    const double *h_last;
    size_t L = net->n_layers, c = net->n_out;
    size_t h_L = net->layers[L - 1].d_out;

    PND_TRY(forward_sample(net, data, k, key, w, &h_last));
    PND_TRY(output_loss(net, data, k, h_last, w->V_t, w->y, w->dy, loss));

    /* Scaling dl/dy by weight scales every gradient below by it. */
    for (size_t r = 0; r < c; r++)
        w->dy[r] *= weight;
    if (net->V != NULL) {
        for (size_t u = 0; u < h_L; u++) {
            double sum = 0.0;

            for (size_t r = 0; r < c; r++)
                sum += net->V[r * h_L + u] * w->dy[r];
            w->da[u] = sum;
        }
    } else {
        memcpy(w->da, w->dy, c * sizeof *w->da);
    }

    for (size_t l = L; l-- > 0;) {
        const struct pnd_layer *layer = &net->layers[l];
        const double *input = l > 0 ? w->a[l - 1] : data->X + k * data->d;
        struct pnd_mask_key layer_key = *key;

        layer_key.layer = l;
        activation_backward(layer->act, layer->d_out, w->z[l], w->a[l], w->da,
                            w->dz);
        PND_TRY(pnd_layer_backward(&layer->mask, &layer_key, 1, layer->d_out,
                                   layer->d_in, layer->W, input, w->dz, dW[l],
                                   NULL, l > 0 ? w->da : NULL, w->mask_w[l]));
    }
    return PND_OK;
}

int
pnd_net_clean_layer(const struct pnd_net *net, const struct pnd_data *data,
                    size_t k, size_t layer, struct pnd_net_workspace *w,
                    const double **input, const double **preact)
{
    double loss;

    if (layer >= net->n_layers)
        PND_ERROR(PND_EINVAL, "layer %zu does not exist: the network has %zu",
                  layer + 1, net->n_layers);
    PND_TRY(pnd_net_loss_with_masks(net, data, k, NULL, w, &loss));
    *input = layer > 0 ? w->a[layer - 1] : data->X + k * data->d;
    *preact = w->z[layer];
    return PND_OK;
}
