/* Vectorised kernels of the Bernoulli per-connection schemes: dot products
 * and axpy updates restricted to the connections whose keep bit is set.
 * The keep bits come from pnd_rng_bernoulli_words (base/rng_sample.c).
 *
 * Each group of 4 keep bits selects one of 16 lane masks from a constant
 * table. The products of the group are ANDed with that mask, so a dropped
 * connection adds +0.0 and there are no data-dependent branches. The code
 * uses GCC's generic vectors of 4 doubles, compiled twice through
 * target_clones: for AVX2 (one 256-bit register per group) and for the
 * x86-64 baseline (two SSE2 registers). Neither clone uses FMA, so both
 * round every product and sum the same way and give the same bits.
 *
 * pnd_mask_sum_bits_rows is pnd_mask_dot_bits_rows for products
 * W_ui x_i formed beforehand (pnd_mask_products). When the weights and the
 * input stay the same over many draws, it loads one array instead of two
 * and does no multiplication, and it gives the same bits.
 * pnd_mask_sum_bits_rows_draws does the same for several draws with one
 * load of the products for 2 of them, or for 4 with AVX-512, whose mask
 * registers take the keep bits directly.
 *
 * The order of the additions depends only on d. Group g of 4 connections
 * goes to accumulator g % 4 of four. The accumulators are added as
 * (a0 + a1) + (a2 + a3), the lanes likewise, and the connections after the
 * last whole group of 4 follow one by one.
 *
 * The table load measured faster than building the lane masks in
 * registers on an AMD EPYC of family 23 (Zen 1). There, a broadcast, an
 * AND and a compare took about 10% longer per connection, and a variable
 * shift with a blend about 70% longer.
 *
 * NOTE: a dropped connection whose product is NaN or Inf adds +0.0 here,
 * while the reference kernel, which multiplies by the mask value 0, gives
 * NaN. Only the treatment of non-finite inputs differs.
 */
#include <config.h>

/* load4 below returns a 32-byte vector, for which GCC warns of an ABI change
 * in the baseline clone. It is always inlined, so no call uses that ABI. */
#pragma GCC diagnostic ignored "-Wpsabi"

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "sim/mask_internal.h"

typedef double vec4d __attribute__((vector_size(32)));
typedef long long vec4i __attribute__((vector_size(32)));

#define ALL ~0LL
/* Lane masks of the 16 values of 4 keep bits: lane l is kept by bit l. */
static const vec4i lane_masks[16] __attribute__((aligned(32))) = {
    { 0, 0, 0, 0 },       { ALL, 0, 0, 0 },       { 0, ALL, 0, 0 },
    { ALL, ALL, 0, 0 },   { 0, 0, ALL, 0 },       { ALL, 0, ALL, 0 },
    { 0, ALL, ALL, 0 },   { ALL, ALL, ALL, 0 },   { 0, 0, 0, ALL },
    { ALL, 0, 0, ALL },   { 0, ALL, 0, ALL },     { ALL, ALL, 0, ALL },
    { 0, 0, ALL, ALL },   { ALL, 0, ALL, ALL },   { 0, ALL, ALL, ALL },
    { ALL, ALL, ALL, ALL },
};
#undef ALL

#define GROUP 4                                  /* connections per vector */

static inline __attribute__((always_inline)) vec4d
load4(const double *a)
{
    vec4d v;

    memcpy(&v, a, sizeof v);    /* unaligned load */
    return v;
}

/* Unaligned store of the vector v at a. It is a macro for the reason given
 * at keep below. */
#define store4(a, v) \
    do { \
        vec4d store4_value_ = (v); \
        memcpy((a), &store4_value_, sizeof store4_value_); \
    } while (0)

/* The 4 connections of v that the low 4 bits of nibble keep. A macro, not a
 * function, because GCC notes an ABI change for every function that takes a
 * 32-byte vector argument when compiling the baseline clone. */
#define keep(v, nibble) ((vec4d) ((vec4i) (v) & lane_masks[(nibble) & 0xf]))

/* Keep bits of connections i..i+15, i a multiple of 16, in the low 16 bits. */
static inline uint64_t
bits16(const uint64_t *bits, size_t i)
{
    return bits[i / PND_MASK_WORD_BITS] >> (i % PND_MASK_WORD_BITS);
}

