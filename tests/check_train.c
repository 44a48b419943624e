/* Data readers, MLP gradients for every scheme, checkpoints, export,
 * co-adaptation statistics, determinism and failure handling of the
 * trainer. Fixtures: tests/data/fmnist_tiny_* (the first 64 training and
 * 32 test images of Fashion-MNIST, written by tests/make_fmnist_tiny.py). */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "pnd/analysis.h"
#include "pnd/error.h"
#include "pnd/log.h"
#include "pnd/net.h"
#include "pnd/train.h"
#include "tests/suites.h"

/* Central differences with step FD_STEP on smooth (tanh, softplus)
 * networks have truncation error of order FD_STEP^2 times the third
 * derivative, about 1e-10 here, far below FD_TOL relative to the
 * gradient's scale. */
#define FD_STEP 1e-5
#define FD_TOL 1e-6
/* The fast R terms and the per-sample reference sum the same products in
 * another order: a few rounding errors of the sum. */
#define R_TOL 1e-10
/* Hand-computed co-adaptation statistics are exact up to rounding. */
#define STAT_TOL 1e-12
#define TEST_SEED UINT64_C(20261204)

static const enum pnd_scheme all_schemes[] = {
    PND_SCHEME_NONE, PND_SCHEME_DROPOUT, PND_SCHEME_GAUSSIAN_DROPOUT,
    PND_SCHEME_DROPCONNECT, PND_SCHEME_PERNODEDROP,
    PND_SCHEME_PERNODEDROP_GAUSSIAN, PND_SCHEME_FIXED_MASK,
};
#define N_SCHEMES (sizeof all_schemes / sizeof all_schemes[0])

static void
fixture_path(char *buf, size_t size, const char *part, const char *kind)
{
    snprintf(buf, size, "%s/fmnist_tiny_%s-%s-ubyte.gz", pnd_test_data_dir(), part, kind);
}

static struct pnd_dataset *
read_fixture(const char *part)
{
    char images[4096], labels[4096];
    struct pnd_dataset *ds = NULL;
    int status;

    fixture_path(images, sizeof images, part, "images-idx3");
    fixture_path(labels, sizeof labels, part, "labels-idx1");
    status = pnd_dataset_read_idx(images, labels, 255, &ds);
    ck_assert_msg(status == PND_OK, "reading the fixture failed: %s", pnd_error_message());
    return ds;
}

static char *
make_temp_dir(void)
{
    char *dir = strdup("/tmp/pnd-check-train-XXXXXX");

    ck_assert_ptr_nonnull(dir);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

static void
remove_tree(const char *dir)
{
    char command[4200];

    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(command), 0);
}

/* A small smooth MLP: d -> 5 (tanh) -> 4 (softplus) -> 3, every layer
 * masked by scheme with p = 0.3 except the output when mask_output is 0. */
static struct pnd_mlp *
small_mlp(size_t d, enum pnd_scheme scheme, int mask_output)
{
    struct pnd_mlp_spec spec;
    struct pnd_mlp *mlp = NULL;
    const size_t widths[] = {d, 5, 4, 3};

    memset(&spec, 0, sizeof spec);
    spec.n_layers = 3;
    for (size_t l = 0; l < 4; l++)
        spec.widths[l] = widths[l];
    spec.act[0] = PND_ACT_TANH;
    spec.act[1] = PND_ACT_SOFTPLUS;
    spec.act[2] = PND_ACT_IDENTITY;
    for (size_t l = 0; l < 3; l++) {
        spec.scheme[l] = l < 2 || mask_output ? scheme : PND_SCHEME_NONE;
        spec.p[l] = 0.3;
    }
    ck_assert_int_eq(pnd_mlp_alloc(&spec, TEST_SEED, &mlp), PND_OK);
    ck_assert_int_eq(pnd_mlp_init_params(mlp, PND_INIT_GLOROT, TEST_SEED), PND_OK);
    for (size_t j = 0; j < mlp->n_params; j++)
        mlp->params[j] += 0.05 * sin(0.7 * (double) j);   /* nonzero biases */
    return mlp;
}

/* ------------------------------------------------------------ gradients */

static void
check_gradient(enum pnd_scheme scheme, int mask_output)
{
    const size_t n = 4, d = 6;
    double X[4 * 6];     /* (n, d) */
    int labels[4] = {0, 2, 1, 2};
    struct pnd_mlp *mlp = small_mlp(d, scheme, mask_output);
    struct pnd_mlp_workspace *w = NULL;
    double *grad = malloc(mlp->n_params * sizeof *grad);   /* (n_params) */
    double loss, scale = 0;
    const uint64_t step = 17;

    ck_assert_ptr_nonnull(grad);
    for (size_t i = 0; i < n * d; i++)
        X[i] = 0.8 * cos(1.3 * (double) i + 0.2);
    ck_assert_int_eq(pnd_mlp_workspace_alloc(mlp, n, &w), PND_OK);
    ck_assert_int_eq(pnd_mlp_train_loss(mlp, n, X, labels, step, grad, &loss, w), PND_OK);
    for (size_t j = 0; j < mlp->n_params; j++)
        scale = fmax(scale, fabs(grad[j]));
    ck_assert(scale > 0);

    /* Same keys, so the masks stay fixed while one parameter moves. */
    for (size_t j = 0; j < mlp->n_params; j++) {
        double saved = mlp->params[j], up, down, numeric;

        mlp->params[j] = saved + FD_STEP;
        ck_assert_int_eq(pnd_mlp_train_loss(mlp, n, X, labels, step, NULL, &up, w), PND_OK);
        mlp->params[j] = saved - FD_STEP;
        ck_assert_int_eq(pnd_mlp_train_loss(mlp, n, X, labels, step, NULL, &down, w), PND_OK);
        mlp->params[j] = saved;
        numeric = (up - down) / (2 * FD_STEP);
        ck_assert_msg(fabs(numeric - grad[j]) <= FD_TOL * scale,
                      "scheme %s, parameter %zu: analytic %.12g, numeric %.12g",
                      pnd_scheme_name(scheme), j, grad[j], numeric);
    }
    free(grad);
    pnd_mlp_workspace_free(w);
    pnd_mlp_free(mlp);
}

