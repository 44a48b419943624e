/* Data sets, MLPs and the trainer.
 *
 * Fashion-MNIST (or any IDX or CSV image set) is read into a pnd_dataset of
 * doubles. A pnd_mlp is a stack of dense layers, each masked by its own
 * scheme through pnd_layer_forward and pnd_layer_backward (pnd/mask.h), with
 * a softmax cross-entropy output layer. pnd_train_run trains one network
 * with one scheme and one seed, writes a run directory and fills a
 * pnd_train_result. pnd_train_sweep repeats it over schemes and seeds.
 * docs/train.md describes the options, the outputs and their formats.
 */
#ifndef PND_TRAIN_H
#define PND_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pnd/config.h"
#include "pnd/mask.h"
#include "pnd/net.h"

/* Maximum number of hidden layers: with the output layer, a network has at
 * most PND_NET_MAX_LAYERS dense layers, so that pnd sim can read an export. */
#define PND_TRAIN_MAX_HIDDEN 7
/* Maximum number of dense layers: the hidden layers and the output layer. */
#define PND_TRAIN_MAX_LAYERS (PND_TRAIN_MAX_HIDDEN + 1)
/* Maximum number of schemes that one sweep compares. */
#define PND_TRAIN_MAX_SCHEMES PND_SCHEME_COUNT

/* ---------------------------------------------------------------- data */

/* Images with integer labels, pixels as doubles. */
struct pnd_dataset {
    size_t n;         /* number of images */
    size_t d;         /* pixels per image (rows * cols for IDX) */
    size_t c;         /* number of classes: 1 + the largest label */
    double *X;        /* (n, d), row-major */
    int *labels;      /* (n), values in [0, c) */
};

/* Allocate a data set of n images of d pixels with c classes, X and labels
 * zero. Caller frees with pnd_dataset_free. */
int pnd_dataset_alloc(size_t n, size_t d, size_t c, struct pnd_dataset **result);
void pnd_dataset_free(struct pnd_dataset *ds);  /* NULL is a no-op */

/* Read an IDX image file (magic 0x00000803, unsigned bytes) and its IDX
 * label file (magic 0x00000801), gzipped or not. Pixels become
 * value / pixel_max. PND_EFORMAT names the file and the byte offset for a
 * wrong magic number, a truncated file, corrupt gzip data or image and
 * label counts that differ, and PND_EIO when a file cannot be opened. */
int pnd_dataset_read_idx(const char *images_path, const char *labels_path,
                         double pixel_max, struct pnd_dataset **result);

/* Read a CSV file, gzipped or not: one image a line, the label in the first
 * column, then the pixels; an optional header line (first field not a
 * number) is skipped. Every line must have the same number of fields.
 * Pixels become value / pixel_max. PND_EFORMAT names the line and column. */
int pnd_dataset_read_csv(const char *path, double pixel_max,
                         struct pnd_dataset **result);

/* Move n_valid images chosen by a permutation seeded by split_seed out of
 * *train into a new *valid (order of the rest kept). n_valid may be 0. */
int pnd_dataset_split(struct pnd_dataset **train, size_t n_valid,
                      uint64_t split_seed, struct pnd_dataset **valid);

/* Keep the first n images of ds (n <= ds->n). */
int pnd_dataset_truncate(struct pnd_dataset *ds, size_t n);

/* Per-pixel mean and standard deviation of ref, applied to every data set
 * in sets (NULL entries skipped). A pixel with standard deviation below
 * 1e-8 (constant on ref) is only centred. */
int pnd_dataset_standardize(const struct pnd_dataset *ref,
                            struct pnd_dataset *const *sets, size_t n_sets);

/* ---------------------------------------------------------------- MLP */

enum pnd_init {
    PND_INIT_AUTO = 0,   /* He for relu and softplus layers, Glorot otherwise */
    PND_INIT_GLOROT,     /* uniform on +-sqrt(6 / (d_in + d_out)) */
    PND_INIT_HE          /* normal with variance 2 / d_in */
};
extern const char *const pnd_init_names[];  /* "auto", "glorot", "he", NULL */

/* Architecture: layer l maps widths[l] to widths[l + 1], and the last layer is
 * the softmax output layer (identity activation). */
