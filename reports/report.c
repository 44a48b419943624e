/* pnd report: run the simulator sweeps and the trainer of a preset, then
 * write the report (reports/document.c) with its figures and tables.
 *
 * Stages, in order:
 *   1. the synthetic simulator sweeps;
 *   2. one training run per scheme and seed on a Fashion-MNIST subset, and a
 *      p sweep of dropout and pernodedrop for the generalisation gap;
 *   3. the export of trained networks to the simulator's network format,
 *      with a simulator sweep on each;
 *   4. figures, then tables and the document. A sweep or run whose stored resolved
 * configuration equals the one this job would write is reused, not rerun.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/log.h"
#include "pnd/sim.h"
#include "pnd/train.h"
#include "reports/report_internal.h"

const char *const pnd_report_preset_names[] = {"quick", "default", "paper", NULL};

/* Sizes of one preset. Lists are comma-separated, as the simulator reads them. */
struct preset {
    /* synthetic simulator sweeps */
    const char *p_exact;           /* p of the sweeps with exact values */
    const char *draws_exact;
    const char *p_expansion;       /* p of the sweep checked by expansions */
    const char *draws_expansion;
    const char *draws_convergence; /* list of N */
    const char *batch_n;           /* list of batch sizes */
    const char *draws_batch;
    /* trained networks in the simulator */
    const char *trained_schemes;   /* training schemes whose networks are analysed */
    const char *trained_p;
    const char *trained_draws;
    size_t trained_inputs;         /* Fashion-MNIST test images per network */
    /* trainer */
    long max_train, n_valid, max_test;
    long hidden;                   /* units of the single hidden layer */
    long epochs, batch_size, seeds;
    long stats_samples, r_samples;
    double p;                      /* drop probability of the comparison runs */
    const char *gap_p;             /* further p for dropout and pernodedrop */
};

static const struct preset presets[] = {
    [PND_PRESET_QUICK] = {
        "0.1,0.3,0.5", "20000", "0.01,0.02,0.05,0.1,0.2", "100000",
        "1000,10000,100000", "1,2,4,8", "20000",
        "pernodedrop", "0.1,0.3", "200", 2,
        2000, 500, 1000, 64, 3, 100, 1, 200, 20, 0.3, "0.1",
    },
    /* NOTE: sized by measurements on a loaded two-core machine, where a
     * pernodedrop-gaussian epoch cost about ten pernodedrop epochs: the
     * whole preset took 6.5 minutes of its ten with 3 seeds. A slower
     * trainer version would change that. */
    [PND_PRESET_DEFAULT] = {
        "0.05,0.1,0.2,0.3,0.5", "100000", "0.01,0.02,0.05,0.1,0.2", "500000",
        "100,1000,10000,100000,1000000", "1,2,4,8,16", "20000",
        "dropout,pernodedrop", "0.1,0.3,0.5", "500", 4,
        5000, 1000, 5000, 128, 4, 100, 3, 1000, 50, 0.3, "0.1,0.5",
    },
    [PND_PRESET_PAPER] = {
        "0.02,0.05,0.1,0.2,0.3,0.4,0.5,0.6", "1000000",
        "0.005,0.01,0.02,0.05,0.1,0.2", "20000000",
        "100,1000,10000,100000,1000000,10000000", "1,2,4,8,16,32,64", "1000000",
        "none,dropout,pernodedrop", "0.05,0.1,0.2,0.3,0.5", "10000", 8,
        55000, 5000, 0, 256, 20, 128, 5, 2000, 100, 0.3, "0.1,0.2,0.5",
    },
};

/* A synthetic sweep: simulator settings as "key=value;..." plus which
 * preset lists give its p, draws and batch sizes. */
enum sweep_kind { SWEEP_EXACT_P, SWEEP_EXPANSION_P, SWEEP_DRAWS, SWEEP_BATCH };