START_TEST(gradient_matches_differences)
{
    check_gradient(all_schemes[_i], 0);
}
END_TEST

START_TEST(gradient_with_masked_output)
{
    check_gradient(PND_SCHEME_PERNODEDROP, 1);
    check_gradient(PND_SCHEME_DROPOUT, 1);
}
END_TEST

START_TEST(masks_differ_between_steps)
{
    const size_t n = 4, d = 6;
    double X[4 * 6];
    int labels[4] = {0, 1, 2, 0};
    struct pnd_mlp *mlp = small_mlp(d, PND_SCHEME_PERNODEDROP, 0);
    struct pnd_mlp_workspace *w = NULL;
    double a, b, c;

    for (size_t i = 0; i < n * d; i++)
        X[i] = 0.5 + 0.1 * (double) i;
    ck_assert_int_eq(pnd_mlp_workspace_alloc(mlp, n, &w), PND_OK);
    ck_assert_int_eq(pnd_mlp_train_loss(mlp, n, X, labels, 1, NULL, &a, w), PND_OK);
    ck_assert_int_eq(pnd_mlp_train_loss(mlp, n, X, labels, 2, NULL, &b, w), PND_OK);
    ck_assert_int_eq(pnd_mlp_train_loss(mlp, n, X, labels, 1, NULL, &c, w), PND_OK);
    ck_assert(a != b);
    ck_assert(memcmp(&a, &c, sizeof a) == 0);
    pnd_mlp_workspace_free(w);
    pnd_mlp_free(mlp);
}
END_TEST

/* ------------------------------------------------------------ data */

START_TEST(idx_fixture_reads)
{
    struct pnd_dataset *train = read_fixture("train"), *test = read_fixture("t10k");
    double lo = 1, hi = 0;

    ck_assert_uint_eq(train->n, 64);
    ck_assert_uint_eq(train->d, 784);
    ck_assert_uint_eq(train->c, 10);
    ck_assert_uint_eq(test->n, 32);
    /* The first Fashion-MNIST training images are an ankle boot (9) and a
     * T-shirt (0); the first test image is an ankle boot. */
    ck_assert_int_eq(train->labels[0], 9);
    ck_assert_int_eq(train->labels[1], 0);
    ck_assert_int_eq(test->labels[0], 9);
    for (size_t i = 0; i < train->n * train->d; i++) {
        lo = fmin(lo, train->X[i]);
        hi = fmax(hi, train->X[i]);
    }
    ck_assert_double_eq(lo, 0.0);
    ck_assert_double_eq(hi, 1.0);
    pnd_dataset_free(train);
    pnd_dataset_free(test);
}
END_TEST

START_TEST(csv_matches_idx)
{
    struct pnd_dataset *idx = read_fixture("t10k"), *csv = NULL;
    char *dir = make_temp_dir(), path[4200];
    FILE *fp;

    snprintf(path, sizeof path, "%s/t.csv", dir);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "label");
    for (size_t i = 0; i < idx->d; i++)
        fprintf(fp, ",pixel%zu", i + 1);
    fputc('\n', fp);
    for (size_t k = 0; k < idx->n; k++) {
        fprintf(fp, "%d", idx->labels[k]);
        for (size_t i = 0; i < idx->d; i++)
            fprintf(fp, ",%d", (int) lround(idx->X[k * idx->d + i] * 255));
        fputc('\n', fp);
    }
    ck_assert_int_eq(fclose(fp), 0);

    ck_assert_int_eq(pnd_dataset_read_csv(path, 255, &csv), PND_OK);
    ck_assert_uint_eq(csv->n, idx->n);
    ck_assert_uint_eq(csv->d, idx->d);
    ck_assert_uint_eq(csv->c, idx->c);
    ck_assert(memcmp(csv->labels, idx->labels, idx->n * sizeof(int)) == 0);
    ck_assert(memcmp(csv->X, idx->X, idx->n * idx->d * sizeof(double)) == 0);
    pnd_dataset_free(idx);
    pnd_dataset_free(csv);
    remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(split_is_seeded)
{
    struct pnd_dataset *a = read_fixture("train"), *b = read_fixture("train");
    struct pnd_dataset *va = NULL, *vb = NULL;

    ck_assert_int_eq(pnd_dataset_split(&a, 10, 5, &va), PND_OK);
    ck_assert_int_eq(pnd_dataset_split(&b, 10, 5, &vb), PND_OK);
    ck_assert_uint_eq(a->n, 54);
    ck_assert_uint_eq(va->n, 10);
    ck_assert(memcmp(va->X, vb->X, 10 * va->d * sizeof(double)) == 0);
    pnd_dataset_free(a);
    pnd_dataset_free(b);
    pnd_dataset_free(va);
    pnd_dataset_free(vb);
}
END_TEST

