/* The PCG generators as GSL generator types (gsl_rng_type), so that every
 * gsl_ran_* sampler can draw from them.
 *
 * get returns the raw output: 32 bits for pcg32 (max 2^32 - 1), 64 bits for
 * pcg64 and pcg64-dxsm (max 2^64 - 1, which needs a 64-bit unsigned long).
 * get_double returns 53 random bits in [0, 1), like the pnd_*_double
 * functions. set(s) seeds with initstate = s and PND_RNG_DEFAULT_STREAM.
 */
#include <config.h>

#include <limits.h>
#include <string.h>

#include "pnd/rng.h"

_Static_assert(sizeof(unsigned long) == 8,
               "the 64-bit GSL types need a 64-bit unsigned long");

static void
pcg32_set(void *state, unsigned long seed)
{
    pnd_pcg32_init(state, seed, PND_RNG_DEFAULT_STREAM);
}

static unsigned long
pcg32_get(void *state)
{
    return pnd_pcg32_next(state);
}

static double
pcg32_get_double(void *state)
{
    return pnd_pcg32_double(state);
}

static void
pcg64_set(void *state, unsigned long seed)
{
    pnd_pcg64_init(state, seed, PND_RNG_DEFAULT_STREAM);
}

static unsigned long
pcg64_get(void *state)
{
    return pnd_pcg64_next(state);
}

static double
pcg64_get_double(void *state)
{
    return pnd_pcg64_double(state);
}

static void
pcg64dxsm_set(void *state, unsigned long seed)
{
    pnd_pcg64dxsm_init(state, seed, PND_RNG_DEFAULT_STREAM);
}

static unsigned long
pcg64dxsm_get(void *state)
{
    return pnd_pcg64dxsm_next_inline(state);
}

static double
pcg64dxsm_get_double(void *state)
{
    return pnd_pcg64dxsm_double(state);
}

static const gsl_rng_type pcg32_type = {
    "pcg32", 0xffffffffUL, 0, sizeof(pnd_pcg32),
    pcg32_set, pcg32_get, pcg32_get_double
};

static const gsl_rng_type pcg64_type = {
    "pcg64", ULONG_MAX, 0, sizeof(pnd_pcg64),
    pcg64_set, pcg64_get, pcg64_get_double
};

static const gsl_rng_type pcg64dxsm_type = {
    "pcg64-dxsm", ULONG_MAX, 0, sizeof(pnd_pcg64),
    pcg64dxsm_set, pcg64dxsm_get, pcg64dxsm_get_double
};

const gsl_rng_type *pnd_gsl_rng_pcg32 = &pcg32_type;
const gsl_rng_type *pnd_gsl_rng_pcg64 = &pcg64_type;
const gsl_rng_type *pnd_gsl_rng_pcg64dxsm = &pcg64dxsm_type;

pnd_pcg64 *
pnd_rng_gsl_state64(gsl_rng *r)
{
    if (r == NULL || (r->type != &pcg64_type && r->type != &pcg64dxsm_type))
        return NULL;
    return r->state;
}

const gsl_rng_type *
pnd_rng_type_from_name(const char *name)
{
    if (strcmp(name, "pcg32") == 0)
        return pnd_gsl_rng_pcg32;
    if (strcmp(name, "pcg64") == 0)
        return pnd_gsl_rng_pcg64;
    if (strcmp(name, "pcg64-dxsm") == 0 || strcmp(name, "pcg64dxsm") == 0)
        return pnd_gsl_rng_pcg64dxsm;
    return NULL;
}
