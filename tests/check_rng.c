/* PCG generators, GSL types, derived streams, Bernoulli words and normals.
 *
 * Golden values: pcg32 from the reference library's published demo output,
 * pcg64 and pcg64-dxsm from numpy (tests/data, written by
 * tests/make_rng_vectors.py). Statistical tests use fixed seeds and the
 * bounds stated beside each constant; a bound of 4 sigma corresponds to a
 * two-sided normal tail probability of 6.3e-5.
 */
#include <config.h>

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_sort.h>

#include "base/rng_table.h"
#include "pnd/error.h"
#include "pnd/rng.h"
#include "tests/suites.h"

/* Monte Carlo comparisons: |z| <= 4. */
#define Z_BOUND 4.0
/* Chi-square and KS p-values below this are failures: the two-sided normal
 * tail probability at 4 sigma. */
#define P_VALUE_MIN 6.3e-5
/* 64 lanes times several q values: 4.5 sigma per lane keeps the chance of
 * any false alarm in one run below 0.3%. */
#define Z_BOUND_PER_LANE 4.5
/* 2016 pairs of lanes: 5 sigma per pair keeps it near 0.1%. */
#define Z_BOUND_PER_PAIR 5.0
/* Start of the normal tail in the ziggurat (base/make_ziggurat.py). */
#define ZIGGURAT_TAIL_START 3.6541528853610088

static const uint32_t pcg32_golden[] = {
    0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e
};

/* ---- helpers ---- */

static pnd_uint128
parse_hex128(const char *text)
{
    pnd_uint128 value = 0;

    for (const char *c = text; *c; c++) {
        int digit;

        if (*c >= '0' && *c <= '9')
            digit = *c - '0';
        else if (*c >= 'a' && *c <= 'f')
            digit = *c - 'a' + 10;
        else
            ck_abort_msg("invalid hex digit in '%s'", text);
        value = (value << 4) | (pnd_uint128) digit;
    }
    return value;
}

typedef uint64_t (*next64_fn)(pnd_pcg64 *r);
typedef void (*init64_fn)(pnd_pcg64 *r, pnd_uint128 initstate,
                          pnd_uint128 initseq);
typedef void (*advance64_fn)(pnd_pcg64 *r, pnd_uint128 delta);

/* Compare a generator with the numpy vectors in the file name; returns the
 * number of cases checked. */
static int
check_vectors(const char *name, init64_fn init, next64_fn next,
              advance64_fn advance)
{
    char path[4096], line[512];
    FILE *fp;
    int n_cases = 0;

    snprintf(path, sizeof path, "%s/%s", pnd_test_data_dir(), name);
    fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    while (fgets(line, sizeof line, fp)) {
        char initstate[64], initseq[64], state[64], inc[64], delta[64];
        int n;
        pnd_pcg64 r;

        if (line[0] == '#')
            continue;
        ck_assert_int_eq(sscanf(line, "case %63s %63s %63s %63s %63s %d",
                                initstate, initseq, state, inc, delta, &n), 6);
        if (strcmp(initstate, "-") == 0) {
            r.state = parse_hex128(state);
            r.inc = parse_hex128(inc);
        } else {
            init(&r, parse_hex128(initstate), parse_hex128(initseq));
            ck_assert_msg(r.state == parse_hex128(state),
                          "%s case %d: state after init differs", name, n_cases);
            ck_assert_msg(r.inc == parse_hex128(inc),
                          "%s case %d: increment after init differs", name, n_cases);
        }
        advance(&r, parse_hex128(delta));
        for (int i = 0; i < n; i++) {
            ck_assert_ptr_nonnull(fgets(line, sizeof line, fp));
            line[strcspn(line, "\n")] = '\0';
            ck_assert_msg(next(&r) == (uint64_t) parse_hex128(line),
                          "%s case %d output %d differs from numpy (%s)",
                          name, n_cases, i, line);
        }
        n_cases++;
    }
    fclose(fp);
    return n_cases;
}

/* Chi-square p-value (upper tail) of counts against equal expectation. */
static double
chisq_uniform_p(const unsigned long *counts /* (n_bins) */, size_t n_bins,
                unsigned long n_draws)
{
    double expected = (double) n_draws / (double) n_bins;
    double chisq = 0.0;

    for (size_t i = 0; i < n_bins; i++) {
        double d = (double) counts[i] - expected;

        chisq += d * d / expected;
    }
    return gsl_cdf_chisq_Q(chisq, (double) (n_bins - 1));
}

/* z-score of a binomial count. */
static double
binomial_z(double count, double n, double p)
{
    return (count - n * p) / sqrt(n * p * (1.0 - p));
}

/* ---- Core: golden values ---- */

START_TEST(test_pcg32_golden)
{
    pnd_pcg32 r, start;

    pnd_pcg32_init(&r, 42, 54);
    start = r;
    for (size_t i = 0; i < 6; i++)
        ck_assert_uint_eq(pnd_pcg32_next(&r), pcg32_golden[i]);

    pnd_pcg32_advance(&r, -6);
    ck_assert_uint_eq(r.state, start.state);
    ck_assert_uint_eq(pnd_pcg32_next(&r), pcg32_golden[0]);

    pnd_pcg32_advance(&r, 4);
    ck_assert_uint_eq(pnd_pcg32_next(&r), pcg32_golden[5]);
}
END_TEST

START_TEST(test_pcg64_numpy_vectors)
{
    ck_assert_int_eq(check_vectors("rng_pcg64.txt", pnd_pcg64_init,
                                   pnd_pcg64_next, pnd_pcg64_advance), 10);
}
END_TEST

START_TEST(test_pcg64dxsm_numpy_vectors)
{
    ck_assert_int_eq(check_vectors("rng_pcg64dxsm.txt", pnd_pcg64dxsm_init,
                                   pnd_pcg64dxsm_next, pnd_pcg64dxsm_advance),
                     10);
}
END_TEST

START_TEST(test_advance_matches_steps)
{
    const int n_steps = 1000;
    pnd_pcg64 a, b;
    pnd_pcg32 c, d;

    pnd_pcg64_init(&a, 7, 11);
    b = a;
    for (int i = 0; i < n_steps; i++)
        pnd_pcg64_next(&a);
    pnd_pcg64_advance(&b, n_steps);
    ck_assert(a.state == b.state);
    pnd_pcg64_advance(&b, -(pnd_uint128) n_steps);
    pnd_pcg64_init(&a, 7, 11);
    ck_assert(a.state == b.state);

    pnd_pcg64dxsm_init(&a, 7, 11);
    b = a;
    for (int i = 0; i < n_steps; i++)
        pnd_pcg64dxsm_next(&a);
    pnd_pcg64dxsm_advance(&b, n_steps);
    ck_assert(a.state == b.state);
    pnd_pcg64dxsm_advance(&b, -(pnd_uint128) n_steps);
    pnd_pcg64dxsm_init(&a, 7, 11);
    ck_assert(a.state == b.state);

    pnd_pcg32_init(&c, 7, 11);
    d = c;
    for (int i = 0; i < n_steps; i++)
        pnd_pcg32_next(&c);
    pnd_pcg32_advance(&d, n_steps);
    ck_assert_uint_eq(c.state, d.state);
}
END_TEST

/* ---- Core: uniformity ---- */

