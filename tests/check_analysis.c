/* Analytic module: exact quadratic-form moments against enumeration and
 * quadrature, exact Hessians and third derivatives against finite
 * differences, the accuracy of the expansion as p shrinks, local
 * reparameterisation against per-weight sampling, statistics helpers.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnd/analysis.h"
#include "pnd/error.h"
#include "pnd/mask.h"
#include "pnd/net.h"
#include "pnd/rng.h"
#include "tests/suites.h"

/* Enumeration and the exact formulas evaluate the same finite sums in two
 * different orders: at most a few hundred roundings of relative size 2^-53
 * (the 2^K terms are added pairwise, so about K roundings per term, and the
 * variance cancels at most two digits against the shifted second moment),
 * far below 1e-12. */
#define TOL_ENUM_EXACT 1e-12
/* Gauss-Hermite with n nodes integrates polynomials of degree 2n - 1
 * exactly; the quadratic models' losses have degree 2, so only the rounding
 * of the nodes and weights (about 1e-14 relative in GSL's tables) remains. */
#define TOL_QUAD_EXACT 1e-10
/* Central differences of an exact gradient with step 1e-5: truncation
 * about step^2 |l'''| ~ 1e-10, rounding about 1e-16 / step ~ 1e-11, so 1e-7
 * relative to the largest entry leaves a wide margin but still catches any
 * wrong term (those are of order 1). */
#define FD_STEP 1e-5
#define TOL_FD 1e-7
/* Exact algebra evaluated two ways (Hessian contraction against Taylor
 * coefficients, or the same formula on one-sample batches). */
#define TOL_ALGEBRA 1e-12

/* Stream coordinate for the test's own weights and inputs ("test"). */
#define TEST_STREAM 0x74657374u

/* --- fixtures ------------------------------------------------------------ */

static void
fill_normal(uint64_t seed, uint64_t role, double sd, double *out, size_t n)
{
    uint64_t coords[2] = { TEST_STREAM, role };
    pnd_pcg64 r;

    pnd_rng_derive(&r, seed, coords, 2);
    for (size_t j = 0; j < n; j++)
        out[j] = sd * pnd_rng_normal(&r);
}

/* A network of n_layers layers of the given widths (widths[0] = d), with
 * readout of c rows when c > 0, every layer with activation act and the
 * given scheme, normal weights of standard deviation scale / sqrt(d_in). */
static struct pnd_net *
net_make(size_t n_layers, const size_t *widths, size_t c,
         enum pnd_loss loss, enum pnd_activation act,
         enum pnd_scheme scheme, double p, double scale, uint64_t seed)
{
    struct pnd_net *net = pnd_net_alloc(n_layers, widths, c, loss);

    ck_assert_ptr_nonnull(net);
    for (size_t l = 0; l < n_layers; l++) {
        struct pnd_layer *layer = &net->layers[l];
        double sd = scale / sqrt((double) layer->d_in);

        fill_normal(seed, 10 * l + 1, sd, layer->W,
                    layer->d_in * layer->d_out);
        fill_normal(seed, 10 * l + 2, 0.3, layer->b, layer->d_out);
        layer->act = act;
        layer->mask.scheme = scheme;
        layer->mask.p = p;
    }
    if (c > 0) {
        size_t h = widths[n_layers];

        fill_normal(seed, 1001, 1.0 / sqrt((double) h), net->V, c * h);
        fill_normal(seed, 1002, 0.3, net->e, c);
    }
    return net;
}

static struct pnd_data *
data_make(size_t n, size_t d, size_t c, enum pnd_loss loss, uint64_t seed)
{
    struct pnd_data *data =
        pnd_data_alloc(n, d, c, loss == PND_LOSS_SOFTMAX_XENT);

    ck_assert_ptr_nonnull(data);
    fill_normal(seed, 2001, 1.0, data->X, n * d);
    if (data->T != NULL)
        fill_normal(seed, 2002, 1.0, data->T, n * c);
    if (data->labels != NULL)
        for (size_t k = 0; k < n; k++)
            data->labels[k] = (int) ((k * 7 + seed) % c);
    return data;
}

static void
set_scheme(struct pnd_net *net, enum pnd_scheme scheme, double p)
{
    for (size_t l = 0; l < net->n_layers; l++) {
        net->layers[l].mask.scheme = scheme;
        net->layers[l].mask.p = p;
    }
}

