/* Masking schemes, their draws, and masked dense layers (forward and
 * backward) for every scheme; the vectorised per-sample kernels live in
 * sim/mask_kernels.c. The schemes and the moments of their centred noise
 * are defined in docs/masks.md.
 *
 * Draw order. Every mask comes from one pcg64-dxsm generator (two for
 * pernodedrop) set by
 * pnd_rng_derive(r, seed, coords, n) with a coordinate tuple that starts
 * with a tag naming the scheme (PND_MASK_TAG in pnd/mask.h), so no two
 * schemes share a stream:
 *
 *   dropout               (tag, layer, step, sample): ceil(d / 64) words of
 *                         pnd_rng_bernoulli_word(r, 1 - p); bit i % 64 of
 *                         word i / 64 keeps input i.
 *   gaussian-dropout      (tag, layer, step, sample): d draws of
 *                         pnd_rng_normal, m_i = 1 + sqrt(p / (1 - p)) g_i.
 *   dropconnect           (tag, layer, step): rows u = 0..h-1, each of
 *                         ceil(d / 64) Bernoulli words as for dropout.
 *   pernodedrop           (tag, layer, step, sample, g) for g = 0, 1: two
 *                         generators r[0], r[1]; the h ceil(d / 64) words
 *                         of all rows from one call of
 *                         pnd_rng_bernoulli_words(r, 1 - p, h nw, bits).
 *   pernodedrop-gaussian  (tag, layer, step, sample): h d normals in
 *                         row-major order, m_ui = 1 + sqrt(p / (1 - p)) g_ui.
 *   fixed-mask            (tag, layer): the same rows as dropconnect.
 *
 * The unused high bits of the last word of a row are drawn and ignored. A
 * kept Bernoulli connection has the mask value 1 / (1 - p), a dropped one 0.
 * With p = 0 or scheme none nothing is drawn and the layer takes the
 * unmasked code path, so p = 0 gives exactly the unmasked result.
 *
 * The Bernoulli schemes draw their words with pnd_rng_bernoulli_word, one
 * call per word, except pernodedrop. It draws the whole mask of a sample
 * with pnd_rng_bernoulli_words, through the table that the workspace keeps
 * for its p. Its reference kernel calls pnd_rng_bernoulli_words_ref, which
 * gives the same words.
 *
 * Bit cache. A pernodedrop forward pass keeps the keep bits of all its
 * samples in the workspace, with the key, n, h, d and p that drew them. A
 * backward pass with the same key, n, h, d and p reads them instead of
 * drawing them again, which halves the draws of a training step. Any other
 * backward pass draws its bits from the key. Cached or redrawn, the bits are
 * the same, so the cache changes no result.
 *
 * Threads: the kernels use no OpenMP and no shared state, so a call's
 * result depends only on its arguments and its thread does not matter.
 * Products of whole matrices go through CBLAS dgemm, or dgemv and dger for
 * a single sample. NOTE: the GEMM-based
 * schemes rely on dgemm adding the k-terms of each output element in an
 * order that does not depend on the BLAS thread count. OpenBLAS splits its
 * threads over rows and columns of the output, not over k, so this holds
 * for the 0.3.21 build of Debian 12 on one CPU type, but no test here runs
 * several BLAS thread counts.
 */
#include <config.h>

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/blas.h"
#include "pnd/error.h"
#include "pnd/mask.h"
#include "pnd/rng.h"
#include "sim/mask_internal.h"

/* Samples per chunk. The input-mask schemes build a chunk's masked inputs
 * in the workspace for one GEMM, and pernodedrop draws the keep bits of a
 * chunk's samples before it uses them. */
#define MASK_CHUNK 32

const char *const pnd_scheme_names[] = {
    "none", "dropout", "gaussian-dropout", "dropconnect", "pernodedrop",
    "pernodedrop-gaussian", "fixed-mask", NULL
};

struct pnd_mask_workspace {
    size_t h, d;       /* largest layer shape the buffers fit */
    size_t nw;         /* ceil(d / 64) */
    uint64_t *bits;    /* (max(h, MASK_CHUNK), nw) keep bits */
    double *Wm;        /* (h, d) masked weights, then a weight-gradient product */
    double *Xm;        /* (MASK_CHUNK, d) masked inputs */
    double *Mx;        /* (MASK_CHUNK, d) input mask values */
    double *row;       /* (d) mask values of one row */
    uint64_t *cache;   /* (cache_n, h, nw) keep bits of the last pernodedrop
                        * forward pass, or of one chunk as scratch */
    size_t cache_n;    /* samples the cache has room for */
    bool cache_valid;  /* the cache contains the bits of the fields below */
    struct pnd_mask_key cache_key;
    size_t cache_count, cache_h, cache_d;   /* n, h, d of that pass */
    double cache_p;
    double *coef;      /* (MASK_CHUNK) dW coefficients of a chunk's samples */
    const double **rows;         /* (MASK_CHUNK) their input rows */
    const uint64_t **row_bits;   /* (MASK_CHUNK) their keep bits */
    /* Product cache, see pnd_mask_workspace_fix_product. */
    const double *fixed_W;       /* (fixed_h, fixed_d) weights, or NULL */
    const double *fixed_X;       /* (fixed_n, fixed_d) inputs */
    size_t fixed_h, fixed_d, fixed_n;
    size_t product_slots;        /* rows of fixed_X with a slot, from row 0 */
    double *products;            /* (product_slots, fixed_h, fixed_d) W_ui x_i */
    double *product_inputs;      /* (product_slots, fixed_d) input of a slot */
    bool *product_ready;         /* (product_slots) the slot contains products */
    const double **product_rows; /* (MASK_CHUNK) a chunk's products, or NULL */
    /* Table of pnd_rng_bernoulli_words_table for keep_q = 1 - p of the
     * last pernodedrop draw, or NULL. */
    pnd_rng_bernoulli_table *keep_table;
    double keep_q;
};

/* --- names, checks and moments ------------------------------------------ */

const char *
pnd_scheme_name(enum pnd_scheme scheme)
{
    if ((unsigned) scheme >= PND_SCHEME_COUNT)
        return "invalid";
    return pnd_scheme_names[scheme];
}

int
pnd_scheme_parse(const char *name, enum pnd_scheme *scheme)
{
    if (scheme == NULL)
        PND_ERROR(PND_EINVAL, "pnd_scheme_parse: the output scheme is NULL");
    if (name == NULL)
        PND_ERROR(PND_EINVAL, "missing masking scheme name: use none, "
                  "dropout, gaussian-dropout, dropconnect, pernodedrop, "
                  "pernodedrop-gaussian or fixed-mask");
    for (int s = 0; s < PND_SCHEME_COUNT; s++) {
        if (strcmp(name, pnd_scheme_names[s]) == 0) {
            *scheme = (enum pnd_scheme) s;
            return PND_OK;
        }
    }
    PND_ERROR(PND_EINVAL, "unknown masking scheme '%s': use none, dropout, "
              "gaussian-dropout, dropconnect, pernodedrop, "
              "pernodedrop-gaussian or fixed-mask", name);
}

