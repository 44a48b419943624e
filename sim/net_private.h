/* Layout of the network workspace, shared by the files of sim/ only. */
#ifndef PND_SIM_NET_PRIVATE_H
#define PND_SIM_NET_PRIVATE_H

#include "pnd/mask.h"
#include "pnd/net.h"

struct pnd_net_workspace {
    size_t n_layers;
    size_t width_max;                    /* largest d_in, d_out or n_out */
    double **z;                          /* (n_layers) pre-activations, each (d_out) */
    double **a;                          /* (n_layers) activations, each (d_out) */
    double *y;                           /* (n_out) network output */
    double *dy;                          /* (n_out) dl/dy */
    double *da;                          /* (width_max) dl/d activation */
    double *dz;                          /* (width_max) dl/dz */
    double *masked_W;                    /* (largest d_out * d_in) W o M */
    double *z_draws;                     /* (PND_NET_DRAWS, layers[0].d_out) */
    /* The readout V transposed, (h_L, n_out rounded up to a multiple of
     * 4), by pnd_net_workspace_fix_input; NULL before or without V. */
    double *V_t;
    struct pnd_mask_workspace **mask_w;  /* (n_layers) */
};

/* Output y (n_out) of the clean network for one input x (d); points into w.
 * NULL when the layer kernel fails (the error is recorded). */
const double *pnd_net_output_clean(const struct pnd_net *net, const double *x,
                                   struct pnd_net_workspace *w);

/* Promise that the first layer's weights, the readout V and the inputs
 * data->X stay unchanged while w is used, so that a pernodedrop first
 * layer sums cached products (pnd_mask_workspace_fix_product) and the
 * readout reads a transposed copy of V. For runs over mask draws of a
 * network and data set that do not change, as in sim/mc.c. */
int pnd_net_workspace_fix_input(struct pnd_net_workspace *w,
                                const struct pnd_net *net,
                                const struct pnd_data *data);

/* Maximum number of draws that pnd_net_loss_sample_draws takes at once. */
#define PND_NET_DRAWS 4

/* Computes pnd_net_loss_sample of sample k under m draws, 1 <= m <=
 * PND_NET_DRAWS, keys[0] to keys[m - 1], bit for bit, with the first layer
 * computed for all of them at once (pnd_layer_forward_draws). */
int pnd_net_loss_sample_draws(const struct pnd_net *net,
                              const struct pnd_data *data, size_t k,
                              const struct pnd_mask_key *keys /* (m) */,
                              size_t m, struct pnd_net_workspace *w,
                              double *losses /* (m) */);

#endif
