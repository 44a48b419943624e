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
 * Many Bernoulli words. Most of the 7.3 words of a call decide only the few
 * lanes that are still open. pnd_rng_bernoulli_words instead takes blocks
 * of 64 result words (the last block shorter). For each word of a block in
 * turn, it compares the first 5 digits of all 64 lanes with those of q,
 * always drawing 5 outputs, with no branch that depends on the outputs.
 * A lane still open then lies
 * below q exactly when the rest of its digits lie below
 * q_rest = 2^5 q - floor(2^5 q), the digits of q after the fifth, and those
 * digits are fresh fair bits. So each open lane, in the order (word, lane),
 * takes the next bit of ceil(n_open / 64) words of
 * pnd_rng_bernoulli_word(r, q_rest), drawn after the block's first digits,
 * lowest bit first (none when q_rest = 0: the open lanes are then at or
 * above q, and give 0). About 2 of the 64 lanes stay open, so a word costs
 * 5 + 7.3 / 32, or about 5.2, outputs instead of 7.3, and the
 * data-dependent exit of the digit loop, a mispredicted branch per word,
 * happens once per tail word instead. The result is exact for the same
 * reason as above. pnd_rng_bernoulli_words_ref does the same lane by lane.
 * (3 digits need only 3.9 outputs, but sharing out about 8 open lanes per
 * word then costs more than the outputs it saves on the test machine.)
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

/* Digits of q that pnd_rng_bernoulli_words compares in every lane before it
 * batches the open lanes, and the words in a batch. */
#define WORDS_HEAD_DIGITS 5
#define WORDS_BLOCK 64

/* Digit k (weight 2^-k, k >= 1) of q = mantissa 2^(exponent - 53), as all
 * zeros or all ones. */
static inline uint64_t
digit_mask(uint64_t mantissa, int exponent, int k)
{
    int bit = 53 - exponent - k;

    return bit >= 0 && bit <= 52 ? -((mantissa >> bit) & 1) : 0;
}

/* The parts of q that every block of pnd_rng_bernoulli_words uses, worked
 * out once per call: its first digits as masks, and q_rest split like q for
 * bernoulli_word_split. */
struct words_q {
    uint64_t q_digit[WORDS_HEAD_DIGITS];
    uint64_t rest_mantissa;          /* 0 when q_rest = 0 */
    int rest_exponent;
    int rest_last;
};

/* Count the set bits of x by adding neighbouring fields of bits. This needs
 * no library call and no popcnt instruction, which baseline x86-64 lacks. */
static inline unsigned
bit_count(uint64_t x)
{
    x -= (x >> 1) & 0x5555555555555555;
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0f;
    x += x >> 8;
    x += x >> 16;
    x += x >> 32;
    return (unsigned) (x & 0x7f);
}

/* Open lanes of a word that deposit_bits handles without a loop. A word has
 * 2 on average and more than 4 about 5% of the time (Binomial(64, 1/32)). */
#define DEPOSIT_UNROLLED 4

/* Place the lowest bits of bits at the set bits of open, lowest first, as
 * the BMI2 instruction pdep does. pdep is not used because it is
 * microcoded and slow on AMD before Zen 3 (the test machine is Zen, family
 * 23). The first DEPOSIT_UNROLLED steps have no branch, because a step past
 * the last set bit finds low = 0 and changes nothing. */
static inline uint64_t
deposit_bits(uint64_t bits, uint64_t open)
{
    uint64_t result = 0;

#pragma GCC unroll 8
    for (int m = 0; m < DEPOSIT_UNROLLED; m++) {
        uint64_t low = open & -open;

        result |= low & -((bits >> m) & 1);
        open ^= low;
    }
    for (int m = DEPOSIT_UNROLLED; open != 0; open &= open - 1, m++)
        result |= ((bits >> m) & 1) << __builtin_ctzll(open);
    return result;
}

