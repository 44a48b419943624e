/* Local reparameterisation sampler for pernodedrop-gaussian.
 *
 * With Gaussian per-connection masks m_ui ~ N(1, s2), the pre-activation
 * z_u = sum_i W_ui m_ui h_i + b_u given the layer input h is a sum of
 * independent normals, so z_u ~ N(mu_u, s2 sum_i W_ui^2 h_i^2) and the z_u
 * are independent across u. Drawing z_u = mu_u + sqrt(S_uu) xi_u with one
 * standard normal xi_u per receiving node therefore has exactly the
 * distribution of masking every weight, at h draws per layer instead of
 * h d. Layers are drawn in order, each from the
 * noisy output of the one before.
 *
 * Draw j of sample k takes its normals for layer l from
 * pnd_rng_derive(seed, (REPARAM_STREAM, l, j, k)).
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>

#include "pnd/analysis.h"
#include "pnd/error.h"
#include "pnd/rng.h"
#include "analysis/internal.h"

/* First coordinate of every stream drawn here ("lrep" in ASCII), so these
 * draws never share a stream with the mask draws of the same seed. */
#define REPARAM_STREAM 0x6c726570u

static int
check_reparam_net(const struct pnd_net *net)
{
    for (size_t l = 0; l < net->n_layers; l++) {
        const struct pnd_layer *layer = &net->layers[l];

        if (pnd_an_layer_masked(layer)
            && layer->mask.scheme != PND_SCHEME_PERNODEDROP_GAUSSIAN)
            PND_ERROR(PND_EINVAL,
                      "local reparameterisation is exact only for "
                      "pernodedrop-gaussian, but layer %zu uses %s", l,
                      pnd_scheme_name(layer->mask.scheme));
    }
    return PND_OK;
}

/* One draw of the loss of sample k. */
static int
reparam_draw(const struct pnd_net *net, const struct pnd_data *data,
             size_t k, uint64_t seed, uint64_t draw, struct pnd_an_work *w,
             double *loss)
{
    const double *input = data->X + k * data->d;
    size_t width = w->width;

    for (size_t l = 0; l < net->n_layers; l++) {
        const struct pnd_layer *layer = &net->layers[l];
        double *z = w->z + l * width;
        size_t h = layer->d_out, d = layer->d_in;

        pnd_an_dense(layer->W, layer->b, input, h, d, z);
        if (pnd_an_layer_masked(layer)) {
            double s2 = pnd_an_layer_noise(layer).s2;
            uint64_t coords[4] = { REPARAM_STREAM, l, draw, k };
            pnd_pcg64 r;

            pnd_rng_derive(&r, seed, coords, 4);
            for (size_t u = 0; u < h; u++) {
                double n2 = 0.0;

                for (size_t i = 0; i < d; i++)
                    n2 += layer->W[u * d + i] * layer->W[u * d + i]
                          * input[i] * input[i];
                z[u] += sqrt(s2 * n2) * pnd_rng_normal(&r);
            }
        }
        pnd_an_activate(layer->act, z, w->h + l * width, h);
        input = w->h + l * width;
    }
    if (net->V != NULL)
        pnd_an_dense(net->V, net->e, input, net->n_out,
                     net->layers[net->n_layers - 1].d_out, w->y);
    else
        for (size_t j = 0; j < net->n_out; j++)
            w->y[j] = input[j];
    *loss = pnd_an_output_loss(net, data, k, w->y);
    if (!isfinite(*loss))
        PND_ERROR(PND_ENUMERIC,
                  "the loss of sample %zu at draw %llu is not finite", k,
                  (unsigned long long) draw);
    return PND_OK;
}

int
pnd_reparam_sample_losses(const struct pnd_net *net,
                          const struct pnd_data *data, size_t k,
                          uint64_t seed, uint64_t first_draw, size_t n_draws,
                          double *losses)
{
    struct pnd_an_work *w;
    int status = PND_OK;

    PND_TRY(pnd_an_check_net(net, data, k, true));
    PND_TRY(check_reparam_net(net));
    if (losses == NULL && n_draws > 0)
        PND_ERROR(PND_EINVAL, "losses is NULL");

    w = pnd_an_work_alloc(net);
    if (w == NULL)
        return PND_ENOMEM;
    for (size_t j = 0; j < n_draws && status == PND_OK; j++)
        status = reparam_draw(net, data, k, seed, first_draw + j, w,
                              &losses[j]);
    pnd_an_work_free(w);
    return status;
}
