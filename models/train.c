/* Mini-batch training of an MLP with every masking scheme, per-epoch
 * evaluation and co-adaptation statistics, and the run directory.
 *
 * Every random draw is a pure function of its coordinates: initialisation
 * from (seed, layer), the epoch's shuffle from (seed, epoch), the mask of
 * sample k of mini-batch t in layer l from (seed, l, t, k). Only BLAS could
 * make results depend on the thread count, so OpenBLAS is held to one
 * thread for the whole run.
 *
 * Optimisers: SGD with momentum (v = mu v + g, w -= lr v) and Adam
 * (Kingma and Ba, "Adam: A Method for Stochastic Optimization", 2015,
 * Algorithm 1, with bias correction). Weight decay adds lambda W to the
 * gradient of the weights. The cosine schedule is
 * lr_t = lr_min + (lr - lr_min) (1 + cos(pi t / T)) / 2 over T steps.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <json-c/json.h>

#include "base/blas.h"
#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/log.h"
#include "pnd/rng.h"
#include "pnd/train.h"

/* Coordinate that tags the shuffle stream of pnd_rng_derive. */
#define STREAM_SHUFFLE 0x53485546ULL
/* Drop probability of the Dropout view of R_diag and R_cross for a layer
 * that is not masked (scheme none or p = 0). */
#define UNMASKED_VIEW_P 0.5
/* Room for one line of log.tsv. */
#define LOG_LINE_MAX 4096

/* Everything one run allocates, freed in one place. */
struct run_state {
    struct pnd_mlp *mlp;
    struct pnd_mlp_workspace *work;
    double *grad;            /* (n_params), laid out like mlp->params */
    double *moment1;         /* (n_params): Adam m or SGD velocity */
    double *moment2;         /* (n_params): Adam v */
    double *best;            /* (n_params): parameters of the best epoch */
    unsigned char *decay;    /* (n_params): 1 for weights, 0 for biases */
    size_t *order;           /* (n_train): this epoch's shuffle */
    double *Xb;              /* (batch, d) */
    int *yb;                 /* (batch) */
    double *H;               /* (n_stats, max hidden width) */
    double *K;               /* (max hidden width^2) covariance */
    double *C[PND_TRAIN_MAX_HIDDEN];   /* (h_l, h_l) last correlation matrices */
    char *log;               /* log.tsv text so far */
    size_t log_len, log_cap;
};

static void
run_state_free(struct run_state *s)
{
    pnd_mlp_free(s->mlp);
    pnd_mlp_workspace_free(s->work);
    free(s->grad);
    free(s->moment1);
    free(s->moment2);
    free(s->best);
    free(s->decay);
    free(s->order);
    free(s->Xb);
    free(s->yb);
    free(s->H);
    free(s->K);
    for (size_t l = 0; l < PND_TRAIN_MAX_HIDDEN; l++)
        free(s->C[l]);
    free(s->log);
}

/* ------------------------------------------------------------ data */

int
pnd_train_data_read(const struct pnd_train_config *cfg,
                    struct pnd_train_data *data)
{
    struct pnd_dataset *sets[3];
    int status;

    memset(data, 0, sizeof *data);
    if (cfg->format == PND_FORMAT_CSV) {
        status = pnd_dataset_read_csv(cfg->train_images, cfg->pixel_max, &data->train);
        if (status == PND_OK)
            status = pnd_dataset_read_csv(cfg->test_images, cfg->pixel_max, &data->test);
    } else {
        status = pnd_dataset_read_idx(cfg->train_images, cfg->train_labels,
                                      cfg->pixel_max, &data->train);
        if (status == PND_OK)
            status = pnd_dataset_read_idx(cfg->test_images, cfg->test_labels,
                                          cfg->pixel_max, &data->test);
    }
    if (status != PND_OK)
        goto fail;
    if (data->test->d != data->train->d) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "test images '%s' have %zu pixels but training images '%s' have %zu",
                               cfg->test_images, data->test->d, cfg->train_images, data->train->d);
        goto fail;
    }
    if (data->test->c > data->train->c)
        data->train->c = data->test->c;
    data->test->c = data->train->c;

    if (cfg->max_train > 0 && (size_t) cfg->max_train < data->train->n)
        pnd_dataset_truncate(data->train, (size_t) cfg->max_train);
    if (cfg->max_test > 0 && (size_t) cfg->max_test < data->test->n)
        pnd_dataset_truncate(data->test, (size_t) cfg->max_test);
    status = pnd_dataset_split(&data->train, (size_t) cfg->n_valid, cfg->split_seed,
                               &data->valid);
    if (status != PND_OK)
        goto fail;
    if (cfg->standardize) {
        sets[0] = data->train;
        sets[1] = data->valid;
        sets[2] = data->test;
        status = pnd_dataset_standardize(data->train, sets, 3);
        if (status != PND_OK)
            goto fail;
    }
    return PND_OK;

