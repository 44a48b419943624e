/* Monte Carlo estimators of the masked loss, the covariance of masked
 * pre-activations and the moments of the loss gradient.
 *
 * Accumulation: within a chunk of draws, Welford's update extended to the
 * third and fourth central moment sums; across chunks, the pairwise merge
 * formulas of T. F. Chan, G. H. Golub and R. J. LeVeque, "Updating formulae
 * and a pairwise algorithm for computing sample variances" (Stanford
 * CS-79-773, 1979) and P. Pebay, "Formulas for robust, one-pass parallel
 * computation of covariances and arbitrary-order statistical moments"
 * (Sandia SAND2008-6212, 2008).
 *
 * Parallel layout: the draws are cut into chunks of opt->chunk draws, whose
 * boundaries depend only on the chunk size. Chunks are processed in rounds
 * of ROUND_CHUNKS; OpenMP threads take chunks of a round in any order,
 * each into its own accumulator, and the round's accumulators are merged
 * into the total in chunk order. The result is therefore the same bytes
 * for any thread count.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "pnd/error.h"
#include "pnd/mask.h"
#include "pnd/net.h"
#include "pnd/sim.h"
#include "sim/net_private.h"

/* Chunks accumulated in parallel before their results are merged. */
#define ROUND_CHUNKS 32

/* Length of the error message kept per chunk for the calling thread. */
#define CHUNK_MESSAGE_MAX 512

/* --- moments ------------------------------------------------------------ */

void
pnd_moment_acc_init(struct pnd_moment_acc *acc)
{
    memset(acc, 0, sizeof *acc);
}

void
pnd_moment_acc_add(struct pnd_moment_acc *acc, double x)
{
    double n1 = (double) acc->n;
    double n = n1 + 1.0;
    double delta = x - acc->mean;
    double delta_n = delta / n;
    double delta_n2 = delta_n * delta_n;
    double term = delta * delta_n * n1;

    acc->n++;
    acc->mean += delta_n;
    acc->m4 += term * delta_n2 * (n * n - 3.0 * n + 3.0)
               + 6.0 * delta_n2 * acc->m2 - 4.0 * delta_n * acc->m3;
    acc->m3 += term * delta_n * (n - 2.0) - 3.0 * delta_n * acc->m2;
    acc->m2 += term;
}

void
pnd_moment_acc_merge(struct pnd_moment_acc *acc,
                     const struct pnd_moment_acc *other)
{
    double na = (double) acc->n, nb = (double) other->n, n = na + nb;
    double delta, delta2;
    struct pnd_moment_acc a = *acc;

    if (other->n == 0)
        return;
    if (acc->n == 0) {
        *acc = *other;
        return;
    }
    delta = other->mean - a.mean;
    delta2 = delta * delta;

    acc->n = a.n + other->n;
    acc->mean = a.mean + delta * nb / n;
    acc->m2 = a.m2 + other->m2 + delta2 * na * nb / n;
    acc->m3 = a.m3 + other->m3 + delta2 * delta * na * nb * (na - nb) / (n * n)
              + 3.0 * delta * (na * other->m2 - nb * a.m2) / n;
    acc->m4 = a.m4 + other->m4
              + delta2 * delta2 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n)
              + 6.0 * delta2 * (na * na * other->m2 + nb * nb * a.m2) / (n * n)
              + 4.0 * delta * (na * other->m3 - nb * a.m3) / n;
}

int
pnd_moment_acc_estimate(const struct pnd_moment_acc *acc,
                        struct pnd_estimate *result)
{
    double n = (double) acc->n, var, m4, var_of_var;

    if (acc->n < 2)
        PND_ERROR(PND_EINVAL, "a Monte Carlo estimate needs at least 2 draws, not %llu",
                  (unsigned long long) acc->n);
    var = acc->m2 / (n - 1.0);
    m4 = acc->m4 / n;
    /* Var of the sample variance: (mu4 - (n-3)/(n-1) sigma^4) / n. */
    var_of_var = (m4 - (n - 3.0) / (n - 1.0) * var * var) / n;

    result->n = acc->n;
    result->mean = acc->mean;
    result->var = var > 0.0 ? var : 0.0;
    result->se = sqrt(result->var / n);
    result->var_se = var_of_var > 0.0 ? sqrt(var_of_var) : 0.0;
    if (!isfinite(result->mean) || !isfinite(result->var)
        || !isfinite(result->var_se))
        PND_ERROR(PND_ENUMERIC, "the Monte Carlo moments are not finite (mean %g, variance %g)",
                  result->mean, result->var);
    return PND_OK;
}

