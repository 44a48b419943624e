/* Clean forward passes, exact gradients and Hessians with respect to a
 * layer's pre-activations, and degree-3 Taylor-mode propagation, used by
 * every analytic function (derivations in docs/theory.md).
 *
 * Hessian recursion (forward-over-reverse by hand): with h = phi(z) and the
 * next pre-activation z' = W' h + b',
 *   g_z = phi'(z) o g_h,
 *   H_z = diag(phi'(z)) H_h diag(phi'(z)) + diag(phi''(z) o g_h),
 *   g_h = W'^T g_z',  H_h = W'^T H_z' W',
 * started at the output from the loss: squared loss g_y = y - t, H_y = I;
 * softmax cross-entropy g_y = pi - e_label, H_y = diag(pi) - pi pi^T.
 *
 * Taylor mode: z(t) = z0 + t v is pushed through the clean layers as the
 * polynomial sum_j c_j t^j truncated after t^3, with the composition rule
 * phi(z0 + dz) = f0 + f1 dz + f2 dz^2 / 2 + f3 dz^3 / 6.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnd/error.h"
#include "analysis/internal.h"

bool
pnd_an_layer_masked(const struct pnd_layer *layer)
{
    return layer->mask.scheme != PND_SCHEME_NONE && layer->mask.p > 0.0;
}

/* fixed-mask is treated as the distribution of its one-time draw, which is
 * a per-connection Bernoulli mask like dropconnect's. */
struct pnd_noise_moments
pnd_an_layer_noise(const struct pnd_layer *layer)
{
    enum pnd_scheme scheme = layer->mask.scheme;

    if (scheme == PND_SCHEME_FIXED_MASK)
        scheme = PND_SCHEME_DROPCONNECT;
    return pnd_noise_moments(scheme, layer->mask.p);
}

static size_t
net_width(const struct pnd_net *net)
{
    size_t width = net->layers[0].d_in;

    for (size_t l = 0; l < net->n_layers; l++)
        if (net->layers[l].d_out > width)
            width = net->layers[l].d_out;
    if (net->n_out > width)
        width = net->n_out;
    return width;
}

struct pnd_an_work *
pnd_an_work_alloc(const struct pnd_net *net)
{
    struct pnd_an_work *w = calloc(1, sizeof *w);
    size_t width, L, c;

    if (w == NULL)
        goto fail;
    width = net_width(net);
    L = net->n_layers;
    c = net->n_out;
    w->n_layers = L;
    w->width = width;
    w->c = c;
    w->z = calloc(L * width, sizeof *w->z);
    w->h = calloc(L * width, sizeof *w->h);
    w->y = calloc(c, sizeof *w->y);
    w->g = calloc(width, sizeof *w->g);
    w->g_next = calloc(width, sizeof *w->g_next);
    w->H = calloc(width * width, sizeof *w->H);
    w->H_next = calloc(width * width, sizeof *w->H_next);
    w->tmp = calloc(width * width, sizeof *w->tmp);
    w->taylor_a = calloc(4 * width, sizeof *w->taylor_a);
    w->taylor_b = calloc(4 * width, sizeof *w->taylor_b);
    w->taylor_y = calloc(4 * c, sizeof *w->taylor_y);
    if (!w->z || !w->h || !w->y || !w->g || !w->g_next || !w->H
        || !w->H_next || !w->tmp || !w->taylor_a || !w->taylor_b
        || !w->taylor_y)
        goto fail;
    return w;

fail:
    pnd_an_work_free(w);
    pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                  "out of memory allocating the analysis workspace");
    return NULL;
}

void
pnd_an_work_free(struct pnd_an_work *w)
{
    if (w == NULL)
        return;
    free(w->z);
    free(w->h);
    free(w->y);
    free(w->g);
    free(w->g_next);
    free(w->H);
    free(w->H_next);
    free(w->tmp);
    free(w->taylor_a);
    free(w->taylor_b);
    free(w->taylor_y);
    free(w);
}

