/* Masking schemes and masked dense layers: the fast kernels against the
 * plain reference, the documented draw order, mask statistics, p = 0,
 * chunking independence and finite-difference gradients. */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "pnd/error.h"
#include "pnd/mask.h"
#include "pnd/rng.h"
#include "sim/mask_internal.h"
#include "tests/suites.h"

/* Fast and reference kernels add the same terms in different orders (GEMM
 * blocking, vector lanes), so they agree to a few rounding errors of the
 * sum of absolute terms, which is the scale of the tolerance below. */
#define SUM_ORDER_TOL 1e-12
/* Central differences with step FD_STEP on a quadratic loss have no
 * truncation error; this covers the rounding error of the difference. */
#define FD_STEP 1e-4
#define FD_TOL 1e-7
/* Monte Carlo rule of the project: |z| <= 4 standard errors. */
#define Z_MAX 4.0

#define TEST_SEED UINT64_C(20261204)
#define TEST_P 0.3

static const enum pnd_scheme masked_schemes[] = {
    PND_SCHEME_DROPOUT, PND_SCHEME_GAUSSIAN_DROPOUT, PND_SCHEME_DROPCONNECT,
    PND_SCHEME_PERNODEDROP, PND_SCHEME_PERNODEDROP_GAUSSIAN,
    PND_SCHEME_FIXED_MASK,
};
#define N_MASKED (sizeof masked_schemes / sizeof masked_schemes[0])

/* Shapes (n, h, d): d not a multiple of 64, d < 64, h = 1, d = 64 exactly,
 * and n above the 32-sample chunk of the input schemes. */
static const size_t shapes[][3] = {
    { 3, 5, 70 }, { 2, 4, 37 }, { 3, 1, 130 }, { 1, 7, 64 }, { 40, 3, 5 },
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

struct layer {
    size_t n, h, d;
    double *W;    /* (h, d) */
    double *b;    /* (h) */
    double *X;    /* (n, d) */
    double *Z;    /* (n, h) */
    double *dZ;   /* (n, h) */
    double *dW;   /* (h, d) */
    double *db;   /* (h) */
    double *dX;   /* (n, d) */
    struct pnd_mask_workspace *w;
};

static double
uniform_pm1(pnd_pcg64 *r)
{
    return 2.0 * pnd_pcg64dxsm_double(r) - 1.0;
}

static void
fill_uniform(pnd_pcg64 *r, double *a, size_t n)
{
    for (size_t j = 0; j < n; j++)
        a[j] = uniform_pm1(r);
}

static struct layer
layer_make(size_t n, size_t h, size_t d, uint64_t data_seed)
{
    struct layer L = { n, h, d, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                       NULL, NULL };
    uint64_t coord = 0;
    pnd_pcg64 r;

    L.W = calloc(h * d, sizeof *L.W);
    L.b = calloc(h, sizeof *L.b);
    L.X = calloc(n * d, sizeof *L.X);
    L.Z = calloc(n * h, sizeof *L.Z);
    L.dZ = calloc(n * h, sizeof *L.dZ);
    L.dW = calloc(h * d, sizeof *L.dW);
    L.db = calloc(h, sizeof *L.db);
    L.dX = calloc(n * d, sizeof *L.dX);
    L.w = pnd_mask_workspace_alloc(h, d);
    ck_assert(L.W && L.b && L.X && L.Z && L.dZ && L.dW && L.db && L.dX
              && L.w);
    pnd_rng_derive(&r, data_seed, &coord, 1);
    fill_uniform(&r, L.W, h * d);
    fill_uniform(&r, L.b, h);
    fill_uniform(&r, L.X, n * d);
    fill_uniform(&r, L.dZ, n * h);
    /* Zeros in the input, as in images, and in dZ, as after ReLU. */
    for (size_t j = 0; j < n * d; j += 3)
        L.X[j] = 0.0;
    for (size_t j = 0; j < n * h; j += 4)
        L.dZ[j] = 0.0;
    return L;
}

static void
layer_free(struct layer *L)
{
    free(L->W);
    free(L->b);
    free(L->X);
    free(L->Z);
    free(L->dZ);
    free(L->dW);
    free(L->db);
    free(L->dX);
    pnd_mask_workspace_free(L->w);
}

static struct pnd_mask_key
test_key(void)
{
    struct pnd_mask_key key = { TEST_SEED, 2, 17, 1000 };

    return key;
}

/* The fixed-mask bits of a test, owned by the caller. */
static uint64_t *
fixed_bits_make(const struct pnd_mask_key *key, double p, size_t h, size_t d)
{
    uint64_t *bits = malloc(h * ((d + 63) / 64) * sizeof *bits);

    ck_assert_ptr_nonnull(bits);
    ck_assert_int_eq(pnd_mask_fixed_bits(key->seed, key->layer, p, h, d,
                                         bits), PND_OK);
    return bits;
}

/* Sum over i of |W_ui m_ui x_i| + |b_u| for sample k: the scale of the
 * rounding error of z_u. */
static double
abs_term_sum(const struct layer *L, size_t k, size_t u,
             const double *M /* (h, d) */)
{
    double s = fabs(L->b[u]);

    for (size_t i = 0; i < L->d; i++)
        s += fabs(L->W[u * L->d + i] * M[u * L->d + i] * L->X[k * L->d + i]);
    return s;
}

/* --- Core ----------------------------------------------------------------- */

START_TEST(test_mask_names_round_trip)
{
    size_t count = 0;

    for (int s = 0; s < PND_SCHEME_COUNT; s++) {
        enum pnd_scheme parsed = PND_SCHEME_COUNT;

        ck_assert_int_eq(pnd_scheme_parse(pnd_scheme_name(s), &parsed),
                         PND_OK);
        ck_assert_int_eq(parsed, s);
    }
    while (pnd_scheme_names[count])
        count++;
    ck_assert_uint_eq(count, PND_SCHEME_COUNT);
    ck_assert_str_eq(pnd_scheme_name(PND_SCHEME_PERNODEDROP), "pernodedrop");
    ck_assert(pnd_scheme_per_connection(PND_SCHEME_PERNODEDROP_GAUSSIAN));
    ck_assert(pnd_scheme_per_connection(PND_SCHEME_FIXED_MASK));
    ck_assert(!pnd_scheme_per_connection(PND_SCHEME_DROPOUT));
    ck_assert(pnd_scheme_gaussian(PND_SCHEME_GAUSSIAN_DROPOUT));
    ck_assert(!pnd_scheme_gaussian(PND_SCHEME_DROPCONNECT));
}
END_TEST

/* Moments of eta = m - 1 against direct sums over the two mask values. */
START_TEST(test_mask_noise_moments)
{
    static const double ps[] = { 0.0, 0.1, 0.3, 0.5, 0.9 };

    for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++) {
        double p = ps[j];
        double keep = 1.0 / (1.0 - p) - 1.0;    /* eta of a kept value */
        double m2 = (1 - p) * keep * keep + p;
        double m3 = (1 - p) * keep * keep * keep - p;
        double m4 = (1 - p) * pow(keep, 4) + p;
        struct pnd_noise_moments b = pnd_noise_moments(PND_SCHEME_PERNODEDROP,
                                                       p);
        struct pnd_noise_moments g = pnd_noise_moments(
            PND_SCHEME_GAUSSIAN_DROPOUT, p);

        ck_assert_double_eq_tol(b.s2, m2, 1e-14 * (1 + m2));
        ck_assert_double_eq_tol(b.mu3, m3, 1e-13 * (1 + fabs(m3)));
        ck_assert_double_eq_tol(b.mu4, m4, 1e-13 * (1 + m4));
        ck_assert_double_eq_tol(g.s2, p / (1 - p), 1e-15);
        ck_assert(g.mu3 == 0.0);
        ck_assert_double_eq_tol(g.mu4, 3 * g.s2 * g.s2, 1e-15 * (1 + g.mu4));
    }
    struct pnd_noise_moments none = pnd_noise_moments(PND_SCHEME_NONE, 0.5);

    ck_assert(none.s2 == 0.0 && none.mu3 == 0.0 && none.mu4 == 0.0);
}
END_TEST

