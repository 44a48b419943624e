/* Statistics for comparing Monte Carlo estimates with analytic values:
 * the z rule, normal and Student t quantiles, confidence-interval coverage,
 * least-squares log-log slopes, and the two-sample Kolmogorov-Smirnov test
 * (derivations in docs/theory.md, "Verification rule"). The mean and
 * variance accumulators are those of pnd/sim.h.
 *
 * Kolmogorov-Smirnov p-value: the asymptotic Kolmogorov distribution
 *   P(D > d) ~ Q(lambda) = 2 sum_{j >= 1} (-1)^(j-1) exp(-2 j^2 lambda^2)
 * with lambda = (sqrt(n_e) + 0.12 + 0.11 / sqrt(n_e)) d and
 * n_e = n m / (n + m), Stephens' small-sample correction.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_fit.h>

#include "pnd/analysis.h"
#include "pnd/error.h"

int
pnd_stats_z_score(double estimate, double se, double exact, double *z)
{
    if (!isfinite(estimate) || !isfinite(exact))
        PND_ERROR(PND_ENUMERIC, "the estimate %g or the exact value %g is not "
                  "finite", estimate, exact);
    if (!(se > 0.0) || !isfinite(se))
        PND_ERROR(PND_EINVAL,
                  "the standard error must be positive and finite, not %g; "
                  "use at least 2 draws", se);
    *z = (estimate - exact) / se;
    return PND_OK;
}

bool
pnd_stats_z_pass(double z)
{
    return fabs(z) <= PND_STATS_Z_MAX;
}

int
pnd_stats_normal_quantile(double prob, double *q)
{
    if (!(prob > 0.0 && prob < 1.0))
        PND_ERROR(PND_EINVAL, "probability %g is outside (0, 1)", prob);
    *q = gsl_cdf_ugaussian_Pinv(prob);
    return PND_OK;
}

int
pnd_stats_t_quantile(double prob, double nu, double *q)
{
    if (!(prob > 0.0 && prob < 1.0))
        PND_ERROR(PND_EINVAL, "probability %g is outside (0, 1)", prob);
    if (!(nu > 0.0))
        PND_ERROR(PND_EINVAL, "degrees of freedom %g must be positive", nu);
    *q = gsl_cdf_tdist_Pinv(prob, nu);
    return PND_OK;
}

int
pnd_stats_interval(double estimate, double se, double level, double *lo,
                   double *hi)
{
    double q;

    if (!(level > 0.0 && level < 1.0))
        PND_ERROR(PND_EINVAL, "confidence level %g is outside (0, 1)", level);
    if (!(se >= 0.0) || !isfinite(se) || !isfinite(estimate))
        PND_ERROR(PND_EINVAL, "invalid estimate %g or standard error %g",
                  estimate, se);
    PND_TRY(pnd_stats_normal_quantile(0.5 + 0.5 * level, &q));
    *lo = estimate - q * se;
    *hi = estimate + q * se;
    return PND_OK;
}

int
pnd_stats_coverage(size_t covered, size_t runs, double level,
                   double *fraction, bool *pass)
{
    if (runs == 0 || covered > runs)
        PND_ERROR(PND_EINVAL, "invalid coverage count %zu of %zu runs",
                  covered, runs);
    if (!(level > 0.0 && level < 1.0))
        PND_ERROR(PND_EINVAL, "confidence level %g is outside (0, 1)", level);
    *fraction = (double) covered / (double) runs;
    *pass = fabs(*fraction - level) <= PND_STATS_COVERAGE_TOL;
    return PND_OK;
}

int
pnd_stats_loglog_slope(const double *x, const double *y, size_t n,
                       double *slope, double *slope_se)
{
    double *lx = NULL, *ly = NULL, c0, c1, cov00, cov01, cov11, sumsq;

    if (n < 3)
        PND_ERROR(PND_EINVAL,
                  "a slope with a standard error needs at least 3 points, "
                  "not %zu", n);
    for (size_t j = 0; j < n; j++)
        if (!(x[j] > 0.0) || !(fabs(y[j]) > 0.0) || !isfinite(x[j])
            || !isfinite(y[j]))
            PND_ERROR(PND_EINVAL,
                      "point %zu (%g, %g) has no logarithm: x must be "
                      "positive and y nonzero and finite", j, x[j], y[j]);

    lx = malloc(n * sizeof *lx);
    ly = malloc(n * sizeof *ly);
    if (lx == NULL || ly == NULL) {
        free(lx);
        free(ly);
        PND_ERROR(PND_ENOMEM, "out of memory for the slope fit");
    }
    for (size_t j = 0; j < n; j++) {
        lx[j] = log(x[j]);
        ly[j] = log(fabs(y[j]));
    }
    /* cov11 is the slope variance estimated from the residual scatter */
    gsl_fit_linear(lx, 1, ly, 1, n, &c0, &c1, &cov00, &cov01, &cov11, &sumsq);
    free(lx);
    free(ly);
    if (!isfinite(c1) || !isfinite(cov11))
        PND_ERROR(PND_ENUMERIC,
                  "the log-log fit failed: are all x values equal?");
    *slope = c1;
    if (slope_se != NULL)
        *slope_se = sqrt(cov11 > 0.0 ? cov11 : 0.0);
    return PND_OK;
}

