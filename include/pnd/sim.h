/* Monte Carlo estimates of the masked loss and its moments, and the
 * `pnd sim` driver that sets them beside the analytic values.
 *
 * Draw j of a run masks layer l of sample k with the key (seed, l, j, k),
 * so every estimate is a pure function of the seed and the number of draws.
 * Draws are split into fixed chunks whose boundaries do not depend on the
 * thread count. Each chunk is accumulated on its own, and the chunks are
 * merged in chunk order, so the output is the same, byte for byte, for any
 * OMP_NUM_THREADS.
 */
#ifndef PND_SIM_H
#define PND_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pnd/config.h"
#include "pnd/mask.h"
#include "pnd/net.h"

/* --- accumulating moments ------------------------------------------------ */

/* Count, mean and central moment sums M2, M3, M4 of a stream of values.
 * Values are added with Welford's update extended to M3 and M4, and two
 * accumulators merge with the pairwise formulas of Chan, Golub and LeVeque
 * (1979) and Pebay (2008), which keeps the mean and variance accurate over
 * 1e9 draws. */
struct pnd_moment_acc {
    uint64_t n;
    double mean;
    double m2, m3, m4;   /* sums of (x - mean)^2, ^3, ^4 */
};

void pnd_moment_acc_init(struct pnd_moment_acc *acc);
void pnd_moment_acc_add(struct pnd_moment_acc *acc, double x);
/* acc <- acc merged with other (other is appended after acc). */
void pnd_moment_acc_merge(struct pnd_moment_acc *acc,
                          const struct pnd_moment_acc *other);

/* A Monte Carlo estimate of a mean with its sample variance, each with a
 * standard error. */
struct pnd_estimate {
    uint64_t n;      /* draws */
    double mean;
    double se;       /* sqrt(var / n) */
    double var;      /* unbiased sample variance M2 / (n - 1) */
    double var_se;   /* sqrt((m4 - (n-3)/(n-1) var^2) / n), m4 = M4 / n */
};

/* Estimate from an accumulator; needs n >= 2 (PND_EINVAL otherwise). */
int pnd_moment_acc_estimate(const struct pnd_moment_acc *acc,
                            struct pnd_estimate *result);

/* --- Monte Carlo estimators ----------------------------------------------- */

/* Relation between the masks of the n samples of one draw. */
enum pnd_batch_mode {
    PND_BATCH_OWN = 0,      /* the scheme's own semantics: shared for
                               dropconnect and fixed-mask, per sample for
                               the others */
    PND_BATCH_PER_SAMPLE,   /* a fresh mask for every sample (dropconnect
                               and fixed-mask draw as pernodedrop) */
    PND_BATCH_SHARED        /* the mask of sample 0 for every sample */
};

/* Run options shared by the estimators. */
struct pnd_mc_options {
    uint64_t draws;       /* N >= 2 */
    uint64_t seed;        /* mask seed */
    uint64_t chunk;       /* draws per chunk (0: PND_MC_CHUNK_DEFAULT) */
    int threads;          /* OpenMP threads (0: the OpenMP default) */
};

#define PND_MC_CHUNK_DEFAULT 1024

void pnd_mc_options_init(struct pnd_mc_options *opt);

/* Mean and variance over the masks of the mini-batch loss
 * L = (1/n) sum_k l_k over every sample of data.
 *
 * A fixed-mask layer keeps one mask for a whole training run. Here every
 * draw stands for one run, so its mask is drawn afresh per draw as a
 * dropconnect mask; the analytic module averages over the same
 * distribution. */
int pnd_mc_loss(const struct pnd_net *net, const struct pnd_data *data,
                enum pnd_batch_mode mode, const struct pnd_mc_options *opt,
                struct pnd_estimate *result);

/* A one-sample view of sample k of data (no copy). */
struct pnd_data pnd_data_sample_view(const struct pnd_data *data, size_t k);

/* Covariance of the masked pre-activations z (h) of one layer at one
 * sample, with the layer's clean input, against the exact S of the
 * layer's scheme:
 *   per-connection schemes  S_uv = delta_uv s2 sum_i a_ui^2,
 *   input schemes           S_uv = s2 sum_i a_ui a_vi,   a_ui = W_ui x_i.
 * Because E[z] = mu exactly, the estimate averages (z_u - mu_u)(z_v - mu_v)
 * about the exact mean. */
struct pnd_cov_estimate {
    size_t h;
    double *S_mc;            /* (h, h) Monte Carlo covariance */
    double *S_se;            /* (h, h) standard error of each entry */
    double *S_exact;         /* (h, h) exact S */
    struct pnd_estimate trace;     /* of sum_u (z_u - mu_u)^2 */
    struct pnd_estimate offdiag;   /* of sum_{u != v} (z_u - mu_u)(z_v - mu_v) */
    double trace_exact;            /* tr S */
    double offdiag_exact;          /* sum_{u != v} S_uv */
    double mu_norm2;               /* |mu|^2, the scale of rounding in z - mu */
};

struct pnd_cov_estimate *pnd_cov_estimate_alloc(size_t h);
void pnd_cov_estimate_free(struct pnd_cov_estimate *cov);   /* NULL is a no-op */

/* cov must be allocated for the layer's d_out. */
int pnd_mc_preact_cov(const struct pnd_net *net, const struct pnd_data *data,
                      size_t k, size_t layer, const struct pnd_mc_options *opt,
                      struct pnd_cov_estimate *cov);

