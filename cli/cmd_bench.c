/* pnd bench: speed of the toolkit beside its NumPy and PyTorch peers.
 *
 * A dispatcher over the benchmarks: "sim" (Monte Carlo draws, beside
 * bench/peers/sim_numpy.py), "train" (the trainer, beside its PyTorch peer)
 * and "all". Each benchmark lives in its own function below. Results go to
 * stdout; BENCHMARKS.md records them with the machine they ran on.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_statistics_double.h>

#include "cli/cli.h"
#include "pnd/error.h"
#include "pnd/log.h"
#include "pnd/net.h"
#include "pnd/sim.h"
#include "pnd/rng.h"
#include "pnd/train.h"
#include "base/blas.h"

/* --- pnd bench sim ------------------------------------------------------ */

/* Wall time that the automatic draw count aims at for our side. */
#define BENCH_SIM_TARGET_S 2.0
/* Draws of the first, calibrating run. */
#define BENCH_SIM_CALIBRATION_DRAWS 200
/* Rounds of pnd then the peer. The host's load changes within seconds, and
 * the median of the rounds' ratios does not follow one slow round. */
#define BENCH_SIM_ROUNDS 3
#define BENCH_SIM_MAX_ROUNDS 50

struct bench_sim_options {
    size_t d, h, c;
    double p;
    unsigned long long draws;     /* 0: choose from a calibrating run */
    unsigned long long threads;
    const char *peer;             /* path of sim_numpy.py, or NULL: find it */
    const char *python;
    bool run_peer;
    unsigned long long rounds;    /* pnd, then the peer, this many times */
};

static void
bench_sim_help(void)
{
    printf(
        "Usage: pnd bench sim [OPTIONS]\n\n"
        "Measure Monte Carlo draws per second of the readout model (one masked\n"
        "layer, PerNodeDrop, one sample, squared loss) for pnd and for the\n"
        "vectorised NumPy peer bench/peers/sim_numpy.py on the same thread count.\n\n"
        "  --d N          input dimension (default 256)\n"
        "  --h N          masked layer width (default 128)\n"
        "  --c N          readout rows (default 10)\n"
        "  --p X          drop probability (default 0.1)\n"
        "  --draws N      draws of each side, 0 for about %.0f s of pnd (default 0)\n"
        "  --threads N    threads of both sides (default 1)\n"
        "  --rounds N     rounds of pnd then the peer; the ratio is the median\n"
        "                 of the rounds' ratios (default %d)\n"
        "  --peer FILE    path of sim_numpy.py (default: found beside the sources)\n"
        "  --python FILE  Python interpreter of the peer (default /usr/bin/python3)\n"
        "  --no-peer      measure pnd only\n",
        BENCH_SIM_TARGET_S, BENCH_SIM_ROUNDS);
}

/* Returns the median of x (n <= BENCH_SIM_MAX_ROUNDS) and leaves x as it
 * is. */
static double
median_of(const double *x, size_t n)
{
    double copy[BENCH_SIM_MAX_ROUNDS];

    memcpy(copy, x, n * sizeof *copy);
    return gsl_stats_median(copy, 1, n);
}

/* Time pnd_mc_loss over draws; returns the status. */
static int
bench_sim_ours(const struct pnd_net *net, const struct pnd_data *data,
               unsigned long long draws, int threads, double *elapsed,
               struct pnd_estimate *est)
{
    struct pnd_mc_options opt;
    double start;
    int status;

    pnd_mc_options_init(&opt);
    opt.draws = draws;
    opt.seed = 1;
    opt.threads = threads;
    start = pnd_wall_seconds();
    status = pnd_mc_loss(net, data, PND_BATCH_OWN, &opt, est);
    *elapsed = pnd_wall_seconds() - start;
    return status;
}

/* The peer script: --peer, else bench/peers/sim_numpy.py in the source
 * tree this file was compiled from, else in the working directory. */
static const char *
bench_sim_find_peer(const char *given, char *buffer, size_t size)
{
    const char *source = __FILE__;
    const char *tail = strstr(source, "cli/cmd_bench.c");

    if (given != NULL)
        return given;
    if (tail != NULL) {
        snprintf(buffer, size, "%.*sbench/peers/sim_numpy.py",
                 (int) (tail - source), source);
        if (access(buffer, R_OK) == 0)
            return buffer;
    }
    snprintf(buffer, size, "bench/peers/sim_numpy.py");
    return access(buffer, R_OK) == 0 ? buffer : NULL;
}