int
pnd_an_check_net(const struct pnd_net *net, const struct pnd_data *data,
                 size_t k, bool check_k)
{
    size_t last;

    if (net == NULL || data == NULL)
        PND_ERROR(PND_EINVAL, "network or data is NULL");
    if (net->n_layers == 0 || net->layers == NULL)
        PND_ERROR(PND_EINVAL, "the network has no layers");
    if (net->layers[0].d_in != data->d)
        PND_ERROR(PND_EINVAL,
                  "the data have %zu inputs but layer 0 expects %zu",
                  data->d, net->layers[0].d_in);
    for (size_t l = 0; l < net->n_layers; l++) {
        const struct pnd_layer *layer = &net->layers[l];

        if (l > 0 && layer->d_in != net->layers[l - 1].d_out)
            PND_ERROR(PND_EINVAL,
                      "layer %zu expects %zu inputs but layer %zu has %zu "
                      "outputs", l, layer->d_in, l - 1,
                      net->layers[l - 1].d_out);
        if (layer->d_in == 0 || layer->d_out == 0 || layer->W == NULL
            || layer->b == NULL)
            PND_ERROR(PND_EINVAL, "layer %zu is empty or has no weights", l);
        if (!(layer->mask.p >= 0.0 && layer->mask.p < 1.0))
            PND_ERROR(PND_EINVAL,
                      "layer %zu: drop probability p = %g is outside [0, 1)",
                      l, layer->mask.p);
        if ((unsigned) layer->mask.scheme >= PND_SCHEME_COUNT)
            PND_ERROR(PND_EINVAL, "layer %zu: unknown masking scheme %d", l,
                      (int) layer->mask.scheme);
    }
    last = net->layers[net->n_layers - 1].d_out;
    if (net->V == NULL && net->n_out != last)
        PND_ERROR(PND_EINVAL,
                  "the network has no readout, so n_out (%zu) must equal the "
                  "last layer's width (%zu)", net->n_out, last);
    if (net->V != NULL && net->n_out == 0)
        PND_ERROR(PND_EINVAL, "the readout has no rows (n_out = 0)");
    if (data->c != net->n_out)
        PND_ERROR(PND_EINVAL,
                  "the data have %zu targets per sample but the network has "
                  "%zu outputs", data->c, net->n_out);
    if (net->loss == PND_LOSS_SQUARED && data->T == NULL)
        PND_ERROR(PND_EINVAL, "the squared loss needs targets T in the data");
    if (net->loss == PND_LOSS_SOFTMAX_XENT && data->labels == NULL)
        PND_ERROR(PND_EINVAL,
                  "the softmax cross-entropy loss needs labels in the data");
    if (check_k && k >= data->n)
        PND_ERROR(PND_EINVAL, "sample index %zu is out of range (n = %zu)", k,
                  data->n);
    if (net->loss == PND_LOSS_SOFTMAX_XENT) {
        size_t first = check_k ? k : 0, end = check_k ? k + 1 : data->n;

        for (size_t j = first; j < end; j++)
            if (data->labels[j] < 0 || (size_t) data->labels[j] >= data->c)
                PND_ERROR(PND_EINVAL,
                          "label %d of sample %zu is outside [0, %zu)",
                          data->labels[j], j, data->c);
    }
    return PND_OK;
}

static double
sigmoid(double z)
{
    double e;

    if (z >= 0.0)
        return 1.0 / (1.0 + exp(-z));
    e = exp(z);
    return e / (1.0 + e);
}

void
pnd_an_activation_derivs(enum pnd_activation act, double z, double *f0,
                         double *f1, double *f2, double *f3)
{
    double t, s;

    switch (act) {
    case PND_ACT_TANH:
        t = tanh(z);
        *f0 = t;
        *f1 = 1.0 - t * t;
        *f2 = -2.0 * t * *f1;
        *f3 = 2.0 * *f1 * (2.0 * t * t - *f1);
        break;
    case PND_ACT_SIGMOID:
        s = sigmoid(z);
        *f0 = s;
        *f1 = s * (1.0 - s);
        *f2 = *f1 * (1.0 - 2.0 * s);
        *f3 = *f1 * (1.0 - 6.0 * s + 6.0 * s * s);
        break;
    case PND_ACT_SOFTPLUS:
        s = sigmoid(z);
        *f0 = z > 0.0 ? z + log1p(exp(-z)) : log1p(exp(z));
        *f1 = s;
        *f2 = s * (1.0 - s);
        *f3 = *f2 * (1.0 - 2.0 * s);
        break;
    case PND_ACT_RELU:
        *f0 = z > 0.0 ? z : 0.0;
        *f1 = z > 0.0 ? 1.0 : 0.0;
        *f2 = 0.0;
        *f3 = 0.0;
        break;
    case PND_ACT_IDENTITY:
    default:
        *f0 = z;
        *f1 = 1.0;
        *f2 = 0.0;
        *f3 = 0.0;
        break;
    }
}