/* --- masked dot products and updates ------------------------------------- */

/* Finishes dot_bits_row after its whole words of keep bits, from
 * connection i (a multiple of 64) on. It adds blocks of 16 connections,
 * then the last groups of 4, sums the accumulators, and adds the
 * connections after the last whole group. */
static inline __attribute__((always_inline)) double
dot_bits_finish(size_t i, size_t d, const double *w, const double *x,
                const uint64_t *bits, vec4d acc0, vec4d acc1, vec4d acc2,
                vec4d acc3)
{
    double sum;

    for (; i + 4 * GROUP <= d; i += 4 * GROUP) {
        uint64_t b = bits16(bits, i);

        acc0 += keep(load4(w + i) * load4(x + i), b);
        acc1 += keep(load4(w + i + 4) * load4(x + i + 4), b >> 4);
        acc2 += keep(load4(w + i + 8) * load4(x + i + 8), b >> 8);
        acc3 += keep(load4(w + i + 12) * load4(x + i + 12), b >> 12);
    }
    if (i + GROUP <= d)
        acc0 += keep(load4(w + i) * load4(x + i), bits16(bits, i));
    if (i + 2 * GROUP <= d)
        acc1 += keep(load4(w + i + 4) * load4(x + i + 4),
                     bits16(bits, i) >> 4);
    if (i + 3 * GROUP <= d)
        acc2 += keep(load4(w + i + 8) * load4(x + i + 8),
                     bits16(bits, i) >> 8);
    acc0 = (acc0 + acc1) + (acc2 + acc3);
    sum = (acc0[0] + acc0[1]) + (acc0[2] + acc0[3]);

    for (i = d / GROUP * GROUP; i < d; i++)
        if ((bits[i / PND_MASK_WORD_BITS] >> (i % PND_MASK_WORD_BITS)) & 1)
            sum += w[i] * x[i];
    return sum;
}

/* Returns the masked dot product of one row, inlined into each clone
 * below. */
static inline __attribute__((always_inline)) double
dot_bits_row(size_t d, const double *w, const double *x,
             const uint64_t *bits)
{
    vec4d acc0 = { 0.0 }, acc1 = { 0.0 }, acc2 = { 0.0 }, acc3 = { 0.0 };
    size_t i = 0;

    /* Group g of 4 connections goes to accumulator g % 4. Whole words of
     * keep bits first, then blocks of 16 connections, in the same order. */
    for (; i + PND_MASK_WORD_BITS <= d; i += PND_MASK_WORD_BITS) {
        uint64_t b = bits[i / PND_MASK_WORD_BITS];

        for (size_t j = i; j < i + PND_MASK_WORD_BITS; j += 4 * GROUP) {
            acc0 += keep(load4(w + j) * load4(x + j), b);
            acc1 += keep(load4(w + j + 4) * load4(x + j + 4), b >> 4);
            acc2 += keep(load4(w + j + 8) * load4(x + j + 8), b >> 8);
            acc3 += keep(load4(w + j + 12) * load4(x + j + 12), b >> 12);
            b >>= 16;
        }
    }
    return dot_bits_finish(i, d, w, x, bits, acc0, acc1, acc2, acc3);
}

/* Computes dot_bits_row for two inputs xa and xb with their own keep bits.
 * Each sum is added in the same order, but one load of w serves both. */