int
pnd_check_p(double p, const char *what)
{
    if (!(p >= 0.0 && p < 1.0))
        PND_ERROR(PND_EINVAL, "%s = %g is out of range: the drop probability "
                  "must satisfy 0 <= p < 1", what ? what : "p", p);
    return PND_OK;
}

bool
pnd_scheme_per_connection(enum pnd_scheme scheme)
{
    return scheme == PND_SCHEME_DROPCONNECT
           || scheme == PND_SCHEME_PERNODEDROP
           || scheme == PND_SCHEME_PERNODEDROP_GAUSSIAN
           || scheme == PND_SCHEME_FIXED_MASK;
}

bool
pnd_scheme_gaussian(enum pnd_scheme scheme)
{
    return scheme == PND_SCHEME_GAUSSIAN_DROPOUT
           || scheme == PND_SCHEME_PERNODEDROP_GAUSSIAN;
}

struct pnd_noise_moments
pnd_noise_moments(enum pnd_scheme scheme, double p)
{
    struct pnd_noise_moments m = { 0.0, 0.0, 0.0 };
    double s2 = p / (1.0 - p);

    if (scheme == PND_SCHEME_NONE || (unsigned) scheme >= PND_SCHEME_COUNT)
        return m;
    m.s2 = s2;
    if (pnd_scheme_gaussian(scheme)) {
        m.mu3 = 0.0;
        m.mu4 = 3.0 * s2 * s2;
    } else {
        m.mu3 = p * (2.0 * p - 1.0) / ((1.0 - p) * (1.0 - p));
        m.mu4 = p + p * p * p * p / ((1.0 - p) * (1.0 - p) * (1.0 - p));
    }
    return m;
}

/* --- draws ---------------------------------------------------------------- */

/* True when the layer draws no mask: scheme none or p = 0. */
static bool
unmasked(const struct pnd_mask_spec *spec)
{
    return spec->scheme == PND_SCHEME_NONE || spec->p == 0.0;
}

/* Set r to the stream of the mask of sample `sample` (the coordinates that
 * the scheme does not use are left out, see the file comment). */
static void
mask_derive(pnd_pcg64 *r, uint64_t seed, enum pnd_scheme scheme,
            uint64_t layer, uint64_t step, uint64_t sample)
{
    uint64_t coords[4] = { PND_MASK_TAG(scheme), layer, step, sample };
    size_t n_coords = 4;

    if (scheme == PND_SCHEME_DROPCONNECT)
        n_coords = 3;
    else if (scheme == PND_SCHEME_FIXED_MASK)
        n_coords = 2;
    pnd_rng_derive(r, seed, coords, n_coords);
}

/* Set r[0] and r[1] to the two streams of the pernodedrop mask of sample
 * `sample`: the coordinates of mask_derive with the generator's index
 * appended. */
static void
mask_derive_pair(pnd_pcg64 *r /* (2) */, uint64_t seed, uint64_t layer,
                 uint64_t step, uint64_t sample)
{
    for (uint64_t g = 0; g < 2; g++) {
        uint64_t coords[5] = {
            PND_MASK_TAG(PND_SCHEME_PERNODEDROP), layer, step, sample, g
        };

        pnd_rng_derive(&r[g], seed, coords, 5);
    }
}

static void
draw_bit_rows(pnd_pcg64 *r, double q, size_t h, size_t nw,
              uint64_t *bits /* (h, nw) */)
{
    for (size_t j = 0; j < h * nw; j++)
        bits[j] = pnd_rng_bernoulli_word(r, q);
}

/* Mask values m (d) of one sample of an input scheme (dropout or
 * gaussian-dropout). */
static void
draw_input_mask(const struct pnd_mask_spec *spec,
                const struct pnd_mask_key *key, uint64_t sample, size_t d,
                double *m /* (d) */)
{
    pnd_pcg64 r;

    mask_derive(&r, key->seed, spec->scheme, key->layer, key->step, sample);
    if (spec->scheme == PND_SCHEME_GAUSSIAN_DROPOUT) {
        double sigma = sqrt(spec->p / (1.0 - spec->p));

        for (size_t i = 0; i < d; i++)
            m[i] = 1.0 + sigma * pnd_rng_normal(&r);
        return;
    }

    double scale = 1.0 / (1.0 - spec->p);

    for (size_t i0 = 0; i0 < d; i0 += PND_MASK_WORD_BITS) {
        uint64_t word = pnd_rng_bernoulli_word(&r, 1.0 - spec->p);
        size_t i_end = d - i0 < PND_MASK_WORD_BITS ? d : i0 + PND_MASK_WORD_BITS;

        /* A multiplication instead of a branch on random bits. */
        for (size_t i = i0; i < i_end; i++)
            m[i] = scale * (double) ((word >> (i - i0)) & 1);
    }
}

int
pnd_mask_fixed_bits(uint64_t seed, uint64_t layer, double p, size_t h,
                    size_t d, uint64_t *bits)
{
    size_t nw = pnd_mask_words(d);
    size_t tail = d % PND_MASK_WORD_BITS;
    uint64_t tail_mask = tail ? (UINT64_C(1) << tail) - 1 : ~UINT64_C(0);

    PND_TRY(pnd_check_p(p, "fixed-mask p"));
    if (h == 0 || d == 0)
        PND_ERROR(PND_EINVAL, "fixed-mask layer shape h = %zu, d = %zu is "
                  "invalid: both must be at least 1", h, d);
    if (bits == NULL)
        PND_ERROR(PND_EINVAL, "pnd_mask_fixed_bits: the output array bits "
                  "is NULL");

    if (p == 0.0) {
        for (size_t j = 0; j < h * nw; j++)
            bits[j] = ~UINT64_C(0);
    } else {
        pnd_pcg64 r;

        mask_derive(&r, seed, PND_SCHEME_FIXED_MASK, layer, 0, 0);
        draw_bit_rows(&r, 1.0 - p, h, nw, bits);
    }
    /* Clear the unused bits so that equal masks compare equal. */
    for (size_t u = 0; u < h; u++)
        bits[u * nw + nw - 1] &= tail_mask;
    return PND_OK;
}

/* --- the reference: one mask value at a time ----------------------------- */

/* Mask M (h, d) of one sample, each value drawn in the documented order;
 * bits (h, ceil(d / 64)) is scratch for the pernodedrop words. */