/* Write a float64 C-order .npy file (format 1.0) of shape (rows, cols). */
static int
write_npy(const char *path, size_t rows, size_t cols,
          const double *values /* (rows, cols) */)
{
    char header[128];
    int len = snprintf(header, sizeof header,
                       "{'descr': '<f8', 'fortran_order': False, 'shape': (%zu, %zu), }",
                       rows, cols);
    size_t total = 10 + (size_t) len + 1;
    size_t pad = (64 - total % 64) % 64;
    unsigned short header_len = (unsigned short) (len + 1 + pad);
    unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                               (unsigned char) (header_len & 0xff),
                               (unsigned char) (header_len >> 8)};
    FILE *fp = fopen(path, "wb");
    int ok;

    if (fp == NULL)
        PND_ERROR(PND_EIO, "cannot create %s", path);
    ok = fwrite(magic, 1, sizeof magic, fp) == sizeof magic
         && fwrite(header, 1, (size_t) len, fp) == (size_t) len;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', fp) != EOF;
    ok = ok && fputc('\n', fp) != EOF;
    /* x86-64 and the other supported hosts are little-endian. */
    ok = ok && fwrite(values, sizeof *values, rows * cols, fp) == rows * cols;
    if (fclose(fp) != 0 || !ok)
        PND_ERROR(PND_EIO, "cannot write %s", path);
    return PND_OK;
}

/* Save the network and sample 0 as .npy files in dir, for the peer. */
static int
bench_sim_export(const struct pnd_net *net, const struct pnd_data *data,
                 const char *dir)
{
    const struct pnd_layer *layer = &net->layers[0];
    char path[4096];

    snprintf(path, sizeof path, "%s/W.npy", dir);
    PND_TRY(write_npy(path, layer->d_out, layer->d_in, layer->W));
    snprintf(path, sizeof path, "%s/b.npy", dir);
    PND_TRY(write_npy(path, layer->d_out, 1, layer->b));
    snprintf(path, sizeof path, "%s/V.npy", dir);
    PND_TRY(write_npy(path, net->n_out, layer->d_out, net->V));
    snprintf(path, sizeof path, "%s/e.npy", dir);
    PND_TRY(write_npy(path, net->n_out, 1, net->e));
    snprintf(path, sizeof path, "%s/x.npy", dir);
    PND_TRY(write_npy(path, 1, data->d, data->X));
    snprintf(path, sizeof path, "%s/t.npy", dir);
    PND_TRY(write_npy(path, 1, data->c, data->T));
    return PND_OK;
}

