/* Co-adaptation statistics of a hidden layer's activations H (n, h).
 *
 * K is the covariance with divisor n, C the Pearson correlation
 * C_uv = K_uv / sqrt(K_uu K_vv). From them:
 *   mean |C_uv| over the h (h - 1) ordered pairs u != v;
 *   |C - I|_F / sqrt(h (h - 1)), the root-mean-square off-diagonal correlation;
 *   DeCov = 1/2 (|K|_F^2 - |diag K|^2) (Cogswell et al., "Reducing
 *   overfitting in deep networks by decorrelating representations", 2016);
 *   participation ratio tr(K)^2 / tr(K^2), the effective number of units.
 * A unit whose n values are all equal is dead: its column of the centred
 * activations is set to exactly zero, so its row and column of K are zero,
 * and its correlations with every other unit count as 0 (C_uu = 1). Dead
 * units stay in the pair count, so a layer with many dead units shows a
 * low mean correlation. With every unit dead the participation ratio is 0.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/blas.h"
#include "pnd/error.h"
#include "pnd/train.h"

int
pnd_coadapt_activations(size_t n, size_t h, const double *H, double *K,
                        double *C, struct pnd_coadapt *result)
{
    double *centred = NULL;   /* (n, h) */
    unsigned char *dead = NULL;   /* (h) */
    double pairs = (double) h * (double) (h - 1);
    double sum_abs = 0, sum_sq = 0, fro2 = 0, diag2 = 0, trace = 0;

    if (n < 2 || h < 1)
        PND_ERROR(PND_EINVAL, "co-adaptation statistics need n >= 2 samples and h >= 1 units (got %zu, %zu)",
                  n, h);
    centred = malloc(n * h * sizeof *centred);
    dead = calloc(h, 1);
    if (centred == NULL || dead == NULL) {
        free(centred);
        free(dead);
        PND_ERROR(PND_ENOMEM, "out of memory for statistics of %zu x %zu activations", n, h);
    }
    memset(result, 0, sizeof *result);

    /* Centre each unit. A constant unit becomes an exact zero column. */
    for (size_t u = 0; u < h; u++) {
        double mean = 0, lo = H[u], hi = H[u];

        for (size_t k = 0; k < n; k++) {
            double v = H[k * h + u];

            mean += v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        mean /= (double) n;
        dead[u] = lo == hi;
        result->n_dead += dead[u];
        for (size_t k = 0; k < n; k++)
            centred[k * h + u] = dead[u] ? 0.0 : H[k * h + u] - mean;
    }

    /* K = centred^T centred / n. */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int) h, (int) h,
                (int) n, 1.0 / (double) n, centred, (int) h, centred, (int) h,
                0.0, K, (int) h);

    for (size_t u = 0; u < h; u++)
        for (size_t v = 0; v < h; v++) {
            double kuv = K[u * h + v], cuv;

            fro2 += kuv * kuv;
            if (u == v) {
                diag2 += kuv * kuv;
                trace += kuv;
                C[u * h + v] = 1.0;
                continue;
            }
            if (dead[u] || dead[v]) {
                cuv = 0.0;
            } else {
                cuv = kuv / sqrt(K[u * h + u] * K[v * h + v]);
                cuv = fmin(1.0, fmax(-1.0, cuv));   /* rounding can pass 1 */
            }
            C[u * h + v] = cuv;
            sum_abs += fabs(cuv);
            sum_sq += cuv * cuv;
        }

    result->mean_abs_corr = h > 1 ? sum_abs / pairs : 0.0;
    result->corr_fro = h > 1 ? sqrt(sum_sq / pairs) : 0.0;
    result->decov = 0.5 * (fro2 - diag2);
    result->participation = fro2 > 0 ? trace * trace / fro2 : 0.0;
    free(centred);
    free(dead);
    if (!isfinite(result->decov) || !isfinite(result->participation))
        PND_ERROR(PND_ENUMERIC, "co-adaptation statistics are not finite: activations overflow");
    return PND_OK;
}

/* Second derivative of the activation at z, given a = phi(z). */
static double
activation_curvature(enum pnd_activation act, double z, double a)
{
    double s;

    switch (act) {
    case PND_ACT_TANH:
        return -2.0 * a * (1.0 - a * a);
    case PND_ACT_SIGMOID:
        return a * (1.0 - a) * (1.0 - 2.0 * a);
    case PND_ACT_SOFTPLUS:
        s = 1.0 / (1.0 + exp(-z));
        return s * (1.0 - s);
    default:
        return 0.0;   /* identity, and relu away from its kink */
    }
}