/* The documented draw order, rebuilt from the rng interface directly. */
START_TEST(test_mask_draw_order)
{
    size_t h = 3, d = 70, nw = 2;
    uint64_t sample_words[3 * 2];    /* (h, nw) */
    double p = TEST_P, scale = 1.0 / (1.0 - p);
    double sigma = sqrt(p / (1.0 - p));
    struct pnd_mask_key key = test_key();
    double *M = malloc(h * d * sizeof *M);

    ck_assert_ptr_nonnull(M);
    for (size_t j = 0; j < N_MASKED; j++) {
        enum pnd_scheme s = masked_schemes[j];
        struct pnd_mask_spec spec = { s, p, NULL };
        uint64_t coords[4] = { PND_MASK_TAG(s), key.layer, key.step,
                               key.sample };
        size_t n_coords = s == PND_SCHEME_DROPCONNECT ? 3
                          : s == PND_SCHEME_FIXED_MASK ? 2 : 4;
        bool per_connection = pnd_scheme_per_connection(s);
        pnd_pcg64 r;

        ck_assert_int_eq(pnd_mask_values(&spec, &key, h, d, M), PND_OK);
        pnd_rng_derive(&r, key.seed, coords, n_coords);
        /* pernodedrop: all h nw words of the sample from one call, on two
         * generators whose tuples append 0 and 1. */
        if (s == PND_SCHEME_PERNODEDROP) {
            uint64_t pair_coords[5] = { coords[0], coords[1], coords[2],
                                        coords[3], 0 };
            pnd_pcg64 pair[2];

            pnd_rng_derive(&pair[0], key.seed, pair_coords, 5);
            pair_coords[4] = 1;
            pnd_rng_derive(&pair[1], key.seed, pair_coords, 5);
            pnd_rng_bernoulli_words(pair, 1.0 - p, h * nw, sample_words);
        }
        for (size_t u = 0; u < (per_connection ? h : 1); u++) {
            if (pnd_scheme_gaussian(s)) {
                for (size_t i = 0; i < d; i++)
                    ck_assert(M[u * d + i]
                              == 1.0 + sigma * pnd_rng_normal(&r));
                continue;
            }
            for (size_t wd = 0; wd < nw; wd++) {
                uint64_t word = s == PND_SCHEME_PERNODEDROP
                                ? sample_words[u * nw + wd]
                                : pnd_rng_bernoulli_word(&r, 1.0 - p);

                for (size_t i = 64 * wd; i < d && i < 64 * wd + 64; i++)
                    ck_assert(M[u * d + i]
                              == ((word >> (i % 64)) & 1 ? scale : 0.0));
            }
        }
        /* Input schemes repeat one row for every receiving node. */
        if (!per_connection)
            for (size_t u = 1; u < h; u++)
                ck_assert(memcmp(M, M + u * d, d * sizeof *M) == 0);
    }
    free(M);
}
END_TEST

START_TEST(test_mask_forward_matches_reference)
{
    struct pnd_mask_key key = test_key();

    for (size_t c = 0; c < N_SHAPES; c++) {
        size_t n = shapes[c][0], h = shapes[c][1], d = shapes[c][2];
        struct layer L = layer_make(n, h, d, 100 + c);
        double *Zref = malloc(n * h * sizeof *Zref);
        double *M = malloc(h * d * sizeof *M);
        uint64_t *fixed = fixed_bits_make(&key, TEST_P, h, d);

        ck_assert(Zref && M);
        for (size_t j = 0; j < N_MASKED + 1; j++) {
            enum pnd_scheme s = j < N_MASKED ? masked_schemes[j]
                                             : PND_SCHEME_NONE;
            struct pnd_mask_spec spec = { s, TEST_P, NULL };

            if (s == PND_SCHEME_FIXED_MASK)
                spec.fixed_bits = fixed;
            ck_assert_int_eq(pnd_layer_forward(&spec, &key, n, h, d, L.W, L.b,
                                               L.X, L.Z, L.w), PND_OK);
            ck_assert_int_eq(pnd_layer_forward_reference(&spec, &key, n, h, d,
                                                         L.W, L.b, L.X, Zref),
                             PND_OK);
            for (size_t k = 0; k < n; k++) {
                struct pnd_mask_key kk = key;

                kk.sample = key.sample + k;
                ck_assert_int_eq(pnd_mask_values(&spec, &kk, h, d, M), PND_OK);
                for (size_t u = 0; u < h; u++)
                    ck_assert_double_eq_tol(L.Z[k * h + u], Zref[k * h + u],
                                            SUM_ORDER_TOL
                                            * abs_term_sum(&L, k, u, M));
            }
        }
        free(fixed);
        free(M);
        free(Zref);
        layer_free(&L);
    }
}
END_TEST

START_TEST(test_mask_backward_matches_reference)
{
    struct pnd_mask_key key = test_key();

    for (size_t c = 0; c < N_SHAPES; c++) {
        size_t n = shapes[c][0], h = shapes[c][1], d = shapes[c][2];
        struct layer L = layer_make(n, h, d, 200 + c);
        double *dWr = malloc(h * d * sizeof *dWr);
        double *dbr = malloc(h * sizeof *dbr);
        double *dXr = malloc(n * d * sizeof *dXr);
        uint64_t *fixed = fixed_bits_make(&key, TEST_P, h, d);
        /* Bound on the terms of every dW, db and dX entry: |W|, |X|, |dZ|,
         * |b| <= 1 and |m| below 1 / (1 - p) (Bernoulli) or 1 + 8 sigma. */
        double term_max = 1.0 + 8.0 * sqrt(TEST_P / (1.0 - TEST_P));
        double dw_tol = SUM_ORDER_TOL * (1.0 + n * term_max);
        double dx_tol = SUM_ORDER_TOL * h * term_max;
        double db_tol = SUM_ORDER_TOL * (1.0 + n);

        ck_assert(dWr && dbr && dXr);
        for (size_t j = 0; j < N_MASKED + 1; j++) {
            enum pnd_scheme s = j < N_MASKED ? masked_schemes[j]
                                             : PND_SCHEME_NONE;
            struct pnd_mask_spec spec = { s, TEST_P, NULL };

            if (s == PND_SCHEME_FIXED_MASK)
                spec.fixed_bits = fixed;
            /* Start from nonzero gradients: the passes must add to them. */
            for (size_t i = 0; i < h * d; i++)
                L.dW[i] = dWr[i] = 0.5;
            for (size_t u = 0; u < h; u++)
                L.db[u] = dbr[u] = -0.25;
            ck_assert_int_eq(pnd_layer_backward(&spec, &key, n, h, d, L.W,
                                                L.X, L.dZ, L.dW, L.db, L.dX,
                                                L.w), PND_OK);
            ck_assert_int_eq(pnd_layer_backward_reference(&spec, &key, n, h,
                                                          d, L.W, L.X, L.dZ,
                                                          dWr, dbr, dXr),
                             PND_OK);
            for (size_t i = 0; i < h * d; i++)
                ck_assert_double_eq_tol(L.dW[i], dWr[i], dw_tol);
            for (size_t u = 0; u < h; u++)
                ck_assert_double_eq_tol(L.db[u], dbr[u], db_tol);
            for (size_t i = 0; i < n * d; i++)
                ck_assert_double_eq_tol(L.dX[i], dXr[i], dx_tol);
        }
        free(fixed);
        free(dWr);
        free(dbr);
        free(dXr);
        layer_free(&L);
    }
}
END_TEST

/* dW and dX of a pernodedrop backward pass, bit for bit, after the given
 * forward pass on the workspace w (none when fwd_key is NULL). */
static void
backward_after_forward(struct layer *L, struct pnd_mask_workspace *w,
                       const struct pnd_mask_key *fwd_key, double fwd_p,
                       const struct pnd_mask_key *key, double *dW /* (h, d) */,
                       double *dX /* (n, d) */)
{
    struct pnd_mask_spec fwd = { PND_SCHEME_PERNODEDROP, fwd_p, NULL };
    struct pnd_mask_spec spec = { PND_SCHEME_PERNODEDROP, TEST_P, NULL };

    if (fwd_key)
        ck_assert_int_eq(pnd_layer_forward(&fwd, fwd_key, L->n, L->h, L->d,
                                           L->W, L->b, L->X, L->Z, w),
                         PND_OK);
    memset(dW, 0, L->h * L->d * sizeof *dW);
    ck_assert_int_eq(pnd_layer_backward(&spec, key, L->n, L->h, L->d, L->W,
                                        L->X, L->dZ, dW, NULL, dX, w),
                     PND_OK);
}

/* The backward pass gives the same bits whether it reuses the keep bits
 * cached by the forward pass (same key and p), or draws them because the
 * forward pass had another step, sample offset or p, or because the
 * workspace is new; with the cache grown by the forward pass or reserved. */
START_TEST(test_mask_backward_reuses_forward_bits)
{
    size_t n = 40, h = 5, d = 70;    /* n above the 32-sample chunk */
    struct layer L = layer_make(n, h, d, 1300);
    struct pnd_mask_key key = test_key(), other_step = key, other_sample = key;
    double *dW0 = malloc(h * d * sizeof *dW0), *dW = malloc(h * d * sizeof *dW);
    double *dX0 = malloc(n * d * sizeof *dX0), *dX = malloc(n * d * sizeof *dX);
    struct pnd_mask_workspace *fresh = pnd_mask_workspace_alloc(h, d);
    struct pnd_mask_workspace *reserved = pnd_mask_workspace_alloc(h, d);

    ck_assert(dW0 && dW && dX0 && dX && fresh && reserved);
    other_step.step++;
    other_sample.sample++;
    backward_after_forward(&L, fresh, NULL, TEST_P, &key, dW0, dX0);

    const struct pnd_mask_key *fwd_keys[] = { &key, &other_step,
                                              &other_sample, &key };
    const double fwd_p[] = { TEST_P, TEST_P, TEST_P, 0.5 };

    for (size_t t = 0; t < 4; t++) {
        backward_after_forward(&L, L.w, fwd_keys[t], fwd_p[t], &key, dW, dX);
        ck_assert_msg(memcmp(dW, dW0, h * d * sizeof *dW) == 0
                      && memcmp(dX, dX0, n * d * sizeof *dX) == 0,
                      "case %zu: cached and drawn bits differ", t);
    }
    ck_assert_int_eq(pnd_mask_workspace_reserve(reserved, n), PND_OK);
    backward_after_forward(&L, reserved, &key, TEST_P, &key, dW, dX);
    ck_assert(memcmp(dW, dW0, h * d * sizeof *dW) == 0);
    ck_assert(memcmp(dX, dX0, n * d * sizeof *dX) == 0);
    /* Fewer samples than the cache holds: the first n - 1 samples. */
    L.n = n - 1;
    backward_after_forward(&L, reserved, &key, TEST_P, &key, dW, dX);
    ck_assert(memcmp(dX, dX0, (n - 1) * d * sizeof *dX) == 0);
    L.n = n;

    pnd_mask_workspace_free(fresh);
    pnd_mask_workspace_free(reserved);
    free(dW0);
    free(dW);
    free(dX0);
    free(dX);
    layer_free(&L);
}
END_TEST