#define N_UNIFORM_DRAWS 1000000UL
#define N_UNIFORM_BINS 1000

START_TEST(test_double_chisq_uniform)
{
    unsigned long counts[3][N_UNIFORM_BINS];
    unsigned long outside = 0;
    pnd_pcg32 r32;
    pnd_pcg64 r64, rdx;

    memset(counts, 0, sizeof counts);
    pnd_pcg32_init(&r32, 1, 2);
    pnd_pcg64_init(&r64, 3, 4);
    pnd_pcg64dxsm_init(&rdx, 5, 6);
    for (unsigned long i = 0; i < N_UNIFORM_DRAWS; i++) {
        double u[3] = {
            pnd_pcg32_double(&r32), pnd_pcg64_double(&r64),
            pnd_pcg64dxsm_double(&rdx)
        };

        for (int g = 0; g < 3; g++) {
            if (u[g] >= 0.0 && u[g] < 1.0)
                counts[g][(size_t) (u[g] * N_UNIFORM_BINS)]++;
            else
                outside++;
        }
    }
    /* Counted first, asserted once: a Check assertion per draw is slow. */
    ck_assert_uint_eq(outside, 0);
    for (int g = 0; g < 3; g++) {
        double p = chisq_uniform_p(counts[g], N_UNIFORM_BINS, N_UNIFORM_DRAWS);

        ck_assert_msg(p >= P_VALUE_MIN, "generator %d: chi-square p = %g", g, p);
    }
}
END_TEST

START_TEST(test_bounded_chisq_uniform)
{
    /* 1000 is not a power of two, so a biased reduction would show. */
    const uint32_t bound = 1000;
    unsigned long counts[3][1000];
    unsigned long outside = 0;
    pnd_pcg32 r32;
    pnd_pcg64 r64, rdx;

    memset(counts, 0, sizeof counts);
    pnd_pcg32_init(&r32, 8, 9);
    pnd_pcg64_init(&r64, 10, 11);
    pnd_pcg64dxsm_init(&rdx, 12, 13);
    for (unsigned long i = 0; i < N_UNIFORM_DRAWS; i++) {
        uint64_t v[3] = {
            pnd_pcg32_bounded(&r32, bound), pnd_pcg64_bounded(&r64, bound),
            pnd_pcg64dxsm_bounded(&rdx, bound)
        };

        for (int g = 0; g < 3; g++) {
            if (v[g] < bound)
                counts[g][v[g]]++;
            else
                outside++;
        }
    }
    ck_assert_uint_eq(outside, 0);
    for (int g = 0; g < 3; g++) {
        double p = chisq_uniform_p(counts[g], bound, N_UNIFORM_DRAWS);

        ck_assert_msg(p >= P_VALUE_MIN, "generator %d: chi-square p = %g", g, p);
    }
}
END_TEST

/* With bound = 2/3 of the range, "output % bound" would put the lower half
 * of [0, bound) at probability 2/3 instead of 1/2. */
START_TEST(test_bounded_large_bound_unbiased)
{
    const uint32_t bound32 = 0xaaaaaaabU;
    const uint64_t bound64 = 0xaaaaaaaaaaaaaaabULL;
    const double n = 200000.0;
    double low32 = 0, low64 = 0;
    unsigned long outside = 0;
    pnd_pcg32 r32;
    pnd_pcg64 rdx;

    pnd_pcg32_init(&r32, 14, 15);
    pnd_pcg64dxsm_init(&rdx, 16, 17);
    for (int i = 0; i < (int) n; i++) {
        uint32_t a = pnd_pcg32_bounded(&r32, bound32);
        uint64_t b = pnd_pcg64dxsm_bounded(&rdx, bound64);

        outside += a >= bound32;
        outside += b >= bound64;
        low32 += a < bound32 / 2;
        low64 += b < bound64 / 2;
    }
    ck_assert_uint_eq(outside, 0);
    ck_assert_double_le(fabs(binomial_z(low32, n, 0.5)), Z_BOUND);
    ck_assert_double_le(fabs(binomial_z(low64, n, 0.5)), Z_BOUND);
}
END_TEST

/* States chosen so that the next 53-bit draw is 0: the closed interval
 * variant returns 0.0 and the open one must skip it. */
START_TEST(test_double_open_skips_zero)
{
    pnd_pcg32 r32 = {0, 1};      /* outputs 0 from state 0, then from 1 */
    pnd_pcg64 r64, rdx;
    const pnd_uint128 equal_halves = PND_UINT128(0x1234, 0x1234);

    ck_assert_double_eq(pnd_pcg32_double(&r32), 0.0);
    r32 = (pnd_pcg32) {0, 1};
    ck_assert_double_gt(pnd_pcg32_double_open(&r32), 0.0);

    /* XSL-RR of a state whose halves are equal is 0. */
    r64.inc = 1;
    r64.state = equal_halves;
    pnd_pcg64_advance(&r64, -(pnd_uint128) 1);
    ck_assert_double_eq(pnd_pcg64_double(&r64), 0.0);
    r64.state = equal_halves;
    pnd_pcg64_advance(&r64, -(pnd_uint128) 1);
    ck_assert_double_gt(pnd_pcg64_double_open(&r64), 0.0);

    /* DXSM of a state whose high half is 0 is 0. */
    rdx.inc = 1;
    rdx.state = 5;
    ck_assert_double_eq(pnd_pcg64dxsm_double(&rdx), 0.0);
    rdx.state = 5;
    ck_assert_double_gt(pnd_pcg64dxsm_double_open(&rdx), 0.0);
}
END_TEST

START_TEST(test_double_open_range)
{
    unsigned long outside = 0;
    pnd_pcg64 r;

    pnd_pcg64dxsm_init(&r, 18, 19);
    for (int i = 0; i < 100000; i++) {
        double u = pnd_pcg64dxsm_double_open(&r);

        outside += !(u > 0.0 && u < 1.0);
    }
    ck_assert_uint_eq(outside, 0);
}
END_TEST

/* ---- Core: GSL types ---- */

START_TEST(test_gsl_types_match_direct)
{
    gsl_rng *g32 = gsl_rng_alloc(pnd_gsl_rng_pcg32);
    gsl_rng *g64 = gsl_rng_alloc(pnd_gsl_rng_pcg64);
    gsl_rng *gdx = gsl_rng_alloc(pnd_gsl_rng_pcg64dxsm);
    pnd_pcg32 r32;
    pnd_pcg64 r64, rdx;

    ck_assert_ptr_nonnull(g32);
    ck_assert_ptr_nonnull(g64);
    ck_assert_ptr_nonnull(gdx);
    ck_assert_str_eq(gsl_rng_name(gdx), "pcg64-dxsm");
    gsl_rng_set(g32, 42);
    gsl_rng_set(g64, 42);
    gsl_rng_set(gdx, 42);
    pnd_pcg32_init(&r32, 42, PND_RNG_DEFAULT_STREAM);
    pnd_pcg64_init(&r64, 42, PND_RNG_DEFAULT_STREAM);
    pnd_pcg64dxsm_init(&rdx, 42, PND_RNG_DEFAULT_STREAM);
    for (int i = 0; i < 10; i++) {
        ck_assert_uint_eq(gsl_rng_get(g32), pnd_pcg32_next(&r32));
        ck_assert_uint_eq(gsl_rng_get(g64), pnd_pcg64_next(&r64));
        ck_assert_uint_eq(gsl_rng_get(gdx), pnd_pcg64dxsm_next(&rdx));
    }
    ck_assert_double_eq(gsl_rng_uniform(gdx), pnd_pcg64dxsm_double(&rdx));
    ck_assert_uint_lt(gsl_rng_uniform_int(gdx, 10), 10);
    ck_assert_ptr_null(pnd_rng_gsl_state64(g32));
    ck_assert_ptr_eq(pnd_rng_gsl_state64(gdx), gdx->state);

    gsl_rng_free(g32);
    gsl_rng_free(g64);
    gsl_rng_free(gdx);
}
END_TEST

