/* Configuration of a training run: defaults (the recipe of docs/train.md),
 * the key table that validates INI files and command-line flags, the
 * resolved-configuration writer and the architecture built from it.
 */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/train.h"

#define DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"
/* Largest p the key table lets through, so that pnd_check_p gives the message. */
#define P_MAX 0x1.fffffffffffffp-1

static const char *const format_names[] = {"idx", "csv", NULL};
static const char *const optimizer_names[] = {"sgd", "adam", NULL};
static const char *const schedule_names[] = {"constant", "cosine", NULL};
/* In the order of enum pnd_activation. */
static const char *const activation_names[] = {"identity", "tanh", "sigmoid",
                                               "softplus", "relu", NULL};

static int
set_string(char **field, const char *value)
{
    char *copy = strdup(value);

    if (copy == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for a configuration string");
    free(*field);
    *field = copy;
    return PND_OK;
}

int
pnd_train_config_init(struct pnd_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->format = PND_FORMAT_IDX;
    if (set_string(&cfg->train_images, DEFAULT_DATA_DIR "/train-images-idx3-ubyte.gz") != PND_OK
        || set_string(&cfg->train_labels, DEFAULT_DATA_DIR "/train-labels-idx1-ubyte.gz") != PND_OK
        || set_string(&cfg->test_images, DEFAULT_DATA_DIR "/t10k-images-idx3-ubyte.gz") != PND_OK
        || set_string(&cfg->test_labels, DEFAULT_DATA_DIR "/t10k-labels-idx1-ubyte.gz") != PND_OK
        || set_string(&cfg->layer_activations, "") != PND_OK
        || set_string(&cfg->layer_schemes, "") != PND_OK) {
        pnd_train_config_free(cfg);
        return PND_ENOMEM;
    }
    cfg->pixel_max = 255;
    cfg->n_valid = 5000;
    cfg->split_seed = 1;
    cfg->max_train = 0;
    cfg->max_test = 0;
    cfg->standardize = false;

    cfg->hidden.n = 2;
    cfg->hidden.v[0] = 256;
    cfg->hidden.v[1] = 256;
    cfg->activation = PND_ACT_RELU;
    cfg->scheme = PND_SCHEME_PERNODEDROP;
    cfg->p = 0.2;
    cfg->layer_p.n = 0;
    cfg->output_scheme = PND_SCHEME_NONE;
    cfg->output_p = 0;
    cfg->init = PND_INIT_AUTO;

    cfg->seed = 1;
    cfg->epochs = 25;
    cfg->batch_size = 128;
    cfg->optimizer = PND_OPT_ADAM;
    cfg->lr = 1e-3;
    cfg->lr_min = 0;
    cfg->schedule = PND_LR_COSINE;
    cfg->momentum = 0.9;
    cfg->beta1 = 0.9;
    cfg->beta2 = 0.999;
    cfg->adam_eps = 1e-8;
    cfg->weight_decay = 0;
    cfg->patience = 0;
    cfg->checkpoint_every = 0;

    cfg->stats_samples = 1000;
    cfg->r_samples = 100;
    cfg->eval_batch = 1000;
    return PND_OK;
}

void
pnd_train_config_free(struct pnd_train_config *cfg)
{
    free(cfg->train_images);
    free(cfg->train_labels);
    free(cfg->test_images);
    free(cfg->test_labels);
    free(cfg->layer_activations);
    free(cfg->layer_schemes);
    cfg->train_images = cfg->train_labels = NULL;
    cfg->test_images = cfg->test_labels = NULL;
    cfg->layer_activations = cfg->layer_schemes = NULL;
}

void
pnd_train_config_quick(struct pnd_train_config *cfg, long max_train,
                       long epochs)
{
    cfg->max_train = max_train;
    cfg->epochs = epochs;
    if (cfg->n_valid > max_train / 5)
        cfg->n_valid = max_train / 5;
    if (cfg->max_test == 0 || cfg->max_test > 2000)
        cfg->max_test = 2000;
    if (cfg->stats_samples > 300)
        cfg->stats_samples = 300;
    if (cfg->r_samples > 30)
        cfg->r_samples = 30;
}

#define KEY(sec, nm, ty, ptr, lo, hi, ch, hp) \
    keys[n++] = (struct pnd_config_key) {sec, nm, ty, ptr, lo, hi, ch, hp}

size_t
pnd_train_config_keys(struct pnd_train_config *cfg, struct pnd_config_key *keys)
{
    size_t n = 0;

    KEY("data", "format", PND_CONFIG_CHOICE, &cfg->format, 0, 0, format_names,
        "input format: idx (images and labels files) or csv (label, then pixels)");
    KEY("data", "train_images", PND_CONFIG_STRING, &cfg->train_images, 0, 0, NULL,
        "training images (IDX, gzipped or not) or the training CSV file");
    KEY("data", "train_labels", PND_CONFIG_STRING, &cfg->train_labels, 0, 0, NULL,
        "training labels (IDX); unused for csv");
    KEY("data", "test_images", PND_CONFIG_STRING, &cfg->test_images, 0, 0, NULL,
        "test images (IDX) or the test CSV file");
    KEY("data", "test_labels", PND_CONFIG_STRING, &cfg->test_labels, 0, 0, NULL,
        "test labels (IDX); unused for csv");
    KEY("data", "pixel_max", PND_CONFIG_DOUBLE, &cfg->pixel_max, 1e-12, 1e12, NULL,
        "pixel value that maps to 1 (pixels are divided by it)");
    KEY("data", "n_valid", PND_CONFIG_INT, &cfg->n_valid, 0, 1e9, NULL,
        "training images held out for validation");
    KEY("data", "split_seed", PND_CONFIG_UINT64, &cfg->split_seed, 0, 0, NULL,
        "seed of the validation split");
    KEY("data", "max_train", PND_CONFIG_INT, &cfg->max_train, 0, 1e9, NULL,
        "use only the first N training images (before the split), 0 for all");
    KEY("data", "max_test", PND_CONFIG_INT, &cfg->max_test, 0, 1e9, NULL,
        "use only the first N test images, 0 for all");
    KEY("data", "standardize", PND_CONFIG_BOOL, &cfg->standardize, 0, 0, NULL,
        "standardise each pixel with the training split's mean and deviation");

    KEY("model", "hidden", PND_CONFIG_INT_LIST, &cfg->hidden, 1, 1 << 20, NULL,
        "hidden layer widths, comma-separated (empty list: softmax regression)");
    KEY("model", "activation", PND_CONFIG_CHOICE, &cfg->activation, 0, 0, activation_names,
        "activation of every hidden layer");
    KEY("model", "scheme", PND_CONFIG_CHOICE, &cfg->scheme, 0, 0, pnd_scheme_names,
        "masking scheme of every hidden layer");
    KEY("model", "p", PND_CONFIG_DOUBLE, &cfg->p, 0, P_MAX, NULL,
        "drop probability of every hidden layer, in [0, 1)");
    KEY("model", "layer_activations", PND_CONFIG_STRING, &cfg->layer_activations, 0, 0, NULL,
        "comma list of one activation per hidden layer (overrides activation)");
    KEY("model", "layer_schemes", PND_CONFIG_STRING, &cfg->layer_schemes, 0, 0, NULL,
        "comma list of one scheme per hidden layer (overrides scheme)");
    KEY("model", "layer_p", PND_CONFIG_DOUBLE_LIST, &cfg->layer_p, 0, P_MAX, NULL,
        "comma list of one drop probability per hidden layer (overrides p)");
    KEY("model", "output_scheme", PND_CONFIG_CHOICE, &cfg->output_scheme, 0, 0, pnd_scheme_names,
        "masking scheme of the softmax output layer");
    KEY("model", "output_p", PND_CONFIG_DOUBLE, &cfg->output_p, 0, P_MAX, NULL,
        "drop probability of the output layer");
    KEY("model", "init", PND_CONFIG_CHOICE, &cfg->init, 0, 0, pnd_init_names,
        "weight initialisation: auto (He for relu/softplus, else Glorot), glorot, he");

    KEY("train", "seed", PND_CONFIG_UINT64, &cfg->seed, 0, 0, NULL,
        "seed of the initialisation, the shuffles and the masks");
    KEY("train", "epochs", PND_CONFIG_INT, &cfg->epochs, 1, 1e6, NULL,
        "number of passes over the training split");
    KEY("train", "batch_size", PND_CONFIG_INT, &cfg->batch_size, 1, 1 << 16, NULL,
        "images per mini-batch");
    KEY("train", "optimizer", PND_CONFIG_CHOICE, &cfg->optimizer, 0, 0, optimizer_names,
        "sgd (with momentum) or adam");
    KEY("train", "lr", PND_CONFIG_DOUBLE, &cfg->lr, 0, 1e6, NULL,
        "learning rate (the peak of the cosine schedule)");
    KEY("train", "lr_min", PND_CONFIG_DOUBLE, &cfg->lr_min, 0, 1e6, NULL,
        "learning rate at the end of the cosine schedule");
    KEY("train", "schedule", PND_CONFIG_CHOICE, &cfg->schedule, 0, 0, schedule_names,
        "learning-rate schedule: constant or cosine over all steps");
    KEY("train", "momentum", PND_CONFIG_DOUBLE, &cfg->momentum, 0, P_MAX, NULL,
        "SGD momentum");
    KEY("train", "beta1", PND_CONFIG_DOUBLE, &cfg->beta1, 0, P_MAX, NULL,
        "Adam decay of the first moment");
    KEY("train", "beta2", PND_CONFIG_DOUBLE, &cfg->beta2, 0, P_MAX, NULL,
        "Adam decay of the second moment");
    KEY("train", "adam_eps", PND_CONFIG_DOUBLE, &cfg->adam_eps, 1e-300, 1, NULL,
        "Adam denominator offset");
    KEY("train", "weight_decay", PND_CONFIG_DOUBLE, &cfg->weight_decay, 0, 1e6, NULL,
        "L2 coefficient on the weights (not the biases), added to the gradient");
    KEY("train", "patience", PND_CONFIG_INT, &cfg->patience, 0, 1e6, NULL,
        "stop after this many epochs without a lower validation loss, 0 for never");
    KEY("train", "checkpoint_every", PND_CONFIG_INT, &cfg->checkpoint_every, 0, 1e6, NULL,
        "write checkpoint.pnd every N epochs as well as at the end, 0 for only the end");

    KEY("stats", "samples", PND_CONFIG_INT, &cfg->stats_samples, 2, 1e9, NULL,
        "validation images for the co-adaptation statistics");
    KEY("stats", "r_samples", PND_CONFIG_INT, &cfg->r_samples, 0, 1e9, NULL,
        "of those, images for R_diag and R_cross (0 skips them)");
    KEY("stats", "eval_batch", PND_CONFIG_INT, &cfg->eval_batch, 1, 1 << 20, NULL,
        "images per chunk of an evaluation");
    return n;
}

int
pnd_train_config_read(struct pnd_train_config *cfg, const char *path)
{
    struct pnd_config_key keys[PND_TRAIN_CONFIG_MAX_KEYS];
    size_t n = pnd_train_config_keys(cfg, keys);

    return pnd_config_read(path, keys, n);
}

/* Print x with the fewest digits (15 to 17) that read back to the same
 * double, so that config.ini shows 0.2 rather than 0.20000000000000001. */
static void
write_double(FILE *fp, double x)
{
    char text[32];

    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, x);
        if (strtod(text, NULL) == x)
            break;
    }
    fputs(text, fp);
}