/* Keep fraction of every Bernoulli scheme within |z| <= 4 of 1 - p, and every
 * kept value equal to 1 / (1 - p). */
START_TEST(test_mask_keep_fraction)
{
    static const double ps[] = { 0.05, 0.3, 0.8 };
    static const enum pnd_scheme bernoulli[] = {
        PND_SCHEME_DROPOUT, PND_SCHEME_DROPCONNECT, PND_SCHEME_PERNODEDROP,
        PND_SCHEME_FIXED_MASK,
    };
    size_t h = 64, d = 1000;
    double *M = malloc(h * d * sizeof *M);
    struct pnd_mask_key key = test_key();

    ck_assert_ptr_nonnull(M);
    for (size_t a = 0; a < sizeof ps / sizeof ps[0]; a++) {
        for (size_t j = 0; j < sizeof bernoulli / sizeof bernoulli[0]; j++) {
            struct pnd_mask_spec spec = { bernoulli[j], ps[a], NULL };
            double scale = 1.0 / (1.0 - ps[a]);
            /* The input scheme has d variables, the others h d. */
            size_t n_vars = bernoulli[j] == PND_SCHEME_DROPOUT ? d : h * d;
            double n_kept = 0.0, mean, sd;

            ck_assert_int_eq(pnd_mask_values(&spec, &key, h, d, M), PND_OK);
            for (size_t i = 0; i < n_vars; i++) {
                ck_assert(M[i] == 0.0 || M[i] == scale);
                n_kept += M[i] != 0.0;
            }
            mean = n_vars * (1.0 - ps[a]);
            sd = sqrt(n_vars * ps[a] * (1.0 - ps[a]));
            ck_assert_double_le(fabs(n_kept - mean), Z_MAX * sd);
        }
    }
    free(M);
}
END_TEST

/* Gaussian masks: mean 1 and variance p / (1 - p), each within |z| <= 4
 * (standard error of the sample variance of normals: s2 sqrt(2 / (N - 1))). */
START_TEST(test_mask_gaussian_moments)
{
    size_t h = 100, d = 200;
    double p = 0.4, s2 = p / (1.0 - p);
    double *M = malloc(h * d * sizeof *M);
    struct pnd_mask_key key = test_key();
    static const enum pnd_scheme gaussian[] = {
        PND_SCHEME_PERNODEDROP_GAUSSIAN, PND_SCHEME_GAUSSIAN_DROPOUT,
    };

    ck_assert_ptr_nonnull(M);
    for (size_t j = 0; j < 2; j++) {
        struct pnd_mask_spec spec = { gaussian[j], p, NULL };
        size_t N = gaussian[j] == PND_SCHEME_GAUSSIAN_DROPOUT ? d : h * d;
        double sum = 0.0, sum2 = 0.0, mean, var;

        /* Gaussian dropout has only d variables per sample: pool samples. */
        size_t n_samples = gaussian[j] == PND_SCHEME_GAUSSIAN_DROPOUT ? h : 1;

        for (size_t k = 0; k < n_samples; k++) {
            struct pnd_mask_key kk = key;

            kk.sample = k;
            ck_assert_int_eq(pnd_mask_values(&spec, &kk, h, d, M), PND_OK);
            for (size_t i = 0; i < N; i++) {
                sum += M[i];
                sum2 += (M[i] - 1.0) * (M[i] - 1.0);
            }
        }
        N *= n_samples;
        mean = sum / N;
        var = (sum2 - N * (mean - 1.0) * (mean - 1.0)) / (N - 1);
        ck_assert_double_le(fabs(mean - 1.0), Z_MAX * sqrt(s2 / N));
        ck_assert_double_le(fabs(var - s2), Z_MAX * s2 * sqrt(2.0 / (N - 1)));
    }
    free(M);
}
END_TEST

/* Which masks change with the sample and the step, and which are shared. */
START_TEST(test_mask_sharing)
{
    size_t h = 4, d = 70;
    double *M0 = malloc(h * d * sizeof *M0);
    double *M1 = malloc(h * d * sizeof *M1);
    size_t bytes = h * d * sizeof *M0;

    ck_assert(M0 && M1);
    for (size_t j = 0; j < N_MASKED; j++) {
        enum pnd_scheme s = masked_schemes[j];
        struct pnd_mask_spec spec = { s, TEST_P, NULL };
        struct pnd_mask_key k0 = test_key(), k1 = k0, k2 = k0;
        bool per_sample = s != PND_SCHEME_DROPCONNECT
                          && s != PND_SCHEME_FIXED_MASK;

        k1.sample++;
        k2.step++;
        ck_assert_int_eq(pnd_mask_values(&spec, &k0, h, d, M0), PND_OK);
        ck_assert_int_eq(pnd_mask_values(&spec, &k1, h, d, M1), PND_OK);
        ck_assert_int_eq(memcmp(M0, M1, bytes) != 0, per_sample);
        ck_assert_int_eq(pnd_mask_values(&spec, &k2, h, d, M1), PND_OK);
        ck_assert_int_eq(memcmp(M0, M1, bytes) != 0,
                         s != PND_SCHEME_FIXED_MASK);
    }
    /* Per-connection schemes give every receiving node its own row. */
    struct pnd_mask_spec spec = { PND_SCHEME_PERNODEDROP, TEST_P, NULL };
    struct pnd_mask_key key = test_key();

    ck_assert_int_eq(pnd_mask_values(&spec, &key, h, d, M0), PND_OK);
    ck_assert(memcmp(M0, M0 + d, d * sizeof *M0) != 0);
    free(M0);
    free(M1);
}
END_TEST

/* One call on n samples equals n calls on consecutive key.sample. The
 * per-sample kernels must agree bit for bit; the GEMM-based schemes may
 * block differently for a different number of rows, hence SUM_ORDER_TOL. */
START_TEST(test_mask_chunking_independent)
{
    size_t n = 37, h = 6, d = 100;
    struct layer L = layer_make(n, h, d, 300);
    double *Z1 = malloc(n * h * sizeof *Z1);
    double *dX1 = malloc(n * d * sizeof *dX1);
    double *dW1 = calloc(h * d, sizeof *dW1);

    ck_assert(Z1 && dX1 && dW1);
    for (size_t j = 0; j < N_MASKED; j++) {
        enum pnd_scheme s = masked_schemes[j];
        struct pnd_mask_spec spec = { s, TEST_P, NULL };
        struct pnd_mask_key key = test_key();
        bool per_sample_kernel = s == PND_SCHEME_PERNODEDROP
                                 || s == PND_SCHEME_PERNODEDROP_GAUSSIAN;

        memset(L.dW, 0, h * d * sizeof *L.dW);
        memset(dW1, 0, h * d * sizeof *dW1);
        ck_assert_int_eq(pnd_layer_forward(&spec, &key, n, h, d, L.W, L.b,
                                           L.X, L.Z, L.w), PND_OK);
        ck_assert_int_eq(pnd_layer_backward(&spec, &key, n, h, d, L.W, L.X,
                                            L.dZ, L.dW, NULL, L.dX, L.w),
                         PND_OK);
        for (size_t k = 0; k < n; k++) {
            struct pnd_mask_key kk = key;

            kk.sample = key.sample + k;
            ck_assert_int_eq(pnd_layer_forward(&spec, &kk, 1, h, d, L.W, L.b,
                                               L.X + k * d, Z1 + k * h, L.w),
                             PND_OK);
            ck_assert_int_eq(pnd_layer_backward(&spec, &kk, 1, h, d, L.W,
                                                L.X + k * d, L.dZ + k * h,
                                                dW1, NULL, dX1 + k * d, L.w),
                             PND_OK);
        }
        if (per_sample_kernel) {
            ck_assert(memcmp(L.Z, Z1, n * h * sizeof *Z1) == 0);
            ck_assert(memcmp(L.dX, dX1, n * d * sizeof *dX1) == 0);
        }
        for (size_t i = 0; i < n * h; i++)
            ck_assert_double_eq_tol(L.Z[i], Z1[i],
                                    SUM_ORDER_TOL * 4.0 * (1 + d));
        for (size_t i = 0; i < n * d; i++)
            ck_assert_double_eq_tol(L.dX[i], dX1[i],
                                    SUM_ORDER_TOL * 4.0 * (1 + h));
        /* dW sums over samples in another order here, even per sample. */
        for (size_t i = 0; i < h * d; i++)
            ck_assert_double_eq_tol(L.dW[i], dW1[i],
                                    SUM_ORDER_TOL * 4.0 * (1 + n));
    }
    free(Z1);
    free(dX1);
    free(dW1);
    layer_free(&L);
}
END_TEST