static void
bench_sim_remove_export(const char *dir)
{
    static const char *const names[] = {"W", "b", "V", "e", "x", "t"};
    char path[4096];

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.npy", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* Run the NumPy peer and print its line; 0, or 1 when it failed. */
static int
bench_sim_peer(const struct bench_sim_options *o, const char *net_dir,
               unsigned long long draws, double *draws_per_s, double *mean,
               double *se)
{
    char path[4096], command[8192], line[1024];
    const char *peer = bench_sim_find_peer(o->peer, path, sizeof path);
    FILE *pipe;
    int exit_status;

    *draws_per_s = 0.0;
    if (peer == NULL) {
        pnd_log(PND_LOG_ERROR, "bench sim: the NumPy peer sim_numpy.py was not found: pass --peer FILE");
        return 1;
    }
    snprintf(command, sizeof command, "'%s' -c 'import numpy' 2>/dev/null", o->python);
    if (system(command) != 0) {
        printf("numpy: not available (%s cannot import numpy; install python3-numpy to compare)\n",
               o->python);
        return 1;
    }
    snprintf(command, sizeof command,
             "OMP_NUM_THREADS=%llu OPENBLAS_NUM_THREADS=%llu MKL_NUM_THREADS=%llu "
             "'%s' '%s' --net-dir '%s' --p %.17g --draws %llu",
             o->threads, o->threads, o->threads, o->python, peer, net_dir, o->p,
             draws);
    pipe = popen(command, "r");
    if (pipe == NULL) {
        pnd_log(PND_LOG_ERROR, "bench sim: cannot run %s", command);
        return 1;
    }
    line[0] = '\0';
    if (fgets(line, sizeof line, pipe) == NULL)
        line[0] = '\0';
    exit_status = pclose(pipe);
    if (exit_status != 0 || strstr(line, "draws_per_s=") == NULL) {
        pnd_log(PND_LOG_ERROR, "bench sim: the NumPy peer failed (status %d): %s",
                exit_status, command);
        return 1;
    }
    *draws_per_s = strtod(strstr(line, "draws_per_s=") + 12, NULL);
    *mean = strstr(line, " mean=") ? strtod(strstr(line, " mean=") + 6, NULL) : 0.0;
    *se = strstr(line, " se=") ? strtod(strstr(line, " se=") + 4, NULL) : 0.0;
    printf("numpy: %s", line);
    return 0;
}

static int
bench_sim_parse(int argc, char **argv, struct bench_sim_options *o)
{
    o->d = 256;
    o->h = 128;
    o->c = 10;
    o->p = 0.1;
    o->draws = 0;
    o->threads = 1;
    o->peer = NULL;
    o->python = "/usr/bin/python3";
    o->run_peer = true;
    o->rounds = BENCH_SIM_ROUNDS;

    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long number;
        int code = 0;

        if (strcmp(name, "--no-peer") == 0) {
            o->run_peer = false;
            continue;
        }
        if (strcmp(name, "--quiet") == 0 || strcmp(name, "-q") == 0
            || strcmp(name, "--verbose") == 0 || strcmp(name, "-v") == 0)
            continue;
        if (value == NULL)
            return pnd_cli_usage_error("bench sim", "option %s needs a value, or is unknown", name);
        i++;
        if (strcmp(name, "--p") == 0) {
            code = pnd_cli_parse_double("bench sim", name, value, &o->p);
            if (code == 0 && !(o->p >= 0.0 && o->p < 1.0))
                code = pnd_cli_usage_error("bench sim", "--p %s is out of range: use 0 <= p < 1", value);
        } else if (strcmp(name, "--peer") == 0) {
            o->peer = value;
        } else if (strcmp(name, "--python") == 0) {
            o->python = value;
        } else if (strcmp(name, "--d") == 0 || strcmp(name, "--h") == 0
                   || strcmp(name, "--c") == 0 || strcmp(name, "--draws") == 0
                   || strcmp(name, "--threads") == 0
                   || strcmp(name, "--rounds") == 0) {
            code = pnd_cli_parse_u64("bench sim", name, value, &number);
            if (code == 0 && number == 0 && strcmp(name, "--draws") != 0)
                code = pnd_cli_usage_error("bench sim", "%s must be at least 1", name);
            if (code == 0 && strcmp(name, "--draws") == 0 && number == 1)
                code = pnd_cli_usage_error("bench sim", "--draws must be 0 (automatic) or at least 2");
            if (strcmp(name, "--d") == 0)
                o->d = (size_t) number;
            else if (strcmp(name, "--h") == 0)
                o->h = (size_t) number;
            else if (strcmp(name, "--c") == 0)
                o->c = (size_t) number;
            else if (strcmp(name, "--draws") == 0)
                o->draws = number;
            else if (strcmp(name, "--rounds") == 0)
                o->rounds = number;
            else
                o->threads = number;
            if (code == 0 && o->rounds > BENCH_SIM_MAX_ROUNDS)
                code = pnd_cli_usage_error("bench sim", "--rounds %s is too many: use at most %d",
                                           value, BENCH_SIM_MAX_ROUNDS);
        } else {
            code = pnd_cli_usage_error("bench sim", "unknown option '%s'", name);
        }
        if (code != 0)
            return code;
    }
    return 0;
}

static int
bench_sim(int argc, char **argv)
{
    struct bench_sim_options o;
    struct pnd_synth_spec spec;
    struct pnd_net *net = NULL;
    struct pnd_data *data = NULL;
    struct pnd_estimate est;
    unsigned long long draws;
    unsigned long long peer_draws;
    double elapsed, theirs = 0.0, connections, median;
    double ours[BENCH_SIM_MAX_ROUNDS], ratios[BENCH_SIM_MAX_ROUNDS];
    size_t n_ratios = 0;
    char net_dir[] = "/tmp/pnd-bench-sim-XXXXXX";
    bool exported = false;        /* net_dir contains the peer's files */
    int status, code;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            bench_sim_help();
            return 0;
        }
    }
    code = bench_sim_parse(argc, argv, &o);
    if (code != 0)
        return code;