/* Mean and total variance of the gradient G_l = dL/dW_l of the mini-batch
 * loss (scheme's own batch semantics) for every layer l. The trace of the
 * covariance is estimated in a second pass over the same draws as the mean
 * of |G_j - Gbar|^2 times N / (N - 1). */
struct pnd_grad_estimate {
    size_t n_layers;
    double **mean;                 /* (n_layers) of (d_out, d_in) mean gradients */
    double *mean_norm;             /* (n_layers) Frobenius norms of mean[l] */
    struct pnd_estimate *tr_cov;   /* (n_layers): tr Cov(G_l) is tr_cov[l].mean */
};

struct pnd_grad_estimate *pnd_grad_estimate_alloc(const struct pnd_net *net);
void pnd_grad_estimate_free(struct pnd_grad_estimate *grad); /* NULL is a no-op */

int pnd_mc_grad(const struct pnd_net *net, const struct pnd_data *data,
                const struct pnd_mc_options *opt,
                struct pnd_grad_estimate *grad);

/* Pass rule for a Monte Carlo estimate of a quantity known exactly. */
#define PND_SIM_Z_MAX 4.0

/* Relative rounding tolerance for a deterministic quantity (se == 0). */
#define PND_SIM_ROUNDING_TOL 1e-12

/* z = (mc - exact) / se. With se == 0 (a deterministic quantity) z is 0
 * when |mc - exact| <= PND_SIM_ROUNDING_TOL * max(|mc|, |exact|), else
 * +-HUGE_VAL. */
double pnd_sim_z(double mc, double exact, double se);

/* The same with the rounding tolerance taken relative to
 * max(|mc|, |exact|, scale): scale is the size of the terms that cancel to
 * give the quantity, such as |mu|^2 for a covariance about mu. */
double pnd_sim_z_scaled(double mc, double exact, double se, double scale);

/* --- the pnd sim driver --------------------------------------------------- */

/* A case or a sweep: every combination of the lists is one case. */
struct pnd_sim_config {
    int model;                      /* enum pnd_model, for synthetic networks */
    char *net_path;                 /* network file (docs/sim.md), or NULL */
    char *schemes;                  /* comma list of scheme names, or "all" */
    struct pnd_double_list p;       /* drop probabilities */
    struct pnd_double_list scale;   /* weight scales */
    struct pnd_double_list d;       /* input dimensions */
    struct pnd_double_list h;       /* widths of the masked layers */
    struct pnd_double_list n;       /* batch sizes */
    struct pnd_double_list draws;   /* numbers of draws */
    long c;                         /* readout rows or classes */
    long layers;                    /* masked layers of the mlp model */
    int act;                        /* enum pnd_activation of the mlp model */
    int loss;                       /* enum pnd_loss of the mlp model */
    double noise;                   /* target noise sd or label flip probability */
    uint64_t seed;                  /* mask seed */
    uint64_t data_seed;             /* seed of the synthetic network and data */
    long chunk;                     /* draws per chunk */
    long threads;                   /* 0: OpenMP default */
    long quad_nodes;                /* Gauss-Hermite nodes per dimension */
    long grad_draws;                /* draws of the gradient moments, 0: none */
    bool cov;                       /* estimate pre-activation covariances */
    bool expansions;                /* order2 and order3 rows beside an exact value */
    bool check;                     /* a failed exact comparison is an error */
};

/* Counts of one pnd_sim_run. */
struct pnd_sim_summary {
    size_t cases;
    size_t rows;
    size_t exact_checks;       /* exact comparisons run (mean, variance, ...) */
    size_t exact_failed;       /* of them, with |z| > PND_SIM_Z_MAX */
    double max_abs_z;          /* largest |z| of an exact comparison, 0 if none */
    double elapsed_s;
};

/* Set the defaults. The network is the readout model with d 8, h 4, c 2,
 * n 1, scale 1 and noise 0.1 (mlp: one tanh layer, squared loss). The run
 * is pernodedrop at p 0.1 with 100000 draws, seeds 1, 10 quadrature nodes,
 * the covariance estimate on and 10000 gradient draws. */
void pnd_sim_config_init(struct pnd_sim_config *cfg);
void pnd_sim_config_free(struct pnd_sim_config *cfg);  /* frees the strings */

/* Read settings from the [sim] section of an INI file (keys as the long
 * command-line options, lists comma-separated). */
int pnd_sim_config_read(struct pnd_sim_config *cfg, const char *path);

/* Set one key from a command-line flag, validated as in a file. */
int pnd_sim_config_set(struct pnd_sim_config *cfg, const char *name,
                       const char *value, const char *origin);

/* Write the key table of cfg (for --help and the record of a run). */
int pnd_sim_config_write(const struct pnd_sim_config *cfg, const char *path);

/* Run every case: write the TSV table to tsv_path ("-" or NULL: stdout),
 * the JSON summary to json_path (NULL: none) and a verdict table to
 * stderr. summary may be NULL. Returns PND_EFAILED after writing the
 * outputs when cfg->check is set and an exact comparison failed. */
int pnd_sim_run(const struct pnd_sim_config *cfg, const char *tsv_path,
                const char *json_path, struct pnd_sim_summary *summary);

#endif