static inline __attribute__((always_inline)) void
dot_bits_pair(size_t d, const double *w, const double *xa, const double *xb,
              const uint64_t *bits_a, const uint64_t *bits_b, double *sum_a,
              double *sum_b)
{
    vec4d a0 = { 0.0 }, a1 = { 0.0 }, a2 = { 0.0 }, a3 = { 0.0 };
    vec4d b0 = { 0.0 }, b1 = { 0.0 }, b2 = { 0.0 }, b3 = { 0.0 };
    size_t i = 0;

    for (; i + PND_MASK_WORD_BITS <= d; i += PND_MASK_WORD_BITS) {
        uint64_t ka = bits_a[i / PND_MASK_WORD_BITS];
        uint64_t kb = bits_b[i / PND_MASK_WORD_BITS];

        for (size_t j = i; j < i + PND_MASK_WORD_BITS; j += 4 * GROUP) {
            vec4d w0 = load4(w + j), w1 = load4(w + j + 4);
            vec4d w2 = load4(w + j + 8), w3 = load4(w + j + 12);

            a0 += keep(w0 * load4(xa + j), ka);
            b0 += keep(w0 * load4(xb + j), kb);
            a1 += keep(w1 * load4(xa + j + 4), ka >> 4);
            b1 += keep(w1 * load4(xb + j + 4), kb >> 4);
            a2 += keep(w2 * load4(xa + j + 8), ka >> 8);
            b2 += keep(w2 * load4(xb + j + 8), kb >> 8);
            a3 += keep(w3 * load4(xa + j + 12), ka >> 12);
            b3 += keep(w3 * load4(xb + j + 12), kb >> 12);
            ka >>= 16;
            kb >>= 16;
        }
    }
    *sum_a = dot_bits_finish(i, d, w, xa, bits_a, a0, a1, a2, a3);
    *sum_b = dot_bits_finish(i, d, w, xb, bits_b, b0, b1, b2, b3);
}

/* The same sum as dot_bits_row with the products p[i] = w[i] * x[i] formed
 * beforehand. The lines of sum_bits_finish, sum_bits_row and sum_bits_pair
 * mirror those of dot_bits_finish, dot_bits_row and dot_bits_pair one for
 * one, so they add the same rounded products in the same order and give
 * the same bits. A change to one must go to the other. */
static inline __attribute__((always_inline)) double
sum_bits_finish(size_t i, size_t d, const double *p, const uint64_t *bits,
                vec4d acc0, vec4d acc1, vec4d acc2, vec4d acc3)
{
    double sum;

    for (; i + 4 * GROUP <= d; i += 4 * GROUP) {
        uint64_t b = bits16(bits, i);

        acc0 += keep(load4(p + i), b);
        acc1 += keep(load4(p + i + 4), b >> 4);
        acc2 += keep(load4(p + i + 8), b >> 8);
        acc3 += keep(load4(p + i + 12), b >> 12);
    }
    if (i + GROUP <= d)
        acc0 += keep(load4(p + i), bits16(bits, i));
    if (i + 2 * GROUP <= d)
        acc1 += keep(load4(p + i + 4), bits16(bits, i) >> 4);
    if (i + 3 * GROUP <= d)
        acc2 += keep(load4(p + i + 8), bits16(bits, i) >> 8);
    acc0 = (acc0 + acc1) + (acc2 + acc3);
    sum = (acc0[0] + acc0[1]) + (acc0[2] + acc0[3]);

    for (i = d / GROUP * GROUP; i < d; i++)
        if ((bits[i / PND_MASK_WORD_BITS] >> (i % PND_MASK_WORD_BITS)) & 1)
            sum += p[i];
    return sum;
}

static inline __attribute__((always_inline)) double
sum_bits_row(size_t d, const double *p, const uint64_t *bits)
{
    vec4d acc0 = { 0.0 }, acc1 = { 0.0 }, acc2 = { 0.0 }, acc3 = { 0.0 };
    size_t i = 0;

    for (; i + PND_MASK_WORD_BITS <= d; i += PND_MASK_WORD_BITS) {
        uint64_t b = bits[i / PND_MASK_WORD_BITS];

        for (size_t j = i; j < i + PND_MASK_WORD_BITS; j += 4 * GROUP) {
            acc0 += keep(load4(p + j), b);
            acc1 += keep(load4(p + j + 4), b >> 4);
            acc2 += keep(load4(p + j + 8), b >> 8);
            acc3 += keep(load4(p + j + 12), b >> 12);
            b >>= 16;
        }
    }
    return sum_bits_finish(i, d, p, bits, acc0, acc1, acc2, acc3);
}

/* Computes sum_bits_row for two sets of keep bits on the same products,
 * with one load of p for both. With pin, an empty asm keeps each group of
 * products in a register: GCC otherwise folds the load into both ANDs, and
 * the kernel is limited by its loads (about 15% slower on an AMD EPYC of
 * family 23). Only an AVX2 caller may pin: without AVX, a vector of 4
 * doubles fits no register, and pin must be a constant false so that the
 * asm goes away before GCC checks it. */