/* The decompressed bytes of a fixture file. */
static unsigned char *
fixture_bytes(const char *part, const char *kind, size_t *len)
{
    char path[4096];
    gzFile gz;
    unsigned char *buf = malloc(1 << 20);
    int got;

    fixture_path(path, sizeof path, part, kind);
    gz = gzopen(path, "rb");
    ck_assert_ptr_nonnull(gz);
    ck_assert_ptr_nonnull(buf);
    got = gzread(gz, buf, 1 << 20);
    ck_assert_int_gt(got, 0);
    gzclose(gz);
    *len = (size_t) got;
    return buf;
}

static void
write_bytes(const char *path, const void *data, size_t len, int gzipped)
{
    if (gzipped) {
        gzFile gz = gzopen(path, "wb");

        ck_assert_ptr_nonnull(gz);
        ck_assert_int_eq(gzwrite(gz, data, (unsigned) len), (int) len);
        ck_assert_int_eq(gzclose(gz), Z_OK);
    } else {
        FILE *fp = fopen(path, "wb");

        ck_assert_ptr_nonnull(fp);
        ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
        ck_assert_int_eq(fclose(fp), 0);
    }
}

START_TEST(standardize_uses_train_stats)
{
    struct pnd_dataset *train = read_fixture("train"), *test = read_fixture("t10k");
    struct pnd_dataset *sets[2] = {train, test};
    const size_t pixel = 14 * 28 + 14;   /* the centre pixel, not constant */
    double mean = 0, var = 0, raw_test = test->X[pixel], after_mean = 0;

    /* Mean and deviation (divisor n) of the pixel on the raw training set. */
    for (size_t k = 0; k < train->n; k++)
        mean += train->X[k * train->d + pixel] / (double) train->n;
    for (size_t k = 0; k < train->n; k++)
        var += pow(train->X[k * train->d + pixel] - mean, 2) / (double) train->n;
    ck_assert(var > 0);

    ck_assert_int_eq(pnd_dataset_standardize(train, sets, 2), PND_OK);
    for (size_t k = 0; k < train->n; k++)
        after_mean += train->X[k * train->d + pixel] / (double) train->n;
    ck_assert_double_eq_tol(after_mean, 0.0, STAT_TOL);
    ck_assert_double_eq_tol(test->X[pixel], (raw_test - mean) / sqrt(var),
                            STAT_TOL * (1 + fabs(test->X[pixel])));
    /* A corner pixel is 0 on every training image: only centred, so 0. */
    ck_assert_double_eq(train->X[0], 0.0);
    pnd_dataset_free(train);
    pnd_dataset_free(test);
}
END_TEST

/* Reading images_path with the fixture labels (or labels_path) must fail
 * with PND_EFORMAT, a message naming bad_file and the word needle. */
static void
expect_format_error(const char *images_path, const char *labels_path,
                    const char *bad_file, const char *needle)
{
    struct pnd_dataset *ds = NULL;
    int status = pnd_dataset_read_idx(images_path, labels_path, 255, &ds);

    ck_assert_int_eq(status, PND_EFORMAT);
    ck_assert_ptr_null(ds);
    ck_assert_msg(strstr(pnd_error_message(), bad_file) != NULL,
                  "message '%s' does not name %s", pnd_error_message(), bad_file);
    ck_assert_msg(strstr(pnd_error_message(), needle) != NULL,
                  "message '%s' lacks '%s'", pnd_error_message(), needle);
}

START_TEST(idx_bad_inputs_rejected)
{
    char *dir = make_temp_dir(), images[4200], labels[4200], bad[4200];
    size_t len, label_len;
    unsigned char *data = fixture_bytes("train", "images-idx3", &len);
    unsigned char *label_data = fixture_bytes("train", "labels-idx1", &label_len);

    snprintf(labels, sizeof labels, "%s/labels.gz", dir);
    write_bytes(labels, label_data, label_len, 1);
    snprintf(images, sizeof images, "%s/images", dir);

    /* Truncated: the last 100 pixels missing (plain file). */
    write_bytes(images, data, len - 100, 0);
    expect_format_error(images, labels, images, "truncated at byte");

    /* Truncated header. */
    write_bytes(images, data, 10, 1);
    expect_format_error(images, labels, images, "truncated at byte 10");

    /* Wrong magic number. */
    data[3] ^= 0x04;
    write_bytes(images, data, len, 1);
    expect_format_error(images, labels, images, "magic number");
    data[3] ^= 0x04;

    /* Image and label counts that differ: 32 test labels for 64 images. */
    fixture_path(bad, sizeof bad, "t10k", "labels-idx1");
    write_bytes(images, data, len, 1);
    expect_format_error(images, bad, bad, "counts must match");

    /* Corrupt gzip data: bytes flipped in the middle of the stream. */
    {
        char plain_gz[4200];
        FILE *fp;
        unsigned char *gz = malloc(1 << 20);
        size_t gz_len;

        ck_assert_ptr_nonnull(gz);
        fixture_path(plain_gz, sizeof plain_gz, "train", "images-idx3");
        fp = fopen(plain_gz, "rb");
        ck_assert_ptr_nonnull(fp);
        gz_len = fread(gz, 1, 1 << 20, fp);
        fclose(fp);
        ck_assert_uint_gt(gz_len, 1000);
        for (size_t i = gz_len / 2; i < gz_len / 2 + 64; i++)
            gz[i] ^= 0x5a;
        write_bytes(images, gz, gz_len, 0);
        expect_format_error(images, labels, images, "corrupt gzip data");

        /* A gzip stream cut short. */
        write_bytes(images, gz, gz_len / 3, 0);
        expect_format_error(images, labels, images, "byte");
        free(gz);
    }
    free(data);
    free(label_data);
    remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(csv_bad_inputs_rejected)
{
    char *dir = make_temp_dir(), path[4200];
    struct pnd_dataset *ds = NULL;
    FILE *fp;

    snprintf(path, sizeof path, "%s/bad.csv", dir);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "1,0,255\n2,3\n");
    fclose(fp);
    ck_assert_int_eq(pnd_dataset_read_csv(path, 255, &ds), PND_EFORMAT);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "line 2"));

    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "1,0,255\n2,3,x7\n");
    fclose(fp);
    ck_assert_int_eq(pnd_dataset_read_csv(path, 255, &ds), PND_EFORMAT);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "column 3"));
    ck_assert_ptr_null(ds);
    remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(missing_file_is_input_error)
{
    struct pnd_dataset *ds = NULL;

    ck_assert_int_eq(pnd_dataset_read_idx("/nonexistent/images.gz", "/nonexistent/labels.gz",
                                          255, &ds),
                     PND_EINVAL);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "/nonexistent/images.gz"));
}
END_TEST