#ifdef PND_HAVE_OPENBLAS
    /* pnd's draws already run in parallel over OpenMP threads, so BLAS
     * threads of their own would only compete with them. */
    openblas_set_num_threads(1);
#endif

    pnd_synth_spec_init(&spec);
    spec.model = PND_MODEL_READOUT;
    spec.d = o.d;
    spec.h[0] = o.h;
    spec.c = o.c;
    status = pnd_net_synth(&spec, &net, &data);
    if (status == PND_OK)
        status = pnd_net_set_scheme(net, PND_SCHEME_PERNODEDROP, o.p, 1);
    if (status != PND_OK)
        goto done;

    /* Calibrate, then run long enough for a stable rate. */
    draws = o.draws;
    if (draws == 0) {
        status = bench_sim_ours(net, data, BENCH_SIM_CALIBRATION_DRAWS,
                                (int) o.threads, &elapsed, &est);
        if (status != PND_OK)
            goto done;
        draws = (unsigned long long) (BENCH_SIM_CALIBRATION_DRAWS
                                      * BENCH_SIM_TARGET_S / (elapsed > 1e-6 ? elapsed : 1e-6));
        if (draws < BENCH_SIM_CALIBRATION_DRAWS)
            draws = BENCH_SIM_CALIBRATION_DRAWS;
    }
    printf("bench sim: readout model d=%zu h=%zu c=%zu, pernodedrop p=%g, one sample, %llu thread%s, %llu round%s\n",
           o.d, o.h, o.c, o.p, o.threads, o.threads == 1 ? "" : "s", o.rounds,
           o.rounds == 1 ? "" : "s");
    connections = (double) o.h * (double) o.d;
    if (o.run_peer) {
        if (mkdtemp(net_dir) == NULL) {
            pnd_log(PND_LOG_ERROR, "bench sim: cannot create a temporary folder under /tmp");
            o.run_peer = false;
        } else {
            exported = true;
            if (bench_sim_export(net, data, net_dir) != PND_OK) {
                pnd_log(PND_LOG_ERROR, "bench sim: %s", pnd_error_message());
                o.run_peer = false;
            }
        }
    }

    /* Each round times pnd, then the peer on a tenth of the draws (at
     * least 200), so that both meet about the same load of the host. */
    peer_draws = draws / 10 > 200 ? draws / 10 : 200;
    for (unsigned long long k = 0; k < o.rounds; k++) {
        double their_mean, their_se;

        status = bench_sim_ours(net, data, draws, (int) o.threads, &elapsed, &est);
        if (status != PND_OK)
            goto done;
        ours[k] = (double) draws / elapsed;
        printf("pnd:   round=%llu draws=%llu elapsed_s=%.6f draws_per_s=%.6g connections_per_s=%.6g mean=%.10g se=%.4g\n",
               k + 1, draws, elapsed, ours[k], ours[k] * connections, est.mean, est.se);
        fflush(stdout);
        if (!o.run_peer)
            continue;
        if (bench_sim_peer(&o, net_dir, peer_draws, &theirs, &their_mean, &their_se) != 0
            || !(theirs > 0.0)) {
            o.run_peer = false;
            n_ratios = 0;
            continue;
        }
        ratios[n_ratios++] = ours[k] / theirs;
        /* Both sides estimate the same E[l]: a sanity check. */
        if (k == 0)
            printf("check: pnd - numpy mean = %.3g (z = %.2f)\n", est.mean - their_mean,
                   (est.mean - their_mean) / sqrt(est.se * est.se + their_se * their_se));
    }
    median = median_of(ours, (size_t) o.rounds);
    printf("pnd:   median draws_per_s=%.6g connections_per_s=%.6g over %llu round%s\n",
           median, median * connections, o.rounds, o.rounds == 1 ? "" : "s");
    if (n_ratios > 0) {
        printf("ratio: pnd / numpy = %.1f draws per second, the median of", median_of(ratios, n_ratios));
        for (size_t k = 0; k < n_ratios; k++)
            printf(" %.1f", ratios[k]);
        printf("\n");
    }
    status = PND_OK;

done:
    if (exported)
        bench_sim_remove_export(net_dir);
    pnd_net_free(net);
    pnd_data_free(data);
    return status == PND_OK ? 0 : pnd_cli_fail("bench sim", status);
}

/* --- pnd bench train ---------------------------------------------------- */