struct pnd_mlp_spec {
    size_t n_layers;                               /* hidden layers + 1 */
    size_t widths[PND_TRAIN_MAX_LAYERS + 1];       /* (n_layers + 1) */
    enum pnd_activation act[PND_TRAIN_MAX_LAYERS]; /* (n_layers), last identity */
    enum pnd_scheme scheme[PND_TRAIN_MAX_LAYERS];  /* (n_layers) */
    double p[PND_TRAIN_MAX_LAYERS];                /* (n_layers) drop probability */
};

/* A network's parameters in one contiguous block with views per layer. */
struct pnd_mlp {
    struct pnd_mlp_spec spec;
    uint64_t seed;                           /* masks and fixed-mask bits */
    size_t n_params;
    double *params;                          /* (n_params): W_0, b_0, W_1, ... */
    double *W[PND_TRAIN_MAX_LAYERS];         /* views: (widths[l+1], widths[l]) */
    double *b[PND_TRAIN_MAX_LAYERS];         /* views: (widths[l+1]) */
    uint64_t *fixed_bits[PND_TRAIN_MAX_LAYERS]; /* (h, ceil(d/64)) for fixed-mask layers, else NULL */
};

/* Allocate an MLP with zero parameters and fixed-mask bits drawn from
 * (seed, layer). Caller frees with pnd_mlp_free. */
int pnd_mlp_alloc(const struct pnd_mlp_spec *spec, uint64_t seed,
                  struct pnd_mlp **result);
void pnd_mlp_free(struct pnd_mlp *mlp);   /* NULL is a no-op */

/* Glorot or He initialisation of every weight, from generators derived
 * from (seed, layer). Biases start at zero. */
int pnd_mlp_init_params(struct pnd_mlp *mlp, enum pnd_init init, uint64_t seed);

/* Offsets of each layer's W and b inside a block laid out like params, for
 * gradients and optimiser moments: W_l = block + w_offset[l]. */
void pnd_mlp_offsets(const struct pnd_mlp *mlp, size_t *w_offset,
                     size_t *b_offset);

/* Scratch for forward and backward passes of up to max_batch samples. */
struct pnd_mlp_workspace;
int pnd_mlp_workspace_alloc(const struct pnd_mlp *mlp, size_t max_batch,
                            struct pnd_mlp_workspace **result);
void pnd_mlp_workspace_free(struct pnd_mlp_workspace *w);  /* NULL is a no-op */

/* Masked training pass over the n samples X (n, d) with labels: mean
 * softmax cross-entropy into *loss and, when grad is not NULL, its gradient
 * (n_params, laid out like params) written (not added). Layer l of sample
 * k uses the mask key (mlp->seed, l, step, k). */
int pnd_mlp_train_loss(const struct pnd_mlp *mlp, size_t n, const double *X,
                       const int *labels, uint64_t step, double *grad,
                       double *loss, struct pnd_mlp_workspace *w);

/* Deterministic evaluation (no masks, except fixed-mask) of a data set in
 * chunks: mean cross-entropy and accuracy. */
int pnd_mlp_evaluate(const struct pnd_mlp *mlp, const struct pnd_dataset *ds,
                     double *loss, double *accuracy,
                     struct pnd_mlp_workspace *w);

/* Activations of hidden layer `layer` (0-based) for the first n samples of
 * ds, deterministically as in pnd_mlp_evaluate: H (n, widths[layer + 1]). */
int pnd_mlp_hidden(const struct pnd_mlp *mlp, const struct pnd_dataset *ds,
                   size_t n, size_t layer, double *H,
                   struct pnd_mlp_workspace *w);

/* A non-owning pnd_net view of mlp (every layer, softmax cross-entropy, no
 * readout): layers must have room for spec.n_layers entries. */
void pnd_mlp_net_view(const struct pnd_mlp *mlp, struct pnd_layer *layers,
                      struct pnd_net *net);

/* Checkpoints: the architecture, seed, training position and parameters in
 * the binary format of docs/train.md, with a CRC32. The reader checks the
 * magic, version, dimensions, enums, length, CRC and finiteness and
 * returns PND_EFORMAT naming the file and what is wrong. */
