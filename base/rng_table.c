/* Bernoulli words eight lanes at a time, by inversion of the exact
 * distribution of a byte of keep bits.
 *
 * Eight independent Bernoulli(q) lanes take one of 256 values o (bit l of o
 * is lane l), with probability P(o) = q^k (1 - q)^(8 - k), k the number of
 * ones in o. Put the values in increasing order on [0, 1): o takes the
 * interval [C_o, C_(o+1)) with C_0 = 0 and C_(o+1) = C_o + P(o). A uniform
 * number V with infinitely many binary digits then falls in the interval
 * of o with probability P(o), so the value whose interval contains V is an
 * exact draw of the eight lanes.
 *
 * The C_o are exact. When q = m 2^-E with m odd and E <= 64 (every double q
 * in [2^-11, 1) qualifies), P(o) = m^k (2^E - m)^(8 - k) 2^(-8 E) has at
 * most 8 E <= 512 binary digits, and so has every C_o: they are kept as
 * 512-bit fractions.
 *
 * The first 16 digits of V name one of 65536 cells of width 2^-16. A cell
 * that lies inside one interval decides the byte at once: the table gives
 * its value. A cell that contains a boundary C_o (a tie, at most 255
 * of the 65536 cells, so at most 0.39% of the bytes) needs more digits of
 * V. They are compared with the digits of the boundaries in the cell, 64 at
 * a time, until V differs from each. That takes at most 8 words, because a
 * boundary ends after 512 digits. A V equal to a boundary in all of them is
 * at or above it, and equality has probability 0.
 *
 * Cost: 16 random bits per 8 lanes, so 2 outputs per word of 64 lanes,
 * and 8 table loads. When q lies outside [1/4, 3/4], a table in bytes
 * marks the tied cells with a byte value that no other cell has, and the
 * ties are found after the block's words (marked_block). The former method compared the first 5 digits of all
 * lanes (5 outputs per word) and then drew more for the lanes still open.
 * BENCHMARKS.md has the measurements.
 *
 * Draw order of pnd_rng_bernoulli_words_table, per block of 64 words (the
 * last block shorter): word j draws u0 from r[0] and then u1 from r[1];
 * byte b of the word (lanes 8 b to 8 b + 7) takes its 16 digits from bits
 * 16 (b % 4) to 16 (b % 4) + 15 of u0 (b < 4) or u1 (b >= 4), most
 * significant first. After the block's words, its tied bytes in the order
 * (word, byte) draw their further digits of V from r[0], 64 per output,
 * most significant first, as many outputs as the comparisons need (one
 * nearly always).
 */
#include <config.h>

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng_table.h"

#define LIMBS 8                 /* 64-bit limbs of a 512-bit fraction */
#define BYTE_VALUES 256
#define CELL_BITS 16
#define CELLS (1u << CELL_BITS)
#define CELL_SHIFT (64 - CELL_BITS)    /* a cell's digits in the top limb */
#define TABLE_BLOCK 64          /* words whose ties are resolved together */
#define TIE_FLAG 0x100          /* entry bit: the cell contains a boundary */

/* A fraction in [0, 1) as 512 binary digits: l[7] contains digits 1 to 64. */
struct frac512 {
    uint64_t l[LIMBS];          /* least significant limb first */
};

/* The table of a q of the table method. */
struct table_data {
    /* Entry c, for the first 16 digits c of V: the byte value whose
     * interval contains the cell's start, ORed with TIE_FLAG when a
     * boundary lies inside the cell. */
    uint16_t entry[CELLS];                     /* (CELLS) */
    /* The same table in bytes, when q has a mark: a byte value that no
     * untied cell has, written for every tied cell. The value of least
     * probability (0x00 when q >= 1/2, 0xff otherwise) is a mark when its
     * probability is below 2^-16, the width of a cell, that is when q lies
     * outside [1/4, 3/4]. */
    bool marked;
    uint8_t mark;
    uint8_t byte[CELLS];                       /* (CELLS) when marked */
    struct frac512 bound[BYTE_VALUES];         /* (256) C_0 .. C_255 */
};

