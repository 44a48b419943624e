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
 * and 8 table loads. The ties are found after a block's words, from the
 * entries kept for them (table_block). The former method compared the
 * first 5 digits of all lanes (5 outputs per word) and then drew more for
 * the lanes still open. BENCHMARKS.md has the measurements.
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
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

/* The two outputs of a word of a block. */
struct block_word {
    uint64_t u[2];              /* u0 from r[0], u1 from r[1] */
};

/* Writes to e (8) the table entries of the 8 cells of a word. */
static inline __attribute__((always_inline)) void
table_word(const uint16_t *entry, struct block_word *bw, uint16_t *e)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* 2-byte loads of the stored outputs need fewer instructions than
     * shifts. The empty asm keeps GCC from turning them back into shifts. */
    __asm__ ("" : : "m" (bw->u));
#pragma GCC unroll 8
    for (int b = 0; b < 8; b++) {
        uint16_t c;

        memcpy(&c, (const char *) bw->u + 2 * b, sizeof c);
        e[b] = entry[c];
    }
#else
    for (int b = 0; b < 8; b++)
        e[b] = entry[cell_of(bw->u[0], bw->u[1], b)];
#endif
}

/* Writes to *word the bytes of the entries e (8) and returns a mask of its
 * tied bytes: bit 2 b + 1 for byte b. */
static inline unsigned
entries_to_word(const uint16_t *e, uint64_t *word)
{
#if defined(__SSE2__)
    /* Pack the low bytes of the 8 entries, and shift each tie flag to the
     * top bit of its entry's high byte, where the byte mask reads it. */
    __m128i v = _mm_loadu_si128((const __m128i *) e);
    __m128i low = _mm_and_si128(v, _mm_set1_epi16(0xff));
    unsigned high = (unsigned) _mm_movemask_epi8(_mm_slli_epi16(v, 7));

    _mm_storel_epi64((__m128i *) word, _mm_packus_epi16(low, low));
    return high & 0xaaaau;
#else
    unsigned tied = 0;

    *word = 0;
    for (int b = 0; b < 8; b++) {
        *word |= (uint64_t) (e[b] & 0xff) << (8 * b);
        tied |= (unsigned) ((e[b] & TIE_FLAG) != 0) << (2 * b + 1);
    }
    return tied;
#endif
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

/* Draws one block of n <= TABLE_BLOCK words (see the file comment). The
 * loop over the words only looks up the entries of their cells and keeps
 * them. A second pass makes the words and finds the tied bytes. Testing
 * every byte for a tie inside the loop made a word about 15% slower at
 * q = 0.9 on an AMD EPYC of family 26 (docs/rng.md). */
static void
table_block(pnd_pcg64 *r /* (2) */, const pnd_rng_bernoulli_table *t, size_t n,
            uint64_t *words /* (n) */)
{
    struct block_word bw[TABLE_BLOCK];      /* (n) */
    uint16_t e[TABLE_BLOCK][8];             /* (n, 8) entries of the cells */
    /* The states and the table's address as plain variables, so that GCC
     * keeps them in registers. A store may change any object in memory,
     * so GCC would reload the table's address after each one. */
    pnd_uint128 s0 = r[0].state, s1 = r[1].state;
    const pnd_uint128 inc0 = r[0].inc, inc1 = r[1].inc;
    const uint16_t *entry = t->data->entry;

    for (size_t j = 0; j < n; j++) {
        bw[j].u[0] = dxsm_output(s0);
        bw[j].u[1] = dxsm_output(s1);
        s0 = s0 * PND_PCG_CHEAP_MULTIPLIER + inc0;
        s1 = s1 * PND_PCG_CHEAP_MULTIPLIER + inc1;
        table_word(entry, &bw[j], e[j]);
    }
    r[0].state = s0;
    r[1].state = s1;

    for (size_t j = 0; j < n; j++) {
        unsigned tied = entries_to_word(e[j], &words[j]);

        for (; tied != 0; tied &= tied - 1) {
            int b = __builtin_ctz(tied) / 2;
            uint64_t o = resolve_tie(generator_digits, &r[0], t->data->bound,
                                     cell_of(bw[j].u[0], bw[j].u[1], b),
                                     e[j][b] & 0xff);

            words[j] = (words[j] & ~((uint64_t) 0xff << (8 * b)))
                       | o << (8 * b);
        }
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