static void
reference_mask(const struct pnd_mask_spec *spec,
               const struct pnd_mask_key *key, uint64_t sample, size_t h,
               size_t d, double *M /* (h, d) */, uint64_t *bits)
{
    enum pnd_scheme s = spec->scheme;
    double p = spec->p;
    double scale = 1.0 / (1.0 - p);
    double sigma = sqrt(p / (1.0 - p));
    size_t nw = pnd_mask_words(d);
    bool per_connection = pnd_scheme_per_connection(s);
    uint64_t word = 0;
    pnd_pcg64 r;

    if (unmasked(spec)) {
        for (size_t j = 0; j < h * d; j++)
            M[j] = 1.0;
        return;
    }
    if (s == PND_SCHEME_PERNODEDROP) {
        pnd_pcg64 pair[2];

        mask_derive_pair(pair, key->seed, key->layer, key->step, sample);
        pnd_rng_bernoulli_words_ref(pair, 1.0 - p, h * nw, bits);
    } else {
        mask_derive(&r, key->seed, s, key->layer, key->step, sample);
    }

    for (size_t u = 0; u < h; u++) {
        for (size_t i = 0; i < d; i++) {
            double m;

            if (u > 0 && !per_connection) {
                M[u * d + i] = M[i];    /* input schemes: one row for all u */
                continue;
            }
            if (pnd_scheme_gaussian(s)) {
                m = 1.0 + sigma * pnd_rng_normal(&r);
            } else {
                size_t j = u * nw + i / PND_MASK_WORD_BITS;

                if (i % PND_MASK_WORD_BITS == 0) {
                    if (s == PND_SCHEME_PERNODEDROP)
                        word = bits[j];
                    else if (s == PND_SCHEME_FIXED_MASK && spec->fixed_bits)
                        word = spec->fixed_bits[j];
                    else
                        word = pnd_rng_bernoulli_word(&r, 1.0 - p);
                }
                m = (word >> (i % PND_MASK_WORD_BITS)) & 1 ? scale : 0.0;
            }
            M[u * d + i] = m;
        }
    }
}

/* --- argument checks ------------------------------------------------------ */

static int
check_layer(const char *fn, const struct pnd_mask_spec *spec,
            const struct pnd_mask_key *key, size_t h, size_t d,
            const double *W, const struct pnd_mask_workspace *w,
            bool need_workspace)
{
    if (spec == NULL)
        PND_ERROR(PND_EINVAL, "%s: the mask spec is NULL", fn);
    if ((unsigned) spec->scheme >= PND_SCHEME_COUNT)
        PND_ERROR(PND_EINVAL, "%s: scheme value %d is not an enum "
                  "pnd_scheme value", fn, (int) spec->scheme);
    PND_TRY(pnd_check_p(spec->p, "mask drop probability p"));
    if (h == 0 || d == 0)
        PND_ERROR(PND_EINVAL, "%s: layer shape h = %zu, d = %zu is invalid: "
                  "both must be at least 1", fn, h, d);
    if (h > INT_MAX || d > INT_MAX)
        PND_ERROR(PND_EINVAL, "%s: layer shape h = %zu, d = %zu is too "
                  "large: CBLAS takes dimensions up to %d", fn, h, d,
                  INT_MAX);
    if (W == NULL)
        PND_ERROR(PND_EINVAL, "%s: the weights W are NULL", fn);
    if (unmasked(spec))
        return PND_OK;
    if (key == NULL)
        PND_ERROR(PND_EINVAL, "%s: scheme %s needs a mask key, got NULL", fn,
                  pnd_scheme_name(spec->scheme));
    if (!need_workspace)
        return PND_OK;
    if (w == NULL)
        PND_ERROR(PND_EINVAL, "%s: scheme %s needs a workspace from "
                  "pnd_mask_workspace_alloc, got NULL", fn,
                  pnd_scheme_name(spec->scheme));
    if (w->h < h || w->d < d)
        PND_ERROR(PND_EINVAL, "%s: the workspace fits layers up to h = %zu, "
                  "d = %zu, not h = %zu, d = %zu: allocate it for the "
                  "largest layer", fn, w->h, w->d, h, d);
    return PND_OK;
}

static int
check_finite(const char *fn, const char *name, const double *a, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (!isfinite(a[j]))
            PND_ERROR(PND_ENUMERIC, "%s: %s[%zu] = %g is not finite: check "
                      "the weights, inputs and gradients for NaN, Inf or "
                      "overflow", fn, name, j, a[j]);
    return PND_OK;
}

/* --- workspace ------------------------------------------------------------ */

struct pnd_mask_workspace *
pnd_mask_workspace_alloc(size_t h, size_t d)
{
    struct pnd_mask_workspace *w;

    if (h == 0 || d == 0)
        return NULL;
    w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->h = h;
    w->d = d;
    w->nw = pnd_mask_words(d);
    /* The bits of one row of every sample of a chunk, or of a whole
     * shared mask. */
    w->bits = malloc((h > MASK_CHUNK ? h : MASK_CHUNK) * w->nw
                     * sizeof *w->bits);
    w->Wm = malloc(h * d * sizeof *w->Wm);
    w->Xm = malloc(MASK_CHUNK * d * sizeof *w->Xm);
    w->Mx = malloc(MASK_CHUNK * d * sizeof *w->Mx);
    w->row = malloc(d * sizeof *w->row);
    /* The pernodedrop bits of a chunk; grown to a whole batch on demand. */
    w->cache = malloc(MASK_CHUNK * h * w->nw * sizeof *w->cache);
    w->cache_n = MASK_CHUNK;
    w->coef = malloc(MASK_CHUNK * sizeof *w->coef);
    w->rows = malloc(MASK_CHUNK * sizeof *w->rows);
    w->row_bits = malloc(MASK_CHUNK * sizeof *w->row_bits);
    w->product_rows = malloc(MASK_CHUNK * sizeof *w->product_rows);
    if (!w->bits || !w->Wm || !w->Xm || !w->Mx || !w->row || !w->cache
        || !w->coef || !w->rows || !w->row_bits || !w->product_rows)
        goto fail;
    return w;

fail:
    pnd_mask_workspace_free(w);
    return NULL;
}

/* Largest bit cache that the forward pass allocates by itself, in bytes:
 * 64 MiB fits a batch of 2500 samples of a 784-256 layer. */
#define MASK_CACHE_AUTO_BYTES ((size_t) 64 << 20)

/* Make room in the bit cache for n_max samples; false when out of memory
 * or when the size overflows, with the cache unchanged. */
static bool
cache_grow(struct pnd_mask_workspace *w, size_t n_max)
{
    size_t words_per_sample = w->h * w->nw;
    uint64_t *cache;

    if (n_max <= w->cache_n)
        return true;
    if (n_max > SIZE_MAX / sizeof *cache / words_per_sample)
        return false;
    cache = malloc(n_max * words_per_sample * sizeof *cache);
    if (cache == NULL)
        return false;
    free(w->cache);
    w->cache = cache;
    w->cache_n = n_max;
    w->cache_valid = false;
    return true;
}