/* Softmax of y (c) into pi (c); returns log sum exp(y). */
static double
softmax(const double *y, size_t c, double *pi)
{
    double max = y[0], sum = 0.0;

    for (size_t j = 1; j < c; j++)
        if (y[j] > max)
            max = y[j];
    for (size_t j = 0; j < c; j++) {
        pi[j] = exp(y[j] - max);
        sum += pi[j];
    }
    for (size_t j = 0; j < c; j++)
        pi[j] /= sum;
    return max + log(sum);
}

double
pnd_an_output_loss(const struct pnd_net *net, const struct pnd_data *data,
                   size_t k, const double *y)
{
    size_t c = net->n_out;
    double sum = 0.0, max;

    if (net->loss == PND_LOSS_SQUARED) {
        const double *t = data->T + k * c;

        for (size_t j = 0; j < c; j++)
            sum += (y[j] - t[j]) * (y[j] - t[j]);
        return 0.5 * sum;
    }
    max = y[0];
    for (size_t j = 1; j < c; j++)
        if (y[j] > max)
            max = y[j];
    for (size_t j = 0; j < c; j++)
        sum += exp(y[j] - max);
    return max + log(sum) - y[data->labels[k]];
}

void
pnd_an_activate(enum pnd_activation act, const double *z, double *h,
                size_t n)
{
    double f0, f1, f2, f3;

    for (size_t u = 0; u < n; u++) {
        pnd_an_activation_derivs(act, z[u], &f0, &f1, &f2, &f3);
        h[u] = f0;
    }
}

void
pnd_an_dense(const double *W, const double *b, const double *in, size_t h,
             size_t d, double *out)
{
    for (size_t u = 0; u < h; u++) {
        double sum = b ? b[u] : 0.0;

        for (size_t i = 0; i < d; i++)
            sum += W[u * d + i] * in[i];
        out[u] = sum;
    }
}

static int
finish_output(const struct pnd_net *net, const struct pnd_data *data,
              size_t k, struct pnd_an_work *w, double *loss)
{
    size_t L = net->n_layers, last = net->layers[L - 1].d_out;
    const double *h_last = w->h + (L - 1) * w->width;

    if (net->V != NULL)
        pnd_an_dense(net->V, net->e, h_last, net->n_out, last, w->y);
    else
        memcpy(w->y, h_last, last * sizeof *w->y);
    *loss = pnd_an_output_loss(net, data, k, w->y);
    if (!isfinite(*loss))
        PND_ERROR(PND_ENUMERIC, "the loss of sample %zu is not finite", k);
    return PND_OK;
}

int
pnd_an_forward_from(const struct pnd_net *net, const struct pnd_data *data,
                    size_t k, size_t l, const double *z_l,
                    struct pnd_an_work *w, double *loss)
{
    size_t width = w->width;

    if (z_l != w->z + l * width)
        memcpy(w->z + l * width, z_l, net->layers[l].d_out * sizeof *z_l);
    pnd_an_activate(net->layers[l].act, w->z + l * width, w->h + l * width,
             net->layers[l].d_out);
    for (size_t m = l + 1; m < net->n_layers; m++) {
        const struct pnd_layer *layer = &net->layers[m];

        pnd_an_dense(layer->W, layer->b, w->h + (m - 1) * width, layer->d_out,
              layer->d_in, w->z + m * width);
        pnd_an_activate(layer->act, w->z + m * width, w->h + m * width,
                 layer->d_out);
    }
    return finish_output(net, data, k, w, loss);
}

int
pnd_an_forward_clean(const struct pnd_net *net, const struct pnd_data *data,
                     size_t k, struct pnd_an_work *w, double *loss)
{
    const struct pnd_layer *first = &net->layers[0];

    pnd_an_dense(first->W, first->b, data->X + k * data->d, first->d_out,
          first->d_in, w->z);
    return pnd_an_forward_from(net, data, k, 0, w->z, w, loss);
}

/* Gradient g_y (c) and Hessian H_y (c, c) of the loss at the output. */
static void
output_derivatives(const struct pnd_net *net, const struct pnd_data *data,
                   size_t k, const double *y, double *g_y, double *H_y)
{
    size_t c = net->n_out;

    if (net->loss == PND_LOSS_SQUARED) {
        const double *t = data->T + k * c;

        for (size_t i = 0; i < c; i++) {
            g_y[i] = y[i] - t[i];
            for (size_t j = 0; j < c; j++)
                H_y[i * c + j] = i == j ? 1.0 : 0.0;
        }
        return;
    }
    softmax(y, c, g_y);
    for (size_t i = 0; i < c; i++)
        for (size_t j = 0; j < c; j++)
            H_y[i * c + j] = (i == j ? g_y[i] : 0.0) - g_y[i] * g_y[j];
    g_y[data->labels[k]] -= 1.0;
}

