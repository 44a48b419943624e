/* Exact E[l] and Var[l] of one sample over Bernoulli masks by enumerating
 * all 2^K masks of the K mask variables of every masked layer. Dropout has
 * one variable per input and the other Bernoulli schemes one per
 * connection. fixed-mask counts as the distribution of its one-time draw.
 *
 * The masks are visited in Gray-code order, so one variable changes per
 * step, and each mask's loss comes from pnd_net_loss_with_masks (the
 * simulator's own forward pass). The sums use pairwise summation of
 * w (l - c) and w (l - c)^2 with c the clean loss, so that the variance is
 * not the difference of two large numbers; the rounding error then grows
 * like log2(2^K) = K roundings instead of 2^K.
 */
#include <config.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "pnd/analysis.h"
#include "pnd/error.h"
#include "analysis/internal.h"

#define PND_ENUMERATE_MAX_VARIABLES 24

/* Position of one mask variable: layer, receiving node (every node for an
 * input scheme) and input. */
struct mask_variable {
    size_t layer;
    size_t u;            /* receiving node; ignored when per_input */
    size_t i;            /* sending node */
    bool per_input;
};

struct enum_state {
    size_t n_vars;
    struct mask_variable vars[PND_ENUMERATE_MAX_VARIABLES];
    double *masks[PND_NET_MAX_LAYERS];        /* (d_out, d_in) or NULL */
    double *weights[PND_NET_MAX_LAYERS];      /* (n_layer_vars + 1) */
    size_t n_layer_vars[PND_NET_MAX_LAYERS];
    size_t n_dropped[PND_NET_MAX_LAYERS];
};

static void
enum_state_free(struct enum_state *s)
{
    for (size_t l = 0; l < PND_NET_MAX_LAYERS; l++) {
        free(s->masks[l]);
        free(s->weights[l]);
    }
}

/* Count the variables, reject Gaussian layers and more than the limit. */
static int
count_variables(const struct pnd_net *net, size_t *n_vars)
{
    size_t total = 0;

    if (net->n_layers > PND_NET_MAX_LAYERS)
        PND_ERROR(PND_EINVAL,
                  "enumeration supports at most %d layers, not %zu",
                  PND_NET_MAX_LAYERS, net->n_layers);
    for (size_t l = 0; l < net->n_layers; l++) {
        const struct pnd_layer *layer = &net->layers[l];

        if (!pnd_an_layer_masked(layer))
            continue;
        if (pnd_scheme_gaussian(layer->mask.scheme))
            PND_ERROR(PND_EINVAL,
                      "enumeration needs Bernoulli masks but layer %zu uses "
                      "%s; use pnd_quadrature_expected_loss for Gaussian "
                      "schemes", l, pnd_scheme_name(layer->mask.scheme));
        total += pnd_scheme_per_connection(layer->mask.scheme)
                 ? layer->d_out * layer->d_in : layer->d_in;
    }
    if (total > PND_ENUMERATE_MAX_VARIABLES)
        PND_ERROR(PND_EINVAL,
                  "enumeration over %zu mask variables is too large: at most "
                  "%d (2^%d masks) are allowed; use fewer or smaller masked "
                  "layers, or Monte Carlo", total, PND_ENUMERATE_MAX_VARIABLES,
                  PND_ENUMERATE_MAX_VARIABLES);
    *n_vars = total;
    return PND_OK;
}

/* Masks all kept, the variable table and the weight tables
 * weights[l][n] = p^n (1 - p)^(K_l - n). */
static int
setup(const struct pnd_net *net, struct enum_state *s)
{
    size_t j = 0;

    for (size_t l = 0; l < net->n_layers; l++) {
        const struct pnd_layer *layer = &net->layers[l];
        size_t h = layer->d_out, d = layer->d_in, K_l;
        double p = layer->mask.p, keep = 1.0 / (1.0 - p);
        bool per_input;

        if (!pnd_an_layer_masked(layer))
            continue;
        per_input = !pnd_scheme_per_connection(layer->mask.scheme);
        K_l = per_input ? d : h * d;
        s->masks[l] = malloc(h * d * sizeof *s->masks[l]);
        s->weights[l] = malloc((K_l + 1) * sizeof *s->weights[l]);
        if (s->masks[l] == NULL || s->weights[l] == NULL)
            PND_ERROR(PND_ENOMEM, "out of memory for the enumeration masks");
        for (size_t a = 0; a < h * d; a++)
            s->masks[l][a] = keep;
        for (size_t n = 0; n <= K_l; n++)
            s->weights[l][n] = pow(p, (double) n)
                               * pow(1.0 - p, (double) (K_l - n));
        s->n_layer_vars[l] = K_l;
        for (size_t a = 0; a < K_l; a++, j++) {
            s->vars[j].layer = l;
            s->vars[j].per_input = per_input;
            s->vars[j].u = per_input ? 0 : a / d;
            s->vars[j].i = per_input ? a : a % d;
        }
    }
    s->n_vars = j;
    return PND_OK;
}