double
pnd_sim_z(double mc, double exact, double se)
{
    return pnd_sim_z_scaled(mc, exact, se, 0.0);
}

double
pnd_sim_z_scaled(double mc, double exact, double se, double scale)
{
    double tolerance = PND_SIM_ROUNDING_TOL
                       * fmax(fmax(fabs(mc), fabs(exact)), fabs(scale));

    if (se > 0.0)
        return (mc - exact) / se;
    if (fabs(mc - exact) <= tolerance)
        return 0.0;
    return mc > exact ? HUGE_VAL : -HUGE_VAL;
}

void
pnd_mc_options_init(struct pnd_mc_options *opt)
{
    opt->draws = 100000;
    opt->seed = 1;
    opt->chunk = PND_MC_CHUNK_DEFAULT;
    opt->threads = 0;
}

struct pnd_data
pnd_data_sample_view(const struct pnd_data *data, size_t k)
{
    struct pnd_data view = *data;

    view.n = 1;
    view.X = data->X + k * data->d;
    view.T = data->T != NULL ? data->T + k * data->c : NULL;
    view.labels = data->labels != NULL ? data->labels + k : NULL;
    return view;
}

/* --- chunked parallel runs ---------------------------------------------- */

/* One estimator as a map over chunks of draws and an in-order reduction. */
struct chunk_job {
    void *ctx;
    size_t acc_size;                         /* bytes of one chunk accumulator */
    void (*acc_init)(void *ctx, void *acc);
    int (*run_chunk)(void *ctx, uint64_t first, uint64_t count, void *ws,
                     void *acc);
    void (*acc_merge)(void *ctx, void *total, const void *acc);
    void *(*ws_alloc)(void *ctx);
    void (*ws_free)(void *ws);
};

static int
thread_count(const struct pnd_mc_options *opt)
{
#ifdef _OPENMP
    return opt->threads > 0 ? opt->threads : omp_get_max_threads();
#else
    (void) opt;
    return 1;
#endif
}

static int
check_options(const struct pnd_mc_options *opt)
{
    if (opt->draws < 2)
        PND_ERROR(PND_EINVAL, "invalid number of draws %llu: use at least 2",
                  (unsigned long long) opt->draws);
    if (opt->threads < 0)
        PND_ERROR(PND_EINVAL, "invalid thread count %d: use 0 (OpenMP default) or more",
                  opt->threads);
    return PND_OK;
}

/* Run job over draws 0 .. opt->draws - 1 and merge into total, which the
 * caller has initialised. */
static int
run_chunks(const struct chunk_job *job, const struct pnd_mc_options *opt,
           void *total)
{
    uint64_t chunk = opt->chunk > 0 ? opt->chunk : PND_MC_CHUNK_DEFAULT;
    uint64_t n_chunks = (opt->draws + chunk - 1) / chunk;
    int n_threads = thread_count(opt);
    unsigned char *accs = malloc(ROUND_CHUNKS * job->acc_size);
    void **ws = calloc((size_t) n_threads, sizeof *ws);
    int status_of[ROUND_CHUNKS];
    char (*message_of)[CHUNK_MESSAGE_MAX] = malloc(ROUND_CHUNKS * sizeof *message_of);
    int status = PND_OK;

    if (accs == NULL || ws == NULL || message_of == NULL) {
        status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                               "out of memory for Monte Carlo accumulators");
        goto done;
    }
    for (int t = 0; t < n_threads; t++) {
        ws[t] = job->ws_alloc(job->ctx);
        if (ws[t] == NULL) {
            status = pnd_error_status() != PND_OK ? pnd_error_status() : PND_ENOMEM;
            goto done;
        }
    }

    for (uint64_t round = 0; round < n_chunks; round += ROUND_CHUNKS) {
        int in_round = (int) (n_chunks - round < ROUND_CHUNKS
                              ? n_chunks - round : ROUND_CHUNKS);

#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads)
        for (int c = 0; c < in_round; c++) {
            uint64_t first = (round + (uint64_t) c) * chunk;
            uint64_t count = opt->draws - first < chunk ? opt->draws - first : chunk;
            void *acc = accs + (size_t) c * job->acc_size;
            int thread = 0;

#ifdef _OPENMP
            thread = omp_get_thread_num();
#endif
            job->acc_init(job->ctx, acc);
            status_of[c] = job->run_chunk(job->ctx, first, count, ws[thread], acc);
            if (status_of[c] != PND_OK)
                snprintf(message_of[c], CHUNK_MESSAGE_MAX, "%s",
                         pnd_error_message());
        }

        for (int c = 0; c < in_round; c++) {
            if (status_of[c] != PND_OK) {
                /* The message was recorded on a worker thread; raise it
                 * again on this one. */
                status = pnd_error_set(status_of[c], __FILE__, __LINE__, "%s",
                                       message_of[c]);
                goto done;
            }
            job->acc_merge(job->ctx, total, accs + (size_t) c * job->acc_size);
        }
    }