/* Steps of the warm-up run before timing (allocation, page faults). */
#define BENCH_TRAIN_WARMUP_STEPS 2
/* Steps of one scheme in a row. Only the first step of a block finds the
 * caches filled by another scheme, so the median step is that of a warm
 * cache, as in a training run. */
#define BENCH_TRAIN_BLOCK 5

struct bench_train_options {
    char hidden[256];             /* comma list of hidden widths */
    size_t batch;
    double p;
    unsigned long long steps;     /* timed steps of each scheme of ours */
    unsigned long long peer_steps;
    unsigned long long train_size;
    const char *peer;             /* path of train_torch.py, or NULL: find it */
    const char *python;
    bool run_peer;
    bool all_schemes;
};

static void
bench_train_help(void)
{
    printf(
        "Usage: pnd bench train [OPTIONS]\n\n"
        "Measure the time of one training step (forward, backward, Adam update) of\n"
        "a 784-H-10 ReLU MLP on random Fashion-MNIST-sized inputs, with no mask and\n"
        "with PerNodeDrop on the hidden layers, beside the PyTorch peer\n"
        "bench/peers/train_torch.py, which draws a (batch, d_in, d_out) mask tensor\n"
        "per layer and step, in float32 and in float64 (the precision of pnd). Both\n"
        "sides use one thread and report the median time of their timed steps;\n"
        "epochs are extrapolated from it.\n\n"
        "  --hidden LIST     hidden widths (default 256,256)\n"
        "  --batch N         images per step (default 128)\n"
        "  --p X             drop probability (default 0.2)\n"
        "  --steps N         timed steps of each of our schemes (default 20)\n"
        "  --peer-steps N    timed steps of the peer (default 5)\n"
        "  --train-size N    images per epoch for the extrapolation (default 55000)\n"
        "  --all-schemes     time every scheme, not only none and pernodedrop\n"
        "  --peer FILE       path of train_torch.py (default: found beside the sources)\n"
        "  --python FILE     Python interpreter of the peer (default /usr/bin/python3)\n"
        "  --no-peer         measure pnd only\n");
}

static int
bench_train_parse(int argc, char **argv, struct bench_train_options *o)
{
    snprintf(o->hidden, sizeof o->hidden, "256,256");
    o->batch = 128;
    o->p = 0.2;
    o->steps = 20;
    o->peer_steps = 5;
    o->train_size = 55000;
    o->peer = NULL;
    o->python = "/usr/bin/python3";
    o->run_peer = true;
    o->all_schemes = false;

    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long number = 0;
        int code = 0;

        if (strcmp(name, "--no-peer") == 0) {
            o->run_peer = false;
            continue;
        }
        if (strcmp(name, "--all-schemes") == 0) {
            o->all_schemes = true;
            continue;
        }
        if (strcmp(name, "--quiet") == 0 || strcmp(name, "-q") == 0
            || strcmp(name, "--verbose") == 0 || strcmp(name, "-v") == 0)
            continue;
        if (value == NULL)
            return pnd_cli_usage_error("bench train", "option %s needs a value, or is unknown", name);
        i++;
        if (strcmp(name, "--p") == 0) {
            code = pnd_cli_parse_double("bench train", name, value, &o->p);
            if (code == 0 && !(o->p >= 0.0 && o->p < 1.0))
                code = pnd_cli_usage_error("bench train", "--p %s is out of range: use 0 <= p < 1", value);
        } else if (strcmp(name, "--hidden") == 0) {
            if (strlen(value) >= sizeof o->hidden || strspn(value, "0123456789,") != strlen(value))
                code = pnd_cli_usage_error("bench train", "--hidden '%s': use comma-separated widths such as 256,256", value);
            else
                snprintf(o->hidden, sizeof o->hidden, "%s", value);
        } else if (strcmp(name, "--peer") == 0) {
            o->peer = value;
        } else if (strcmp(name, "--python") == 0) {
            o->python = value;
        } else if (strcmp(name, "--batch") == 0 || strcmp(name, "--steps") == 0
                   || strcmp(name, "--peer-steps") == 0 || strcmp(name, "--train-size") == 0) {
            code = pnd_cli_parse_u64("bench train", name, value, &number);
            if (code == 0 && number == 0)
                code = pnd_cli_usage_error("bench train", "%s must be at least 1", name);
            if (strcmp(name, "--batch") == 0)
                o->batch = (size_t) number;
            else if (strcmp(name, "--steps") == 0)
                o->steps = number;
            else if (strcmp(name, "--peer-steps") == 0)
                o->peer_steps = number;
            else
                o->train_size = number;
        } else {
            code = pnd_cli_usage_error("bench train", "unknown option '%s'", name);
        }
        if (code != 0)
            return code;
    }
    return 0;
}

