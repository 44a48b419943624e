/* Tests of the simulator. Monte Carlo estimates are set against the exact
 * moments of the quadratic models, enumeration and S, and their intervals
 * are checked for coverage. Gradients are checked by finite differences,
 * results for independence of threads and chunk sizes, and the file
 * readers and pnd sim for their handling of invalid input. */
#include <config.h>

#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <json-c/json.h>

#include "pnd/analysis.h"
#include "pnd/error.h"
#include "pnd/log.h"
#include "pnd/mask.h"
#include "pnd/net.h"
#include "pnd/sim.h"
#include "tests/suites.h"

extern char **environ;

/* Monte Carlo rule of the project: |z| <= 4 standard errors. With about 250
 * comparisons in this suite at fixed seeds, a correct estimator exceeds 4
 * sigma anywhere with probability about 250 * 6.3e-5 = 1.6%. */
#define Z_MAX 4.0
/* Draws of the exact comparisons: enough for the fourth-moment standard
 * error of the variance to be reliable, few enough to keep the suite fast. */
#define CHECK_DRAWS 20000
/* Merging per-chunk moments in another grouping changes only rounding. */
#define CHUNK_TOL 1e-12
/* Central differences of a smooth loss: truncation O(h^2) = 1e-10 and
 * rounding 1e-16 / 1e-5 = 1e-11, so 1e-7 relative is a safe bound. */
#define FD_STEP 1e-5
#define FD_TOL 1e-7

#define TEST_SEED UINT64_C(20261204)

static const enum pnd_scheme all_schemes[] = {
    PND_SCHEME_NONE, PND_SCHEME_DROPOUT, PND_SCHEME_GAUSSIAN_DROPOUT,
    PND_SCHEME_DROPCONNECT, PND_SCHEME_PERNODEDROP,
    PND_SCHEME_PERNODEDROP_GAUSSIAN, PND_SCHEME_FIXED_MASK,
};
#define N_SCHEMES (sizeof all_schemes / sizeof all_schemes[0])

static void
mc_options(struct pnd_mc_options *opt, uint64_t draws, uint64_t seed)
{
    pnd_mc_options_init(opt);
    opt->draws = draws;
    opt->seed = seed;
}

/* A synthetic network of the given model with scheme and p set. */
static void
make_net(enum pnd_model model, size_t d, size_t h, size_t c, size_t n,
         enum pnd_scheme scheme, double p, struct pnd_net **net,
         struct pnd_data **data)
{
    struct pnd_synth_spec spec;

    pnd_synth_spec_init(&spec);
    spec.model = model;
    spec.d = d;
    spec.h[0] = h;
    spec.c = c;
    spec.n = n;
    spec.seed = 11;
    ck_assert_int_eq(pnd_net_synth(&spec, net, data), PND_OK);
    ck_assert_int_eq(pnd_net_set_scheme(*net, scheme, p, TEST_SEED), PND_OK);
}

static double
z_of(double mc, double exact, double se)
{
    return pnd_sim_z_scaled(mc, exact, se, 1.0);
}

/* --- accumulators ------------------------------------------------------- */

START_TEST(test_moment_acc_merge)
{
    /* Adding one by one and merging chunks of 7 agree up to rounding. */
    struct pnd_moment_acc all, merged, part;
    struct pnd_estimate a, b;
    double mean = 0.0, m2 = 0.0;
    const size_t count = 1000;

    pnd_moment_acc_init(&all);
    pnd_moment_acc_init(&merged);
    pnd_moment_acc_init(&part);
    for (size_t i = 0; i < count; i++) {
        double x = sin((double) i) * 3.0 + 1e6;   /* large offset, small spread */

        pnd_moment_acc_add(&all, x);
        pnd_moment_acc_add(&part, x);
        if (part.n == 7 || i + 1 == count) {
            pnd_moment_acc_merge(&merged, &part);
            pnd_moment_acc_init(&part);
        }
        mean += x;
    }
    mean /= (double) count;
    for (size_t i = 0; i < count; i++) {
        double diff = sin((double) i) * 3.0 + 1e6 - mean;

        m2 += diff * diff;
    }
    ck_assert_int_eq(pnd_moment_acc_estimate(&all, &a), PND_OK);
    ck_assert_int_eq(pnd_moment_acc_estimate(&merged, &b), PND_OK);
    ck_assert_double_eq_tol(a.mean, mean, CHUNK_TOL * fabs(mean));
    ck_assert_double_eq_tol(a.var, m2 / (double) (count - 1), 1e-9 * a.var);
    ck_assert_double_eq_tol(b.mean, a.mean, CHUNK_TOL * fabs(mean));
    ck_assert_double_eq_tol(b.var, a.var, 1e-9 * a.var);
    ck_assert_double_eq_tol(b.var_se, a.var_se, 1e-6 * a.var_se);
}
END_TEST

/* --- exact moments ------------------------------------------------------ */

/* Mean, own-mode variance and both batch variances of one network against
 * pnd_exact_batch_moments. */
static void
check_exact(enum pnd_model model, size_t n, enum pnd_scheme scheme, double p)
{
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_mc_options opt;
    struct pnd_estimate own, per_sample, shared;
    struct pnd_moments exact_per, exact_shared;
    bool shares = scheme == PND_SCHEME_DROPCONNECT || scheme == PND_SCHEME_FIXED_MASK;
    double z;

    make_net(model, 6, 4, 3, n, scheme, p, &net, &data);
    mc_options(&opt, CHECK_DRAWS, TEST_SEED + (uint64_t) scheme);
    ck_assert_int_eq(pnd_exact_batch_moments(net, data, &exact_per, &exact_shared),
                     PND_OK);
    ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_OWN, &opt, &own), PND_OK);
    ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_PER_SAMPLE, &opt, &per_sample),
                     PND_OK);
    ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_SHARED, &opt, &shared), PND_OK);

    z = z_of(own.mean, exact_per.mean, own.se);
    ck_assert_msg(fabs(z) <= Z_MAX, "%s %s n=%zu: mean z = %g",
                  pnd_model_name(model), pnd_scheme_name(scheme), n, z);
    z = z_of(own.var, shares ? exact_shared.var : exact_per.var, own.var_se);
    ck_assert_msg(fabs(z) <= Z_MAX, "%s %s n=%zu: own variance z = %g",
                  pnd_model_name(model), pnd_scheme_name(scheme), n, z);
    z = z_of(per_sample.var, exact_per.var, per_sample.var_se);
    ck_assert_msg(fabs(z) <= Z_MAX, "%s %s n=%zu: per-sample variance z = %g",
                  pnd_model_name(model), pnd_scheme_name(scheme), n, z);
    z = z_of(shared.var, exact_shared.var, shared.var_se);
    ck_assert_msg(fabs(z) <= Z_MAX, "%s %s n=%zu: shared variance z = %g",
                  pnd_model_name(model), pnd_scheme_name(scheme), n, z);
    z = z_of(shared.mean, exact_per.mean, shared.se);
    ck_assert_msg(fabs(z) <= Z_MAX, "%s %s n=%zu: shared mean z = %g",
                  pnd_model_name(model), pnd_scheme_name(scheme), n, z);

    pnd_net_free(net);
    pnd_data_free(data);
}

