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

const char *pnd_activation_name(enum pnd_activation act);
int pnd_activation_parse(const char *name, enum pnd_activation *act);
const char *pnd_loss_name(enum pnd_loss loss);
int pnd_loss_parse(const char *name, enum pnd_loss *loss);

#endif