START_TEST(test_gsl_gaussian_moments)
{
    const int n = 200000;
    const double sigma = 2.0;
    gsl_rng *r = gsl_rng_alloc(pnd_gsl_rng_pcg64dxsm);
    double sum = 0.0, sum2 = 0.0, mean, var;

    gsl_rng_set(r, 2024);
    for (int i = 0; i < n; i++) {
        double x = gsl_ran_gaussian(r, sigma);

        sum += x;
        sum2 += x * x;
    }
    mean = sum / n;
    var = sum2 / n - mean * mean;
    /* Standard errors: sigma / sqrt(n) for the mean and, for a normal
     * sample, sigma^2 sqrt(2 / n) for the variance. */
    ck_assert_double_le(fabs(mean) / (sigma / sqrt(n)), Z_BOUND);
    ck_assert_double_le(fabs(var - sigma * sigma) / (sigma * sigma * sqrt(2.0 / n)),
                        Z_BOUND);
    gsl_rng_free(r);
}
END_TEST

/* ---- Core: derived streams ---- */

START_TEST(test_derive_pure_function)
{
    const uint64_t coords[3] = {1, 2, 3};
    pnd_pcg64 a, b;
    gsl_rng *g = gsl_rng_alloc(pnd_gsl_rng_pcg64dxsm);

    pnd_rng_derive(&a, 99, coords, 3);
    pnd_rng_derive(&b, 99, coords, 3);
    ck_assert(a.state == b.state && a.inc == b.inc);
    for (int i = 0; i < 16; i++)
        ck_assert_uint_eq(pnd_pcg64dxsm_next(&a), pnd_pcg64dxsm_next(&b));

    pnd_rng_derive(&a, 99, coords, 3);
    pnd_rng_derive_gsl(g, 99, coords, 3);
    ck_assert_uint_eq(gsl_rng_get(g), pnd_pcg64dxsm_next(&a));
    gsl_rng_free(g);
}
END_TEST

START_TEST(test_derive_distinct_tuples)
{
    /* Each tuple differs from the first in one place: the seed, one
     * coordinate, or the length. */
    const uint64_t tuples[][4] = {
        {1, 2, 3, 0}, {1, 2, 4, 0}, {1, 3, 3, 0}, {2, 2, 3, 0}, {1, 2, 3, 0},
        {1, 2, 3, 0}
    };
    const uint64_t seeds[] = {7, 7, 7, 7, 8, 7};
    const size_t lengths[] = {3, 3, 3, 3, 3, 4};
    const size_t n_tuples = sizeof seeds / sizeof seeds[0];
    uint64_t first[6];

    for (size_t t = 0; t < n_tuples; t++) {
        pnd_pcg64 r;

        pnd_rng_derive(&r, seeds[t], tuples[t], lengths[t]);
        first[t] = pnd_pcg64dxsm_next(&r);
        for (size_t u = 0; u < t; u++)
            ck_assert_msg(first[t] != first[u], "tuples %zu and %zu give the same output",
                          u, t);
    }
}
END_TEST

/* Correlation of paired draws from streams whose tuples differ by one in
 * coordinate `which` (sample, layer or step): the Pearson correlation of
 * n paired uniforms is about N(0, 1/n), and the number of equal bits among
 * 64 n paired bits is Binomial(64 n, 1/2). */
static void
check_neighbour_streams(size_t which)
{
    const int n_pairs = 4000;
    const int n_draws = 32;
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0, equal_bits = 0;
    double n, corr;

    for (int k = 0; k < n_pairs; k++) {
        uint64_t coords[3] = {(uint64_t) k, 5, 1000 + (uint64_t) k};
        pnd_pcg64 a, b;

        pnd_rng_derive(&a, 12345, coords, 3);
        coords[which] += 1;
        pnd_rng_derive(&b, 12345, coords, 3);
        for (int i = 0; i < n_draws; i++) {
            uint64_t wa = pnd_pcg64dxsm_next(&a);
            uint64_t wb = pnd_pcg64dxsm_next(&b);
            double x = (double) (wa >> 11) * 0x1.0p-53 - 0.5;
            double y = (double) (wb >> 11) * 0x1.0p-53 - 0.5;

            sx += x;
            sy += y;
            sxx += x * x;
            syy += y * y;
            sxy += x * y;
            equal_bits += 64 - __builtin_popcountll(wa ^ wb);
        }
    }
    n = (double) n_pairs * n_draws;
    corr = (sxy - sx * sy / n) / sqrt((sxx - sx * sx / n) * (syy - sy * sy / n));
    ck_assert_msg(fabs(corr) * sqrt(n) <= Z_BOUND,
                  "coordinate %zu: correlation %g (z = %g)", which, corr,
                  corr * sqrt(n));
    ck_assert_msg(fabs(binomial_z(equal_bits, 64.0 * n, 0.5)) <= Z_BOUND,
                  "coordinate %zu: equal bits z = %g", which,
                  binomial_z(equal_bits, 64.0 * n, 0.5));
}

START_TEST(test_derive_neighbour_samples)
{
    check_neighbour_streams(0);
}
END_TEST

START_TEST(test_derive_neighbour_layers)
{
    check_neighbour_streams(1);
}
END_TEST

START_TEST(test_derive_neighbour_steps)
{
    check_neighbour_streams(2);
}
END_TEST

/* ---- Core: Bernoulli words ---- */

/* Words per call of pnd_rng_bernoulli_words in the tests: three whole
 * blocks of 64 and a part of one. */
#define WORDS_PER_CALL 200

/* Fills words with n words of Bernoulli(q) bits: one call each from r[0]
 * (many = false), or WORDS_PER_CALL per call of pnd_rng_bernoulli_words
 * from r[0] and r[1] (many = true). */
static void
bernoulli_fill(pnd_pcg64 *r /* (2) */, double q, bool many, size_t n,
               uint64_t *words /* (n) */)
{
    for (size_t i = 0; i < n; i += many ? WORDS_PER_CALL : 1) {
        size_t m = n - i < WORDS_PER_CALL ? n - i : WORDS_PER_CALL;

        if (many)
            pnd_rng_bernoulli_words(r, q, m, words + i);
        else
            words[i] = pnd_rng_bernoulli_word(&r[0], q);
    }
}

/* Each lane of both samplers is Bernoulli(q), for q with few digits
 * (0.5, 0.625: nothing left after the third digit), many digits, and
 * leading zeros beyond the third digit (1e-3). */
