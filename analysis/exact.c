/* Exact mean and variance of the loss of the quadratic models (one masked
 * layer, identity activation, optional linear readout, squared loss) over
 * the mask distribution, for one sample and for a mini-batch with a fresh
 * or a shared mask. Derivation: docs/theory.md, "Quadratic losses".
 *
 * The loss is a quadratic form in the centred noise eta,
 *   l = c0 + q . eta + 1/2 eta^T Q eta,
 * with i.i.d. eta of variance s2, third and fourth central moments mu3, mu4:
 *   E[l]   = c0 + 1/2 s2 tr(Q)
 *   Var[l] = s2 |q|^2 + mu3 sum_j q_j Q_jj
 *            + 1/4 [ (mu4 - 3 s2^2) sum_j Q_jj^2 + 2 s2^2 tr(Q^2) ].
 * The forms are written through M = x x^T (d, d) and N = g x^T (h, d), with
 * g = V^T r the gradient at the clean output, so that the mini-batch with a
 * shared mask uses the same code on the averages of M, N and c0:
 *   per-input noise:      q_i = sum_u W_ui N_ui,   Q_ij = C_ij M_ij,
 *                         C = W^T B W;
 *   per-connection noise: q_ui = W_ui N_ui,
 *                         Q_(ui),(vj) = W_ui W_vj B_uv M_ij,
 * where B = V^T V (the identity without a readout).
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnd/analysis.h"
#include "pnd/error.h"
#include "analysis/internal.h"

/* The six scalars of a quadratic form that its moments need. */
struct quad_summary {
    double c0;       /* constant term */
    double q2;       /* |q|^2 */
    double qQ;       /* sum_j q_j Q_jj */
    double trQ;      /* tr(Q) */
    double Qdiag2;   /* sum_j Q_jj^2 */
    double trQ2;     /* tr(Q^2) */
};

struct exact_work {
    size_t h, d;
    double *B;       /* (h, h) V^T V */
    double *C;       /* (d, d) W^T B W, per-input schemes */
    double *M;       /* (d, d) */
    double *N;       /* (h, d) */
    double *T1;      /* (h, d) scratch */
    double *mu;      /* (h) */
    double *r;       /* (c) */
    double *g;       /* (h) */
};

static void
exact_work_free(struct exact_work *w)
{
    if (w == NULL)
        return;
    free(w->B);
    free(w->C);
    free(w->M);
    free(w->N);
    free(w->T1);
    free(w->mu);
    free(w->r);
    free(w->g);
    free(w);
}

static struct exact_work *
exact_work_alloc(const struct pnd_net *net)
{
    const struct pnd_layer *layer = &net->layers[0];
    size_t h = layer->d_out, d = layer->d_in, c = net->n_out;
    struct exact_work *w = calloc(1, sizeof *w);

    if (w == NULL)
        goto fail;
    w->h = h;
    w->d = d;
    w->B = calloc(h * h, sizeof *w->B);
    w->C = calloc(d * d, sizeof *w->C);
    w->M = calloc(d * d, sizeof *w->M);
    w->N = calloc(h * d, sizeof *w->N);
    w->T1 = calloc(h * d, sizeof *w->T1);
    w->mu = calloc(h, sizeof *w->mu);
    w->r = calloc(c, sizeof *w->r);
    w->g = calloc(h, sizeof *w->g);
    if (!w->B || !w->C || !w->M || !w->N || !w->T1 || !w->mu || !w->r
        || !w->g)
        goto fail;
    return w;

fail:
    exact_work_free(w);
    return NULL;
}

/* PND_EINVAL unless net is one of the quadratic models. */
static int
check_quadratic(const struct pnd_net *net, const char *function)
{
    if (net->n_layers != 1)
        PND_ERROR(PND_EINVAL,
                  "%s needs one masked layer (the linear or readout model), "
                  "not %zu layers", function, net->n_layers);
    if (net->layers[0].act != PND_ACT_IDENTITY)
        PND_ERROR(PND_EINVAL,
                  "%s needs the identity activation (the linear or readout "
                  "model), not %s", function,
                  pnd_activation_name(net->layers[0].act));
    if (net->loss != PND_LOSS_SQUARED)
        PND_ERROR(PND_EINVAL,
                  "%s needs the squared loss (the linear or readout model); "
                  "use pnd_expand_sample or enumeration for other losses",
                  function);
    return PND_OK;
}