struct pnd_rng_bernoulli_table {
    double q;
    enum pnd_bernoulli_method method;
    struct table_data *data;    /* for the table method, else NULL */
};

/* --- exact boundaries ----------------------------------------------------- */

/* Multiplies a by f. The product must fit in LIMBS limbs. */
static void
mul_small(struct frac512 *a, uint64_t f)
{
    unsigned __int128 carry = 0;

    for (int i = 0; i < LIMBS; i++) {
        unsigned __int128 t = (unsigned __int128) a->l[i] * f + carry;

        a->l[i] = (uint64_t) t;
        carry = t >> 64;
    }
}

/* Adds b to a. */
static void
add_frac(struct frac512 *a, const struct frac512 *b)
{
    uint64_t carry = 0;

    for (int i = 0; i < LIMBS; i++) {
        uint64_t s = a->l[i] + carry;

        carry = s < carry;
        a->l[i] = s + b->l[i];
        carry += a->l[i] < b->l[i];
    }
}

/* Multiplies a by 2^shift, for 0 <= shift < 512 and a product below
 * 2^512. */
static void
shift_left(struct frac512 *a, int shift)
{
    int limbs = shift / 64, bits = shift % 64;

    for (int i = LIMBS - 1; i >= 0; i--) {
        uint64_t hi = i - limbs >= 0 ? a->l[i - limbs] : 0;
        uint64_t lo = i - limbs - 1 >= 0 ? a->l[i - limbs - 1] : 0;

        a->l[i] = bits ? hi << bits | lo >> (64 - bits) : hi;
    }
}

/* Returns -1, 0 or 1 as a < b, a = b or a > b. */
static int
cmp_frac(const struct frac512 *a, const struct frac512 *b)
{
    for (int i = LIMBS - 1; i >= 0; i--)
        if (a->l[i] != b->l[i])
            return a->l[i] < b->l[i] ? -1 : 1;
    return 0;
}

int
pnd_bernoulli_digits(double q, uint64_t *m)
{
    int exponent, e;
    double f;

    /* q = f 2^exponent with 0.5 <= f < 1, and f has at most 53 digits. */
    f = frexp(q, &exponent);
    e = 53 - exponent;
    *m = (uint64_t) ldexp(f, 53);
    while ((*m & 1) == 0) {
        *m >>= 1;
        e--;
    }
    return e;
}

enum pnd_bernoulli_method
pnd_bernoulli_method_of(double q)
{
    uint64_t m;
    int e;

    if (!(q > 0.0 && q < 1.0))
        return PND_BERNOULLI_CONSTANT;
    e = pnd_bernoulli_digits(q, &m);
    if (e <= PND_BERNOULLI_SLICED_DIGITS)
        return PND_BERNOULLI_SLICED;
    return e <= 64 ? PND_BERNOULLI_TABLE : PND_BERNOULLI_WORDWISE;
}

/* Computes the boundaries C_0 .. C_255 for a q of at most 64 digits. */
static void
bernoulli_bounds(double q, struct frac512 *bound /* (256) */)
{
    struct frac512 prob[9];      /* P(o) for k = 0..8 ones, as fractions */
    uint64_t m, rest;
    int e = pnd_bernoulli_digits(q, &m);

    /* q = m 2^-e and 1 - q = (2^e - m) 2^-e, with e <= 64. */
    rest = e == 64 ? (uint64_t) 0 - m : ((uint64_t) 1 << e) - m;
    for (int k = 0; k <= 8; k++) {
        memset(&prob[k], 0, sizeof prob[k]);
        prob[k].l[0] = 1;
        for (int i = 0; i < 8; i++)
            mul_small(&prob[k], i < k ? m : rest);
        shift_left(&prob[k], 512 - 8 * e);
    }
    memset(&bound[0], 0, sizeof bound[0]);
    for (int o = 1; o < BYTE_VALUES; o++) {
        bound[o] = bound[o - 1];
        add_frac(&bound[o], &prob[__builtin_popcount((unsigned) (o - 1))]);
    }
}