done:
    if (ws != NULL)
        for (int t = 0; t < n_threads; t++)
            if (ws[t] != NULL)
                job->ws_free(ws[t]);
    free(ws);
    free(accs);
    free(message_of);
    return status;
}

/* --- network views for the batch modes ---------------------------------- */

/* A shallow copy of net whose layers draw their masks as mode requires. */
struct net_view {
    struct pnd_net net;
    struct pnd_layer layers[PND_NET_MAX_LAYERS];
    bool shared;           /* every sample uses key.sample = 0 */
};

static int
make_view(const struct pnd_net *net, enum pnd_batch_mode mode,
          struct net_view *view)
{
    if (net->n_layers > PND_NET_MAX_LAYERS)
        PND_ERROR(PND_EINVAL, "the network has %zu layers, more than %d",
                  net->n_layers, PND_NET_MAX_LAYERS);
    view->net = *net;
    memcpy(view->layers, net->layers, net->n_layers * sizeof *net->layers);
    view->net.layers = view->layers;
    view->shared = mode == PND_BATCH_SHARED;

    for (size_t l = 0; l < net->n_layers; l++) {
        struct pnd_mask_spec *spec = &view->layers[l].mask;

        /* One run's frozen mask is one dropconnect draw (see sim.h). */
        if (spec->scheme == PND_SCHEME_FIXED_MASK) {
            spec->scheme = PND_SCHEME_DROPCONNECT;
            spec->fixed_bits = NULL;
        }
        if (mode == PND_BATCH_PER_SAMPLE && spec->scheme == PND_SCHEME_DROPCONNECT)
            spec->scheme = PND_SCHEME_PERNODEDROP;
    }
    return PND_OK;
}

/* --- loss --------------------------------------------------------------- */

struct loss_ctx {
    const struct net_view *view;
    const struct pnd_data *data;
    uint64_t seed;
};

static void
loss_acc_init(void *ctx, void *acc)
{
    (void) ctx;
    pnd_moment_acc_init(acc);
}

static void
loss_acc_merge(void *ctx, void *total, const void *acc)
{
    (void) ctx;
    pnd_moment_acc_merge(total, acc);
}

/* The network and the data do not change during a run, so the first
 * layer may keep its products with the data (pnd_net_workspace_fix_input). */
static void *
loss_ws_alloc(void *ctx)
{
    const struct loss_ctx *lc = ctx;
    struct pnd_net_workspace *w = pnd_net_workspace_alloc(&lc->view->net);

    if (w != NULL
        && pnd_net_workspace_fix_input(w, &lc->view->net, lc->data) != PND_OK) {
        pnd_net_workspace_free(w);
        return NULL;
    }
    return w;
}

static void
loss_ws_free(void *ws)
{
    pnd_net_workspace_free(ws);
}

/* Returns the mask key of sample k in draw j. */
static struct pnd_mask_key
loss_key(const struct loss_ctx *lc, uint64_t j, size_t k)
{
    struct pnd_mask_key key = {
        .seed = lc->seed, .layer = 0, .step = j,
        .sample = lc->view->shared ? 0 : k
    };

    return key;
}

/* Computes the batch losses L_j = (1/n) sum_k l_k of the m <= PND_NET_DRAWS
 * draws j to j + m - 1. The first layer of a sample is computed for all m
 * draws at once (pnd_net_loss_sample_draws), and each L_j has the bits of
 * a loop over pnd_net_loss_sample. */
static int
draw_batch_losses(const struct loss_ctx *lc, uint64_t j, size_t m,
                  struct pnd_net_workspace *w, double *result /* (m) */)
{
    const struct pnd_data *data = lc->data;
    double sum[PND_NET_DRAWS] = { 0.0 };

    for (size_t k = 0; k < data->n; k++) {
        struct pnd_mask_key keys[PND_NET_DRAWS];
        double losses[PND_NET_DRAWS];

        for (size_t t = 0; t < m; t++)
            keys[t] = loss_key(lc, j + t, k);
        PND_TRY(pnd_net_loss_sample_draws(&lc->view->net, data, k, keys, m,
                                          w, losses));
        for (size_t t = 0; t < m; t++)
            sum[t] += losses[t];
    }
    for (size_t t = 0; t < m; t++)
        result[t] = sum[t] / (double) data->n;
    return PND_OK;
}