START_TEST(test_exact_linear)
{
    for (size_t s = 0; s < N_SCHEMES; s++) {
        check_exact(PND_MODEL_LINEAR, 1, all_schemes[s], 0.2);
        check_exact(PND_MODEL_LINEAR, 5, all_schemes[s], 0.2);
    }
}
END_TEST

START_TEST(test_exact_readout)
{
    for (size_t s = 0; s < N_SCHEMES; s++) {
        check_exact(PND_MODEL_READOUT, 1, all_schemes[s], 0.3);
        check_exact(PND_MODEL_READOUT, 5, all_schemes[s], 0.3);
    }
}
END_TEST

START_TEST(test_batch_variances_differ)
{
    /* The tests above match the per-sample and the shared variance of a
     * batch each to its own exact value. That means something only when
     * the two exact values differ clearly. */
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_moments per, shared;

    make_net(PND_MODEL_READOUT, 6, 4, 3, 5, PND_SCHEME_PERNODEDROP, 0.3, &net, &data);
    ck_assert_int_eq(pnd_exact_batch_moments(net, data, &per, &shared), PND_OK);
    ck_assert_msg(fabs(per.var - shared.var) > 0.1 * per.var,
                  "per-sample %g and shared %g variances are too close", per.var,
                  shared.var);
    pnd_net_free(net);
    pnd_data_free(data);
}
END_TEST

START_TEST(test_cross_term_readout)
{
    /* For the readout model the expansion is exact, so E[l] under Dropout
     * minus E[l] under PerNodeDrop is Dropout's cross-node term R_cross,
     * and PerNodeDrop's own R_cross is 0. The two Monte Carlo runs are
     * independent, so the difference has se sqrt(se1^2 + se2^2). */
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_mc_options opt;
    struct pnd_estimate dropout, pernodedrop;
    struct pnd_expansion e_dropout, e_pernodedrop;
    double diff, se, z;

    make_net(PND_MODEL_READOUT, 6, 4, 3, 1, PND_SCHEME_DROPOUT, 0.3, &net, &data);
    mc_options(&opt, 4 * CHECK_DRAWS, TEST_SEED);
    ck_assert_int_eq(pnd_expand_sample(net, data, 0, &e_dropout), PND_OK);
    ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_OWN, &opt, &dropout), PND_OK);
    ck_assert_int_eq(pnd_net_set_scheme(net, PND_SCHEME_PERNODEDROP, 0.3, TEST_SEED),
                     PND_OK);
    ck_assert_int_eq(pnd_expand_sample(net, data, 0, &e_pernodedrop), PND_OK);
    opt.seed = TEST_SEED + 1;
    ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_OWN, &opt, &pernodedrop), PND_OK);

    ck_assert_double_eq(e_pernodedrop.R_cross, 0.0);
    ck_assert_double_eq_tol(e_dropout.R_diag, e_pernodedrop.R_diag,
                            1e-12 * fabs(e_dropout.R_diag));
    diff = dropout.mean - pernodedrop.mean;
    se = sqrt(dropout.se * dropout.se + pernodedrop.se * pernodedrop.se);
    z = (diff - e_dropout.R_cross) / se;
    ck_assert_msg(fabs(z) <= Z_MAX, "E_dropout - E_pernodedrop = %g +- %g, R_cross = %g",
                  diff, se, e_dropout.R_cross);
    ck_assert_msg(fabs(e_dropout.R_cross) > Z_MAX * se,
                  "R_cross = %g is too small for this test to see (se %g)",
                  e_dropout.R_cross, se);
    pnd_net_free(net);
    pnd_data_free(data);
}
END_TEST

/* --- enumeration -------------------------------------------------------- */

START_TEST(test_enumeration)
{
    static const enum pnd_scheme schemes[] = {
        PND_SCHEME_DROPOUT, PND_SCHEME_DROPCONNECT, PND_SCHEME_PERNODEDROP
    };

    for (size_t s = 0; s < 3; s++) {
        struct pnd_net *net;
        struct pnd_data *data;
        struct pnd_synth_spec spec;
        struct pnd_mc_options opt;
        struct pnd_estimate est;
        struct pnd_moments exact;
        double z;

        /* A tanh layer of 3 nodes on 4 inputs, softmax over 3 classes:
         * 12 mask variables per connection scheme. */
        pnd_synth_spec_init(&spec);
        spec.model = PND_MODEL_MLP;
        spec.d = 4;
        spec.h[0] = 3;
        spec.c = 3;
        spec.scale = 2.0;
        spec.loss = PND_LOSS_SOFTMAX_XENT;
        spec.seed = 5;
        ck_assert_int_eq(pnd_net_synth(&spec, &net, &data), PND_OK);
        ck_assert_int_eq(pnd_net_set_scheme(net, schemes[s], 0.4, TEST_SEED), PND_OK);
        ck_assert_int_eq(pnd_enumerate_sample_moments(net, data, 0, &exact), PND_OK);
        mc_options(&opt, CHECK_DRAWS, TEST_SEED);
        ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_OWN, &opt, &est), PND_OK);

        z = z_of(est.mean, exact.mean, est.se);
        ck_assert_msg(fabs(z) <= Z_MAX, "%s: enumeration mean z = %g",
                      pnd_scheme_name(schemes[s]), z);
        z = z_of(est.var, exact.var, est.var_se);
        ck_assert_msg(fabs(z) <= Z_MAX, "%s: enumeration variance z = %g",
                      pnd_scheme_name(schemes[s]), z);
        pnd_net_free(net);
        pnd_data_free(data);
    }
}
END_TEST

/* --- coverage ----------------------------------------------------------- */

