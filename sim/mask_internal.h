/* Internal interface between sim/mask.c (schemes, draws, dispatch) and
 * sim/mask_kernels.c (the vectorised per-sample kernels).
 *
 * Keep bits: bit i % 64 of word i / 64 keeps connection i of a row; a row of
 * d connections takes nw = ceil(d / 64) words and the unused high bits of
 * its last word may be anything (the kernels ignore them).
 */
#ifndef PND_SIM_MASK_INTERNAL_H
#define PND_SIM_MASK_INTERNAL_H

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
