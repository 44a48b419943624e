/* Helpers shared by the files of analysis/: network checks, clean forward
 * passes, derivatives of the activations, and the scratch they use. Not
 * installed; the public API is in include/pnd/analysis.h.
 */
#ifndef PND_ANALYSIS_INTERNAL_H
#define PND_ANALYSIS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "pnd/net.h"

/* Scratch for one network, allocated once per public call (or per thread)
 * and reused for every pass. Every array is sized by the widest layer. */
struct pnd_an_work {
    size_t n_layers;
    size_t width;        /* max over d_in of layer 0, every d_out and n_out */
    size_t c;            /* n_out */
    double *z;           /* (n_layers, width) pre-activations */
    double *h;           /* (n_layers, width) activations */
    double *y;           /* (c) network output */
    double *g;           /* (width) gradient */
    double *g_next;      /* (width) */
    double *H;           /* (width, width) Hessian */
    double *H_next;      /* (width, width) */
    double *tmp;         /* (width, width) */
    double *taylor_a;    /* (4, width) Taylor coefficients of a layer */
    double *taylor_b;    /* (4, width) */
    double *taylor_y;    /* (4, c) */
};

struct pnd_an_work *pnd_an_work_alloc(const struct pnd_net *net);
void pnd_an_work_free(struct pnd_an_work *w);  /* NULL is a no-op */

/* PND_EINVAL unless the layer shapes chain, the data match the network
 * (d, c, targets or labels present and in range) and every p is valid.
 * Sample k is checked only when check_k is true. */
int pnd_an_check_net(const struct pnd_net *net, const struct pnd_data *data,
                     size_t k, bool check_k);

/* True when layer l draws noise: a scheme other than none and p > 0. */
bool pnd_an_layer_masked(const struct pnd_layer *layer);

/* Noise moments of one mask variable of layer (fixed-mask: those of its
 * one-time Bernoulli draw). */
struct pnd_noise_moments pnd_an_layer_noise(const struct pnd_layer *layer);

/* phi and its first three derivatives at z, for every activation (ReLU:
 * the one-sided values with f2 = f3 = 0, the kink ignored). */
void pnd_an_activation_derivs(enum pnd_activation act, double z, double *f0,
                              double *f1, double *f2, double *f3);

/* h (n) = phi(z (n)) elementwise. */
void pnd_an_activate(enum pnd_activation act, const double *z, double *h,
                     size_t n);

/* out (h) = W (h, d) in (d) + b (h); b may be NULL. */
void pnd_an_dense(const double *W, const double *b, const double *in,
                  size_t h, size_t d, double *out);

/* Clean forward pass of sample k: fills w->z and w->h for every layer and
 * w->y, and sets *loss. */
int pnd_an_forward_clean(const struct pnd_net *net,
                         const struct pnd_data *data, size_t k,
                         struct pnd_an_work *w, double *loss);

/* Forward pass from the pre-activations z_l (d_out of layer l) of layer l
 * through the clean layers after it, and the loss of sample k. Fills w->z
 * and w->h from layer l on and w->y. z_l may alias w->z row l. */
int pnd_an_forward_from(const struct pnd_net *net,
                        const struct pnd_data *data, size_t k, size_t l,
                        const double *z_l, struct pnd_an_work *w,
                        double *loss);

/* Gradient and Hessian of the loss of sample k with respect to the
 * pre-activations of layer l, at the state left by the last forward pass
 * (which must have reached layer l). Writes w->g (d_out) and w->H
 * (d_out, d_out). */
void pnd_an_backward_hessian(const struct pnd_net *net,
                             const struct pnd_data *data, size_t k, size_t l,
                             struct pnd_an_work *w);

/* Taylor coefficients c[0..3] of t -> loss(z_l = z0 + t v) for sample k,
 * the layers after l clean: c[j] is the j-th derivative divided by j!. */
int pnd_an_taylor_loss(const struct pnd_net *net, const struct pnd_data *data,
                       size_t k, size_t l, const double *z0, const double *v,
                       struct pnd_an_work *w, double c[4]);

/* Loss of an output y (c) for sample k of data. */
double pnd_an_output_loss(const struct pnd_net *net,
                          const struct pnd_data *data, size_t k,
                          const double *y);

/* Pairwise (cascade) summation of a stream of values: the rounding error
 * grows like log2(count) instead of count. */
struct pnd_an_pairwise {
    double partial[64];  /* partial[j]: sum of a block of 2^j values, or 0 */
    unsigned char used[64];
};

void pnd_an_pairwise_init(struct pnd_an_pairwise *s);
void pnd_an_pairwise_add(struct pnd_an_pairwise *s, double x);
double pnd_an_pairwise_total(const struct pnd_an_pairwise *s);

#endif