/* Write one key's value in the syntax pnd_config_set accepts. */
static void
write_value(FILE *fp, const struct pnd_config_key *key)
{
    const struct pnd_double_list *list;

    switch (key->type) {
    case PND_CONFIG_INT:
        fprintf(fp, "%ld", *(const long *) key->value);
        break;
    case PND_CONFIG_UINT64:
        fprintf(fp, "%llu", (unsigned long long) *(const uint64_t *) key->value);
        break;
    case PND_CONFIG_DOUBLE:
        write_double(fp, *(const double *) key->value);
        break;
    case PND_CONFIG_BOOL:
        fprintf(fp, "%s", *(const bool *) key->value ? "true" : "false");
        break;
    case PND_CONFIG_STRING:
        fprintf(fp, "%s", *(char *const *) key->value ? *(char *const *) key->value : "");
        break;
    case PND_CONFIG_CHOICE:
        fprintf(fp, "%s", key->choices[*(const int *) key->value]);
        break;
    case PND_CONFIG_DOUBLE_LIST:
    case PND_CONFIG_INT_LIST:
        list = key->value;
        for (size_t i = 0; i < list->n; i++) {
            if (i > 0)
                fputc(',', fp);
            write_double(fp, list->v[i]);
        }
        break;
    }
}

int
pnd_train_config_write(struct pnd_train_config *cfg, const char *path)
{
    struct pnd_config_key keys[PND_TRAIN_CONFIG_MAX_KEYS];
    size_t n = pnd_train_config_keys(cfg, keys);
    struct pnd_atomic_file f;
    const char *section = NULL;

    PND_TRY(pnd_atomic_open(&f, path));
    fprintf(f.fp, "# pnd train: resolved configuration (read it back with --config)\n");
    for (size_t i = 0; i < n; i++) {
        if (section == NULL || strcmp(section, keys[i].section) != 0) {
            section = keys[i].section;
            fprintf(f.fp, "\n[%s]\n", section);
        }
        fprintf(f.fp, "# %s\n", keys[i].help);
        /* An empty list cannot be written as a value: leave it unset. */
        if ((keys[i].type == PND_CONFIG_DOUBLE_LIST || keys[i].type == PND_CONFIG_INT_LIST)
            && ((const struct pnd_double_list *) keys[i].value)->n == 0) {
            fprintf(f.fp, "# %s = (empty)\n", keys[i].name);
            continue;
        }
        fprintf(f.fp, "%s = ", keys[i].name);
        write_value(f.fp, &keys[i]);
        fputc('\n', f.fp);
    }
    return pnd_atomic_commit(&f);
}