fail:
    pnd_train_data_free(data);
    return status;
}

void
pnd_train_data_free(struct pnd_train_data *data)
{
    pnd_dataset_free(data->train);
    pnd_dataset_free(data->valid);
    pnd_dataset_free(data->test);
    memset(data, 0, sizeof *data);
}

/* ------------------------------------------------------------ optimiser */

static double
learning_rate(const struct pnd_train_config *cfg, uint64_t step,
              uint64_t total_steps)
{
    if (cfg->schedule == PND_LR_CONSTANT || total_steps == 0)
        return cfg->lr;
    return cfg->lr_min + 0.5 * (cfg->lr - cfg->lr_min)
                             * (1.0 + cos(M_PI * (double) step / (double) total_steps));
}

/* One update of every parameter. t counts updates from 1. */
static void
optimizer_step(const struct pnd_train_config *cfg, struct run_state *s,
               double lr, uint64_t t)
{
    size_t n = s->mlp->n_params;
    double *w = s->mlp->params, *g = s->grad;   /* (n) each */

    if (cfg->weight_decay > 0)
        for (size_t j = 0; j < n; j++)
            if (s->decay[j])
                g[j] += cfg->weight_decay * w[j];

    if (cfg->optimizer == PND_OPT_ADAM) {
        double c1 = 1.0 - pow(cfg->beta1, (double) t);
        double c2 = 1.0 - pow(cfg->beta2, (double) t);

        for (size_t j = 0; j < n; j++) {
            s->moment1[j] = cfg->beta1 * s->moment1[j] + (1.0 - cfg->beta1) * g[j];
            s->moment2[j] = cfg->beta2 * s->moment2[j] + (1.0 - cfg->beta2) * g[j] * g[j];
            w[j] -= lr * (s->moment1[j] / c1) / (sqrt(s->moment2[j] / c2) + cfg->adam_eps);
        }
    } else {
        for (size_t j = 0; j < n; j++) {
            s->moment1[j] = cfg->momentum * s->moment1[j] + g[j];
            w[j] -= lr * s->moment1[j];
        }
    }
}

/* ------------------------------------------------------------ statistics */

/* The statistics of measure_coadapt below, without the divergence
 * message. */
static int
measure_coadapt_at(struct run_state *s, const struct pnd_dataset *ref,
                   size_t n_stats, size_t n_r, struct pnd_coadapt *stats)
{
    const struct pnd_mlp *mlp = s->mlp;
    size_t n_hidden = mlp->spec.n_layers - 1;
    double p[PND_TRAIN_MAX_HIDDEN] = {0}, R_diag[PND_TRAIN_MAX_HIDDEN] = {0};
    double R_cross[PND_TRAIN_MAX_HIDDEN] = {0};

    for (size_t l = 0; l < n_hidden; l++) {
        size_t h = mlp->spec.widths[l + 1];

        PND_TRY(pnd_mlp_hidden(mlp, ref, n_stats, l, s->H, s->work));
        PND_TRY(pnd_coadapt_activations(n_stats, h, s->H, s->K, s->C[l], &stats[l]));
        p[l] = mlp->spec.p[l];
        if (mlp->spec.scheme[l] == PND_SCHEME_NONE || p[l] == 0)
            p[l] = UNMASKED_VIEW_P;
    }
    if (n_r > 0)
        PND_TRY(pnd_coadapt_dropout_terms(mlp, n_r, ref->X, ref->labels, p, R_diag, R_cross));
    for (size_t l = 0; l < n_hidden; l++) {
        stats[l].R_diag = n_r > 0 ? R_diag[l] : (double) NAN;
        stats[l].R_cross = n_r > 0 ? R_cross[l] : (double) NAN;
    }
    return PND_OK;
}

/* Co-adaptation statistics of every hidden layer on the first n_stats
 * images of ref, and R_diag, R_cross on the first n_r of them. A
 * statistic that overflows means that the weights did, so it raises
 * PND_ENUMERIC as divergence at step, like a non-finite loss. */
static int
measure_coadapt(struct run_state *s, const struct pnd_dataset *ref,
                size_t n_stats, size_t n_r, uint64_t step, size_t epoch,
                double lr, struct pnd_coadapt *stats)
{
    int status = measure_coadapt_at(s, ref, n_stats, n_r, stats);

    if (status == PND_ENUMERIC)
        PND_ERROR(PND_ENUMERIC, "training diverged by step %llu (epoch %zu): %s. Lower train.lr (now %g)",
                  (unsigned long long) step, epoch, pnd_error_message(), lr);
    return status;
}