static void
assert_rel(double got, double expected, double tol)
{
    double scale = fabs(expected) > 1e-300 ? fabs(expected) : 1.0;

    ck_assert_msg(fabs(got - expected) <= tol * scale,
                  "got %.17g, expected %.17g (relative error %.3g > %.3g)",
                  got, expected, fabs(got - expected) / scale, tol);
}

static const enum pnd_scheme bernoulli_schemes[] = {
    PND_SCHEME_DROPOUT, PND_SCHEME_DROPCONNECT, PND_SCHEME_PERNODEDROP,
    PND_SCHEME_FIXED_MASK
};

static const enum pnd_scheme all_schemes[] = {
    PND_SCHEME_NONE, PND_SCHEME_DROPOUT, PND_SCHEME_GAUSSIAN_DROPOUT,
    PND_SCHEME_DROPCONNECT, PND_SCHEME_PERNODEDROP,
    PND_SCHEME_PERNODEDROP_GAUSSIAN, PND_SCHEME_FIXED_MASK
};

#define COUNT(a) (sizeof (a) / sizeof (a)[0])

/* --- exact moments ------------------------------------------------------- */

START_TEST(test_exact_matches_enumeration)
{
    /* linear (no readout) and readout models, 3 inputs, 3 nodes: 9
     * variables per connection, 3 for dropout */
    static const double ps[] = { 0.1, 0.5, 0.8 };
    size_t widths[2] = { 3, 3 };

    for (int with_readout = 0; with_readout < 2; with_readout++) {
        size_t c = with_readout ? 2 : 0;
        struct pnd_net *net = net_make(1, widths, c, PND_LOSS_SQUARED,
                                       PND_ACT_IDENTITY, PND_SCHEME_NONE, 0.0,
                                       1.5, 11);
        struct pnd_data *data = data_make(3, 3, net->n_out, PND_LOSS_SQUARED,
                                          12);

        for (size_t s = 0; s < COUNT(bernoulli_schemes); s++)
            for (size_t j = 0; j < COUNT(ps); j++)
                for (size_t k = 0; k < data->n; k++) {
                    struct pnd_moments exact, enumerated;

                    set_scheme(net, bernoulli_schemes[s], ps[j]);
                    ck_assert_int_eq(pnd_exact_sample_moments(net, data, k,
                                                              &exact), PND_OK);
                    ck_assert_int_eq(pnd_enumerate_sample_moments(
                                         net, data, k, &enumerated), PND_OK);
                    assert_rel(enumerated.mean, exact.mean, TOL_ENUM_EXACT);
                    assert_rel(enumerated.var, exact.var, TOL_ENUM_EXACT);
                    ck_assert_double_gt(exact.var, 0.0);
                }
        pnd_data_free(data);
        pnd_net_free(net);
    }
}
END_TEST

/* Mean and variance of the batch loss by brute force over every mask of a
 * one-layer network: fresh masks per sample (products of the per-sample
 * distributions are not enumerated, the l_k are independent by
 * construction) or one shared mask. */
static void
shared_batch_by_enumeration(const struct pnd_net *net,
                            const struct pnd_data *data,
                            struct pnd_moments *result)
{
    const struct pnd_layer *layer = &net->layers[0];
    size_t h = layer->d_out, d = layer->d_in;
    bool per_connection = pnd_scheme_per_connection(layer->mask.scheme);
    size_t K = per_connection ? h * d : d;
    double p = layer->mask.p, keep = 1.0 / (1.0 - p);
    double *M = malloc(h * d * sizeof *M);
    const double *masks[1] = { M };
    struct pnd_net_workspace *ws = pnd_net_workspace_alloc(net);
    double s1 = 0.0, s2 = 0.0;

    ck_assert_ptr_nonnull(M);
    ck_assert_ptr_nonnull(ws);
    for (unsigned long bits = 0; bits < (1ul << K); bits++) {
        double w = 1.0, L = 0.0;

        for (size_t u = 0; u < h; u++)
            for (size_t i = 0; i < d; i++) {
                size_t j = per_connection ? u * d + i : i;
                int dropped = (bits >> j) & 1;

                M[u * d + i] = dropped ? 0.0 : keep;
            }
        for (size_t j = 0; j < K; j++)
            w *= (bits >> j) & 1 ? p : 1.0 - p;
        for (size_t k = 0; k < data->n; k++) {
            double loss;

            ck_assert_int_eq(pnd_net_loss_with_masks(net, data, k, masks, ws,
                                                     &loss), PND_OK);
            L += loss / (double) data->n;
        }
        s1 += w * L;
        s2 += w * L * L;
    }
    result->mean = s1;
    result->var = s2 - s1 * s1;
    pnd_net_workspace_free(ws);
    free(M);
}