static inline __attribute__((always_inline)) void
sum_bits_pair(size_t d, const double *p, const uint64_t *bits_a,
              const uint64_t *bits_b, double *sum_a, double *sum_b, bool pin)
{
    vec4d a0 = { 0.0 }, a1 = { 0.0 }, a2 = { 0.0 }, a3 = { 0.0 };
    vec4d b0 = { 0.0 }, b1 = { 0.0 }, b2 = { 0.0 }, b3 = { 0.0 };
    size_t i = 0;

    for (; i + PND_MASK_WORD_BITS <= d; i += PND_MASK_WORD_BITS) {
        uint64_t ka = bits_a[i / PND_MASK_WORD_BITS];
        uint64_t kb = bits_b[i / PND_MASK_WORD_BITS];

        for (size_t j = i; j < i + PND_MASK_WORD_BITS; j += 4 * GROUP) {
            vec4d p0 = load4(p + j), p1 = load4(p + j + 4);
            vec4d p2 = load4(p + j + 8), p3 = load4(p + j + 12);

            if (pin)
                __asm__ ("" : "+x" (p0), "+x" (p1), "+x" (p2), "+x" (p3));
            a0 += keep(p0, ka);
            b0 += keep(p0, kb);
            a1 += keep(p1, ka >> 4);
            b1 += keep(p1, kb >> 4);
            a2 += keep(p2, ka >> 8);
            b2 += keep(p2, kb >> 8);
            a3 += keep(p3, ka >> 12);
            b3 += keep(p3, kb >> 12);
            ka >>= 16;
            kb >>= 16;
        }
    }
    *sum_a = sum_bits_finish(i, d, p, bits_a, a0, a1, a2, a3);
    *sum_b = sum_bits_finish(i, d, p, bits_b, b0, b1, b2, b3);
}

__attribute__((target_clones("avx2", "default")))
double
pnd_mask_dot_bits(size_t d, const double *w, const double *x,
                  const uint64_t *bits)
{
    return dot_bits_row(d, w, x, bits);
}

/* One call for all rows saves a call and lets the end of one row's sum
 * overlap the start of the next. */
__attribute__((target_clones("avx2", "default")))
void
pnd_mask_dot_bits_rows(size_t h, size_t d, const double *W, const double *x,
                       const uint64_t *bits, size_t nw, double *sums)
{
    for (size_t u = 0; u < h; u++)
        sums[u] = dot_bits_row(d, W + u * d, x, bits + u * nw);
}

__attribute__((target_clones("avx2", "default")))
void
pnd_mask_dot_bits_pair(size_t d, const double *w, const double *xa,
                       const double *xb, const uint64_t *bits_a,
                       const uint64_t *bits_b, double *sums)
{
    dot_bits_pair(d, w, xa, xb, bits_a, bits_b, &sums[0], &sums[1]);
}

__attribute__((target_clones("avx2", "default")))
void
pnd_mask_sum_bits_rows(size_t h, size_t d, const double *p,
                       const uint64_t *bits, size_t nw, double *sums)
{
    for (size_t u = 0; u < h; u++)
        sums[u] = sum_bits_row(d, p + u * d, bits + u * nw);
}

/* Two draws of pnd_mask_sum_bits_rows_draws, for AVX2, where the products
 * can be pinned to registers, and for the x86-64 baseline. target_clones
 * would compile one body for both, and the pinning does not compile
 * without AVX. */
__attribute__((target("avx2"))) static void
sum_bits_rows_pair_avx2(size_t h, size_t d, const double *p,
                        const uint64_t *bits_a, const uint64_t *bits_b,
                        size_t nw, double *sums_a, double *sums_b)
{
    for (size_t u = 0; u < h; u++)
        sum_bits_pair(d, p + u * d, bits_a + u * nw, bits_b + u * nw,
                      &sums_a[u], &sums_b[u], true);
}

static void
sum_bits_rows_pair_base(size_t h, size_t d, const double *p,
                        const uint64_t *bits_a, const uint64_t *bits_b,
                        size_t nw, double *sums_a, double *sums_b)
{
    for (size_t u = 0; u < h; u++)
        sum_bits_pair(d, p + u * d, bits_a + u * nw, bits_b + u * nw,
                      &sums_a[u], &sums_b[u], false);
}

