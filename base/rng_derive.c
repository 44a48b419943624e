/* Derived generators: a pcg64-dxsm state as a pure function of a coordinate
 * tuple (seed, c_0, ..., c_{n-1}).
 *
 * Four 64-bit hash chains, each with its own key K, give the high and low
 * words of the 128-bit initstate and of the 128-bit stream selector:
 *     h = mix(seed + K)
 *     h = mix(h ^ (c_i + K))          for each coordinate in order
 *     h = mix(h ^ (n + K))            the tuple length ends the chain
 * where mix is the SplitMix64 finalizer (xor-shifts and multiplications by
 * odd constants), a bijection of 64-bit words. The generator is then
 * pnd_pcg64dxsm_init(initstate, stream).
 *
 * What this guarantees, and what it does not:
 * - Derivation is a pure function: the same tuple gives the same generator
 *   on every machine and thread.
 * - Two tuples of the same length that differ in exactly one coordinate
 *   (or only in the seed) differ in every chain, because with the other
 *   coordinates fixed each later round is a bijection of h. So neighbouring
 *   samples, layers or steps never share a state or a stream.
 * - Tuples that differ in several coordinates, or in length, collide only
 *   if all four 64-bit chains collide at once. The mixer is not a
 *   cryptographic hash, so this is a heuristic bound of about 2^-128 per
 *   pair, not a proof.
 * - Independence of two derived generators is statistical, not proven. Two
 *   LCGs with the same multiplier and odd increments c and c' are related:
 *   x' = (c' / c) x maps one sequence onto the other. The hash places the two
 *   starting points independently in the period of 2^128, and the DXSM
 *   output function is designed to hide such affine relations. check_rng.c
 *   measures correlations between neighbouring derived streams at a 4 sigma
 *   bound. None of this is guaranteed against an adversary who chooses the
 *   tuples.
 */
#include <config.h>

#include <gsl/gsl_errno.h>

#include "pnd/rng.h"

/* Keys of the four chains: arbitrary odd constants with mixed bits (digits
 * of pi, e, sqrt 2 and sqrt 3 in hex). */
#define KEY_STATE_HIGH 0x243f6a8885a308d3ULL
#define KEY_STATE_LOW  0xb7e151628aed2a6bULL
#define KEY_STREAM_HIGH 0x6a09e667f3bcc909ULL
#define KEY_STREAM_LOW 0xbb67ae8584caa73bULL

/* SplitMix64 finalizer: xor-shift and odd multiplications, each invertible. */
static inline uint64_t
mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t
hash_chain(uint64_t key, uint64_t seed, const uint64_t *coords /* (n_coords) */,
           size_t n_coords)
{
    uint64_t h = mix64(seed + key);

    for (size_t i = 0; i < n_coords; i++)
        h = mix64(h ^ (coords[i] + key));
    return mix64(h ^ ((uint64_t) n_coords + key));
}

void
pnd_rng_derive(pnd_pcg64 *r, uint64_t seed, const uint64_t *coords,
               size_t n_coords)
{
    pnd_uint128 initstate = PND_UINT128(
        hash_chain(KEY_STATE_HIGH, seed, coords, n_coords),
        hash_chain(KEY_STATE_LOW, seed, coords, n_coords));
    pnd_uint128 initseq = PND_UINT128(
        hash_chain(KEY_STREAM_HIGH, seed, coords, n_coords),
        hash_chain(KEY_STREAM_LOW, seed, coords, n_coords));

    pnd_pcg64dxsm_init(r, initstate, initseq);
}

void
pnd_rng_derive_gsl(gsl_rng *r, uint64_t seed, const uint64_t *coords,
                   size_t n_coords)
{
    if (r == NULL || r->type != pnd_gsl_rng_pcg64dxsm)
        GSL_ERROR_VOID("pnd_rng_derive_gsl needs a generator of type "
                       "pnd_gsl_rng_pcg64dxsm", GSL_EINVAL);
    pnd_rng_derive(r->state, seed, coords, n_coords);
}