/* Flip variable j between kept (1 / (1 - p)) and dropped (0). */
static void
flip(const struct pnd_net *net, struct enum_state *s, size_t j)
{
    const struct mask_variable *v = &s->vars[j];
    const struct pnd_layer *layer = &net->layers[v->layer];
    double *M = s->masks[v->layer], keep = 1.0 / (1.0 - layer->mask.p);
    size_t d = layer->d_in, first = v->per_input ? 0 : v->u;
    size_t end = v->per_input ? layer->d_out : v->u + 1;
    bool dropped = M[first * d + v->i] == 0.0;

    for (size_t u = first; u < end; u++)
        M[u * d + v->i] = dropped ? keep : 0.0;
    if (dropped)
        s->n_dropped[v->layer]--;
    else
        s->n_dropped[v->layer]++;
}

static double
mask_weight(const struct pnd_net *net, const struct enum_state *s)
{
    double w = 1.0;

    for (size_t l = 0; l < net->n_layers; l++)
        if (s->weights[l] != NULL)
            w *= s->weights[l][s->n_dropped[l]];
    return w;
}

static int
enumerate(const struct pnd_net *net, const struct pnd_data *data, size_t k,
          struct enum_state *s, struct pnd_net_workspace *ws,
          struct pnd_moments *result)
{
    struct pnd_an_pairwise sum_w, sum_1, sum_2;
    uint64_t count = (uint64_t) 1 << s->n_vars;
    double clean, loss, total_w, m1, m2;

    PND_TRY(pnd_net_loss_with_masks(net, data, k, NULL, ws, &clean));
    pnd_an_pairwise_init(&sum_w);
    pnd_an_pairwise_init(&sum_1);
    pnd_an_pairwise_init(&sum_2);
    for (uint64_t t = 0; t < count; t++) {
        double w, dl;

        /* Gray code: step t flips the variable of its lowest set bit */
        if (t > 0)
            flip(net, s, (size_t) __builtin_ctzll(t));
        w = mask_weight(net, s);
        PND_TRY(pnd_net_loss_with_masks(net, data, k,
                                        (const double *const *) s->masks, ws,
                                        &loss));
        if (!isfinite(loss))
            PND_ERROR(PND_ENUMERIC,
                      "the loss of sample %zu under mask %llu is not finite",
                      k, (unsigned long long) (t ^ (t >> 1)));
        dl = loss - clean;
        pnd_an_pairwise_add(&sum_w, w);
        pnd_an_pairwise_add(&sum_1, w * dl);
        pnd_an_pairwise_add(&sum_2, w * dl * dl);
    }
    total_w = pnd_an_pairwise_total(&sum_w);
    m1 = pnd_an_pairwise_total(&sum_1) / total_w;
    m2 = pnd_an_pairwise_total(&sum_2) / total_w;
    result->mean = clean + m1;
    result->var = m2 - m1 * m1;
    if (result->var < 0.0)
        result->var = 0.0;   /* only rounding can make it negative */
    return PND_OK;
}

int
pnd_enumerate_sample_moments(const struct pnd_net *net,
                             const struct pnd_data *data, size_t k,
                             struct pnd_moments *result)
{
    struct enum_state s = { 0 };
    struct pnd_net_workspace *ws = NULL;
    size_t n_vars;
    int status;

    PND_TRY(pnd_an_check_net(net, data, k, true));
    if (result == NULL)
        PND_ERROR(PND_EINVAL, "result is NULL");
    PND_TRY(count_variables(net, &n_vars));

    status = setup(net, &s);
    if (status != PND_OK)
        goto done;
    ws = pnd_net_workspace_alloc(net);
    if (ws == NULL) {
        status = pnd_error_status() != PND_OK ? pnd_error_status()
                                              : PND_ENOMEM;
        goto done;
    }
    status = enumerate(net, data, k, &s, ws, result);

done:
    pnd_net_workspace_free(ws);
    enum_state_free(&s);
    return status;
}
