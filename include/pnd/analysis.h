/* Analytic side: exact moments for quadratic losses, second- and
 * third-order expansions of the expected loss, and ground truths
 * (enumeration of Bernoulli masks, Gauss-Hermite quadrature), plus the
 * statistics used to compare them with Monte Carlo.
 *
 * Every function takes a network (pnd/net.h) and sample k of a data set;
 * the schemes and p come from the network's layers. The formulas and their
 * derivations are in docs/theory.md.
 */
#ifndef PND_ANALYSIS_H
#define PND_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pnd/net.h"

/* Mean and variance of a loss over the mask distribution. */
struct pnd_moments {
    double mean;
    double var;
};

/* Exact E[l] and Var[l] of one sample over the mask distribution for the
 * quadratic models: one masked layer, identity activation, optional
 * readout, squared loss. fixed-mask counts as the distribution of its
 * one-time draw. PND_EINVAL for any other network. */
int pnd_exact_sample_moments(const struct pnd_net *net,
                             const struct pnd_data *data, size_t k,
                             struct pnd_moments *result);

/* Exact moments of the mini-batch loss L = (1/n) sum_k l_k over all samples
 * of data, with a fresh mask per sample and with one mask draw shared by
 * the n samples, for every scheme whatever its own batch semantics. E[L] is
 * the same for both. */
int pnd_exact_batch_moments(const struct pnd_net *net,
                            const struct pnd_data *data,
                            struct pnd_moments *per_sample,
                            struct pnd_moments *shared);

/* Terms of the expansion of E[l] for one sample, summed over masked layers.
 * The Hessians are exact (back-propagated), never finite differences. */
struct pnd_expansion {
    double loss_clean;   /* l(mu): the loss of the unmasked network */
    double R_diag;       /* 1/2 sum_u H_uu S_uu */
    double R_cross;      /* 1/2 sum_{u != v} H_uv S_uv (network's schemes) */
    double order2;       /* loss_clean + R_diag + R_cross */
    double order3;       /* order2 + third-order term (mu3 terms of every
                            Bernoulli scheme; zero for the Gaussian ones) */
    int kink;            /* nonzero when a ReLU layer at or after a masked
                            layer makes the expansion invalid */
};

int pnd_expand_sample(const struct pnd_net *net, const struct pnd_data *data,
                      size_t k, struct pnd_expansion *result);

/* Penalty terms of layer l for one sample as input Dropout with the same p
 * would see them: R_diag and the cross-node term R_cross. The trainer uses
 * these as co-adaptation statistics for every scheme. */
int pnd_expand_layer_dropout_terms(const struct pnd_net *net,
                                   const struct pnd_data *data, size_t k,
                                   size_t layer, double p, double *R_diag,
                                   double *R_cross);

/* Loss of sample k as a function of the pre-activations z (d_out) of the
 * given layer, every other layer clean, with its exact gradient grad (d_out)
 * and Hessian hess (d_out, d_out). z == NULL means the clean
 * pre-activations; loss, grad and hess may each be NULL. */
int pnd_expand_layer_derivatives(const struct pnd_net *net,
                                 const struct pnd_data *data, size_t k,
                                 size_t layer, const double *z, double *loss,
                                 double *grad, double *hess);

/* Derivatives of orders 0 to 3 of t -> loss(z + t v) at t = 0 for the
 * pre-activations of the given layer (z == NULL: clean), exact by Taylor-mode
 * propagation: result[j] = d^j loss / dt^j. v is (d_out). */
int pnd_expand_directional_derivatives(const struct pnd_net *net,
                                       const struct pnd_data *data, size_t k,
                                       size_t layer, const double *z,
                                       const double *v, double result[4]);

/* E[l] and Var[l] by enumeration of every Bernoulli mask of every masked
 * layer (at most 24 mask variables in all; PND_EINVAL otherwise). */
int pnd_enumerate_sample_moments(const struct pnd_net *net,
                                 const struct pnd_data *data, size_t k,
                                 struct pnd_moments *result);

/* E[l] for a network whose only masked layer uses a Gaussian scheme, by
 * tensor Gauss-Hermite quadrature over the h pre-activation noises with
 * n_nodes nodes per dimension (1 to 200; one-dimensional integrals when the
 * covariance is diagonal and the loss separates). gaussian-dropout with
 * d <= h integrates over its d input noises instead. A network with no
 * masked layer gives its clean loss. PND_EINVAL for Bernoulli or several
 * masked layers, or a grid of more than 2^26 points. */
int pnd_quadrature_expected_loss(const struct pnd_net *net,
                                 const struct pnd_data *data, size_t k,
                                 size_t n_nodes, double *result);

/* The same with an error estimate abserr = |Q(n) - Q(n / 2)| from the rules
 * of n and n / 2 nodes (n >= 2), at 2^-h of extra cost. Once the rule
 * converges this overestimates the error of Q(n). Convergence is slow when
 * the noise is wide compared with the activation's scale: a tanh layer with
 * sqrt(S_uu) near 0.7 needed 60 nodes for 1e-10. */
int pnd_quadrature_expected_loss_err(const struct pnd_net *net,
                                     const struct pnd_data *data, size_t k,
                                     size_t n_nodes, double *result,
                                     double *abserr);

/* Losses of sample k at draws first_draw .. first_draw + n_draws - 1 by
 * local reparameterisation: every masked layer must be pernodedrop-gaussian
 * and draws z_u = mu_u + sqrt(S_uu) xi_u, one normal per receiving node,
 * from pnd_rng_derive(seed, (stream, layer, draw, k)). losses is
 * (n_draws). */
int pnd_reparam_sample_losses(const struct pnd_net *net,
                              const struct pnd_data *data, size_t k,
                              uint64_t seed, uint64_t first_draw,
                              size_t n_draws, double *losses);

/* --- statistics (the accumulators are in pnd/sim.h) ---------------------- */

/* A Monte Carlo estimate passes against an exact value when |z| <= 4. */
#define PND_STATS_Z_MAX 4.0
/* A 95% interval passes coverage when it covers in 93% to 97% of runs:
 * about 3 binomial standard errors at 1000 runs. */
#define PND_STATS_COVERAGE_TOL 0.02

/* z = (estimate - exact) / se; PND_EINVAL unless se > 0. */
int pnd_stats_z_score(double estimate, double se, double exact, double *z);
bool pnd_stats_z_pass(double z);

/* Quantiles of the standard normal and of Student's t with nu degrees of
 * freedom at probability prob in (0, 1). */
int pnd_stats_normal_quantile(double prob, double *q);
int pnd_stats_t_quantile(double prob, double nu, double *q);

/* Two-sided normal confidence interval [lo, hi] at level in (0, 1). */
int pnd_stats_interval(double estimate, double se, double level, double *lo,
                       double *hi);

/* Fraction of runs whose interval covered the exact value, and whether it
 * lies within PND_STATS_COVERAGE_TOL of the nominal level. */
int pnd_stats_coverage(size_t covered, size_t runs, double level,
                       double *fraction, bool *pass);

/* Least-squares slope of log|y| against log x over n >= 3 points (x > 0,
 * y != 0), with its standard error from the residual scatter (slope_se may
 * be NULL). */
int pnd_stats_loglog_slope(const double *x, const double *y, size_t n,
                           double *slope, double *slope_se);

/* Two-sample Kolmogorov-Smirnov test of x (n) against y (m): the statistic
 * D = sup |F_x - F_y| and its asymptotic p-value. */
int pnd_stats_ks_two_sample(const double *x, size_t n, const double *y,
                            size_t m, double *statistic, double *p_value);

#endif