/* ------------------------------------------------------------ outputs */

static int
log_append(struct run_state *s, const char *text)
{
    size_t len = strlen(text);

    if (s->log_len + len + 1 > s->log_cap) {
        size_t cap = (s->log_cap ? s->log_cap * 2 : 1 << 14) + len;
        char *bigger = realloc(s->log, cap);

        if (bigger == NULL)
            PND_ERROR(PND_ENOMEM, "out of memory for the training log");
        s->log = bigger;
        s->log_cap = cap;
    }
    memcpy(s->log + s->log_len, text, len + 1);
    s->log_len += len;
    return PND_OK;
}

static int
log_header(struct run_state *s, size_t n_hidden)
{
    char line[LOG_LINE_MAX];
    int at;

    at = snprintf(line, sizeof line,
                  "epoch\tstep\tlr\ttrain_batch_loss\ttrain_loss\ttrain_acc\tval_loss\tval_acc"
                  "\ttest_loss\ttest_acc\tgap_loss\tgap_acc\ttest_gap_loss\ttest_gap_acc"
                  "\ttime_train_s\ttime_eval_s");
    for (size_t l = 1; l <= n_hidden; l++)
        at += snprintf(line + at, sizeof line - (size_t) at,
                       "\tL%zu_mean_abs_corr\tL%zu_corr_fro\tL%zu_decov\tL%zu_pr\tL%zu_dead"
                       "\tL%zu_R_diag\tL%zu_R_cross",
                       l, l, l, l, l, l, l);
    snprintf(line + at, sizeof line - (size_t) at, "\n");
    return log_append(s, line);
}

/* The numbers of one epoch, as log.tsv and the result hold them. */
struct epoch_record {
    size_t epoch;
    uint64_t step;
    double lr, batch_loss;
    double train_loss, train_acc, val_loss, val_acc, test_loss, test_acc;
    double time_train_s, time_eval_s;
};

static int
log_epoch(struct run_state *s, const struct epoch_record *e,
          const struct pnd_coadapt *stats, size_t n_hidden)
{
    char line[LOG_LINE_MAX];
    int at;

    at = snprintf(line, sizeof line,
                  "%zu\t%llu\t%.9g\t%.9g\t%.9g\t%.9g\t%.9g\t%.9g\t%.9g\t%.9g"
                  "\t%.9g\t%.9g\t%.9g\t%.9g\t%.4f\t%.4f",
                  e->epoch, (unsigned long long) e->step, e->lr, e->batch_loss,
                  e->train_loss, e->train_acc, e->val_loss, e->val_acc, e->test_loss,
                  e->test_acc, e->val_loss - e->train_loss, e->train_acc - e->val_acc,
                  e->test_loss - e->train_loss, e->train_acc - e->test_acc,
                  e->time_train_s, e->time_eval_s);
    for (size_t l = 0; l < n_hidden; l++)
        at += snprintf(line + at, sizeof line - (size_t) at,
                       "\t%.9g\t%.9g\t%.9g\t%.9g\t%zu\t%.9g\t%.9g",
                       stats[l].mean_abs_corr, stats[l].corr_fro, stats[l].decov,
                       stats[l].participation, stats[l].n_dead, stats[l].R_diag,
                       stats[l].R_cross);
    snprintf(line + at, sizeof line - (size_t) at, "\n");
    return log_append(s, line);
}

static char *
join_path(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *path = malloc(len);

    if (path != NULL)
        snprintf(path, len, "%s/%s", dir, name);
    return path;
}