START_TEST(test_bernoulli_lane_frequency)
{
    const double q_values[] = {0.5, 0.1, 0.9, 1.0 / 3.0, 1e-3, 0.7071067811865476,
                               0.625};
    const int n_words = 20000;
    uint64_t *words = malloc(n_words * sizeof *words);    /* (n_words) */

    ck_assert_ptr_nonnull(words);
    for (size_t t = 0; t < 2 * (sizeof q_values / sizeof q_values[0]); t++) {
        bool many = t % 2;
        double q = q_values[t / 2], total = 0;
        unsigned long lane_count[64] = {0};
        pnd_pcg64 r[2];

        pnd_pcg64dxsm_init(&r[0], 100 + t, 3);
        pnd_pcg64dxsm_init(&r[1], 100 + t, 4);
        bernoulli_fill(r, q, many, (size_t) n_words, words);
        for (int i = 0; i < n_words; i++) {
            uint64_t w = words[i];

            for (int j = 0; j < 64; j++)
                lane_count[j] += (w >> j) & 1;
            total += __builtin_popcountll(w);
        }
        for (int j = 0; j < 64; j++)
            ck_assert_msg(fabs(binomial_z(lane_count[j], n_words, q)) <= Z_BOUND_PER_LANE,
                          "q = %g many %d lane %d: %lu ones in %d words", q,
                          many, j, lane_count[j], n_words);
        ck_assert_msg(fabs(binomial_z(total, 64.0 * n_words, q)) <= Z_BOUND,
                      "q = %g many %d: %g ones in %d bits", q, many, total,
                      64 * n_words);
    }
    free(words);
}
END_TEST

START_TEST(test_bernoulli_exact_ends)
{
    pnd_pcg64 r;

    unsigned long wrong = 0;

    pnd_pcg64dxsm_init(&r, 1, 1);
    for (int i = 0; i < 1000; i++) {
        wrong += pnd_rng_bernoulli_word(&r, 0.0) != 0;
        wrong += pnd_rng_bernoulli_word(&r, 1.0) != ~(uint64_t) 0;
    }
    ck_assert_uint_eq(wrong, 0);
}
END_TEST

/* Pairs of lanes: the number of words with both bits set is
 * Binomial(n, q^2) when the lanes are independent. For the many-word
 * sampler, whose open lanes share tail words, also every pair of a lane of
 * one word and a lane of the next word. */
static void
check_lane_pairs(bool many)
{
    const double q = 1.0 / 3.0;
    const int n_words = 20000;
    uint64_t *words = malloc(n_words * sizeof *words);    /* (n_words) */
    double worst = 0;
    pnd_pcg64 r[2];

    ck_assert_ptr_nonnull(words);
    pnd_pcg64dxsm_init(&r[0], 77, 78);
    pnd_pcg64dxsm_init(&r[1], 77, 79);
    bernoulli_fill(r, q, many, (size_t) n_words, words);
    for (int next = 0; next <= (int) many; next++)
        for (int a = 0; a < 64; a++)
            for (int b = next ? 0 : a + 1; b < 64; b++) {
                double both = 0, z;

                for (int i = 0; i + next < n_words; i++)
                    both += (words[i] >> a) & (words[i + next] >> b) & 1;
                z = fabs(binomial_z(both, n_words - next, q * q));
                if (z > worst)
                    worst = z;
            }
    free(words);
    ck_assert_double_le(worst, Z_BOUND_PER_PAIR);
}

START_TEST(test_bernoulli_lane_independence)
{
    check_lane_pairs(false);
    check_lane_pairs(true);
}
END_TEST

START_TEST(test_bernoulli_matches_reference)
{
    const double q_values[] = {
        0.5, 0.25, 0.75, 0.1, 0.9, 1.0 / 3.0, 1e-3, 1e-300, 4.9406564584124654e-324,
        0.99999999999999989, 0.49999999999999994, 0.3, 0.6180339887498949
    };

    for (size_t t = 0; t < sizeof q_values / sizeof q_values[0]; t++) {
        pnd_pcg64 fast, ref;

        pnd_pcg64dxsm_init(&fast, 500 + t, 9);
        ref = fast;
        for (int i = 0; i < 200; i++) {
            uint64_t a = pnd_rng_bernoulli_word(&fast, q_values[t]);
            uint64_t b = pnd_rng_bernoulli_word_ref(&ref, q_values[t]);

            ck_assert_msg(a == b, "q = %.17g call %d: 0x%016" PRIx64 " != 0x%016" PRIx64,
                          q_values[t], i, a, b);
            ck_assert_msg(fast.state == ref.state,
                          "q = %.17g call %d: different number of words", q_values[t], i);
        }
    }
}
END_TEST

/* The many-word sampler gives the same words from the same generator
 * outputs as its plain reference, for q with few and many digits,
 * subnormal q and the ends 0 and 1, and for calls of a part of a block,
 * one block and several. The 1000-word calls have about 50 words with more
 * than 4 open lanes (Binomial(64, 1/32)), which the fast sampler shares out
 * in a loop of their own. */
START_TEST(test_bernoulli_words_match_reference)
{
    static const double qs[] = {
        0.7, 0.5, 0.25, 0.1, 1e-3, 0.999999, 1.0 - 0x1p-53, 0x1p-1074,
        0x1p-60, 1.0 / 3.0, 0.0, 1.0, 0.9, 0.2, 0.75 + 0x1p-10,
        0.75 - 0x1p-10, 0.25 - 0x1p-10, 0.25 + 0x1p-10,
    };
    static const size_t counts[] = { 1, 40, 64, 150, 1000 };
    uint64_t words[1000], expected[1000];

    for (size_t t = 0; t < sizeof qs / sizeof qs[0]; t++) {
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            size_t n = counts[c];
            pnd_pcg64 fast[2], ref[2];

            pnd_pcg64dxsm_init(&fast[0], 700 + t, 11 + c);
            pnd_pcg64dxsm_init(&fast[1], 800 + t, 11 + c);
            ref[0] = fast[0];
            ref[1] = fast[1];
            pnd_rng_bernoulli_words(fast, qs[t], n, words);
            pnd_rng_bernoulli_words_ref(ref, qs[t], n, expected);
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(words[i] == expected[i],
                              "q = %.17g, %zu words: word %zu differs",
                              qs[t], n, i);
            for (int g = 0; g < 2; g++)
                ck_assert_msg(fast[g].state == ref[g].state,
                              "q = %.17g, %zu words: different number of "
                              "outputs of generator %d", qs[t], n, g);
        }
    }
}
END_TEST

/* Counts the outputs that r advanced from start by stepping a copy. It
 * stops after limit steps and then returns limit + 1. */
static int
outputs_drawn(pnd_pcg64 start, const pnd_pcg64 *r, int limit)
{
    int steps = 0;

    while (start.state != r->state && steps <= limit) {
        pnd_pcg64dxsm_step(&start);
        steps++;
    }
    return steps;
}

/* When q ends after m <= 4 binary digits, the many-word sampler compares
 * only those m digits and draws nothing else: exactly m outputs per word,
 * word j from generator j % 2. 101 words: 51 from r[0], 50 from r[1]. */