/* Threads with their own workspaces, one sample per call, give the same
 * bits as one thread (the kernels share no mutable state). */
START_TEST(test_mask_threads_match_serial)
{
    enum { N_SAMPLES = 16, N_THREADS = 4 };
    size_t h = 8, d = 100;
    struct layer L = layer_make(N_SAMPLES, h, d, 350);
    double *Zt = malloc(N_SAMPLES * h * sizeof *Zt);
    struct pnd_mask_workspace *ws[N_THREADS];
    int status[N_SAMPLES];

    ck_assert_ptr_nonnull(Zt);
    for (int t = 0; t < N_THREADS; t++) {
        ws[t] = pnd_mask_workspace_alloc(h, d);
        ck_assert_ptr_nonnull(ws[t]);
    }
    for (size_t j = 0; j < N_MASKED; j++) {
        struct pnd_mask_spec spec = { masked_schemes[j], TEST_P, NULL };
        struct pnd_mask_key key = test_key();

        ck_assert_int_eq(pnd_layer_forward(&spec, &key, N_SAMPLES, h, d, L.W,
                                           L.b, L.X, L.Z, L.w), PND_OK);
#pragma omp parallel for num_threads(N_THREADS) schedule(static, 1)
        for (int k = 0; k < N_SAMPLES; k++) {
            struct pnd_mask_key kk = key;
            int t = 0;

#ifdef _OPENMP
            t = omp_get_thread_num();
#endif
            kk.sample = key.sample + (uint64_t) k;
            status[k] = pnd_layer_forward(&spec, &kk, 1, h, d, L.W, L.b,
                                          L.X + k * d, Zt + k * h, ws[t]);
        }
        for (int k = 0; k < N_SAMPLES; k++)
            ck_assert_int_eq(status[k], PND_OK);
        if (masked_schemes[j] == PND_SCHEME_PERNODEDROP
            || masked_schemes[j] == PND_SCHEME_PERNODEDROP_GAUSSIAN)
            ck_assert(memcmp(L.Z, Zt, N_SAMPLES * h * sizeof *Zt) == 0);
        for (size_t i = 0; i < N_SAMPLES * h; i++)
            ck_assert_double_eq_tol(L.Z[i], Zt[i],
                                    SUM_ORDER_TOL * 4.0 * (1 + d));
    }
    for (int t = 0; t < N_THREADS; t++)
        pnd_mask_workspace_free(ws[t]);
    free(Zt);
    layer_free(&L);
}
END_TEST

/* p = 0 takes the unmasked path: every scheme equals none bit for bit. */
START_TEST(test_mask_p_zero_is_unmasked)
{
    size_t n = 5, h = 7, d = 90;
    struct layer L = layer_make(n, h, d, 400);
    struct pnd_mask_spec none = { PND_SCHEME_NONE, 0.0, NULL };
    struct pnd_mask_key key = test_key();
    double *Z0 = malloc(n * h * sizeof *Z0);
    double *dW0 = calloc(h * d, sizeof *dW0);
    double *db0 = calloc(h, sizeof *db0);
    double *dX0 = malloc(n * d * sizeof *dX0);

    ck_assert(Z0 && dW0 && db0 && dX0);
    ck_assert_int_eq(pnd_layer_forward(&none, NULL, n, h, d, L.W, L.b, L.X,
                                       Z0, NULL), PND_OK);
    ck_assert_int_eq(pnd_layer_backward(&none, NULL, n, h, d, L.W, L.X, L.dZ,
                                        dW0, db0, dX0, NULL), PND_OK);
    for (size_t j = 0; j < N_MASKED; j++) {
        struct pnd_mask_spec spec = { masked_schemes[j], 0.0, NULL };

        memset(L.dW, 0, h * d * sizeof *L.dW);
        memset(L.db, 0, h * sizeof *L.db);
        ck_assert_int_eq(pnd_layer_forward(&spec, &key, n, h, d, L.W, L.b,
                                           L.X, L.Z, L.w), PND_OK);
        ck_assert_int_eq(pnd_layer_backward(&spec, &key, n, h, d, L.W, L.X,
                                            L.dZ, L.dW, L.db, L.dX, L.w),
                         PND_OK);
        ck_assert(memcmp(L.Z, Z0, n * h * sizeof *Z0) == 0);
        ck_assert(memcmp(L.dW, dW0, h * d * sizeof *dW0) == 0);
        ck_assert(memcmp(L.db, db0, h * sizeof *db0) == 0);
        ck_assert(memcmp(L.dX, dX0, n * d * sizeof *dX0) == 0);
    }
    free(Z0);
    free(dW0);
    free(db0);
    free(dX0);
    layer_free(&L);
}
END_TEST

/* fixed-mask: the same output at every step and sample, whether the bits
 * come from pnd_mask_fixed_bits or are drawn inside the call. */
START_TEST(test_mask_fixed_across_steps)
{
    size_t n = 3, h = 5, d = 130;
    struct layer L = layer_make(n, h, d, 500);
    struct pnd_mask_key key = test_key(), later = key;
    uint64_t *fixed = fixed_bits_make(&key, TEST_P, h, d);
    struct pnd_mask_spec with_bits = { PND_SCHEME_FIXED_MASK, TEST_P, fixed };
    struct pnd_mask_spec drawn = { PND_SCHEME_FIXED_MASK, TEST_P, NULL };
    double *Z1 = malloc(n * h * sizeof *Z1);

    ck_assert_ptr_nonnull(Z1);
    later.step += 99;
    later.sample += 5;
    ck_assert_int_eq(pnd_layer_forward(&with_bits, &key, n, h, d, L.W, L.b,
                                       L.X, L.Z, L.w), PND_OK);
    ck_assert_int_eq(pnd_layer_forward(&drawn, &later, n, h, d, L.W, L.b, L.X,
                                       Z1, L.w), PND_OK);
    ck_assert(memcmp(L.Z, Z1, n * h * sizeof *Z1) == 0);
    /* The unused bits of the last word of each row are cleared. */
    for (size_t u = 0; u < h; u++)
        ck_assert_uint_eq(fixed[u * 3 + 2] >> (d % 64), 0);
    free(Z1);
    free(fixed);
    layer_free(&L);
}
END_TEST

/* Loss f = sum_ku c_ku z_ku + 1/2 z_ku^2 with the masks held fixed by the
 * keys; its gradient with respect to Z is dZ = c + Z. */
static double
quadratic_loss(const struct pnd_mask_spec *spec,
               const struct pnd_mask_key *key, struct layer *L,
               const double *c /* (n, h) */)
{
    double f = 0.0;

    ck_assert_int_eq(pnd_layer_forward(spec, key, L->n, L->h, L->d, L->W,
                                       L->b, L->X, L->Z, L->w), PND_OK);
    for (size_t j = 0; j < L->n * L->h; j++)
        f += c[j] * L->Z[j] + 0.5 * L->Z[j] * L->Z[j];
    return f;
}

static double
central_difference(const struct pnd_mask_spec *spec,
                   const struct pnd_mask_key *key, struct layer *L,
                   const double *c, double *param)
{
    double saved = *param, fp, fm;

    *param = saved + FD_STEP;
    fp = quadratic_loss(spec, key, L, c);
    *param = saved - FD_STEP;
    fm = quadratic_loss(spec, key, L, c);
    *param = saved;
    return (fp - fm) / (2.0 * FD_STEP);
}

START_TEST(test_mask_gradient_finite_differences)
{
    size_t n = 3, h = 4, d = 67;
    struct pnd_mask_key key = test_key();

    for (size_t j = 0; j < N_MASKED + 1; j++) {
        enum pnd_scheme s = j < N_MASKED ? masked_schemes[j] : PND_SCHEME_NONE;
        struct pnd_mask_spec spec = { s, TEST_P, NULL };
        struct layer L = layer_make(n, h, d, 600 + j);
        double *c = L.dZ;    /* the loss coefficients; dZ is rebuilt below */
        double *dZ = malloc(n * h * sizeof *dZ);

        ck_assert_ptr_nonnull(dZ);
        quadratic_loss(&spec, &key, &L, c);
        for (size_t i = 0; i < n * h; i++)
            dZ[i] = c[i] + L.Z[i];
        memset(L.dW, 0, h * d * sizeof *L.dW);
        memset(L.db, 0, h * sizeof *L.db);
        ck_assert_int_eq(pnd_layer_backward(&spec, &key, n, h, d, L.W, L.X,
                                            dZ, L.dW, L.db, L.dX, L.w),
                         PND_OK);
        for (size_t i = 0; i < h * d; i++) {
            double g = central_difference(&spec, &key, &L, c, &L.W[i]);

            ck_assert_double_eq_tol(L.dW[i], g, FD_TOL * (1 + fabs(g)));
        }
        for (size_t u = 0; u < h; u++) {
            double g = central_difference(&spec, &key, &L, c, &L.b[u]);

            ck_assert_double_eq_tol(L.db[u], g, FD_TOL * (1 + fabs(g)));
        }
        for (size_t i = 0; i < n * d; i++) {
            double g = central_difference(&spec, &key, &L, c, &L.X[i]);

            ck_assert_double_eq_tol(L.dX[i], g, FD_TOL * (1 + fabs(g)));
        }
        free(dZ);
        layer_free(&L);
    }
}
END_TEST

