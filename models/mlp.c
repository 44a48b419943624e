/* Multilayer perceptron with a masking scheme on every dense layer and a
 * softmax cross-entropy output.
 *
 * Layer l computes Z_l = (W_l o M_l) A_{l-1} + b_l and A_l = phi_l(Z_l),
 * with A_{-1} = X; the last layer's Z is the logits. The masked products
 * and their gradients go through pnd_layer_forward and pnd_layer_backward,
 * which regenerate each sample's mask from its key (seed, layer, step,
 * sample) instead of storing it. The backward pass is the chain rule:
 *   dZ_last = (softmax(Z_last) - onehot(y)) / n,
 *   dA_{l-1} = (W_l o M_l)^T dZ_l,  dZ_{l-1} = dA_{l-1} o phi'(Z_{l-1}).
 * Initialisation: Glorot and Bengio (2010), uniform with variance
 * 2 / (d_in + d_out); He et al. (2015), normal with variance 2 / d_in.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnd/error.h"
#include "pnd/rng.h"
#include "pnd/train.h"

/* Coordinate that tags the initialisation stream of pnd_rng_derive. */
#define STREAM_INIT 0x494e4954ULL

const char *const pnd_init_names[] = {"auto", "glorot", "he", NULL};

struct pnd_mlp_workspace {
    size_t max_batch;
    size_t n_layers;
    double *Z[PND_TRAIN_MAX_LAYERS];   /* (max_batch, widths[l+1]) pre-activations */
    double *A[PND_TRAIN_MAX_LAYERS];   /* (max_batch, widths[l+1]); last: softmax */
    double *dA;                        /* (max_batch, max width) */
    double *dZ;                        /* (max_batch, max width) */
    struct pnd_mask_workspace *mask[PND_TRAIN_MAX_LAYERS];
};

int
pnd_mlp_alloc(const struct pnd_mlp_spec *spec, uint64_t seed,
              struct pnd_mlp **result)
{
    struct pnd_mlp *mlp;
    size_t n = 0;
    int status;

    *result = NULL;
    if (spec->n_layers < 1 || spec->n_layers > PND_TRAIN_MAX_LAYERS)
        PND_ERROR(PND_EINVAL, "an MLP needs 1 to %d dense layers (got %zu)",
                  PND_TRAIN_MAX_LAYERS, spec->n_layers);
    for (size_t l = 0; l <= spec->n_layers; l++)
        if (spec->widths[l] == 0)
            PND_ERROR(PND_EINVAL, "layer width %zu is zero", l);
    for (size_t l = 0; l < spec->n_layers; l++) {
        if ((unsigned) spec->scheme[l] >= PND_SCHEME_COUNT)
            PND_ERROR(PND_EINVAL, "layer %zu has an invalid scheme", l + 1);
        PND_TRY(pnd_check_p(spec->p[l], "layer drop probability"));
        n += spec->widths[l + 1] * spec->widths[l] + spec->widths[l + 1];
    }

    mlp = calloc(1, sizeof *mlp);
    if (mlp == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for an MLP");
    mlp->spec = *spec;
    mlp->seed = seed;
    mlp->n_params = n;
    mlp->params = calloc(n, sizeof *mlp->params);
    if (mlp->params == NULL) {
        status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                               "out of memory for %zu parameters", n);
        goto fail;
    }
    {
        size_t w_offset[PND_TRAIN_MAX_LAYERS], b_offset[PND_TRAIN_MAX_LAYERS];

        pnd_mlp_offsets(mlp, w_offset, b_offset);
        for (size_t l = 0; l < spec->n_layers; l++) {
            mlp->W[l] = mlp->params + w_offset[l];
            mlp->b[l] = mlp->params + b_offset[l];
        }
    }
    for (size_t l = 0; l < spec->n_layers; l++) {
        size_t h = spec->widths[l + 1], d = spec->widths[l];

        if (spec->scheme[l] != PND_SCHEME_FIXED_MASK)
            continue;
        mlp->fixed_bits[l] = calloc(h * ((d + 63) / 64), sizeof(uint64_t));
        if (mlp->fixed_bits[l] == NULL) {
            status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                                   "out of memory for the fixed mask of layer %zu", l + 1);
            goto fail;
        }
        status = pnd_mask_fixed_bits(seed, l, spec->p[l], h, d, mlp->fixed_bits[l]);
        if (status != PND_OK)
            goto fail;
    }
    *result = mlp;
    return PND_OK;

fail:
    pnd_mlp_free(mlp);
    return status;
}

void
pnd_mlp_free(struct pnd_mlp *mlp)
{
    if (mlp == NULL)
        return;
    for (size_t l = 0; l < PND_TRAIN_MAX_LAYERS; l++)
        free(mlp->fixed_bits[l]);
    free(mlp->params);
    free(mlp);
}