int
pnd_mask_workspace_reserve(struct pnd_mask_workspace *w, size_t n_max)
{
    if (w == NULL)
        PND_ERROR(PND_EINVAL, "pnd_mask_workspace_reserve: the workspace is "
                  "NULL");
    if (!cache_grow(w, n_max))
        PND_ERROR(PND_ENOMEM, "pnd_mask_workspace_reserve: out of memory for "
                  "the keep bits of %zu samples of a %zu x %zu layer: "
                  "reserve fewer samples", n_max, w->h, w->d);
    return PND_OK;
}

/* Bytes of products that pnd_mask_workspace_fix_product keeps for several
 * input rows, all or none. It was measured with pnd_mc_loss on a 2.2 GHz
 * AMD EPYC (Zen 1) and a 128 x 256 layer, 256 KiB of products per row. The
 * cache took 3-8% off a draw with 2 to 6 rows and nothing with 8 rows
 * (2 MiB). With 8 rows cached out of 12 or 40 it added 4-10%, because the
 * products pushed W out of the caches of the core. A single row takes the
 * place of W and is kept up to MASK_CACHE_AUTO_BYTES. */
#define MASK_PRODUCT_BYTES ((size_t) 2 << 20)

/* Bytes of a cache line, the alignment of the products. */
#define MASK_LINE_BYTES 64

static void
product_cache_clear(struct pnd_mask_workspace *w)
{
    free(w->products);
    free(w->product_inputs);
    free(w->product_ready);
    w->products = NULL;
    w->product_inputs = NULL;
    w->product_ready = NULL;
    w->product_slots = 0;
    w->fixed_W = NULL;
    w->fixed_X = NULL;
    w->fixed_h = w->fixed_d = w->fixed_n = 0;
}

/* Sets up the product cache. Products are made lazily, by the first forward
 * pass that reads a row, because the caller may promise more rows than it
 * uses.
 * A slot records the input row it was made from and is remade when the row
 * at the same place has other content. */
int
pnd_mask_workspace_fix_product(struct pnd_mask_workspace *w, size_t h,
                               size_t d, const double *W, size_t n,
                               const double *X)
{
    size_t row_doubles, slots;

    if (w == NULL)
        PND_ERROR(PND_EINVAL, "pnd_mask_workspace_fix_product: the workspace "
                  "is NULL");
    product_cache_clear(w);
    if (W == NULL || n == 0)
        return PND_OK;
    if (X == NULL || h == 0 || d == 0 || h > w->h || d > w->d)
        PND_ERROR(PND_EINVAL, "pnd_mask_workspace_fix_product: layer h = %zu, "
                  "d = %zu with inputs %s does not fit the workspace of h = "
                  "%zu, d = %zu: pass the layer the workspace was allocated "
                  "for", h, d, X ? "given" : "NULL", w->h, w->d);
    row_doubles = h * d;    /* no overflow: w->Wm has room for h d doubles */
    slots = n;
    if (n == 1 ? row_doubles > MASK_CACHE_AUTO_BYTES / sizeof *w->products
               : n > MASK_PRODUCT_BYTES / sizeof *w->products / row_doubles)
        return PND_OK;    /* too large to pay off: the cache stays off */
    /* Aligned to a cache line: a 32-byte load of products aligned to 16
     * bytes only would cross a line every other time, and the sum of kept
     * products is limited by its loads. */
    w->products = aligned_alloc(MASK_LINE_BYTES,
                                (slots * row_doubles * sizeof *w->products
                                 + MASK_LINE_BYTES - 1)
                                / MASK_LINE_BYTES * MASK_LINE_BYTES);
    w->product_inputs = malloc(slots * d * sizeof *w->product_inputs);
    w->product_ready = calloc(slots, sizeof *w->product_ready);
    if (w->products == NULL || w->product_inputs == NULL
        || w->product_ready == NULL) {
        product_cache_clear(w);
        PND_ERROR(PND_ENOMEM, "pnd_mask_workspace_fix_product: out of memory "
                  "for the products of a %zu x %zu layer", h, d);
    }
    w->product_slots = slots;
    w->fixed_W = W;
    w->fixed_X = X;
    w->fixed_h = h;
    w->fixed_d = d;
    w->fixed_n = n;
    return PND_OK;
}

/* Returns the cached products (h, d) of W with the input row x, made now if
 * the slot is empty or was made from other content. Returns NULL when W, h,
 * d or x is not covered by the promise of pnd_mask_workspace_fix_product. */
static const double *
product_lookup(struct pnd_mask_workspace *w, size_t h, size_t d,
               const double *W, const double *x /* (d) */)
{
    uintptr_t offset;
    size_t row_bytes = d * sizeof *x, k;
    double *p, *slot_input;

    if (w->fixed_W == NULL || W != w->fixed_W || h != w->fixed_h
        || d != w->fixed_d)
        return NULL;
    /* Integer arithmetic, since x may point into another array. */
    offset = (uintptr_t) x - (uintptr_t) w->fixed_X;
    if ((uintptr_t) x < (uintptr_t) w->fixed_X || offset % row_bytes != 0)
        return NULL;
    k = offset / row_bytes;
    if (k >= w->product_slots)
        return NULL;
    p = w->products + k * h * d;
    slot_input = w->product_inputs + k * d;
    if (!w->product_ready[k] || memcmp(slot_input, x, row_bytes) != 0) {
        pnd_mask_products(h, d, W, x, p);
        memcpy(slot_input, x, row_bytes);
        w->product_ready[k] = true;
    }
    return p;
}

void
pnd_mask_workspace_free(struct pnd_mask_workspace *w)
{
    if (w == NULL)
        return;
    free(w->bits);
    free(w->Wm);
    free(w->Xm);
    free(w->Mx);
    free(w->row);
    free(w->cache);
    free(w->coef);
    free(w->rows);
    free(w->row_bits);
    free(w->product_rows);
    free(w->products);
    free(w->product_inputs);
    free(w->product_ready);
    pnd_rng_bernoulli_table_free(w->keep_table);
    free(w);
}

/* --- unmasked and GEMM-based schemes -------------------------------------- */

/* The three matrix products of a layer. A single sample goes through the
 * level-2 routine (dgemv, dger), which for n = 1 is several times faster
 * than dgemm (measured with OpenBLAS 0.3.21, which packs whole operands). */

/* Z (n, h) = X (n, d) W^T */
static void
product_x_wt(size_t n, size_t h, size_t d, const double *W /* (h, d) */,
             const double *X /* (n, d) */, double *Z /* (n, h) */)
{
    if (n == 1)
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int) h, (int) d, 1.0, W,
                    (int) d, X, 1, 0.0, Z, 1);
    else
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) n,
                    (int) h, (int) d, 1.0, X, (int) d, W, (int) d, 0.0, Z,
                    (int) h);
}