/* ------------------------------------------------------------ statistics */

START_TEST(coadapt_hand_example)
{
    /* Units: u0 = 1..4, u1 = 2 u0 (correlation 1), u2 constant (dead). */
    const double H[4 * 3] = {1, 2, 5, 2, 4, 5, 3, 6, 5, 4, 8, 5};   /* (4, 3) */
    double K[9], C[9];
    struct pnd_coadapt s;

    ck_assert_int_eq(pnd_coadapt_activations(4, 3, H, K, C, &s), PND_OK);
    ck_assert_uint_eq(s.n_dead, 1);
    ck_assert_double_eq_tol(C[1], 1.0, STAT_TOL);
    ck_assert_double_eq(C[2], 0.0);
    ck_assert_double_eq(C[8], 1.0);
    ck_assert_double_eq_tol(s.mean_abs_corr, 1.0 / 3.0, STAT_TOL);
    ck_assert_double_eq_tol(s.corr_fro, sqrt(2.0 / 6.0), STAT_TOL);
    /* var u0 = 1.25, var u1 = 5, cov = 2.5: DeCov = 2.5^2 = 6.25 and
     * PR = 6.25^2 / (1.25^2 + 5^2 + 2 * 2.5^2) = 1. */
    ck_assert_double_eq_tol(s.decov, 6.25, STAT_TOL * 6.25);
    ck_assert_double_eq_tol(s.participation, 1.0, STAT_TOL);
    ck_assert(isfinite(s.mean_abs_corr));
}
END_TEST

START_TEST(coadapt_all_dead_is_finite)
{
    const double H[3 * 2] = {0, 1, 0, 1, 0, 1};
    double K[4], C[4];
    struct pnd_coadapt s;

    ck_assert_int_eq(pnd_coadapt_activations(3, 2, H, K, C, &s), PND_OK);
    ck_assert_uint_eq(s.n_dead, 2);
    ck_assert_double_eq(s.mean_abs_corr, 0.0);
    ck_assert_double_eq(s.participation, 0.0);
    ck_assert_double_eq(s.decov, 0.0);
}
END_TEST

static void
check_r_terms(enum pnd_activation act)
{
    const size_t n = 3, d = 6;
    double X[3 * 6];
    int labels[3] = {2, 0, 1};
    struct pnd_mlp *mlp = small_mlp(d, PND_SCHEME_NONE, 0);
    struct pnd_layer layers[PND_TRAIN_MAX_LAYERS];
    struct pnd_net net;
    struct pnd_data data = {n, d, 3, X, NULL, labels};
    double p[2] = {0.3, 0.15}, R_diag[2], R_cross[2];

    mlp->spec.act[0] = act;
    mlp->spec.act[1] = act;
    for (size_t i = 0; i < n * d; i++)
        X[i] = 0.9 * sin(0.4 * (double) i + 1.0);
    ck_assert_int_eq(pnd_coadapt_dropout_terms(mlp, n, X, labels, p, R_diag, R_cross), PND_OK);
    pnd_mlp_net_view(mlp, layers, &net);
    for (size_t l = 0; l < 2; l++) {
        double ref_diag = 0, ref_cross = 0;

        for (size_t k = 0; k < n; k++) {
            double a, b;

            ck_assert_int_eq(pnd_expand_layer_dropout_terms(&net, &data, k, l, p[l], &a, &b),
                             PND_OK);
            ref_diag += a / (double) n;
            ref_cross += b / (double) n;
        }
        ck_assert(ref_cross != 0);
        ck_assert_double_eq_tol(R_diag[l], ref_diag, R_TOL * fabs(ref_diag));
        ck_assert_double_eq_tol(R_cross[l], ref_cross, R_TOL * fabs(ref_cross));
    }
    pnd_mlp_free(mlp);
}

