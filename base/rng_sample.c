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
 * of 64 result words (the last block shorter) from two generators r[0] and
 * r[1]. Word j compares the first m digits (m = 5, or fewer when q has
 * fewer) of all 64 lanes with those of q. It always draws m outputs of
 * r[j % 2], with no branch that depends on the outputs, so the two
 * generators' multiplications can overlap in time. A lane still open then lies
 * below q exactly when the rest of its digits lie below
 * q_rest = 2^m q - floor(2^m q), the digits of q after the m-th, and those
 * digits are fresh fair bits. So each open lane takes one bit of a word of
 * pnd_rng_bernoulli_word(r[0], q_rest) (none when q_rest = 0: the open
 * lanes are then at or above q, and give 0): after the block's first
 * digits, r[0] draws ceil(n / 16) slot words, and word j owns bits
 * 4 (j % 16) to 4 (j % 16) + 3 of slot word j / 16, which its first 4
 * open lanes take, lowest lane first. Open lanes after the fourth of a word
 * (5% of words have some), in the order (word, lane), take the bits of the
 * overflow words that r[0] draws next, lowest bit first. About 2 of the 64
 * lanes stay open, so a word costs 5 + 5 7.3 / 64, or about 5.6, outputs
 * instead of 7.3. The data-dependent exit of the digit loop, a mispredicted
 * branch, then happens once per tail word instead of once per word. The
 * result is exact for the same reason as above. pnd_rng_bernoulli_words_ref
 * does the same lane by lane. (3 digits need only 3.9 outputs, but sharing
 * out about 8 open lanes per word then costs more than the outputs it saves
 * on the test machine.)
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
    int n_head;                      /* digits compared: fewer when q ends */
    uint64_t rest_mantissa;          /* 0 when q_rest = 0 */
    int rest_exponent;
    int rest_last;
};

/* Tail bits that every word of a block owns in its slot word, and the
 * words that share one slot word. A word has 2 open lanes on average and
 * more than 4 about 5% of the time (Binomial(64, 1/32)). */
#define SLOT_BITS 4
#define WORDS_PER_SLOT (64 / SLOT_BITS)

/* Two 64-bit words in one SSE2 register (baseline x86-64). */
typedef uint64_t word_pair __attribute__((vector_size(16)));

/* Gives the lowest SLOT_BITS open lanes of each word the bits of its slot,
 * lowest lane first, leaves in open[j] the lanes still open after them, and
 * returns those lanes of all words ORed. It works on two words at a time in
 * the lanes of a vector, without a branch, because a step past the last
 * open lane of a word finds low = 0 and changes nothing. */
static uint64_t
fill_slots(size_t n, const uint64_t *slot /* (ceil(n / WORDS_PER_SLOT)) */,
           uint64_t *open /* (n) */, uint64_t *words /* (n) */)
{
    word_pair any = { 0, 0 };

    for (size_t j = 0; j < n; j += 2) {
        size_t j1 = j + 1 < n ? j + 1 : j;    /* an odd n repeats the last */
        word_pair o = { open[j], open[j1] };
        word_pair w = { words[j], words[j1] };
        word_pair bits = {
            slot[j / WORDS_PER_SLOT] >> (SLOT_BITS * (j % WORDS_PER_SLOT)),
            slot[j1 / WORDS_PER_SLOT] >> (SLOT_BITS * (j1 % WORDS_PER_SLOT))
        };

#pragma GCC unroll 8
        for (int m = 0; m < SLOT_BITS; m++) {
            word_pair low = o & -o;

            w |= low & -((bits >> m) & 1);
            o ^= low;
        }
        words[j] = w[0];
        open[j] = o[0];
        words[j1] = w[1];
        open[j1] = o[1];
        any |= o;
    }
    return any[0] | any[1];
}

/* Gives the lanes of words (n) that are open after the slot bits, in the
 * order (word, lane), the bits of the overflow words of the block, lowest
 * first. A block has 3.4 such words on average, so bit j of a 64-bit flag
 * word marks them and the loop visits only them. */
static void
fill_overflow(pnd_pcg64 *g, const struct words_q *wq, size_t n,
              const uint64_t *open /* (n) */, uint64_t *words /* (n) */)
{
    uint64_t bits = 0, flagged = 0;
    unsigned used = 64;              /* bits of `bits` given out */

    for (size_t j = 0; j < n; j++)
        flagged |= (uint64_t) (open[j] != 0) << j;
    for (; flagged != 0; flagged &= flagged - 1) {
        size_t j = (size_t) __builtin_ctzll(flagged);

        for (uint64_t o = open[j]; o != 0; o &= o - 1) {
            if (used == 64) {
                bits = bernoulli_word_split(g, wq->rest_mantissa,
                                            wq->rest_exponent, wq->rest_last);
                used = 0;
            }
            words[j] |= ((bits >> used++) & 1) << __builtin_ctzll(o);
        }
    }
}

/* Compares the first n_head digits of the lanes of n words with those of q.
 * Word j draws them from r[j % 2]; its lanes below q go to words[j] and
 * those equal to q so far to open[j]. head_digits below calls it from a
 * function of its own, so that the generators' states stay in registers. */
static inline __attribute__((always_inline)) void
head_digits_inline(pnd_pcg64 *r /* (2) */, const uint64_t *q_digit,
                   int n_head, size_t n, uint64_t *words /* (n) */,
                   uint64_t *open /* (n) */)
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
        open[j] = o0;
        words[j + 1] = w1;
        open[j + 1] = o1;
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
        open[j] = o0;
    }
    r[0] = g0;
    r[1] = g1;
}