/* B = V^T V, or the identity; C = W^T B W. */
static void
prepare_forms(const struct pnd_net *net, struct exact_work *w)
{
    const double *W = net->layers[0].W;
    size_t h = w->h, d = w->d, c = net->n_out;

    for (size_t u = 0; u < h; u++)
        for (size_t v = 0; v < h; v++) {
            double sum = 0.0;

            if (net->V == NULL) {
                sum = u == v ? 1.0 : 0.0;
            } else {
                for (size_t a = 0; a < c; a++)
                    sum += net->V[a * h + u] * net->V[a * h + v];
            }
            w->B[u * h + v] = sum;
        }
    /* T1 = B W (h, d), then C = W^T T1 */
    for (size_t u = 0; u < h; u++)
        for (size_t i = 0; i < d; i++) {
            double sum = 0.0;

            for (size_t v = 0; v < h; v++)
                sum += w->B[u * h + v] * W[v * d + i];
            w->T1[u * d + i] = sum;
        }
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            double sum = 0.0;

            for (size_t u = 0; u < h; u++)
                sum += W[u * d + i] * w->T1[u * d + j];
            w->C[i * d + j] = sum;
        }
}

/* Clean residual of sample k: w->r = V mu + e - t (or mu - t), w->g =
 * V^T r; returns 1/2 |r|^2. */
static double
sample_residual(const struct pnd_net *net, const struct pnd_data *data,
                size_t k, struct exact_work *w)
{
    const struct pnd_layer *layer = &net->layers[0];
    const double *x = data->X + k * data->d, *t = data->T + k * net->n_out;
    size_t h = w->h, d = w->d, c = net->n_out;
    double half_r2 = 0.0;

    for (size_t u = 0; u < h; u++) {
        double sum = layer->b[u];

        for (size_t i = 0; i < d; i++)
            sum += layer->W[u * d + i] * x[i];
        w->mu[u] = sum;
    }
    for (size_t a = 0; a < c; a++) {
        double y;

        if (net->V != NULL) {
            y = net->e != NULL ? net->e[a] : 0.0;
            for (size_t u = 0; u < h; u++)
                y += net->V[a * h + u] * w->mu[u];
        } else {
            y = w->mu[a];       /* the linear model: c = h */
        }
        w->r[a] = y - t[a];
        half_r2 += 0.5 * w->r[a] * w->r[a];
    }
    for (size_t u = 0; u < h; u++) {
        double sum = 0.0;

        if (net->V == NULL) {
            sum = w->r[u];
        } else {
            for (size_t a = 0; a < c; a++)
                sum += net->V[a * h + u] * w->r[a];
        }
        w->g[u] = sum;
    }
    return half_r2;
}

/* Add weight * (x x^T) to M and weight * (g x^T) to N for sample k. */
static void
accumulate_forms(const struct pnd_data *data, size_t k, double weight,
                 struct exact_work *w)
{
    const double *x = data->X + k * data->d;
    size_t h = w->h, d = w->d;

    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++)
            w->M[i * d + j] += weight * x[i] * x[j];
    for (size_t u = 0; u < h; u++)
        for (size_t i = 0; i < d; i++)
            w->N[u * d + i] += weight * w->g[u] * x[i];
}

/* tr(Q^2) of the per-connection form for a general M:
 * sum_uv B_uv^2 (W2 M2 W2^T)_uv with W2 = W o W and M2 = M o M. This is
 * the reference for the one-sample shortcut in summarize. */