/* --- product cache -------------------------------------------------------- */

/* Lengths d around the group of 4, the block of 16 and the word of 64. */
static const size_t product_lengths[] = {
    1, 3, 4, 5, 15, 16, 17, 37, 63, 64, 65, 70, 127, 130, 255, 256, 257,
};
#define N_PRODUCT_LENGTHS (sizeof product_lengths / sizeof product_lengths[0])

/* Shapes (n, h, d) of the cached forward pass, d not a multiple of 4, 16
 * or 64 among them. */
static const size_t product_shapes[][3] = {
    { 1, 5, 70 }, { 2, 4, 37 }, { 3, 3, 19 }, { 1, 7, 64 }, { 2, 6, 130 },
    { 1, 2, 256 }, { 35, 2, 5 },
};
#define N_PRODUCT_SHAPES (sizeof product_shapes / sizeof product_shapes[0])

/* pnd_mask_sum_bits_rows_draws with m draws of keep bits bits_m (m, h, nw)
 * on the products p of W and x gives the bits of pnd_mask_dot_bits for
 * every draw and row. avx512_off turns its AVX-512 kernel off. */
static void
check_sum_draws(size_t h, size_t d, const double *W, const double *x,
                const double *p, size_t m, const uint64_t *bits_m, size_t nw,
                bool avx512_off)
{
    double sums[7 * 3];                                /* (m, h) */

    ck_assert(m <= 7 && h <= 3);
    pnd_mask_avx512_off = avx512_off;
    pnd_mask_sum_bits_rows_draws(h, d, p, m, bits_m, nw, sums);
    pnd_mask_avx512_off = false;
    for (size_t t = 0; t < m; t++)
        for (size_t u = 0; u < h; u++) {
            double dot = pnd_mask_dot_bits(d, W + u * d, x,
                                           bits_m + (t * h + u) * nw);

            ck_assert_msg(memcmp(&dot, &sums[t * h + u], sizeof dot) == 0,
                          "d = %zu, draw %zu of %zu, row %zu, AVX-512 %s: "
                          "sum %.17g, dot %.17g", d, t, m, u,
                          avx512_off ? "off" : "on", sums[t * h + u], dot);
        }
}

/* The sums of cached products over all rows equal the masked dot products
 * of the rows bit for bit, for all-kept, all-dropped and random keep bits.
 * So do the dot products over all rows in one call, those of two inputs
 * on one row, and the sums of 1 to 7 draws' keep bits in one call. */
START_TEST(test_mask_sum_bits_matches_dot)
{
    size_t h = 3;
    pnd_pcg64 r;
    uint64_t coord = 7;

    pnd_rng_derive(&r, TEST_SEED, &coord, 1);
    for (size_t c = 0; c < N_PRODUCT_LENGTHS; c++) {
        size_t d = product_lengths[c], nw = (d + 63) / 64;
        double *W = malloc(h * d * sizeof *W);         /* (h, d) */
        double *x = malloc(d * sizeof *x);             /* (d) */
        double *x2 = malloc(d * sizeof *x2);           /* (d) */
        double *p = malloc(h * d * sizeof *p);         /* (h, d) */
        uint64_t *bits = malloc(h * nw * sizeof *bits);  /* (h, nw) */
        uint64_t *bits_m = malloc(7 * h * nw * sizeof *bits_m); /* (7, h, nw) */
        double sums[3], dots[3], pair[2];              /* (h), (2) */

        ck_assert(W && x && x2 && p && bits && bits_m);
        fill_uniform(&r, W, h * d);
        fill_uniform(&r, x, d);
        fill_uniform(&r, x2, d);
        for (size_t i = 0; i < d; i += 5)
            x[i] = i % 2 ? -0.0 : 0.0;    /* zeros of both signs */
        pnd_mask_products(h, d, W, x, p);
        for (int pattern = 0; pattern < 4; pattern++) {
            for (size_t j = 0; j < h * nw; j++)
                bits[j] = pattern == 0 ? ~UINT64_C(0)
                          : pattern == 1 ? 0
                          : pnd_rng_bernoulli_word(&r, 0.7);
            pnd_mask_sum_bits_rows(h, d, p, bits, nw, sums);
            pnd_mask_dot_bits_rows(h, d, W, x, bits, nw, dots);
            for (size_t u = 0; u < h; u++) {
                double dot = pnd_mask_dot_bits(d, W + u * d, x,
                                               bits + u * nw);

                ck_assert_msg(memcmp(&dot, &sums[u], sizeof dot) == 0,
                              "d = %zu, pattern %d, row %zu: sum %.17g, "
                              "dot %.17g", d, pattern, u, sums[u], dot);
                ck_assert_msg(memcmp(&dot, &dots[u], sizeof dot) == 0,
                              "d = %zu, pattern %d, row %zu: rows %.17g, "
                              "dot %.17g", d, pattern, u, dots[u], dot);
            }
            /* Two inputs on one row of W, with the keep bits of rows 0
             * and 1: the same bits as two single calls. */
            pnd_mask_dot_bits_pair(d, W, x, x2, bits, bits + nw, pair);
            for (int t = 0; t < 2; t++) {
                double dot = pnd_mask_dot_bits(d, W, t ? x2 : x,
                                               bits + (size_t) t * nw);

                ck_assert_msg(memcmp(&dot, &pair[t], sizeof dot) == 0,
                              "d = %zu, pattern %d, input %d: pair %.17g, "
                              "dot %.17g", d, pattern, t, pair[t], dot);
            }
            /* m draws of keep bits on the same products. */
            for (size_t j = 0; j < 7 * h * nw; j++)
                bits_m[j] = pattern == 0 ? ~UINT64_C(0)
                            : pattern == 1 ? 0
                            : pnd_rng_bernoulli_word(&r, 0.7);
            /* With the AVX-512 kernel, where there is one, and without. */
            for (int off = 0; off < 2; off++)
                for (size_t m = 1; m <= 7; m++)
                    check_sum_draws(h, d, W, x, p, m, bits_m, nw, off);
        }
        free(bits_m);
        free(W);
        free(x);
        free(x2);
        free(p);
        free(bits);
    }
}
END_TEST

/* Z of a pernodedrop forward pass with a fresh workspace, which has no
 * product cache. */
static void
forward_plain(const struct pnd_mask_spec *spec,
              const struct pnd_mask_key *key, size_t n, size_t h, size_t d,
              const double *W, const double *b, const double *X, double *Z)
{
    struct pnd_mask_workspace *w = pnd_mask_workspace_alloc(h, d);

    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(pnd_layer_forward(spec, key, n, h, d, W, b, X, Z, w),
                     PND_OK);
    pnd_mask_workspace_free(w);
}

/* Largest number of draws that check_draws passes at once: 4 + 2 + 1
 * covers every way in which pnd_mask_sum_bits_rows_draws splits them. */
#define MAX_DRAWS 7

/* pnd_layer_forward_draws on row x with m = 1 to MAX_DRAWS draws, keys key
 * and then key at steps step + 7, step + 14, ..., gives z_first (h) for the
 * first draw and, for each other draw, the bits of a plain pass. */
static void
check_draws(const struct pnd_mask_spec *spec, const struct pnd_mask_key *key,
            struct layer *L, const double *x, const double *z_first)
{
    struct pnd_mask_key keys[MAX_DRAWS];
    double *Zm = malloc(MAX_DRAWS * L->h * sizeof *Zm);   /* (m, h) */
    double *Zt = malloc(L->h * sizeof *Zt);               /* (h) */

    ck_assert(Zm && Zt);
    for (size_t t = 0; t < MAX_DRAWS; t++) {
        keys[t] = *key;
        keys[t].step = key->step + 7 * t;
    }
    for (size_t m = 1; m <= MAX_DRAWS; m++) {
        ck_assert_int_eq(pnd_layer_forward_draws(spec, keys, m, L->h, L->d,
                                                 L->W, L->b, x, Zm, L->w),
                         PND_OK);
        ck_assert_msg(memcmp(Zm, z_first, L->h * sizeof *Zm) == 0,
                      "scheme %d: first of %zu draws differs",
                      (int) spec->scheme, m);
        for (size_t t = 1; t < m; t++) {
            forward_plain(spec, &keys[t], 1, L->h, L->d, L->W, L->b, x, Zt);
            ck_assert_msg(memcmp(Zm + t * L->h, Zt, L->h * sizeof *Zt) == 0,
                          "scheme %d: draw %zu of %zu differs",
                          (int) spec->scheme, t, m);
        }
    }
    free(Zm);
    free(Zt);
}

