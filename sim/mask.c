/* Masking schemes, their draws, and masked dense layers (forward and
 * backward) for every scheme; the vectorised per-sample kernels live in
 * sim/mask_kernels.c. The schemes and the moments of their centred noise
 * are defined in docs/masks.md.
 *
 * Draw order. Every mask comes from one pcg64-dxsm generator set by
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
 *   pernodedrop           (tag, layer, step, sample): the same rows.
 *   pernodedrop-gaussian  (tag, layer, step, sample): h d normals in
 *                         row-major order, m_ui = 1 + sqrt(p / (1 - p)) g_ui.
 *   fixed-mask            (tag, layer): the same rows as dropconnect.
 *
 * The unused high bits of the last word of a row are drawn and ignored. A
 * kept Bernoulli connection has the mask value 1 / (1 - p), a dropped one 0.
 * With p = 0 or scheme none nothing is drawn and the layer takes the
 * unmasked code path, so p = 0 gives exactly the unmasked result.
 *
 * Products of whole matrices go through CBLAS dgemm. NOTE: results are
 * bit-identical for any number of calling threads because each call's
 * arithmetic is fixed by its inputs; for the GEMM-based schemes this relies
 * on OpenBLAS computing each element of a dgemm result in an order that does
 * not depend on its own thread count (true of its kernels in Debian 12's
 * 0.3.21 as far as the tests can see), and on the same CPU type.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/blas.h"
#include "pnd/error.h"
#include "pnd/mask.h"
#include "pnd/rng.h"
#include "sim/mask_internal.h"

/* Samples per chunk of the input-mask schemes (dropout, gaussian-dropout),
 * whose masked inputs are built in the workspace and multiplied by one GEMM
 * per chunk. */
#define MASK_CHUNK 32

const char *const pnd_scheme_names[] = {
    "none", "dropout", "gaussian-dropout", "dropconnect", "pernodedrop",
    "pernodedrop-gaussian", "fixed-mask", NULL
};

struct pnd_mask_workspace {
    size_t h, d;       /* largest layer shape the buffers fit */
    size_t nw;         /* ceil(d / 64) */
    uint64_t *bits;    /* (h, nw) keep bits of a shared mask or of one sample */
    double *Wm;        /* (h, d) masked weights, then a weight-gradient product */
    double *Xm;        /* (MASK_CHUNK, d) masked inputs */
    double *Mx;        /* (MASK_CHUNK, d) input mask values */
    double *row;       /* (d) mask values of one row */
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

        for (size_t i = i0; i < i_end; i++)
            m[i] = (word >> (i - i0)) & 1 ? scale : 0.0;
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

/* Mask M (h, d) of one sample, each value drawn in the documented order. */
static void
reference_mask(const struct pnd_mask_spec *spec,
               const struct pnd_mask_key *key, uint64_t sample, size_t h,
               size_t d, double *M /* (h, d) */)
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
    mask_derive(&r, key->seed, s, key->layer, key->step, sample);

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
                if (i % PND_MASK_WORD_BITS == 0)
                    word = s == PND_SCHEME_FIXED_MASK && spec->fixed_bits
                           ? spec->fixed_bits[u * nw + i / PND_MASK_WORD_BITS]
                           : pnd_rng_bernoulli_word(&r, 1.0 - p);
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
    w->bits = malloc(h * w->nw * sizeof *w->bits);
    w->Wm = malloc(h * d * sizeof *w->Wm);
    w->Xm = malloc(MASK_CHUNK * d * sizeof *w->Xm);
    w->Mx = malloc(MASK_CHUNK * d * sizeof *w->Mx);
    w->row = malloc(d * sizeof *w->row);
    if (!w->bits || !w->Wm || !w->Xm || !w->Mx || !w->row)
        goto fail;
    return w;

fail:
    pnd_mask_workspace_free(w);
    return NULL;
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
    free(w);
}

/* --- unmasked and GEMM-based schemes -------------------------------------- */

/* Z (n, h) = X (n, d) W^T + b */
static void
forward_gemm(size_t n, size_t h, size_t d, const double *W /* (h, d) */,
             const double *b /* (h) or NULL */, const double *X /* (n, d) */,
             double *Z /* (n, h) */)
{
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) n, (int) h,
                (int) d, 1.0, X, (int) d, W, (int) d, 0.0, Z, (int) h);
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
        for (size_t i = 0; i < d; i++)
            Wm[u * d + i] = (bits[u * nw + i / PND_MASK_WORD_BITS]
                             >> (i % PND_MASK_WORD_BITS)) & 1
                            ? W[u * d + i] * scale : 0.0;
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

static void
forward_pernodedrop(const struct pnd_mask_spec *spec,
                    const struct pnd_mask_key *key, size_t n, size_t h,
                    size_t d, const double *W, const double *b,
                    const double *X, double *Z, struct pnd_mask_workspace *w)
{
    double q = 1.0 - spec->p;
    double scale = 1.0 / (1.0 - spec->p);

    for (size_t k = 0; k < n; k++) {
        pnd_pcg64 r;
        double *z = Z + k * h;

        mask_derive(&r, key->seed, spec->scheme, key->layer, key->step,
                    key->sample + k);
        pnd_mask_pernodedrop_forward(&r, q, scale, h, d, W, X + k * d,
                                     w->bits, z);
        if (b)
            for (size_t u = 0; u < h; u++)
                z[u] += b[u];
    }
}