static const struct {
    const char *name, *title, *text, *settings;
    enum sweep_kind kind;
} synthetic_sweeps[] = {
    {"linear_p", "Linear model: exact expected loss",
     "Squared loss on one masked layer (d = 8, c = 4). The expected loss is the same for every scheme, because the penalty 1/2 s2 sum a_ui^2 only sees the diagonal of the pre-activation covariance.",
     "model=linear;scheme=all;d=8;c=4", SWEEP_EXACT_P},
    {"readout_p", "Linear readout: exact expected loss",
     "A masked layer (d = 8, h = 4) followed by an unmasked linear readout (c = 2) and squared loss. Input Dropout adds the cross-node term 1/2 s2 sum_{c,i} sum_{u != v} V_cu V_cv a_ui a_vi, which the per-connection schemes do not have.",
     "model=readout;scheme=all;d=8;h=4;c=2", SWEEP_EXACT_P},
    {"softmax_p", "Softmax cross-entropy: enumeration and quadrature",
     "Softmax cross-entropy on masked logits (d = 6, c = 3): Bernoulli schemes against the exact enumeration of every mask, Gaussian schemes against Gauss-Hermite quadrature.",
     "model=softmax;scheme=all;d=6;c=3", SWEEP_EXACT_P},
    {"mlp_p", "A tanh layer with softmax readout: accuracy of the expansions",
     "One masked tanh layer (d = 4, h = 3) with a softmax readout (c = 3) and small weights (scale 0.5), so that the expansions apply. Every Bernoulli scheme has at most 12 mask variables and is enumerated exactly; the Gaussian schemes are integrated by Gauss-Hermite quadrature (20 nodes per dimension). The simulator writes the second- and third-order expansions beside these ground truths, so the residual ground truth - expansion is exact, free of Monte Carlo noise. As p goes to 0 it should fall like p for Bernoulli masks and like p^2 for Gaussian masks, whose third-order term is zero. For one sample (n = 1) dropconnect and pernodedrop draw masks of the same law, so their values coincide. The Monte Carlo residual is drawn as a second figure for comparison.",
     "model=mlp;act=tanh;loss=softmax-xent;layers=1;d=4;h=3;c=3;scale=0.5;cov=false;expansions=true;quad-nodes=20;scheme=dropout,gaussian-dropout,dropconnect,pernodedrop,pernodedrop-gaussian",
     SWEEP_EXPANSION_P},
    {"draws", "Monte Carlo convergence",
     "The readout model at p = 0.3 with a growing number of draws N: the error against the exact value and the standard error both shrink like 1/sqrt(N).",
     "model=readout;d=8;h=4;c=2;p=0.3;scheme=dropout,dropconnect,pernodedrop,pernodedrop-gaussian",
     SWEEP_DRAWS},
    {"batch", "Mini-batch loss variance",
     "The readout model at p = 0.3: variance of the mini-batch loss L = (1/n) sum_k l_k with a fresh mask per sample and with one mask shared by the batch. E[L] is the same in both; neither variance is always the smaller.",
     "model=readout;d=8;h=4;c=2;p=0.3;scheme=dropout,gaussian-dropout,dropconnect,pernodedrop,pernodedrop-gaussian",
     SWEEP_BATCH},
};

#define N_SYNTHETIC (sizeof synthetic_sweeps / sizeof synthetic_sweeps[0])

void
pnd_report_config_init(struct pnd_report_config *cfg)
{
    cfg->preset = PND_PRESET_DEFAULT;
    cfg->out_dir = "report";
    cfg->threads = 0;
    cfg->seed = 1;
    cfg->formats = PND_PLOT_PDF | PND_PLOT_PNG;
    cfg->command_line = NULL;
}

/* ---- progress over the whole job ---- */

/* Work of one training run in units of one simulator sweep, for the ETA:
 * an estimate from the default preset, where a run takes a few sweeps. */
#define TRAIN_RUN_WEIGHT 4.0

struct progress {
    double start_s;
    double done, total;        /* in units of estimated work */
    size_t stage, n_stages;
};

static void
progress_stage(struct progress *pr, const char *name, double weight)
{
    char label[160];

    pr->stage++;
    snprintf(label, sizeof label, "report stage %zu/%zu: %s", pr->stage,
             pr->n_stages, name);
    pnd_log_progress(label, pr->done, pr->total, pnd_wall_seconds() - pr->start_s);
    pnd_log_progress_end();
    pr->done += weight;
}

/* ---- reuse of finished work ---- */