START_TEST(test_exact_batch_moments)
{
    /* naive sums in the brute force: the variance loses about
     * log10(E[L^2] / Var[L]) digits, so 1e-9 relative */
    const double tol_naive = 1e-9;
    size_t widths[2] = { 2, 3 };
    struct pnd_net *net = net_make(1, widths, 2, PND_LOSS_SQUARED,
                                   PND_ACT_IDENTITY, PND_SCHEME_NONE, 0.0,
                                   1.5, 21);
    struct pnd_data *data = data_make(4, 2, 2, PND_LOSS_SQUARED, 22);
    bool shared_differs = false;

    for (size_t s = 0; s < COUNT(bernoulli_schemes); s++) {
        struct pnd_moments per_sample, shared, brute, one;
        double var_sum = 0.0;

        set_scheme(net, bernoulli_schemes[s], 0.3);
        ck_assert_int_eq(pnd_exact_batch_moments(net, data, &per_sample,
                                                 &shared), PND_OK);
        /* per-sample: (1/n^2) sum_k Var[l_k] */
        for (size_t k = 0; k < data->n; k++) {
            ck_assert_int_eq(pnd_exact_sample_moments(net, data, k, &one),
                             PND_OK);
            var_sum += one.var;
        }
        assert_rel(per_sample.var, var_sum / 16.0, TOL_ALGEBRA);
        shared_batch_by_enumeration(net, data, &brute);
        assert_rel(shared.mean, brute.mean, tol_naive);
        assert_rel(per_sample.mean, brute.mean, tol_naive);
        assert_rel(shared.var, brute.var, tol_naive);
        if (fabs(shared.var - per_sample.var) > 1e-3 * per_sample.var)
            shared_differs = true;
    }
    ck_assert_msg(shared_differs,
                  "the shared-mask variance never differed from the "
                  "per-sample one");
    pnd_data_free(data);
    pnd_net_free(net);
}
END_TEST

START_TEST(test_exact_batch_of_one_sample)
{
    size_t widths[2] = { 4, 3 };
    struct pnd_net *net = net_make(1, widths, 2, PND_LOSS_SQUARED,
                                   PND_ACT_IDENTITY, PND_SCHEME_NONE, 0.0,
                                   1.0, 31);
    struct pnd_data *data = data_make(1, 4, 2, PND_LOSS_SQUARED, 32);

    for (size_t s = 0; s < COUNT(all_schemes); s++) {
        struct pnd_moments per_sample, shared, one;

        set_scheme(net, all_schemes[s], 0.25);
        ck_assert_int_eq(pnd_exact_batch_moments(net, data, &per_sample,
                                                 &shared), PND_OK);
        ck_assert_int_eq(pnd_exact_sample_moments(net, data, 0, &one),
                         PND_OK);
        assert_rel(per_sample.mean, one.mean, TOL_ALGEBRA);
        assert_rel(per_sample.var, one.var, TOL_ALGEBRA);
        assert_rel(shared.mean, one.mean, TOL_ALGEBRA);
        assert_rel(shared.var, one.var, TOL_ALGEBRA);
    }
    pnd_data_free(data);
    pnd_net_free(net);
}
END_TEST

START_TEST(test_linear_mean_same_for_all_schemes)
{
    size_t widths[2] = { 5, 4 };
    struct pnd_net *net = net_make(1, widths, 0, PND_LOSS_SQUARED,
                                   PND_ACT_IDENTITY, PND_SCHEME_NONE, 0.0,
                                   1.0, 41);
    struct pnd_data *data = data_make(2, 5, 4, PND_LOSS_SQUARED, 42);
    struct pnd_moments reference, m;

    set_scheme(net, PND_SCHEME_PERNODEDROP, 0.4);
    ck_assert_int_eq(pnd_exact_sample_moments(net, data, 1, &reference),
                     PND_OK);
    for (size_t s = 1; s < COUNT(all_schemes); s++) {
        set_scheme(net, all_schemes[s], 0.4);
        ck_assert_int_eq(pnd_exact_sample_moments(net, data, 1, &m), PND_OK);
        assert_rel(m.mean, reference.mean, TOL_ALGEBRA);
    }
    /* and the readout model does tell them apart */
    pnd_net_free(net);
    net = net_make(1, widths, 3, PND_LOSS_SQUARED, PND_ACT_IDENTITY,
                   PND_SCHEME_PERNODEDROP, 0.4, 1.0, 41);
    pnd_data_free(data);
    data = data_make(2, 5, 3, PND_LOSS_SQUARED, 42);
    ck_assert_int_eq(pnd_exact_sample_moments(net, data, 1, &reference),
                     PND_OK);
    set_scheme(net, PND_SCHEME_DROPOUT, 0.4);
    ck_assert_int_eq(pnd_exact_sample_moments(net, data, 1, &m), PND_OK);
    ck_assert_double_gt(fabs(m.mean - reference.mean),
                        1e-6 * reference.mean);
    pnd_data_free(data);
    pnd_net_free(net);
}
END_TEST

