/* PCG generators: pcg32, pcg64 (XSL-RR) and pcg64-dxsm.
 *
 * Written from the published definitions: M. E. O'Neill, "PCG: A Family of
 * Simple Fast Space-Efficient Statistically Good Algorithms for Random Number
 * Generation", HMC-CS-2014-0905 (2014), sections 6.3.1 (XSH-RR) and 6.3.3
 * (XSL-RR), and the numpy 1.24 documentation of PCG64 and PCG64DXSM.
 *
 * Step and output order, which the golden tests in check_rng.c pin down:
 *   pcg32       outputs XSH-RR of the old state, then steps (64-bit LCG);
 *   pcg64       steps the 128-bit LCG, then outputs XSL-RR of the new state;
 *   pcg64-dxsm  outputs DXSM of the old state, then steps the 128-bit LCG
 *               whose multiplier is the 64-bit constant PND_PCG_CHEAP_MULTIPLIER.
 *
 * advance uses the O(log n) jump for the affine map x -> a x + c: the map
 * applied n times is again affine, and its coefficients follow from the
 * binary digits of n by repeated squaring. A negative jump is the same jump
 * modulo the period.
 *
 * Bounded integers use Lemire's multiply-and-reject method. It is unbiased
 * and needs a division only on the rare path where a rejection is possible.
 */
#include <config.h>

#include <math.h>
#include <string.h>

#include "pnd/rng.h"

#define PCG32_MULTIPLIER 6364136223846793005ULL
#define PCG64_MULTIPLIER PND_UINT128(2549297995355413924ULL, 4865540595714422341ULL)

/* 2^-53: scales a 53-bit integer to a double in [0, 1). */
#define DOUBLE_53_SCALE 0x1.0p-53

/* Affine jump: the coefficients (mult, plus) of x -> mult x + plus applied
 * delta times, for modulus 2^64 or 2^128 (the integer type wraps). */
#define DEFINE_LCG_JUMP(name, uint_t) \
    static uint_t \
    name(uint_t state, uint_t delta, uint_t cur_mult, uint_t cur_plus) \
    { \
        uint_t acc_mult = 1; \
        uint_t acc_plus = 0; \
        \
        while (delta > 0) { \
            if (delta & 1) { \
                acc_mult *= cur_mult; \
                acc_plus = acc_plus * cur_mult + cur_plus; \
            } \
            cur_plus = (cur_mult + 1) * cur_plus; \
            cur_mult *= cur_mult; \
            delta >>= 1; \
        } \
        return acc_mult * state + acc_plus; \
    }

DEFINE_LCG_JUMP(lcg64_jump, uint64_t)
DEFINE_LCG_JUMP(lcg128_jump, pnd_uint128)

static inline uint32_t
rotr32(uint32_t value, unsigned int rot)
{
    return (value >> rot) | (value << ((-rot) & 31));
}

static inline uint64_t
rotr64(uint64_t value, unsigned int rot)
{
    return (value >> rot) | (value << ((-rot) & 63));
}

/* ---- pcg32 ---- */

static inline void
pcg32_step(pnd_pcg32 *r)
{
    r->state = r->state * PCG32_MULTIPLIER + r->inc;
}

void
pnd_pcg32_init(pnd_pcg32 *r, uint64_t initstate, uint64_t initseq)
{
    r->state = 0;
    r->inc = (initseq << 1) | 1;
    pcg32_step(r);
    r->state += initstate;
    pcg32_step(r);
}

uint32_t
pnd_pcg32_next(pnd_pcg32 *r)
{
    uint64_t old = r->state;
    uint32_t xorshifted = (uint32_t) (((old >> 18) ^ old) >> 27);

    pcg32_step(r);
    return rotr32(xorshifted, (unsigned int) (old >> 59));
}

void
pnd_pcg32_advance(pnd_pcg32 *r, int64_t delta)
{
    /* The period is 2^64, so -n steps equal 2^64 - n steps. */
    r->state = lcg64_jump(r->state, (uint64_t) delta, PCG32_MULTIPLIER, r->inc);
}

uint32_t
pnd_pcg32_bounded(pnd_pcg32 *r, uint32_t bound)
{
    uint64_t product = (uint64_t) pnd_pcg32_next(r) * bound;
    uint32_t low = (uint32_t) product;

    if (low < bound) {
        /* Reject the 2^32 mod bound lowest products of each residue so that
         * every result has exactly floor(2^32 / bound) preimages. */
        uint32_t threshold = (uint32_t) -bound % bound;

        while (low < threshold) {
            product = (uint64_t) pnd_pcg32_next(r) * bound;
            low = (uint32_t) product;
        }
    }
    return (uint32_t) (product >> 32);
}