static int
loss_run_chunk(void *ctx, uint64_t first, uint64_t count, void *ws, void *acc)
{
    uint64_t end = first + count;

    for (uint64_t j = first; j < end; j += PND_NET_DRAWS) {
        size_t m = end - j < PND_NET_DRAWS ? (size_t) (end - j)
                                           : PND_NET_DRAWS;
        double loss[PND_NET_DRAWS];

        PND_TRY(draw_batch_losses(ctx, j, m, ws, loss));
        for (size_t t = 0; t < m; t++)
            pnd_moment_acc_add(acc, loss[t]);
    }
    return PND_OK;
}

int
pnd_mc_loss(const struct pnd_net *net, const struct pnd_data *data,
            enum pnd_batch_mode mode, const struct pnd_mc_options *opt,
            struct pnd_estimate *result)
{
    struct net_view view;
    struct loss_ctx lc;
    struct chunk_job job = {
        .ctx = &lc, .acc_size = sizeof(struct pnd_moment_acc),
        .acc_init = loss_acc_init, .run_chunk = loss_run_chunk,
        .acc_merge = loss_acc_merge, .ws_alloc = loss_ws_alloc,
        .ws_free = loss_ws_free
    };
    struct pnd_moment_acc total;

    PND_TRY(check_options(opt));
    PND_TRY(pnd_net_check_data(net, data));
    PND_TRY(make_view(net, mode, &view));

    lc.view = &view;
    lc.data = data;
    lc.seed = opt->seed;
    pnd_moment_acc_init(&total);
    PND_TRY(run_chunks(&job, opt, &total));
    return pnd_moment_acc_estimate(&total, result);
}

/* --- covariance of pre-activations ------------------------------------- */

struct pnd_cov_estimate *
pnd_cov_estimate_alloc(size_t h)
{
    struct pnd_cov_estimate *cov = calloc(1, sizeof *cov);

    if (cov == NULL)
        goto fail;
    cov->h = h;
    cov->S_mc = calloc(h * h, sizeof *cov->S_mc);
    cov->S_se = calloc(h * h, sizeof *cov->S_se);
    cov->S_exact = calloc(h * h, sizeof *cov->S_exact);
    if (cov->S_mc == NULL || cov->S_se == NULL || cov->S_exact == NULL)
        goto fail;
    return cov;

fail:
    pnd_cov_estimate_free(cov);
    pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                  "out of memory for a %zu x %zu covariance", h, h);
    return NULL;
}

void
pnd_cov_estimate_free(struct pnd_cov_estimate *cov)
{
    if (cov == NULL)
        return;
    free(cov->S_mc);
    free(cov->S_se);
    free(cov->S_exact);
    free(cov);
}

struct cov_ctx {
    const struct pnd_layer *layer;   /* view layer: fixed-mask drawn as dropconnect */
    size_t layer_index;
    size_t k;
    uint64_t seed;
    const double *input;             /* (d_in) clean input of the layer */
    const double *mu;                /* (d_out) clean pre-activation */
};

/* Chunk accumulator: scalar moments, then per-entry Welford sums of the
 * products e_u e_v, stored after the struct. */
struct cov_acc {
    struct pnd_moment_acc trace, offdiag;
    double *mean;                    /* (h, h) */
    double *m2;                      /* (h, h) */
};

struct cov_ws {
    struct pnd_mask_workspace *mask_w;
    double *z;                       /* (h) */
    double *e;                       /* (h) */
};

static void
cov_acc_init(void *ctx, void *acc_raw)
{
    const struct cov_ctx *cc = ctx;
    struct cov_acc *acc = acc_raw;
    size_t hh = cc->layer->d_out * cc->layer->d_out;

    pnd_moment_acc_init(&acc->trace);
    pnd_moment_acc_init(&acc->offdiag);
    acc->mean = (double *) (acc + 1);
    acc->m2 = acc->mean + hh;
    memset(acc->mean, 0, 2 * hh * sizeof *acc->mean);
}