/* --- expansion ----------------------------------------------------------- */

START_TEST(test_expansion_exact_for_quadratic)
{
    size_t widths[2] = { 4, 3 };

    for (int with_readout = 0; with_readout < 2; with_readout++) {
        struct pnd_net *net = net_make(1, widths, with_readout ? 2 : 0,
                                       PND_LOSS_SQUARED, PND_ACT_IDENTITY,
                                       PND_SCHEME_NONE, 0.0, 1.0, 51);
        struct pnd_data *data = data_make(1, 4, net->n_out, PND_LOSS_SQUARED,
                                          52);

        for (size_t s = 0; s < COUNT(all_schemes); s++) {
            struct pnd_moments exact;
            struct pnd_expansion e;

            set_scheme(net, all_schemes[s], 0.3);
            ck_assert_int_eq(pnd_exact_sample_moments(net, data, 0, &exact),
                             PND_OK);
            ck_assert_int_eq(pnd_expand_sample(net, data, 0, &e), PND_OK);
            assert_rel(e.order2, exact.mean, TOL_ALGEBRA);
            /* a quadratic loss has no third derivative */
            assert_rel(e.order3, exact.mean, TOL_ALGEBRA);
            ck_assert_int_eq(e.kink, 0);
            if (pnd_scheme_per_connection(all_schemes[s])
                || all_schemes[s] == PND_SCHEME_NONE)
                ck_assert(e.R_cross == 0.0);
            else if (with_readout)
                ck_assert_double_gt(fabs(e.R_cross), 1e-6);
        }
        pnd_data_free(data);
        pnd_net_free(net);
    }
}
END_TEST

/* Clean pre-activations z (d_out) of layer l for sample k. */
static void
clean_preact(const struct pnd_net *net, const struct pnd_data *data, size_t k,
             size_t l, double *z)
{
    struct pnd_net_workspace *ws = pnd_net_workspace_alloc(net);
    const double *input, *preact;

    ck_assert_ptr_nonnull(ws);
    ck_assert_int_eq(pnd_net_clean_layer(net, data, k, l, ws, &input,
                                         &preact), PND_OK);
    memcpy(z, preact, net->layers[l].d_out * sizeof *z);
    pnd_net_workspace_free(ws);
}

/* Hessian of every layer of a 3-layer network against central differences
 * of the exact gradient, for each smooth activation and both losses. */
START_TEST(test_hessian_matches_finite_differences)
{
    static const enum pnd_activation acts[] = {
        PND_ACT_TANH, PND_ACT_SIGMOID, PND_ACT_SOFTPLUS
    };
    size_t widths[4] = { 3, 4, 3, 2 };

    for (size_t a = 0; a < COUNT(acts); a++)
        for (int lo = 0; lo < 2; lo++) {
            enum pnd_loss loss = lo ? PND_LOSS_SOFTMAX_XENT : PND_LOSS_SQUARED;
            struct pnd_net *net = net_make(3, widths, 3, loss, acts[a],
                                           PND_SCHEME_PERNODEDROP, 0.1, 1.5,
                                           61 + a);
            struct pnd_data *data = data_make(2, 3, 3, loss, 62);

            for (size_t l = 0; l < 3; l++) {
                size_t h = widths[l + 1];
                double z[4], zp[4], grad_p[4], grad_m[4], H[16], max = 0.0;

                clean_preact(net, data, 1, l, z);
                ck_assert_int_eq(pnd_expand_layer_derivatives(
                                     net, data, 1, l, NULL, NULL, NULL, H),
                                 PND_OK);
                for (size_t j = 0; j < h * h; j++)
                    max = fmax(max, fabs(H[j]));
                ck_assert_double_gt(max, 1e-5);
                for (size_t v = 0; v < h; v++) {
                    memcpy(zp, z, sizeof z);
                    zp[v] = z[v] + FD_STEP;
                    ck_assert_int_eq(pnd_expand_layer_derivatives(
                                         net, data, 1, l, zp, NULL, grad_p,
                                         NULL), PND_OK);
                    zp[v] = z[v] - FD_STEP;
                    ck_assert_int_eq(pnd_expand_layer_derivatives(
                                         net, data, 1, l, zp, NULL, grad_m,
                                         NULL), PND_OK);
                    for (size_t u = 0; u < h; u++) {
                        double fd = (grad_p[u] - grad_m[u]) / (2.0 * FD_STEP);

                        ck_assert_msg(fabs(fd - H[u * h + v]) <= TOL_FD * max,
                                      "layer %zu H[%zu][%zu] = %.12g, finite "
                                      "difference %.12g", l, u, v,
                                      H[u * h + v], fd);
                    }
                }
            }
            pnd_data_free(data);
            pnd_net_free(net);
        }
}
END_TEST

