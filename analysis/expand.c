/* Second- and third-order expansion of the expected loss in the mask noise
 * (derivation in docs/theory.md, "Smooth losses").
 *
 * For each masked layer, with a_ui = W_ui h_i (h the clean input of the
 * layer) and H the exact Hessian of the loss with respect to the layer's
 * pre-activations (later layers clean):
 *   R_diag  = 1/2 s2 sum_u H_uu sum_i a_ui^2,
 *   R_cross = 1/2 s2 sum_{u != v} H_uv sum_i a_ui a_vi   (input schemes),
 *           = 0                                          (per-connection).
 * The third-order term is 1/6 sum_j mu3 d^3 l / d eta_j^3 over the mask
 * variables eta_j. Variable j moves z along a_ui e_u (one connection) or
 * along column i of a (one input). Along that direction d^3 l / dt^3 is 6
 * times the t^3 Taylor coefficient from analysis/common.c:
 *   per-connection: mu3 sum_u (sum_i a_ui^3) c3(e_u),
 *   input schemes:  mu3 sum_i c3(a_{.i}).
 * Layers are independent and centred, so every term is a sum over layers.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnd/analysis.h"
#include "pnd/error.h"
#include "analysis/internal.h"

/* The clean input of layer l for sample k (d_in). */
static const double *
layer_input(const struct pnd_data *data, size_t k, size_t l,
            const struct pnd_an_work *w)
{
    return l == 0 ? data->X + k * data->d : w->h + (l - 1) * w->width;
}

/* R_diag and R_cross of layer l for noise variance s2, from the Hessian in
 * w->H; R_cross only when cross is true. */
static void
layer_penalties(const struct pnd_net *net, const struct pnd_data *data,
                size_t k, size_t l, double s2, bool cross,
                const struct pnd_an_work *w, double *R_diag, double *R_cross)
{
    const struct pnd_layer *layer = &net->layers[l];
    const double *x = layer_input(data, k, l, w), *W = layer->W, *H = w->H;
    size_t h = layer->d_out, d = layer->d_in;
    double diag = 0.0, off = 0.0;

    for (size_t u = 0; u < h; u++) {
        double n2 = 0.0;

        for (size_t i = 0; i < d; i++) {
            double a = W[u * d + i] * x[i];

            n2 += a * a;
        }
        diag += H[u * h + u] * n2;
    }
    if (cross) {
        for (size_t u = 0; u < h; u++)
            for (size_t v = 0; v < h; v++) {
                double Suv = 0.0;

                if (u == v)
                    continue;
                for (size_t i = 0; i < d; i++)
                    Suv += W[u * d + i] * W[v * d + i] * x[i] * x[i];
                off += H[u * h + v] * Suv;
            }
    }
    *R_diag = 0.5 * s2 * diag;
    *R_cross = 0.5 * s2 * off;
}

/* Third-order term of layer l: 1/6 mu3 sum_j d^3 l / d eta_j^3. */
static int
layer_third_order(const struct pnd_net *net, const struct pnd_data *data,
                  size_t k, size_t l, double mu3, bool per_connection,
                  struct pnd_an_work *w, double *dir, double *term)
{
    const struct pnd_layer *layer = &net->layers[l];
    const double *x = layer_input(data, k, l, w), *W = layer->W;
    const double *z0 = w->z + l * w->width;
    size_t h = layer->d_out, d = layer->d_in;
    double sum = 0.0, c[4];

    if (per_connection) {
        for (size_t u = 0; u < h; u++) {
            double n3 = 0.0;

            for (size_t i = 0; i < d; i++) {
                double a = W[u * d + i] * x[i];

                n3 += a * a * a;
            }
            memset(dir, 0, h * sizeof *dir);
            dir[u] = 1.0;
            PND_TRY(pnd_an_taylor_loss(net, data, k, l, z0, dir, w, c));
            sum += n3 * c[3];
        }
    } else {
        for (size_t i = 0; i < d; i++) {
            for (size_t u = 0; u < h; u++)
                dir[u] = W[u * d + i] * x[i];
            PND_TRY(pnd_an_taylor_loss(net, data, k, l, z0, dir, w, c));
            sum += c[3];
        }
    }
    /* 1/6 mu3 d^3 l / dt^3 = 1/6 mu3 (6 c3) */
    *term = mu3 * sum;
    return PND_OK;
}

static int
expand_layers(const struct pnd_net *net, const struct pnd_data *data,
              size_t k, struct pnd_an_work *w, double *dir,
              struct pnd_expansion *result)
{
    double loss, third = 0.0;
    bool after_masked = false;

    memset(result, 0, sizeof *result);
    PND_TRY(pnd_an_forward_clean(net, data, k, w, &loss));
    result->loss_clean = loss;

    for (size_t l = 0; l < net->n_layers; l++) {
        const struct pnd_layer *layer = &net->layers[l];
        struct pnd_noise_moments nm;
        bool per_connection;
        double R_diag, R_cross, term = 0.0;

        if (pnd_an_layer_masked(layer))
            after_masked = true;
        /* the noise reaches a ReLU kink from here on */
        if (after_masked && layer->act == PND_ACT_RELU)
            result->kink = 1;
        if (!pnd_an_layer_masked(layer))
            continue;

        nm = pnd_an_layer_noise(layer);
        per_connection = pnd_scheme_per_connection(layer->mask.scheme);
        pnd_an_backward_hessian(net, data, k, l, w);
        layer_penalties(net, data, k, l, nm.s2, !per_connection, w, &R_diag,
                        &R_cross);
        result->R_diag += R_diag;
        result->R_cross += R_cross;
        if (nm.mu3 != 0.0)
            PND_TRY(layer_third_order(net, data, k, l, nm.mu3,
                                      per_connection, w, dir, &term));
        third += term;
    }
    result->order2 = result->loss_clean + result->R_diag + result->R_cross;
    result->order3 = result->order2 + third;
    if (!isfinite(result->order2) || !isfinite(result->order3))
        PND_ERROR(PND_ENUMERIC,
                  "the expansion of the loss of sample %zu is not finite", k);
    return PND_OK;
}