/* Coverage of the 95% interval mean +- 1.96 se over COVERAGE_RUNS seeds.
 * If the intervals are right, the number of covering runs is
 * Binomial(400, 0.95): mean 380, sd sqrt(400 * 0.95 * 0.05) = 4.36. The
 * band 93-97% is 372 to 388 runs, +-1.8 sd, which a correct estimator
 * meets with probability about 0.93; the seeds are fixed, so the outcome is
 * reproducible. 1000 draws per run keep the normal approximation of the
 * mean (and the error of se) well below the band's width. */
#define COVERAGE_RUNS 400
#define COVERAGE_DRAWS 1000
#define COVERAGE_Z 1.959963984540054
#define COVERAGE_LOW 0.93
#define COVERAGE_HIGH 0.97

START_TEST(test_interval_coverage)
{
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_moments exact;
    size_t covered = 0;
    double fraction;

    make_net(PND_MODEL_READOUT, 6, 4, 2, 1, PND_SCHEME_PERNODEDROP, 0.2, &net, &data);
    ck_assert_int_eq(pnd_exact_sample_moments(net, data, 0, &exact), PND_OK);
    for (uint64_t run = 0; run < COVERAGE_RUNS; run++) {
        struct pnd_mc_options opt;
        struct pnd_estimate est;

        mc_options(&opt, COVERAGE_DRAWS, 1000 + run);
        ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_OWN, &opt, &est), PND_OK);
        if (fabs(est.mean - exact.mean) <= COVERAGE_Z * est.se)
            covered++;
    }
    fraction = (double) covered / COVERAGE_RUNS;
    ck_assert_msg(fraction >= COVERAGE_LOW && fraction <= COVERAGE_HIGH,
                  "95%% intervals covered the exact mean in %.3f of %d runs",
                  fraction, COVERAGE_RUNS);
    pnd_net_free(net);
    pnd_data_free(data);
}
END_TEST

/* --- covariance of pre-activations -------------------------------------- */

static void
check_cov(enum pnd_scheme scheme)
{
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_mc_options opt;
    struct pnd_cov_estimate *cov;
    size_t h = 4;
    double z;

    make_net(PND_MODEL_READOUT, 5, h, 2, 2, scheme, 0.3, &net, &data);
    mc_options(&opt, CHECK_DRAWS, TEST_SEED);
    cov = pnd_cov_estimate_alloc(h);
    ck_assert_ptr_nonnull(cov);
    ck_assert_int_eq(pnd_mc_preact_cov(net, data, 1, 0, &opt, cov), PND_OK);

    for (size_t u = 0; u < h; u++) {
        for (size_t v = 0; v < h; v++) {
            double exact = cov->S_exact[u * h + v];

            if (u != v && pnd_scheme_per_connection(scheme))
                ck_assert_double_eq(exact, 0.0);
            z = pnd_sim_z_scaled(cov->S_mc[u * h + v], exact, cov->S_se[u * h + v],
                          cov->mu_norm2);
            ck_assert_msg(fabs(z) <= Z_MAX, "%s: S[%zu][%zu] z = %g",
                          pnd_scheme_name(scheme), u, v, z);
        }
    }
    z = z_of(cov->trace.mean, cov->trace_exact, cov->trace.se);
    ck_assert_msg(fabs(z) <= Z_MAX, "%s: trace z = %g", pnd_scheme_name(scheme), z);
    z = z_of(cov->offdiag.mean, cov->offdiag_exact, cov->offdiag.se);
    ck_assert_msg(fabs(z) <= Z_MAX, "%s: off-diagonal sum z = %g",
                  pnd_scheme_name(scheme), z);
    if (!pnd_scheme_per_connection(scheme))
        ck_assert_msg(fabs(cov->offdiag_exact) > 0.0,
                      "%s: S should have off-diagonal terms", pnd_scheme_name(scheme));

    pnd_cov_estimate_free(cov);
    pnd_net_free(net);
    pnd_data_free(data);
}

START_TEST(test_preact_cov)
{
    check_cov(PND_SCHEME_DROPOUT);
    check_cov(PND_SCHEME_GAUSSIAN_DROPOUT);
    check_cov(PND_SCHEME_DROPCONNECT);
    check_cov(PND_SCHEME_PERNODEDROP);
    check_cov(PND_SCHEME_PERNODEDROP_GAUSSIAN);
}
END_TEST

/* --- gradients ---------------------------------------------------------- */

START_TEST(test_grad_finite_difference)
{
    /* Two tanh layers and a softmax readout; the mask is fixed by its key,
     * so the masked loss is a smooth function of the weights. */
    struct pnd_synth_spec spec;
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_net_workspace *w;
    struct pnd_mask_key key = {.seed = TEST_SEED, .layer = 0, .step = 3, .sample = 1};
    double *dW[2], loss;

    pnd_synth_spec_init(&spec);
    spec.model = PND_MODEL_MLP;
    spec.n_layers = 2;
    spec.d = 5;
    spec.h[0] = 4;
    spec.h[1] = 3;
    spec.c = 3;
    spec.n = 2;
    spec.loss = PND_LOSS_SOFTMAX_XENT;
    ck_assert_int_eq(pnd_net_synth(&spec, &net, &data), PND_OK);

    for (size_t s = 1; s < N_SCHEMES; s++) {
        ck_assert_int_eq(pnd_net_set_scheme(net, all_schemes[s], 0.3, TEST_SEED),
                         PND_OK);
        w = pnd_net_workspace_alloc(net);
        ck_assert_ptr_nonnull(w);
        for (size_t l = 0; l < 2; l++)
            dW[l] = calloc(net->layers[l].d_out * net->layers[l].d_in, sizeof(double));
        ck_assert_int_eq(pnd_net_grad_sample(net, data, 1, &key, 1.0, w, &loss, dW),
                         PND_OK);

        for (size_t l = 0; l < 2; l++) {
            struct pnd_layer *layer = &net->layers[l];

            for (size_t e = 0; e < layer->d_out * layer->d_in; e += 3) {
                double saved = layer->W[e], plus, minus, fd;

                layer->W[e] = saved + FD_STEP;
                ck_assert_int_eq(pnd_net_loss_sample(net, data, 1, &key, w, &plus), PND_OK);
                layer->W[e] = saved - FD_STEP;
                ck_assert_int_eq(pnd_net_loss_sample(net, data, 1, &key, w, &minus), PND_OK);
                layer->W[e] = saved;
                fd = (plus - minus) / (2.0 * FD_STEP);
                ck_assert_msg(fabs(fd - dW[l][e]) <= FD_TOL * fmax(1.0, fabs(fd)),
                              "%s: dL/dW%zu[%zu] backward %g, finite difference %g",
                              pnd_scheme_name(all_schemes[s]), l + 1, e, dW[l][e], fd);
            }
            free(dW[l]);
        }
        pnd_net_workspace_free(w);
    }
    pnd_net_free(net);
    pnd_data_free(data);
}
END_TEST