START_TEST(test_bernoulli_words_short_q)
{
    static const struct { double q; int m; } cases[] = {
        { 0.5, 1 }, { 0.75, 2 }, { 0.625, 3 }, { 13.0 / 16.0, 4 },
    };
    uint64_t words[101];

    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        pnd_pcg64 r[2], start[2];

        pnd_pcg64dxsm_init(&r[0], 40 + t, 1);
        pnd_pcg64dxsm_init(&r[1], 40 + t, 2);
        start[0] = r[0];
        start[1] = r[1];
        pnd_rng_bernoulli_words(r, cases[t].q, 101, words);
        ck_assert_int_eq(outputs_drawn(start[0], &r[0], 1000),
                         51 * cases[t].m);
        ck_assert_int_eq(outputs_drawn(start[1], &r[1], 1000),
                         50 * cases[t].m);
    }
}
END_TEST

/* A q of 5 to 64 digits goes by bytes of 8 lanes: every word takes one
 * output of r[0] and one of r[1], and only a tied byte takes more, from
 * r[0]. With 16-digit cells, q = 0.9 ties about 2.3% of the words, so
 * 1000 words take about 23 more outputs (at least one here), and no q
 * takes a few hundred. */
START_TEST(test_bernoulli_words_table_outputs)
{
    static const double qs[] = { 0.9, 21.0 / 32.0, 0.1, 0x1p-11 + 0x1p-60 };
    uint64_t words[1000];

    for (size_t t = 0; t < sizeof qs / sizeof qs[0]; t++) {
        pnd_pcg64 r[2], start[2];
        int extra;

        pnd_pcg64dxsm_init(&r[0], 60 + t, 1);
        pnd_pcg64dxsm_init(&r[1], 60 + t, 2);
        start[0] = r[0];
        start[1] = r[1];
        pnd_rng_bernoulli_words(r, qs[t], 1000, words);
        ck_assert_int_eq(outputs_drawn(start[1], &r[1], 2000), 1000);
        extra = outputs_drawn(start[0], &r[0], 3000) - 1000;
        ck_assert_msg(extra >= (t == 0 ? 1 : 0) && extra <= 200,
                      "q = %.17g: %d outputs for ties in 1000 words",
                      qs[t], extra);
    }
}
END_TEST

/* The bytes of the table method follow the exact distribution of 8
 * Bernoulli(q) lanes: value o has probability q^k (1 - q)^(8 - k) with k
 * its ones. q = 21/32 has all 256 values likely enough for a chi-square
 * test over them, and its boundaries end after 40 digits, so its ties
 * (3% of the words) are decided by the first further output. q = 0.9 is
 * tested by the number of ones, since most of its values are too rare.
 * Bound: the mean of the statistic plus Z_BOUND standard deviations. */
START_TEST(test_bernoulli_words_byte_distribution)
{
    static const double qs[] = { 21.0 / 32.0, 0.9 };
    const size_t n_words = 40000;
    uint64_t *words = malloc(n_words * sizeof *words);    /* (n_words) */

    ck_assert_ptr_nonnull(words);
    for (size_t t = 0; t < sizeof qs / sizeof qs[0]; t++) {
        double q = qs[t], n_bytes = 8.0 * (double) n_words;
        unsigned long count[256] = { 0 };
        double chi2 = 0;
        int cells = t == 0 ? 256 : 9;
        pnd_pcg64 r[2];

        pnd_pcg64dxsm_init(&r[0], 90 + t, 5);
        pnd_pcg64dxsm_init(&r[1], 90 + t, 6);
        pnd_rng_bernoulli_words(r, q, n_words, words);
        for (size_t j = 0; j < n_words; j++)
            for (int b = 0; b < 8; b++) {
                unsigned o = (unsigned) (words[j] >> (8 * b)) & 0xff;

                count[t == 0 ? o : (unsigned) __builtin_popcount(o)]++;
            }
        for (int c = 0; c < cells; c++) {
            int k = t == 0 ? __builtin_popcount((unsigned) c) : c;
            double p = pow(q, k) * pow(1.0 - q, 8 - k);
            double expected;

            if (t == 1) {       /* Binomial(8, q) */
                double ways = 1;

                for (int i = 0; i < k; i++)
                    ways = ways * (8 - i) / (i + 1);
                p *= ways;
            }
            expected = n_bytes * p;
            chi2 += (count[c] - expected) * (count[c] - expected) / expected;
        }
        ck_assert_msg(chi2 <= (cells - 1) + Z_BOUND * sqrt(2.0 * (cells - 1)),
                      "q = %g: chi-square %g over %d cells", q, chi2, cells);
    }
    free(words);
}
END_TEST

/* An independent replay of the byte method for q = m 2^-e with e <= 7,
 * whose boundaries C_o are integers below 2^(8e) <= 2^56: each byte is the
 * largest o with C_o <= V, from V's first 16 digits when no boundary lies
 * strictly inside their cell, and otherwise from its first 8e digits, the
 * rest coming from the next output of r[0] after the block (docs/rng.md).
 * It must give the words and generator states of pnd_rng_bernoulli_words
 * for 200 words (blocks of 64, 64, 64 and 8). */
START_TEST(test_bernoulli_words_exact_replay)
{
    static const struct { uint64_t m; int e; } cases[] = {
        { 21, 5 }, { 53, 6 }, { 101, 7 }, { 3, 5 },
    };
    const size_t n = 200, block = 64;
    uint64_t words[200], expected[200];

    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        uint64_t m = cases[t].m, rest = ((uint64_t) 1 << cases[t].e) - m;
        int bits = 8 * cases[t].e, shift = bits - 16;
        uint64_t C[257], prob[9];
        pnd_pcg64 r[2], s[2];

        for (int k = 0; k <= 8; k++) {
            prob[k] = 1;
            for (int i = 0; i < 8; i++)
                prob[k] *= i < k ? m : rest;
        }
        C[0] = 0;
        for (int o = 0; o < 256; o++)
            C[o + 1] = C[o] + prob[__builtin_popcount((unsigned) o)];
        ck_assert(C[256] == (uint64_t) 1 << bits);

        pnd_pcg64dxsm_init(&r[0], 300 + t, 1);
        pnd_pcg64dxsm_init(&r[1], 300 + t, 2);
        s[0] = r[0];
        s[1] = r[1];
        pnd_rng_bernoulli_words(r, ldexp((double) m, -cases[t].e), n, words);

        for (size_t j0 = 0; j0 < n; j0 += block) {
            size_t nb = n - j0 < block ? n - j0 : block;
            size_t tie_word[64 * 8], n_ties = 0;    /* (n_ties) */
            int tie_byte[64 * 8];
            unsigned tie_cell[64 * 8];

            for (size_t j = j0; j < j0 + nb; j++) {
                uint64_t u[2];

                u[0] = pnd_pcg64dxsm_next(&s[0]);
                u[1] = pnd_pcg64dxsm_next(&s[1]);
                expected[j] = 0;
                for (int b = 0; b < 8; b++) {
                    unsigned c = (unsigned) (u[b / 4] >> (16 * (b % 4))) & 0xffff;
                    uint64_t start = (uint64_t) c << shift;
                    uint64_t end = (uint64_t) (c + 1) << shift;
                    uint64_t o = 0;

                    while (o < 255 && C[o + 1] <= start)
                        o++;
                    if (o < 255 && C[o + 1] < end) {
                        tie_cell[n_ties] = c;
                        tie_word[n_ties] = j;
                        tie_byte[n_ties++] = b;
                    } else {
                        expected[j] |= o << (8 * b);
                    }
                }
            }
            /* A tied byte: V's first 8e digits, the last 8e - 16 from the
             * top of the next output of r[0]. */
            for (size_t i = 0; i < n_ties; i++) {
                uint64_t x = pnd_pcg64dxsm_next(&s[0]);
                uint64_t v = (uint64_t) tie_cell[i] << shift | x >> (64 - shift);
                uint64_t o = 0;

                while (o < 255 && C[o + 1] <= v)
                    o++;
                expected[tie_word[i]] |= o << (8 * tie_byte[i]);
            }
        }
        for (size_t j = 0; j < n; j++)
            ck_assert_msg(words[j] == expected[j], "q = %llu/2^%d, word %zu: "
                          "0x%016" PRIx64 " instead of 0x%016" PRIx64,
                          (unsigned long long) m, cases[t].e, j, words[j],
                          expected[j]);
        ck_assert(r[0].state == s[0].state && r[1].state == s[1].state);
    }
}
END_TEST