int
pnd_expand_sample(const struct pnd_net *net, const struct pnd_data *data,
                  size_t k, struct pnd_expansion *result)
{
    struct pnd_an_work *w;
    double *dir;
    int status;

    PND_TRY(pnd_an_check_net(net, data, k, true));
    if (result == NULL)
        PND_ERROR(PND_EINVAL, "result is NULL");

    w = pnd_an_work_alloc(net);
    if (w == NULL)
        return PND_ENOMEM;
    dir = calloc(w->width, sizeof *dir);
    if (dir == NULL) {
        pnd_an_work_free(w);
        PND_ERROR(PND_ENOMEM, "out of memory for the expansion");
    }
    status = expand_layers(net, data, k, w, dir, result);
    free(dir);
    pnd_an_work_free(w);
    return status;
}

int
pnd_expand_layer_dropout_terms(const struct pnd_net *net,
                               const struct pnd_data *data, size_t k,
                               size_t layer, double p, double *R_diag,
                               double *R_cross)
{
    struct pnd_an_work *w;
    double loss;
    int status;

    PND_TRY(pnd_an_check_net(net, data, k, true));
    if (layer >= net->n_layers)
        PND_ERROR(PND_EINVAL,
                  "layer %zu is out of range (the network has %zu layers)",
                  layer, net->n_layers);
    if (!(p >= 0.0 && p < 1.0))
        PND_ERROR(PND_EINVAL, "drop probability p = %g is outside [0, 1)", p);
    if (R_diag == NULL || R_cross == NULL)
        PND_ERROR(PND_EINVAL, "R_diag or R_cross is NULL");

    w = pnd_an_work_alloc(net);
    if (w == NULL)
        return PND_ENOMEM;
    status = pnd_an_forward_clean(net, data, k, w, &loss);
    if (status == PND_OK) {
        pnd_an_backward_hessian(net, data, k, layer, w);
        layer_penalties(net, data, k, layer, p / (1.0 - p), true, w, R_diag,
                        R_cross);
        if (!isfinite(*R_diag) || !isfinite(*R_cross))
            status = pnd_error_set(PND_ENUMERIC, __FILE__, __LINE__,
                                   "the dropout penalties of layer %zu are "
                                   "not finite", layer);
    }
    pnd_an_work_free(w);
    return status;
}

/* Forward pass of sample k up to layer l: the clean pre-activations of
 * layer l are left in w->z row l. */
static int
forward_to(const struct pnd_net *net, const struct pnd_data *data, size_t k,
           size_t l, const double *z, struct pnd_an_work *w, double *loss)
{
    PND_TRY(pnd_an_forward_clean(net, data, k, w, loss));
    if (z != NULL)
        PND_TRY(pnd_an_forward_from(net, data, k, l, z, w, loss));
    return PND_OK;
}

int
pnd_expand_layer_derivatives(const struct pnd_net *net,
                             const struct pnd_data *data, size_t k,
                             size_t layer, const double *z, double *loss,
                             double *grad, double *hess)
{
    struct pnd_an_work *w;
    size_t h;
    double value;
    int status;

    PND_TRY(pnd_an_check_net(net, data, k, true));
    if (layer >= net->n_layers)
        PND_ERROR(PND_EINVAL,
                  "layer %zu is out of range (the network has %zu layers)",
                  layer, net->n_layers);

    w = pnd_an_work_alloc(net);
    if (w == NULL)
        return PND_ENOMEM;
    h = net->layers[layer].d_out;
    status = forward_to(net, data, k, layer, z, w, &value);
    if (status == PND_OK) {
        if (loss != NULL)
            *loss = value;
        if (grad != NULL || hess != NULL)
            pnd_an_backward_hessian(net, data, k, layer, w);
        if (grad != NULL)
            memcpy(grad, w->g, h * sizeof *grad);
        if (hess != NULL)
            memcpy(hess, w->H, h * h * sizeof *hess);
    }
    pnd_an_work_free(w);
    return status;
}

int
pnd_expand_directional_derivatives(const struct pnd_net *net,
                                   const struct pnd_data *data, size_t k,
                                   size_t layer, const double *z,
                                   const double *v, double result[4])
{
    struct pnd_an_work *w;
    double loss, c[4];
    int status;

    PND_TRY(pnd_an_check_net(net, data, k, true));
    if (layer >= net->n_layers)
        PND_ERROR(PND_EINVAL,
                  "layer %zu is out of range (the network has %zu layers)",
                  layer, net->n_layers);
    if (v == NULL || result == NULL)
        PND_ERROR(PND_EINVAL, "direction v or result is NULL");

    w = pnd_an_work_alloc(net);
    if (w == NULL)
        return PND_ENOMEM;
    status = forward_to(net, data, k, layer, z, w, &loss);
    if (status == PND_OK)
        status = pnd_an_taylor_loss(net, data, k, layer,
                                    w->z + layer * w->width, v, w, c);
    if (status == PND_OK) {
        result[0] = c[0];
        result[1] = c[1];
        result[2] = 2.0 * c[2];
        result[3] = 6.0 * c[3];
    }
    pnd_an_work_free(w);
    return status;
}