START_TEST(test_grad_mean_linear)
{
    /* Linear model, one sample: E[dl/dW] = (mu - t) x^T + s2 W o (x o x)^T,
     * the gradient of the exact E[l]. The squared distance of the Monte
     * Carlo mean from it has expectation tr Cov / N. A bound of 4 times
     * that fails with probability below 5% even if one entry dominates
     * (chi-square with one degree of freedom), and the seed is fixed. */
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_mc_options opt;
    struct pnd_grad_estimate *grad;
    struct pnd_net_workspace *w;
    double dist2 = 0.0, loss;
    const double *x, *mu;

    make_net(PND_MODEL_LINEAR, 5, 3, 3, 1, PND_SCHEME_PERNODEDROP, 0.3, &net, &data);
    mc_options(&opt, CHECK_DRAWS, TEST_SEED);
    grad = pnd_grad_estimate_alloc(net);
    ck_assert_ptr_nonnull(grad);
    ck_assert_int_eq(pnd_mc_grad(net, data, &opt, grad), PND_OK);
    w = pnd_net_workspace_alloc(net);
    ck_assert_int_eq(pnd_net_clean_layer(net, data, 0, 0, w, &x, &mu), PND_OK);
    ck_assert_int_eq(pnd_net_loss_with_masks(net, data, 0, NULL, w, &loss), PND_OK);
    ck_assert_int_eq(pnd_net_clean_layer(net, data, 0, 0, w, &x, &mu), PND_OK);

    for (size_t u = 0; u < 3; u++) {
        for (size_t i = 0; i < 5; i++) {
            double s2 = 0.3 / 0.7;
            double exact = (mu[u] - data->T[u]) * x[i]
                           + s2 * net->layers[0].W[u * 5 + i] * x[i] * x[i];
            double diff = grad->mean[0][u * 5 + i] - exact;

            dist2 += diff * diff;
        }
    }
    ck_assert_msg(grad->tr_cov[0].mean > 0.0, "gradient covariance trace is %g",
                  grad->tr_cov[0].mean);
    ck_assert_msg(dist2 <= 4.0 * grad->tr_cov[0].mean / (double) CHECK_DRAWS,
                  "|mean gradient - exact|^2 = %g, expected about %g", dist2,
                  grad->tr_cov[0].mean / (double) CHECK_DRAWS);
    pnd_net_workspace_free(w);
    pnd_grad_estimate_free(grad);
    pnd_net_free(net);
    pnd_data_free(data);
}
END_TEST

/* --- determinism -------------------------------------------------------- */

START_TEST(test_p_zero_is_clean)
{
    /* With p = 0 every mask value is exactly 1, so every draw gives the
     * clean loss bit for bit and the variance is exactly 0. */
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_net_workspace *w;

    for (size_t s = 0; s < N_SCHEMES; s++) {
        struct pnd_mc_options opt;
        struct pnd_estimate est;
        double clean, masked;
        struct pnd_mask_key key = {.seed = TEST_SEED, .step = 2, .sample = 0};

        make_net(PND_MODEL_READOUT, 6, 4, 2, 1, all_schemes[s], 0.0, &net, &data);
        w = pnd_net_workspace_alloc(net);
        mc_options(&opt, 64, TEST_SEED);
        ck_assert_int_eq(pnd_net_loss_with_masks(net, data, 0, NULL, w, &clean), PND_OK);
        ck_assert_int_eq(pnd_net_loss_sample(net, data, 0, &key, w, &masked), PND_OK);
        ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_OWN, &opt, &est), PND_OK);
        ck_assert_msg(masked == clean, "%s: p = 0 loss %.17g, clean %.17g",
                      pnd_scheme_name(all_schemes[s]), masked, clean);
        ck_assert_msg(est.mean == clean, "%s: p = 0 mean %.17g, clean %.17g",
                      pnd_scheme_name(all_schemes[s]), est.mean, clean);
        ck_assert_double_eq(est.var, 0.0);
        pnd_net_workspace_free(w);
        pnd_net_free(net);
        pnd_data_free(data);
    }
}
END_TEST

/* Every estimator with the given thread count. */
struct all_estimates {
    struct pnd_estimate loss, shared;
    struct pnd_estimate trace, offdiag;
    struct pnd_estimate tr_cov;
    double grad_norm;
};

static void
estimate_all(const struct pnd_net *net, const struct pnd_data *data, int threads,
             uint64_t chunk, struct all_estimates *out)
{
    struct pnd_mc_options opt;
    struct pnd_cov_estimate *cov = pnd_cov_estimate_alloc(net->layers[0].d_out);
    struct pnd_grad_estimate *grad = pnd_grad_estimate_alloc(net);

    memset(out, 0, sizeof *out);
    mc_options(&opt, 5000, TEST_SEED);
    opt.chunk = chunk;
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_OWN, &opt, &out->loss), PND_OK);
    ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_SHARED, &opt, &out->shared), PND_OK);
    ck_assert_int_eq(pnd_mc_preact_cov(net, data, 0, 0, &opt, cov), PND_OK);
    ck_assert_int_eq(pnd_mc_grad(net, data, &opt, grad), PND_OK);
    out->trace = cov->trace;
    out->offdiag = cov->offdiag;
    out->tr_cov = grad->tr_cov[0];
    out->grad_norm = grad->mean_norm[0];
    pnd_cov_estimate_free(cov);
    pnd_grad_estimate_free(grad);
}

START_TEST(test_threads_identical)
{
    struct pnd_net *net;
    struct pnd_data *data;
    struct all_estimates one, two;

    make_net(PND_MODEL_READOUT, 7, 5, 2, 3, PND_SCHEME_PERNODEDROP, 0.25, &net, &data);
    estimate_all(net, data, 1, 300, &one);
    estimate_all(net, data, 2, 300, &two);
    ck_assert_msg(memcmp(&one, &two, sizeof one) == 0,
                  "1 and 2 threads gave different bytes: mean %.17g vs %.17g",
                  one.loss.mean, two.loss.mean);
    pnd_net_free(net);
    pnd_data_free(data);
}
END_TEST