START_TEST(r_terms_match_reference)
{
    check_r_terms(PND_ACT_TANH);
    check_r_terms(PND_ACT_SIGMOID);
    check_r_terms(PND_ACT_SOFTPLUS);
    check_r_terms(PND_ACT_RELU);
}
END_TEST

/* ------------------------------------------------------------ training */

/* A small configuration on the fixture: 48 training, 16 validation images. */
static void
fixture_config(struct pnd_train_config *cfg)
{
    char path[4096];

    ck_assert_int_eq(pnd_train_config_init(cfg), PND_OK);
    fixture_path(path, sizeof path, "train", "images-idx3");
    free(cfg->train_images);
    cfg->train_images = strdup(path);
    fixture_path(path, sizeof path, "train", "labels-idx1");
    free(cfg->train_labels);
    cfg->train_labels = strdup(path);
    fixture_path(path, sizeof path, "t10k", "images-idx3");
    free(cfg->test_images);
    cfg->test_images = strdup(path);
    fixture_path(path, sizeof path, "t10k", "labels-idx1");
    free(cfg->test_labels);
    cfg->test_labels = strdup(path);
    cfg->n_valid = 16;
    cfg->hidden.n = 1;
    cfg->hidden.v[0] = 16;
    cfg->batch_size = 8;
    cfg->epochs = 4;
    cfg->lr = 3e-3;
    cfg->stats_samples = 16;
    cfg->r_samples = 4;
    cfg->seed = TEST_SEED;
}

START_TEST(training_lowers_loss)
{
    struct pnd_train_config cfg;
    struct pnd_train_data data;
    struct pnd_train_result r;
    struct pnd_mlp_spec spec;
    struct pnd_mlp *mlp = NULL;
    struct pnd_mlp_workspace *w = NULL;
    double loss0, acc0;

    fixture_config(&cfg);
    cfg.epochs = 20;
    cfg.lr = 1e-2;
    ck_assert_int_eq(pnd_train_data_read(&cfg, &data), PND_OK);

    /* The loss of the initial network, with the run's seed. */
    ck_assert_int_eq(pnd_train_config_spec(&cfg, data.train->d, data.train->c, &spec), PND_OK);
    ck_assert_int_eq(pnd_mlp_alloc(&spec, cfg.seed, &mlp), PND_OK);
    ck_assert_int_eq(pnd_mlp_init_params(mlp, PND_INIT_AUTO, cfg.seed), PND_OK);
    ck_assert_int_eq(pnd_mlp_workspace_alloc(mlp, 64, &w), PND_OK);
    ck_assert_int_eq(pnd_mlp_evaluate(mlp, data.train, &loss0, &acc0, w), PND_OK);

    ck_assert_int_eq(pnd_train_run_data(&cfg, &data, NULL, &r), PND_OK);
    ck_assert_uint_eq(r.epochs_run, 20);
    ck_assert_uint_eq(r.steps, 20 * 6);
    ck_assert_msg(r.train_loss < 0.5 * loss0, "loss %g did not fall below half of %g",
                  r.train_loss, loss0);
    ck_assert(r.train_acc > acc0);
    ck_assert(isfinite(r.coadapt[0].R_cross));
    pnd_mlp_workspace_free(w);
    pnd_mlp_free(mlp);
    pnd_train_data_free(&data);
    pnd_train_config_free(&cfg);
}
END_TEST

START_TEST(evaluation_is_repeatable)
{
    struct pnd_dataset *ds = read_fixture("t10k");
    struct pnd_mlp *mlp;
    struct pnd_mlp_workspace *w = NULL;
    double l1, a1, l2, a2;

    for (size_t s = 0; s < N_SCHEMES; s++) {
        mlp = small_mlp(ds->d, all_schemes[s], 1);
        ck_assert_int_eq(pnd_mlp_workspace_alloc(mlp, 10, &w), PND_OK);
        /* The small MLP has 3 classes: fold the labels into them. */
        for (size_t k = 0; k < ds->n; k++)
            ds->labels[k] %= 3;
        ck_assert_int_eq(pnd_mlp_evaluate(mlp, ds, &l1, &a1, w), PND_OK);
        ck_assert_int_eq(pnd_mlp_evaluate(mlp, ds, &l2, &a2, w), PND_OK);
        ck_assert(memcmp(&l1, &l2, sizeof l1) == 0);
        ck_assert(memcmp(&a1, &a2, sizeof a1) == 0);
        pnd_mlp_workspace_free(w);
        pnd_mlp_free(mlp);
    }
    pnd_dataset_free(ds);
}
END_TEST

static char *
read_text(const char *dir, const char *name, size_t *len)
{
    char path[4200], *data = NULL;
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    data = calloc(1 << 20, 1);
    ck_assert_ptr_nonnull(data);
    *len = fread(data, 1, (1 << 20) - 1, fp);
    fclose(fp);
    return data;
}

/* Blank the time_train_s and time_eval_s columns (15 and 16) of log.tsv. */
static void
drop_timing(char *text)
{
    size_t column = 1;

    for (char *c = text; *c; c++) {
        if (*c == '\n') {
            column = 1;
        } else if (*c == '\t') {
            column++;
        } else if (column == 15 || column == 16) {
            *c = ' ';
        }
    }
}