/* g_in (d) = A^T g_out and H_in (d, d) = A^T H_out A for a linear map
 * A (m, d); tmp is scratch of (m, d). */
static void
pull_back(const double *A, size_t m, size_t d, const double *g_out,
          const double *H_out, double *g_in, double *H_in, double *tmp)
{
    for (size_t i = 0; i < d; i++) {
        double sum = 0.0;

        for (size_t a = 0; a < m; a++)
            sum += A[a * d + i] * g_out[a];
        g_in[i] = sum;
    }
    /* tmp = H_out A, then H_in = A^T tmp */
    for (size_t a = 0; a < m; a++)
        for (size_t i = 0; i < d; i++) {
            double sum = 0.0;

            for (size_t b = 0; b < m; b++)
                sum += H_out[a * m + b] * A[b * d + i];
            tmp[a * d + i] = sum;
        }
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            double sum = 0.0;

            for (size_t a = 0; a < m; a++)
                sum += A[a * d + i] * tmp[a * d + j];
            H_in[i * d + j] = sum;
        }
}

void
pnd_an_backward_hessian(const struct pnd_net *net,
                        const struct pnd_data *data, size_t k, size_t l,
                        struct pnd_an_work *w)
{
    size_t L = net->n_layers, width = w->width, n;
    double *g = w->g, *H = w->H;

    /* derivatives with respect to h_L: through the readout when present */
    n = net->layers[L - 1].d_out;
    if (net->V != NULL) {
        output_derivatives(net, data, k, w->y, w->g_next, w->H_next);
        pull_back(net->V, net->n_out, n, w->g_next, w->H_next, g, H, w->tmp);
    } else {
        output_derivatives(net, data, k, w->y, g, H);
    }

    for (size_t m = L; m-- > l;) {
        const struct pnd_layer *layer = &net->layers[m];
        const double *z = w->z + m * width;

        /* h_m -> z_m: H_z = D H_h D + diag(phi'' o g_h), g_z = D g_h */
        n = layer->d_out;
        double *f1 = w->taylor_a, *f2 = w->taylor_a + width;

        for (size_t u = 0; u < n; u++) {
            double f0, f3;

            pnd_an_activation_derivs(layer->act, z[u], &f0, &f1[u], &f2[u],
                                     &f3);
        }
        for (size_t u = 0; u < n; u++) {
            for (size_t v = 0; v < n; v++)
                H[u * n + v] *= f1[u] * f1[v];
            H[u * n + u] += f2[u] * g[u];
            g[u] *= f1[u];
        }
        if (m == l)
            break;
        /* z_m -> h_{m-1} through W_m */
        pull_back(layer->W, n, layer->d_in, g, H, w->g_next, w->H_next,
                  w->tmp);
        memcpy(g, w->g_next, layer->d_in * sizeof *g);
        memcpy(H, w->H_next, layer->d_in * layer->d_in * sizeof *H);
    }
}

/* Push the Taylor coefficients zc (4, width) of a layer's pre-activations
 * through phi into hc (4, width). */
static void
taylor_activate(enum pnd_activation act, const double *zc, double *hc,
                size_t n, size_t width)
{
    for (size_t u = 0; u < n; u++) {
        double f0, f1, f2, f3;
        double z1 = zc[width + u], z2 = zc[2 * width + u];
        double z3 = zc[3 * width + u];

        pnd_an_activation_derivs(act, zc[u], &f0, &f1, &f2, &f3);
        hc[u] = f0;
        hc[width + u] = f1 * z1;
        hc[2 * width + u] = f1 * z2 + 0.5 * f2 * z1 * z1;
        hc[3 * width + u] = f1 * z3 + f2 * z1 * z2 + f3 * z1 * z1 * z1 / 6.0;
    }
}

/* Apply W (m, d) to each of the 4 coefficient rows of in, bias on row 0. */
static void
taylor_dense(const double *W, const double *b, const double *in, size_t m,
             size_t d, size_t in_stride, double *out, size_t out_stride)
{
    for (size_t j = 0; j < 4; j++)
        pnd_an_dense(W, j == 0 ? b : NULL, in + j * in_stride, m, d,
              out + j * out_stride);
}