int pnd_mlp_checkpoint_write(const char *path, const struct pnd_mlp *mlp,
                             uint64_t epoch, uint64_t step);
int pnd_mlp_checkpoint_read(const char *path, struct pnd_mlp **result,
                            uint64_t *epoch, uint64_t *step);

/* Write mlp as the text-matrix INI network description that pnd sim reads
 * (docs/sim.md), into dir/net.ini with its matrices, and the first n_inputs
 * images and labels of ds (may be NULL) as text matrices. */
int pnd_mlp_export(const struct pnd_mlp *mlp, const struct pnd_dataset *ds,
                   size_t n_inputs, const char *dir);

/* ---------------------------------------------------------------- statistics */

/* Co-adaptation statistics of one hidden layer (docs/train.md defines each
 * and the convention for dead units). */
struct pnd_coadapt {
    double mean_abs_corr;   /* mean |C_uv| over u != v */
    double corr_fro;        /* |C - I|_F / sqrt(h (h - 1)) */
    double decov;           /* 1/2 (|K|_F^2 - |diag K|^2) */
    double participation;   /* tr(K)^2 / tr(K^2) */
    double R_diag;          /* Dropout-view second-order terms, averaged */
    double R_cross;
    size_t n_dead;          /* units with zero variance */
};

/* Covariance statistics of the activations H (n, h): fills every field
 * but R_diag and R_cross. C (h, h) and K (h, h) receive the Pearson
 * correlation and the covariance (divisor n); n >= 2, h >= 1. */
int pnd_coadapt_activations(size_t n, size_t h, const double *H, double *K,
                            double *C, struct pnd_coadapt *result);

/* R_diag and R_cross of every hidden layer as input Dropout with drop
 * probability p[l] would see them, averaged over the n samples X (n, d)
 * with labels: R_diag (n_hidden) and R_cross (n_hidden). Exact Hessians,
 * batched with BLAS. pnd_expand_layer_dropout_terms gives the same values. */
int pnd_coadapt_dropout_terms(const struct pnd_mlp *mlp, size_t n,
                              const double *X, const int *labels,
                              const double *p, double *R_diag, double *R_cross);

/* ---------------------------------------------------------------- trainer */

enum pnd_optimizer { PND_OPT_SGD = 0, PND_OPT_ADAM };
enum pnd_lr_schedule { PND_LR_CONSTANT = 0, PND_LR_COSINE };
enum pnd_data_format { PND_FORMAT_IDX = 0, PND_FORMAT_CSV };

/* Every option of a training run. Strings are malloc'd and owned by the
 * configuration: free with pnd_train_config_free. */
struct pnd_train_config {
    /* [data] */
    int format;                 /* enum pnd_data_format */
    char *train_images;         /* IDX images, or the CSV file */
    char *train_labels;         /* IDX labels (unused for CSV) */
    char *test_images;
    char *test_labels;
    double pixel_max;           /* pixel value that maps to 1 */
    long n_valid;               /* images held out of the training set */
    uint64_t split_seed;        /* seed of the validation split */
    long max_train;             /* keep at most this many training images, 0 = all */
    long max_test;              /* 0 = all */
    bool standardize;           /* per-pixel, statistics of the training split */

    /* [model] */
    struct pnd_double_list hidden;   /* hidden widths */
    int activation;                  /* enum pnd_activation for every hidden layer */
    int scheme;                      /* enum pnd_scheme for every hidden layer */
    double p;                        /* drop probability of every hidden layer */
    char *layer_activations;         /* optional comma list, one per hidden layer */
    char *layer_schemes;             /* optional comma list, one per hidden layer */
    struct pnd_double_list layer_p;  /* optional, one per hidden layer */
    int output_scheme;               /* enum pnd_scheme of the output layer */
    double output_p;
    int init;                        /* enum pnd_init */

