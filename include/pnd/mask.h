/* Masking schemes and masked dense layers, shared by the simulator and the
 * trainer (one implementation for both).
 *
 * A dense layer maps X (n, d) to Z (n, h) with Z[k] = (W o M_k) X[k] + b,
 * where W is (h, d) row-major (row u feeds receiving node u), o is the
 * elementwise product and M_k is the mask of sample k. Masks are inverted:
 * a Bernoulli mask value is b / (1 - p) with b ~ Bernoulli(1 - p), a Gaussian
 * one is N(1, p / (1 - p)); p is the drop probability, 0 <= p < 1. Biases
 * are never masked.
 *
 *   none                  M = 1
 *   dropout               one Bernoulli value per input i, fresh per sample
 *   gaussian-dropout      one Gaussian value per input i, fresh per sample
 *   dropconnect           one Bernoulli value per connection (u, i), shared
 *                         by every sample of a mini-batch (key.sample unused)
 *   pernodedrop           one Bernoulli value per connection, fresh per sample
 *   pernodedrop-gaussian  one Gaussian value per connection, fresh per sample
 *   fixed-mask            one Bernoulli value per connection, drawn once from
 *                         (seed, layer) and used at training and evaluation
 *
 * The mask of a sample is a pure function of its key (seed, layer, step,
 * sample) through pnd_rng_derive, so it can be regenerated for the backward
 * pass instead of stored, and it does not depend on threads or chunking.
 * The pernodedrop keep bits of the last forward pass are kept in the
 * workspace (as bits) for the backward pass with the same key.
 * Per-sample masks are never stored as an (n, h, d) array of doubles.
 */
#ifndef PND_MASK_H
#define PND_MASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pnd_scheme {
    PND_SCHEME_NONE = 0,
    PND_SCHEME_DROPOUT,
    PND_SCHEME_GAUSSIAN_DROPOUT,
    PND_SCHEME_DROPCONNECT,
    PND_SCHEME_PERNODEDROP,
    PND_SCHEME_PERNODEDROP_GAUSSIAN,
    PND_SCHEME_FIXED_MASK,
    PND_SCHEME_COUNT
};

/* Names as used on the command line and in files: "none", "dropout", ... */
const char *pnd_scheme_name(enum pnd_scheme scheme);
/* PND_EINVAL, with a message listing the accepted names, for an unknown name. */
int pnd_scheme_parse(const char *name, enum pnd_scheme *scheme);
/* NULL-terminated list of every scheme name, for config choices. */
extern const char *const pnd_scheme_names[];

/* PND_EINVAL unless 0 <= p < 1 (NaN rejected); what names the option or
 * file entry in the message. */
int pnd_check_p(double p, const char *what);

/* True when the scheme draws one variable per connection (u, i). */
bool pnd_scheme_per_connection(enum pnd_scheme scheme);
/* True for the Gaussian schemes. */
bool pnd_scheme_gaussian(enum pnd_scheme scheme);

/* Moments of the centred noise eta = m - 1 for one mask variable:
 * s2 = p/(1-p); Bernoulli mu3 = p(2p-1)/(1-p)^2, mu4 = p + p^4/(1-p)^3;
 * Gaussian mu3 = 0, mu4 = 3 s2^2; all zero for none. */
struct pnd_noise_moments {
    double s2, mu3, mu4;
};
struct pnd_noise_moments pnd_noise_moments(enum pnd_scheme scheme, double p);

/* First coordinate that pnd_rng_derive receives for a mask of the given
 * scheme ("mask" in ASCII, then the scheme number), so that the streams of
 * different schemes, and of masks and other draws, never coincide. The full
 * tuples are (tag, layer, step, sample) for the per-sample schemes,
 * (tag, layer, step) for dropconnect and (tag, layer) for fixed-mask.
 * docs/masks.md gives the draw order within a stream. */
#define PND_MASK_TAG(scheme) (UINT64_C(0x6d61736b00000000) | (uint64_t) (scheme))

/* Coordinates of one mask draw. */
struct pnd_mask_key {
    uint64_t seed;
    uint64_t layer;
    uint64_t step;       /* mini-batch or Monte Carlo draw index */
    uint64_t sample;     /* index of the sample within the step */
};

/* Masking of one layer: the scheme, p and any fixed-mask bits. */
struct pnd_mask_spec {
    enum pnd_scheme scheme;
    double p;
    const uint64_t *fixed_bits;  /* (h, ceil(d / 64)) keep bits for fixed-mask, else NULL */
};

/* Per-thread scratch for one layer of h receiving and d sending nodes. */
struct pnd_mask_workspace;
struct pnd_mask_workspace *pnd_mask_workspace_alloc(size_t h, size_t d);
void pnd_mask_workspace_free(struct pnd_mask_workspace *w);  /* NULL is a no-op */
/* Room for the keep bits of up to n_max pernodedrop samples, so that
 * pnd_layer_backward reuses the bits of the pnd_layer_forward call with the
 * same key, n and p instead of drawing them again (same results, half the
 * draws). Without it, the first forward pass of n samples allocates the
 * room itself (once, up to 64 MiB) and later calls reuse it; call it after
 * pnd_mask_workspace_alloc to allocate everything up front. PND_ENOMEM when
 * out of memory. */