static void
cov_acc_merge(void *ctx, void *total_raw, const void *acc_raw)
{
    const struct cov_ctx *cc = ctx;
    struct cov_acc *total = total_raw;
    const struct cov_acc *acc = acc_raw;
    size_t hh = cc->layer->d_out * cc->layer->d_out;
    double na = (double) total->trace.n, nb = (double) acc->trace.n;
    double n = na + nb;

    for (size_t e = 0; e < hh; e++) {
        double delta = acc->mean[e] - total->mean[e];

        total->m2[e] += acc->m2[e] + delta * delta * na * nb / n;
        total->mean[e] += delta * nb / n;
    }
    pnd_moment_acc_merge(&total->trace, &acc->trace);
    pnd_moment_acc_merge(&total->offdiag, &acc->offdiag);
}

static void *
cov_ws_alloc(void *ctx)
{
    const struct cov_ctx *cc = ctx;
    size_t h = cc->layer->d_out;
    struct cov_ws *ws = calloc(1, sizeof *ws);

    if (ws == NULL)
        goto fail;
    ws->mask_w = pnd_mask_workspace_alloc(h, cc->layer->d_in);
    ws->z = malloc(h * sizeof *ws->z);
    ws->e = malloc(h * sizeof *ws->e);
    if (ws->mask_w == NULL || ws->z == NULL || ws->e == NULL)
        goto fail;
    /* Every draw uses the same weights and clean input. */
    if (cc->layer->mask.scheme == PND_SCHEME_PERNODEDROP
        && cc->layer->mask.p > 0.0
        && pnd_mask_workspace_fix_product(ws->mask_w, h, cc->layer->d_in,
                                          cc->layer->W, 1, cc->input)
           != PND_OK)
        goto fail;
    return ws;

fail:
    if (ws != NULL) {
        pnd_mask_workspace_free(ws->mask_w);
        free(ws->z);
        free(ws->e);
        free(ws);
    }
    pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                  "out of memory for a covariance workspace");
    return NULL;
}

static void
cov_ws_free(void *ws_raw)
{
    struct cov_ws *ws = ws_raw;

    pnd_mask_workspace_free(ws->mask_w);
    free(ws->z);
    free(ws->e);
    free(ws);
}

static int
cov_run_chunk(void *ctx, uint64_t first, uint64_t count, void *ws_raw,
              void *acc_raw)
{
    const struct cov_ctx *cc = ctx;
    const struct pnd_layer *layer = cc->layer;
    struct cov_ws *ws = ws_raw;
    struct cov_acc *acc = acc_raw;
    size_t h = layer->d_out;

    for (uint64_t j = first; j < first + count; j++) {
        struct pnd_mask_key key = {
            .seed = cc->seed, .layer = cc->layer_index, .step = j,
            .sample = cc->k
        };
        double trace = 0.0, sum = 0.0, n;

        PND_TRY(pnd_layer_forward(&layer->mask, &key, 1, h, layer->d_in,
                                  layer->W, layer->b, cc->input, ws->z,
                                  ws->mask_w));
        for (size_t u = 0; u < h; u++) {
            ws->e[u] = ws->z[u] - cc->mu[u];
            trace += ws->e[u] * ws->e[u];
            sum += ws->e[u];
        }
        pnd_moment_acc_add(&acc->trace, trace);
        pnd_moment_acc_add(&acc->offdiag, sum * sum - trace);

        n = (double) acc->trace.n;
        for (size_t u = 0; u < h; u++) {
            for (size_t v = 0; v < h; v++) {
                double x = ws->e[u] * ws->e[v];
                double delta = x - acc->mean[u * h + v];

                acc->mean[u * h + v] += delta / n;
                acc->m2[u * h + v] += delta * (x - acc->mean[u * h + v]);
            }
        }
    }
    return PND_OK;
}

/* Exact S of THEORY section 3 for the layer's scheme at input x. */
static void
exact_preact_cov(const struct pnd_layer *layer, const double *x /* (d_in) */,
                 double *S /* (h, h) */)
{
    size_t h = layer->d_out, d = layer->d_in;
    struct pnd_noise_moments noise = pnd_noise_moments(layer->mask.scheme,
                                                       layer->mask.p);
    bool per_connection = pnd_scheme_per_connection(layer->mask.scheme);

    for (size_t u = 0; u < h; u++) {
        for (size_t v = 0; v < h; v++) {
            double sum = 0.0;

            if (u == v || !per_connection)
                for (size_t i = 0; i < d; i++)
                    sum += layer->W[u * d + i] * x[i] * layer->W[v * d + i] * x[i];
            S[u * h + v] = layer->mask.scheme == PND_SCHEME_NONE ? 0.0
                           : noise.s2 * sum;
        }
    }
}

