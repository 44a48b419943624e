/* PCG random number generators, GSL registration and derived streams.
 *
 * Three generators from the PCG family (M. E. O'Neill, "PCG: A Family of
 * Simple Fast Space-Efficient Statistically Good Algorithms for Random Number
 * Generation", HMC-CS-2014-0905, 2014):
 *   pcg32       64-bit LCG state, XSH-RR output, 32-bit outputs;
 *   pcg64       128-bit LCG state, XSL-RR output, 64-bit outputs;
 *   pcg64-dxsm  128-bit LCG state with the 64-bit "cheap multiplier" and the
 *               DXSM output function, as numpy.random.PCG64DXSM defines it.
 * Seeding follows the reference library's srandom(initstate, initseq): the
 * increment is (initseq << 1) | 1, then state = 0, one step, state +=
 * initstate, one step.
 *
 * All generator state is explicit: there is no default generator. A random
 * draw used by the toolkit is a pure function of its coordinates through
 * pnd_rng_derive, so results do not depend on the order of calls or on the
 * number of threads.
 */
#ifndef PND_RNG_H
#define PND_RNG_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

typedef unsigned __int128 pnd_uint128;

#define PND_UINT128(hi, lo) (((pnd_uint128) (hi) << 64) | (pnd_uint128) (lo))

typedef struct {
    uint64_t state;
    uint64_t inc;        /* odd; selects the stream */
} pnd_pcg32;

typedef struct {
    pnd_uint128 state;
    pnd_uint128 inc;     /* odd; selects the stream */
} pnd_pcg64;             /* used by both pcg64 and pcg64-dxsm */

/* pcg32 */
void pnd_pcg32_init(pnd_pcg32 *r, uint64_t initstate, uint64_t initseq);
uint32_t pnd_pcg32_next(pnd_pcg32 *r);
/* Jump delta steps; a negative delta goes backwards. */
void pnd_pcg32_advance(pnd_pcg32 *r, int64_t delta);
/* Uniform integer in [0, bound), without modulo bias; bound > 0. */
uint32_t pnd_pcg32_bounded(pnd_pcg32 *r, uint32_t bound);
/* 53 random bits: in [0, 1) and in (0, 1). */
double pnd_pcg32_double(pnd_pcg32 *r);
double pnd_pcg32_double_open(pnd_pcg32 *r);

/* pcg64 (XSL-RR) */
void pnd_pcg64_init(pnd_pcg64 *r, pnd_uint128 initstate, pnd_uint128 initseq);
uint64_t pnd_pcg64_next(pnd_pcg64 *r);
void pnd_pcg64_advance(pnd_pcg64 *r, pnd_uint128 delta);  /* modulo 2^128: -n goes back n */
uint64_t pnd_pcg64_bounded(pnd_pcg64 *r, uint64_t bound);
double pnd_pcg64_double(pnd_pcg64 *r);
double pnd_pcg64_double_open(pnd_pcg64 *r);

/* pcg64-dxsm */
#define PND_PCG_CHEAP_MULTIPLIER 0xda942042e4dd58b5ULL

/* One LCG step of pcg64-dxsm. Inline for the hot loops of other modules. */
static inline void
pnd_pcg64dxsm_step(pnd_pcg64 *r)
{
    r->state = r->state * PND_PCG_CHEAP_MULTIPLIER + r->inc;
}

/* The same as pnd_pcg64dxsm_next, inline: DXSM output of the current state,
 * then one step. */
static inline uint64_t
pnd_pcg64dxsm_next_inline(pnd_pcg64 *r)
{
    uint64_t high = (uint64_t) (r->state >> 64);
    uint64_t low = (uint64_t) r->state | 1;

    pnd_pcg64dxsm_step(r);
    high ^= high >> 32;
    high *= PND_PCG_CHEAP_MULTIPLIER;
    high ^= high >> 48;
    return high * low;
}

void pnd_pcg64dxsm_init(pnd_pcg64 *r, pnd_uint128 initstate, pnd_uint128 initseq);
uint64_t pnd_pcg64dxsm_next(pnd_pcg64 *r);
void pnd_pcg64dxsm_advance(pnd_pcg64 *r, pnd_uint128 delta);
uint64_t pnd_pcg64dxsm_bounded(pnd_pcg64 *r, uint64_t bound);
double pnd_pcg64dxsm_double(pnd_pcg64 *r);
double pnd_pcg64dxsm_double_open(pnd_pcg64 *r);

/* GSL generator types: gsl_rng_alloc(pnd_gsl_rng_pcg64dxsm) gives a gsl_rng
 * that every gsl_ran_* sampler can draw from. gsl_rng_set(r, s) seeds with
 * initstate = s and the default stream PND_RNG_DEFAULT_STREAM. */