/* One of our MLPs under timing: the network with one scheme on its hidden
 * layers, its workspace, and Adam's state. */
struct train_run {
    enum pnd_scheme scheme;
    struct pnd_mlp *mlp;
    struct pnd_mlp_workspace *w;
    double *grad, *m, *v;         /* (n_params) each */
    double *step_s;               /* (steps) seconds of each timed step */
};

static void
train_run_free(struct train_run *run)
{
    free(run->grad);
    free(run->m);
    free(run->v);
    free(run->step_s);
    pnd_mlp_workspace_free(run->w);
    pnd_mlp_free(run->mlp);
    memset(run, 0, sizeof *run);
}

static int
train_run_alloc(const struct bench_train_options *o, enum pnd_scheme scheme,
                struct train_run *run)
{
    struct pnd_mlp_spec spec;
    char widths[256], *save = NULL, *item;
    int status;

    memset(run, 0, sizeof *run);
    run->scheme = scheme;
    memset(&spec, 0, sizeof spec);
    spec.widths[0] = 784;
    snprintf(widths, sizeof widths, "%s", o->hidden);
    for (item = strtok_r(widths, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (spec.n_layers == PND_TRAIN_MAX_HIDDEN || atoi(item) <= 0)
            PND_ERROR(PND_EINVAL, "--hidden %s: give 1 to %d positive widths",
                      o->hidden, PND_TRAIN_MAX_HIDDEN);
        spec.widths[spec.n_layers + 1] = (size_t) atoi(item);
        spec.act[spec.n_layers] = PND_ACT_RELU;
        spec.scheme[spec.n_layers] = scheme;
        spec.p[spec.n_layers] = o->p;
        spec.n_layers++;
    }
    spec.widths[spec.n_layers + 1] = 10;
    spec.act[spec.n_layers] = PND_ACT_IDENTITY;
    spec.scheme[spec.n_layers] = PND_SCHEME_NONE;
    spec.n_layers++;

    status = pnd_mlp_alloc(&spec, 1, &run->mlp);
    if (status == PND_OK)
        status = pnd_mlp_init_params(run->mlp, PND_INIT_HE, 1);
    if (status == PND_OK)
        status = pnd_mlp_workspace_alloc(run->mlp, o->batch, &run->w);
    if (status != PND_OK) {
        train_run_free(run);
        return status;
    }
    run->grad = malloc(run->mlp->n_params * sizeof *run->grad);
    run->m = calloc(run->mlp->n_params, sizeof *run->m);
    run->v = calloc(run->mlp->n_params, sizeof *run->v);
    run->step_s = malloc(o->steps * sizeof *run->step_s);
    if (run->grad == NULL || run->m == NULL || run->v == NULL
        || run->step_s == NULL) {
        train_run_free(run);
        PND_ERROR(PND_ENOMEM, "out of memory for the benchmark");
    }
    return PND_OK;
}

/* Runs and times training step t: the masked forward and backward passes,
 * then an Adam update of every parameter. */
static int
train_run_step(struct train_run *run, size_t batch, const double *X,
               const int *labels, unsigned long long t, double *seconds)
{
    struct pnd_mlp *mlp = run->mlp;
    double start = pnd_wall_seconds(), loss;

    PND_TRY(pnd_mlp_train_loss(mlp, batch, X, labels, t, run->grad, &loss,
                               run->w));
    for (size_t j = 0; j < mlp->n_params; j++) {
        run->m[j] = 0.9 * run->m[j] + 0.1 * run->grad[j];
        run->v[j] = 0.999 * run->v[j] + 0.001 * run->grad[j] * run->grad[j];
        mlp->params[j] -= 1e-3 * run->m[j] / (sqrt(run->v[j]) + 1e-8);
    }
    *seconds = pnd_wall_seconds() - start;
    return PND_OK;
}

/* Measures the seconds per training step of our MLP for each of the n
 * schemes, as the median of o->steps timed steps. The schemes take turns in blocks of
 * BENCH_TRAIN_BLOCK steps, so that a change of the machine's load during
 * the run reaches all of them alike and their ratios stay put. */
static int
bench_train_ours(const struct bench_train_options *o,
                 const enum pnd_scheme *schemes, int n,
                 double *seconds_per_step /* (n) */)
{
    struct train_run runs[PND_SCHEME_COUNT];
    double *X = NULL;                 /* (batch, 784) */
    int *labels = NULL;               /* (batch) */
    pnd_pcg64 r;
    uint64_t coords[1] = {0};
    int status = PND_OK, n_ready = 0;

    X = malloc(o->batch * 784 * sizeof *X);
    labels = malloc(o->batch * sizeof *labels);
    if (X == NULL || labels == NULL) {
        status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                               "out of memory for the benchmark");
        goto done;
    }
    pnd_rng_derive(&r, 1, coords, 1);
    for (size_t i = 0; i < o->batch * 784; i++)
        X[i] = pnd_pcg64dxsm_double(&r);
    for (size_t k = 0; k < o->batch; k++)
        labels[k] = (int) pnd_pcg64dxsm_bounded(&r, 10);
    for (; n_ready < n; n_ready++) {
        status = train_run_alloc(o, schemes[n_ready], &runs[n_ready]);
        if (status != PND_OK)
            goto done;
    }