/* Digit k (from 1) of the 512-digit fraction b, top word first. */
static unsigned
digit_at(const uint64_t *b /* (8) */, int k)
{
    return (unsigned) (b[(k - 1) / 64] >> (63 - (k - 1) % 64)) & 1;
}

/* Returns -1, 0 or 1 as the 16 + 512 digits (cell, v) compare with the
 * boundary b (8 words, 512 digits). The boundary's later digits are 0. */
static int
compare_with_boundary(unsigned cell, const uint64_t *v /* (8) */,
                      const uint64_t *b /* (8) */)
{
    for (int k = 1; k <= 512; k++) {
        unsigned vk = k <= 16 ? (cell >> (16 - k)) & 1
                              : (unsigned) (v[(k - 17) / 64] >> (63 - (k - 17) % 64)) & 1;
        unsigned bk = digit_at(b, k);

        if (vk != bk)
            return vk < bk ? -1 : 1;
    }
    return 0;   /* V's digits after the 528th are not compared: V >= b */
}

/* The tie resolution, with V's digits chosen instead of drawn. Take each
 * boundary C_o that lies strictly inside its cell, and each k from 0 to 7.
 * V equals C_o in its first 16 + 64 k digits and is one unit above or
 * below it in the next 64, so the comparison reaches word k. A last V
 * equals C_o in all 512 digits, which puts it at or above C_o. The byte
 * must be the largest o' with C_o' <= V, found here digit by digit from
 * the boundaries. q = 1 - 2^-53 puts all 255 boundaries in cell 0, and
 * q = 2^-11 + 2^-63 (64 digits) has boundaries of 512 digits. */
START_TEST(test_bernoulli_tie_digits)
{
    static const double qs[] = {
        1.0 - 0x1p-53, 0.9, 0x1p-11 + 0x1p-63, 1.0 / 3.0, 0.7071067811865476,
    };
    static uint64_t bound[256][8];
    long cases = 0;

    for (size_t t = 0; t < sizeof qs / sizeof qs[0]; t++) {
        pnd_bernoulli_bounds_of(qs[t], bound);
        for (int o = 1; o < 256; o++) {
            unsigned cell = (unsigned) (bound[o][0] >> 48);
            uint64_t after[8];  /* digits 17 to 528 of C_o, top first */

            /* Only boundaries strictly inside their cell make ties. */
            if ((bound[o][0] & 0xffffffffffffULL) == 0
                && bound[o][1] == 0 && bound[o][2] == 0 && bound[o][3] == 0
                && bound[o][4] == 0 && bound[o][5] == 0 && bound[o][6] == 0
                && bound[o][7] == 0)
                continue;
            for (int i = 0; i < 8; i++)
                after[i] = bound[o][i] << 16 | (i < 7 ? bound[o][i + 1] >> 48 : 0);
            for (int k = 0; k <= 8; k++) {
                for (int step = -1; step <= 1; step += 2) {
                    uint64_t v[8];
                    unsigned expected = 0, got;
                    int used;

                    memcpy(v, after, sizeof v);
                    if (k < 8) {
                        if ((step < 0 && v[k] == 0) || (step > 0 && v[k] == UINT64_MAX))
                            continue;
                        v[k] += (uint64_t) step;
                    } else if (step > 0) {
                        continue;       /* k = 8: V equal in all digits */
                    }
                    while (expected < 255
                           && compare_with_boundary(cell, v, bound[expected + 1]) >= 0)
                        expected++;
                    got = pnd_bernoulli_byte_of(qs[t], cell, v, &used);
                    ck_assert_msg(got == expected, "q = %.17g, C_%d, word %d, "
                                  "step %d: byte %u instead of %u", qs[t], o,
                                  k, step, got, expected);
                    ck_assert_int_le(used, 8);
                    cases++;
                }
            }
        }
    }
    ck_assert_int_gt(cases, 1000);
}
END_TEST

/* A table serves any q: for q of another method it gives the words of
 * pnd_rng_bernoulli_words. */
START_TEST(test_bernoulli_table_any_q)
{
    static const double qs[] = { 0.9, 0.5, 0x1p-20, 0.0, 1.0 };
    uint64_t a[300], b[300];

    for (size_t t = 0; t < sizeof qs / sizeof qs[0]; t++) {
        pnd_rng_bernoulli_table *table = pnd_rng_bernoulli_table_alloc(qs[t]);
        pnd_pcg64 r[2], s[2];

        ck_assert_ptr_nonnull(table);
        pnd_pcg64dxsm_init(&r[0], 7, 8);
        pnd_pcg64dxsm_init(&r[1], 9, 10);
        s[0] = r[0];
        s[1] = r[1];
        pnd_rng_bernoulli_words_table(r, table, 300, a);
        pnd_rng_bernoulli_words(s, qs[t], 300, b);
        ck_assert_mem_eq(a, b, sizeof a);
        ck_assert(r[0].state == s[0].state && r[1].state == s[1].state);
        pnd_rng_bernoulli_table_free(table);
    }
    pnd_rng_bernoulli_table_free(NULL);
}
END_TEST

/* Words per call for q = 1/3: the number of digits needed is the maximum
 * of 64 independent Geometric(1/2) variables M, with
 * E[M] = sum_{k >= 0} (1 - (1 - 2^-k)^64), about 7.3. */
START_TEST(test_bernoulli_words_per_call)
{
    const int n_calls = 4000;
    double expected = 0, sum = 0, sum2 = 0, mean, sd;
    pnd_pcg64 r, probe;

    for (int k = 0; k < 200; k++)
        expected += 1.0 - pow(1.0 - ldexp(1.0, -k), 64);
    pnd_pcg64dxsm_init(&r, 3, 3);
    for (int i = 0; i < n_calls; i++) {
        int words = 0;

        probe = r;
        pnd_rng_bernoulli_word(&r, 1.0 / 3.0);
        while (probe.state != r.state) {
            pnd_pcg64dxsm_step(&probe);
            words++;
        }
        sum += words;
        sum2 += (double) words * words;
    }
    mean = sum / n_calls;
    sd = sqrt((sum2 / n_calls - mean * mean) / n_calls);
    ck_assert_double_le(fabs(mean - expected) / sd, Z_BOUND);
}
END_TEST

/* ---- Core: normals ---- */

#define N_NORMAL_DRAWS 1000000
#define N_NORMAL_BINS 200