/* Split a comma list of names into at most max entries of parse(). */
static int
parse_name_list(const char *text, const char *what, size_t expected,
                int (*parse)(const char *, int *), int *values)
{
    char buf[1024];
    char *save = NULL, *item;
    size_t n = 0;

    if (strlen(text) >= sizeof buf)
        PND_ERROR(PND_EINVAL, "%s is too long", what);
    strcpy(buf, text);
    for (item = strtok_r(buf, ", ", &save); item; item = strtok_r(NULL, ", ", &save)) {
        if (n == expected)
            PND_ERROR(PND_EINVAL, "%s '%s' has more than %zu entries: give one per hidden layer",
                      what, text, expected);
        PND_TRY(parse(item, &values[n]));
        n++;
    }
    if (n != expected)
        PND_ERROR(PND_EINVAL, "%s '%s' has %zu entries: give one per hidden layer (%zu)",
                  what, text, n, expected);
    return PND_OK;
}

static int
parse_activation(const char *name, int *value)
{
    for (int i = 0; activation_names[i]; i++)
        if (strcmp(name, activation_names[i]) == 0) {
            *value = i;
            return PND_OK;
        }
    PND_ERROR(PND_EINVAL, "unknown activation '%s': use identity, tanh, sigmoid, softplus or relu",
              name);
}