    for (unsigned long long t0 = 0; t0 < o->steps + BENCH_TRAIN_WARMUP_STEPS;
         t0 += BENCH_TRAIN_BLOCK) {
        for (int s = 0; s < n; s++) {
            for (unsigned long long t = t0; t < t0 + BENCH_TRAIN_BLOCK
                 && t < o->steps + BENCH_TRAIN_WARMUP_STEPS; t++) {
                double seconds;

                status = train_run_step(&runs[s], o->batch, X, labels, t,
                                        &seconds);
                if (status != PND_OK)
                    goto done;
                if (t >= BENCH_TRAIN_WARMUP_STEPS)
                    runs[s].step_s[t - BENCH_TRAIN_WARMUP_STEPS] = seconds;
            }
        }
    }
    /* The median step, as the peer reports: a step slowed by another job
     * on a shared machine moves it less than the mean. */
    for (int s = 0; s < n; s++)
        seconds_per_step[s] = gsl_stats_median(runs[s].step_s, 1, o->steps);

done:
    for (int s = 0; s < n_ready; s++)
        train_run_free(&runs[s]);
    free(X);
    free(labels);
    return status;
}

/* Run the PyTorch peer; 0 with its seconds per step, 1 when it failed or
 * PyTorch is missing (the reason is printed). */
static int
bench_train_peer(const struct bench_train_options *o, const char *dtype,
                 double *seconds_per_step)
{
    char path[4096], command[8192], header[1024], line[1024];
    const char *peer = o->peer;
    const char *source = __FILE__;
    const char *tail = strstr(source, "cli/cmd_bench.c");
    FILE *pipe;
    int exit_status;
    char *field, *save = NULL;

    if (peer == NULL && tail != NULL) {
        snprintf(path, sizeof path, "%.*sbench/peers/train_torch.py", (int) (tail - source), source);
        if (access(path, R_OK) == 0)
            peer = path;
    }
    if (peer == NULL && access("bench/peers/train_torch.py", R_OK) == 0)
        peer = "bench/peers/train_torch.py";
    if (peer == NULL) {
        printf("torch: the peer train_torch.py was not found: pass --peer FILE\n");
        return 1;
    }
    snprintf(command, sizeof command, "'%s' -c 'import torch' 2>/dev/null", o->python);
    if (system(command) != 0) {
        printf("torch: not available (%s cannot import torch; install python3-torch to compare)\n",
               o->python);
        return 1;
    }
    snprintf(command, sizeof command,
             "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "
             "'%s' '%s' --hidden %s --batch %zu --p %.17g --steps %llu --threads 1 "
             "--train-size %llu --dtype %s",
             o->python, peer, o->hidden, o->batch, o->p, o->peer_steps, o->train_size, dtype);
    pipe = popen(command, "r");
    if (pipe == NULL) {
        printf("torch: cannot run %s\n", command);
        return 1;
    }
    if (fgets(header, sizeof header, pipe) == NULL || fgets(line, sizeof line, pipe) == NULL)
        line[0] = '\0';
    exit_status = pclose(pipe);
    if (exit_status != 0 || line[0] == '\0') {
        printf("torch: the peer failed (status %d): %s\n", exit_status, command);
        return 1;
    }
    printf("torch: %s", line);
    /* Column 8 of the peer's line is s_per_step. */
    field = strtok_r(line, "\t", &save);
    for (int column = 1; field != NULL && column < 8; column++)
        field = strtok_r(NULL, "\t", &save);
    *seconds_per_step = field ? strtod(field, NULL) : 0.0;
    return *seconds_per_step > 0 ? 0 : 1;
}

