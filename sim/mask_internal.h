/* Internal interface between sim/mask.c (schemes, draws, dispatch) and
 * sim/mask_kernels.c (the vectorised per-sample kernels).
 *
 * Keep bits: bit i % 64 of word i / 64 keeps connection i of a row; a row of
 * d connections takes nw = ceil(d / 64) words and the unused high bits of
 * its last word may be anything (the kernels ignore them).
 */
#ifndef PND_SIM_MASK_INTERNAL_H
#define PND_SIM_MASK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pnd/mask.h"
#include "pnd/rng.h"

#define PND_MASK_WORD_BITS 64

static inline size_t
pnd_mask_words(size_t d)
{
    return (d + PND_MASK_WORD_BITS - 1) / PND_MASK_WORD_BITS;
}

/* sum over kept i of w[i] * x[i], in a fixed order that depends only on d. */
double pnd_mask_dot_bits(size_t d, const double *w /* (d) */,
                         const double *x /* (d) */,
                         const uint64_t *bits /* (ceil(d / 64)) */);

/* sums[u] = pnd_mask_dot_bits(d, W + u d, x, bits + u nw) for u < h. */
void pnd_mask_dot_bits_rows(size_t h, size_t d, const double *W /* (h, d) */,
                            const double *x /* (d) */,
                            const uint64_t *bits /* (h, nw) */, size_t nw,
                            double *sums /* (h) */);

/* sums[0] = pnd_mask_dot_bits(d, w, xa, bits_a) and
 * sums[1] = pnd_mask_dot_bits(d, w, xb, bits_b), bit for bit, with one
 * load of w for both. */
void pnd_mask_dot_bits_pair(size_t d, const double *w /* (d) */,
                            const double *xa /* (d) */,
                            const double *xb /* (d) */,
                            const uint64_t *bits_a /* (ceil(d / 64)) */,
                            const uint64_t *bits_b /* (ceil(d / 64)) */,
                            double *sums /* (2) */);

/* sums[u] = sum over kept i of p[u d + i], with the products
 * p[u d + i] = W[u d + i] * x[i] formed beforehand: the same bits as
 * pnd_mask_dot_bits_rows(h, d, W, x, bits, nw, sums). */
void pnd_mask_sum_bits_rows(size_t h, size_t d, const double *p /* (h, d) */,
                            const uint64_t *bits /* (h, nw) */, size_t nw,
                            double *sums /* (h) */);

/* pnd_mask_sum_bits_rows for m sets of keep bits on the same products, bit
 * for bit: sums[t h + u] from bits[(t h + u) nw ...], with one load of p
 * for every 2 draws (4 with AVX-512). */
void pnd_mask_sum_bits_rows_draws(size_t h, size_t d,
                                  const double *p /* (h, d) */, size_t m,
                                  const uint64_t *bits /* (m, h, nw) */,
                                  size_t nw, double *sums /* (m, h) */);

/* For tests: true makes pnd_mask_sum_bits_rows_draws skip its AVX-512
 * kernel, so that a machine with AVX-512 also tests the pair kernels. */
extern bool pnd_mask_avx512_off;

/* p[u d + i] = W[u d + i] * x[i] for u < h, i < d: the products of every
 * row of W with one input, as pnd_mask_sum_bits_rows takes them. */
void pnd_mask_products(size_t h, size_t d, const double *W /* (h, d) */,
                       const double *x /* (d) */, double *p /* (h, d) */);

/* y[i] += c * x[i] for every kept i. */
void pnd_mask_axpy_bits(size_t d, double c, const double *x /* (d) */,
                        const uint64_t *bits /* (ceil(d / 64)) */,
                        double *y /* (d) */);

/* y[i] += c[j] * x[j][i] for every sample j = 0..m-1 whose keep bits
 * bits[j] keep i, adding the samples in order. */
void pnd_mask_axpy_bits_many(size_t d, size_t m, const double *c /* (m) */,
                             const double *const *x /* (m) rows of (d) */,
                             const uint64_t *const *bits
                             /* (m) rows of (ceil(d / 64)) */,
                             double *y /* (d) */);

/* y[i] = c * x[i] for every kept i and 0 for every dropped i. */
void pnd_mask_scale_bits(size_t d, double c, const double *x /* (d) */,
                         const uint64_t *bits /* (ceil(d / 64)) */,
                         double *y /* (d) */);

#endif