static double
activation_slope(enum pnd_activation act, double z, double a)
{
    switch (act) {
    case PND_ACT_RELU:
        return z > 0 ? 1.0 : 0.0;
    case PND_ACT_TANH:
        return 1.0 - a * a;
    case PND_ACT_SIGMOID:
        return a * (1.0 - a);
    case PND_ACT_SOFTPLUS:
        return 1.0 / (1.0 + exp(-z));
    default:
        return 1.0;
    }
}

static double
activation_value(enum pnd_activation act, double z)
{
    switch (act) {
    case PND_ACT_RELU:
        return z > 0 ? z : 0.0;
    case PND_ACT_TANH:
        return tanh(z);
    case PND_ACT_SIGMOID:
        return 1.0 / (1.0 + exp(-z));
    case PND_ACT_SOFTPLUS:
        return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
    default:
        return z;
    }
}

/* The Dropout-view penalty terms of every hidden layer, from the exact
 * Hessian of the loss with respect to that layer's pre-activations.
 *
 * For one sample the Hessians come back through the layers from the
 * softmax cross-entropy's H = diag(pi) - pi pi^T:
 *   g_{l-1} = phi'(z_{l-1}) o (W_l^T g_l),
 *   H_{l-1} = D W_l^T H_l W_l D + diag(phi''(z_{l-1}) o (W_l^T g_l)),
 * with D = diag(phi'(z_{l-1})). With x the layer's input and
 * s2 = p / (1 - p), the expansion's terms for input Dropout are
 *   R_diag  = 1/2 s2 sum_u H_uu sum_i W_ui^2 x_i^2,
 *   R_diag + R_cross = 1/2 s2 sum_i x_i^2 (W^T H W)_ii.
 * pnd_expand_layer_dropout_terms computes the same terms one sample at a
 * time for any pnd_net, and the train tests compare the two. */