/* The halves of a vector of 8 doubles as two vectors of 4. */
#define low4(v) ((vec4d) _mm512_castpd512_pd256(v))
#define high4(v) ((vec4d) _mm512_extractf64x4_pd((v), 1))

/* Row u of pnd_mask_sum_bits_rows_draws for m <= 4 draws, with AVX-512.
 * A group of 8 products is added under a mask register taken straight
 * from a byte of keep bits, with no lane mask to load.
 *
 * Lane l of register 0 of a draw adds what lane l % 4 of accumulator l / 4
 * adds in sum_bits_pair, and register 1 likewise for accumulators 2 and 3,
 * in the same order. A lane whose bit is clear keeps its value, where
 * sum_bits_pair adds +0.0 to it. The two agree because an accumulator that
 * starts at +0.0 never becomes -0.0, so the sums have the same bits as on
 * the other paths. A NaN sum may differ in its sign or payload, which
 * does not matter because the callers reject non-finite sums. With m
 * constant, GCC keeps the 2 m accumulators in AVX-512's 32 registers. */
__attribute__((target("avx512f"))) static inline
__attribute__((always_inline)) void
sum_bits_row_draws512(size_t u, size_t h, size_t d, const double *p,
                      size_t m, const uint64_t *bits, size_t nw, double *sums)
{
    const double *pu = p + u * d;
    __m512d acc0[4], acc1[4];
    size_t i = 0;

#pragma GCC unroll 4
    for (size_t t = 0; t < m; t++)
        acc0[t] = acc1[t] = _mm512_setzero_pd();
    for (; i + PND_MASK_WORD_BITS <= d; i += PND_MASK_WORD_BITS) {
        uint64_t k[4];

#pragma GCC unroll 4
        for (size_t t = 0; t < m; t++)
            k[t] = bits[(t * h + u) * nw + i / PND_MASK_WORD_BITS];
        for (size_t j = i; j < i + PND_MASK_WORD_BITS; j += 4 * GROUP) {
            __m512d p0 = _mm512_loadu_pd(pu + j);
            __m512d p1 = _mm512_loadu_pd(pu + j + 2 * GROUP);

#pragma GCC unroll 4
            for (size_t t = 0; t < m; t++) {
                acc0[t] = _mm512_mask_add_pd(acc0[t], (__mmask8) k[t],
                                             acc0[t], p0);
                acc1[t] = _mm512_mask_add_pd(acc1[t], (__mmask8) (k[t] >> 8),
                                             acc1[t], p1);
                k[t] >>= 16;
            }
        }
    }
#pragma GCC unroll 4
    for (size_t t = 0; t < m; t++)
        sums[t * h + u] = sum_bits_finish(i, d, pu, bits + (t * h + u) * nw,
                                          low4(acc0[t]), high4(acc0[t]),
                                          low4(acc1[t]), high4(acc1[t]));
}

__attribute__((target("avx512f"))) static void
sum_bits_rows_draws512(size_t h, size_t d, const double *p, size_t m,
                       const uint64_t *bits, size_t nw, double *sums)
{
    for (size_t u = 0; u < h; u++) {
        switch (m) {
        case 4:
            sum_bits_row_draws512(u, h, d, p, 4, bits, nw, sums);
            break;
        case 3:
            sum_bits_row_draws512(u, h, d, p, 3, bits, nw, sums);
            break;
        case 2:
            sum_bits_row_draws512(u, h, d, p, 2, bits, nw, sums);
            break;
        default:
            sum_bits_row_draws512(u, h, d, p, 1, bits, nw, sums);
            break;
        }
    }
}

#undef low4
#undef high4

bool pnd_mask_avx512_off = false;