/* dX (n, d) = dZ (n, h) W (h, d) */
static void
product_dz_w(size_t n, size_t h, size_t d, const double *dZ /* (n, h) */,
             const double *W /* (h, d) */, double *dX /* (n, d) */)
{
    if (n == 1)
        cblas_dgemv(CblasRowMajor, CblasTrans, (int) h, (int) d, 1.0, W,
                    (int) d, dZ, 1, 0.0, dX, 1);
    else
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) n,
                    (int) d, (int) h, 1.0, dZ, (int) h, W, (int) d, 0.0, dX,
                    (int) d);
}

/* G (h, d) = dZ^T X, added to G when accumulate is true, else written. */
static void
product_dzt_x(size_t n, size_t h, size_t d, const double *dZ /* (n, h) */,
              const double *X /* (n, d) */, bool accumulate,
              double *G /* (h, d) */)
{
    if (n == 1 && !accumulate) {
        for (size_t u = 0; u < h; u++)
            for (size_t i = 0; i < d; i++)
                G[u * d + i] = dZ[u] * X[i];
    } else if (n == 1) {
        cblas_dger(CblasRowMajor, (int) h, (int) d, 1.0, dZ, 1, X, 1, G,
                   (int) d);
    } else {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int) h,
                    (int) d, (int) n, 1.0, dZ, (int) h, X, (int) d,
                    accumulate ? 1.0 : 0.0, G, (int) d);
    }
}

/* Z (n, h) = X (n, d) W^T + b */
static void
forward_gemm(size_t n, size_t h, size_t d, const double *W /* (h, d) */,
             const double *b /* (h) or NULL */, const double *X /* (n, d) */,
             double *Z /* (n, h) */)
{
    product_x_wt(n, h, d, W, X, Z);
    if (b == NULL)
        return;
    for (size_t k = 0; k < n; k++)
        for (size_t u = 0; u < h; u++)
            Z[k * h + u] += b[u];
}

static void
add_column_sums(size_t n, size_t h, const double *dZ /* (n, h) */,
                double *db /* (h) */)
{
    for (size_t k = 0; k < n; k++)
        for (size_t u = 0; u < h; u++)
            db[u] += dZ[k * h + u];
}

/* Masked weights Wm (h, d) = W o M for a shared Bernoulli mask. */
static void
mask_weights(size_t h, size_t d, size_t nw, double scale,
             const uint64_t *bits /* (h, nw) */, const double *W /* (h, d) */,
             double *Wm /* (h, d) */)
{
    for (size_t u = 0; u < h; u++)
        pnd_mask_scale_bits(d, scale, W + u * d, bits + u * nw, Wm + u * d);
}

/* The keep bits of a shared mask (dropconnect or fixed-mask): the caller's
 * fixed bits, or drawn into the workspace. */
static const uint64_t *
shared_bits(const struct pnd_mask_spec *spec, const struct pnd_mask_key *key,
            size_t h, size_t d, struct pnd_mask_workspace *w)
{
    size_t nw = pnd_mask_words(d);
    pnd_pcg64 r;

    if (spec->scheme == PND_SCHEME_FIXED_MASK && spec->fixed_bits)
        return spec->fixed_bits;
    mask_derive(&r, key->seed, spec->scheme, key->layer, key->step, 0);
    draw_bit_rows(&r, 1.0 - spec->p, h, nw, w->bits);
    return w->bits;
}

/* Input masks of samples k0..k0+nc-1 into w->Mx and the masked inputs into
 * w->Xm. */
static void
mask_inputs(const struct pnd_mask_spec *spec, const struct pnd_mask_key *key,
            size_t k0, size_t nc, size_t d, const double *X /* (n, d) */,
            struct pnd_mask_workspace *w)
{
    for (size_t k = 0; k < nc; k++) {
        double *m = w->Mx + k * d;

        draw_input_mask(spec, key, key->sample + k0 + k, d, m);
        for (size_t i = 0; i < d; i++)
            w->Xm[k * d + i] = X[(k0 + k) * d + i] * m[i];
    }
}

/* --- per-sample schemes --------------------------------------------------- */

/* pernodedrop visits samples in chunks of MASK_CHUNK, first drawing all
 * the keep bits of the chunk's samples, then going row by row, so that a
 * row of W and of dW stays in cache while the chunk's samples use it. Each
 * output adds its terms in the same order as a loop over single samples
 * would. */

/* The bit cache of w made ready for a forward pass of n samples, or NULL
 * when it cannot hold them: it grows once to the largest n seen, up to
 * MASK_CACHE_AUTO_BYTES, unless pnd_mask_workspace_reserve made it larger. */
static uint64_t *
cache_for_forward(size_t n, struct pnd_mask_workspace *w)
{
    size_t words_per_sample = w->h * w->nw;

    w->cache_valid = false;
    if (n > w->cache_n
        && (n > MASK_CACHE_AUTO_BYTES / sizeof *w->cache / words_per_sample
            || !cache_grow(w, n)))
        return NULL;    /* the backward pass draws the bits again */
    return w->cache;
}

/* The cached bits of the forward pass with these arguments, or NULL. */
static const uint64_t *
cache_for_backward(const struct pnd_mask_spec *spec,
                   const struct pnd_mask_key *key, size_t n, size_t h,
                   size_t d, const struct pnd_mask_workspace *w)
{
    if (!w->cache_valid || w->cache_count != n || w->cache_h != h
        || w->cache_d != d || w->cache_p != spec->p
        || w->cache_key.seed != key->seed || w->cache_key.layer != key->layer
        || w->cache_key.step != key->step
        || w->cache_key.sample != key->sample)
        return NULL;
    return w->cache;
}

/* The keep bits of samples k0..k0+nc-1 into bits (nc, h, nw): all h nw
 * words of a sample from one call, as docs/masks.md defines. */
static void
draw_chunk_bits(const struct pnd_mask_spec *spec,
                const struct pnd_mask_key *key, size_t k0, size_t nc,
                size_t h, size_t nw, uint64_t *bits,
                struct pnd_mask_workspace *w)
{
    double q = 1.0 - spec->p;

    /* The table serves every sample with this p. Without memory for it,
     * pnd_rng_bernoulli_words gives the same words more slowly. */
    if (w->keep_table == NULL || w->keep_q != q) {
        pnd_rng_bernoulli_table_free(w->keep_table);
        w->keep_table = pnd_rng_bernoulli_table_alloc(q);
        w->keep_q = q;
    }
    for (size_t k = 0; k < nc; k++) {
        pnd_pcg64 pair[2];

        mask_derive_pair(pair, key->seed, key->layer, key->step,
                         key->sample + k0 + k);
        if (w->keep_table != NULL)
            pnd_rng_bernoulli_words_table(pair, w->keep_table, h * nw,
                                          bits + k * h * nw);
        else
            pnd_rng_bernoulli_words(pair, q, h * nw, bits + k * h * nw);
    }
}

