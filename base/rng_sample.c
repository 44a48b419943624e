/* Samplers on pcg64-dxsm: words of Bernoulli bits and standard normals.
 *
 * Bernoulli words. Lane j of the result (bit j) is 1 when U_j < q, where U_j
 * is a uniform number on [0, 1) with infinitely many binary digits: digit k
 * of U_j is bit j of the k-th random word. U_j < q is decided at the first
 * digit where U_j and q differ, so all 64 lanes are compared at once, one
 * whole word per digit, and the loop stops when every lane is decided.
 * Each word decides half of the open lanes on average, so a call uses about
 * log2(64) + 1.3, or 7.3, words (check_rng.c counts them). The result is
 * exact for every double q: once the digits of q end, U_j >= q in every
 * open lane (equality has probability 0). pnd_rng_bernoulli_word_ref
 * compares lane by lane, with the digits of q found by doubling, and must
 * give the same bits from the same words.
 *
 * Normals. The ziggurat of G. Marsaglia and W. W. Tsang, "The Ziggurat
 * Method for Generating Random Variables", J. Stat. Softw. 5(8), 2000, with
 * 256 layers (tables from base/make_ziggurat.py) and Marsaglia's 1964 tail
 * method: x = r + a with a = -ln(u1) / r, accepted when -2 ln(u2) >= a^2.
 * One 64-bit word gives the layer
 * (bits 0-7), the sign (bit 8) and a 53-bit uniform (bits 11-63); 98.5%
 * of draws end after that one word.
 */
#include <config.h>

#include <math.h>
#include <string.h>

#include "base/rng_ziggurat.h"
#include "pnd/rng.h"

/* Digits of q are at most 1074 (the smallest subnormal is 2^-1074). */
#define BERNOULLI_MAX_DIGITS 1075

/* Write a positive finite q as mantissa * 2^(exponent - 53) with
 * 2^52 <= mantissa < 2^53, like frexp but without a library call: the digit
 * of q at position k (weight 2^-k) is then bit (53 - exponent - k) of
 * mantissa. */
static inline void
split_double(double q, uint64_t *mantissa, int *exponent)
{
    const uint64_t fraction_mask = ((uint64_t) 1 << 52) - 1;
    uint64_t bits;
    int biased;

    memcpy(&bits, &q, sizeof bits);
    biased = (int) (bits >> 52) & 0x7ff;
    if (biased != 0) {
        *mantissa = (bits & fraction_mask) | ((uint64_t) 1 << 52);
        *exponent = biased - 1022;
    } else {
        /* Subnormal: q = fraction * 2^-1074; shift the leading 1 to bit 52. */
        int shift = __builtin_clzll(bits & fraction_mask) - 11;

        *mantissa = (bits & fraction_mask) << shift;
        *exponent = -1021 - shift;
    }
}

uint64_t
pnd_rng_bernoulli_word(pnd_pcg64 *r, double q)
{
    uint64_t open = ~(uint64_t) 0;   /* lanes not yet decided */
    uint64_t result = 0;
    uint64_t mantissa;
    int exponent, last;

    if (!(q > 0.0))
        return 0;                    /* also for NaN */
    if (q >= 1.0)
        return ~(uint64_t) 0;

    split_double(q, &mantissa, &exponent);
    last = __builtin_ctzll(mantissa);

    /* Leading zero digits of q: a lane with digit 1 is above q. */
    for (int k = 0; k < -exponent; k++) {
        open &= ~pnd_pcg64dxsm_next_inline(r);
        if (open == 0)
            return 0;
    }

    /* Digits of the mantissa, most significant first, down to its last 1. */
    for (int bit = 52; bit >= last; bit--) {
        uint64_t word = pnd_pcg64dxsm_next_inline(r);
        /* All ones when this digit of q is 1, all zeros when it is 0. */
        uint64_t q_digit = -((mantissa >> bit) & 1);

        /* A lane whose digit differs from q's is decided: digit 0 against
         * q's 1 is below q. Lanes whose digit equals q's stay open. */
        result |= open & ~word & q_digit;
        open &= ~(word ^ q_digit);
        if (open == 0)
            break;
    }
    return result;
}

uint64_t
pnd_rng_bernoulli_word_ref(pnd_pcg64 *r, double q)
{
    unsigned char q_digit[BERNOULLI_MAX_DIGITS];       /* (n_digits) */
    uint64_t words[BERNOULLI_MAX_DIGITS];              /* (n_words) */
    size_t n_digits = 0, n_words = 0;
    uint64_t result = 0;
    double rest = q;

    if (!(q > 0.0))
        return 0;
    if (q >= 1.0)
        return ~(uint64_t) 0;

    /* Binary digits of q by doubling: each step is exact in binary64. */
    while (rest > 0.0) {
        rest *= 2.0;
        q_digit[n_digits] = rest >= 1.0;
        rest -= q_digit[n_digits];
        n_digits++;
    }

    for (int lane = 0; lane < 64; lane++) {
        for (size_t k = 0; k < n_digits; k++) {
            unsigned int u_digit;

            while (n_words <= k)
                words[n_words++] = pnd_pcg64dxsm_next_inline(r);
            u_digit = (unsigned int) (words[k] >> lane) & 1;
            if (u_digit != q_digit[k]) {
                if (u_digit < q_digit[k])
                    result |= (uint64_t) 1 << lane;
                break;
            }
        }
    }
    return result;
}

/* x with its sign flipped when bit 8 of word is set. Flipping the sign bit
 * directly avoids a branch that would be mispredicted half of the time. */
static inline double
apply_sign_bit(double x, uint64_t word)
{
    uint64_t bits;

    memcpy(&bits, &x, sizeof bits);
    bits ^= (word & 0x100) << 55;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* Marsaglia's tail method: x > r with density proportional to f(x). */
static double
normal_tail(pnd_pcg64 *r)
{
    double a, b;

    do {
        a = -log(pnd_pcg64dxsm_double_open(r)) / ZIGGURAT_R;
        b = -log(pnd_pcg64dxsm_double_open(r));
    } while (2.0 * b < a * a);
    return ZIGGURAT_R + a;
}

double
pnd_rng_normal(pnd_pcg64 *r)
{
    for (;;) {
        uint64_t word = pnd_pcg64dxsm_next_inline(r);
        unsigned int layer = (unsigned int) (word & 0xff);
        uint64_t uniform53 = word >> 11;
        double x = (double) uniform53 * ziggurat_width[layer];
        double y;

        /* Inside the rectangle that lies under the curve for the layer. */
        if (uniform53 < ziggurat_threshold[layer])
            return apply_sign_bit(x, word);
        if (layer == 0)
            return apply_sign_bit(normal_tail(r), word);

        /* Wedge: accept when a uniform height in the layer is under f(x). */
        y = ziggurat_height[layer] + pnd_pcg64dxsm_double(r)
            * (ziggurat_height[layer + 1] - ziggurat_height[layer]);
        if (y < exp(-0.5 * x * x))
            return apply_sign_bit(x, word);
    }
}