static void
backward_pernodedrop(const struct pnd_mask_spec *spec,
                     const struct pnd_mask_key *key, size_t n, size_t h,
                     size_t d, const double *W, const double *X,
                     const double *dZ, double *dW, double *dX,
                     struct pnd_mask_workspace *w)
{
    double q = 1.0 - spec->p;
    double scale = 1.0 / (1.0 - spec->p);
    size_t nw = pnd_mask_words(d);

    for (size_t k = 0; k < n; k++) {
        const double *x = X + k * d;
        double *dx = dX ? dX + k * d : NULL;
        pnd_pcg64 r;

        mask_derive(&r, key->seed, spec->scheme, key->layer, key->step,
                    key->sample + k);
        if (dx)
            memset(dx, 0, d * sizeof *dx);
        for (size_t u = 0; u < h; u++) {
            double c = scale * dZ[k * h + u];

            draw_bit_rows(&r, q, 1, nw, w->bits);
            /* A zero gradient (common after ReLU) adds nothing. */
            if (c == 0.0)
                continue;
            pnd_mask_axpy_bits(d, c, x, w->bits, dW + u * d);
            if (dx)
                pnd_mask_axpy_bits(d, c, W + u * d, w->bits, dx);
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

    if (db)
        add_column_sums(n, h, dZ, db);
    if (unmasked(spec)) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int) h, (int) d,
                    (int) n, 1.0, dZ, (int) h, X, (int) d, 1.0, dW, (int) d);
        if (dX)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) n,
                        (int) d, (int) h, 1.0, dZ, (int) h, W, (int) d, 0.0,
                        dX, (int) d);
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
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int) h,
                        (int) d, (int) nc, 1.0, dZc, (int) h, w->Xm, (int) d,
                        1.0, dW, (int) d);
            if (dX == NULL)
                continue;
            double *dXc = dX + k0 * d;

            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) nc,
                        (int) d, (int) h, 1.0, dZc, (int) h, W, (int) d, 0.0,
                        dXc, (int) d);
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
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) n,
                        (int) d, (int) h, 1.0, dZ, (int) h, w->Wm, (int) d,
                        0.0, dX, (int) d);
        }
        /* dW += M o (dZ^T X), the product formed in w->Wm. */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int) h, (int) d,
                    (int) n, 1.0, dZ, (int) h, X, (int) d, 0.0, w->Wm,
                    (int) d);
        for (size_t u = 0; u < h; u++)
            for (size_t i = 0; i < d; i++)
                if ((bits[u * nw + i / PND_MASK_WORD_BITS]
                     >> (i % PND_MASK_WORD_BITS)) & 1)
                    dW[u * d + i] += scale * w->Wm[u * d + i];
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
    if (db)
        PND_TRY(check_finite(fn, "db", db, h));
    if (dX)
        PND_TRY(check_finite(fn, "dX", dX, n * d));
    return check_finite(fn, "dW", dW, h * d);
}

/* --- public reference passes ---------------------------------------------- */

int
pnd_mask_values(const struct pnd_mask_spec *spec,
                const struct pnd_mask_key *key, size_t h, size_t d, double *M)
{
    static const char fn[] = "pnd_mask_values";
    /* Any non-NULL pointer stands in for W, which is not used here. */
    static const double unused_weights = 0.0;

    PND_TRY(check_layer(fn, spec, key, h, d, &unused_weights, NULL, false));
    if (M == NULL)
        PND_ERROR(PND_EINVAL, "%s: the output array M is NULL", fn);
    reference_mask(spec, key, key ? key->sample : 0, h, d, M);
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

    PND_TRY(check_layer(fn, spec, key, h, d, W, NULL, false));
    if (n == 0)
        return PND_OK;
    if (X == NULL || Z == NULL)
        PND_ERROR(PND_EINVAL, "%s: the input X or the output Z is NULL", fn);
    M = malloc(h * d * sizeof *M);
    if (M == NULL)
        PND_ERROR(PND_ENOMEM, "%s: out of memory for a %zu x %zu mask", fn,
                  h, d);

    for (size_t k = 0; k < n; k++) {
        reference_mask(spec, key, key ? key->sample + k : 0, h, d, M);
        for (size_t u = 0; u < h; u++) {
            double acc = 0.0;

            for (size_t i = 0; i < d; i++)
                acc += W[u * d + i] * M[u * d + i] * X[k * d + i];
            Z[k * h + u] = b ? acc + b[u] : acc;
        }
    }
    free(M);
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

    PND_TRY(check_layer(fn, spec, key, h, d, W, NULL, false));
    if (n == 0)
        return PND_OK;
    if (X == NULL || dZ == NULL || dW == NULL)
        PND_ERROR(PND_EINVAL, "%s: X, dZ or dW is NULL (only db and dX are "
                  "optional)", fn);
    M = malloc(h * d * sizeof *M);
    if (M == NULL)
        PND_ERROR(PND_ENOMEM, "%s: out of memory for a %zu x %zu mask", fn,
                  h, d);

    for (size_t k = 0; k < n; k++) {
        const double *dz = dZ + k * h;
        const double *x = X + k * d;

        reference_mask(spec, key, key ? key->sample + k : 0, h, d, M);
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
    return PND_OK;
}