/* With the product cache, the forward pass gives the bits of the pass
 * without it, for whole batches and for single rows. Of the steps, the
 * first fills the cache and the others read it. The reference kernel
 * agrees to rounding. */
START_TEST(test_mask_product_cache_matches)
{
    struct pnd_mask_spec spec = { PND_SCHEME_PERNODEDROP, TEST_P, NULL };

    for (size_t c = 0; c < N_PRODUCT_SHAPES; c++) {
        size_t n = product_shapes[c][0], h = product_shapes[c][1];
        size_t d = product_shapes[c][2];
        struct layer L = layer_make(n, h, d, 1500 + c);
        double *Zplain = malloc(n * h * sizeof *Zplain);   /* (n, h) */
        double *Zref = malloc(n * h * sizeof *Zref);       /* (n, h) */
        double *M = malloc(h * d * sizeof *M);             /* (h, d) */

        ck_assert(Zplain && Zref && M);
        ck_assert_int_eq(pnd_mask_workspace_fix_product(L.w, h, d, L.W, n,
                                                        L.X), PND_OK);
        for (uint64_t step = 0; step < 3; step++) {
            struct pnd_mask_key key = test_key();

            key.step = step;
            ck_assert_int_eq(pnd_layer_forward(&spec, &key, n, h, d, L.W,
                                               L.b, L.X, L.Z, L.w), PND_OK);
            forward_plain(&spec, &key, n, h, d, L.W, L.b, L.X, Zplain);
            ck_assert_msg(memcmp(L.Z, Zplain, n * h * sizeof *Zplain) == 0,
                          "shape %zu step %llu: batch differs", c,
                          (unsigned long long) step);
            ck_assert_int_eq(pnd_layer_forward_reference(&spec, &key, n, h,
                                                         d, L.W, L.b, L.X,
                                                         Zref), PND_OK);
            for (size_t k = 0; k < n; k++) {
                struct pnd_mask_key kk = key;

                kk.sample = key.sample + k;
                ck_assert_int_eq(pnd_mask_values(&spec, &kk, h, d, M),
                                 PND_OK);
                for (size_t u = 0; u < h; u++)
                    ck_assert_double_eq_tol(L.Z[k * h + u], Zref[k * h + u],
                                            SUM_ORDER_TOL
                                            * abs_term_sum(&L, k, u, M));
                /* One row at a time, as the simulator calls it. */
                ck_assert_int_eq(pnd_layer_forward(&spec, &kk, 1, h, d, L.W,
                                                   L.b, L.X + k * d, L.Z,
                                                   L.w), PND_OK);
                ck_assert_msg(memcmp(L.Z, Zplain + k * h,
                                     h * sizeof *Zplain) == 0,
                              "shape %zu step %llu: row %zu differs", c,
                              (unsigned long long) step, k);
                /* Several draws of the row at once, as the loss
                 * estimator calls it: the others are later steps. */
                check_draws(&spec, &kk, &L, L.X + k * d, Zplain + k * h);
            }
        }
        free(M);
        free(Zref);
        free(Zplain);
        layer_free(&L);
    }
}
END_TEST

/* Without a product cache, and for the other schemes, m draws at once are
 * m plain passes. NULL keys and m = 0 are rejected. */
START_TEST(test_mask_draws_plain)
{
    size_t n = 1, h = 4, d = 70;
    struct layer L = layer_make(n, h, d, 1700);
    double *Zfirst = malloc(h * sizeof *Zfirst);     /* (h) */
    struct pnd_mask_key key = test_key();

    ck_assert_ptr_nonnull(Zfirst);
    for (size_t j = 0; j < N_MASKED; j++) {
        struct pnd_mask_spec spec = { masked_schemes[j], TEST_P, NULL };

        forward_plain(&spec, &key, 1, h, d, L.W, L.b, L.X, Zfirst);
        check_draws(&spec, &key, &L, L.X, Zfirst);
    }
    {
        struct pnd_mask_spec spec = { PND_SCHEME_PERNODEDROP, TEST_P, NULL };

        struct pnd_mask_key keys[1] = { key };

        ck_assert_int_eq(pnd_layer_forward_draws(&spec, NULL, 2, h, d, L.W,
                                                 L.b, L.X, L.Z, L.w),
                         PND_EINVAL);
        ck_assert_int_eq(pnd_layer_forward_draws(&spec, keys, 0, h, d, L.W,
                                                 L.b, L.X, L.Z, L.w),
                         PND_EINVAL);
    }
    free(Zfirst);
    layer_free(&L);
}
END_TEST

/* Assert that the pass on row x with the cached workspace L->w and the
 * pass without a cache give the same bits. */
static void
assert_cached_is_plain(const struct pnd_mask_spec *spec,
                       const struct pnd_mask_key *key, struct layer *L,
                       const double *W, const double *x, const char *what)
{
    double *Zplain = malloc(L->h * sizeof *Zplain);   /* (h) */

    ck_assert_ptr_nonnull(Zplain);
    ck_assert_int_eq(pnd_layer_forward(spec, key, 1, L->h, L->d, W, L->b, x,
                                       L->Z, L->w), PND_OK);
    forward_plain(spec, key, 1, L->h, L->d, W, L->b, x, Zplain);
    ck_assert_msg(memcmp(L->Z, Zplain, L->h * sizeof *Zplain) == 0,
                  "%s: the cached pass differs from the plain one", what);
    free(Zplain);
}

/* The cache never serves old products for an input that changed in place,
 * for an input at another address, for other weights or another shape. A
 * W changed in place is not detected (the documented promise): the
 * pass then still gives the old result, which shows that the cache is in
 * use, and calling pnd_mask_workspace_fix_product again makes it right. */
START_TEST(test_mask_product_cache_not_stale)
{
    size_t n = 2, h = 5, d = 37;
    struct layer L = layer_make(n, h, d, 1600);
    struct pnd_mask_spec spec = { PND_SCHEME_PERNODEDROP, TEST_P, NULL };
    struct pnd_mask_key key = test_key();
    double *W2 = malloc(h * d * sizeof *W2);       /* (h, d) */
    double *X2 = malloc(n * d * sizeof *X2);       /* (n, d) */
    double *Zold = malloc(h * sizeof *Zold);       /* (h) */
    double *Zplain = malloc(h * sizeof *Zplain);   /* (h) */

    ck_assert(W2 && X2 && Zold && Zplain);
    ck_assert_int_eq(pnd_mask_workspace_fix_product(L.w, h, d, L.W, n, L.X),
                     PND_OK);
    assert_cached_is_plain(&spec, &key, &L, L.W, L.X, "first pass");
    assert_cached_is_plain(&spec, &key, &L, L.W, L.X + d, "second row");

    /* An input changed in place, then changed back. */
    L.X[3] += 0.25;
    assert_cached_is_plain(&spec, &key, &L, L.W, L.X, "changed input");
    L.X[3] -= 0.25;
    assert_cached_is_plain(&spec, &key, &L, L.W, L.X, "restored input");
    L.X[d + 1] = -L.X[d + 1];
    assert_cached_is_plain(&spec, &key, &L, L.W, L.X + d, "changed row 2");

    /* Another input array, with the same and with other content. */
    memcpy(X2, L.X, n * d * sizeof *X2);
    assert_cached_is_plain(&spec, &key, &L, L.W, X2, "copied input");
    X2[0] = 0.5 * X2[0] + 0.125;
    assert_cached_is_plain(&spec, &key, &L, L.W, X2, "other input");
    /* An address inside X that is not the start of a row. */
    assert_cached_is_plain(&spec, &key, &L, L.W, L.X + 1, "unaligned row");

    /* Other weights, and a smaller layer with the same W pointer. */
    for (size_t j = 0; j < h * d; j++)
        W2[j] = 1.5 * L.W[j];
    assert_cached_is_plain(&spec, &key, &L, W2, L.X, "other weights");
    L.h = h - 1;
    assert_cached_is_plain(&spec, &key, &L, L.W, L.X, "smaller h");
    L.h = h;

    /* W changed in place without telling: the old products are used. */
    ck_assert_int_eq(pnd_layer_forward(&spec, &key, 1, h, d, L.W, L.b, L.X,
                                       Zold, L.w), PND_OK);
    for (size_t j = 0; j < h * d; j++)
        L.W[j] = -L.W[j];
    ck_assert_int_eq(pnd_layer_forward(&spec, &key, 1, h, d, L.W, L.b, L.X,
                                       L.Z, L.w), PND_OK);
    ck_assert(memcmp(L.Z, Zold, h * sizeof *Zold) == 0);
    forward_plain(&spec, &key, 1, h, d, L.W, L.b, L.X, Zplain);
    ck_assert(memcmp(L.Z, Zplain, h * sizeof *Zplain) != 0);
    /* Promised again, the new W is used. */
    ck_assert_int_eq(pnd_mask_workspace_fix_product(L.w, h, d, L.W, n, L.X),
                     PND_OK);
    assert_cached_is_plain(&spec, &key, &L, L.W, L.X, "promised again");
    /* The promise ended: no cache. */
    ck_assert_int_eq(pnd_mask_workspace_fix_product(L.w, h, d, NULL, 0,
                                                    NULL), PND_OK);
    for (size_t j = 0; j < h * d; j++)
        L.W[j] = 0.5 * L.W[j];
    assert_cached_is_plain(&spec, &key, &L, L.W, L.X, "promise ended");

    free(W2);
    free(X2);
    free(Zold);
    free(Zplain);
    layer_free(&L);
}
END_TEST