int
pnd_coadapt_dropout_terms(const struct pnd_mlp *mlp, size_t n, const double *X,
                          const int *labels, const double *p, double *R_diag,
                          double *R_cross)
{
    const struct pnd_mlp_spec *spec = &mlp->spec;
    size_t L = spec->n_layers, n_hidden = L - 1, max_w = 0, max_d = 0, act_total = 0;
    double *Z[PND_TRAIN_MAX_LAYERS], *A[PND_TRAIN_MAX_LAYERS];   /* (widths[l+1]) */
    double *buf = NULL, *H, *Hprev, *Y, *M, *g, *gprev, *dh;
    int status = PND_OK;

    if (n == 0)
        PND_ERROR(PND_EINVAL, "R_diag and R_cross need at least one sample");
    for (size_t l = 0; l <= L; l++)
        max_w = spec->widths[l] > max_w ? spec->widths[l] : max_w;
    for (size_t l = 0; l < L; l++) {
        max_d = spec->widths[l] > max_d ? spec->widths[l] : max_d;
        act_total += spec->widths[l + 1];
    }
    buf = malloc((2 * act_total + 2 * max_w * max_w + 2 * max_w * max_d + 3 * max_w)
                 * sizeof *buf);
    if (buf == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for the Hessians of R_diag and R_cross");
    {
        double *at = buf;

        for (size_t l = 0; l < L; l++) {
            Z[l] = at;
            at += spec->widths[l + 1];
            A[l] = at;
            at += spec->widths[l + 1];
        }
        H = at;       /* (h_l, h_l) */
        at += max_w * max_w;
        Hprev = at;   /* (h_{l-1}, h_{l-1}) */
        at += max_w * max_w;
        Y = at;       /* (h_l, h_{l-1}) or (h_l, d) */
        at += max_w * max_d;
        M = at;
        at += max_w * max_d;
        g = at;
        at += max_w;
        gprev = at;
        at += max_w;
        dh = at;
    }
    for (size_t l = 0; l < n_hidden; l++)
        R_diag[l] = R_cross[l] = 0;

    for (size_t k = 0; k < n; k++) {
        const double *x = X + k * spec->widths[0];   /* (d) */
        size_t c = spec->widths[L];
        double top, total = 0;

        if (labels[k] < 0 || (size_t) labels[k] >= c) {
            free(buf);
            PND_ERROR(PND_EINVAL, "label %d of sample %zu is outside [0, %zu)", labels[k], k, c);
        }

        /* Clean forward pass. */
        for (size_t l = 0; l < L; l++) {
            size_t h = spec->widths[l + 1], d = spec->widths[l];
            const double *in = l == 0 ? x : A[l - 1];

            memcpy(Z[l], mlp->b[l], h * sizeof(double));
            cblas_dgemv(CblasRowMajor, CblasNoTrans, (int) h, (int) d, 1.0, mlp->W[l],
                        (int) d, in, 1, 1.0, Z[l], 1);
            for (size_t u = 0; u < h; u++)
                A[l][u] = l + 1 < L ? activation_value(spec->act[l], Z[l][u]) : Z[l][u];
        }

        /* Softmax cross-entropy: gradient and Hessian of the logits. */
        top = Z[L - 1][0];
        for (size_t j = 1; j < c; j++)
            top = Z[L - 1][j] > top ? Z[L - 1][j] : top;
        for (size_t j = 0; j < c; j++) {
            gprev[j] = exp(Z[L - 1][j] - top);
            total += gprev[j];
        }
        for (size_t j = 0; j < c; j++)
            g[j] = gprev[j] / total;   /* pi */
        for (size_t u = 0; u < c; u++)
            for (size_t v = 0; v < c; v++)
                H[u * c + v] = (u == v ? g[u] : 0.0) - g[u] * g[v];
        g[labels[k]] -= 1.0;

        /* Back through the layers: from (g, H) of z_m to those of z_{m-1}. */
        for (size_t m = L - 1; m >= 1; m--) {
            size_t hm = spec->widths[m + 1], hp = spec->widths[m];
            enum pnd_activation act = spec->act[m - 1];
            double s2 = p[m - 1] / (1.0 - p[m - 1]);

            cblas_dgemv(CblasRowMajor, CblasTrans, (int) hm, (int) hp, 1.0, mlp->W[m],
                        (int) hp, g, 1, 0.0, dh, 1);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) hm, (int) hp,
                        (int) hm, 1.0, H, (int) hm, mlp->W[m], (int) hp, 0.0, Y, (int) hp);
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int) hp, (int) hp,
                        (int) hm, 1.0, mlp->W[m], (int) hp, Y, (int) hp, 0.0, Hprev,
                        (int) hp);
            for (size_t u = 0; u < hp; u++) {
                double su = activation_slope(act, Z[m - 1][u], A[m - 1][u]);

                for (size_t v = 0; v < hp; v++)
                    Hprev[u * hp + v] *= su * activation_slope(act, Z[m - 1][v], A[m - 1][v]);
                Hprev[u * hp + u] += activation_curvature(act, Z[m - 1][u], A[m - 1][u]) * dh[u];
                gprev[u] = su * dh[u];
            }
            memcpy(H, Hprev, hp * hp * sizeof(double));
            memcpy(g, gprev, hp * sizeof(double));

            /* Terms of hidden layer m - 1, whose input is x or A[m - 2]. */
            {
                size_t l = m - 1, d = spec->widths[l];
                const double *in = l == 0 ? x : A[l - 1];   /* (d) */
                double diag = 0, both = 0;

                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) hp, (int) d,
                            (int) hp, 1.0, H, (int) hp, mlp->W[l], (int) d, 0.0, M, (int) d);
                for (size_t u = 0; u < hp; u++) {
                    const double *w = mlp->W[l] + u * d, *mu = M + u * d;
                    double row = 0;

                    for (size_t i = 0; i < d; i++) {
                        double x2 = in[i] * in[i];

                        row += w[i] * w[i] * x2;
                        both += w[i] * mu[i] * x2;
                    }
                    diag += H[u * hp + u] * row;
                }
                R_diag[l] += 0.5 * s2 * diag;
                R_cross[l] += 0.5 * s2 * (both - diag);
            }
        }
    }
    for (size_t l = 0; l < n_hidden; l++) {
        R_diag[l] /= (double) n;
        R_cross[l] /= (double) n;
        if (!isfinite(R_diag[l]) || !isfinite(R_cross[l]))
            status = pnd_error_set(PND_ENUMERIC, __FILE__, __LINE__,
                                   "R_diag or R_cross of layer %zu is not finite", l + 1);
    }
    free(buf);
    return status;
}