/* One block of n <= WORDS_BLOCK words (see the file comment). */
static void
bernoulli_block(pnd_pcg64 *r, const struct words_q *wq, size_t n,
                uint64_t *words /* (n) */)
{
    uint64_t open[WORDS_BLOCK];      /* (n) lanes equal to q so far */
    unsigned start[WORDS_BLOCK];     /* (n) first tail bit of each word */
    uint64_t tail[WORDS_BLOCK + 2];  /* (n_tail + 2) Bernoulli(q_rest) bits */
    uint64_t q_digit[WORDS_HEAD_DIGITS];
    pnd_pcg64 g = *r;                /* in registers, not behind r */
    unsigned n_open = 0, n_tail;

    memcpy(q_digit, wq->q_digit, sizeof q_digit);
    /* The first digits of every lane. A branch on a digit of q goes the
     * same way in every word, so it is predicted. It saves the instructions
     * of a branch-free compare, which slowed this loop by about 10%. */
    for (size_t j = 0; j < n; j++) {
        uint64_t o = ~(uint64_t) 0, result = 0;

        for (int k = 0; k < WORDS_HEAD_DIGITS; k++) {
            uint64_t word = pnd_pcg64dxsm_next_inline(&g);

            if (q_digit[k]) {        /* digit 0 of U: below q */
                result |= o & ~word;
                o &= word;
            } else {                 /* digit 1 of U: above q */
                o &= ~word;
            }
        }
        words[j] = result;
        open[j] = o;
    }
    if (wq->rest_mantissa == 0) {
        *r = g;
        return;    /* open lanes against q_rest = 0 are above q */
    }

    /* One Bernoulli(q_rest) bit per open lane, in the order (word, lane).
     * Word j takes tail bits from start[j], the number of open lanes in the
     * words before it. The ceil(n_open / 64) tail words are drawn right
     * after the first digits, as in the file comment. */
    for (size_t j = 0; j < n; j++) {
        start[j] = n_open;
        n_open += bit_count(open[j]);
    }
    n_tail = (n_open + 63) / 64;
    for (unsigned i = 0; i < n_tail; i++)
        tail[i] = bernoulli_word_split(&g, wq->rest_mantissa,
                                       wq->rest_exponent, wq->rest_last);
    /* A word after the last open lane may read up to tail[n_tail + 1]. */
    tail[n_tail] = 0;
    tail[n_tail + 1] = 0;
    for (size_t j = 0; j < n; j++) {
        unsigned i = start[j] / 64, s = start[j] % 64;
        /* Tail bits start[j] to start[j] + 63; the two shifts keep the
         * shift count below 64 when s = 0. */
        uint64_t bits = (tail[i] >> s) | ((tail[i + 1] << 1) << (63 - s));

        words[j] |= deposit_bits(bits, open[j]);
    }
    *r = g;
}

void
pnd_rng_bernoulli_words(pnd_pcg64 *r, double q, size_t n_words,
                        uint64_t *words)
{
    struct words_q wq;
    uint64_t mantissa;
    int exponent;
    double q_rest;

    if (!(q > 0.0) || q >= 1.0) {
        uint64_t constant = q >= 1.0 ? ~(uint64_t) 0 : 0;

        for (size_t j = 0; j < n_words; j++)
            words[j] = constant;
        return;
    }
    split_double(q, &mantissa, &exponent);
    for (int k = 0; k < WORDS_HEAD_DIGITS; k++)
        wq.q_digit[k] = digit_mask(mantissa, exponent, k + 1);
    /* The digits of q after the first WORDS_HEAD_DIGITS, exactly: scaling
     * by a power of 2 and removing the integer part round nothing. */
    q_rest = ldexp(q, WORDS_HEAD_DIGITS);
    q_rest -= floor(q_rest);
    wq.rest_mantissa = 0;
    wq.rest_exponent = 0;
    wq.rest_last = 0;
    if (q_rest > 0.0) {
        split_double(q_rest, &wq.rest_mantissa, &wq.rest_exponent);
        wq.rest_last = __builtin_ctzll(wq.rest_mantissa);
    }
    for (size_t j0 = 0; j0 < n_words; j0 += WORDS_BLOCK) {
        size_t n = n_words - j0 < WORDS_BLOCK ? n_words - j0 : WORDS_BLOCK;

        bernoulli_block(r, &wq, n, words + j0);
    }
}

void
pnd_rng_bernoulli_words_ref(pnd_pcg64 *r, double q, size_t n_words,
                            uint64_t *words)
{
    unsigned char q_digit[WORDS_HEAD_DIGITS];
    size_t open_word[WORDS_BLOCK * 64], open_lane[WORDS_BLOCK * 64];
    double rest = q;

    if (!(q > 0.0) || q >= 1.0) {
        for (size_t j = 0; j < n_words; j++)
            words[j] = q >= 1.0 ? ~(uint64_t) 0 : 0;
        return;
    }
    /* First digits of q by doubling; rest is then q_rest. */
    for (int k = 0; k < WORDS_HEAD_DIGITS; k++) {
        rest *= 2.0;
        q_digit[k] = rest >= 1.0;
        rest -= q_digit[k];
    }

    for (size_t j0 = 0; j0 < n_words; j0 += WORDS_BLOCK) {
        size_t n = n_words - j0 < WORDS_BLOCK ? n_words - j0 : WORDS_BLOCK;
        size_t n_open = 0;

        for (size_t j = j0; j < j0 + n; j++) {
            uint64_t digits[WORDS_HEAD_DIGITS];

            for (int k = 0; k < WORDS_HEAD_DIGITS; k++)
                digits[k] = pnd_pcg64dxsm_next_inline(r);
            words[j] = 0;
            for (int lane = 0; lane < 64; lane++) {
                int k = 0;

                while (k < WORDS_HEAD_DIGITS
                       && ((digits[k] >> lane) & 1) == q_digit[k])
                    k++;
                if (k == WORDS_HEAD_DIGITS) {
                    open_word[n_open] = j;
                    open_lane[n_open++] = (size_t) lane;
                } else if (q_digit[k]) {
                    words[j] |= (uint64_t) 1 << lane;
                }
            }
        }
        if (rest == 0.0)
            continue;
        for (size_t i = 0; i < n_open; i += 64) {
            uint64_t tail = pnd_rng_bernoulli_word_ref(r, rest);

            for (size_t b = 0; b < 64 && i + b < n_open; b++)
                words[open_word[i + b]] |=
                    ((tail >> b) & 1) << open_lane[i + b];
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
