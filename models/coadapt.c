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

    /* Centre each unit; a constant unit becomes an exact zero column. */
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
                cuv = cuv > 1.0 ? 1.0 : cuv < -1.0 ? -1.0 : cuv;
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