int
pnd_mc_preact_cov(const struct pnd_net *net, const struct pnd_data *data,
                  size_t k, size_t layer, const struct pnd_mc_options *opt,
                  struct pnd_cov_estimate *cov)
{
    struct net_view view;
    struct cov_ctx cc;
    struct pnd_net_workspace *w = NULL;
    struct cov_acc *total = NULL;
    struct chunk_job job = {
        .ctx = &cc, .acc_init = cov_acc_init, .run_chunk = cov_run_chunk,
        .acc_merge = cov_acc_merge, .ws_alloc = cov_ws_alloc,
        .ws_free = cov_ws_free
    };
    size_t h;
    int status;

    PND_TRY(check_options(opt));
    PND_TRY(pnd_net_check_data(net, data));
    if (layer >= net->n_layers)
        PND_ERROR(PND_EINVAL, "layer %zu does not exist: the network has %zu",
                  layer + 1, net->n_layers);
    if (k >= data->n)
        PND_ERROR(PND_EINVAL, "sample %zu is outside the data set of %zu samples",
                  k, data->n);
    h = net->layers[layer].d_out;
    if (cov->h != h)
        PND_ERROR(PND_EINVAL, "the covariance holds %zu nodes but layer %zu has %zu",
                  cov->h, layer + 1, h);
    PND_TRY(make_view(net, PND_BATCH_OWN, &view));

    w = pnd_net_workspace_alloc(net);
    job.acc_size = sizeof(struct cov_acc) + 2 * h * h * sizeof(double);
    total = malloc(job.acc_size);
    if (w == NULL || total == NULL) {
        status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                               "out of memory for a covariance estimate");
        goto done;
    }
    cc.layer = &view.layers[layer];
    cc.layer_index = layer;
    cc.k = k;
    cc.seed = opt->seed;
    status = pnd_net_clean_layer(net, data, k, layer, w, &cc.input, &cc.mu);
    if (status != PND_OK)
        goto done;
    cov_acc_init(&cc, total);
    status = run_chunks(&job, opt, total);
    if (status != PND_OK)
        goto done;

    {
        double n = (double) total->trace.n;

        for (size_t e = 0; e < h * h; e++) {
            double var = total->m2[e] / (n - 1.0);

            cov->S_mc[e] = total->mean[e];
            cov->S_se[e] = var > 0.0 ? sqrt(var / n) : 0.0;
        }
    }
    exact_preact_cov(cc.layer, cc.input, cov->S_exact);
    cov->trace_exact = 0.0;
    cov->offdiag_exact = 0.0;
    cov->mu_norm2 = 0.0;
    for (size_t u = 0; u < h; u++)
        cov->mu_norm2 += cc.mu[u] * cc.mu[u];
    for (size_t u = 0; u < h; u++)
        for (size_t v = 0; v < h; v++) {
            if (u == v)
                cov->trace_exact += cov->S_exact[u * h + v];
            else
                cov->offdiag_exact += cov->S_exact[u * h + v];
        }
    status = pnd_moment_acc_estimate(&total->trace, &cov->trace);
    if (status == PND_OK)
        status = pnd_moment_acc_estimate(&total->offdiag, &cov->offdiag);

done:
    free(total);
    pnd_net_workspace_free(w);
    return status;
}

/* --- gradient moments --------------------------------------------------- */

struct pnd_grad_estimate *
pnd_grad_estimate_alloc(const struct pnd_net *net)
{
    struct pnd_grad_estimate *grad = calloc(1, sizeof *grad);

    if (grad == NULL)
        goto fail;
    grad->n_layers = net->n_layers;
    grad->mean = calloc(net->n_layers, sizeof *grad->mean);
    grad->mean_norm = calloc(net->n_layers, sizeof *grad->mean_norm);
    grad->tr_cov = calloc(net->n_layers, sizeof *grad->tr_cov);
    if (grad->mean == NULL || grad->mean_norm == NULL || grad->tr_cov == NULL)
        goto fail;
    for (size_t l = 0; l < net->n_layers; l++) {
        grad->mean[l] = calloc(net->layers[l].d_out * net->layers[l].d_in,
                               sizeof *grad->mean[l]);
        if (grad->mean[l] == NULL)
            goto fail;
    }
    return grad;

fail:
    pnd_grad_estimate_free(grad);
    pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                  "out of memory for a gradient estimate");
    return NULL;
}

void
pnd_grad_estimate_free(struct pnd_grad_estimate *grad)
{
    if (grad == NULL)
        return;
    if (grad->mean != NULL)
        for (size_t l = 0; l < grad->n_layers; l++)
            free(grad->mean[l]);
    free(grad->mean);
    free(grad->mean_norm);
    free(grad->tr_cov);
    free(grad);
}