static int
compare_doubles(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}

/* Q(lambda) of the Kolmogorov distribution. */
static double
kolmogorov_q(double lambda)
{
    double sum = 0.0;

    /* below 0.2 the series converges slowly and Q = 1 to 1e-20 */
    if (lambda < 0.2)
        return 1.0;
    for (int j = 1; j <= 100; j++) {
        double term = exp(-2.0 * j * j * lambda * lambda);

        sum += j % 2 ? term : -term;
        if (term < 1e-17 * sum)
            break;
    }
    sum *= 2.0;
    if (sum < 0.0)
        return 0.0;
    if (sum > 1.0)
        return 1.0;
    return sum;
}

int
pnd_stats_ks_two_sample(const double *x, size_t n, const double *y,
                        size_t m, double *statistic, double *p_value)
{
    double *a, *b, D = 0.0, ne, lambda;
    size_t i = 0, j = 0;

    if (n == 0 || m == 0)
        PND_ERROR(PND_EINVAL, "both samples must be non-empty (sizes %zu, "
                  "%zu)", n, m);
    for (size_t k = 0; k < n; k++)
        if (isnan(x[k]))
            PND_ERROR(PND_ENUMERIC, "value %zu of the first sample is NaN", k);
    for (size_t k = 0; k < m; k++)
        if (isnan(y[k]))
            PND_ERROR(PND_ENUMERIC, "value %zu of the second sample is NaN",
                      k);

    a = malloc(n * sizeof *a);
    b = malloc(m * sizeof *b);
    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        PND_ERROR(PND_ENOMEM, "out of memory for the Kolmogorov-Smirnov test");
    }
    memcpy(a, x, n * sizeof *a);
    memcpy(b, y, m * sizeof *b);
    qsort(a, n, sizeof *a, compare_doubles);
    qsort(b, m, sizeof *b, compare_doubles);

    /* walk both sorted samples; ties advance together so the empirical
     * distribution functions are compared only between distinct values */
    while (i < n && j < m) {
        double v = a[i] <= b[j] ? a[i] : b[j], gap;

        while (i < n && a[i] == v)
            i++;
        while (j < m && b[j] == v)
            j++;
        gap = fabs((double) i / (double) n - (double) j / (double) m);
        if (gap > D)
            D = gap;
    }
    free(a);
    free(b);

    ne = (double) n * (double) m / ((double) n + (double) m);
    lambda = (sqrt(ne) + 0.12 + 0.11 / sqrt(ne)) * D;
    *statistic = D;
    *p_value = kolmogorov_q(lambda);
    return PND_OK;
}