int pnd_mask_workspace_reserve(struct pnd_mask_workspace *w, size_t n_max);
/* Product cache for layers whose weights and inputs stay the same over
 * many calls, as in a Monte Carlo run over mask draws. The caller promises
 * that the weights W (h, d) and the inputs X (n, d) are not changed in place
 * until it calls this function again or frees w. A pernodedrop forward pass
 * on w with this W, h and d then forms the products W_ui x_i of a row x of
 * X once and, on every later pass, sums the kept ones without multiplying.
 * The results are the same bits.
 * A row is read from the cache only while its content is the one the
 * products were made from, so a changed input never meets old products.
 * A W changed in place is not detected: call again after changing W. The
 * cache is used when the products of all n rows fit in 2 MiB, or when
 * n = 1 and they fit in 64 MiB. Otherwise it stays off, because larger
 * caches measured slower. W = NULL or n = 0 ends the promise and frees it.
 * PND_EINVAL when w or X is NULL or h, d is larger than w was allocated
 * for, PND_ENOMEM when out of memory (the cache is then off). */
int pnd_mask_workspace_fix_product(struct pnd_mask_workspace *w, size_t h,
                                   size_t d, const double *W /* (h, d) */,
                                   size_t n, const double *X /* (n, d) */);

/* Draw the keep bits of a fixed-mask layer from (seed, layer): bits is
 * (h, ceil(d / 64)), bit i % 64 of word i / 64 of row u keeps W_ui. */
int pnd_mask_fixed_bits(uint64_t seed, uint64_t layer, double p, size_t h,
                        size_t d, uint64_t *bits);

/* Forward pass of n samples: Z (n, h) = masked W (h, d) applied to X (n, d),
 * plus b (h) when b is not NULL. Sample k uses the key with
 * sample = key->sample + k. */
int pnd_layer_forward(const struct pnd_mask_spec *spec,
                      const struct pnd_mask_key *key, size_t n, size_t h,
                      size_t d, const double *W, const double *b,
                      const double *X, double *Z,
                      struct pnd_mask_workspace *w);

/* Runs the forward pass of one sample x (d) under m >= 1 draws. Z (m, h)
 * receives the results of pnd_layer_forward with n = 1 and keys[0], ...,
 * keys[m - 1], bit for bit. A pernodedrop layer whose products w keeps
 * (pnd_mask_workspace_fix_product) reads them once for every 2 draws, or
 * every 4 with AVX-512. Other layers take m calls of pnd_layer_forward. */
int pnd_layer_forward_draws(const struct pnd_mask_spec *spec,
                            const struct pnd_mask_key *keys /* (m) */,
                            size_t m, size_t h, size_t d, const double *W,
                            const double *b, const double *x,
                            double *Z /* (m, h) */,
                            struct pnd_mask_workspace *w);

/* Backward pass with the masks of the same keys regenerated: given dZ (n, h)
 * it adds sum_k (M_k o dZ[k] X[k]^T) to dW (h, d), adds sum_k dZ[k] to db
 * (h) when db is not NULL, and writes dX[k] = (W o M_k)^T dZ[k] to dX (n, d)
 * when dX is not NULL. */
int pnd_layer_backward(const struct pnd_mask_spec *spec,
                       const struct pnd_mask_key *key, size_t n, size_t h,
                       size_t d, const double *W, const double *X,
                       const double *dZ, double *dW, double *db, double *dX,
                       struct pnd_mask_workspace *w);

/* Reference kernels: the same results computed plainly, one mask value at a
 * time, for tests that compare them with the fast kernels above. */
int pnd_layer_forward_reference(const struct pnd_mask_spec *spec,
                                const struct pnd_mask_key *key, size_t n,
                                size_t h, size_t d, const double *W,
                                const double *b, const double *X, double *Z);

/* Backward pass computed plainly from the same masks as
 * pnd_layer_backward, which it checks. */
int pnd_layer_backward_reference(const struct pnd_mask_spec *spec,
                                 const struct pnd_mask_key *key, size_t n,
                                 size_t h, size_t d, const double *W,
                                 const double *X, const double *dZ,
                                 double *dW, double *db, double *dX);

/* The mask value m_ui of one sample, as the kernels use it: for the input
 * schemes it is the same for every u. For tests and small enumerations. */
int pnd_mask_values(const struct pnd_mask_spec *spec,
                    const struct pnd_mask_key *key, size_t h, size_t d,
                    double *M /* (h, d) */);

/* Time one layer pass on random data, for pnd bench: repeats
 * pnd_layer_forward (backward = false) or pnd_layer_backward with dX
 * (backward = true) of n samples, with a new step each time, for at least
 * min_seconds of wall-clock time, and writes the masked connections
 * processed per second, n h d per call, to rate. */
int pnd_mask_bench(enum pnd_scheme scheme, double p, size_t n, size_t h,
                   size_t d, bool backward, double min_seconds, double *rate);

#endif