/* Calls head_digits_inline with the usual count of digits known at compile
 * time, so that its loop over them is unrolled. */
static __attribute__((noinline)) void
head_digits(pnd_pcg64 *r /* (2) */, const uint64_t *q_digit, int n_head,
            size_t n, uint64_t *words /* (n) */, uint64_t *open /* (n) */)
{
    if (n_head == WORDS_HEAD_DIGITS)
        head_digits_inline(r, q_digit, WORDS_HEAD_DIGITS, n, words, open);
    else
        head_digits_inline(r, q_digit, n_head, n, words, open);
}

/* Draws one block of n <= WORDS_BLOCK words (see the file comment). Word j
 * takes its first digits from r[j % 2], and the tail words come from r[0]. */
static void
bernoulli_block(pnd_pcg64 *r /* (2) */, const struct words_q *wq, size_t n,
                uint64_t *words /* (n) */)
{
    uint64_t open[WORDS_BLOCK];      /* (n) lanes equal to q so far */
    uint64_t slot[WORDS_BLOCK / WORDS_PER_SLOT];    /* (n_slot) */
    uint64_t any_over;               /* an open lane after the slot bits */
    unsigned n_slot;

    head_digits(r, wq->q_digit, wq->n_head, n, words, open);
    if (wq->rest_mantissa == 0)
        return;    /* open lanes against q_rest = 0 are above q */

    /* One Bernoulli(q_rest) bit per open lane. Word j's first SLOT_BITS
     * open lanes take bits SLOT_BITS (j % WORDS_PER_SLOT) onwards of slot
     * word j / WORDS_PER_SLOT; the lanes after them, in the order (word,
     * lane), take the bits of the overflow words, lowest first. */
    n_slot = (n + WORDS_PER_SLOT - 1) / WORDS_PER_SLOT;
    for (unsigned i = 0; i < n_slot; i++)
        slot[i] = bernoulli_word_split(&r[0], wq->rest_mantissa,
                                       wq->rest_exponent, wq->rest_last);
    any_over = fill_slots(n, slot, open, words);
    if (any_over != 0)
        fill_overflow(&r[0], wq, n, open, words);
}

void
pnd_rng_bernoulli_words(pnd_pcg64 *r /* (2) */, double q, size_t n_words,
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
    /* q's last digit 1 is digit 53 - exponent - ctz(mantissa). */
    wq.n_head = 53 - exponent - __builtin_ctzll(mantissa);
    if (wq.n_head > WORDS_HEAD_DIGITS)
        wq.n_head = WORDS_HEAD_DIGITS;
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
pnd_rng_bernoulli_words_ref(pnd_pcg64 *r /* (2) */, double q, size_t n_words,
                            uint64_t *words)
{
    unsigned char q_digit[WORDS_HEAD_DIGITS];
    size_t open_word[WORDS_BLOCK * 64], open_lane[WORDS_BLOCK * 64];
    uint64_t overflow = 0;
    double rest = q;
    int n_head = 0;

    if (!(q > 0.0) || q >= 1.0) {
        for (size_t j = 0; j < n_words; j++)
            words[j] = q >= 1.0 ? ~(uint64_t) 0 : 0;
        return;
    }
    /* First digits of q by doubling, up to its last digit 1; rest is then
     * q_rest. */
    while (n_head < WORDS_HEAD_DIGITS && rest > 0.0) {
        rest *= 2.0;
        q_digit[n_head] = rest >= 1.0;
        rest -= q_digit[n_head];
        n_head++;
    }

    for (size_t j0 = 0; j0 < n_words; j0 += WORDS_BLOCK) {
        size_t n = n_words - j0 < WORDS_BLOCK ? n_words - j0 : WORDS_BLOCK;
        size_t n_open = 0;
        uint64_t slot[WORDS_BLOCK / WORDS_PER_SLOT];

        for (size_t j = j0; j < j0 + n; j++) {
            uint64_t digits[WORDS_HEAD_DIGITS];

            for (int k = 0; k < n_head; k++)
                digits[k] = pnd_pcg64dxsm_next_inline(&r[j % 2]);
            words[j] = 0;
            for (int lane = 0; lane < 64; lane++) {
                int k = 0;

                while (k < n_head && ((digits[k] >> lane) & 1) == q_digit[k])
                    k++;
                if (k == n_head) {
                    open_word[n_open] = j;
                    open_lane[n_open++] = (size_t) lane;
                } else if (q_digit[k]) {
                    words[j] |= (uint64_t) 1 << lane;
                }
            }
        }
        if (rest == 0.0)
            continue;
        for (size_t i = 0; i < (n + WORDS_PER_SLOT - 1) / WORDS_PER_SLOT; i++)
            slot[i] = pnd_rng_bernoulli_word_ref(&r[0], rest);
        /* The m-th open lane of word j (m from 0) takes bit
         * SLOT_BITS (j % WORDS_PER_SLOT) + m of its slot word while
         * m < SLOT_BITS, and the next overflow bit after that. */
        for (size_t i = 0, m = 0, used = 64; i < n_open; i++) {
            size_t j = open_word[i];
            uint64_t bit;

            m = i > 0 && open_word[i - 1] == j ? m + 1 : 0;
            if (m < SLOT_BITS) {
                size_t b = (j - j0) % WORDS_PER_SLOT * SLOT_BITS + m;

                bit = (slot[(j - j0) / WORDS_PER_SLOT] >> b) & 1;
            } else {
                if (used == 64) {
                    overflow = pnd_rng_bernoulli_word_ref(&r[0], rest);
                    used = 0;
                }
                bit = (overflow >> used++) & 1;
            }
            words[j] |= bit << open_lane[i];
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