START_TEST(run_is_thread_independent)
{
    struct pnd_train_config cfg;
    struct pnd_train_result r1, r2;
    char *dir = make_temp_dir(), run1[4200], run2[4200];
    char *log1, *log2, *ck1, *ck2;
    size_t len1, len2, ck_len1, ck_len2;

    fixture_config(&cfg);
    cfg.epochs = 2;
    snprintf(run1, sizeof run1, "%s/one", dir);
    snprintf(run2, sizeof run2, "%s/two", dir);
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    ck_assert_int_eq(pnd_train_run(&cfg, run1, &r1), PND_OK);
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    ck_assert_int_eq(pnd_train_run(&cfg, run2, &r2), PND_OK);

    log1 = read_text(run1, "log.tsv", &len1);
    log2 = read_text(run2, "log.tsv", &len2);
    ck_assert_uint_eq(len1, len2);
    drop_timing(log1);
    drop_timing(log2);
    ck_assert_str_eq(log1, log2);
    ck1 = read_text(run1, "checkpoint.pnd", &ck_len1);
    ck2 = read_text(run2, "checkpoint.pnd", &ck_len2);
    ck_assert_uint_eq(ck_len1, ck_len2);
    ck_assert(memcmp(ck1, ck2, ck_len1) == 0);
    ck_assert(memcmp(&r1.test_loss, &r2.test_loss, sizeof(double)) == 0);
    free(log1);
    free(log2);
    free(ck1);
    free(ck2);
    pnd_train_config_free(&cfg);
    remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(divergence_is_reported)
{
    struct pnd_train_config cfg;
    struct pnd_train_result r;
    char *dir = make_temp_dir(), run[4200], summary[4300];

    fixture_config(&cfg);
    cfg.optimizer = PND_OPT_SGD;
    cfg.schedule = PND_LR_CONSTANT;
    cfg.lr = 1e150;
    snprintf(run, sizeof run, "%s/run", dir);
    ck_assert_int_eq(pnd_train_run(&cfg, run, &r), PND_ENUMERIC);
    ck_assert_msg(strstr(pnd_error_message(), "diverged") != NULL, "message: %s",
                  pnd_error_message());
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "step"));
    /* The cause follows intact, whichever check saw the divergence first,
     * and so does the hint. */
    ck_assert_msg(strstr(pnd_error_message(), "not finite") != NULL
                  || strstr(pnd_error_message(), "the mini-batch loss is") != NULL,
                  "message: %s", pnd_error_message());
    ck_assert_msg(strstr(pnd_error_message(), "Lower train.lr") != NULL,
                  "message: %s", pnd_error_message());
    snprintf(summary, sizeof summary, "%s/summary.json", run);
    ck_assert_int_ne(access(summary, F_OK), 0);
    pnd_train_config_free(&cfg);
    remove_tree(dir);
    free(dir);
}
END_TEST