void
pnd_mlp_offsets(const struct pnd_mlp *mlp, size_t *w_offset, size_t *b_offset)
{
    size_t at = 0;

    for (size_t l = 0; l < mlp->spec.n_layers; l++) {
        size_t h = mlp->spec.widths[l + 1], d = mlp->spec.widths[l];

        w_offset[l] = at;
        at += h * d;
        b_offset[l] = at;
        at += h;
    }
}

int
pnd_mlp_init_params(struct pnd_mlp *mlp, enum pnd_init init, uint64_t seed)
{
    for (size_t l = 0; l < mlp->spec.n_layers; l++) {
        size_t h = mlp->spec.widths[l + 1], d = mlp->spec.widths[l];
        enum pnd_activation act = mlp->spec.act[l];
        enum pnd_init kind = init;
        uint64_t coords[2] = {STREAM_INIT, l};
        pnd_pcg64 r;

        if (kind == PND_INIT_AUTO)
            kind = act == PND_ACT_RELU || act == PND_ACT_SOFTPLUS ? PND_INIT_HE
                                                                   : PND_INIT_GLOROT;
        pnd_rng_derive(&r, seed, coords, 2);
        if (kind == PND_INIT_GLOROT) {
            double a = sqrt(6.0 / (double) (d + h));

            for (size_t j = 0; j < h * d; j++)
                mlp->W[l][j] = a * (2.0 * pnd_pcg64dxsm_double(&r) - 1.0);
        } else if (kind == PND_INIT_HE) {
            double sd = sqrt(2.0 / (double) d);

            for (size_t j = 0; j < h * d; j++)
                mlp->W[l][j] = sd * pnd_rng_normal(&r);
        } else {
            PND_ERROR(PND_EINVAL, "unknown initialisation %d", (int) init);
        }
        memset(mlp->b[l], 0, h * sizeof(double));
    }
    return PND_OK;
}

int
pnd_mlp_workspace_alloc(const struct pnd_mlp *mlp, size_t max_batch,
                        struct pnd_mlp_workspace **result)
{
    struct pnd_mlp_workspace *w;
    size_t max_width = 0;