/* A pernodedrop network of the given model with n_layers layers of widths
 * 6, 5, ..., c outputs and n samples of dimension d. */
static void
make_pernodedrop_net_c(enum pnd_model model, size_t d, size_t n_layers,
                       size_t c, size_t n, struct pnd_net **net,
                       struct pnd_data **data)
{
    struct pnd_synth_spec spec;

    pnd_synth_spec_init(&spec);
    spec.model = model;
    spec.n_layers = n_layers;
    spec.d = d;
    for (size_t l = 0; l < n_layers; l++)
        spec.h[l] = 6 - l;
    spec.c = c;
    spec.n = n;
    spec.seed = 11;
    ck_assert_int_eq(pnd_net_synth(&spec, net, data), PND_OK);
    ck_assert_int_eq(pnd_net_set_scheme(*net, PND_SCHEME_PERNODEDROP, 0.2,
                                        TEST_SEED), PND_OK);
}

static void
make_pernodedrop_net(enum pnd_model model, size_t d, size_t n_layers, size_t n,
                     struct pnd_net **net, struct pnd_data **data)
{
    make_pernodedrop_net_c(model, d, n_layers, 2, n, net, data);
}

/* pnd_mc_loss keeps the products of the first layer with the data and a
 * transposed copy of the readout (pnd_net_workspace_fix_input), and
 * computes that layer for four draws at a time. Its estimate must have the
 * bits of the same draws computed one by one through pnd_net_loss_sample
 * on a workspace without those copies. The draws fit in one chunk, so both
 * add them in the same order; their number, 301 = 4 * 75 + 1, leaves a
 * last draw on its own. */
static void
check_loss_matches_uncached(enum pnd_model model, size_t d, size_t n_layers,
                            size_t c, size_t n)
{
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_net_workspace *w;
    struct pnd_mc_options opt;
    struct pnd_estimate mc, plain;
    struct pnd_moment_acc acc;
    uint64_t draws = 301;

    make_pernodedrop_net_c(model, d, n_layers, c, n, &net, &data);
    mc_options(&opt, draws, TEST_SEED);
    opt.threads = 1;
    ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_OWN, &opt, &mc), PND_OK);

    w = pnd_net_workspace_alloc(net);
    ck_assert_ptr_nonnull(w);
    pnd_moment_acc_init(&acc);
    for (uint64_t j = 0; j < draws; j++) {
        double sum = 0.0;

        for (size_t k = 0; k < data->n; k++) {
            struct pnd_mask_key key = {
                .seed = TEST_SEED, .layer = 0, .step = j, .sample = k
            };
            double loss;

            ck_assert_int_eq(pnd_net_loss_sample(net, data, k, &key, w, &loss),
                             PND_OK);
            sum += loss;
        }
        pnd_moment_acc_add(&acc, sum / (double) data->n);
    }
    ck_assert_int_eq(pnd_moment_acc_estimate(&acc, &plain), PND_OK);
    ck_assert_msg(memcmp(&mc.mean, &plain.mean, sizeof mc.mean) == 0
                  && memcmp(&mc.var, &plain.var, sizeof mc.var) == 0,
                  "model %d: cached mean %.17g var %.17g, uncached %.17g %.17g",
                  (int) model, mc.mean, mc.var, plain.mean, plain.var);
    pnd_net_workspace_free(w);
    pnd_net_free(net);
    pnd_data_free(data);
}

START_TEST(test_loss_product_cache)
{
    /* c = 10 and 17 take the readout's 16-, 8- and 4-row passes. */
    check_loss_matches_uncached(PND_MODEL_READOUT, 37, 1, 2, 1);
    check_loss_matches_uncached(PND_MODEL_READOUT, 64, 1, 2, 3);
    check_loss_matches_uncached(PND_MODEL_READOUT, 70, 1, 10, 1);
    check_loss_matches_uncached(PND_MODEL_READOUT, 130, 1, 17, 2);
    check_loss_matches_uncached(PND_MODEL_MLP, 19, 2, 2, 2);
    check_loss_matches_uncached(PND_MODEL_MLP, 19, 2, 10, 2);
}
END_TEST

/* pnd_mc_preact_cov keeps the products of the layer with its clean input.
 * The trace of its covariance must have the bits of the same draws made
 * through pnd_layer_forward on a workspace without that cache. */
static void
check_cov_matches_uncached(enum pnd_model model, size_t d, size_t layer)
{
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_net_workspace *w;
    struct pnd_mask_workspace *mask_w;
    struct pnd_mc_options opt;
    struct pnd_cov_estimate *cov;
    struct pnd_estimate plain;
    struct pnd_moment_acc acc;
    const struct pnd_layer *L;
    const double *input, *mu;
    double *z;
    size_t k = 1, h;
    uint64_t draws = 300;

    make_pernodedrop_net(model, d, layer + 1, 2, &net, &data);
    L = &net->layers[layer];
    h = L->d_out;
    mc_options(&opt, draws, TEST_SEED);
    opt.threads = 1;
    cov = pnd_cov_estimate_alloc(h);
    ck_assert_ptr_nonnull(cov);
    ck_assert_int_eq(pnd_mc_preact_cov(net, data, k, layer, &opt, cov), PND_OK);

    w = pnd_net_workspace_alloc(net);
    mask_w = pnd_mask_workspace_alloc(h, L->d_in);
    z = malloc(h * sizeof *z);
    ck_assert(w && mask_w && z);
    ck_assert_int_eq(pnd_net_clean_layer(net, data, k, layer, w, &input, &mu),
                     PND_OK);
    pnd_moment_acc_init(&acc);
    for (uint64_t j = 0; j < draws; j++) {
        struct pnd_mask_key key = {
            .seed = TEST_SEED, .layer = layer, .step = j, .sample = k
        };
        double trace = 0.0;

        ck_assert_int_eq(pnd_layer_forward(&L->mask, &key, 1, h, L->d_in, L->W,
                                           L->b, input, z, mask_w), PND_OK);
        for (size_t u = 0; u < h; u++)
            trace += (z[u] - mu[u]) * (z[u] - mu[u]);
        pnd_moment_acc_add(&acc, trace);
    }
    ck_assert_int_eq(pnd_moment_acc_estimate(&acc, &plain), PND_OK);
    ck_assert_msg(memcmp(&cov->trace.mean, &plain.mean, sizeof plain.mean) == 0
                  && memcmp(&cov->trace.var, &plain.var, sizeof plain.var) == 0,
                  "layer %zu: cached trace mean %.17g, uncached %.17g", layer,
                  cov->trace.mean, plain.mean);
    free(z);
    pnd_mask_workspace_free(mask_w);
    pnd_net_workspace_free(w);
    pnd_cov_estimate_free(cov);
    pnd_net_free(net);
    pnd_data_free(data);
}