START_TEST(test_normal_moments)
{
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0, n = N_NORMAL_DRAWS, tail = 0;
    double mean, var, skew, kurt, tail_p;
    unsigned long not_finite = 0;
    pnd_pcg64 r;

    pnd_pcg64dxsm_init(&r, 31, 41);
    for (int i = 0; i < N_NORMAL_DRAWS; i++) {
        double x = pnd_rng_normal(&r);

        not_finite += !isfinite(x);
        s1 += x;
        s2 += x * x;
        s3 += x * x * x;
        s4 += x * x * x * x;
        tail += fabs(x) > ZIGGURAT_TAIL_START;
    }
    ck_assert_uint_eq(not_finite, 0);
    mean = s1 / n;
    var = s2 / n;
    skew = s3 / n;
    kurt = s4 / n;
    /* Standard errors of the raw moments of N(0,1): E x = 0 with variance
     * 1, E x^2 = 1 with variance 2, E x^3 = 0 with variance 15, E x^4 = 3
     * with variance 96. */
    ck_assert_double_le(fabs(mean) / sqrt(1.0 / n), Z_BOUND);
    ck_assert_double_le(fabs(var - 1.0) / sqrt(2.0 / n), Z_BOUND);
    ck_assert_double_le(fabs(skew) / sqrt(15.0 / n), Z_BOUND);
    ck_assert_double_le(fabs(kurt - 3.0) / sqrt(96.0 / n), Z_BOUND);
    /* The tail is drawn by its own method: check its mass, 2 Q(r). */
    tail_p = 2.0 * gsl_cdf_ugaussian_Q(ZIGGURAT_TAIL_START);
    ck_assert_double_le(fabs(binomial_z(tail, n, tail_p)), Z_BOUND);
}
END_TEST

/* Chi-square on 200 equal-probability bins of Phi(x): sensitive to errors
 * in single layers and wedges. */
START_TEST(test_normal_chisq_bins)
{
    unsigned long counts[N_NORMAL_BINS];
    double p;
    pnd_pcg64 r;

    memset(counts, 0, sizeof counts);
    pnd_pcg64dxsm_init(&r, 59, 26);
    for (int i = 0; i < N_NORMAL_DRAWS; i++) {
        size_t bin = (size_t) (gsl_cdf_ugaussian_P(pnd_rng_normal(&r)) * N_NORMAL_BINS);

        if (bin == N_NORMAL_BINS)
            bin--;
        counts[bin]++;
    }
    p = chisq_uniform_p(counts, N_NORMAL_BINS, N_NORMAL_DRAWS);
    ck_assert_msg(p >= P_VALUE_MIN, "chi-square p = %g", p);
}
END_TEST

/* Kolmogorov-Smirnov: sqrt(n) D exceeds 2.28 with probability 6.3e-5 (the
 * 4 sigma tail) for large n, from the Kolmogorov distribution
 * P(K > t) ~ 2 exp(-2 t^2). */
#define KS_CRITICAL 2.28

START_TEST(test_normal_ks)
{
    const size_t n = 100000;
    double *x = malloc(n * sizeof *x);    /* (n) */
    double d = 0;
    pnd_pcg64 r;

    ck_assert_ptr_nonnull(x);
    pnd_pcg64dxsm_init(&r, 53, 58);
    for (size_t i = 0; i < n; i++)
        x[i] = pnd_rng_normal(&r);
    gsl_sort(x, 1, n);
    for (size_t i = 0; i < n; i++) {
        double cdf = gsl_cdf_ugaussian_P(x[i]);
        double above = (double) (i + 1) / n - cdf;
        double below = cdf - (double) i / n;

        d = fmax(d, fmax(above, below));
    }
    free(x);
    ck_assert_double_le(d * sqrt((double) n), KS_CRITICAL);
}
END_TEST

/* The tail beyond the base strip (|x| > r) has its own sampler: KS test of
 * the tail draws against the conditional law P(|X| <= x | |X| > r) =
 * 1 - Q(x) / Q(r), at the same critical value. */
START_TEST(test_normal_tail_ks)
{
    const double r_tail = ZIGGURAT_TAIL_START;
    const size_t n_tail = 4000;
    double *x = malloc(n_tail * sizeof *x);    /* (n_tail) */
    double q_r = gsl_cdf_ugaussian_Q(r_tail), d = 0;
    size_t n = 0;
    pnd_pcg64 r;

    ck_assert_ptr_nonnull(x);
    pnd_pcg64dxsm_init(&r, 61, 62);
    while (n < n_tail) {
        double z = fabs(pnd_rng_normal(&r));

        if (z > r_tail)
            x[n++] = z;
    }
    gsl_sort(x, 1, n);
    for (size_t i = 0; i < n; i++) {
        double cdf = 1.0 - gsl_cdf_ugaussian_Q(x[i]) / q_r;

        d = fmax(d, fmax((double) (i + 1) / n - cdf, cdf - (double) i / n));
    }
    free(x);
    ck_assert_double_le(d * sqrt((double) n), KS_CRITICAL);
}
END_TEST

/* ---- Core: the pnd rng command ---- */

/* Write into command the shell command that runs the built pnd (in
 * $PND_BUILDDIR, set by make check, or the current directory). */
static void
format_pnd_command(char *command, size_t size, const char *arguments)
{
    const char *dir = getenv("PND_BUILDDIR");
    char program[4096];

    snprintf(program, sizeof program, "%s/pnd", dir && dir[0] ? dir : ".");
    ck_assert_msg(access(program, X_OK) == 0, "program %s not found: build pnd "
                  "first or set PND_BUILDDIR", program);
    snprintf(command, size, "'%s' %s", program, arguments);
}

START_TEST(test_cli_pcg32_vector)
{
    char command[8192], line[64];
    FILE *out;
    size_t i = 0;

    format_pnd_command(command, sizeof command,
                       "rng --type pcg32 --seed 42 --stream 54 -n 6");
    out = popen(command, "r");
    ck_assert_ptr_nonnull(out);
    while (fgets(line, sizeof line, out)) {
        char expected[16];

        ck_assert_uint_lt(i, 6);
        snprintf(expected, sizeof expected, "0x%08x\n", pcg32_golden[i]);
        ck_assert_str_eq(line, expected);
        i++;
    }
    ck_assert_int_eq(pclose(out), 0);
    ck_assert_uint_eq(i, 6);
}
END_TEST

/* 128-bit hex seed and stream: the third seeded case of rng_pcg64.txt. */
START_TEST(test_cli_pcg64_128bit_seed)
{
    const char *const expected[] = {
        "0xcd4ee4c96f35a4ff\n", "0x494fa88d079a2bda\n", "0x54fff8e81116ae47\n"
    };
    char command[8192], line[64];
    FILE *out;
    size_t i = 0;

    format_pnd_command(command, sizeof command,
                       "rng --type pcg64 --seed 0x123456789abcdeffedcba9876543210 "
                       "--stream 0xdeadbeefcafebabe0badf00d12345678 -n 3");
    out = popen(command, "r");
    ck_assert_ptr_nonnull(out);
    while (fgets(line, sizeof line, out)) {
        ck_assert_uint_lt(i, 3);
        ck_assert_str_eq(line, expected[i]);
        i++;
    }
    ck_assert_int_eq(pclose(out), 0);
    ck_assert_uint_eq(i, 3);
}
END_TEST