/* Write dir/name with the len bytes of data. */
static int
write_run_file(const char *dir, const char *name, const void *data, size_t len)
{
    char *path = join_path(dir, name);
    int status;

    if (path == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for a file name");
    status = pnd_atomic_write(path, data, len);
    free(path);
    return status;
}

static int
write_matrix_tsv(const char *dir, const char *name, size_t rows, size_t cols,
                 const double *M)
{
    char *path = join_path(dir, name);
    struct pnd_atomic_file f;
    int status;

    if (path == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for a file name");
    status = pnd_atomic_open(&f, path);
    free(path);
    PND_TRY(status);
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            fprintf(f.fp, j + 1 < cols ? "%.9g\t" : "%.9g\n", M[i * cols + j]);
    return pnd_atomic_commit(&f);
}

static json_object *
json_number(double x)
{
    return isfinite(x) ? json_object_new_double(x) : NULL;
}

static int
write_summary(const char *dir, const struct pnd_train_config *cfg,
              const struct pnd_mlp *mlp, const struct pnd_train_result *r,
              bool stopped_early)
{
    json_object *root = json_object_new_object(), *layers = json_object_new_array();
    const char *text;
    int status;

    if (root == NULL || layers == NULL) {
        json_object_put(root);
        json_object_put(layers);
        PND_ERROR(PND_ENOMEM, "out of memory for summary.json");
    }
    json_object_object_add(root, "seed", json_object_new_int64((int64_t) cfg->seed));
    json_object_object_add(root, "epochs_run", json_object_new_int64((int64_t) r->epochs_run));
    json_object_object_add(root, "best_epoch", json_object_new_int64((int64_t) r->best_epoch));
    json_object_object_add(root, "steps", json_object_new_int64((int64_t) r->steps));
    json_object_object_add(root, "stopped_early", json_object_new_boolean(stopped_early));
    json_object_object_add(root, "train_loss", json_number(r->train_loss));
    json_object_object_add(root, "train_acc", json_number(r->train_acc));
    json_object_object_add(root, "val_loss", json_number(r->val_loss));
    json_object_object_add(root, "val_acc", json_number(r->val_acc));
    json_object_object_add(root, "test_loss", json_number(r->test_loss));
    json_object_object_add(root, "test_acc", json_number(r->test_acc));
    json_object_object_add(root, "time_train_s", json_number(r->time_train_s));
    json_object_object_add(root, "time_epoch_s", json_number(r->time_epoch_s));
    json_object_object_add(root, "time_total_s", json_number(r->time_total_s));
    for (size_t l = 0; l < mlp->spec.n_layers; l++) {
        json_object *layer = json_object_new_object();

        json_object_object_add(layer, "layer", json_object_new_int64((int64_t) l + 1));
        json_object_object_add(layer, "d_in", json_object_new_int64((int64_t) mlp->spec.widths[l]));
        json_object_object_add(layer, "d_out", json_object_new_int64((int64_t) mlp->spec.widths[l + 1]));
        json_object_object_add(layer, "activation",
                               json_object_new_string(pnd_activation_name(mlp->spec.act[l])));
        json_object_object_add(layer, "scheme",
                               json_object_new_string(pnd_scheme_name(mlp->spec.scheme[l])));
        json_object_object_add(layer, "p", json_object_new_double(mlp->spec.p[l]));
        if (l < r->n_hidden) {
            const struct pnd_coadapt *c = &r->coadapt[l];

            json_object_object_add(layer, "mean_abs_corr", json_number(c->mean_abs_corr));
            json_object_object_add(layer, "corr_fro", json_number(c->corr_fro));
            json_object_object_add(layer, "decov", json_number(c->decov));
            json_object_object_add(layer, "participation_ratio", json_number(c->participation));
            json_object_object_add(layer, "dead_units", json_object_new_int64((int64_t) c->n_dead));
            json_object_object_add(layer, "R_diag", json_number(c->R_diag));
            json_object_object_add(layer, "R_cross", json_number(c->R_cross));
        }
        json_object_array_add(layers, layer);
    }
    json_object_object_add(root, "layers", layers);
    text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    status = write_run_file(dir, "summary.json", text, strlen(text));
    json_object_put(root);
    return status;
}

/* ------------------------------------------------------------ the run */

static int
run_state_alloc(const struct pnd_train_config *cfg,
                const struct pnd_train_data *data, struct run_state *s)
{
    struct pnd_mlp_spec spec;
    size_t n_params, max_hidden = 1, max_batch;
    size_t w_offset[PND_TRAIN_MAX_LAYERS], b_offset[PND_TRAIN_MAX_LAYERS];

    PND_TRY(pnd_train_config_spec(cfg, data->train->d, data->train->c, &spec));
    PND_TRY(pnd_mlp_alloc(&spec, cfg->seed, &s->mlp));
    PND_TRY(pnd_mlp_init_params(s->mlp, (enum pnd_init) cfg->init, cfg->seed));
    max_batch = (size_t) (cfg->batch_size > cfg->eval_batch ? cfg->batch_size : cfg->eval_batch);
    PND_TRY(pnd_mlp_workspace_alloc(s->mlp, max_batch, &s->work));

    n_params = s->mlp->n_params;
    s->grad = calloc(n_params, sizeof(double));
    s->moment1 = calloc(n_params, sizeof(double));
    s->moment2 = calloc(n_params, sizeof(double));
    s->best = calloc(n_params, sizeof(double));
    s->decay = calloc(n_params, 1);
    s->order = malloc(data->train->n * sizeof(size_t));
    s->Xb = malloc((size_t) cfg->batch_size * data->train->d * sizeof(double));
    s->yb = malloc((size_t) cfg->batch_size * sizeof(int));
    if (!s->grad || !s->moment1 || !s->moment2 || !s->best || !s->decay || !s->order
        || !s->Xb || !s->yb)
        PND_ERROR(PND_ENOMEM, "out of memory for training state of %zu parameters", n_params);
    pnd_mlp_offsets(s->mlp, w_offset, b_offset);
    for (size_t l = 0; l < spec.n_layers; l++)
        memset(s->decay + w_offset[l], 1, spec.widths[l + 1] * spec.widths[l]);

    for (size_t l = 0; l + 1 < spec.n_layers; l++) {
        size_t h = spec.widths[l + 1];

        max_hidden = h > max_hidden ? h : max_hidden;
        s->C[l] = calloc(h * h, sizeof(double));
        if (s->C[l] == NULL)
            PND_ERROR(PND_ENOMEM, "out of memory for a %zu x %zu correlation matrix", h, h);
    }
    s->H = malloc((size_t) cfg->stats_samples * max_hidden * sizeof(double));
    s->K = malloc(max_hidden * max_hidden * sizeof(double));
    if (s->H == NULL || s->K == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for the statistics buffers");
    return PND_OK;
}

/* Shuffle the training order for one epoch from (seed, epoch). */
static void
shuffle_order(size_t *order, size_t n, uint64_t seed, size_t epoch)
{
    uint64_t coords[2] = {STREAM_SHUFFLE, epoch};
    pnd_pcg64 r;

    pnd_rng_derive(&r, seed, coords, 2);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t) pnd_pcg64dxsm_bounded(&r, (uint64_t) i + 1);
        size_t t = order[i];

        order[i] = order[j];
        order[j] = t;
    }
}

/* Evaluate the three splits into e; a non-finite loss raises PND_ENUMERIC
 * naming the step. */
static int
evaluate_all(struct run_state *s, const struct pnd_train_data *data,
             struct epoch_record *e)
{
    int status;

    status = pnd_mlp_evaluate(s->mlp, data->train, &e->train_loss, &e->train_acc, s->work);
    if (status == PND_OK)
        status = pnd_mlp_evaluate(s->mlp, data->valid, &e->val_loss, &e->val_acc, s->work);
    if (status == PND_OK)
        status = pnd_mlp_evaluate(s->mlp, data->test, &e->test_loss, &e->test_acc, s->work);
    if (status == PND_ENUMERIC)
        PND_ERROR(PND_ENUMERIC, "training diverged by step %llu (epoch %zu): %s",
                  (unsigned long long) e->step, e->epoch, pnd_error_message());
    return status;
}

/* Train for one epoch. e receives the step count, lr and mean batch loss. */
static int
train_epoch(const struct pnd_train_config *cfg, struct run_state *s,
            const struct pnd_dataset *train, uint64_t *step,
            uint64_t total_steps, double *last_finite, uint64_t *last_finite_step,
            struct epoch_record *e, double start_time)
{
    size_t d = train->d, B = (size_t) cfg->batch_size;
    double loss_sum = 0;
    size_t n_batches = 0;
    char label[128];
    int status;

    shuffle_order(s->order, train->n, cfg->seed, e->epoch);
    for (size_t start = 0; start < train->n; start += B) {
        size_t n = train->n - start < B ? train->n - start : B;
        double loss, lr = learning_rate(cfg, *step, total_steps);

        for (size_t k = 0; k < n; k++) {
            size_t i = s->order[start + k];

            memcpy(s->Xb + k * d, train->X + i * d, d * sizeof(double));
            s->yb[k] = train->labels[i];
        }
        status = pnd_mlp_train_loss(s->mlp, n, s->Xb, s->yb, *step, s->grad, &loss, s->work);
        if (status == PND_ENUMERIC)
            PND_ERROR(PND_ENUMERIC,
                      "training diverged at step %llu (epoch %zu): %s; the last finite loss was %.6g at step %llu. Lower train.lr (now %g)",
                      (unsigned long long) *step, e->epoch, pnd_error_message(), *last_finite,
                      (unsigned long long) *last_finite_step, cfg->lr);
        PND_TRY(status);
        if (!isfinite(loss))
            PND_ERROR(PND_ENUMERIC,
                      "training diverged at step %llu (epoch %zu): the mini-batch loss is %g; the last finite loss was %.6g at step %llu. Lower train.lr (now %g)",
                      (unsigned long long) *step, e->epoch, loss, *last_finite,
                      (unsigned long long) *last_finite_step, cfg->lr);
        *last_finite = loss;
        *last_finite_step = *step;
        optimizer_step(cfg, s, lr, *step + 1);
        loss_sum += loss;
        n_batches++;
        e->lr = lr;
        (*step)++;

        snprintf(label, sizeof label, "epoch %zu/%ld loss %.4f", e->epoch, cfg->epochs,
                 loss_sum / (double) n_batches);
        pnd_log_progress(label, (double) *step, (double) total_steps,
                         pnd_wall_seconds() - start_time);
    }
    e->step = *step;
    e->batch_loss = loss_sum / (double) n_batches;
    return PND_OK;
}

/* Write the end-of-run files into run_dir. */
static int
write_outputs(const struct pnd_train_config *cfg, struct run_state *s,
              const char *run_dir, const struct pnd_train_result *r,
              bool stopped_early)
{
    char name[64], *path;
    int status;

    for (size_t l = 0; l < r->n_hidden; l++) {
        size_t h = s->mlp->spec.widths[l + 1];

        snprintf(name, sizeof name, "corr_L%zu.tsv", l + 1);
        PND_TRY(write_matrix_tsv(run_dir, name, h, h, s->C[l]));
    }
    path = join_path(run_dir, "checkpoint.pnd");
    if (path == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for a file name");
    status = pnd_mlp_checkpoint_write(path, s->mlp, r->epochs_run, r->steps);
    free(path);
    PND_TRY(status);
    return write_summary(run_dir, cfg, s->mlp, r, stopped_early);
}

int
pnd_train_run_data(const struct pnd_train_config *cfg,
                   const struct pnd_train_data *data, const char *run_dir,
                   struct pnd_train_result *result)
{
    struct run_state s;
    struct epoch_record e;
    const struct pnd_dataset *stats_set;
    size_t n_hidden, n_stats, n_r, epochs_since_best = 0;
    uint64_t step = 0, total_steps, last_finite_step = 0;
    double last_finite = NAN, best_val = INFINITY, start_time = pnd_wall_seconds();
    bool stopped_early = false;
    int status = PND_OK;

    memset(&s, 0, sizeof s);
    memset(result, 0, sizeof *result);
#ifdef PND_HAVE_OPENBLAS
    /* NOTE: a threaded dgemm may sum in an order that depends on the
     * thread count; one thread keeps every run bit-identical. */
    openblas_set_num_threads(1);
#endif

    /* Validate and allocate. */
    if (data->train->n == 0)
        PND_ERROR(PND_EINVAL, "the training split is empty");
    status = run_state_alloc(cfg, data, &s);
    if (status != PND_OK)
        goto done;
    n_hidden = s.mlp->spec.n_layers - 1;
    result->n_hidden = n_hidden;
    stats_set = data->valid->n >= 2 ? data->valid : data->train;
    n_stats = (size_t) cfg->stats_samples < stats_set->n ? (size_t) cfg->stats_samples
                                                          : stats_set->n;
    n_r = (size_t) cfg->r_samples < n_stats ? (size_t) cfg->r_samples : n_stats;
    total_steps = (uint64_t) cfg->epochs
                  * ((data->train->n + (size_t) cfg->batch_size - 1) / (size_t) cfg->batch_size);
    if (run_dir != NULL) {
        char *path;

        status = pnd_mkdir_p(run_dir);
        if (status != PND_OK)
            goto done;
        path = join_path(run_dir, "config.ini");
        status = path ? pnd_train_config_write((struct pnd_train_config *) cfg, path)
                      : pnd_error_set(PND_ENOMEM, __FILE__, __LINE__, "out of memory");
        free(path);
        if (status != PND_OK)
            goto done;
    }
    status = log_header(&s, n_hidden);
    if (status != PND_OK)
        goto done;

    /* Epochs: train, evaluate, measure, log, maybe stop. */
    for (size_t epoch = 1; epoch <= (size_t) cfg->epochs; epoch++) {
        double t0 = pnd_wall_seconds(), t1;

        memset(&e, 0, sizeof e);
        e.epoch = epoch;
        status = train_epoch(cfg, &s, data->train, &step, total_steps, &last_finite,
                             &last_finite_step, &e, start_time);
        if (status != PND_OK)
            goto done;
        t1 = pnd_wall_seconds();
        e.time_train_s = t1 - t0;
        result->time_train_s += e.time_train_s;

        status = evaluate_all(&s, data, &e);
        if (status == PND_OK && n_hidden > 0)
            status = measure_coadapt(&s, stats_set, n_stats, n_r, step, e.epoch,
                                     cfg->lr, result->coadapt);
        if (status != PND_OK)
            goto done;
        e.time_eval_s = pnd_wall_seconds() - t1;
        status = log_epoch(&s, &e, result->coadapt, n_hidden);
        if (status == PND_OK && run_dir != NULL)
            status = write_run_file(run_dir, "log.tsv", s.log, s.log_len);
        if (status != PND_OK)
            goto done;
        pnd_log_progress_end();
        pnd_log(PND_LOG_INFO,
                "epoch %zu/%ld: train loss %.4f acc %.4f, val loss %.4f acc %.4f, test acc %.4f, %.1f s",
                epoch, cfg->epochs, e.train_loss, e.train_acc, e.val_loss, e.val_acc,
                e.test_acc, e.time_train_s);

        result->epochs_run = epoch;
        result->steps = step;
        result->train_loss = e.train_loss;
        result->train_acc = e.train_acc;
        result->val_loss = e.val_loss;
        result->val_acc = e.val_acc;
        result->test_loss = e.test_loss;
        result->test_acc = e.test_acc;
        if (!(e.val_loss >= best_val)) {
            best_val = e.val_loss;
            result->best_epoch = epoch;
            epochs_since_best = 0;
            if (cfg->patience > 0)
                memcpy(s.best, s.mlp->params, s.mlp->n_params * sizeof(double));
        } else {
            epochs_since_best++;
        }
        if (run_dir != NULL && cfg->checkpoint_every > 0
            && epoch % (size_t) cfg->checkpoint_every == 0) {
            char *path = join_path(run_dir, "checkpoint.pnd");

            status = path ? pnd_mlp_checkpoint_write(path, s.mlp, epoch, step)
                          : pnd_error_set(PND_ENOMEM, __FILE__, __LINE__, "out of memory");
            free(path);
            if (status != PND_OK)
                goto done;
        }
        if (cfg->patience > 0 && epochs_since_best >= (size_t) cfg->patience
            && epoch < (size_t) cfg->epochs) {
            pnd_log(PND_LOG_INFO, "early stop after epoch %zu: no lower validation loss for %ld epochs",
                    epoch, cfg->patience);
            stopped_early = true;
            break;
        }
    }

    /* With early stopping the final network is the best epoch's. */
    if (cfg->patience > 0 && result->best_epoch != result->epochs_run) {
        memcpy(s.mlp->params, s.best, s.mlp->n_params * sizeof(double));
        e.step = step;
        status = evaluate_all(&s, data, &e);
        if (status == PND_OK && n_hidden > 0)
            status = measure_coadapt(&s, stats_set, n_stats, n_r, step, e.epoch,
                                     cfg->lr, result->coadapt);
        if (status != PND_OK)
            goto done;
        result->train_loss = e.train_loss;
        result->train_acc = e.train_acc;
        result->val_loss = e.val_loss;
        result->val_acc = e.val_acc;
        result->test_loss = e.test_loss;
        result->test_acc = e.test_acc;
    }
    result->time_epoch_s = result->time_train_s / (double) result->epochs_run;
    result->time_total_s = pnd_wall_seconds() - start_time;
    if (run_dir != NULL)
        status = write_outputs(cfg, &s, run_dir, result, stopped_early);

done:
    pnd_log_progress_end();
    run_state_free(&s);
    return status;
}

int
pnd_train_run(const struct pnd_train_config *cfg, const char *run_dir,
              struct pnd_train_result *result)
{
    struct pnd_train_data data;
    int status;

    PND_TRY(pnd_train_data_read(cfg, &data));
    status = pnd_train_run_data(cfg, &data, run_dir, result);
    pnd_train_data_free(&data);
    return status;
}

/* ------------------------------------------------------------ sweeps */

void
pnd_train_mean_ci(const double *x, size_t n, double *mean, double *half_width)
{
    double m = 0, ss = 0;

    for (size_t i = 0; i < n; i++)
        m += x[i];
    m = n ? m / (double) n : (double) NAN;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *half_width = n < 2 ? 0.0
                        : gsl_cdf_tdist_Pinv(0.975, (double) (n - 1))
                              * sqrt(ss / (double) (n - 1) / (double) n);
}

/* Final numbers compared across seeds in compare.tsv. */
enum { METRIC_TEST_ACC, METRIC_TEST_LOSS, METRIC_VAL_ACC, METRIC_VAL_LOSS,
       METRIC_TRAIN_ACC, METRIC_TRAIN_LOSS, METRIC_GAP_ACC, METRIC_TIME_EPOCH,
       METRIC_COUNT };
static const char *const metric_names[METRIC_COUNT] = {
    "test_acc", "test_loss", "val_acc", "val_loss", "train_acc", "train_loss",
    "test_gap_acc", "time_epoch_s"};
static const char *const layer_metric_names[] = {"mean_abs_corr", "pr", "R_diag", "R_cross"};
#define LAYER_METRIC_COUNT 4

static double
metric_value(const struct pnd_train_result *r, size_t m)
{
    switch (m) {
    case METRIC_TEST_ACC: return r->test_acc;
    case METRIC_TEST_LOSS: return r->test_loss;
    case METRIC_VAL_ACC: return r->val_acc;
    case METRIC_VAL_LOSS: return r->val_loss;
    case METRIC_TRAIN_ACC: return r->train_acc;
    case METRIC_TRAIN_LOSS: return r->train_loss;
    case METRIC_GAP_ACC: return r->train_acc - r->test_acc;
    default: return r->time_epoch_s;
    }
}

static double
layer_metric_value(const struct pnd_coadapt *c, size_t m)
{
    switch (m) {
    case 0: return c->mean_abs_corr;
    case 1: return c->participation;
    case 2: return c->R_diag;
    default: return c->R_cross;
    }
}

static int
write_compare(const char *run_dir, const enum pnd_scheme *schemes,
              size_t n_schemes, size_t n_seeds, const struct pnd_train_result *results)
{
    char *path = join_path(run_dir, "compare.tsv");
    struct pnd_atomic_file f;
    double *x = malloc(n_seeds * sizeof *x);   /* (n_seeds) */
    size_t n_hidden = results[0].n_hidden;
    int status;

    if (path == NULL || x == NULL) {
        free(path);
        free(x);
        PND_ERROR(PND_ENOMEM, "out of memory for compare.tsv");
    }
    status = pnd_atomic_open(&f, path);
    free(path);
    if (status != PND_OK) {
        free(x);
        return status;
    }
    fprintf(f.fp, "scheme\tn_seeds");
    for (size_t m = 0; m < METRIC_COUNT; m++)
        fprintf(f.fp, "\t%s_mean\t%s_ci95", metric_names[m], metric_names[m]);
    for (size_t l = 0; l < n_hidden; l++)
        for (size_t m = 0; m < LAYER_METRIC_COUNT; m++)
            fprintf(f.fp, "\tL%zu_%s_mean\tL%zu_%s_ci95", l + 1, layer_metric_names[m],
                    l + 1, layer_metric_names[m]);
    fputc('\n', f.fp);
    for (size_t s = 0; s < n_schemes; s++) {
        const struct pnd_train_result *row = results + s * n_seeds;   /* (n_seeds) */
        double mean, half;

        fprintf(f.fp, "%s\t%zu", pnd_scheme_name(schemes[s]), n_seeds);
        for (size_t m = 0; m < METRIC_COUNT; m++) {
            for (size_t k = 0; k < n_seeds; k++)
                x[k] = metric_value(&row[k], m);
            pnd_train_mean_ci(x, n_seeds, &mean, &half);
            fprintf(f.fp, "\t%.9g\t%.9g", mean, half);
        }
        for (size_t l = 0; l < n_hidden; l++)
            for (size_t m = 0; m < LAYER_METRIC_COUNT; m++) {
                for (size_t k = 0; k < n_seeds; k++)
                    x[k] = layer_metric_value(&row[k].coadapt[l], m);
                pnd_train_mean_ci(x, n_seeds, &mean, &half);
                fprintf(f.fp, "\t%.9g\t%.9g", mean, half);
            }
        fputc('\n', f.fp);
    }
    free(x);
    return pnd_atomic_commit(&f);
}

int
pnd_train_sweep(const struct pnd_train_config *cfg,
                const enum pnd_scheme *schemes, size_t n_schemes,
                size_t n_seeds, const char *run_dir,
                struct pnd_train_result *results)
{
    struct pnd_train_data data;
    struct pnd_train_result *all = NULL;   /* (n_schemes, n_seeds) */
    int status = PND_OK;

    if (n_schemes == 0 || n_seeds == 0)
        PND_ERROR(PND_EINVAL, "a sweep needs at least one scheme and one seed");
    all = calloc(n_schemes * n_seeds, sizeof *all);
    if (all == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for %zu results", n_schemes * n_seeds);
    status = pnd_train_data_read(cfg, &data);
    if (status != PND_OK) {
        free(all);
        return status;
    }
    for (size_t s = 0; s < n_schemes && status == PND_OK; s++)
        for (size_t k = 0; k < n_seeds && status == PND_OK; k++) {
            struct pnd_train_config one = *cfg;   /* shares cfg's strings */
            char sub[512];

            one.scheme = schemes[s];
            one.layer_schemes = NULL;
            one.seed = cfg->seed + k;
            pnd_log(PND_LOG_INFO, "scheme %s, seed %llu", pnd_scheme_name(schemes[s]),
                    (unsigned long long) one.seed);
            if (run_dir != NULL)
                snprintf(sub, sizeof sub, "%s/%s/seed%llu", run_dir,
                         pnd_scheme_name(schemes[s]), (unsigned long long) one.seed);
            status = pnd_train_run_data(&one, &data, run_dir ? sub : NULL,
                                        &all[s * n_seeds + k]);
        }
    if (status == PND_OK && run_dir != NULL)
        status = write_compare(run_dir, schemes, n_schemes, n_seeds, all);
    if (status == PND_OK && results != NULL)
        memcpy(results, all, n_schemes * n_seeds * sizeof *all);
    pnd_train_data_free(&data);
    free(all);
    return status;
}
