/* E[l] for Gaussian masks on one layer by Gauss-Hermite quadrature.
 *
 * With Gaussian mask values the layer's pre-activations are exactly
 * z = mu + eps, eps ~ N(0, S), S = s2 A A^T restricted to its diagonal for
 * the per-connection scheme (a_ui = W_ui h_i, h the clean input). Writing
 * eps = L xi with xi ~ N(0, I_m),
 *   E[l] = (2 pi)^(-m/2) int l(mu + L xi) exp(-|xi|^2 / 2) dxi
 *        ~ sum over the tensor grid of prod_j w_j l(mu + L x),
 * with the n-node rule for the weight exp(-x^2 / 2) from GSL
 * (gsl_integration_fixed_hermite with a = 0, b = 1/2). Its weights are
 * divided by their sum, sqrt(2 pi). The rule is exact for polynomials of
 * degree up to 2n - 1 in each coordinate. L is:
 *   per-connection: diag(sqrt(S_uu)), m = h;
 *   gaussian-dropout: sqrt(s2) A itself (m = d) when d <= h, else the
 *   Cholesky factor of S (m = h).
 * When S is diagonal and the loss separates over the nodes (the masked layer
 * is the last one, no readout, squared loss), E[l] is a sum of h
 * one-dimensional integrals.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_integration.h>

#include "pnd/analysis.h"
#include "pnd/error.h"
#include "analysis/internal.h"

/* Largest tensor grid evaluated, in loss evaluations. */
#define PND_QUADRATURE_MAX_POINTS ((size_t) 1 << 26)

struct quad_work {
    size_t m;            /* dimension of xi */
    double *Lf;          /* (h, m) factor: eps = Lf xi */
    double *mu;          /* (h) clean pre-activations */
    double *z;           /* (h) */
    double *nodes;       /* (n) */
    double *weights;     /* (n), sum 1 */
    size_t *index;       /* (m) odometer over the grid */
};

static void
quad_work_free(struct quad_work *q)
{
    free(q->Lf);
    free(q->mu);
    free(q->z);
    free(q->nodes);
    free(q->weights);
    free(q->index);
}

/* The index of the one masked layer, or n_layers when none is masked. */
static int
find_gaussian_layer(const struct pnd_net *net, size_t *layer)
{
    *layer = net->n_layers;
    for (size_t l = 0; l < net->n_layers; l++) {
        if (!pnd_an_layer_masked(&net->layers[l]))
            continue;
        if (!pnd_scheme_gaussian(net->layers[l].mask.scheme))
            PND_ERROR(PND_EINVAL,
                      "quadrature needs a Gaussian scheme but layer %zu uses "
                      "%s; use pnd_enumerate_sample_moments for Bernoulli "
                      "masks", l, pnd_scheme_name(net->layers[l].mask.scheme));
        if (*layer != net->n_layers)
            PND_ERROR(PND_EINVAL,
                      "quadrature supports one masked layer, but layers %zu "
                      "and %zu are both masked", *layer, l);
        *layer = l;
    }
    return PND_OK;
}

/* Gauss-Hermite nodes and weights (normalised to sum 1) for N(0, 1). */
static int
hermite_rule(size_t n, double *nodes, double *weights)
{
    gsl_integration_fixed_workspace *rule;
    const double *x, *w;
    double sum = 0.0;

    /* weight |x - a|^alpha exp(-b (x - a)^2) with a = 0, b = 1/2, alpha = 0 */
    rule = gsl_integration_fixed_alloc(gsl_integration_fixed_hermite, n, 0.0,
                                       0.5, 0.0, 0.0);
    if (rule == NULL)
        PND_ERROR(PND_ENOMEM, "GSL could not build the %zu-node Gauss-Hermite "
                  "rule", n);
    x = gsl_integration_fixed_nodes(rule);
    w = gsl_integration_fixed_weights(rule);
    for (size_t j = 0; j < n; j++)
        sum += w[j];
    for (size_t j = 0; j < n; j++) {
        nodes[j] = x[j];
        weights[j] = w[j] / sum;
    }
    gsl_integration_fixed_free(rule);
    return PND_OK;
}

/* Lower Cholesky factor of the (m, m) matrix S in place; false unless S is
 * positive definite. */