static double
per_connection_trQ2(const double *W, struct exact_work *w)
{
    const double *B = w->B, *M = w->M;
    size_t h = w->h, d = w->d;
    double trQ2 = 0.0;

    /* T1 = W2 M2 (h, d) first */
    for (size_t u = 0; u < h; u++)
        for (size_t j = 0; j < d; j++) {
            double sum = 0.0;

            for (size_t i = 0; i < d; i++) {
                double Wui = W[u * d + i], Mij = M[i * d + j];

                sum += Wui * Wui * Mij * Mij;
            }
            w->T1[u * d + j] = sum;
        }
    for (size_t u = 0; u < h; u++)
        for (size_t v = 0; v < h; v++) {
            double P = 0.0, Buv = B[u * h + v];

            for (size_t j = 0; j < d; j++)
                P += w->T1[u * d + j] * W[v * d + j] * W[v * d + j];
            trQ2 += Buv * Buv * P;
        }
    return trQ2;
}

/* The summary of the quadratic form defined by w->M, w->N and c0. When x
 * is not NULL, M = x x^T and the per-connection tr(Q^2) takes the
 * shortcut (W2 M2 W2^T)_uv = n2_u n2_v with n2_u = sum_i W_ui^2 x_i^2. */
static void
summarize(const struct pnd_net *net, bool per_connection, double c0,
          const double *x, struct exact_work *w, struct quad_summary *s)
{
    const double *W = net->layers[0].W, *B = w->B, *M = w->M, *N = w->N;
    size_t h = w->h, d = w->d;

    memset(s, 0, sizeof *s);
    s->c0 = c0;
    if (per_connection) {
        for (size_t u = 0; u < h; u++)
            for (size_t i = 0; i < d; i++) {
                double Wui = W[u * d + i], W2 = Wui * Wui;
                double q = Wui * N[u * d + i];
                double Qjj = W2 * B[u * h + u] * M[i * d + i];

                s->q2 += q * q;
                s->qQ += q * Qjj;
                s->trQ += Qjj;
                s->Qdiag2 += Qjj * Qjj;
            }
        if (x == NULL) {
            s->trQ2 = per_connection_trQ2(W, w);
            return;
        }
        /* n2 (h) in the first row of T1 */
        for (size_t u = 0; u < h; u++) {
            double n2 = 0.0;

            for (size_t i = 0; i < d; i++)
                n2 += W[u * d + i] * W[u * d + i] * x[i] * x[i];
            w->T1[u] = n2;
        }
        for (size_t u = 0; u < h; u++)
            for (size_t v = 0; v < h; v++) {
                double Buv = B[u * h + v];

                s->trQ2 += Buv * Buv * w->T1[u] * w->T1[v];
            }
        return;
    }

    for (size_t i = 0; i < d; i++) {
        double q = 0.0, Qii = w->C[i * d + i] * M[i * d + i];

        for (size_t u = 0; u < h; u++)
            q += W[u * d + i] * N[u * d + i];
        s->q2 += q * q;
        s->qQ += q * Qii;
        s->trQ += Qii;
        s->Qdiag2 += Qii * Qii;
        for (size_t j = 0; j < d; j++) {
            double Qij = w->C[i * d + j] * M[i * d + j];

            s->trQ2 += Qij * Qij;
        }
    }
}

static int
summary_moments(const struct quad_summary *s,
                const struct pnd_noise_moments *nm, struct pnd_moments *m)
{
    double s2 = nm->s2, quartic, scale;

    m->mean = s->c0 + 0.5 * s2 * s->trQ;
    quartic = (nm->mu4 - 3.0 * s2 * s2) * s->Qdiag2
              + 2.0 * s2 * s2 * s->trQ2;
    m->var = s2 * s->q2 + nm->mu3 * s->qQ + 0.25 * quartic;
    if (!isfinite(m->mean) || !isfinite(m->var))
        PND_ERROR(PND_ENUMERIC,
                  "the exact loss moments are not finite (mean %g, variance "
                  "%g)", m->mean, m->var);
    /* The variance is a sum that can cancel; a result below zero by no more
     * than rounding is zero. */
    scale = s2 * s->q2 + fabs(nm->mu3 * s->qQ) + 0.25 * fabs(quartic);
    if (m->var < 0.0) {
        if (m->var < -1e-12 * scale)
            PND_ERROR(PND_ENUMERIC,
                      "the exact loss variance is negative (%g)", m->var);
        m->var = 0.0;
    }
    return PND_OK;
}