/* Returns output u of a pernodedrop layer from its sum of kept terms: the
 * sum times the inverted scale, plus the bias when b is not NULL. */
static inline double
scale_shift(double scale, double sum, const double *b, size_t u)
{
    double z = scale * sum;

    return b ? z + b[u] : z;
}

static void
forward_pernodedrop(const struct pnd_mask_spec *spec,
                    const struct pnd_mask_key *key, size_t n, size_t h,
                    size_t d, const double *W, const double *b,
                    const double *X, double *Z, struct pnd_mask_workspace *w)
{
    double scale = 1.0 / (1.0 - spec->p);
    size_t nw = pnd_mask_words(d);
    uint64_t *cache = cache_for_forward(n, w);   /* (n, h, nw) or NULL */
    size_t plain[MASK_CHUNK];    /* (n_plain) samples without cached products */
    size_t n_plain;

    for (size_t k0 = 0; k0 < n; k0 += MASK_CHUNK) {
        size_t nc = n - k0 < MASK_CHUNK ? n - k0 : MASK_CHUNK;
        /* (nc, h, nw): in the cache, or in its first chunk as scratch */
        uint64_t *bits = cache ? cache + k0 * h * nw : w->cache;

        draw_chunk_bits(spec, key, k0, nc, h, nw, bits, w);
        /* (nc) cached products (h, d) of each sample, or NULL */
        for (size_t k = 0; k < nc; k++)
            w->product_rows[k] = product_lookup(w, h, d, W, X + (k0 + k) * d);

        /* A sample with cached products, or a chunk of one sample, takes
         * all h rows in one call. The others go row by row, so that a row
         * of W serves every sample of the chunk while it is in cache. */
        n_plain = 0;
        for (size_t k = 0; k < nc; k++) {
            const double *p = w->product_rows[k];
            double *z = Z + (k0 + k) * h;    /* (h) */

            if (p != NULL) {
                pnd_mask_sum_bits_rows(h, d, p, bits + k * h * nw, nw, z);
            } else if (nc == 1) {
                pnd_mask_dot_bits_rows(h, d, W, X + k0 * d, bits, nw, z);
            } else {
                plain[n_plain++] = k;
                continue;
            }
            for (size_t u = 0; u < h; u++)
                z[u] = scale_shift(scale, z[u], b, u);
        }
        /* Two samples share each load of a row of W. */
        for (size_t u = 0; u < h; u++) {
            size_t i = 0;

            for (; i + 1 < n_plain; i += 2) {
                size_t ka = plain[i], kb = plain[i + 1];
                double z[2];

                pnd_mask_dot_bits_pair(d, W + u * d, X + (k0 + ka) * d,
                                       X + (k0 + kb) * d,
                                       bits + (ka * h + u) * nw,
                                       bits + (kb * h + u) * nw, z);
                Z[(k0 + ka) * h + u] = scale_shift(scale, z[0], b, u);
                Z[(k0 + kb) * h + u] = scale_shift(scale, z[1], b, u);
            }
            if (i < n_plain) {
                size_t k = plain[i];
                double z = pnd_mask_dot_bits(d, W + u * d, X + (k0 + k) * d,
                                             bits + (k * h + u) * nw);

                Z[(k0 + k) * h + u] = scale_shift(scale, z, b, u);
            }
        }
    }
    if (cache) {
        w->cache_valid = true;
        w->cache_key = *key;
        w->cache_count = n;
        w->cache_h = h;
        w->cache_d = d;
        w->cache_p = spec->p;
    }
}

static void
backward_pernodedrop(const struct pnd_mask_spec *spec,
                     const struct pnd_mask_key *key, size_t n, size_t h,
                     size_t d, const double *W, const double *X,
                     const double *dZ, double *dW, double *dX,
                     struct pnd_mask_workspace *w)
{
    double scale = 1.0 / (1.0 - spec->p);
    size_t nw = pnd_mask_words(d);
    /* (n, h, nw) bits of the forward pass, or NULL to draw them again */
    const uint64_t *cache = cache_for_backward(spec, key, n, h, d, w);

    if (cache == NULL)
        w->cache_valid = false;    /* its first chunk becomes scratch */
    if (dX)
        memset(dX, 0, n * d * sizeof *dX);
    for (size_t k0 = 0; k0 < n; k0 += MASK_CHUNK) {
        size_t nc = n - k0 < MASK_CHUNK ? n - k0 : MASK_CHUNK;
        const uint64_t *bits;    /* (nc, h, nw) */

        if (cache) {
            bits = cache + k0 * h * nw;
        } else {
            draw_chunk_bits(spec, key, k0, nc, h, nw, w->cache, w);
            bits = w->cache;
        }
        for (size_t u = 0; u < h; u++) {
            size_t m = 0;    /* samples of the chunk with a nonzero term */

            for (size_t k = 0; k < nc; k++) {
                double c = scale * dZ[(k0 + k) * h + u];
                const uint64_t *row_bits = bits + (k * h + u) * nw;

                /* A zero gradient (common after ReLU) adds nothing. */
                if (c == 0.0)
                    continue;
                w->coef[m] = c;
                w->rows[m] = X + (k0 + k) * d;
                w->row_bits[m] = row_bits;
                m++;
                if (dX)
                    pnd_mask_axpy_bits(d, c, W + u * d, row_bits,
                                       dX + (k0 + k) * d);
            }
            pnd_mask_axpy_bits_many(d, m, w->coef, w->rows, w->row_bits,
                                    dW + u * d);
        }
    }
}

/* Gaussian mask values of the next row into m (d). */
static void
draw_normal_row(pnd_pcg64 *r, double sigma, size_t d, double *m /* (d) */)
{
    for (size_t i = 0; i < d; i++)
        m[i] = 1.0 + sigma * pnd_rng_normal(r);
}

static void
forward_pernodedrop_gaussian(const struct pnd_mask_spec *spec,
                             const struct pnd_mask_key *key, size_t n,
                             size_t h, size_t d, const double *W,
                             const double *b, const double *X, double *Z,
                             struct pnd_mask_workspace *w)
{
    double sigma = sqrt(spec->p / (1.0 - spec->p));

    for (size_t k = 0; k < n; k++) {
        const double *x = X + k * d;
        pnd_pcg64 r;

        mask_derive(&r, key->seed, spec->scheme, key->layer, key->step,
                    key->sample + k);
        for (size_t u = 0; u < h; u++) {
            const double *wu = W + u * d;
            double acc = 0.0;

            draw_normal_row(&r, sigma, d, w->row);
            for (size_t i = 0; i < d; i++)
                acc += wu[i] * w->row[i] * x[i];
            Z[k * h + u] = b ? acc + b[u] : acc;
        }
    }
}