/* A batch with more rows than were promised mixes cached rows and plain
 * ones in one chunk, and every row keeps the plain bits. Rows whose
 * products exceed 2 MiB (10 rows of 256 KiB) leave the cache off, which
 * shows as a W changed in place being used at once. */
START_TEST(test_mask_product_cache_limits)
{
    size_t n = 10, h = 64, d = 512;
    struct layer L = layer_make(n, h, d, 1700);
    struct pnd_mask_spec spec = { PND_SCHEME_PERNODEDROP, TEST_P, NULL };
    struct pnd_mask_key key = test_key();
    double *Zplain = malloc(n * h * sizeof *Zplain);   /* (n, h) */

    ck_assert_ptr_nonnull(Zplain);
    ck_assert_int_eq(pnd_mask_workspace_fix_product(L.w, h, d, L.W, 3, L.X),
                     PND_OK);
    for (int pass = 0; pass < 2; pass++) {
        ck_assert_int_eq(pnd_layer_forward(&spec, &key, n, h, d, L.W, L.b,
                                           L.X, L.Z, L.w), PND_OK);
        forward_plain(&spec, &key, n, h, d, L.W, L.b, L.X, Zplain);
        ck_assert(memcmp(L.Z, Zplain, n * h * sizeof *Zplain) == 0);
    }

    ck_assert_int_eq(pnd_mask_workspace_fix_product(L.w, h, d, L.W, n, L.X),
                     PND_OK);
    assert_cached_is_plain(&spec, &key, &L, L.W, L.X, "over the limit");
    for (size_t j = 0; j < h * d; j++)
        L.W[j] = -L.W[j];
    assert_cached_is_plain(&spec, &key, &L, L.W, L.X, "cache off");
    free(Zplain);
    layer_free(&L);
}
END_TEST

/* --- Limits --------------------------------------------------------------- */

START_TEST(test_mask_invalid_p)
{
    static const double bad[] = { -0.1, 1.0, 1.5, -INFINITY };

    for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
        ck_assert_int_eq(pnd_check_p(bad[j], "--p"), PND_EINVAL);
        ck_assert_ptr_nonnull(strstr(pnd_error_message(), "--p"));
        ck_assert_ptr_nonnull(strstr(pnd_error_message(), "0 <= p < 1"));
    }
    ck_assert_int_eq(pnd_check_p(NAN, "train.p"), PND_EINVAL);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "train.p"));
    ck_assert_int_eq(pnd_check_p(0.0, "--p"), PND_OK);
    ck_assert_int_eq(pnd_check_p(0.999, "--p"), PND_OK);

    /* The layer passes check p too. */
    size_t h = 2, d = 3;
    struct layer L = layer_make(1, h, d, 700);
    struct pnd_mask_spec spec = { PND_SCHEME_PERNODEDROP, 1.0, NULL };
    struct pnd_mask_key key = test_key();

    ck_assert_int_eq(pnd_layer_forward(&spec, &key, 1, h, d, L.W, L.b, L.X,
                                       L.Z, L.w), PND_EINVAL);
    spec.p = NAN;
    ck_assert_int_eq(pnd_layer_backward(&spec, &key, 1, h, d, L.W, L.X, L.dZ,
                                        L.dW, NULL, NULL, L.w), PND_EINVAL);
    ck_assert_int_eq(pnd_mask_fixed_bits(1, 0, -0.5, h, d, NULL), PND_EINVAL);
    layer_free(&L);
}
END_TEST

START_TEST(test_mask_invalid_scheme)
{
    enum pnd_scheme s = PND_SCHEME_NONE;
    struct pnd_mask_spec spec = { PND_SCHEME_COUNT, 0.1, NULL };
    struct layer L = layer_make(1, 2, 3, 800);
    struct pnd_mask_key key = test_key();

    ck_assert_int_eq(pnd_scheme_parse("per-node-drop", &s), PND_EINVAL);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "per-node-drop"));
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "pernodedrop-gaussian"));
    ck_assert_int_eq(pnd_scheme_parse(NULL, &s), PND_EINVAL);
    ck_assert_int_eq(pnd_scheme_parse("", &s), PND_EINVAL);
    ck_assert_int_eq(s, PND_SCHEME_NONE);
    ck_assert_str_eq(pnd_scheme_name(PND_SCHEME_COUNT), "invalid");
    ck_assert_int_eq(pnd_layer_forward(&spec, &key, 1, 2, 3, L.W, L.b, L.X,
                                       L.Z, L.w), PND_EINVAL);
    ck_assert_int_eq(pnd_layer_forward(NULL, &key, 1, 2, 3, L.W, L.b, L.X,
                                       L.Z, L.w), PND_EINVAL);
    layer_free(&L);
}
END_TEST

START_TEST(test_mask_zero_dimensions)
{
    struct layer L = layer_make(2, 3, 4, 900);
    struct pnd_mask_spec spec = { PND_SCHEME_PERNODEDROP, TEST_P, NULL };
    struct pnd_mask_key key = test_key();
    uint64_t bits[3];
    double M[12];

    ck_assert_ptr_null(pnd_mask_workspace_alloc(0, 4));
    ck_assert_ptr_null(pnd_mask_workspace_alloc(3, 0));
    pnd_mask_workspace_free(NULL);
    ck_assert_int_eq(pnd_layer_forward(&spec, &key, 2, 0, 4, L.W, L.b, L.X,
                                       L.Z, L.w), PND_EINVAL);
    ck_assert_int_eq(pnd_layer_forward(&spec, &key, 2, 3, 0, L.W, L.b, L.X,
                                       L.Z, L.w), PND_EINVAL);
    ck_assert_int_eq(pnd_layer_backward(&spec, &key, 2, 0, 4, L.W, L.X, L.dZ,
                                        L.dW, L.db, L.dX, L.w), PND_EINVAL);
    ck_assert_int_eq(pnd_mask_values(&spec, &key, 0, 4, M), PND_EINVAL);
    ck_assert_int_eq(pnd_mask_fixed_bits(1, 0, TEST_P, 3, 0, bits),
                     PND_EINVAL);
    ck_assert_int_eq(pnd_layer_forward_reference(&spec, &key, 2, 3, 0, L.W,
                                                 L.b, L.X, L.Z), PND_EINVAL);

    /* An empty batch is valid and leaves the outputs alone. */
    L.Z[0] = 42.0;
    ck_assert_int_eq(pnd_layer_forward(&spec, &key, 0, 3, 4, L.W, L.b, L.X,
                                       L.Z, L.w), PND_OK);
    ck_assert_double_eq(L.Z[0], 42.0);
    ck_assert_int_eq(pnd_layer_backward(&spec, &key, 0, 3, 4, L.W, L.X, L.dZ,
                                        L.dW, L.db, L.dX, L.w), PND_OK);
    layer_free(&L);
}
END_TEST

/* NULL db, dX and b are optional and change nothing else; NULL key and
 * workspace are accepted only for an unmasked layer. */
START_TEST(test_mask_null_optional_outputs)
{
    size_t n = 4, h = 3, d = 66;
    struct layer L = layer_make(n, h, d, 1000);
    struct pnd_mask_key key = test_key();
    double *dW1 = calloc(h * d, sizeof *dW1);
    double *Z1 = malloc(n * h * sizeof *Z1);
    double *b0 = calloc(h, sizeof *b0);
    struct pnd_mask_spec none = { PND_SCHEME_NONE, 0.5, NULL };

    ck_assert(dW1 && Z1 && b0);
    for (size_t j = 0; j < N_MASKED; j++) {
        struct pnd_mask_spec spec = { masked_schemes[j], TEST_P, NULL };

        memset(L.dW, 0, h * d * sizeof *L.dW);
        memset(dW1, 0, h * d * sizeof *dW1);
        ck_assert_int_eq(pnd_layer_backward(&spec, &key, n, h, d, L.W, L.X,
                                            L.dZ, L.dW, L.db, L.dX, L.w),
                         PND_OK);
        ck_assert_int_eq(pnd_layer_backward(&spec, &key, n, h, d, L.W, L.X,
                                            L.dZ, dW1, NULL, NULL, L.w),
                         PND_OK);
        ck_assert(memcmp(L.dW, dW1, h * d * sizeof *dW1) == 0);

        ck_assert_int_eq(pnd_layer_forward(&spec, &key, n, h, d, L.W, NULL,
                                           L.X, L.Z, L.w), PND_OK);
        ck_assert_int_eq(pnd_layer_forward(&spec, &key, n, h, d, L.W, b0,
                                           L.X, Z1, L.w), PND_OK);
        ck_assert(memcmp(L.Z, Z1, n * h * sizeof *Z1) == 0);

        ck_assert_int_eq(pnd_layer_forward(&spec, NULL, n, h, d, L.W, L.b,
                                           L.X, L.Z, L.w), PND_EINVAL);
        ck_assert_int_eq(pnd_layer_forward(&spec, &key, n, h, d, L.W, L.b,
                                           L.X, L.Z, NULL), PND_EINVAL);
        ck_assert_int_eq(pnd_layer_backward(&spec, &key, n, h, d, L.W, L.X,
                                            L.dZ, NULL, NULL, NULL, L.w),
                         PND_EINVAL);
    }
    ck_assert_int_eq(pnd_layer_forward(&none, NULL, n, h, d, L.W, L.b, L.X,
                                       L.Z, NULL), PND_OK);
    free(dW1);
    free(Z1);
    free(b0);
    layer_free(&L);
}
END_TEST

