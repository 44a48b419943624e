/* Internal interface of base/rng_table.c for base/rng_sample.c: how
 * pnd_rng_bernoulli_words draws for a given q, and the reference of the
 * table method. */
#ifndef PND_BASE_RNG_TABLE_H
#define PND_BASE_RNG_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "pnd/rng.h"

/* q with at most this many binary digits is compared digit by digit. */
#define PND_BERNOULLI_SLICED_DIGITS 4

enum pnd_bernoulli_method {
    PND_BERNOULLI_CONSTANT,     /* q <= 0, NaN or q >= 1: no draws */
    PND_BERNOULLI_SLICED,       /* 1 to 4 digits: one output per digit */
    PND_BERNOULLI_TABLE,        /* 5 to 64 digits: bytes by inversion */
    PND_BERNOULLI_WORDWISE      /* more than 64 digits: only q < 2^-11 */
};

/* Returns the number e of binary digits of q in (0, 1), and m, with
 * q = m 2^-e and m odd. */
int pnd_bernoulli_digits(double q, uint64_t *m);

enum pnd_bernoulli_method pnd_bernoulli_method_of(double q);

/* Draws the words of pnd_rng_bernoulli_words_table for a q of the table
 * method from the same outputs, finding each byte by a binary search over
 * the boundaries: the reference of the table method. */
void pnd_bernoulli_words_search(pnd_pcg64 *r /* (2) */, double q,
                                size_t n_words, uint64_t *words);

/* For tests: the boundaries C_0 .. C_255 of a q of the table method, each
 * as 8 words of 64 binary digits, digits 1 to 64 first. */
void pnd_bernoulli_bounds_of(double q, uint64_t (*bound)[8] /* (256, 8) */);

/* For tests: returns the byte that the sampler draws for a q of the table
 * method when the first 16 digits of V are cell and the next ones come
 * from digits (8 words of 64, top first). *n_used receives the number of
 * words read. */
unsigned pnd_bernoulli_byte_of(double q, unsigned cell,
                               const uint64_t *digits /* (8) */, int *n_used);

#endif