static int
parse_scheme(const char *name, int *value)
{
    enum pnd_scheme scheme;

    PND_TRY(pnd_scheme_parse(name, &scheme));
    *value = (int) scheme;
    return PND_OK;
}

int
pnd_train_config_spec(const struct pnd_train_config *cfg, size_t d, size_t c,
                      struct pnd_mlp_spec *spec)
{
    size_t n_hidden = cfg->hidden.n;
    int acts[PND_TRAIN_MAX_HIDDEN], schemes[PND_TRAIN_MAX_HIDDEN];

    if (n_hidden > PND_TRAIN_MAX_HIDDEN)
        PND_ERROR(PND_EINVAL, "model.hidden has %zu layers: at most %d are supported",
                  n_hidden, PND_TRAIN_MAX_HIDDEN);
    if (cfg->layer_p.n != 0 && cfg->layer_p.n != n_hidden)
        PND_ERROR(PND_EINVAL, "model.layer_p has %zu values: give one per hidden layer (%zu)",
                  cfg->layer_p.n, n_hidden);
    if (cfg->lr_min > cfg->lr)
        PND_ERROR(PND_EINVAL, "train.lr_min = %g exceeds train.lr = %g", cfg->lr_min, cfg->lr);
    if (cfg->r_samples > cfg->stats_samples)
        PND_ERROR(PND_EINVAL, "stats.r_samples = %ld exceeds stats.samples = %ld",
                  cfg->r_samples, cfg->stats_samples);
    for (size_t l = 0; l < n_hidden; l++) {
        acts[l] = cfg->activation;
        schemes[l] = cfg->scheme;
    }
    if (cfg->layer_activations && cfg->layer_activations[0])
        PND_TRY(parse_name_list(cfg->layer_activations, "model.layer_activations",
                                n_hidden, parse_activation, acts));
    if (cfg->layer_schemes && cfg->layer_schemes[0])
        PND_TRY(parse_name_list(cfg->layer_schemes, "model.layer_schemes", n_hidden,
                                parse_scheme, schemes));

    memset(spec, 0, sizeof *spec);
    spec->n_layers = n_hidden + 1;
    spec->widths[0] = d;
    for (size_t l = 0; l < n_hidden; l++) {
        spec->widths[l + 1] = (size_t) cfg->hidden.v[l];
        spec->act[l] = (enum pnd_activation) acts[l];
        spec->scheme[l] = (enum pnd_scheme) schemes[l];
        spec->p[l] = cfg->layer_p.n ? cfg->layer_p.v[l] : cfg->p;
        PND_TRY(pnd_check_p(spec->p[l], "model.p"));
    }
    spec->widths[n_hidden + 1] = c;
    spec->act[n_hidden] = PND_ACT_IDENTITY;
    spec->scheme[n_hidden] = (enum pnd_scheme) cfg->output_scheme;
    spec->p[n_hidden] = cfg->output_p;
    PND_TRY(pnd_check_p(cfg->output_p, "model.output_p"));
    return PND_OK;
}