START_TEST(test_mask_workspace_too_small)
{
    struct layer L = layer_make(1, 4, 10, 1100);
    struct pnd_mask_workspace *small = pnd_mask_workspace_alloc(4, 9);
    struct pnd_mask_spec spec = { PND_SCHEME_DROPCONNECT, TEST_P, NULL };
    struct pnd_mask_key key = test_key();

    ck_assert_ptr_nonnull(small);
    ck_assert_int_eq(pnd_layer_forward(&spec, &key, 1, 4, 10, L.W, L.b, L.X,
                                       L.Z, small), PND_EINVAL);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "workspace"));
    /* A larger workspace serves a smaller layer. */
    ck_assert_int_eq(pnd_layer_forward(&spec, &key, 1, 3, 8, L.W, L.b, L.X,
                                       L.Z, L.w), PND_OK);
    pnd_mask_workspace_free(small);
    layer_free(&L);
}
END_TEST

/* Reserving the bit cache: NULL is invalid, a size that cannot be
 * allocated is PND_ENOMEM and leaves the workspace usable. */
START_TEST(test_mask_workspace_reserve_limits)
{
    struct layer L = layer_make(2, 4, 10, 1400);
    struct pnd_mask_spec spec = { PND_SCHEME_PERNODEDROP, TEST_P, NULL };
    struct pnd_mask_key key = test_key();

    ck_assert_int_eq(pnd_mask_workspace_reserve(NULL, 8), PND_EINVAL);
    ck_assert_int_eq(pnd_mask_workspace_reserve(L.w, SIZE_MAX / 2),
                     PND_ENOMEM);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "reserve fewer"));
    ck_assert_int_eq(pnd_mask_workspace_reserve(L.w, 0), PND_OK);
    ck_assert_int_eq(pnd_layer_forward(&spec, &key, 2, 4, 10, L.W, L.b, L.X,
                                       L.Z, L.w), PND_OK);
    ck_assert_int_eq(pnd_layer_backward(&spec, &key, 2, 4, 10, L.W, L.X,
                                        L.dZ, L.dW, L.db, L.dX, L.w), PND_OK);
    layer_free(&L);
}
END_TEST

START_TEST(test_mask_non_finite_input)
{
    struct layer L = layer_make(2, 3, 5, 1200);
    struct pnd_mask_key key = test_key();

    /* A NaN input reaches Z on the unmasked path and through the masked
     * weights of dropconnect (a dropped connection still multiplies it by
     * 0, and 0 * NaN is NaN in the GEMM). */
    L.X[6] = NAN;
    struct pnd_mask_spec spec = { PND_SCHEME_PERNODEDROP, 0.0, NULL };

    ck_assert_int_eq(pnd_layer_forward(&spec, &key, 2, 3, 5, L.W, L.b, L.X,
                                       L.Z, L.w), PND_ENUMERIC);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "not finite"));
    spec.scheme = PND_SCHEME_DROPCONNECT;
    spec.p = 0.1;
    ck_assert_int_eq(pnd_layer_forward(&spec, &key, 2, 3, 5, L.W, L.b, L.X,
                                       L.Z, L.w), PND_ENUMERIC);

    /* The backward pass checks its inputs X and dZ. */
    ck_assert_int_eq(pnd_layer_backward(&spec, &key, 2, 3, 5, L.W, L.X, L.dZ,
                                        L.dW, NULL, NULL, L.w), PND_ENUMERIC);
    L.X[6] = 0.5;
    L.dZ[4] = INFINITY;
    spec.scheme = PND_SCHEME_PERNODEDROP;
    ck_assert_int_eq(pnd_layer_backward(&spec, &key, 2, 3, 5, L.W, L.X, L.dZ,
                                        L.dW, L.db, L.dX, L.w), PND_ENUMERIC);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "dZ"));
    layer_free(&L);
}
END_TEST

/* pnd_mask_workspace_fix_product rejects a missing workspace, a layer
 * larger than the workspace and missing inputs. W = NULL or n = 0 ends the
 * promise. */
START_TEST(test_mask_fix_product_limits)
{
    struct layer L = layer_make(2, 4, 10, 1800);

    ck_assert_int_eq(pnd_mask_workspace_fix_product(NULL, 4, 10, L.W, 2,
                                                    L.X), PND_EINVAL);
    ck_assert_int_eq(pnd_mask_workspace_fix_product(L.w, 5, 10, L.W, 2,
                                                    L.X), PND_EINVAL);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "workspace"));
    ck_assert_int_eq(pnd_mask_workspace_fix_product(L.w, 4, 11, L.W, 2,
                                                    L.X), PND_EINVAL);
    ck_assert_int_eq(pnd_mask_workspace_fix_product(L.w, 4, 10, L.W, 2,
                                                    NULL), PND_EINVAL);
    ck_assert_int_eq(pnd_mask_workspace_fix_product(L.w, 4, 10, NULL, 2,
                                                    L.X), PND_OK);
    ck_assert_int_eq(pnd_mask_workspace_fix_product(L.w, 4, 10, L.W, 0,
                                                    L.X), PND_OK);
    layer_free(&L);
}
END_TEST

/* pnd_mask_bench runs one call with min_seconds = 0 and rejects empty
 * shapes; its speed is measured by pnd bench, not here. */
START_TEST(test_mask_bench_arguments)
{
    double rate = 0.0;

    ck_assert_int_eq(pnd_mask_bench(PND_SCHEME_PERNODEDROP, TEST_P, 2, 3, 70,
                                    true, 0.0, &rate), PND_OK);
    ck_assert_double_gt(rate, 0.0);
    ck_assert_int_eq(pnd_mask_bench(PND_SCHEME_FIXED_MASK, TEST_P, 2, 3, 70,
                                    false, 0.0, &rate), PND_OK);
    ck_assert_int_eq(pnd_mask_bench(PND_SCHEME_NONE, 0.0, 0, 3, 70, false,
                                    0.0, &rate), PND_EINVAL);
    ck_assert_int_eq(pnd_mask_bench(PND_SCHEME_NONE, 0.0, 1, 3, 70, false,
                                    0.0, NULL), PND_EINVAL);
    ck_assert_int_eq(pnd_mask_bench(PND_SCHEME_DROPOUT, 1.0, 1, 3, 70, false,
                                    0.0, &rate), PND_EINVAL);
}
END_TEST

Suite *
pnd_mask_suite(void)
{
    Suite *s = suite_create("mask");
    TCase *core = tcase_create("Core");
    TCase *limits = tcase_create("Limits");

    tcase_set_timeout(core, 30);
    tcase_add_test(core, test_mask_names_round_trip);
    tcase_add_test(core, test_mask_noise_moments);
    tcase_add_test(core, test_mask_draw_order);
    tcase_add_test(core, test_mask_forward_matches_reference);
    tcase_add_test(core, test_mask_backward_matches_reference);
    tcase_add_test(core, test_mask_backward_reuses_forward_bits);
    tcase_add_test(core, test_mask_keep_fraction);
    tcase_add_test(core, test_mask_gaussian_moments);
    tcase_add_test(core, test_mask_sharing);
    tcase_add_test(core, test_mask_chunking_independent);
    tcase_add_test(core, test_mask_threads_match_serial);
    tcase_add_test(core, test_mask_p_zero_is_unmasked);
    tcase_add_test(core, test_mask_fixed_across_steps);
    tcase_add_test(core, test_mask_gradient_finite_differences);
    tcase_add_test(core, test_mask_sum_bits_matches_dot);
    tcase_add_test(core, test_mask_product_cache_matches);
    tcase_add_test(core, test_mask_draws_plain);
    tcase_add_test(core, test_mask_product_cache_not_stale);
    tcase_add_test(core, test_mask_product_cache_limits);
    suite_add_tcase(s, core);

    tcase_add_test(limits, test_mask_invalid_p);
    tcase_add_test(limits, test_mask_invalid_scheme);
    tcase_add_test(limits, test_mask_zero_dimensions);
    tcase_add_test(limits, test_mask_null_optional_outputs);
    tcase_add_test(limits, test_mask_workspace_too_small);
    tcase_add_test(limits, test_mask_workspace_reserve_limits);
    tcase_add_test(limits, test_mask_non_finite_input);
    tcase_add_test(limits, test_mask_bench_arguments);
    tcase_add_test(limits, test_mask_fix_product_limits);
    suite_add_tcase(s, limits);
    return s;
}