    /* [train] */
    uint64_t seed;
    long epochs;
    long batch_size;
    int optimizer;              /* enum pnd_optimizer */
    double lr;
    double lr_min;              /* final learning rate of the cosine schedule */
    int schedule;               /* enum pnd_lr_schedule */
    double momentum;            /* SGD */
    double beta1, beta2, adam_eps;
    double weight_decay;        /* L2 on weights (not biases), added to the gradient */
    long patience;              /* epochs without a better validation loss, 0 = off */
    long checkpoint_every;      /* epochs between checkpoints, 0 = only the last */

    /* [stats] */
    long stats_samples;         /* validation images for the co-adaptation statistics */
    long r_samples;             /* of those, images for R_diag and R_cross */
    long eval_batch;            /* chunk size of evaluations */
};

/* Defaults: the recipe of docs/train.md. */
int pnd_train_config_init(struct pnd_train_config *cfg);
void pnd_train_config_free(struct pnd_train_config *cfg);

/* Shrink cfg to a quick run: at most max_train training images, epochs
 * epochs, and statistics on a few hundred images. */
void pnd_train_config_quick(struct pnd_train_config *cfg, long max_train,
                            long epochs);

/* The key table of cfg for pnd_config_read and pnd_config_set: keys must
 * have room for PND_TRAIN_CONFIG_MAX_KEYS entries. Returns the count. */
#define PND_TRAIN_CONFIG_MAX_KEYS 64
size_t pnd_train_config_keys(struct pnd_train_config *cfg,
                             struct pnd_config_key *keys);

/* Read an INI file over cfg (keys not in the file keep their value). */
int pnd_train_config_read(struct pnd_train_config *cfg, const char *path);

/* Write the resolved configuration as an INI file that
 * pnd_train_config_read accepts. */
int pnd_train_config_write(struct pnd_train_config *cfg, const char *path);

/* Check the combination of values and build the architecture for input
 * dimension d and c classes. */
int pnd_train_config_spec(const struct pnd_train_config *cfg, size_t d,
                          size_t c, struct pnd_mlp_spec *spec);

/* Final numbers of one run. */
struct pnd_train_result {
    size_t epochs_run;
    size_t best_epoch;          /* epoch of the lowest validation loss */
    size_t steps;
    double train_loss, train_acc;   /* final, clean */
    double val_loss, val_acc;
    double test_loss, test_acc;
    double time_train_s;        /* total training-step time */
    double time_epoch_s;        /* mean training time per epoch */
    double time_total_s;
    size_t n_hidden;
    struct pnd_coadapt coadapt[PND_TRAIN_MAX_HIDDEN];  /* last epoch */
};

/* The three data sets of a run, read and prepared as cfg specifies. */
struct pnd_train_data {
    struct pnd_dataset *train;
    struct pnd_dataset *valid;  /* may have n == 0 */
    struct pnd_dataset *test;
};
int pnd_train_data_read(const struct pnd_train_config *cfg,
                        struct pnd_train_data *data);
void pnd_train_data_free(struct pnd_train_data *data);

/* Train one network as cfg specifies on data (read from cfg's files when data
 * is NULL) and write run_dir (created; NULL writes nothing): config.ini,
 * log.tsv, summary.json, corr_L<l>.tsv, checkpoint.pnd. PND_ENUMERIC when
 * the loss becomes NaN or Inf, naming the step and the last finite loss. */
int pnd_train_run(const struct pnd_train_config *cfg, const char *run_dir,
                  struct pnd_train_result *result);
int pnd_train_run_data(const struct pnd_train_config *cfg,
                       const struct pnd_train_data *data, const char *run_dir,
                       struct pnd_train_result *result);

/* Mean and 95% t-interval half-width of x (n). The half-width is 0 for n < 2. */
void pnd_train_mean_ci(const double *x, size_t n, double *mean,
                       double *half_width);

/* Run every scheme of schemes (n_schemes) on every hidden layer, for seeds
 * cfg->seed .. cfg->seed + n_seeds - 1, into run_dir/<scheme>/seed<S>, and
 * write run_dir/compare.tsv with the mean and 95% t-interval of each final
 * number per scheme. results is (n_schemes, n_seeds), or NULL. */
int pnd_train_sweep(const struct pnd_train_config *cfg,
                    const enum pnd_scheme *schemes, size_t n_schemes,
                    size_t n_seeds, const char *run_dir,
                    struct pnd_train_result *results);

#endif