#define PND_RNG_DEFAULT_STREAM 0xda3e39cb94b95bdbULL
extern const gsl_rng_type *pnd_gsl_rng_pcg32;
extern const gsl_rng_type *pnd_gsl_rng_pcg64;
extern const gsl_rng_type *pnd_gsl_rng_pcg64dxsm;

/* The PCG state inside a gsl_rng of type pnd_gsl_rng_pcg64 or
 * pnd_gsl_rng_pcg64dxsm, for fast inline draws; NULL for any other type. */
pnd_pcg64 *pnd_rng_gsl_state64(gsl_rng *r);

/* Derived generators.
 *
 * pnd_rng_derive sets r (a pcg64-dxsm generator) to a state that is a pure
 * function of (seed, coords[0..n_coords-1]), for example (seed, stream,
 * layer, step, sample). The coordinates are mixed into a 128-bit initstate
 * and a 128-bit stream selector by a bijective 64-bit mixer. Tuples that
 * differ in one coordinate always give distinct generators; other distinct
 * tuples collide with a heuristic probability of about 2^-128. rng_derive.c
 * gives the argument and its limits, check_rng.c the correlation tests. */
void pnd_rng_derive(pnd_pcg64 *r, uint64_t seed, const uint64_t *coords,
                    size_t n_coords);
/* The same for the generator inside a gsl_rng of type pnd_gsl_rng_pcg64dxsm.
 * Any other type leaves r unchanged and raises GSL_EINVAL through the GSL
 * error handler (GSL's default handler aborts). */
void pnd_rng_derive_gsl(gsl_rng *r, uint64_t seed, const uint64_t *coords,
                        size_t n_coords);

/* 64 independent Bernoulli(q) bits from r (pcg64-dxsm), exact for every
 * double q in [0, 1]: each bit compares an infinite-precision uniform with q.
 * A call draws about 7.3 outputs on average, fewer when q has few binary
 * digits (one when q = 1/2, none when q <= 0 or q >= 1). q <= 0 or NaN
 * gives 0, q >= 1 gives all ones. */
uint64_t pnd_rng_bernoulli_word(pnd_pcg64 *r, double q);
/* Draws n_words words of independent Bernoulli(q) bits into words
 * (n_words), exact like pnd_rng_bernoulli_word, from two pcg64-dxsm
 * generators r[0] and r[1]. The cost depends on the number of binary
 * digits of q. At most 4 digits cost one output per digit and word. 5 to
 * 64 digits (every q in [2^-11, 1) has at most 64) cost about 2 outputs
 * per word, by bytes of 8 lanes, in the order base/rng_table.c gives. More
 * digits cost about 7.3. For 5 to 64 digits a call first builds a table of
 * 144 KiB, so when q stays the same over many calls, build it once with
 * pnd_rng_bernoulli_table_alloc. The words depend on how the draws are
 * split into calls. q <= 0 or NaN gives zeros and q >= 1 all ones, without
 * drawing. */
void pnd_rng_bernoulli_words(pnd_pcg64 *r /* (2) */, double q, size_t n_words,
                             uint64_t *words);

/* The table of pnd_rng_bernoulli_words for one q: the same words from the
 * same outputs, without building the table in every call. Returns NULL
 * when out of memory; the caller owns the table and frees it with
 * pnd_rng_bernoulli_table_free (NULL is a no-op). Any q is accepted; a q
 * that needs no table costs a few bytes. */
typedef struct pnd_rng_bernoulli_table pnd_rng_bernoulli_table;
pnd_rng_bernoulli_table *pnd_rng_bernoulli_table_alloc(double q);
void pnd_rng_bernoulli_table_free(pnd_rng_bernoulli_table *t);
void pnd_rng_bernoulli_words_table(pnd_pcg64 *r /* (2) */,
                                   const pnd_rng_bernoulli_table *t,
                                   size_t n_words, uint64_t *words);
/* Plain reference for pnd_rng_bernoulli_words: the same words from the
 * same outputs, lane by lane or by a search over the bytes' boundaries
 * instead of the table. For tests. */
void pnd_rng_bernoulli_words_ref(pnd_pcg64 *r /* (2) */, double q,
                                 size_t n_words, uint64_t *words);
/* Plain reference for pnd_rng_bernoulli_word: lane by lane, with the digits
 * of q found by doubling. It draws the same words and returns the same bits;
 * q <= 0 or NaN gives 0 and q >= 1 gives all ones in both. For tests. */
uint64_t pnd_rng_bernoulli_word_ref(pnd_pcg64 *r, double q);

/* One standard normal draw from r (pcg64-dxsm), by a 256-layer ziggurat:
 * 98.5% of calls draw a single output. */
double pnd_rng_normal(pnd_pcg64 *r);

/* Names accepted by pnd rng --type. Returns NULL for an unknown name. */
const gsl_rng_type *pnd_rng_type_from_name(const char *name);

#endif