void
pnd_mask_sum_bits_rows_draws(size_t h, size_t d, const double *p, size_t m,
                             const uint64_t *bits, size_t nw, double *sums)
{
    bool avx512 = !pnd_mask_avx512_off && __builtin_cpu_supports("avx512f");
    bool avx2 = __builtin_cpu_supports("avx2");
    size_t t = 0;

    for (; avx512 && t < m; t += 4) {
        size_t mt = m - t < 4 ? m - t : 4;

        sum_bits_rows_draws512(h, d, p, mt, bits + t * h * nw, nw,
                               sums + t * h);
    }
    for (; t + 1 < m; t += 2) {
        const uint64_t *b = bits + t * h * nw;

        if (avx2)
            sum_bits_rows_pair_avx2(h, d, p, b, b + h * nw, nw, sums + t * h,
                                    sums + (t + 1) * h);
        else
            sum_bits_rows_pair_base(h, d, p, b, b + h * nw, nw, sums + t * h,
                                    sums + (t + 1) * h);
    }
    if (t < m)
        pnd_mask_sum_bits_rows(h, d, p, bits + t * h * nw, nw, sums + t * h);
}

/* p[u d + i] = W[u d + i] * x[i]: the products that
 * pnd_mask_sum_bits_rows sums, rounded as pnd_mask_dot_bits rounds them. */
void
pnd_mask_products(size_t h, size_t d, const double *W, const double *x,
                  double *p)
{
    for (size_t u = 0; u < h; u++)
        for (size_t i = 0; i < d; i++)
            p[u * d + i] = W[u * d + i] * x[i];
}

/* y[i] += c x[i] for kept i in [i0, d), i0 a multiple of 4. */
static inline void
axpy_bits_from(size_t i0, size_t d, double c, const double *x,
                        const uint64_t *bits, double *y)
{
    vec4d cv = { c, c, c, c };
    size_t i = i0;

    for (; i + GROUP <= d; i += GROUP) {
        uint64_t b = bits[i / PND_MASK_WORD_BITS] >> (i % PND_MASK_WORD_BITS);

        store4(y + i, load4(y + i) + keep(cv * load4(x + i), b));
    }
    for (; i < d; i++)
        if ((bits[i / PND_MASK_WORD_BITS] >> (i % PND_MASK_WORD_BITS)) & 1)
            y[i] += c * x[i];
}

__attribute__((target_clones("avx2", "default")))
void
pnd_mask_axpy_bits(size_t d, double c, const double *x, const uint64_t *bits,
                   double *y)
{
    axpy_bits_from(0, d, c, x, bits, y);
}

/* The running sum of y over the m samples stays in registers for each
 * block of 16 connections, so y is loaded and stored once instead of m
 * times. Each y[i] still adds the samples' terms one by one in order. */
__attribute__((target_clones("avx2", "default")))
void
pnd_mask_axpy_bits_many(size_t d, size_t m, const double *c,
                        const double *const *x, const uint64_t *const *bits,
                        double *y)
{
    size_t i = 0;

    for (; i + 4 * GROUP <= d; i += 4 * GROUP) {
        vec4d y0 = load4(y + i), y1 = load4(y + i + 4);
        vec4d y2 = load4(y + i + 8), y3 = load4(y + i + 12);

        for (size_t j = 0; j < m; j++) {
            vec4d cv = { c[j], c[j], c[j], c[j] };
            const double *xj = x[j] + i;
            uint64_t b = bits16(bits[j], i);

            y0 += keep(cv * load4(xj), b);
            y1 += keep(cv * load4(xj + 4), b >> 4);
            y2 += keep(cv * load4(xj + 8), b >> 8);
            y3 += keep(cv * load4(xj + 12), b >> 12);
        }
        store4(y + i, y0);
        store4(y + i + 4, y1);
        store4(y + i + 8, y2);
        store4(y + i + 12, y3);
    }
    for (size_t j = 0; j < m; j++)
        axpy_bits_from(i, d, c[j], x[j], bits[j], y);
}

__attribute__((target_clones("avx2", "default")))
void
pnd_mask_scale_bits(size_t d, double c, const double *x, const uint64_t *bits,
                    double *y)
{
    vec4d cv = { c, c, c, c };
    size_t i = 0;

    for (; i + GROUP <= d; i += GROUP) {
        uint64_t b = bits[i / PND_MASK_WORD_BITS] >> (i % PND_MASK_WORD_BITS);

        store4(y + i, keep(cv * load4(x + i), b));
    }
    for (; i < d; i++)
        y[i] = (bits[i / PND_MASK_WORD_BITS] >> (i % PND_MASK_WORD_BITS)) & 1
               ? c * x[i] : 0.0;
}