    *result = NULL;
    if (max_batch == 0)
        PND_ERROR(PND_EINVAL, "workspace needs a batch size > 0");
    w = calloc(1, sizeof *w);
    if (w == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for an MLP workspace");
    w->max_batch = max_batch;
    w->n_layers = mlp->spec.n_layers;
    for (size_t l = 0; l <= mlp->spec.n_layers; l++)
        if (mlp->spec.widths[l] > max_width)
            max_width = mlp->spec.widths[l];
    for (size_t l = 0; l < mlp->spec.n_layers; l++) {
        size_t h = mlp->spec.widths[l + 1], d = mlp->spec.widths[l];

        w->Z[l] = malloc(max_batch * h * sizeof(double));
        w->A[l] = malloc(max_batch * h * sizeof(double));
        w->mask[l] = pnd_mask_workspace_alloc(h, d);
        if (w->Z[l] == NULL || w->A[l] == NULL || w->mask[l] == NULL)
            goto nomem;
    }
    w->dA = malloc(max_batch * max_width * sizeof(double));
    w->dZ = malloc(max_batch * max_width * sizeof(double));
    if (w->dA == NULL || w->dZ == NULL)
        goto nomem;
    *result = w;
    return PND_OK;

nomem:
    pnd_mlp_workspace_free(w);
    PND_ERROR(PND_ENOMEM, "out of memory for an MLP workspace of batch %zu", max_batch);
}

void
pnd_mlp_workspace_free(struct pnd_mlp_workspace *w)
{
    if (w == NULL)
        return;
    for (size_t l = 0; l < w->n_layers; l++) {
        free(w->Z[l]);
        free(w->A[l]);
        pnd_mask_workspace_free(w->mask[l]);
    }
    free(w->dA);
    free(w->dZ);
    free(w);
}

/* phi(z) for every element of Z (m) into A. */
static void
activation_forward(enum pnd_activation act, size_t m, const double *Z, double *A)
{
    for (size_t j = 0; j < m; j++) {
        double z = Z[j];

        switch (act) {
        case PND_ACT_RELU:
            A[j] = z > 0 ? z : 0.0;
            break;
        case PND_ACT_TANH:
            A[j] = tanh(z);
            break;
        case PND_ACT_SIGMOID:
            A[j] = 1.0 / (1.0 + exp(-z));
            break;
        case PND_ACT_SOFTPLUS:
            A[j] = z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
            break;
        case PND_ACT_IDENTITY:
        default:
            A[j] = z;
            break;
        }
    }
}

/* dZ = dA o phi'(Z), elementwise over m values; A = phi(Z). */
static void
activation_backward(enum pnd_activation act, size_t m, const double *Z,
                    const double *A, const double *dA, double *dZ)
{
    for (size_t j = 0; j < m; j++) {
        double slope;

        switch (act) {
        case PND_ACT_RELU:
            slope = Z[j] > 0 ? 1.0 : 0.0;
            break;
        case PND_ACT_TANH:
            slope = 1.0 - A[j] * A[j];
            break;
        case PND_ACT_SIGMOID:
            slope = A[j] * (1.0 - A[j]);
            break;
        case PND_ACT_SOFTPLUS:
            slope = 1.0 / (1.0 + exp(-Z[j]));
            break;
        case PND_ACT_IDENTITY:
        default:
            slope = 1.0;
            break;
        }
        dZ[j] = dA[j] * slope;
    }
}

/* Softmax of the logits Z (n, c) into P and the summed cross-entropy and
 * number of correct argmax predictions. */
static int
softmax_xent(size_t n, size_t c, const double *Z, const int *labels,
             double *P, double *loss_sum, size_t *n_correct)
{
    *loss_sum = 0;
    *n_correct = 0;
    for (size_t k = 0; k < n; k++) {
        const double *z = Z + k * c;   /* (c) */
        double *pk = P + k * c;        /* (c) */
        double top = z[0], total = 0;
        size_t best = 0;

        if (labels[k] < 0 || (size_t) labels[k] >= c)
            PND_ERROR(PND_EINVAL, "label %d of sample %zu is outside [0, %zu)",
                      labels[k], k, c);
        for (size_t j = 1; j < c; j++)
            if (z[j] > top) {
                top = z[j];
                best = j;
            }
        for (size_t j = 0; j < c; j++) {
            pk[j] = exp(z[j] - top);
            total += pk[j];
        }
        for (size_t j = 0; j < c; j++)
            pk[j] /= total;
        *loss_sum += log(total) + top - z[labels[k]];
        *n_correct += best == (size_t) labels[k];
    }
    return PND_OK;
}

static struct pnd_mask_spec
layer_mask(const struct pnd_mlp *mlp, size_t l, bool training)
{
    struct pnd_mask_spec spec = {PND_SCHEME_NONE, 0.0, NULL};

    if (training || mlp->spec.scheme[l] == PND_SCHEME_FIXED_MASK) {
        spec.scheme = mlp->spec.scheme[l];
        spec.p = mlp->spec.p[l];
        spec.fixed_bits = mlp->fixed_bits[l];
    }
    return spec;
}

/* Forward pass of n samples through the first n_layers layers. */
static int
forward(const struct pnd_mlp *mlp, size_t n, const double *X, size_t n_layers,
        bool training, uint64_t step, struct pnd_mlp_workspace *w)
{
    for (size_t l = 0; l < n_layers; l++) {
        size_t h = mlp->spec.widths[l + 1], d = mlp->spec.widths[l];
        struct pnd_mask_spec spec = layer_mask(mlp, l, training);
        struct pnd_mask_key key = {mlp->seed, l, step, 0};
        const double *input = l == 0 ? X : w->A[l - 1];   /* (n, d) */

        PND_TRY(pnd_layer_forward(&spec, &key, n, h, d, mlp->W[l], mlp->b[l],
                                  input, w->Z[l], w->mask[l]));
        if (l + 1 < mlp->spec.n_layers)
            activation_forward(mlp->spec.act[l], n * h, w->Z[l], w->A[l]);
    }
    return PND_OK;
}

int
pnd_mlp_train_loss(const struct pnd_mlp *mlp, size_t n, const double *X,
                   const int *labels, uint64_t step, double *grad,
                   double *loss, struct pnd_mlp_workspace *w)
{
    size_t L = mlp->spec.n_layers, c = mlp->spec.widths[L];
    size_t w_offset[PND_TRAIN_MAX_LAYERS], b_offset[PND_TRAIN_MAX_LAYERS];
    double loss_sum;
    size_t n_correct;

    if (n == 0 || n > w->max_batch)
        PND_ERROR(PND_EINVAL, "batch of %zu samples: the workspace holds 1 to %zu",
                  n, w->max_batch);

    /* Forward, then the softmax of the logits into A[L - 1]. */
    PND_TRY(forward(mlp, n, X, L, true, step, w));
    PND_TRY(softmax_xent(n, c, w->Z[L - 1], labels, w->A[L - 1], &loss_sum,
                         &n_correct));
    *loss = loss_sum / (double) n;
    if (grad == NULL)
        return PND_OK;

    /* dZ of the logits: (softmax - onehot) / n. */
    for (size_t k = 0; k < n; k++) {
        for (size_t j = 0; j < c; j++)
            w->dZ[k * c + j] = w->A[L - 1][k * c + j] / (double) n;
        w->dZ[k * c + (size_t) labels[k]] -= 1.0 / (double) n;
    }

    /* Backward through the layers, with the masks regenerated from the same keys. */
    memset(grad, 0, mlp->n_params * sizeof(double));
    pnd_mlp_offsets(mlp, w_offset, b_offset);
    for (size_t l = L; l-- > 0;) {
        size_t h = mlp->spec.widths[l + 1], d = mlp->spec.widths[l];
        struct pnd_mask_spec spec = layer_mask(mlp, l, true);
        struct pnd_mask_key key = {mlp->seed, l, step, 0};
        const double *input = l == 0 ? X : w->A[l - 1];   /* (n, d) */

        PND_TRY(pnd_layer_backward(&spec, &key, n, h, d, mlp->W[l], input,
                                   w->dZ, grad + w_offset[l], grad + b_offset[l],
                                   l == 0 ? NULL : w->dA, w->mask[l]));
        if (l > 0)
            activation_backward(mlp->spec.act[l - 1], n * d, w->Z[l - 1],
                                w->A[l - 1], w->dA, w->dZ);
    }
    return PND_OK;
}

int
pnd_mlp_evaluate(const struct pnd_mlp *mlp, const struct pnd_dataset *ds,
                 double *loss, double *accuracy, struct pnd_mlp_workspace *w)
{
    size_t L = mlp->spec.n_layers, c = mlp->spec.widths[L];
    double total = 0;
    size_t correct = 0;

    if (ds->d != mlp->spec.widths[0])
        PND_ERROR(PND_EINVAL, "data set has %zu pixels per image but the network takes %zu",
                  ds->d, mlp->spec.widths[0]);
    if (ds->n == 0) {
        *loss = NAN;
        *accuracy = NAN;
        return PND_OK;
    }
    for (size_t start = 0; start < ds->n; start += w->max_batch) {
        size_t n = ds->n - start < w->max_batch ? ds->n - start : w->max_batch;
        double chunk_loss;
        size_t chunk_correct;

        PND_TRY(forward(mlp, n, ds->X + start * ds->d, L, false, 0, w));
        PND_TRY(softmax_xent(n, c, w->Z[L - 1], ds->labels + start, w->A[L - 1],
                             &chunk_loss, &chunk_correct));
        total += chunk_loss;
        correct += chunk_correct;
    }
    *loss = total / (double) ds->n;
    *accuracy = (double) correct / (double) ds->n;
    if (!isfinite(*loss))
        PND_ERROR(PND_ENUMERIC, "evaluation loss is %g: the network's outputs are not finite",
                  *loss);
    return PND_OK;
}

int
pnd_mlp_hidden(const struct pnd_mlp *mlp, const struct pnd_dataset *ds,
               size_t n, size_t layer, double *H, struct pnd_mlp_workspace *w)
{
    size_t h;

    if (layer + 1 >= mlp->spec.n_layers)
        PND_ERROR(PND_EINVAL, "hidden layer %zu does not exist (the network has %zu)",
                  layer + 1, mlp->spec.n_layers - 1);
    if (n > ds->n)
        PND_ERROR(PND_EINVAL, "asked for %zu samples of a data set of %zu", n, ds->n);
    h = mlp->spec.widths[layer + 1];
    for (size_t start = 0; start < n; start += w->max_batch) {
        size_t m = n - start < w->max_batch ? n - start : w->max_batch;

        PND_TRY(forward(mlp, m, ds->X + start * ds->d, layer + 1, false, 0, w));
        memcpy(H + start * h, w->A[layer], m * h * sizeof(double));
    }
    return PND_OK;
}

void
pnd_mlp_net_view(const struct pnd_mlp *mlp, struct pnd_layer *layers,
                 struct pnd_net *net)
{
    size_t L = mlp->spec.n_layers;

    for (size_t l = 0; l < L; l++) {
        layers[l].d_in = mlp->spec.widths[l];
        layers[l].d_out = mlp->spec.widths[l + 1];
        layers[l].W = mlp->W[l];
        layers[l].b = mlp->b[l];
        layers[l].act = l + 1 < L ? mlp->spec.act[l] : PND_ACT_IDENTITY;
        layers[l].mask.scheme = mlp->spec.scheme[l];
        layers[l].mask.p = mlp->spec.p[l];
        layers[l].mask.fixed_bits = mlp->fixed_bits[l];
        layers[l].fixed_bits = NULL;
    }
    net->n_layers = L;
    net->layers = layers;
    net->n_out = mlp->spec.widths[L];
    net->V = NULL;
    net->e = NULL;
    net->loss = PND_LOSS_SOFTMAX_XENT;
}