static void
backward_pernodedrop_gaussian(const struct pnd_mask_spec *spec,
                              const struct pnd_mask_key *key, size_t n,
                              size_t h, size_t d, const double *W,
                              const double *X, const double *dZ, double *dW,
                              double *dX, struct pnd_mask_workspace *w)
{
    double sigma = sqrt(spec->p / (1.0 - spec->p));

    for (size_t k = 0; k < n; k++) {
        const double *x = X + k * d;
        double *dx = dX ? dX + k * d : NULL;
        pnd_pcg64 r;

        mask_derive(&r, key->seed, spec->scheme, key->layer, key->step,
                    key->sample + k);
        if (dx)
            memset(dx, 0, d * sizeof *dx);
        for (size_t u = 0; u < h; u++) {
            const double *wu = W + u * d;
            double *dwu = dW + u * d;
            double g = dZ[k * h + u];

            draw_normal_row(&r, sigma, d, w->row);
            if (g == 0.0)
                continue;
            for (size_t i = 0; i < d; i++) {
                double gm = g * w->row[i];

                dwu[i] += gm * x[i];
                if (dx)
                    dx[i] += gm * wu[i];
            }
        }
    }
}

/* --- public layer passes -------------------------------------------------- */

int
pnd_layer_forward(const struct pnd_mask_spec *spec,
                  const struct pnd_mask_key *key, size_t n, size_t h,
                  size_t d, const double *W, const double *b,
                  const double *X, double *Z, struct pnd_mask_workspace *w)
{
    static const char fn[] = "pnd_layer_forward";

    PND_TRY(check_layer(fn, spec, key, h, d, W, w, true));
    if (n == 0)
        return PND_OK;
    if (X == NULL || Z == NULL)
        PND_ERROR(PND_EINVAL, "%s: the input X or the output Z is NULL", fn);
    if (n > INT_MAX)
        PND_ERROR(PND_EINVAL, "%s: %zu samples in one call are too many: "
                  "CBLAS takes up to %d, so split the batch", fn, n, INT_MAX);

    if (unmasked(spec)) {
        forward_gemm(n, h, d, W, b, X, Z);
        return check_finite(fn, "Z", Z, n * h);
    }
    switch (spec->scheme) {
    case PND_SCHEME_DROPOUT:
    case PND_SCHEME_GAUSSIAN_DROPOUT:
        for (size_t k0 = 0; k0 < n; k0 += MASK_CHUNK) {
            size_t nc = n - k0 < MASK_CHUNK ? n - k0 : MASK_CHUNK;

            mask_inputs(spec, key, k0, nc, d, X, w);
            forward_gemm(nc, h, d, W, b, w->Xm, Z + k0 * h);
        }
        break;
    case PND_SCHEME_DROPCONNECT:
    case PND_SCHEME_FIXED_MASK: {
        const uint64_t *bits = shared_bits(spec, key, h, d, w);

        mask_weights(h, d, pnd_mask_words(d), 1.0 / (1.0 - spec->p), bits, W,
                     w->Wm);
        forward_gemm(n, h, d, w->Wm, b, X, Z);
        break;
    }
    case PND_SCHEME_PERNODEDROP:
        forward_pernodedrop(spec, key, n, h, d, W, b, X, Z, w);
        break;
    case PND_SCHEME_PERNODEDROP_GAUSSIAN:
        forward_pernodedrop_gaussian(spec, key, n, h, d, W, b, X, Z, w);
        break;
    default:
        break;
    }
    return check_finite(fn, "Z", Z, n * h);
}

int
pnd_layer_forward_draws(const struct pnd_mask_spec *spec,
                        const struct pnd_mask_key *keys, size_t m, size_t h,
                        size_t d, const double *W, const double *b,
                        const double *x, double *Z,
                        struct pnd_mask_workspace *w)
{
    static const char fn[] = "pnd_layer_forward_draws";
    size_t nw = pnd_mask_words(d);
    double scale;
    const double *p;
    uint64_t *bits;

    if (keys == NULL || m == 0)
        PND_ERROR(PND_EINVAL, "%s: the keys are NULL or m = 0", fn);
    PND_TRY(check_layer(fn, spec, &keys[0], h, d, W, w, true));
    if (x == NULL || Z == NULL)
        PND_ERROR(PND_EINVAL, "%s: the input x or the output Z is NULL", fn);
    bits = spec->scheme == PND_SCHEME_PERNODEDROP && !unmasked(spec)
           ? cache_for_forward(m, w) : NULL;    /* (m, h, nw) */
    p = bits != NULL ? product_lookup(w, h, d, W, x) : NULL;
    if (p == NULL) {
        for (size_t t = 0; t < m; t++)
            PND_TRY(pnd_layer_forward(spec, &keys[t], 1, h, d, W, b, x,
                                      Z + t * h, w));
        return PND_OK;
    }
    /* One pass over the products serves several draws, and each draw's
     * sums equal those of pnd_layer_forward bit for bit. */
    for (size_t t = 0; t < m; t++)
        draw_chunk_bits(spec, &keys[t], 0, 1, h, nw, bits + t * h * nw, w);
    pnd_mask_sum_bits_rows_draws(h, d, p, m, bits, nw, Z);
    scale = 1.0 / (1.0 - spec->p);
    for (size_t t = 0; t < m; t++)
        for (size_t u = 0; u < h; u++)
            Z[t * h + u] = scale_shift(scale, Z[t * h + u], b, u);
    return check_finite(fn, "Z", Z, m * h);
}

int
pnd_layer_backward(const struct pnd_mask_spec *spec,
                   const struct pnd_mask_key *key, size_t n, size_t h,
                   size_t d, const double *W, const double *X,
                   const double *dZ, double *dW, double *db, double *dX,
                   struct pnd_mask_workspace *w)
{
    static const char fn[] = "pnd_layer_backward";

    PND_TRY(check_layer(fn, spec, key, h, d, W, w, true));
    if (n == 0)
        return PND_OK;
    if (X == NULL || dZ == NULL || dW == NULL)
        PND_ERROR(PND_EINVAL, "%s: X, dZ or dW is NULL (only db and dX are "
                  "optional)", fn);
    if (n > INT_MAX)
        PND_ERROR(PND_EINVAL, "%s: %zu samples in one call are too many: "
                  "CBLAS takes up to %d, so split the batch", fn, n, INT_MAX);

    PND_TRY(check_finite(fn, "dZ", dZ, n * h));
    PND_TRY(check_finite(fn, "X", X, n * d));

    if (db)
        add_column_sums(n, h, dZ, db);
    if (unmasked(spec)) {
        product_dzt_x(n, h, d, dZ, X, true, dW);
        if (dX)
            product_dz_w(n, h, d, dZ, W, dX);
        goto check;
    }