START_TEST(test_cov_product_cache)
{
    check_cov_matches_uncached(PND_MODEL_READOUT, 37, 0);
    check_cov_matches_uncached(PND_MODEL_MLP, 19, 1);
}
END_TEST

START_TEST(test_chunk_size)
{
    struct pnd_net *net;
    struct pnd_data *data;
    struct all_estimates a, b;

    make_net(PND_MODEL_READOUT, 7, 5, 2, 3, PND_SCHEME_DROPOUT, 0.25, &net, &data);
    estimate_all(net, data, 2, 300, &a);
    estimate_all(net, data, 2, 1024, &b);
    ck_assert_double_eq_tol(a.loss.mean, b.loss.mean, CHUNK_TOL * fabs(a.loss.mean));
    ck_assert_double_eq_tol(a.loss.var, b.loss.var, 1e-10 * a.loss.var);
    ck_assert_double_eq_tol(a.shared.var, b.shared.var, 1e-10 * a.shared.var);
    ck_assert_double_eq_tol(a.trace.mean, b.trace.mean, 1e-10 * a.trace.mean);
    ck_assert_double_eq_tol(a.tr_cov.mean, b.tr_cov.mean, 1e-10 * a.tr_cov.mean);
    ck_assert_double_eq_tol(a.grad_norm, b.grad_norm, 1e-10 * a.grad_norm);
    pnd_net_free(net);
    pnd_data_free(data);
}
END_TEST

/* --- pnd_sim_run --------------------------------------------------------- */

static size_t
count_lines(const char *path)
{
    FILE *fp = fopen(path, "r");
    size_t lines = 0;
    int ch;

    ck_assert_ptr_nonnull(fp);
    while ((ch = fgetc(fp)) != EOF)
        if (ch == '\n')
            lines++;
    fclose(fp);
    return lines;
}

START_TEST(test_sim_run_outputs)
{
    char dir[] = "/tmp/pnd-sim-XXXXXX", tsv[4096], json[4096];
    struct pnd_sim_config cfg;
    struct pnd_sim_summary summary;
    json_object *root, *rows, *sum, *value;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(tsv, sizeof tsv, "%s/sim.tsv", dir);
    snprintf(json, sizeof json, "%s/sim.json", dir);
    pnd_sim_config_init(&cfg);
    ck_assert_int_eq(pnd_sim_config_set(&cfg, "scheme", "all", "test"), PND_OK);
    ck_assert_int_eq(pnd_sim_config_set(&cfg, "n", "2", "test"), PND_OK);
    ck_assert_int_eq(pnd_sim_config_set(&cfg, "draws", "3000", "test"), PND_OK);
    ck_assert_int_eq(pnd_sim_config_set(&cfg, "grad-draws", "200", "test"), PND_OK);
    ck_assert_int_eq(pnd_sim_config_set(&cfg, "check", "true", "test"), PND_OK);
    pnd_log_set_level(PND_LOG_ERROR);    /* no verdict lines in the test log */
    ck_assert_int_eq(pnd_sim_run(&cfg, tsv, json, &summary), PND_OK);

    /* Seven schemes with one exact row each. Every case compares six
     * values: the mean, the own-mode variance, both batch variances and
     * the two covariance sums. */
    ck_assert_uint_eq(summary.cases, PND_SCHEME_COUNT);
    ck_assert_uint_eq(summary.rows, PND_SCHEME_COUNT);
    ck_assert_uint_eq(summary.exact_failed, 0);
    ck_assert_uint_eq(summary.exact_checks, 6 * PND_SCHEME_COUNT);
    ck_assert_uint_eq(count_lines(tsv), 1 + PND_SCHEME_COUNT);

    root = json_object_from_file(json);
    ck_assert_ptr_nonnull(root);
    ck_assert(json_object_object_get_ex(root, "rows", &rows));
    ck_assert_uint_eq(json_object_array_length(rows), PND_SCHEME_COUNT);
    ck_assert(json_object_object_get_ex(root, "summary", &sum));
    ck_assert(json_object_object_get_ex(sum, "exact_checks", &value));
    ck_assert_int_eq(json_object_get_int64(value), (int64_t) summary.exact_checks);
    json_object_put(root);

    pnd_sim_config_free(&cfg);
    unlink(tsv);
    unlink(json);
    rmdir(dir);
}
END_TEST

/* --- files -------------------------------------------------------------- */

static void
data_path(char *path, size_t size, const char *name)
{
    snprintf(path, size, "%s/%s", pnd_test_data_dir(), name);
}

START_TEST(test_read_network_file)
{
    char path[4096];
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_mc_options opt;
    struct pnd_estimate est;
    struct pnd_moments per, shared;
    double z;

    data_path(path, sizeof path, "sim_net.ini");
    ck_assert_int_eq(pnd_net_read(path, &net, &data), PND_OK);
    ck_assert_uint_eq(net->n_layers, 1);
    ck_assert_uint_eq(net->layers[0].d_in, 5);
    ck_assert_uint_eq(net->layers[0].d_out, 3);
    ck_assert_uint_eq(net->n_out, 2);
    ck_assert_uint_eq(data->n, 4);
    ck_assert_int_eq(net->layers[0].mask.scheme, PND_SCHEME_PERNODEDROP);
    ck_assert_double_eq(net->layers[0].mask.p, 0.2);
    /* Values written by the fixture generator: text at full precision,
     * the readout as float32. */
    ck_assert_double_eq(net->layers[0].W[0], 0.00055014130601612713);
    ck_assert_double_eq_tol(net->layers[0].b[1], -0.13442145, 1e-8);
    ck_assert_double_eq(net->V[0], (double) -1.0976715f);
    ck_assert_double_eq_tol(net->e[1], -0.01869309, 1e-8);
    ck_assert_double_eq_tol(data->T[1], 0.11935403, 1e-8);

    mc_options(&opt, CHECK_DRAWS, TEST_SEED);
    ck_assert_int_eq(pnd_exact_batch_moments(net, data, &per, &shared), PND_OK);
    ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_OWN, &opt, &est), PND_OK);
    z = z_of(est.mean, per.mean, est.se);
    ck_assert_msg(fabs(z) <= Z_MAX, "network file: mean z = %g", z);
    pnd_net_free(net);
    pnd_data_free(data);
}
END_TEST