/* --- ties ------------------------------------------------------------------ */

/* Source of the digits of V after the 16th, 64 at a time: the generator in
 * the sampler, a list of words in the tests. */
typedef uint64_t (*digit_source)(void *source);

static uint64_t
generator_digits(void *source)
{
    return pnd_pcg64dxsm_next_inline(source);
}

/* Returns the byte of a tied cell whose start lies in the interval of o.
 * Further digits of V from next(source) decide it. */
static uint64_t
resolve_tie(digit_source next, void *source,
            const struct frac512 *bound /* (256) */, unsigned cell,
            unsigned o)
{
    uint64_t v[LIMBS];          /* digits 17 onwards of V, top limb first */
    int drawn = 0;

    /* Step over each boundary inside the cell that V is at or above. The
     * digits of V after the 16th are compared with those of the boundary,
     * C_(o+1) - cell 2^-16 scaled by 2^16, one limb at a time. */
    for (; o + 1 < BYTE_VALUES; o++) {
        const uint64_t *c = bound[o + 1].l;
        int below = 0;

        if (c[LIMBS - 1] >> CELL_SHIFT != cell)
            break;              /* the next boundary is past the cell */
        for (int i = LIMBS - 1; i >= 0; i--) {
            uint64_t digits = c[i] << CELL_BITS
                              | (i > 0 ? c[i - 1] >> CELL_SHIFT : 0);

            if (drawn <= LIMBS - 1 - i)
                v[drawn++] = next(source);
            if (v[LIMBS - 1 - i] != digits) {
                below = v[LIMBS - 1 - i] < digits;
                break;
            }
        }
        if (below)
            break;              /* V < C_(o+1): the byte is o */
    }
    return o;
}

/* Returns the largest o with C_o <= the start of cell c, by binary
 * search. */
