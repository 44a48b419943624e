/* Network description shared by the simulator, the analytic module and the
 * trainer's export.
 *
 * A network is a stack of masked dense layers, each followed by an
 * activation, then an optional unmasked linear readout, then a loss:
 *
 *   h_0 = x;  z_l = (W_l o M_l) h_{l-1} + b_l;  h_l = phi_l(z_l)
 *   y = V h_L + e   (readout; when absent, y = h_L)
 *   loss: squared 1/2 |y - t|^2, or softmax cross-entropy -log softmax(y)_c
 *
 * The models of the simulator are special cases:
 *   linear   one layer, identity activation, no readout, squared loss
 *   readout  one layer, identity activation, readout V, squared loss
 *   softmax  one layer, identity activation, no readout, softmax cross-entropy
 *   mlp      one or more layers with tanh, sigmoid, softplus or relu,
 *            readout, squared or softmax cross-entropy loss
 */
#ifndef PND_NET_H
#define PND_NET_H

#include <stddef.h>
#include <stdint.h>

#include "pnd/mask.h"

enum pnd_activation {
    PND_ACT_IDENTITY = 0,
    PND_ACT_TANH,
    PND_ACT_SIGMOID,
    PND_ACT_SOFTPLUS,
    PND_ACT_RELU
};

enum pnd_loss {
    PND_LOSS_SQUARED = 0,      /* 1/2 |y - t|^2, targets t (c) */
    PND_LOSS_SOFTMAX_XENT      /* -log softmax(y)_label, integer labels */
};

struct pnd_layer {
    size_t d_in, d_out;
    double *W;                 /* (d_out, d_in), row-major */
    double *b;                 /* (d_out) */
    enum pnd_activation act;
    struct pnd_mask_spec mask; /* scheme, p and fixed-mask bits */
    uint64_t *fixed_bits;      /* owned storage behind mask.fixed_bits, or NULL */
};

struct pnd_net {
    size_t n_layers;
    struct pnd_layer *layers;  /* (n_layers) */
    size_t n_out;              /* c: readout rows, or d_out of the last layer */
    double *V;                 /* (n_out, last d_out) readout, or NULL */
    double *e;                 /* (n_out) readout bias, or NULL */
    enum pnd_loss loss;
};

/* Inputs with their targets: T for the squared loss, labels for softmax. */
struct pnd_data {
    size_t n, d, c;
    double *X;                 /* (n, d) */
    double *T;                 /* (n, c), or NULL */
    int *labels;               /* (n), values in [0, c), or NULL */
};

/* Allocate a network with the given layer widths: widths[0] is the input
 * dimension d, widths[1..n_layers] the layer outputs; n_out > 0 adds a
 * readout of n_out rows, n_out == 0 means none. Weights are zero; every
 * layer is unmasked with identity activation. Caller frees with
 * pnd_net_free. Returns NULL and records an error on failure. */
struct pnd_net *pnd_net_alloc(size_t n_layers, const size_t *widths,
                              size_t n_out, enum pnd_loss loss);
void pnd_net_free(struct pnd_net *net);   /* NULL is a no-op */

struct pnd_data *pnd_data_alloc(size_t n, size_t d, size_t c, int with_labels);
void pnd_data_free(struct pnd_data *data);

/* Scratch for evaluating one sample through net (activations of every
 * layer, mask scratch). One per thread; allocate after the net's shapes are
 * final. */
struct pnd_net_workspace;
struct pnd_net_workspace *pnd_net_workspace_alloc(const struct pnd_net *net);
void pnd_net_workspace_free(struct pnd_net_workspace *w);  /* NULL is a no-op */

/* Loss of sample k of data with explicit mask values: masks[l] is the
 * (d_out, d_in) array of m_ui for layer l, or NULL for no mask on that
 * layer; masks itself may be NULL for the clean network. Used by
 * enumeration and tests. */
int pnd_net_loss_with_masks(const struct pnd_net *net,
                            const struct pnd_data *data, size_t k,
                            const double *const *masks,
                            struct pnd_net_workspace *w, double *loss);

/* Loss of sample k with every layer masked by its own scheme, the mask of
 * layer l drawn from (key->seed, l, key->step, key->sample). */
int pnd_net_loss_sample(const struct pnd_net *net, const struct pnd_data *data,
                        size_t k, const struct pnd_mask_key *key,
                        struct pnd_net_workspace *w, double *loss);

const char *pnd_activation_name(enum pnd_activation act);
int pnd_activation_parse(const char *name, enum pnd_activation *act);
const char *pnd_loss_name(enum pnd_loss loss);
int pnd_loss_parse(const char *name, enum pnd_loss *loss);