START_TEST(test_read_softmax_file)
{
    /* Labels from a one-column text file; 5 Dropout variables per sample,
     * so enumeration gives the exact E[l] of each sample. */
    char path[4096];
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_mc_options opt;
    static const int labels[4] = {0, 2, 1, 2};

    data_path(path, sizeof path, "sim_net_softmax.ini");
    ck_assert_int_eq(pnd_net_read(path, &net, &data), PND_OK);
    ck_assert_int_eq(net->loss, PND_LOSS_SOFTMAX_XENT);
    ck_assert_ptr_null(net->V);
    ck_assert_uint_eq(net->n_out, 3);
    ck_assert_ptr_nonnull(data->labels);
    for (size_t k = 0; k < 4; k++)
        ck_assert_int_eq(data->labels[k], labels[k]);

    mc_options(&opt, CHECK_DRAWS, TEST_SEED);
    for (size_t k = 0; k < 4; k++) {
        struct pnd_data one = pnd_data_sample_view(data, k);
        struct pnd_moments exact;
        struct pnd_estimate est;
        double z;

        ck_assert_int_eq(pnd_enumerate_sample_moments(net, &one, 0, &exact), PND_OK);
        ck_assert_int_eq(pnd_mc_loss(net, &one, PND_BATCH_OWN, &opt, &est), PND_OK);
        z = z_of(est.mean, exact.mean, est.se);
        ck_assert_msg(fabs(z) <= Z_MAX, "softmax file, sample %zu: mean z = %g", k, z);
        z = z_of(est.var, exact.var, est.var_se);
        ck_assert_msg(fabs(z) <= Z_MAX, "softmax file, sample %zu: variance z = %g", k, z);
    }
    pnd_net_free(net);
    pnd_data_free(data);
}
END_TEST

START_TEST(test_preact_cov_second_layer)
{
    /* Layer 2 of a tanh network, masked alone, against S at its clean
     * input h_1: the full matrix for Dropout. */
    struct pnd_synth_spec spec;
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_mc_options opt;
    struct pnd_cov_estimate *cov;
    size_t h = 3;
    double z;

    pnd_synth_spec_init(&spec);
    spec.model = PND_MODEL_MLP;
    spec.n_layers = 2;
    spec.d = 4;
    spec.h[0] = 5;
    spec.h[1] = h;
    ck_assert_int_eq(pnd_net_synth(&spec, &net, &data), PND_OK);
    ck_assert_int_eq(pnd_net_set_scheme(net, PND_SCHEME_DROPOUT, 0.3, TEST_SEED), PND_OK);
    mc_options(&opt, CHECK_DRAWS, TEST_SEED);
    cov = pnd_cov_estimate_alloc(h);
    ck_assert_ptr_nonnull(cov);
    ck_assert_int_eq(pnd_mc_preact_cov(net, data, 0, 1, &opt, cov), PND_OK);
    for (size_t e = 0; e < h * h; e++) {
        z = pnd_sim_z_scaled(cov->S_mc[e], cov->S_exact[e], cov->S_se[e], cov->mu_norm2);
        ck_assert_msg(fabs(z) <= Z_MAX, "layer 2: S entry %zu z = %g", e, z);
    }
    ck_assert_msg(fabs(cov->offdiag_exact) > 0.0, "layer 2: Dropout S has no off-diagonal terms");
    ck_assert_int_eq(pnd_mc_preact_cov(net, data, 0, 2, &opt, cov), PND_EINVAL);
    pnd_cov_estimate_free(cov);
    pnd_net_free(net);
    pnd_data_free(data);
}
END_TEST

/* --- invalid input ------------------------------------------------------ */

START_TEST(test_invalid_p)
{
    struct pnd_net *net;
    struct pnd_data *data;

    make_net(PND_MODEL_LINEAR, 3, 2, 2, 1, PND_SCHEME_NONE, 0.0, &net, &data);
    ck_assert_int_eq(pnd_net_set_scheme(net, PND_SCHEME_PERNODEDROP, 1.0, 1), PND_EINVAL);
    ck_assert_int_eq(pnd_net_set_scheme(net, PND_SCHEME_PERNODEDROP, -0.1, 1), PND_EINVAL);
    ck_assert_int_eq(pnd_net_set_scheme(net, PND_SCHEME_DROPOUT, NAN, 1), PND_EINVAL);
    ck_assert_int_eq(pnd_net_set_scheme(net, PND_SCHEME_COUNT, 0.1, 1), PND_EINVAL);
    pnd_net_free(net);
    pnd_data_free(data);
}
END_TEST

START_TEST(test_invalid_dimensions)
{
    size_t widths[2] = {4, 0};
    struct pnd_synth_spec spec;
    struct pnd_net *net;
    struct pnd_data *data;
    struct pnd_mc_options opt;
    struct pnd_estimate est;

    ck_assert_ptr_null(pnd_net_alloc(1, widths, 0, PND_LOSS_SQUARED));
    ck_assert_int_eq(pnd_error_status(), PND_EINVAL);
    ck_assert_ptr_null(pnd_data_alloc(0, 3, 1, 0));

    pnd_synth_spec_init(&spec);
    spec.d = 0;
    ck_assert_int_eq(pnd_net_synth(&spec, &net, &data), PND_EINVAL);

    /* Inputs of 3 columns for a network that takes 4. */
    make_net(PND_MODEL_LINEAR, 4, 2, 2, 1, PND_SCHEME_PERNODEDROP, 0.1, &net, &data);
    data->d = 3;
    mc_options(&opt, 10, 1);
    ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_OWN, &opt, &est), PND_EINVAL);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "3 columns"));
    data->d = 4;
    opt.draws = 1;
    ck_assert_int_eq(pnd_mc_loss(net, data, PND_BATCH_OWN, &opt, &est), PND_EINVAL);
    pnd_net_free(net);
    pnd_data_free(data);
}
END_TEST