static unsigned
byte_at_cell_start(const struct frac512 *bound /* (256) */, unsigned c)
{
    struct frac512 start = { { 0 } };
    unsigned lo = 0, hi = BYTE_VALUES - 1;

    start.l[LIMBS - 1] = (uint64_t) c << CELL_SHIFT;
    while (lo < hi) {
        unsigned mid = (lo + hi + 1) / 2;

        if (cmp_frac(&bound[mid], &start) <= 0)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* --- the table ----------------------------------------------------------- */

pnd_rng_bernoulli_table *
pnd_rng_bernoulli_table_alloc(double q)
{
    pnd_rng_bernoulli_table *t = malloc(sizeof *t);
    struct table_data *data;
    struct frac512 cell_start;
    unsigned o = 0;

    if (t == NULL)
        return NULL;
    t->q = q;
    t->method = pnd_bernoulli_method_of(q);
    t->data = NULL;
    if (t->method != PND_BERNOULLI_TABLE)
        return t;
    data = t->data = malloc(sizeof *t->data);
    if (data == NULL) {
        free(t);
        return NULL;
    }
    bernoulli_bounds(q, data->bound);

    /* The byte of each cell start. */
    memset(&cell_start, 0, sizeof cell_start);
    for (unsigned c = 0; c < CELLS; c++) {
        cell_start.l[LIMBS - 1] = (uint64_t) c << CELL_SHIFT;
        while (o + 1 < BYTE_VALUES
               && cmp_frac(&data->bound[o + 1], &cell_start) <= 0)
            o++;
        data->entry[c] = (uint16_t) o;
        if (o + 1 < BYTE_VALUES
            && data->bound[o + 1].l[LIMBS - 1] >> CELL_SHIFT == c)
            data->entry[c] |= TIE_FLAG;
    }

    /* The mark is checked on the table itself rather than taken from the
     * bound on its probability. */
    data->mark = q >= 0.5 ? 0x00 : 0xff;
    data->marked = true;
    for (unsigned c = 0; c < CELLS; c++)
        if (data->entry[c] == data->mark)
            data->marked = false;
    for (unsigned c = 0; c < CELLS; c++)
        data->byte[c] = data->entry[c] & TIE_FLAG ? data->mark
                                                  : (uint8_t) data->entry[c];
    return t;
}

void
pnd_rng_bernoulli_table_free(pnd_rng_bernoulli_table *t)
{
    if (t == NULL)
        return;
    free(t->data);
    free(t);
}

/* Returns the cell of byte b of a word, from the word's outputs u0 and u1. */
static inline unsigned
cell_of(uint64_t u0, uint64_t u1, int b)
{
    return (unsigned) ((b < 4 ? u0 : u1) >> (CELL_BITS * (b % 4)))
           & (CELLS - 1);
}

/* Gives the tied bytes of word j the values that their further digits
 * decide. */
static uint64_t
resolve_word(pnd_pcg64 *g, const pnd_rng_bernoulli_table *t, uint64_t u0,
             uint64_t u1, uint64_t word)
{
    for (int b = 0; b < 8; b++) {
        unsigned c = cell_of(u0, u1, b);

        if (t->data->entry[c] & TIE_FLAG) {
            uint64_t o = resolve_tie(generator_digits, g, t->data->bound, c,
                                     t->data->entry[c] & 0xff);

            word = (word & ~((uint64_t) 0xff << (8 * b))) | o << (8 * b);
        }
    }
    return word;
}

/* The two outputs of a word of a block. */
struct block_word {
    uint64_t u[2];              /* u0 from r[0], u1 from r[1] */
};

/* Writes to *word the bytes of a word before its ties are resolved, each
 * the entry of its cell, and returns nonzero when a byte is tied. */
static inline __attribute__((always_inline)) unsigned
table_word(const uint16_t *entry, struct block_word *bw, uint64_t *word)
{
    unsigned tied = 0;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Byte stores and 2-byte loads of the stored outputs need fewer
     * instructions than shifts. The empty asm keeps GCC from turning them
     * back into shifts. */
    uint8_t *lo = (uint8_t *) word;

    __asm__ ("" : : "m" (bw->u));
#pragma GCC unroll 8
    for (int b = 0; b < 8; b++) {
        uint16_t c, e;

        memcpy(&c, (const char *) bw->u + 2 * b, sizeof c);
        e = entry[c];
        lo[b] = (uint8_t) e;
        tied |= e;
    }
#else
    *word = 0;
    for (int b = 0; b < 8; b++) {
        unsigned c = cell_of(bw->u[0], bw->u[1], b);

        *word |= (uint64_t) (entry[c] & 0xff) << (8 * b);
        tied |= entry[c];
    }
#endif
    return tied & TIE_FLAG;
}

/* Returns the pcg64-dxsm output of the state s, as
 * pnd_pcg64dxsm_next_inline gives it before its step. */
static inline uint64_t
dxsm_output(pnd_uint128 s)
{
    uint64_t high = (uint64_t) (s >> 64), low = (uint64_t) s | 1;

    high ^= high >> 32;
    high *= PND_PCG_CHEAP_MULTIPLIER;
    high ^= high >> 48;
    return high * low;
}

/* Writes to *word the bytes of the cells of bw from the marked table byte,
 * a tied cell giving the mark. */
static inline __attribute__((always_inline)) void
marked_word(const uint8_t *byte, struct block_word *bw, uint64_t *word)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint8_t *lo = (uint8_t *) word;

    __asm__ ("" : : "m" (bw->u));
#pragma GCC unroll 8
    for (int b = 0; b < 8; b++) {
        uint16_t c;

        memcpy(&c, (const char *) bw->u + 2 * b, sizeof c);
        lo[b] = byte[c];
    }
#else
    *word = 0;
    for (int b = 0; b < 8; b++)
        *word |= (uint64_t) byte[cell_of(bw->u[0], bw->u[1], b)] << (8 * b);
#endif
}

/* Whether a byte of x equals mark. */
static inline bool
has_byte(uint64_t x, uint8_t mark)
{
    const uint64_t ones = UINT64_C(0x0101010101010101);
    uint64_t y = x ^ (ones * mark);

    return ((y - ones) & ~y & (ones << 7)) != 0;
}

/* table_block for a marked table: the loop over the words does no test
 * for ties, and a second pass finds the words with a marked byte. Testing
 * every byte in the loop made a word about 15% slower at q = 0.9 on an AMD
 * EPYC of family 26 (docs/rng.md). The words, the ties and the order of
 * their digits are those of table_block. */
static void
marked_block(pnd_pcg64 *r /* (2) */, const pnd_rng_bernoulli_table *t,
             size_t n, uint64_t *words /* (n) */)
{
    struct block_word bw[TABLE_BLOCK];      /* (n) */
    pnd_uint128 s0 = r[0].state, s1 = r[1].state;
    const pnd_uint128 inc0 = r[0].inc, inc1 = r[1].inc;
    const uint8_t *byte = t->data->byte;
    const uint8_t mark = t->data->mark;

    for (size_t j = 0; j < n; j++) {
        bw[j].u[0] = dxsm_output(s0);
        bw[j].u[1] = dxsm_output(s1);
        s0 = s0 * PND_PCG_CHEAP_MULTIPLIER + inc0;
        s1 = s1 * PND_PCG_CHEAP_MULTIPLIER + inc1;
        marked_word(byte, &bw[j], &words[j]);
    }
    r[0].state = s0;
    r[1].state = s1;

    for (size_t j = 0; j < n; j++) {
        if (!has_byte(words[j], mark))
            continue;
        /* Only a tied cell gives the mark, so the other bytes need no
         * look at the table. */
        for (int b = 0; b < 8; b++) {
            unsigned c;
            uint64_t o;

            if ((uint8_t) (words[j] >> (8 * b)) != mark)
                continue;
            c = cell_of(bw[j].u[0], bw[j].u[1], b);
            o = resolve_tie(generator_digits, &r[0], t->data->bound, c,
                            t->data->entry[c] & 0xff);
            words[j] = (words[j] & ~((uint64_t) 0xff << (8 * b)))
                       | o << (8 * b);
        }
    }
}

/* Draws one block of n <= TABLE_BLOCK words (see the file comment). */
static void
table_block(pnd_pcg64 *r /* (2) */, const pnd_rng_bernoulli_table *t, size_t n,
            uint64_t *words /* (n) */)
{
    struct block_word bw[TABLE_BLOCK];      /* (n) */
    uint64_t flagged = 0;           /* bit j: word j has a tied byte */
    /* The states and the table's address as plain variables, so that GCC
     * keeps them in registers. A byte store may change any object in
     * memory, so GCC would reload the table's address after each one. */
    pnd_uint128 s0 = r[0].state, s1 = r[1].state;
    const pnd_uint128 inc0 = r[0].inc, inc1 = r[1].inc;
    const uint16_t *entry = t->data->entry;

    for (size_t j = 0; j < n; j++) {
        bw[j].u[0] = dxsm_output(s0);
        bw[j].u[1] = dxsm_output(s1);
        s0 = s0 * PND_PCG_CHEAP_MULTIPLIER + inc0;
        s1 = s1 * PND_PCG_CHEAP_MULTIPLIER + inc1;
        flagged |= (uint64_t) (table_word(entry, &bw[j], &words[j]) != 0)
                   << j;
    }
    r[0].state = s0;
    r[1].state = s1;

    for (; flagged != 0; flagged &= flagged - 1) {
        size_t j = (size_t) __builtin_ctzll(flagged);

        words[j] = resolve_word(&r[0], t, bw[j].u[0], bw[j].u[1], words[j]);
    }
}

void
pnd_rng_bernoulli_words_table(pnd_pcg64 *r /* (2) */,
                              const pnd_rng_bernoulli_table *t, size_t n_words,
                              uint64_t *words)
{
    if (t->method != PND_BERNOULLI_TABLE) {
        pnd_rng_bernoulli_words(r, t->q, n_words, words);
        return;
    }
    for (size_t j0 = 0; j0 < n_words; j0 += TABLE_BLOCK) {
        size_t n = n_words - j0 < TABLE_BLOCK ? n_words - j0 : TABLE_BLOCK;

        if (t->data->marked)
            marked_block(r, t, n, words + j0);
        else
            table_block(r, t, n, words + j0);
    }
}

/* Draws the words of pnd_rng_bernoulli_words_table from the same outputs,
 * finding each byte by a binary search over the boundaries instead of the
 * table. */
void
pnd_bernoulli_words_search(pnd_pcg64 *r /* (2) */, double q, size_t n_words,
                           uint64_t *words)
{
    struct frac512 bound[BYTE_VALUES];
    uint64_t raw0[TABLE_BLOCK], raw1[TABLE_BLOCK];

    bernoulli_bounds(q, bound);
    for (size_t j0 = 0; j0 < n_words; j0 += TABLE_BLOCK) {
        size_t n = n_words - j0 < TABLE_BLOCK ? n_words - j0 : TABLE_BLOCK;
        unsigned start[TABLE_BLOCK][8];     /* (n, 8) byte at cell start */
        bool tie[TABLE_BLOCK][8];

        for (size_t j = 0; j < n; j++) {
            raw0[j] = pnd_pcg64dxsm_next_inline(&r[0]);
            raw1[j] = pnd_pcg64dxsm_next_inline(&r[1]);
            words[j0 + j] = 0;
            for (int b = 0; b < 8; b++) {
                unsigned c = cell_of(raw0[j], raw1[j], b);
                unsigned lo = byte_at_cell_start(bound, c);

                start[j][b] = lo;
                tie[j][b] = lo + 1 < BYTE_VALUES
                            && bound[lo + 1].l[LIMBS - 1] >> CELL_SHIFT == c;
                words[j0 + j] |= (uint64_t) lo << (8 * b);
            }
        }
        for (size_t j = 0; j < n; j++)
            for (int b = 0; b < 8; b++) {
                uint64_t o;

                if (!tie[j][b])
                    continue;
                o = resolve_tie(generator_digits, &r[0], bound,
                                cell_of(raw0[j], raw1[j], b), start[j][b]);
                words[j0 + j] &= ~((uint64_t) 0xff << (8 * b));
                words[j0 + j] |= o << (8 * b);
            }
    }
}

/* --- hooks for the tests --------------------------------------------------- */

void
pnd_bernoulli_bounds_of(double q, uint64_t (*bound)[8] /* (256, 8) */)
{
    struct frac512 b[BYTE_VALUES];

    bernoulli_bounds(q, b);
    for (int o = 0; o < BYTE_VALUES; o++)
        for (int i = 0; i < LIMBS; i++)
            bound[o][i] = b[o].l[LIMBS - 1 - i];
}

bool
pnd_bernoulli_table_marked(double q)
{
    pnd_rng_bernoulli_table *t = pnd_rng_bernoulli_table_alloc(q);
    bool marked = t != NULL && t->data != NULL && t->data->marked;

    pnd_rng_bernoulli_table_free(t);
    return marked;
}

/* A list of words as a digit source. */
struct digit_list {
    const uint64_t *words;      /* (8) */
    int used;
};

static uint64_t
list_digits(void *source)
{
    struct digit_list *list = source;

    return list->words[list->used++];
}

unsigned
pnd_bernoulli_byte_of(double q, unsigned cell, const uint64_t *digits,
                      int *n_used)
{
    struct frac512 bound[BYTE_VALUES];
    struct digit_list list = { digits, 0 };
    unsigned o;

    bernoulli_bounds(q, bound);
    o = (unsigned) resolve_tie(list_digits, &list, bound, cell,
                               byte_at_cell_start(bound, cell));
    *n_used = list.used;
    return o;
}