/* True when the files a and b exist and hold the same bytes. */
static bool
same_file(const char *a, const char *b)
{
    char *x = NULL, *y = NULL;
    size_t nx, ny;
    bool same;

    if (access(a, R_OK) != 0 || access(b, R_OK) != 0)
        return false;
    if (pnd_read_file(a, &x, &nx) != PND_OK || pnd_read_file(b, &y, &ny) != PND_OK) {
        free(x);
        free(y);
        pnd_error_clear();
        return false;
    }
    same = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

static int
join(char *buf, const char *dir, const char *name)
{
    int len = snprintf(buf, REPORT_PATH_SIZE, "%s/%s", dir, name);

    if (len < 0 || len >= REPORT_PATH_SIZE)
        PND_ERROR(PND_EINVAL, "path %s/%s is too long", dir, name);
    return PND_OK;
}

/* ---- simulator sweeps ---- */

/* Apply "key=value;key=value" to cfg. */
static int
apply_settings(struct pnd_sim_config *cfg, const char *settings)
{
    char *copy = strdup(settings), *save, *item;
    int status = PND_OK;

    if (copy == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory applying simulator settings");
    for (item = strtok_r(copy, ";", &save); item != NULL && status == PND_OK;
         item = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(item, '=');

        if (eq == NULL) {
            status = pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                                   "internal error: simulator setting '%s' has no '='", item);
            break;
        }
        *eq = '\0';
        status = pnd_sim_config_set(cfg, item, eq + 1, "pnd report preset");
    }
    free(copy);
    return status;
}

/* Run one sweep into DIR/sim/NAME.tsv unless DIR/sim/NAME.ini shows that
 * the same configuration already finished there. */
static int
run_sweep(struct report_context *ctx, struct report_sweep *sw,
          const char *settings, const char *extra)
{
    struct pnd_sim_config cfg;
    struct pnd_sim_summary summary;
    char sim_dir[REPORT_PATH_SIZE], ini[REPORT_PATH_SIZE], pending[REPORT_PATH_SIZE];
    char json[REPORT_PATH_SIZE], name[96], number[32];
    double start = pnd_wall_seconds();
    int status;

    PND_TRY(join(sim_dir, ctx->dir, "sim"));
    PND_TRY(pnd_mkdir_p(sim_dir));
    snprintf(name, sizeof name, "%s.tsv", sw->name);
    PND_TRY(join(sw->tsv, sim_dir, name));
    snprintf(name, sizeof name, "%s.ini", sw->name);
    PND_TRY(join(ini, sim_dir, name));
    snprintf(name, sizeof name, ".%s.ini.pending", sw->name);
    PND_TRY(join(pending, sim_dir, name));
    snprintf(name, sizeof name, "%s.json", sw->name);
    PND_TRY(join(json, sim_dir, name));

    pnd_sim_config_init(&cfg);
    status = apply_settings(&cfg, settings);
    if (status == PND_OK && extra != NULL)
        status = apply_settings(&cfg, extra);
    snprintf(number, sizeof number, "%llu", (unsigned long long) ctx->cfg->seed);
    if (status == PND_OK)
        status = pnd_sim_config_set(&cfg, "seed", number, "--seed");
    if (status == PND_OK)
        status = pnd_sim_config_set(&cfg, "data-seed", number, "--seed");
    if (status == PND_OK)
        status = pnd_sim_config_set(&cfg, "grad-draws", "0", "pnd report");
    if (status == PND_OK)
        status = pnd_sim_config_set(&cfg, "check", "false", "pnd report");
    snprintf(number, sizeof number, "%d", ctx->cfg->threads);
    if (status == PND_OK)
        status = pnd_sim_config_set(&cfg, "threads", number, "--threads");
    /* The pending configuration marks an unfinished sweep: an interrupt
     * removes it, so a later run never takes the sweep as finished. */
    pnd_atomic_watch(pending);
    if (status == PND_OK)
        status = pnd_sim_config_write(&cfg, pending);
    if (status != PND_OK)
        goto done;

    if (same_file(pending, ini) && access(sw->tsv, R_OK) == 0) {
        sw->reused = true;
        unlink(pending);
        pnd_log(PND_LOG_INFO, "reusing %s: its configuration is unchanged", sw->tsv);
        goto done;
    }
    unlink(ini);
    status = pnd_sim_run(&cfg, sw->tsv, json, &summary);
    if (status == PND_OK && rename(pending, ini) != 0)
        status = pnd_error_set(PND_EIO, __FILE__, __LINE__, "cannot rename %s to %s: %s",
                               pending, ini, strerror(errno));
    sw->elapsed_s = pnd_wall_seconds() - start;

done:
    if (status != PND_OK)
        unlink(pending);
    pnd_atomic_forget(pending);
    pnd_sim_config_free(&cfg);
    return status;
}

static int
run_synthetic(struct report_context *ctx, const struct preset *pr,
              struct progress *progress)
{
    for (size_t i = 0; i < N_SYNTHETIC; i++) {
        struct report_sweep *sw = &ctx->sweeps[ctx->n_sweeps++];
        char extra[512];

        memset(sw, 0, sizeof *sw);
        snprintf(sw->name, sizeof sw->name, "%s", synthetic_sweeps[i].name);
        snprintf(sw->title, sizeof sw->title, "%s", synthetic_sweeps[i].title);
        snprintf(sw->text, sizeof sw->text, "%s", synthetic_sweeps[i].text);
        switch (synthetic_sweeps[i].kind) {
        case SWEEP_EXACT_P:
            snprintf(extra, sizeof extra, "p=%s;draws=%s", pr->p_exact, pr->draws_exact);
            break;
        case SWEEP_EXPANSION_P:
            snprintf(extra, sizeof extra, "p=%s;draws=%s", pr->p_expansion,
                     pr->draws_expansion);
            break;
        case SWEEP_DRAWS:
            snprintf(extra, sizeof extra, "draws=%s", pr->draws_convergence);
            break;
        case SWEEP_BATCH:
            snprintf(extra, sizeof extra, "n=%s;draws=%s", pr->batch_n, pr->draws_batch);
            break;
        }
        progress_stage(progress, sw->title, 1.0);
        PND_TRY(run_sweep(ctx, sw, synthetic_sweeps[i].settings, extra));
    }
    return PND_OK;
}

/* ---- training ---- */

static void
train_config_apply(struct pnd_train_config *cfg, const struct preset *pr)
{
    cfg->max_train = pr->max_train;
    cfg->n_valid = pr->n_valid;
    cfg->max_test = pr->max_test;
    cfg->hidden.n = 1;
    cfg->hidden.v[0] = (double) pr->hidden;
    cfg->activation = PND_ACT_TANH;
    cfg->epochs = pr->epochs;
    cfg->batch_size = pr->batch_size;
    cfg->stats_samples = pr->stats_samples;
    cfg->r_samples = pr->r_samples;
    cfg->checkpoint_every = 0;
}

/* Add the runs of scheme at p for every seed. */
static int
add_runs(struct report_context *ctx, size_t *cap, const char *scheme, double p,
         bool main_run, long seeds)
{
    for (long s = 0; s < seeds; s++) {
        struct report_run *run;
        char sub[128];

        if (ctx->n_runs == *cap) {
            size_t grown_cap = *cap ? 2 * *cap : 32;
            struct report_run *grown = realloc(ctx->runs, grown_cap * sizeof *grown);

            if (grown == NULL)
                PND_ERROR(PND_ENOMEM, "out of memory listing training runs");
            ctx->runs = grown;
            *cap = grown_cap;
        }
        run = &ctx->runs[ctx->n_runs++];
        memset(run, 0, sizeof *run);
        snprintf(run->scheme, sizeof run->scheme, "%s", scheme);
        run->p = strcmp(scheme, "none") == 0 ? 0.0 : p;
        run->seed = ctx->cfg->seed + (unsigned long long) s;
        run->main = main_run;
        if (main_run)
            snprintf(sub, sizeof sub, "train/%s/seed%llu", scheme, run->seed);
        else
            snprintf(sub, sizeof sub, "train/%s-p%g/seed%llu", scheme, p, run->seed);
        PND_TRY(join(run->dir, ctx->dir, sub));
    }
    return PND_OK;
}

static int
list_runs(struct report_context *ctx, const struct preset *pr)
{
    size_t cap = 0;

    for (int s = 0; s < PND_SCHEME_COUNT; s++)
        PND_TRY(add_runs(ctx, &cap, pnd_scheme_name((enum pnd_scheme) s), pr->p, true,
                         pr->seeds));
    for (const char *gap = pr->gap_p; gap != NULL && *gap;) {
        char *end;
        double p = strtod(gap, &end);

        if (end == gap)
            PND_ERROR(PND_EINVAL, "internal error: bad p list '%s' in a preset", pr->gap_p);
        PND_TRY(add_runs(ctx, &cap, "dropout", p, false, pr->seeds));
        PND_TRY(add_runs(ctx, &cap, "pernodedrop", p, false, pr->seeds));
        gap = *end == ',' ? end + 1 : end;
    }
    return PND_OK;
}

/* Train every listed run that has no finished, matching run directory. */
static int
run_training(struct report_context *ctx, const struct preset *pr,
             struct progress *progress)
{
    struct pnd_train_data data;
    bool have_data = false;
    double start = pnd_wall_seconds();
    int status = PND_OK;

    memset(&data, 0, sizeof data);
    for (size_t i = 0; i < ctx->n_runs && status == PND_OK; i++) {
        struct report_run *run = &ctx->runs[i];
        struct pnd_train_config cfg;
        struct pnd_train_result result;
        char ini[REPORT_PATH_SIZE], summary[REPORT_PATH_SIZE], pending[REPORT_PATH_SIZE];
        char stage[160];
        enum pnd_scheme scheme;

        snprintf(stage, sizeof stage, "train %s p=%g seed %llu", run->scheme, run->p,
                 run->seed);
        progress_stage(progress, stage, TRAIN_RUN_WEIGHT);
        if ((status = pnd_train_config_init(&cfg)) != PND_OK)
            break;
        train_config_apply(&cfg, pr);
        status = pnd_scheme_parse(run->scheme, &scheme);
        cfg.scheme = (int) scheme;
        cfg.p = run->p;
        cfg.seed = run->seed;
        if (status == PND_OK)
            status = join(ini, run->dir, "config.ini");
        if (status == PND_OK)
            status = join(summary, run->dir, "summary.json");
        if (status == PND_OK)
            status = join(pending, ctx->dir, ".train_config.ini.pending");
        pnd_atomic_watch(pending);
        if (status == PND_OK)
            status = pnd_train_config_write(&cfg, pending);
        if (status == PND_OK && same_file(pending, ini) && access(summary, R_OK) == 0) {
            run->reused = true;
            pnd_log(PND_LOG_INFO, "reusing %s: its configuration is unchanged", run->dir);
        } else if (status == PND_OK) {
            /* summary.json marks a finished run: remove it before starting. */
            unlink(summary);
            if (!have_data) {
                status = pnd_train_data_read(&cfg, &data);
                have_data = status == PND_OK;
            }
            if (status == PND_OK)
                status = pnd_train_run_data(&cfg, &data, run->dir, &result);
        }
        unlink(pending);
        pnd_atomic_forget(pending);
        pnd_train_config_free(&cfg);
    }
    if (have_data)
        pnd_train_data_free(&data);
    ctx->train_s = pnd_wall_seconds() - start;
    return status;
}

/* ---- trained networks in the simulator ---- */

static const struct report_run *
first_main_run(const struct report_context *ctx, const char *scheme)
{
    for (size_t i = 0; i < ctx->n_runs; i++)
        if (ctx->runs[i].main && strcmp(ctx->runs[i].scheme, scheme) == 0)
            return &ctx->runs[i];
    return NULL;
}

/* Export the network of run to DIR/trained/SCHEME with the first inputs of
 * the test set, and run the simulator on it. */
static int
analyse_trained(struct report_context *ctx, const struct preset *pr,
                const struct report_run *run, struct pnd_train_data *data,
                bool *have_data)
{
    struct report_sweep *sw = &ctx->sweeps[ctx->n_sweeps];
    struct pnd_mlp *mlp = NULL;
    char export_dir[REPORT_PATH_SIZE], checkpoint[REPORT_PATH_SIZE], sub[96];
    char net_ini[REPORT_PATH_SIZE], sweep_ini[REPORT_PATH_SIZE];
    char settings[REPORT_PATH_SIZE + 256];
    uint64_t epoch, step;
    int status;

    if (ctx->n_sweeps == REPORT_MAX_SWEEPS)
        PND_ERROR(PND_EINVAL, "internal error: more than %d sweeps", REPORT_MAX_SWEEPS);
    memset(sw, 0, sizeof *sw);
    snprintf(sw->name, sizeof sw->name, "trained_%s", run->scheme);
    snprintf(sw->title, sizeof sw->title, "Network trained with %s on Fashion-MNIST",
             run->scheme);
    snprintf(sw->text, sizeof sw->text,
             "The 784-%ld-10 tanh network trained with %s (p = %g, seed %llu), exported with its first %zu test images. The simulator's scheme override masks every layer, the hidden and the output layer, at several p. The trained weights are large enough that the expansions need not hold.",
             pr->hidden, run->scheme, run->p, run->seed, pr->trained_inputs);
    sw->trained = true;

    snprintf(sub, sizeof sub, "trained/%s", run->scheme);
    PND_TRY(join(export_dir, ctx->dir, sub));
    PND_TRY(join(checkpoint, run->dir, "checkpoint.pnd"));
    PND_TRY(join(net_ini, export_dir, "net.ini"));
    snprintf(settings, sizeof settings,
             "net=%s;scheme=dropout,pernodedrop,pernodedrop-gaussian;cov=false;p=%s;draws=%s",
             net_ini, pr->trained_p, pr->trained_draws);
    ctx->n_sweeps++;

    /* A reused run keeps its export and, through run_sweep, its sweep. */
    if (run->reused && access(net_ini, R_OK) == 0)
        return run_sweep(ctx, sw, settings, NULL);
    snprintf(sub, sizeof sub, "sim/%s.ini", sw->name);
    PND_TRY(join(sweep_ini, ctx->dir, sub));
    unlink(sweep_ini);
    PND_TRY(pnd_mkdir_p(export_dir));
    if (!*have_data) {
        struct pnd_train_config cfg;

        PND_TRY(pnd_train_config_init(&cfg));
        train_config_apply(&cfg, pr);
        status = pnd_train_data_read(&cfg, data);
        pnd_train_config_free(&cfg);
        PND_TRY(status);
        *have_data = true;
    }
    PND_TRY(pnd_mlp_checkpoint_read(checkpoint, &mlp, &epoch, &step));
    status = pnd_mlp_export(mlp, data->test, pr->trained_inputs, export_dir);
    pnd_mlp_free(mlp);
    PND_TRY(status);
    return run_sweep(ctx, sw, settings, NULL);
}

static int
run_trained(struct report_context *ctx, const struct preset *pr,
            struct progress *progress)
{
    struct pnd_train_data data;
    bool have_data = false;
    char *list = strdup(pr->trained_schemes), *save, *scheme;
    int status = PND_OK;

    if (list == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory");
    memset(&data, 0, sizeof data);
    for (scheme = strtok_r(list, ",", &save); scheme != NULL && status == PND_OK;
         scheme = strtok_r(NULL, ",", &save)) {
        const struct report_run *run = first_main_run(ctx, scheme);
        char stage[128];

        snprintf(stage, sizeof stage, "expected loss of the %s-trained network", scheme);
        progress_stage(progress, stage, 1.0);
        if (run != NULL)
            status = analyse_trained(ctx, pr, run, &data, &have_data);
    }
    if (have_data)
        pnd_train_data_free(&data);
    free(list);
    return status;
}

/* ---- figures ---- */

static int
draw_figures(struct report_context *ctx, struct progress *progress)
{
    struct pnd_plot_options opt;
    const char **dirs;
    int status = PND_OK;

    pnd_plot_options_init(&opt, ctx->figures_dir);
    opt.formats = ctx->cfg->formats;
    PND_TRY(pnd_mkdir_p(ctx->figures_dir));
    progress_stage(progress, "figures", 1.0);
    for (size_t i = 0; i < ctx->n_sweeps; i++) {
        char prefix[80];

        snprintf(prefix, sizeof prefix, "%s_", ctx->sweeps[i].name);
        PND_TRY(pnd_plot_sim(&opt, ctx->sweeps[i].tsv, prefix, &ctx->sweeps[i].figures));
    }

    /* Main runs first: the training figures take each scheme's first p. */
    dirs = malloc((ctx->n_runs ? ctx->n_runs : 1) * sizeof *dirs);
    if (dirs == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory listing runs");
    for (size_t i = 0; i < ctx->n_runs; i++)
        dirs[i] = ctx->runs[i].dir;
    if (ctx->n_runs > 0)
        status = pnd_plot_train(&opt, dirs, ctx->n_runs, &ctx->train_figures);
    free(dirs);
    return status;
}

/* ---- the job ---- */

static void
describe_preset(struct report_context *ctx, const struct preset *pr)
{
    snprintf(ctx->preset_text, sizeof ctx->preset_text,
             "Simulator: p in {%s} with %s draws for the exact checks, p in {%s} with %s draws for the expansions, N in {%s} for convergence, batch sizes {%s} with %s draws. "
             "Training: a 784-%ld-10 tanh MLP on %ld Fashion-MNIST training images (%ld held out for validation, %ld test images; 0 means all), %ld epochs, batch %ld, %ld seed(s) per scheme, p = %g, and p in {%s} for dropout and pernodedrop. "
             "Trained networks in the simulator: schemes dropout, pernodedrop and pernodedrop-gaussian at p in {%s}, %s draws on %zu test images.",
             pr->p_exact, pr->draws_exact, pr->p_expansion, pr->draws_expansion,
             pr->draws_convergence, pr->batch_n, pr->draws_batch, pr->hidden, pr->max_train,
             pr->n_valid, pr->max_test, pr->epochs, pr->batch_size, pr->seeds, pr->p,
             pr->gap_p, pr->trained_p, pr->trained_draws, pr->trained_inputs);
}

static void
context_free(struct report_context *ctx)
{
    for (size_t i = 0; i < ctx->n_sweeps; i++)
        pnd_figure_list_free(&ctx->sweeps[i].figures);
    pnd_figure_list_free(&ctx->train_figures);
    free(ctx->runs);
    ctx->runs = NULL;
}

int
pnd_report_run(const struct pnd_report_config *cfg,
               struct pnd_report_result *result)
{
    struct report_context ctx;
    struct progress progress = {0};
    const struct preset *pr;
    size_t n_trained = 1;
    int status;

    memset(result, 0, sizeof *result);
    if ((int) cfg->preset < 0 || cfg->preset > PND_PRESET_PAPER)
        PND_ERROR(PND_EINVAL, "invalid preset %d: use quick, default or paper", (int) cfg->preset);
    if (cfg->threads < 0)
        PND_ERROR(PND_EINVAL, "invalid thread count %d: use 0 (the OpenMP default) or more",
                  cfg->threads);
    pr = &presets[cfg->preset];

    memset(&ctx, 0, sizeof ctx);
    ctx.cfg = cfg;
    ctx.preset_name = pnd_report_preset_names[cfg->preset];
    ctx.start_s = pnd_wall_seconds();
#ifdef _OPENMP
    if (cfg->threads > 0)
        omp_set_num_threads(cfg->threads);
    report_provenance_init(&ctx.prov, omp_get_max_threads());
#else
    report_provenance_init(&ctx.prov, 1);
#endif
    describe_preset(&ctx, pr);
    if (strlen(cfg->out_dir) + 32 >= REPORT_PATH_SIZE)
        PND_ERROR(PND_EINVAL, "output directory name %s is too long", cfg->out_dir);
    snprintf(ctx.dir, sizeof ctx.dir, "%s", cfg->out_dir);
    snprintf(ctx.figures_dir, sizeof ctx.figures_dir, "%s/figures", cfg->out_dir);
    snprintf(ctx.tables_dir, sizeof ctx.tables_dir, "%s/tables", cfg->out_dir);

    /* Fail before minutes of computation, not at the figures stage. */
    struct pnd_plot_options plot_check;

    pnd_plot_options_init(&plot_check, ctx.figures_dir);
    PND_TRY(pnd_plot_check_gnuplot(&plot_check));
    PND_TRY(pnd_mkdir_p(ctx.dir));

    status = list_runs(&ctx, pr);
    for (const char *c = pr->trained_schemes; *c; c++)
        n_trained += *c == ',';
    progress.start_s = ctx.start_s;
    progress.n_stages = N_SYNTHETIC + ctx.n_runs + n_trained + 2;
    progress.total = (double) (N_SYNTHETIC + n_trained + 2)
                     + TRAIN_RUN_WEIGHT * (double) ctx.n_runs;

    if (status == PND_OK)
        status = run_synthetic(&ctx, pr, &progress);
    if (status == PND_OK)
        status = run_training(&ctx, pr, &progress);
    if (status == PND_OK)
        status = run_trained(&ctx, pr, &progress);
    if (status == PND_OK)
        status = draw_figures(&ctx, &progress);
    if (status == PND_OK) {
        progress_stage(&progress, "tables and document", 1.0);
        status = report_write_document(&ctx);
    }

    if (status == PND_OK) {
        result->n_exact = ctx.n_exact;
        result->n_exact_failed = ctx.n_exact_failed;
        result->n_approx = ctx.n_approx;
        result->n_figures = ctx.train_figures.n;
        for (size_t i = 0; i < ctx.n_sweeps; i++)
            result->n_figures += ctx.sweeps[i].figures.n;
        result->wall_s = pnd_wall_seconds() - ctx.start_s;
    }
    context_free(&ctx);
    return status;
}