static void
expect_matrix_error(const char *name, const char *fragment)
{
    char path[4096];
    size_t rows, cols;
    double *values;

    data_path(path, sizeof path, name);
    ck_assert_int_eq(pnd_matrix_read(path, &rows, &cols, &values), PND_EFORMAT);
    ck_assert_msg(strstr(pnd_error_message(), fragment) != NULL,
                  "%s: message '%s' lacks '%s'", name, pnd_error_message(), fragment);
    ck_assert_msg(strstr(pnd_error_message(), name) != NULL,
                  "%s: message '%s' does not name the file", name, pnd_error_message());
}

/* Write text to a new file in a temporary directory; returns its path. */
static void
write_temp(char *dir, char *path, size_t size, const char *name,
           const void *bytes, size_t len)
{
    FILE *fp;

    snprintf(path, size, "%s/%s", dir, name);
    fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(bytes, 1, len, fp), len);
    ck_assert_int_eq(fclose(fp), 0);
}

START_TEST(test_malformed_matrices)
{
    static const char bad_number[] = "1 2 3\n4 x5 6\n";
    static const char npy_truncated[] =
        "\x93NUMPY\x01\x00\x3c\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }\n"
        "\x00\x00\x00\x00\x00\x00\xf0\x3f";
    static const char npy_bad_header[] =
        "\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'}\n";
    char dir[] = "/tmp/pnd-sim-XXXXXX", path[4096];
    size_t rows, cols;
    double *values;

    expect_matrix_error("sim_bad_ragged.txt", ":4: row has 2 values");
    expect_matrix_error("sim_bad_fortran.npy", "Fortran order");
    expect_matrix_error("sim_bad_dtype.npy", "'<i8'");

    ck_assert_ptr_nonnull(mkdtemp(dir));
    write_temp(dir, path, sizeof path, "number.txt", bad_number, strlen(bad_number));
    ck_assert_int_eq(pnd_matrix_read(path, &rows, &cols, &values), PND_EFORMAT);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "number.txt:2: invalid number 'x5'"));
    unlink(path);

    write_temp(dir, path, sizeof path, "short.npy", npy_truncated,
               sizeof npy_truncated - 1);
    ck_assert_int_eq(pnd_matrix_read(path, &rows, &cols, &values), PND_EFORMAT);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "byte offset"));
    unlink(path);

    write_temp(dir, path, sizeof path, "header.npy", npy_bad_header,
               sizeof npy_bad_header - 1);
    ck_assert_int_eq(pnd_matrix_read(path, &rows, &cols, &values), PND_EFORMAT);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "invalid .npy header"));
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_invalid_network_file)
{
    char path[4096];
    struct pnd_net *net;
    struct pnd_data *data;

    data_path(path, sizeof path, "sim_bad_scheme.ini");
    ck_assert_int_eq(pnd_net_read(path, &net, &data), PND_EINVAL);
    ck_assert_ptr_null(net);
    ck_assert_msg(strstr(pnd_error_message(), "sim_bad_scheme.ini:9: [layer1] scheme") != NULL,
                  "message: %s", pnd_error_message());
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "pernodedrop"));
}
END_TEST

/* Run $PND_BUILDDIR/pnd with args, output discarded; returns the exit code. */
static int
run_pnd(char **args)
{
    const char *builddir = getenv("PND_BUILDDIR");
    char program[4096];
    posix_spawn_file_actions_t actions;
    pid_t pid;
    int status;

    snprintf(program, sizeof program, "%s/pnd", builddir && builddir[0] ? builddir : ".");
    args[0] = program;
    ck_assert_int_eq(posix_spawn_file_actions_init(&actions), 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    ck_assert_msg(posix_spawn(&pid, program, &actions, NULL, args, environ) == 0,
                  "cannot run %s: set PND_BUILDDIR to the build folder", program);
    posix_spawn_file_actions_destroy(&actions);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

START_TEST(test_cli_exit_codes)
{
    char ini[4096];
    char *p_high[] = {NULL, "sim", "--p", "1.5", "--draws", "10", NULL};
    char *scheme[] = {NULL, "sim", "--scheme", "perdropnode", "--draws", "10", NULL};
    char *zero_d[] = {NULL, "sim", "--d", "0", "--draws", "10", NULL};
    char *bad_file[] = {NULL, "sim", "--net", ini, "--draws", "10", NULL};
    char *good[] = {NULL, "sim", "--draws", "200", "--grad-draws", "0", "--check",
                    "-o", "/dev/null", NULL};

    data_path(ini, sizeof ini, "sim_bad_scheme.ini");
    ck_assert_int_eq(run_pnd(p_high), 2);
    ck_assert_int_eq(run_pnd(scheme), 2);
    ck_assert_int_eq(run_pnd(zero_d), 2);
    ck_assert_int_eq(run_pnd(bad_file), 2);
    ck_assert_int_eq(run_pnd(good), 0);
}
END_TEST

Suite *
pnd_sim_suite(void)
{
    Suite *s = suite_create("sim");
    TCase *core = tcase_create("Core");
    TCase *limits = tcase_create("Limits");

    tcase_set_timeout(core, 60);
    tcase_add_test(core, test_moment_acc_merge);
    tcase_add_test(core, test_exact_linear);
    tcase_add_test(core, test_exact_readout);
    tcase_add_test(core, test_batch_variances_differ);
    tcase_add_test(core, test_cross_term_readout);
    tcase_add_test(core, test_enumeration);
    tcase_add_test(core, test_interval_coverage);
    tcase_add_test(core, test_preact_cov);
    tcase_add_test(core, test_grad_finite_difference);
    tcase_add_test(core, test_loss_product_cache);
    tcase_add_test(core, test_cov_product_cache);
    tcase_add_test(core, test_grad_mean_linear);
    tcase_add_test(core, test_p_zero_is_clean);
    tcase_add_test(core, test_threads_identical);
    tcase_add_test(core, test_chunk_size);
    tcase_add_test(core, test_read_network_file);
    tcase_add_test(core, test_read_softmax_file);
    tcase_add_test(core, test_preact_cov_second_layer);
    tcase_add_test(core, test_sim_run_outputs);
    suite_add_tcase(s, core);

    tcase_add_test(limits, test_invalid_p);
    tcase_add_test(limits, test_invalid_dimensions);
    tcase_add_test(limits, test_malformed_matrices);
    tcase_add_test(limits, test_invalid_network_file);
    tcase_add_test(limits, test_cli_exit_codes);
    suite_add_tcase(s, limits);
    return s;
}