struct grad_ctx {
    const struct net_view *view;
    const struct pnd_data *data;
    uint64_t seed;
    size_t n_weights;                /* sum over layers of d_out * d_in */
    size_t offset[PND_NET_MAX_LAYERS + 1];   /* layer l starts at offset[l] */
    const double *mean;              /* (n_weights) pass 2: mean gradient */
};

/* Pass 1 accumulator: number of draws and the sum of their gradients,
 * stored after the struct. Pass 2 accumulator: one pnd_moment_acc per
 * layer of |G_j - Gbar|^2. */
struct grad_sum_acc {
    uint64_t n;
    double *sum;                     /* (n_weights) */
};

struct grad_ws {
    struct pnd_net_workspace *w;
    double *G;                       /* (n_weights) gradient of one draw */
    double *dW[PND_NET_MAX_LAYERS];  /* views into G */
};

static void *
grad_ws_alloc(void *ctx)
{
    const struct grad_ctx *gc = ctx;
    struct grad_ws *ws = calloc(1, sizeof *ws);

    if (ws == NULL)
        goto fail;
    ws->w = pnd_net_workspace_alloc(&gc->view->net);
    ws->G = malloc(gc->n_weights * sizeof *ws->G);
    if (ws->w == NULL || ws->G == NULL)
        goto fail;
    /* The network and the data do not change during a run. */
    if (pnd_net_workspace_fix_input(ws->w, &gc->view->net, gc->data) != PND_OK)
        goto fail;
    for (size_t l = 0; l < gc->view->net.n_layers; l++)
        ws->dW[l] = ws->G + gc->offset[l];
    return ws;

fail:
    if (ws != NULL) {
        pnd_net_workspace_free(ws->w);
        free(ws->G);
        free(ws);
    }
    pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                  "out of memory for a gradient workspace");
    return NULL;
}

static void
grad_ws_free(void *ws_raw)
{
    struct grad_ws *ws = ws_raw;

    pnd_net_workspace_free(ws->w);
    free(ws->G);
    free(ws);
}

/* G = dL_j/dW of draw j for every layer, L_j the mini-batch loss. */
static int
draw_batch_grad(const struct grad_ctx *gc, uint64_t j, struct grad_ws *ws)
{
    const struct pnd_data *data = gc->data;
    double weight = 1.0 / (double) data->n;

    memset(ws->G, 0, gc->n_weights * sizeof *ws->G);
    for (size_t k = 0; k < data->n; k++) {
        struct pnd_mask_key key = {
            .seed = gc->seed, .layer = 0, .step = j,
            .sample = gc->view->shared ? 0 : k
        };
        double loss;

        PND_TRY(pnd_net_grad_sample(&gc->view->net, data, k, &key, weight,
                                    ws->w, &loss, ws->dW));
    }
    return PND_OK;
}

static void
grad_sum_init(void *ctx, void *acc_raw)
{
    const struct grad_ctx *gc = ctx;
    struct grad_sum_acc *acc = acc_raw;

    acc->n = 0;
    acc->sum = (double *) (acc + 1);
    memset(acc->sum, 0, gc->n_weights * sizeof *acc->sum);
}

static void
grad_sum_merge(void *ctx, void *total_raw, const void *acc_raw)
{
    const struct grad_ctx *gc = ctx;
    struct grad_sum_acc *total = total_raw;
    const struct grad_sum_acc *acc = acc_raw;

    total->n += acc->n;
    for (size_t e = 0; e < gc->n_weights; e++)
        total->sum[e] += acc->sum[e];
}

static int
grad_sum_chunk(void *ctx, uint64_t first, uint64_t count, void *ws_raw,
               void *acc_raw)
{
    struct grad_ws *ws = ws_raw;
    struct grad_sum_acc *acc = acc_raw;
    const struct grad_ctx *gc = ctx;

    for (uint64_t j = first; j < first + count; j++) {
        PND_TRY(draw_batch_grad(gc, j, ws));
        for (size_t e = 0; e < gc->n_weights; e++)
            acc->sum[e] += ws->G[e];
        acc->n++;
    }
    return PND_OK;
}

static void
grad_dev_init(void *ctx, void *acc_raw)
{
    const struct grad_ctx *gc = ctx;
    struct pnd_moment_acc *acc = acc_raw;

    for (size_t l = 0; l < gc->view->net.n_layers; l++)
        pnd_moment_acc_init(&acc[l]);
}