static bool
cholesky(double *S, size_t m)
{
    for (size_t j = 0; j < m; j++) {
        double diag = S[j * m + j];

        for (size_t k = 0; k < j; k++)
            diag -= S[j * m + k] * S[j * m + k];
        if (!(diag > 0.0))
            return false;
        diag = sqrt(diag);
        S[j * m + j] = diag;
        for (size_t i = j + 1; i < m; i++) {
            double sum = S[i * m + j];

            for (size_t k = 0; k < j; k++)
                sum -= S[i * m + k] * S[j * m + k];
            S[i * m + j] = sum / diag;
        }
        for (size_t k = j + 1; k < m; k++)
            S[j * m + k] = 0.0;
    }
    return true;
}

/* The factor Lf (h, m) of S for layer l at the clean input x. */
static int
noise_factor(const struct pnd_layer *layer, const double *x,
             struct quad_work *q)
{
    size_t h = layer->d_out, d = layer->d_in;
    double s2 = pnd_an_layer_noise(layer).s2, sd = sqrt(s2);
    const double *W = layer->W;

    if (pnd_scheme_per_connection(layer->mask.scheme)) {
        q->m = h;
        q->Lf = calloc(h * h, sizeof *q->Lf);
        if (q->Lf == NULL)
            PND_ERROR(PND_ENOMEM, "out of memory for the quadrature");
        for (size_t u = 0; u < h; u++) {
            double n2 = 0.0;

            for (size_t i = 0; i < d; i++)
                n2 += W[u * d + i] * W[u * d + i] * x[i] * x[i];
            q->Lf[u * h + u] = sqrt(s2 * n2);
        }
        return PND_OK;
    }

    if (d <= h) {
        q->m = d;
        q->Lf = malloc(h * d * sizeof *q->Lf);
        if (q->Lf == NULL)
            PND_ERROR(PND_ENOMEM, "out of memory for the quadrature");
        for (size_t u = 0; u < h; u++)
            for (size_t i = 0; i < d; i++)
                q->Lf[u * d + i] = sd * W[u * d + i] * x[i];
        return PND_OK;
    }

    q->m = h;
    q->Lf = malloc(h * h * sizeof *q->Lf);
    if (q->Lf == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for the quadrature");
    for (size_t u = 0; u < h; u++)
        for (size_t v = 0; v < h; v++) {
            double sum = 0.0;

            for (size_t i = 0; i < d; i++)
                sum += W[u * d + i] * W[v * d + i] * x[i] * x[i];
            q->Lf[u * h + v] = s2 * sum;
        }
    if (!cholesky(q->Lf, h))
        PND_ERROR(PND_ENUMERIC,
                  "the pre-activation covariance of the gaussian-dropout "
                  "layer is singular (rank below %zu), so it has no "
                  "Cholesky factor; use a layer with at least as many "
                  "nonzero inputs as nodes", h);
    return PND_OK;
}

/* Sum of h one-dimensional integrals: last layer, no readout, squared loss,
 * diagonal covariance. */
static double
separable_integral(const struct pnd_net *net, const struct pnd_data *data,
                   size_t k, size_t l, size_t n, const struct quad_work *q)
{
    const struct pnd_layer *layer = &net->layers[l];
    const double *t = data->T + k * data->c;
    size_t h = layer->d_out;
    double total = 0.0;

    for (size_t u = 0; u < h; u++) {
        double sigma = q->Lf[u * h + u], sum = 0.0;

        for (size_t j = 0; j < n; j++) {
            double f0, f1, f2, f3, r;

            pnd_an_activation_derivs(layer->act,
                                     q->mu[u] + sigma * q->nodes[j], &f0, &f1,
                                     &f2, &f3);
            r = f0 - t[u];
            sum += q->weights[j] * 0.5 * r * r;
        }
        total += sum;
    }
    return total;
}

static int
tensor_integral(const struct pnd_net *net, const struct pnd_data *data,
                size_t k, size_t l, size_t n, struct quad_work *q,
                struct pnd_an_work *w, double *result)
{
    size_t h = net->layers[l].d_out, m = q->m, total = 1;
    struct pnd_an_pairwise sum;

    for (size_t j = 0; j < m; j++) {
        if (total > PND_QUADRATURE_MAX_POINTS / n)
            PND_ERROR(PND_EINVAL,
                      "a tensor grid of %zu^%zu points is too large (at most "
                      "%zu); use fewer nodes or a narrower layer", n, m,
                      PND_QUADRATURE_MAX_POINTS);
        total *= n;
    }