/* Taylor-mode derivatives: the second equals v^T H v exactly, the first
 * v . g, and the third matches central differences of v^T H v. */
START_TEST(test_third_derivative_matches_finite_differences)
{
    size_t widths[3] = { 3, 4, 3 };

    for (int lo = 0; lo < 2; lo++) {
        enum pnd_loss loss = lo ? PND_LOSS_SOFTMAX_XENT : PND_LOSS_SQUARED;
        struct pnd_net *net = net_make(2, widths, 2, loss, PND_ACT_TANH,
                                       PND_SCHEME_PERNODEDROP, 0.1, 1.5, 71);
        struct pnd_data *data = data_make(1, 3, 2, loss, 72);

        for (size_t l = 0; l < 2; l++) {
            size_t h = widths[l + 1];
            double z[4], zs[4], v[4], g[4], H[16], Hs[16], d[4];
            double vHv = 0.0, vg = 0.0, vHv_p = 0.0, vHv_m = 0.0, fd;

            clean_preact(net, data, 0, l, z);
            fill_normal(73, l, 1.0, v, h);
            ck_assert_int_eq(pnd_expand_layer_derivatives(net, data, 0, l,
                                                          NULL, NULL, g, H),
                             PND_OK);
            ck_assert_int_eq(pnd_expand_directional_derivatives(
                                 net, data, 0, l, NULL, v, d), PND_OK);
            for (size_t u = 0; u < h; u++) {
                vg += v[u] * g[u];
                for (size_t w = 0; w < h; w++)
                    vHv += v[u] * H[u * h + w] * v[w];
            }
            assert_rel(d[1], vg, TOL_ALGEBRA);
            assert_rel(d[2], vHv, TOL_ALGEBRA);
            for (int sign = -1; sign <= 1; sign += 2) {
                double sum = 0.0;

                for (size_t u = 0; u < h; u++)
                    zs[u] = z[u] + sign * FD_STEP * v[u];
                ck_assert_int_eq(pnd_expand_layer_derivatives(
                                     net, data, 0, l, zs, NULL, NULL, Hs),
                                 PND_OK);
                for (size_t u = 0; u < h; u++)
                    for (size_t w = 0; w < h; w++)
                        sum += v[u] * Hs[u * h + w] * v[w];
                if (sign < 0)
                    vHv_m = sum;
                else
                    vHv_p = sum;
            }
            fd = (vHv_p - vHv_m) / (2.0 * FD_STEP);
            ck_assert_msg(fabs(fd - d[3]) <= TOL_FD * fmax(1.0, fabs(d[3])),
                          "layer %zu third derivative %.12g, finite "
                          "difference %.12g", l, d[3], fd);
        }
        pnd_data_free(data);
        pnd_net_free(net);
    }
}
END_TEST

Suite *
pnd_analysis_suite(void)
{
    Suite *s = suite_create("analysis");
    TCase *core = tcase_create("Core");

    tcase_set_timeout(core, 60);
    tcase_add_test(core, test_exact_matches_enumeration);
    tcase_add_test(core, test_exact_batch_moments);
    tcase_add_test(core, test_exact_batch_of_one_sample);
    tcase_add_test(core, test_linear_mean_same_for_all_schemes);
    tcase_add_test(core, test_expansion_exact_for_quadratic);
    tcase_add_test(core, test_hessian_matches_finite_differences);
    tcase_add_test(core, test_third_derivative_matches_finite_differences);
    suite_add_tcase(s, core);
    return s;
}