static void
grad_dev_merge(void *ctx, void *total_raw, const void *acc_raw)
{
    const struct grad_ctx *gc = ctx;
    struct pnd_moment_acc *total = total_raw;
    const struct pnd_moment_acc *acc = acc_raw;

    for (size_t l = 0; l < gc->view->net.n_layers; l++)
        pnd_moment_acc_merge(&total[l], &acc[l]);
}

static int
grad_dev_chunk(void *ctx, uint64_t first, uint64_t count, void *ws_raw,
               void *acc_raw)
{
    struct grad_ws *ws = ws_raw;
    struct pnd_moment_acc *acc = acc_raw;
    const struct grad_ctx *gc = ctx;

    for (uint64_t j = first; j < first + count; j++) {
        PND_TRY(draw_batch_grad(gc, j, ws));
        for (size_t l = 0; l < gc->view->net.n_layers; l++) {
            double dev = 0.0;

            for (size_t e = gc->offset[l]; e < gc->offset[l + 1]; e++) {
                double diff = ws->G[e] - gc->mean[e];

                dev += diff * diff;
            }
            pnd_moment_acc_add(&acc[l], dev);
        }
    }
    return PND_OK;
}

int
pnd_mc_grad(const struct pnd_net *net, const struct pnd_data *data,
            const struct pnd_mc_options *opt, struct pnd_grad_estimate *grad)
{
    struct net_view view;
    struct grad_ctx gc;
    struct grad_sum_acc *sums = NULL;
    struct pnd_moment_acc dev[PND_NET_MAX_LAYERS];
    double *mean = NULL;     /* (n_weights) */
    struct chunk_job job = {
        .ctx = &gc, .ws_alloc = grad_ws_alloc, .ws_free = grad_ws_free
    };
    double n, correction;
    int status;

    PND_TRY(check_options(opt));
    PND_TRY(pnd_net_check_data(net, data));
    if (grad->n_layers != net->n_layers)
        PND_ERROR(PND_EINVAL, "the gradient estimate holds %zu layers but the network has %zu",
                  grad->n_layers, net->n_layers);
    PND_TRY(make_view(net, PND_BATCH_OWN, &view));

    gc.view = &view;
    gc.data = data;
    gc.seed = opt->seed;
    gc.offset[0] = 0;
    for (size_t l = 0; l < net->n_layers; l++)
        gc.offset[l + 1] = gc.offset[l] + net->layers[l].d_out * net->layers[l].d_in;
    gc.n_weights = gc.offset[net->n_layers];
    gc.mean = NULL;

    /* Pass 1: the mean gradient. */
    job.acc_size = sizeof(struct grad_sum_acc) + gc.n_weights * sizeof(double);
    job.acc_init = grad_sum_init;
    job.run_chunk = grad_sum_chunk;
    job.acc_merge = grad_sum_merge;
    sums = malloc(job.acc_size);
    mean = malloc(gc.n_weights * sizeof *mean);
    if (sums == NULL || mean == NULL) {
        status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                               "out of memory for a gradient estimate");
        goto done;
    }
    grad_sum_init(&gc, sums);
    status = run_chunks(&job, opt, sums);
    if (status != PND_OK)
        goto done;
    n = (double) sums->n;
    for (size_t e = 0; e < gc.n_weights; e++)
        mean[e] = sums->sum[e] / n;

    /* Pass 2: the squared deviations about that mean, same draws. */
    gc.mean = mean;
    job.acc_size = PND_NET_MAX_LAYERS * sizeof(struct pnd_moment_acc);
    job.acc_init = grad_dev_init;
    job.run_chunk = grad_dev_chunk;
    job.acc_merge = grad_dev_merge;
    grad_dev_init(&gc, dev);
    status = run_chunks(&job, opt, dev);
    if (status != PND_OK)
        goto done;

    correction = n / (n - 1.0);
    for (size_t l = 0; l < net->n_layers; l++) {
        double norm2 = 0.0;

        memcpy(grad->mean[l], mean + gc.offset[l],
               (gc.offset[l + 1] - gc.offset[l]) * sizeof *mean);
        for (size_t e = gc.offset[l]; e < gc.offset[l + 1]; e++)
            norm2 += mean[e] * mean[e];
        grad->mean_norm[l] = sqrt(norm2);
        status = pnd_moment_acc_estimate(&dev[l], &grad->tr_cov[l]);
        if (status != PND_OK)
            goto done;
        grad->tr_cov[l].mean *= correction;
        grad->tr_cov[l].se *= correction;
    }

done:
    free(sums);
    free(mean);
    return status;
}