/* Moments of sample k with the forms of that sample alone. */
static int
sample_moments(const struct pnd_net *net, const struct pnd_data *data,
               size_t k, const struct pnd_noise_moments *nm,
               bool per_connection, struct exact_work *w,
               struct pnd_moments *result)
{
    struct quad_summary s;
    double c0 = sample_residual(net, data, k, w);

    memset(w->M, 0, w->d * w->d * sizeof *w->M);
    memset(w->N, 0, w->h * w->d * sizeof *w->N);
    accumulate_forms(data, k, 1.0, w);
    summarize(net, per_connection, c0, data->X + k * data->d, w, &s);
    return summary_moments(&s, nm, result);
}

int
pnd_exact_sample_moments(const struct pnd_net *net,
                         const struct pnd_data *data, size_t k,
                         struct pnd_moments *result)
{
    struct exact_work *w;
    struct pnd_noise_moments nm;
    bool per_connection;
    int status;

    PND_TRY(pnd_an_check_net(net, data, k, true));
    PND_TRY(check_quadratic(net, "pnd_exact_sample_moments"));
    if (result == NULL)
        PND_ERROR(PND_EINVAL, "result is NULL");

    w = exact_work_alloc(net);
    if (w == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for the exact moments");
    nm = pnd_an_layer_noise(&net->layers[0]);
    per_connection = pnd_scheme_per_connection(net->layers[0].mask.scheme);
    prepare_forms(net, w);
    status = sample_moments(net, data, k, &nm, per_connection, w, result);
    exact_work_free(w);
    return status;
}

int
pnd_exact_batch_moments(const struct pnd_net *net,
                        const struct pnd_data *data,
                        struct pnd_moments *per_sample,
                        struct pnd_moments *shared)
{
    struct exact_work *w = NULL;
    struct pnd_noise_moments nm;
    struct quad_summary s;
    struct pnd_an_pairwise mean_sum, var_sum;
    bool per_connection;
    double n, c0 = 0.0;
    int status = PND_OK;

    PND_TRY(pnd_an_check_net(net, data, 0, false));
    PND_TRY(check_quadratic(net, "pnd_exact_batch_moments"));
    if (data->n == 0)
        PND_ERROR(PND_EINVAL, "the mini-batch is empty (n = 0)");
    if (per_sample == NULL || shared == NULL)
        PND_ERROR(PND_EINVAL, "per_sample or shared is NULL");

    w = exact_work_alloc(net);
    if (w == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for the exact moments");
    nm = pnd_an_layer_noise(&net->layers[0]);
    per_connection = pnd_scheme_per_connection(net->layers[0].mask.scheme);
    prepare_forms(net, w);
    n = (double) data->n;

    /* fresh mask per sample: the l_k are independent */
    pnd_an_pairwise_init(&mean_sum);
    pnd_an_pairwise_init(&var_sum);
    for (size_t k = 0; k < data->n; k++) {
        struct pnd_moments m;

        status = sample_moments(net, data, k, &nm, per_connection, w, &m);
        if (status != PND_OK)
            goto done;
        pnd_an_pairwise_add(&mean_sum, m.mean);
        pnd_an_pairwise_add(&var_sum, m.var);
    }
    per_sample->mean = pnd_an_pairwise_total(&mean_sum) / n;
    per_sample->var = pnd_an_pairwise_total(&var_sum) / (n * n);

    /* one mask for the batch: the form of L averages those of the l_k */
    memset(w->M, 0, w->d * w->d * sizeof *w->M);
    memset(w->N, 0, w->h * w->d * sizeof *w->N);
    for (size_t k = 0; k < data->n; k++) {
        c0 += sample_residual(net, data, k, w) / n;
        accumulate_forms(data, k, 1.0 / n, w);
    }
    summarize(net, per_connection, c0, NULL, w, &s);
    status = summary_moments(&s, &nm, shared);

done:
    exact_work_free(w);
    return status;
}