START_TEST(config_round_trip)
{
    struct pnd_train_config cfg, back;
    char *dir = make_temp_dir(), path[4200];

    ck_assert_int_eq(pnd_train_config_init(&cfg), PND_OK);
    ck_assert_int_eq(pnd_train_config_init(&back), PND_OK);
    cfg.lr = 0.1 + 1e-17 * 3;   /* needs every digit of %.17g */
    cfg.epochs = 7;
    cfg.hidden.n = 3;
    cfg.hidden.v[2] = 32;
    cfg.layer_p.n = 3;
    cfg.layer_p.v[0] = 0.1;
    cfg.layer_p.v[1] = 0.2;
    cfg.layer_p.v[2] = 0.3;
    cfg.scheme = PND_SCHEME_DROPCONNECT;
    cfg.standardize = true;
    cfg.seed = UINT64_C(18446744073709551615);
    snprintf(path, sizeof path, "%s/config.ini", dir);
    ck_assert_int_eq(pnd_train_config_write(&cfg, path), PND_OK);
    ck_assert_msg(pnd_train_config_read(&back, path) == PND_OK, "read: %s", pnd_error_message());
    ck_assert(memcmp(&back.lr, &cfg.lr, sizeof cfg.lr) == 0);
    ck_assert_int_eq(back.epochs, 7);
    ck_assert_uint_eq(back.hidden.n, 3);
    ck_assert_double_eq(back.hidden.v[2], 32);
    ck_assert_uint_eq(back.layer_p.n, 3);
    ck_assert_double_eq(back.layer_p.v[2], 0.3);
    ck_assert_int_eq(back.scheme, PND_SCHEME_DROPCONNECT);
    ck_assert(back.standardize);
    ck_assert(back.seed == cfg.seed);
    ck_assert_str_eq(back.train_images, cfg.train_images);
    pnd_train_config_free(&cfg);
    pnd_train_config_free(&back);
    remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(config_bad_value_rejected)
{
    struct pnd_train_config cfg;
    char *dir = make_temp_dir(), path[4200];
    FILE *fp;

    ck_assert_int_eq(pnd_train_config_init(&cfg), PND_OK);
    snprintf(path, sizeof path, "%s/bad.ini", dir);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "[model]\nscheme = pernodedrop\np = 1.5\n");
    fclose(fp);
    ck_assert_int_eq(pnd_train_config_read(&cfg, path), PND_EINVAL);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "p"));
    pnd_train_config_free(&cfg);
    remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(sweep_writes_comparison)
{
    struct pnd_train_config cfg;
    const enum pnd_scheme schemes[2] = {PND_SCHEME_NONE, PND_SCHEME_PERNODEDROP};
    struct pnd_train_result results[4];
    char *dir = make_temp_dir(), path[4200];
    char *text;
    size_t len;

    fixture_config(&cfg);
    cfg.epochs = 1;
    ck_assert_int_eq(pnd_train_sweep(&cfg, schemes, 2, 2, dir, results), PND_OK);
    snprintf(path, sizeof path, "%s/pernodedrop/seed%llu/summary.json", dir,
             (unsigned long long) cfg.seed + 1);
    ck_assert_int_eq(access(path, F_OK), 0);
    text = read_text(dir, "compare.tsv", &len);
    ck_assert_ptr_nonnull(strstr(text, "test_acc_ci95"));
    ck_assert_ptr_nonnull(strstr(text, "\npernodedrop\t2\t"));
    /* Different seeds give different networks. */
    ck_assert(results[2].test_loss != results[3].test_loss);
    free(text);
    pnd_train_config_free(&cfg);
    remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(early_stop_keeps_best)
{
    struct pnd_train_config cfg;
    struct pnd_train_result r;

    fixture_config(&cfg);
    cfg.epochs = 60;
    cfg.lr = 3e-2;
    cfg.schedule = PND_LR_CONSTANT;
    cfg.patience = 2;
    ck_assert_int_eq(pnd_train_run(&cfg, NULL, &r), PND_OK);
    ck_assert_uint_lt(r.epochs_run, 60);
    ck_assert_uint_eq(r.epochs_run, r.best_epoch + 2);
    pnd_train_config_free(&cfg);
}
END_TEST

/* ------------------------------------------------------------ files */

START_TEST(checkpoint_round_trip)
{
    struct pnd_mlp *mlp = small_mlp(6, PND_SCHEME_FIXED_MASK, 0), *back = NULL;
    char *dir = make_temp_dir(), path[4200];
    uint64_t epoch, step;

    snprintf(path, sizeof path, "%s/ck.pnd", dir);
    ck_assert_int_eq(pnd_mlp_checkpoint_write(path, mlp, 7, 123), PND_OK);
    ck_assert_int_eq(pnd_mlp_checkpoint_read(path, &back, &epoch, &step), PND_OK);
    ck_assert_uint_eq(epoch, 7);
    ck_assert_uint_eq(step, 123);
    ck_assert_uint_eq(back->n_params, mlp->n_params);
    ck_assert_uint_eq(back->seed, mlp->seed);
    ck_assert(memcmp(&back->spec, &mlp->spec, sizeof mlp->spec) == 0);
    ck_assert(memcmp(back->params, mlp->params, mlp->n_params * sizeof(double)) == 0);
    ck_assert(memcmp(back->fixed_bits[0], mlp->fixed_bits[0], 5 * sizeof(uint64_t)) == 0);
    pnd_mlp_free(back);
    pnd_mlp_free(mlp);
    remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(checkpoint_corruption_rejected)
{
    struct pnd_mlp *mlp = small_mlp(6, PND_SCHEME_PERNODEDROP, 0), *back = NULL;
    char *dir = make_temp_dir(), path[4200];
    unsigned char buf[8192];
    uint64_t epoch, step;
    size_t len;
    FILE *fp;

    snprintf(path, sizeof path, "%s/ck.pnd", dir);
    ck_assert_int_eq(pnd_mlp_checkpoint_write(path, mlp, 1, 2), PND_OK);
    fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    len = fread(buf, 1, sizeof buf, fp);
    fclose(fp);

    /* One flipped bit in the parameters: the CRC catches it. */
    buf[len - 20] ^= 0x10;
    write_bytes(path, buf, len, 0);
    ck_assert_int_eq(pnd_mlp_checkpoint_read(path, &back, &epoch, &step), PND_EFORMAT);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "CRC32"));
    buf[len - 20] ^= 0x10;

    /* Truncated. */
    write_bytes(path, buf, len - 9, 0);
    ck_assert_int_eq(pnd_mlp_checkpoint_read(path, &back, &epoch, &step), PND_EFORMAT);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "truncated"));

    /* Wrong magic, and a version from the future. */
    buf[0] = 'X';
    write_bytes(path, buf, len, 0);
    ck_assert_int_eq(pnd_mlp_checkpoint_read(path, &back, &epoch, &step), PND_EFORMAT);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "magic"));
    buf[0] = 'P';
    buf[8] = 99;
    write_bytes(path, buf, len, 0);
    ck_assert_int_eq(pnd_mlp_checkpoint_read(path, &back, &epoch, &step), PND_EFORMAT);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "version"));
    ck_assert_ptr_null(back);
    pnd_mlp_free(mlp);
    remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(export_reads_back_in_sim)
{
    struct pnd_dataset *ds = read_fixture("t10k");
    struct pnd_mlp *mlp;
    struct pnd_mlp_workspace *w = NULL;
    struct pnd_net *net = NULL;
    struct pnd_data *data = NULL;
    struct pnd_net_workspace *nw;
    char *dir = make_temp_dir(), path[4200];
    double loss, acc, sim_total = 0;

    for (size_t k = 0; k < ds->n; k++)
        ds->labels[k] %= 3;
    mlp = small_mlp(ds->d, PND_SCHEME_PERNODEDROP, 0);
    ck_assert_int_eq(pnd_mlp_export(mlp, ds, 5, dir), PND_OK);
    snprintf(path, sizeof path, "%s/net.ini", dir);
    ck_assert_msg(pnd_net_read(path, &net, &data) == PND_OK, "pnd_net_read: %s",
                  pnd_error_message());
    ck_assert_uint_eq(net->n_layers, 3);
    ck_assert_uint_eq(data->n, 5);
    ck_assert_int_eq(net->layers[0].mask.scheme, PND_SCHEME_PERNODEDROP);

    /* The clean loss of the exported network equals the trainer's. */
    nw = pnd_net_workspace_alloc(net);
    ck_assert_ptr_nonnull(nw);
    for (size_t k = 0; k < 5; k++) {
        double l;

        ck_assert_int_eq(pnd_net_loss_with_masks(net, data, k, NULL, nw, &l), PND_OK);
        sim_total += l / 5;
    }
    ck_assert_int_eq(pnd_dataset_truncate(ds, 5), PND_OK);
    ck_assert_int_eq(pnd_mlp_workspace_alloc(mlp, 5, &w), PND_OK);
    ck_assert_int_eq(pnd_mlp_evaluate(mlp, ds, &loss, &acc, w), PND_OK);
    ck_assert_double_eq_tol(sim_total, loss, R_TOL * loss);
    pnd_net_workspace_free(nw);
    pnd_net_free(net);
    pnd_data_free(data);
    pnd_mlp_workspace_free(w);
    pnd_mlp_free(mlp);
    pnd_dataset_free(ds);
    remove_tree(dir);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------ limits */

START_TEST(invalid_spec_rejected)
{
    struct pnd_train_config cfg;
    struct pnd_mlp_spec spec;

    ck_assert_int_eq(pnd_train_config_init(&cfg), PND_OK);
    cfg.p = 1.0;
    ck_assert_int_eq(pnd_train_config_spec(&cfg, 784, 10, &spec), PND_EINVAL);
    cfg.p = 0.2;
    cfg.layer_p.n = 3;
    ck_assert_int_eq(pnd_train_config_spec(&cfg, 784, 10, &spec), PND_EINVAL);
    cfg.layer_p.n = 0;
    free(cfg.layer_schemes);
    cfg.layer_schemes = strdup("pernodedrop,bogus");
    ck_assert_int_eq(pnd_train_config_spec(&cfg, 784, 10, &spec), PND_EINVAL);
    free(cfg.layer_schemes);
    cfg.layer_schemes = strdup("pernodedrop,none");
    ck_assert_int_eq(pnd_train_config_spec(&cfg, 784, 10, &spec), PND_OK);
    ck_assert_int_eq(spec.scheme[1], PND_SCHEME_NONE);
    ck_assert_uint_eq(spec.widths[3], 10);
    pnd_train_config_free(&cfg);
}
END_TEST

START_TEST(mean_ci_known_values)
{
    const double x[3] = {1, 2, 3};
    double mean, half;

    /* sd = 1, t_{0.975, 2} = 4.302652729749464. */
    pnd_train_mean_ci(x, 3, &mean, &half);
    ck_assert_double_eq_tol(mean, 2.0, STAT_TOL);
    ck_assert_double_eq_tol(half, 4.302652729749464 / sqrt(3.0), 1e-9);
    pnd_train_mean_ci(x, 1, &mean, &half);
    ck_assert_double_eq(half, 0.0);
}
END_TEST

/* Keep the trainer's progress lines out of the test output. */
static void
quiet_logs(void)
{
    pnd_log_set_level(PND_LOG_ERROR);
}

Suite *
pnd_train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *core = tcase_create("Core");
    TCase *limits = tcase_create("Limits");

    tcase_set_timeout(core, 60);
    tcase_add_checked_fixture(core, quiet_logs, NULL);
    tcase_add_checked_fixture(limits, quiet_logs, NULL);
    tcase_add_loop_test(core, gradient_matches_differences, 0, (int) N_SCHEMES);
    tcase_add_test(core, gradient_with_masked_output);
    tcase_add_test(core, masks_differ_between_steps);
    tcase_add_test(core, idx_fixture_reads);
    tcase_add_test(core, csv_matches_idx);
    tcase_add_test(core, split_is_seeded);
    tcase_add_test(core, standardize_uses_train_stats);
    tcase_add_test(core, coadapt_hand_example);
    tcase_add_test(core, r_terms_match_reference);
    tcase_add_test(core, training_lowers_loss);
    tcase_add_test(core, evaluation_is_repeatable);
    tcase_add_test(core, run_is_thread_independent);
    tcase_add_test(core, checkpoint_round_trip);
    tcase_add_test(core, export_reads_back_in_sim);
    tcase_add_test(core, mean_ci_known_values);
    tcase_add_test(core, config_round_trip);
    tcase_add_test(core, sweep_writes_comparison);
    tcase_add_test(core, early_stop_keeps_best);
    suite_add_tcase(s, core);

    tcase_add_test(limits, idx_bad_inputs_rejected);
    tcase_add_test(limits, csv_bad_inputs_rejected);
    tcase_add_test(limits, missing_file_is_input_error);
    tcase_add_test(limits, coadapt_all_dead_is_finite);
    tcase_add_test(limits, divergence_is_reported);
    tcase_add_test(limits, checkpoint_corruption_rejected);
    tcase_add_test(limits, invalid_spec_rejected);
    tcase_add_test(limits, config_bad_value_rejected);
    suite_add_tcase(s, limits);
    return s;
}