/* Taylor coefficients of the loss from those of the output yc (4, c). */
static void
taylor_output_loss(const struct pnd_net *net, const struct pnd_data *data,
                   size_t k, const double *yc, double c_out[4])
{
    size_t c = net->n_out;
    const double *y0 = yc, *y1 = yc + c, *y2 = yc + 2 * c, *y3 = yc + 3 * c;

    if (net->loss == PND_LOSS_SQUARED) {
        const double *t = data->T + k * c;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;

        for (size_t j = 0; j < c; j++) {
            double r = y0[j] - t[j];

            s0 += r * r;
            s1 += r * y1[j];
            s2 += r * y2[j] + 0.5 * y1[j] * y1[j];
            s3 += r * y3[j] + y1[j] * y2[j];
        }
        c_out[0] = 0.5 * s0;
        c_out[1] = s1;
        c_out[2] = s2;
        c_out[3] = s3;
        return;
    }

    /* log sum exp(y(t)): sum the series of exp(y_j(t) - max), then
     * log(S0 (1 + s)) with log(1 + s) = s - s^2 / 2 + s^3 / 3 */
    double max = y0[0], S[4] = { 0.0, 0.0, 0.0, 0.0 };
    double a1, a2, a3;
    int lab = data->labels[k];

    for (size_t j = 1; j < c; j++)
        if (y0[j] > max)
            max = y0[j];
    for (size_t j = 0; j < c; j++) {
        double e = exp(y0[j] - max);

        S[0] += e;
        S[1] += e * y1[j];
        S[2] += e * (y2[j] + 0.5 * y1[j] * y1[j]);
        S[3] += e * (y3[j] + y1[j] * y2[j] + y1[j] * y1[j] * y1[j] / 6.0);
    }
    a1 = S[1] / S[0];
    a2 = S[2] / S[0];
    a3 = S[3] / S[0];
    c_out[0] = max + log(S[0]) - y0[lab];
    c_out[1] = a1 - y1[lab];
    c_out[2] = a2 - 0.5 * a1 * a1 - y2[lab];
    c_out[3] = a3 - a1 * a2 + a1 * a1 * a1 / 3.0 - y3[lab];
}

int
pnd_an_taylor_loss(const struct pnd_net *net, const struct pnd_data *data,
                   size_t k, size_t l, const double *z0, const double *v,
                   struct pnd_an_work *w, double c[4])
{
    size_t width = w->width, L = net->n_layers, n = net->layers[l].d_out;
    double *zc = w->taylor_a, *hc = w->taylor_b;

    memset(zc, 0, 4 * width * sizeof *zc);
    memcpy(zc, z0, n * sizeof *zc);
    memcpy(zc + width, v, n * sizeof *zc);
    taylor_activate(net->layers[l].act, zc, hc, n, width);
    for (size_t m = l + 1; m < L; m++) {
        const struct pnd_layer *layer = &net->layers[m];

        taylor_dense(layer->W, layer->b, hc, layer->d_out, layer->d_in,
                     width, zc, width);
        taylor_activate(layer->act, zc, hc, layer->d_out, width);
    }
    n = net->layers[L - 1].d_out;
    if (net->V != NULL) {
        taylor_dense(net->V, net->e, hc, net->n_out, n, width, w->taylor_y,
                     net->n_out);
    } else {
        for (size_t j = 0; j < 4; j++)
            memcpy(w->taylor_y + j * n, hc + j * width, n * sizeof *hc);
    }
    taylor_output_loss(net, data, k, w->taylor_y, c);
    for (size_t j = 0; j < 4; j++)
        if (!isfinite(c[j]))
            PND_ERROR(PND_ENUMERIC,
                      "Taylor coefficient %zu of the loss of sample %zu is "
                      "not finite", j, k);
    return PND_OK;
}

void
pnd_an_pairwise_init(struct pnd_an_pairwise *s)
{
    memset(s, 0, sizeof *s);
}

void
pnd_an_pairwise_add(struct pnd_an_pairwise *s, double x)
{
    size_t j = 0;

    /* binary carry: two blocks of 2^j values merge into one of 2^(j+1) */
    while (j < 63 && s->used[j]) {
        x += s->partial[j];
        s->partial[j] = 0.0;
        s->used[j] = 0;
        j++;
    }
    s->partial[j] += x;
    s->used[j] = 1;
}

double
pnd_an_pairwise_total(const struct pnd_an_pairwise *s)
{
    double sum = 0.0;

    for (size_t j = 0; j < 64; j++)
        if (s->used[j])
            sum += s->partial[j];
    return sum;
}