    switch (spec->scheme) {
    case PND_SCHEME_DROPOUT:
    case PND_SCHEME_GAUSSIAN_DROPOUT:
        for (size_t k0 = 0; k0 < n; k0 += MASK_CHUNK) {
            size_t nc = n - k0 < MASK_CHUNK ? n - k0 : MASK_CHUNK;
            const double *dZc = dZ + k0 * h;

            /* dW += dZ^T (X o m) and dX = m o (dZ W). */
            mask_inputs(spec, key, k0, nc, d, X, w);
            product_dzt_x(nc, h, d, dZc, w->Xm, true, dW);
            if (dX == NULL)
                continue;
            double *dXc = dX + k0 * d;

            product_dz_w(nc, h, d, dZc, W, dXc);
            for (size_t j = 0; j < nc * d; j++)
                dXc[j] *= w->Mx[j];
        }
        break;
    case PND_SCHEME_DROPCONNECT:
    case PND_SCHEME_FIXED_MASK: {
        const uint64_t *bits = shared_bits(spec, key, h, d, w);
        size_t nw = pnd_mask_words(d);
        double scale = 1.0 / (1.0 - spec->p);

        if (dX) {
            mask_weights(h, d, nw, scale, bits, W, w->Wm);
            product_dz_w(n, h, d, dZ, w->Wm, dX);
        }
        /* dW += M o (dZ^T X), the product formed in w->Wm. */
        product_dzt_x(n, h, d, dZ, X, false, w->Wm);
        for (size_t u = 0; u < h; u++)
            pnd_mask_axpy_bits(d, scale, w->Wm + u * d, bits + u * nw,
                               dW + u * d);
        break;
    }
    case PND_SCHEME_PERNODEDROP:
        backward_pernodedrop(spec, key, n, h, d, W, X, dZ, dW, dX, w);
        break;
    case PND_SCHEME_PERNODEDROP_GAUSSIAN:
        backward_pernodedrop_gaussian(spec, key, n, h, d, W, X, dZ, dW, dX, w);
        break;
    default:
        break;
    }

check:
    /* dW is not scanned, because that would cost as much as the pass for
     * one sample. Its new terms are products of the checked dZ and X, so
     * only an overflow could make them non-finite. */
    if (db)
        PND_TRY(check_finite(fn, "db", db, h));
    if (dX)
        PND_TRY(check_finite(fn, "dX", dX, n * d));
    return PND_OK;
}

/* --- public reference passes ---------------------------------------------- */

int
pnd_mask_values(const struct pnd_mask_spec *spec,
                const struct pnd_mask_key *key, size_t h, size_t d, double *M)
{
    static const char fn[] = "pnd_mask_values";
    /* W is not used here, but check_layer requires a non-NULL pointer. */
    static const double unused_weights = 0.0;

    uint64_t *bits;    /* (h, ceil(d / 64)) */

    PND_TRY(check_layer(fn, spec, key, h, d, &unused_weights, NULL, false));
    if (M == NULL)
        PND_ERROR(PND_EINVAL, "%s: the output array M is NULL", fn);
    bits = malloc(h * pnd_mask_words(d) * sizeof *bits);
    if (bits == NULL)
        PND_ERROR(PND_ENOMEM, "%s: out of memory for the bits of a %zu x "
                  "%zu mask", fn, h, d);
    reference_mask(spec, key, key ? key->sample : 0, h, d, M, bits);
    free(bits);
    return PND_OK;
}

int
pnd_layer_forward_reference(const struct pnd_mask_spec *spec,
                            const struct pnd_mask_key *key, size_t n,
                            size_t h, size_t d, const double *W,
                            const double *b, const double *X, double *Z)
{
    static const char fn[] = "pnd_layer_forward_reference";
    double *M;  /* (h, d) mask of one sample */
    uint64_t *bits;    /* (h, ceil(d / 64)) its words */

    PND_TRY(check_layer(fn, spec, key, h, d, W, NULL, false));
    if (n == 0)
        return PND_OK;
    if (X == NULL || Z == NULL)
        PND_ERROR(PND_EINVAL, "%s: the input X or the output Z is NULL", fn);
    M = malloc(h * d * sizeof *M);
    bits = malloc(h * pnd_mask_words(d) * sizeof *bits);
    if (M == NULL || bits == NULL) {
        free(M);
        free(bits);
        PND_ERROR(PND_ENOMEM, "%s: out of memory for a %zu x %zu mask", fn,
                  h, d);
    }

    for (size_t k = 0; k < n; k++) {
        reference_mask(spec, key, key ? key->sample + k : 0, h, d, M, bits);
        for (size_t u = 0; u < h; u++) {
            double acc = 0.0;

            for (size_t i = 0; i < d; i++)
                acc += W[u * d + i] * M[u * d + i] * X[k * d + i];
            Z[k * h + u] = b ? acc + b[u] : acc;
        }
    }
    free(M);
    free(bits);
    return check_finite(fn, "Z", Z, n * h);
}

int
pnd_layer_backward_reference(const struct pnd_mask_spec *spec,
                             const struct pnd_mask_key *key, size_t n,
                             size_t h, size_t d, const double *W,
                             const double *X, const double *dZ, double *dW,
                             double *db, double *dX)
{
    static const char fn[] = "pnd_layer_backward_reference";
    double *M;  /* (h, d) mask of one sample */
    uint64_t *bits;    /* (h, ceil(d / 64)) its words */

    PND_TRY(check_layer(fn, spec, key, h, d, W, NULL, false));
    if (n == 0)
        return PND_OK;
    if (X == NULL || dZ == NULL || dW == NULL)
        PND_ERROR(PND_EINVAL, "%s: X, dZ or dW is NULL (only db and dX are "
                  "optional)", fn);
    M = malloc(h * d * sizeof *M);
    bits = malloc(h * pnd_mask_words(d) * sizeof *bits);
    if (M == NULL || bits == NULL) {
        free(M);
        free(bits);
        PND_ERROR(PND_ENOMEM, "%s: out of memory for a %zu x %zu mask", fn,
                  h, d);
    }

    for (size_t k = 0; k < n; k++) {
        const double *dz = dZ + k * h;
        const double *x = X + k * d;

        reference_mask(spec, key, key ? key->sample + k : 0, h, d, M, bits);
        for (size_t i = 0; dX && i < d; i++) {
            double acc = 0.0;

            for (size_t u = 0; u < h; u++)
                acc += W[u * d + i] * M[u * d + i] * dz[u];
            dX[k * d + i] = acc;
        }
        for (size_t u = 0; u < h; u++) {
            for (size_t i = 0; i < d; i++)
                dW[u * d + i] += M[u * d + i] * dz[u] * x[i];
            if (db)
                db[u] += dz[u];
        }
    }
    free(M);
    free(bits);
    return PND_OK;
}