static inline uint64_t
pcg32_next53(pnd_pcg32 *r)
{
    uint64_t high = pnd_pcg32_next(r) >> 5;    /* 27 bits */
    uint64_t low = pnd_pcg32_next(r) >> 6;     /* 26 bits */

    return (high << 26) | low;
}

double
pnd_pcg32_double(pnd_pcg32 *r)
{
    return (double) pcg32_next53(r) * DOUBLE_53_SCALE;
}

double
pnd_pcg32_double_open(pnd_pcg32 *r)
{
    uint64_t bits;

    /* Rejecting 0 (probability 2^-53) keeps the other 2^53 - 1 values
     * equally likely. */
    do
        bits = pcg32_next53(r);
    while (bits == 0);
    return (double) bits * DOUBLE_53_SCALE;
}

/* ---- pcg64 (XSL-RR) ---- */

static inline void
pcg64_step(pnd_pcg64 *r)
{
    r->state = r->state * PCG64_MULTIPLIER + r->inc;
}

void
pnd_pcg64_init(pnd_pcg64 *r, pnd_uint128 initstate, pnd_uint128 initseq)
{
    r->state = 0;
    r->inc = (initseq << 1) | 1;
    pcg64_step(r);
    r->state += initstate;
    pcg64_step(r);
}

uint64_t
pnd_pcg64_next(pnd_pcg64 *r)
{
    uint64_t high, low;

    pcg64_step(r);
    high = (uint64_t) (r->state >> 64);
    low = (uint64_t) r->state;
    return rotr64(high ^ low, (unsigned int) (r->state >> 122));
}

void
pnd_pcg64_advance(pnd_pcg64 *r, pnd_uint128 delta)
{
    r->state = lcg128_jump(r->state, delta, PCG64_MULTIPLIER, r->inc);
}

/* Lemire's method for 64-bit results; next is the generator's raw output. */
#define DEFINE_BOUNDED64(name, gen_t, next) \
    uint64_t \
    name(gen_t *r, uint64_t bound) \
    { \
        pnd_uint128 product = (pnd_uint128) next(r) * bound; \
        uint64_t low = (uint64_t) product; \
        \
        if (low < bound) { \
            uint64_t threshold = -bound % bound; \
            \
            while (low < threshold) { \
                product = (pnd_uint128) next(r) * bound; \
                low = (uint64_t) product; \
            } \
        } \
        return (uint64_t) (product >> 64); \
    }

DEFINE_BOUNDED64(pnd_pcg64_bounded, pnd_pcg64, pnd_pcg64_next)

double
pnd_pcg64_double(pnd_pcg64 *r)
{
    return (double) (pnd_pcg64_next(r) >> 11) * DOUBLE_53_SCALE;
}

double
pnd_pcg64_double_open(pnd_pcg64 *r)
{
    uint64_t bits;

    do
        bits = pnd_pcg64_next(r) >> 11;
    while (bits == 0);
    return (double) bits * DOUBLE_53_SCALE;
}

/* ---- pcg64-dxsm ---- */

void
pnd_pcg64dxsm_init(pnd_pcg64 *r, pnd_uint128 initstate, pnd_uint128 initseq)
{
    r->state = 0;
    r->inc = (initseq << 1) | 1;
    pnd_pcg64dxsm_step(r);
    r->state += initstate;
    pnd_pcg64dxsm_step(r);
}

uint64_t
pnd_pcg64dxsm_next(pnd_pcg64 *r)
{
    return pnd_pcg64dxsm_next_inline(r);
}

void
pnd_pcg64dxsm_advance(pnd_pcg64 *r, pnd_uint128 delta)
{
    r->state = lcg128_jump(r->state, delta, PND_PCG_CHEAP_MULTIPLIER, r->inc);
}

DEFINE_BOUNDED64(pnd_pcg64dxsm_bounded, pnd_pcg64, pnd_pcg64dxsm_next_inline)

double
pnd_pcg64dxsm_double(pnd_pcg64 *r)
{
    return (double) (pnd_pcg64dxsm_next_inline(r) >> 11) * DOUBLE_53_SCALE;
}

double
pnd_pcg64dxsm_double_open(pnd_pcg64 *r)
{
    uint64_t bits;

    do
        bits = pnd_pcg64dxsm_next_inline(r) >> 11;
    while (bits == 0);
    return (double) bits * DOUBLE_53_SCALE;
}