    pnd_an_pairwise_init(&sum);
    memset(q->index, 0, m * sizeof *q->index);
    for (size_t point = 0; point < total; point++) {
        double weight = 1.0, loss;

        for (size_t u = 0; u < h; u++) {
            double eps = 0.0;

            for (size_t j = 0; j < m; j++)
                eps += q->Lf[u * m + j] * q->nodes[q->index[j]];
            q->z[u] = q->mu[u] + eps;
        }
        for (size_t j = 0; j < m; j++)
            weight *= q->weights[q->index[j]];
        PND_TRY(pnd_an_forward_from(net, data, k, l, q->z, w, &loss));
        pnd_an_pairwise_add(&sum, weight * loss);

        /* odometer: next multi-index */
        for (size_t j = 0; j < m; j++) {
            if (++q->index[j] < n)
                break;
            q->index[j] = 0;
        }
    }
    *result = pnd_an_pairwise_total(&sum);
    return PND_OK;
}

static int
integrate(const struct pnd_net *net, const struct pnd_data *data, size_t k,
          size_t l, size_t n, struct quad_work *q, struct pnd_an_work *w,
          double *result)
{
    const struct pnd_layer *layer = &net->layers[l];
    const double *x;
    double loss;
    size_t h = layer->d_out;

    PND_TRY(pnd_an_forward_clean(net, data, k, w, &loss));
    x = l == 0 ? data->X + k * data->d : w->h + (l - 1) * w->width;
    memcpy(q->mu, w->z + l * w->width, h * sizeof *q->mu);
    PND_TRY(noise_factor(layer, x, q));
    PND_TRY(hermite_rule(n, q->nodes, q->weights));
    q->index = calloc(q->m, sizeof *q->index);
    if (q->index == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for the quadrature");

    if (pnd_scheme_per_connection(layer->mask.scheme)
        && l + 1 == net->n_layers && net->V == NULL
        && net->loss == PND_LOSS_SQUARED)
        *result = separable_integral(net, data, k, l, n, q);
    else
        PND_TRY(tensor_integral(net, data, k, l, n, q, w, result));
    if (!isfinite(*result))
        PND_ERROR(PND_ENUMERIC,
                  "the quadrature of the loss of sample %zu is not finite", k);
    return PND_OK;
}

int
pnd_quadrature_expected_loss_err(const struct pnd_net *net,
                                 const struct pnd_data *data, size_t k,
                                 size_t n_nodes, double *result,
                                 double *abserr)
{
    double coarse;

    if (n_nodes < 2)
        PND_ERROR(PND_EINVAL,
                  "an error estimate needs at least 2 Gauss-Hermite nodes, "
                  "not %zu", n_nodes);
    if (abserr == NULL)
        PND_ERROR(PND_EINVAL, "abserr is NULL");
    PND_TRY(pnd_quadrature_expected_loss(net, data, k, n_nodes, result));
    PND_TRY(pnd_quadrature_expected_loss(net, data, k, n_nodes / 2, &coarse));
    *abserr = fabs(*result - coarse);
    return PND_OK;
}

int
pnd_quadrature_expected_loss(const struct pnd_net *net,
                             const struct pnd_data *data, size_t k,
                             size_t n_nodes, double *result)
{
    struct quad_work q = { 0 };
    struct pnd_an_work *w;
    size_t l, h;
    int status;

    PND_TRY(pnd_an_check_net(net, data, k, true));
    if (result == NULL)
        PND_ERROR(PND_EINVAL, "result is NULL");
    if (n_nodes == 0 || n_nodes > 200)
        PND_ERROR(PND_EINVAL,
                  "invalid number of Gauss-Hermite nodes %zu: use 1 to 200",
                  n_nodes);
    PND_TRY(find_gaussian_layer(net, &l));

    w = pnd_an_work_alloc(net);
    if (w == NULL)
        return PND_ENOMEM;
    if (l == net->n_layers) {
        /* nothing is masked: the loss is not random */
        status = pnd_an_forward_clean(net, data, k, w, result);
        pnd_an_work_free(w);
        return status;
    }
    h = net->layers[l].d_out;
    q.mu = malloc(h * sizeof *q.mu);
    q.z = malloc(h * sizeof *q.z);
    q.nodes = malloc(n_nodes * sizeof *q.nodes);
    q.weights = malloc(n_nodes * sizeof *q.weights);
    if (!q.mu || !q.z || !q.nodes || !q.weights)
        status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                               "out of memory for the quadrature");
    else
        status = integrate(net, data, k, l, n_nodes, &q, w, result);
    quad_work_free(&q);
    pnd_an_work_free(w);
    return status;
}
