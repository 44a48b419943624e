/* Vectorised kernels of the Bernoulli per-connection schemes: dot products
 * and axpy updates restricted to the connections whose keep bit is set.
 *
 * Each group of 4 keep bits selects one of 16 lane masks from a constant
 * table; the products of the group are ANDed with that mask, so a dropped
 * connection adds +0.0 and there are no data-dependent branches. The code
 * uses GCC's generic vectors of 4 doubles, compiled twice through
 * target_clones: for AVX2 (one 256-bit register per group) and for the
 * x86-64 baseline (two SSE2 registers). Neither clone uses FMA, so both
 * round every product and sum the same way and give the same bits.
 *
 * The order of the additions depends only on d: four accumulators take the
 * groups of 4 connections in turn (group g goes to accumulator g % 4), they
 * are added as (a0 + a1) + (a2 + a3) and the lanes likewise, and the
 * connections after the last whole group of 4 follow one by one.
 *
 * NOTE: a dropped connection whose product is NaN or Inf adds +0.0 here,
 * while the reference kernel, which multiplies by the mask value 0, gives
 * NaN. Only the treatment of non-finite inputs differs.
 */
#include <config.h>

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

static inline vec4d
load4(const double *a)
{
    vec4d v;

    memcpy(&v, a, sizeof v);    /* unaligned load */
    return v;
}

static inline void
store4(double *a, vec4d v)
{
    memcpy(a, &v, sizeof v);
}

/* The 4 connections of v that the low 4 bits of nibble keep. */
static inline vec4d
keep(vec4d v, uint64_t nibble)
{
    return (vec4d) ((vec4i) v & lane_masks[nibble & 0xf]);
}

/* Keep bits of connections i..i+15, i a multiple of 16, in the low 16 bits. */
static inline uint64_t
bits16(const uint64_t *bits, size_t i)
{
    return bits[i / PND_MASK_WORD_BITS] >> (i % PND_MASK_WORD_BITS);
}

__attribute__((target_clones("avx2", "default")))
double
pnd_mask_dot_bits(size_t d, const double *w, const double *x,
                  const uint64_t *bits)
{
    vec4d acc0 = { 0.0 }, acc1 = { 0.0 }, acc2 = { 0.0 }, acc3 = { 0.0 };
    size_t i = 0;
    double sum;

    /* Group g of 4 connections goes to accumulator g % 4. */
    for (; i + 4 * GROUP <= d; i += 4 * GROUP) {
        uint64_t b = bits16(bits, i);

        acc0 += keep(load4(w + i) * load4(x + i), b);
        acc1 += keep(load4(w + i + 4) * load4(x + i + 4), b >> 4);
        acc2 += keep(load4(w + i + 8) * load4(x + i + 8), b >> 8);
        acc3 += keep(load4(w + i + 12) * load4(x + i + 12), b >> 12);
    }
    if (i + GROUP <= d)
        acc0 += keep(load4(w + i) * load4(x + i), bits16(bits, i & ~15));
    if (i + 2 * GROUP <= d)
        acc1 += keep(load4(w + i + 4) * load4(x + i + 4),
                     bits16(bits, i & ~15) >> 4);
    if (i + 3 * GROUP <= d)
        acc2 += keep(load4(w + i + 8) * load4(x + i + 8),
                     bits16(bits, i & ~15) >> 8);
    acc0 = (acc0 + acc1) + (acc2 + acc3);
    sum = (acc0[0] + acc0[1]) + (acc0[2] + acc0[3]);

    for (i = d / GROUP * GROUP; i < d; i++)
        if ((bits[i / PND_MASK_WORD_BITS] >> (i % PND_MASK_WORD_BITS)) & 1)
            sum += w[i] * x[i];
    return sum;
}

__attribute__((target_clones("avx2", "default")))
void
pnd_mask_axpy_bits(size_t d, double c, const double *x, const uint64_t *bits,
                   double *y)
{
    vec4d cv = { c, c, c, c };
    size_t i = 0;

    for (; i + GROUP <= d; i += GROUP) {
        uint64_t b = bits[i / PND_MASK_WORD_BITS] >> (i % PND_MASK_WORD_BITS);

        store4(y + i, load4(y + i) + keep(cv * load4(x + i), b));
    }
    for (; i < d; i++)
        if ((bits[i / PND_MASK_WORD_BITS] >> (i % PND_MASK_WORD_BITS)) & 1)
            y[i] += c * x[i];
}

void
pnd_mask_pernodedrop_forward(pnd_pcg64 *r, double q, double scale, size_t h,
                             size_t d, const double *W, const double *x,
                             uint64_t *bits, double *z)
{
    size_t nw = pnd_mask_words(d);

    for (size_t u = 0; u < h; u++) {
        for (size_t j = 0; j < nw; j++)
            bits[j] = pnd_rng_bernoulli_word(r, q);
        z[u] = scale * pnd_mask_dot_bits(d, W + u * d, x, bits);
    }
}
