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
 * Many Bernoulli words. pnd_rng_bernoulli_words draws from two generators
 * r[0] and r[1], whose multiplications overlap in time, and chooses its
 * method by the number of binary digits of q:
 * - at most 4 digits: word j compares all of them in its 64 lanes at once,
 *   drawing one output of r[j % 2] per digit. A lane equal to q in every
 *   digit is at or above q. 0.5 costs one output per word, 0.8125 four.
 * - 5 to 64 digits (every q in [2^-11, 1) with more than 4): bytes of 8
 *   lanes by inversion of their exact distribution (base/rng_table.c),
 *   about 2 outputs per word.
 * - more digits (q < 2^-11): word j is pnd_rng_bernoulli_word(r[j % 2], q).
 * pnd_rng_bernoulli_words_ref does the same by plainer means.
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

#include "base/rng_table.h"
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

/* One word of Bernoulli bits against q = mantissa 2^(exponent - 53), with
 * last the lowest set bit of mantissa. */
static inline uint64_t
bernoulli_word_split(pnd_pcg64 *r, uint64_t mantissa, int exponent, int last)
{
    uint64_t open = ~(uint64_t) 0;   /* lanes not yet decided */
    uint64_t result = 0;

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
pnd_rng_bernoulli_word(pnd_pcg64 *r, double q)
{
    uint64_t mantissa;
    int exponent;

    if (!(q > 0.0))
        return 0;                    /* also for NaN */
    if (q >= 1.0)
        return ~(uint64_t) 0;
    split_double(q, &mantissa, &exponent);
    return bernoulli_word_split(r, mantissa, exponent,
                                __builtin_ctzll(mantissa));
}

/* Compares all n_head digits of q with those of the lanes of n words.
 * Word j draws them from r[j % 2], and its lanes below q go to words[j].
 * A lane equal to q in every digit is at or above it. head_digits calls
 * this from a function of its own, so that the generators' states stay in
 * registers. */
static inline __attribute__((always_inline)) void
head_digits_inline(pnd_pcg64 *r /* (2) */, const uint64_t *q_digit,
                   int n_head, size_t n, uint64_t *words /* (n) */)
{
    pnd_pcg64 g0 = r[0], g1 = r[1];
    size_t j = 0;

    /* Two words at a time, so that the two generators' chains of
     * multiplications overlap. A branch on a digit of q goes the same way
     * in every word, so it is predicted and costs less than a branch-free
     * compare. */
    for (; j + 1 < n; j += 2) {
        uint64_t o0 = ~(uint64_t) 0, o1 = ~(uint64_t) 0;
        uint64_t w0 = 0, w1 = 0;

        for (int k = 0; k < n_head; k++) {
            uint64_t u0 = pnd_pcg64dxsm_next_inline(&g0);
            uint64_t u1 = pnd_pcg64dxsm_next_inline(&g1);

            if (q_digit[k]) {        /* digit 0 of U: below q */
                w0 |= o0 & ~u0;
                o0 &= u0;
                w1 |= o1 & ~u1;
                o1 &= u1;
            } else {                 /* digit 1 of U: above q */
                o0 &= ~u0;
                o1 &= ~u1;
            }
        }
        words[j] = w0;
        words[j + 1] = w1;
    }
    if (j < n) {                     /* an odd last word: j is even */
        uint64_t o0 = ~(uint64_t) 0, w0 = 0;

        for (int k = 0; k < n_head; k++) {
            uint64_t u0 = pnd_pcg64dxsm_next_inline(&g0);

            if (q_digit[k]) {
                w0 |= o0 & ~u0;
                o0 &= u0;
            } else {
                o0 &= ~u0;
            }
        }
        words[j] = w0;
    }
    r[0] = g0;
    r[1] = g1;
}

/* Calls head_digits_inline with the largest count of digits known at
 * compile time, so that its loop over them is unrolled. */
static __attribute__((noinline)) void
head_digits(pnd_pcg64 *r /* (2) */, const uint64_t *q_digit, int n_head,
            size_t n, uint64_t *words /* (n) */)
{
    if (n_head == PND_BERNOULLI_SLICED_DIGITS)
        head_digits_inline(r, q_digit, PND_BERNOULLI_SLICED_DIGITS, n, words);
    else
        head_digits_inline(r, q_digit, n_head, n, words);
}

/* Fills words for q <= 0, NaN or q >= 1, which draw nothing. */
static void
constant_words(double q, size_t n_words, uint64_t *words /* (n_words) */)
{
    uint64_t word = q >= 1.0 ? ~(uint64_t) 0 : 0;

    for (size_t j = 0; j < n_words; j++)
        words[j] = word;
}

/* Draws the words of pnd_rng_bernoulli_words for a q of at most
 * PND_BERNOULLI_SLICED_DIGITS digits, by comparing all of them. */
static void
sliced_words(pnd_pcg64 *r /* (2) */, double q, size_t n_words,
             uint64_t *words)
{
    uint64_t q_digit[PND_BERNOULLI_SLICED_DIGITS];
    uint64_t m;
    int n_head = pnd_bernoulli_digits(q, &m);    /* q = m 2^-n_head */

    /* Digit k + 1 of q is bit n_head - 1 - k of m, as all zeros or ones. */
    for (int k = 0; k < n_head; k++)
        q_digit[k] = -((m >> (n_head - 1 - k)) & 1);
    head_digits(r, q_digit, n_head, n_words, words);
}

void
pnd_rng_bernoulli_words(pnd_pcg64 *r /* (2) */, double q, size_t n_words,
                        uint64_t *words)
{
    pnd_rng_bernoulli_table *t;

    switch (pnd_bernoulli_method_of(q)) {
    case PND_BERNOULLI_CONSTANT:
        constant_words(q, n_words, words);
        break;
    case PND_BERNOULLI_SLICED:
        sliced_words(r, q, n_words, words);
        break;
    case PND_BERNOULLI_TABLE:
        /* The search gives the same words without the table's memory. */
        t = pnd_rng_bernoulli_table_alloc(q);
        if (t != NULL)
            pnd_rng_bernoulli_words_table(r, t, n_words, words);
        else
            pnd_bernoulli_words_search(r, q, n_words, words);
        pnd_rng_bernoulli_table_free(t);
        break;
    case PND_BERNOULLI_WORDWISE:
        for (size_t j = 0; j < n_words; j++)
            words[j] = pnd_rng_bernoulli_word(&r[j % 2], q);
        break;
    }
}

void
pnd_rng_bernoulli_words_ref(pnd_pcg64 *r /* (2) */, double q, size_t n_words,
                            uint64_t *words)
{
    unsigned char q_digit[PND_BERNOULLI_SLICED_DIGITS];
    double rest = q;
    int n_head = 0;

    switch (pnd_bernoulli_method_of(q)) {
    case PND_BERNOULLI_CONSTANT:
        constant_words(q, n_words, words);
        return;
    case PND_BERNOULLI_TABLE:
        pnd_bernoulli_words_search(r, q, n_words, words);
        return;
    case PND_BERNOULLI_WORDWISE:
        for (size_t j = 0; j < n_words; j++)
            words[j] = pnd_rng_bernoulli_word_ref(&r[j % 2], q);
        return;
    case PND_BERNOULLI_SLICED:
        break;
    }

    /* All digits of q by doubling. */
    while (rest > 0.0) {
        rest *= 2.0;
        q_digit[n_head] = rest >= 1.0;
        rest -= q_digit[n_head];
        n_head++;
    }
    for (size_t j = 0; j < n_words; j++) {
        uint64_t digits[PND_BERNOULLI_SLICED_DIGITS];

        for (int k = 0; k < n_head; k++)
            digits[k] = pnd_pcg64dxsm_next_inline(&r[j % 2]);
        words[j] = 0;
        for (int lane = 0; lane < 64; lane++) {
            int k = 0;

            while (k < n_head && ((digits[k] >> lane) & 1) == q_digit[k])
                k++;
            if (k < n_head && q_digit[k])
                words[j] |= (uint64_t) 1 << lane;
        }
    }
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