static int
bench_train(int argc, char **argv)
{
    struct bench_train_options o;
    static const enum pnd_scheme pair[] = {PND_SCHEME_NONE, PND_SCHEME_PERNODEDROP};
    double none_s = 0, pnd_s = 0, peer_s = 0, steps_per_epoch;
    int code;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            bench_train_help();
            return 0;
        }
    }
    code = bench_train_parse(argc, argv, &o);
    if (code != 0)
        return code;
    steps_per_epoch = (double) ((o.train_size + o.batch - 1) / o.batch);
#ifdef PND_HAVE_OPENBLAS
    openblas_set_num_threads(1);
#endif

    {
        char shown[256];

        snprintf(shown, sizeof shown, "%s", o.hidden);
        for (char *c = shown; *c; c++)
            *c = *c == ',' ? '-' : *c;
        printf("bench train: MLP 784-%s-10 relu, batch %zu, p=%g, 1 thread, epoch = %.0f steps (%llu images)\n",
               shown, o.batch, o.p, steps_per_epoch, o.train_size);
    }
    {
        enum pnd_scheme schemes[PND_SCHEME_COUNT];
        double seconds[PND_SCHEME_COUNT];
        int n = o.all_schemes ? PND_SCHEME_COUNT : 2;
        int status;

        for (int s = 0; s < n; s++)
            schemes[s] = o.all_schemes ? (enum pnd_scheme) s : pair[s];
        status = bench_train_ours(&o, schemes, n, seconds);
        if (status != PND_OK)
            return pnd_cli_fail("bench train", status);
        for (int s = 0; s < n; s++) {
            if (schemes[s] == PND_SCHEME_NONE)
                none_s = seconds[s];
            if (schemes[s] == PND_SCHEME_PERNODEDROP)
                pnd_s = seconds[s];
        }
        for (int s = 0; s < n; s++)
            printf("pnd:   scheme=%s steps=%llu s_per_step=%.6f s_per_epoch=%.2f ratio_to_none=%.2f\n",
                   pnd_scheme_name(schemes[s]), o.steps, seconds[s],
                   seconds[s] * steps_per_epoch,
                   none_s > 0 ? seconds[s] / none_s : 1.0);
        fflush(stdout);
    }
    /* float32 is the peer's default; float64 is the precision of pnd. */
    if (o.run_peer && bench_train_peer(&o, "float32", &peer_s) == 0)
        printf("ratio: torch float32 / pnd = %.1f (pernodedrop, time per step)\n", peer_s / pnd_s);
    if (o.run_peer && bench_train_peer(&o, "float64", &peer_s) == 0)
        printf("ratio: torch float64 / pnd = %.1f (pernodedrop, time per step)\n", peer_s / pnd_s);
    printf("ratio: pnd pernodedrop / pnd none = %.2f (time per step)\n", pnd_s / none_s);
    return 0;
}

/* --- dispatcher --------------------------------------------------------- */

static void
bench_help(void)
{
    printf("Usage: pnd bench sim|train|all [OPTIONS]\n\n"
           "  sim     Monte Carlo draws per second beside the NumPy peer\n"
           "  train   training speed beside the PyTorch peer\n"
           "  all     both, with their default options\n\n"
           "Run 'pnd bench sim --help' for the options of one benchmark.\n");
}

int
pnd_cmd_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        bench_help();
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "sim") == 0)
        return bench_sim(argc - 1, argv + 1);
    if (strcmp(argv[1], "train") == 0)
        return bench_train(argc - 1, argv + 1);
    if (strcmp(argv[1], "all") == 0) {
        char *no_args[] = {argv[1], NULL};
        int code = bench_sim(1, no_args);
        int code_train = bench_train(1, no_args);

        return code != 0 ? code : code_train;
    }
    return pnd_cli_usage_error("bench", "unknown benchmark '%s': use sim, train or all",
                               argv[1]);
}