START_TEST(test_cli_advance_and_errors)
{
    char command[8192], line[64];
    FILE *out;
    int status;

    format_pnd_command(command, sizeof command,
                       "rng --type pcg32 --seed 42 --stream 54 --advance 5 -n 1");
    out = popen(command, "r");
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, out));
    ck_assert_str_eq(line, "0xcbed606e\n");
    ck_assert_int_eq(pclose(out), 0);

    format_pnd_command(command, sizeof command,
                       "rng --type pcg99 -n 1 2>/dev/null >/dev/null");
    status = system(command);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 2);

    format_pnd_command(command, sizeof command, "rng --bogus 2>&1");
    out = popen(command, "r");
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, out));
    ck_assert_ptr_nonnull(strstr(line, "--bogus"));
    while (fgets(line, sizeof line, out))
        ;
    status = pclose(out);
    ck_assert_int_eq(WEXITSTATUS(status), 2);
}
END_TEST

/* ---- Limits ---- */

START_TEST(test_bounded_one_and_max)
{
    pnd_pcg32 r32;
    pnd_pcg64 r64;

    pnd_pcg32_init(&r32, 1, 1);
    pnd_pcg64dxsm_init(&r64, 1, 1);
    for (int i = 0; i < 100; i++) {
        ck_assert_uint_eq(pnd_pcg32_bounded(&r32, 1), 0);
        ck_assert_uint_eq(pnd_pcg64dxsm_bounded(&r64, 1), 0);
        ck_assert_uint_eq(pnd_pcg64_bounded(&r64, 1), 0);
        ck_assert_uint_lt(pnd_pcg32_bounded(&r32, UINT32_MAX), UINT32_MAX);
        ck_assert_uint_lt(pnd_pcg64dxsm_bounded(&r64, UINT64_MAX), UINT64_MAX);
    }
}
END_TEST

START_TEST(test_bernoulli_out_of_range)
{
    pnd_pcg64 r, start;

    pnd_pcg64dxsm_init(&r, 2, 2);
    start = r;
    ck_assert_uint_eq(pnd_rng_bernoulli_word(&r, -0.5), 0);
    ck_assert_uint_eq(pnd_rng_bernoulli_word(&r, NAN), 0);
    ck_assert_uint_eq(pnd_rng_bernoulli_word(&r, 1.5), ~(uint64_t) 0);
    ck_assert_uint_eq(pnd_rng_bernoulli_word(&r, INFINITY), ~(uint64_t) 0);
    ck_assert_uint_eq(pnd_rng_bernoulli_word_ref(&r, NAN), 0);
    /* Decided without drawing. */
    ck_assert(r.state == start.state);
}
END_TEST

START_TEST(test_advance_zero_and_wrap)
{
    pnd_pcg64 a, b;
    pnd_pcg32 c, d;

    pnd_pcg64dxsm_init(&a, 4, 4);
    b = a;
    pnd_pcg64dxsm_advance(&a, 0);
    ck_assert(a.state == b.state);
    pnd_pcg32_init(&c, 4, 4);
    d = c;
    pnd_pcg32_advance(&c, INT64_MIN);
    pnd_pcg32_advance(&c, INT64_MIN);    /* 2^64 steps: the full period */
    ck_assert_uint_eq(c.state, d.state);
}
END_TEST

START_TEST(test_type_names)
{
    ck_assert_ptr_eq(pnd_rng_type_from_name("pcg32"), pnd_gsl_rng_pcg32);
    ck_assert_ptr_eq(pnd_rng_type_from_name("pcg64"), pnd_gsl_rng_pcg64);
    ck_assert_ptr_eq(pnd_rng_type_from_name("pcg64-dxsm"), pnd_gsl_rng_pcg64dxsm);
    ck_assert_ptr_null(pnd_rng_type_from_name("mt19937"));
    ck_assert_ptr_null(pnd_rng_type_from_name(""));
}
END_TEST

START_TEST(test_derive_empty_and_wrong_type)
{
    pnd_pcg64 a, b;
    gsl_rng *g = gsl_rng_alloc(pnd_gsl_rng_pcg32);
    gsl_error_handler_t *old;

    pnd_rng_derive(&a, 5, NULL, 0);
    pnd_rng_derive(&b, 6, NULL, 0);
    ck_assert(a.state != b.state);

    old = gsl_set_error_handler_off();
    pnd_error_install_gsl_handler();
    pnd_error_clear();
    pnd_rng_derive_gsl(g, 5, NULL, 0);
    ck_assert_int_ne(pnd_error_status(), PND_OK);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "pcg64dxsm"));
    gsl_set_error_handler(old);
    gsl_rng_free(g);
}
END_TEST

Suite *
pnd_rng_suite(void)
{
    Suite *s = suite_create("rng");
    TCase *core = tcase_create("Core");
    TCase *limits = tcase_create("Limits");

    tcase_set_timeout(core, 60);
    tcase_add_test(core, test_pcg32_golden);
    tcase_add_test(core, test_pcg64_numpy_vectors);
    tcase_add_test(core, test_pcg64dxsm_numpy_vectors);
    tcase_add_test(core, test_advance_matches_steps);
    tcase_add_test(core, test_double_chisq_uniform);
    tcase_add_test(core, test_bounded_chisq_uniform);
    tcase_add_test(core, test_bounded_large_bound_unbiased);
    tcase_add_test(core, test_double_open_skips_zero);
    tcase_add_test(core, test_double_open_range);
    tcase_add_test(core, test_gsl_types_match_direct);
    tcase_add_test(core, test_gsl_gaussian_moments);
    tcase_add_test(core, test_derive_pure_function);
    tcase_add_test(core, test_derive_distinct_tuples);
    tcase_add_test(core, test_derive_neighbour_samples);
    tcase_add_test(core, test_derive_neighbour_layers);
    tcase_add_test(core, test_derive_neighbour_steps);
    tcase_add_test(core, test_bernoulli_lane_frequency);
    tcase_add_test(core, test_bernoulli_exact_ends);
    tcase_add_test(core, test_bernoulli_lane_independence);
    tcase_add_test(core, test_bernoulli_matches_reference);
    tcase_add_test(core, test_bernoulli_words_match_reference);
    tcase_add_test(core, test_bernoulli_words_per_call);
    tcase_add_test(core, test_bernoulli_words_short_q);
    tcase_add_test(core, test_bernoulli_words_table_outputs);
    tcase_add_test(core, test_bernoulli_words_byte_distribution);
    tcase_add_test(core, test_bernoulli_words_exact_replay);
    tcase_add_test(core, test_bernoulli_tie_digits);
    tcase_add_test(core, test_bernoulli_table_any_q);
    tcase_add_test(core, test_normal_moments);
    tcase_add_test(core, test_normal_chisq_bins);
    tcase_add_test(core, test_normal_ks);
    tcase_add_test(core, test_normal_tail_ks);
    tcase_add_test(core, test_cli_pcg32_vector);
    tcase_add_test(core, test_cli_pcg64_128bit_seed);
    tcase_add_test(core, test_cli_advance_and_errors);
    suite_add_tcase(s, core);

    tcase_add_test(limits, test_bounded_one_and_max);
    tcase_add_test(limits, test_bernoulli_out_of_range);
    tcase_add_test(limits, test_advance_zero_and_wrap);
    tcase_add_test(limits, test_type_names);
    tcase_add_test(limits, test_derive_empty_and_wrong_type);
    suite_add_tcase(s, limits);
    return s;
}