/* NULL-terminated lists of the names above, for configuration choices. */
extern const char *const pnd_activation_names[];
extern const char *const pnd_loss_names[];

/* PND_EINVAL unless data fits net: data->d equals the input width, and
 * data carries targets of width n_out (squared loss) or labels in
 * [0, n_out) (softmax cross-entropy). */
int pnd_net_check_data(const struct pnd_net *net, const struct pnd_data *data);

/* Set the scheme and p of every layer. For fixed-mask the keep bits are
 * drawn from (seed, layer) and stored in the layer; seed is unused for the
 * other schemes. */
int pnd_net_set_scheme(struct pnd_net *net, enum pnd_scheme scheme, double p,
                       uint64_t seed);

/* Loss of sample k as pnd_net_loss_sample computes it, and its gradient:
 * adds weight * dl/dW_l to dW[l] (d_out, d_in) for every layer l, with the
 * masks regenerated from the same keys by pnd_layer_backward. */
int pnd_net_grad_sample(const struct pnd_net *net, const struct pnd_data *data,
                        size_t k, const struct pnd_mask_key *key,
                        double weight, struct pnd_net_workspace *w,
                        double *loss, double *const *dW);

/* Pre-activation z_l (d_out) of layer l for sample k of the clean
 * network, with the input h_{l-1} (d_in) of that layer. Both point into w
 * and stay valid until the next call with w. */
int pnd_net_clean_layer(const struct pnd_net *net, const struct pnd_data *data,
                        size_t k, size_t layer, struct pnd_net_workspace *w,
                        const double **input, const double **preact);

/* Models of the synthetic teacher-student generator (see the top of this
 * file for their shapes). */
enum pnd_model {
    PND_MODEL_LINEAR = 0,
    PND_MODEL_READOUT,
    PND_MODEL_SOFTMAX,
    PND_MODEL_MLP,
    PND_MODEL_COUNT
};
extern const char *const pnd_model_names[];
const char *pnd_model_name(enum pnd_model model);
int pnd_model_parse(const char *name, enum pnd_model *model);

#define PND_NET_MAX_LAYERS 8

/* A synthetic teacher-student problem. The student (the network returned)
 * and the teacher are independent random networks of the same shape with
 * W_l ~ N(0, scale^2 / d_in), biases and readout bias ~ N(0, 0.01 scale^2)
 * and readout V ~ N(0, 1 / h_L). Inputs are N(0, 1). Targets are the
 * teacher's outputs plus N(0, noise^2); labels are the teacher's argmax,
 * replaced by a uniform class with probability noise. Every draw comes from
 * pnd_rng_derive with its own coordinates under seed. */
struct pnd_synth_spec {
    enum pnd_model model;
    size_t d;                          /* input dimension */
    size_t n_layers;                   /* masked layers (mlp), else 1 */
    size_t h[PND_NET_MAX_LAYERS];      /* (n_layers) widths */
    size_t c;                          /* readout rows or classes */
    size_t n;                          /* samples */
    double scale;                      /* weight scale, > 0 */
    double noise;                      /* target sd, or label flip probability */
    enum pnd_activation act;           /* mlp hidden activation */
    enum pnd_loss loss;                /* mlp loss */
    uint64_t seed;
};

/* Defaults: readout model, d = 8, one layer of width 4, c = 2, n = 1,
 * scale 1, noise 0.1, tanh, squared loss, seed 1. */
void pnd_synth_spec_init(struct pnd_synth_spec *spec);

/* Build the student network and its data set. For linear and softmax the
 * layer width is c (h is ignored); the caller frees both. */
int pnd_net_synth(const struct pnd_synth_spec *spec, struct pnd_net **net,
                  struct pnd_data **data);

/* Read a matrix from a whitespace-separated text file (one row per line,
 * '#' starts a comment) or a .npy file (float32 or float64, C order,
 * little-endian, one or two dimensions; a vector of length r reads as
 * r x 1). *values (rows, cols) is malloc'd and owned by the caller.
 * PND_EIO for an unreadable file, PND_EFORMAT for malformed contents, with
 * the file and line or byte offset in the message. */
int pnd_matrix_read(const char *path, size_t *rows, size_t *cols,
                    double **values);

/* Read a network and its data from an INI description (docs/sim.md,
 * "Network files"). Paths in the file are relative to its folder. The
 * caller frees both. PND_EINVAL or PND_EFORMAT with the file, line, key
 * and accepted values in the message. */
int pnd_net_read(const char *path, struct pnd_net **net,
                 struct pnd_data **data);

#endif
