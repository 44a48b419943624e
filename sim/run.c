/* The pnd sim driver: configuration, sweeps over the case lists, the
 * choice of the strongest analytic value per case, and the TSV, JSON and
 * verdict outputs. Column definitions are in docs/sim.md.
 */
#include <config.h>

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnd/analysis.h"
#include "pnd/config.h"
#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/log.h"
#include "pnd/mask.h"
#include "pnd/net.h"
#include "pnd/sim.h"

/* Largest number of Bernoulli mask variables that enumeration may visit,
 * and the largest number of loss evaluations (n 2^K) a case may spend on
 * it. At an estimated 0.3 microseconds per evaluation of a small network,
 * 2^26 evaluations take about 20 seconds. */
#define SIM_ENUMERATION_MAX_VARS 24
#define SIM_ENUMERATION_MAX_EVALS 67108864.0

/* Largest tensor Gauss-Hermite grid, in loss evaluations per sample, that a
 * case may ask the quadrature for. */
#define SIM_QUADRATURE_MAX_POINTS 200000.0

/* --- configuration ------------------------------------------------------ */

static void
list_set(struct pnd_double_list *list, double value)
{
    list->n = 1;
    list->v[0] = value;
}

void
pnd_sim_config_init(struct pnd_sim_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->model = PND_MODEL_READOUT;
    cfg->net_path = NULL;
    cfg->schemes = NULL;
    list_set(&cfg->p, 0.1);
    list_set(&cfg->scale, 1.0);
    list_set(&cfg->d, 8);
    list_set(&cfg->h, 4);
    list_set(&cfg->n, 1);
    list_set(&cfg->draws, 100000);
    cfg->c = 2;
    cfg->layers = 1;
    cfg->act = PND_ACT_TANH;
    cfg->loss = PND_LOSS_SQUARED;
    cfg->noise = 0.1;
    cfg->seed = 1;
    cfg->data_seed = 1;
    cfg->chunk = PND_MC_CHUNK_DEFAULT;
    cfg->threads = 0;
    cfg->quad_nodes = 10;
    cfg->grad_draws = 10000;
    cfg->cov = true;
    cfg->check = false;
}

void
pnd_sim_config_free(struct pnd_sim_config *cfg)
{
    free(cfg->net_path);
    free(cfg->schemes);
    cfg->net_path = NULL;
    cfg->schemes = NULL;
}

#define SIM_N_KEYS 23

/* The key table of cfg: every option of pnd sim, in file and flag form. */
static size_t
config_keys(struct pnd_sim_config *cfg, struct pnd_config_key *keys)
{
    const struct pnd_config_key table[SIM_N_KEYS] = {
        {"sim", "model", PND_CONFIG_CHOICE, &cfg->model, 0, 0, pnd_model_names,
         "synthetic model: linear, readout, softmax or mlp"},
        {"sim", "net", PND_CONFIG_STRING, &cfg->net_path, 0, 0, NULL,
         "network file (INI) instead of a synthetic model"},
        {"sim", "scheme", PND_CONFIG_STRING, &cfg->schemes, 0, 0, NULL,
         "masking schemes, comma-separated, or all"},
        /* No range here: pnd_check_p rejects p outside [0, 1) with its own message. */
        {"sim", "p", PND_CONFIG_DOUBLE_LIST, &cfg->p, 0.0, 0.0, NULL,
         "drop probabilities in [0, 1), comma-separated"},
        {"sim", "scale", PND_CONFIG_DOUBLE_LIST, &cfg->scale, 1e-6, 1e6, NULL,
         "weight scales: W ~ N(0, scale^2 / d_in)"},
        {"sim", "d", PND_CONFIG_INT_LIST, &cfg->d, 1, 1e6, NULL,
         "input dimensions"},
        {"sim", "h", PND_CONFIG_INT_LIST, &cfg->h, 1, 1e6, NULL,
         "widths of the masked layers (readout and mlp models)"},
        {"sim", "c", PND_CONFIG_INT, &cfg->c, 1, 1e6, NULL,
         "readout rows, targets or classes"},
        {"sim", "n", PND_CONFIG_INT_LIST, &cfg->n, 1, 1e7, NULL,
         "batch sizes"},
        {"sim", "draws", PND_CONFIG_INT_LIST, &cfg->draws, 2, 1e13, NULL,
         "numbers of Monte Carlo draws"},
        {"sim", "layers", PND_CONFIG_INT, &cfg->layers, 1, PND_NET_MAX_LAYERS, NULL,
         "masked layers of the mlp model"},
        {"sim", "act", PND_CONFIG_CHOICE, &cfg->act, 0, 0, pnd_activation_names,
         "activation of the mlp model's layers"},
        {"sim", "loss", PND_CONFIG_CHOICE, &cfg->loss, 0, 0, pnd_loss_names,
         "loss of the mlp model"},
        {"sim", "noise", PND_CONFIG_DOUBLE, &cfg->noise, 0.0, 1e6, NULL,
         "teacher target noise sd, or label flip probability"},
        {"sim", "seed", PND_CONFIG_UINT64, &cfg->seed, 0, 0, NULL,
         "seed of the masks"},
        {"sim", "data-seed", PND_CONFIG_UINT64, &cfg->data_seed, 0, 0, NULL,
         "seed of the synthetic network and data"},
        {"sim", "chunk", PND_CONFIG_INT, &cfg->chunk, 1, 1e9, NULL,
         "draws per chunk of the parallel accumulation"},
        {"sim", "threads", PND_CONFIG_INT, &cfg->threads, 0, 4096, NULL,
         "OpenMP threads, 0 for the OpenMP default"},
        {"sim", "quad-nodes", PND_CONFIG_INT, &cfg->quad_nodes, 2, 200, NULL,
         "Gauss-Hermite nodes per dimension"},
        {"sim", "grad-draws", PND_CONFIG_INT, &cfg->grad_draws, 0, 1e12, NULL,
         "draws of the gradient moments, 0 to skip them"},
        {"sim", "expansions", PND_CONFIG_BOOL, &cfg->expansions, 0, 0, NULL,
         "add the order2 and order3 rows beside an exact value"},
        {"sim", "cov", PND_CONFIG_BOOL, &cfg->cov, 0, 0, NULL,
         "estimate the covariance of the first layer's pre-activations"},
        {"sim", "check", PND_CONFIG_BOOL, &cfg->check, 0, 0, NULL,
         "fail (exit status 1) when an exact comparison has |z| > 4"},
    };

    memcpy(keys, table, sizeof table);
    return SIM_N_KEYS;
}

int
pnd_sim_config_read(struct pnd_sim_config *cfg, const char *path)
{
    struct pnd_config_key keys[SIM_N_KEYS];
    size_t n_keys = config_keys(cfg, keys);

    return pnd_config_read(path, keys, n_keys);
}

int
pnd_sim_config_set(struct pnd_sim_config *cfg, const char *name,
                   const char *value, const char *origin)
{
    struct pnd_config_key keys[SIM_N_KEYS];
    size_t n_keys = config_keys(cfg, keys);

    return pnd_config_set(keys, n_keys, "sim", name, value, origin, 0);
}

int
pnd_sim_config_write(const struct pnd_sim_config *cfg, const char *path)
{
    struct pnd_config_key keys[SIM_N_KEYS];
    size_t n_keys = config_keys((struct pnd_sim_config *) cfg, keys);

    return pnd_config_write(path, keys, n_keys);
}

/* Parse cfg->schemes into a list; NULL means pernodedrop. */
static int
parse_schemes(const char *text, enum pnd_scheme *schemes, size_t *n_schemes)
{
    char *copy, *token, *save = NULL;
    int status = PND_OK;

    *n_schemes = 0;
    if (text == NULL || strcmp(text, "all") == 0) {
        if (text == NULL) {
            schemes[(*n_schemes)++] = PND_SCHEME_PERNODEDROP;
            return PND_OK;
        }
        for (int s = 0; s < PND_SCHEME_COUNT; s++)
            schemes[(*n_schemes)++] = (enum pnd_scheme) s;
        return PND_OK;
    }
    copy = strdup(text);
    if (copy == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory parsing the scheme list");
    for (token = strtok_r(copy, ", ", &save); token != NULL;
         token = strtok_r(NULL, ", ", &save)) {
        if (*n_schemes == PND_SCHEME_COUNT) {
            status = pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                                   "scheme list '%s' has more than %d entries",
                                   text, PND_SCHEME_COUNT);
            break;
        }
        status = pnd_scheme_parse(token, &schemes[*n_schemes]);
        if (status != PND_OK)
            break;
        (*n_schemes)++;
    }
    free(copy);
    if (status == PND_OK && *n_schemes == 0)
        status = pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                               "empty scheme list: name at least one scheme or all");
    return status;
}

/* --- one case ----------------------------------------------------------- */

enum analytic_kind {
    KIND_EXACT = 0, KIND_ENUMERATION, KIND_QUADRATURE, KIND_ORDER2, KIND_ORDER3
};

static const char *const kind_names[] = {
    "exact", "enumeration", "quadrature", "order2", "order3"
};

/* Everything measured for one case. NAN marks a value that does not apply.
 * scheme and p are those of the first layer. */
struct sim_case {
    enum pnd_scheme scheme;
    const char *model;
    enum pnd_activation act;
    double p, scale;
    size_t d, c, n, n_layers, h[PND_NET_MAX_LAYERS];
    uint64_t draws, seed;

    struct pnd_estimate own, per_sample, shared;
    bool have_batch;                 /* n > 1: the two batch modes differ */

    enum analytic_kind kinds[3];
    size_t n_kinds;
    double analytic[3];
    double var_analytic;             /* Var[L] in the scheme's own mode */
    double per_sample_exact, shared_exact;
    double R_diag, R_cross;
    bool kink;

    bool have_cov;
    double cov_trace_mc, cov_trace_se, cov_trace_exact;
    double cov_off_mc, cov_off_se, cov_off_exact;
    double cov_mu_norm2;

    bool have_grad;
    double grad_mean_norm, grad_mean_se, grad_tr_cov, grad_tr_cov_se;

    size_t exact_checks, exact_failed;
    double max_abs_z;
    double elapsed_s;
};

static bool
is_quadratic(const struct pnd_net *net)
{
    return net->n_layers == 1 && net->layers[0].act == PND_ACT_IDENTITY
           && net->loss == PND_LOSS_SQUARED;
}

static bool
scheme_shares_batch(enum pnd_scheme scheme)
{
    return scheme == PND_SCHEME_DROPCONNECT || scheme == PND_SCHEME_FIXED_MASK;
}

/* True when some masked layer draws a fresh mask per sample. */
static bool
net_masks_per_sample(const struct pnd_net *net)
{
    for (size_t l = 0; l < net->n_layers; l++) {
        enum pnd_scheme scheme = net->layers[l].mask.scheme;

        if (scheme != PND_SCHEME_NONE && !scheme_shares_batch(scheme)
            && net->layers[l].mask.p > 0.0)
            return true;
    }
    return false;
}

/* True when some masked layer shares its mask across the batch. */
static bool
net_shares_batch(const struct pnd_net *net)
{
    for (size_t l = 0; l < net->n_layers; l++)
        if (scheme_shares_batch(net->layers[l].mask.scheme)
            && net->layers[l].mask.p > 0.0)
            return true;
    return false;
}

/* Mask variables per draw of one sample over every masked layer. */
static double
mask_variables(const struct pnd_net *net)
{
    double count = 0.0;

    for (size_t l = 0; l < net->n_layers; l++) {
        const struct pnd_layer *layer = &net->layers[l];

        if (layer->mask.scheme == PND_SCHEME_NONE || layer->mask.p == 0.0)
            continue;
        if (pnd_scheme_per_connection(layer->mask.scheme)
            || layer->mask.scheme == PND_SCHEME_FIXED_MASK)
            count += (double) layer->d_in * (double) layer->d_out;
        else
            count += (double) layer->d_in;
    }
    return count;
}

static bool
any_gaussian(const struct pnd_net *net)
{
    for (size_t l = 0; l < net->n_layers; l++)
        if (pnd_scheme_gaussian(net->layers[l].mask.scheme))
            return true;
    return false;
}

/* Whether the quadrature of one Gaussian layer stays small. */
static bool
quadrature_fits(const struct pnd_net *net, long nodes)
{
    const struct pnd_layer *layer = &net->layers[0];
    double dims;

    if (net->n_layers != 1 || !pnd_scheme_gaussian(layer->mask.scheme))
        return false;
    /* Diagonal S and a separable loss: h one-dimensional integrals. */
    if (net->V == NULL && net->loss == PND_LOSS_SQUARED
        && pnd_scheme_per_connection(layer->mask.scheme))
        return true;
    dims = (double) layer->d_out;
    if (!pnd_scheme_per_connection(layer->mask.scheme)
        && layer->d_in < layer->d_out)
        dims = (double) layer->d_in;
    return pow((double) nodes, dims) <= SIM_QUADRATURE_MAX_POINTS;
}

static void
record_check(struct sim_case *sc, double z)
{
    sc->exact_checks++;
    if (!(fabs(z) <= PND_SIM_Z_MAX))
        sc->exact_failed++;
    if (isnan(sc->max_abs_z) || fabs(z) > sc->max_abs_z)
        sc->max_abs_z = fabs(z);
}

/* The analytic columns: the strongest available value of E[L]. */
static int
analytic_values(const struct pnd_sim_config *cfg, const struct pnd_net *net,
                const struct pnd_data *data, struct sim_case *sc)
{
    double n = (double) data->n;

    sc->var_analytic = (double) NAN;
    sc->per_sample_exact = (double) NAN;
    sc->shared_exact = (double) NAN;
    sc->n_kinds = 0;

    if (is_quadratic(net)) {
        struct pnd_moments per_sample, shared;

        PND_TRY(pnd_exact_batch_moments(net, data, &per_sample, &shared));
        sc->kinds[0] = KIND_EXACT;
        sc->analytic[0] = per_sample.mean;
        sc->n_kinds = 1;
        sc->per_sample_exact = per_sample.var;
        sc->shared_exact = shared.var;
        sc->var_analytic = scheme_shares_batch(sc->scheme) ? shared.var
                           : per_sample.var;
        return PND_OK;
    }

    if (!any_gaussian(net) && mask_variables(net) <= SIM_ENUMERATION_MAX_VARS
        && n * pow(2.0, mask_variables(net)) <= SIM_ENUMERATION_MAX_EVALS) {
        double mean = 0.0, var = 0.0;

        for (size_t k = 0; k < data->n; k++) {
            struct pnd_moments m;

            PND_TRY(pnd_enumerate_sample_moments(net, data, k, &m));
            mean += m.mean;
            var += m.var;
        }
        sc->kinds[0] = KIND_ENUMERATION;
        sc->analytic[0] = mean / n;
        sc->n_kinds = 1;
        sc->per_sample_exact = var / (n * n);
        if (data->n == 1) {
            sc->shared_exact = sc->per_sample_exact;
            sc->var_analytic = sc->per_sample_exact;
        } else if (!net_shares_batch(net)) {
            sc->var_analytic = sc->per_sample_exact;
        }
        return PND_OK;
    }

    if (quadrature_fits(net, cfg->quad_nodes)) {
        double mean = 0.0;
        int status = PND_OK;

        for (size_t k = 0; k < data->n && status == PND_OK; k++) {
            double value;

            status = pnd_quadrature_expected_loss(net, data, k,
                                                  (size_t) cfg->quad_nodes, &value);
            mean += value;
        }
        if (status == PND_OK) {
            sc->kinds[0] = KIND_QUADRATURE;
            sc->analytic[0] = mean / n;
            sc->n_kinds = 1;
            return PND_OK;
        }
        /* A failed quadrature leaves the expansions, which always exist. */
        pnd_log(PND_LOG_INFO, "quadrature failed (%s); reporting the expansions instead",
                pnd_error_message());
        pnd_error_clear();
    }

    return PND_OK;
}

/* Append the order2 and order3 rows of the expansions to the case. */
static int
expansion_values(const struct pnd_net *net, const struct pnd_data *data,
                 struct sim_case *sc)
{
    double order2 = 0.0, order3 = 0.0, n = (double) data->n;

    for (size_t k = 0; k < data->n; k++) {
        struct pnd_expansion e;

        PND_TRY(pnd_expand_sample(net, data, k, &e));
        order2 += e.order2;
        order3 += e.order3;
    }
    sc->kinds[sc->n_kinds] = KIND_ORDER2;
    sc->analytic[sc->n_kinds] = order2 / n;
    sc->kinds[sc->n_kinds + 1] = KIND_ORDER3;
    sc->analytic[sc->n_kinds + 1] = order3 / n;
    sc->n_kinds += 2;
    return PND_OK;
}

/* R_diag and R_cross averaged over the samples. */
static int
penalty_terms(const struct pnd_net *net, const struct pnd_data *data,
              struct sim_case *sc)
{
    double R_diag = 0.0, R_cross = 0.0;
    bool kink = false;

    for (size_t k = 0; k < data->n; k++) {
        struct pnd_expansion e;

        PND_TRY(pnd_expand_sample(net, data, k, &e));
        R_diag += e.R_diag;
        R_cross += e.R_cross;
        kink = kink || e.kink;
    }
    sc->R_diag = R_diag / (double) data->n;
    sc->R_cross = R_cross / (double) data->n;
    sc->kink = kink;
    return PND_OK;
}

static int
monte_carlo(const struct pnd_sim_config *cfg, const struct pnd_net *net,
            const struct pnd_data *data, struct sim_case *sc)
{
    struct pnd_mc_options opt;

    pnd_mc_options_init(&opt);
    opt.draws = sc->draws;
    opt.seed = cfg->seed;
    opt.chunk = (uint64_t) cfg->chunk;
    opt.threads = (int) cfg->threads;

    PND_TRY(pnd_mc_loss(net, data, PND_BATCH_OWN, &opt, &sc->own));
    sc->have_batch = data->n > 1;
    if (!sc->have_batch) {
        sc->per_sample = sc->own;
        sc->shared = sc->own;
    } else {
        /* Reuse the own-mode run where it has the same masks as a mode. */
        if (net_shares_batch(net))
            PND_TRY(pnd_mc_loss(net, data, PND_BATCH_PER_SAMPLE, &opt,
                                &sc->per_sample));
        else
            sc->per_sample = sc->own;
        if (net_masks_per_sample(net))
            PND_TRY(pnd_mc_loss(net, data, PND_BATCH_SHARED, &opt, &sc->shared));
        else
            sc->shared = sc->own;
    }

    sc->have_cov = cfg->cov;
    if (cfg->cov) {
        struct pnd_cov_estimate *cov = pnd_cov_estimate_alloc(net->layers[0].d_out);
        int status;

        if (cov == NULL)
            return pnd_error_status();
        status = pnd_mc_preact_cov(net, data, 0, 0, &opt, cov);
        if (status == PND_OK) {
            sc->cov_trace_mc = cov->trace.mean;
            sc->cov_trace_se = cov->trace.se;
            sc->cov_trace_exact = cov->trace_exact;
            sc->cov_off_mc = cov->offdiag.mean;
            sc->cov_off_se = cov->offdiag.se;
            sc->cov_off_exact = cov->offdiag_exact;
            sc->cov_mu_norm2 = cov->mu_norm2;
        }
        pnd_cov_estimate_free(cov);
        PND_TRY(status);
    }

    sc->have_grad = cfg->grad_draws >= 2;
    if (sc->have_grad) {
        struct pnd_grad_estimate *grad = pnd_grad_estimate_alloc(net);
        int status;

        if (grad == NULL)
            return pnd_error_status();
        opt.draws = (uint64_t) cfg->grad_draws;
        status = pnd_mc_grad(net, data, &opt, grad);
        if (status == PND_OK) {
            sc->grad_mean_norm = grad->mean_norm[0];
            /* Frobenius norm of the standard errors of the mean's entries. */
            sc->grad_mean_se = sqrt(grad->tr_cov[0].mean / (double) opt.draws);
            sc->grad_tr_cov = grad->tr_cov[0].mean;
            sc->grad_tr_cov_se = grad->tr_cov[0].se;
        }
        pnd_grad_estimate_free(grad);
        PND_TRY(status);
    }
    return PND_OK;
}

/* Every exact comparison of the case, counted once per case. */
static void
judge_case(struct sim_case *sc)
{
    sc->exact_checks = 0;
    sc->exact_failed = 0;
    sc->max_abs_z = (double) NAN;
    if (sc->kinds[0] <= KIND_QUADRATURE)
        record_check(sc, pnd_sim_z(sc->own.mean, sc->analytic[0], sc->own.se));
    if (!isnan(sc->var_analytic))
        record_check(sc, pnd_sim_z_scaled(sc->own.var, sc->var_analytic,
                                          sc->own.var_se,
                                          sc->own.mean * sc->own.mean));
    if (sc->have_batch && !isnan(sc->per_sample_exact))
        record_check(sc, pnd_sim_z_scaled(sc->per_sample.var, sc->per_sample_exact,
                                   sc->per_sample.var_se,
                                   sc->own.mean * sc->own.mean));
    if (sc->have_batch && !isnan(sc->shared_exact))
        record_check(sc, pnd_sim_z_scaled(sc->shared.var, sc->shared_exact,
                                   sc->shared.var_se,
                                   sc->own.mean * sc->own.mean));
    if (sc->have_cov) {
        record_check(sc, pnd_sim_z_scaled(sc->cov_trace_mc, sc->cov_trace_exact,
                                   sc->cov_trace_se, sc->cov_mu_norm2));
        record_check(sc, pnd_sim_z_scaled(sc->cov_off_mc, sc->cov_off_exact,
                                   sc->cov_off_se, sc->cov_mu_norm2));
    }
}

/* Build the network of a case: from the file, or synthetic. */
static int
case_network(const struct pnd_sim_config *cfg, const struct sim_case *sc,
             bool override_scheme, struct pnd_net **net, struct pnd_data **data)
{
    if (cfg->net_path != NULL) {
        PND_TRY(pnd_net_read(cfg->net_path, net, data));
    } else {
        struct pnd_synth_spec spec;

        pnd_synth_spec_init(&spec);
        spec.model = (enum pnd_model) cfg->model;
        spec.d = sc->d;
        spec.n_layers = sc->n_layers;
        for (size_t l = 0; l < sc->n_layers; l++)
            spec.h[l] = sc->h[l];
        spec.c = (size_t) cfg->c;
        spec.n = sc->n;
        spec.scale = sc->scale;
        spec.noise = cfg->noise;
        spec.act = (enum pnd_activation) cfg->act;
        spec.loss = (enum pnd_loss) cfg->loss;
        spec.seed = cfg->data_seed;
        PND_TRY(pnd_net_synth(&spec, net, data));
    }
    if (override_scheme) {
        int status = pnd_net_set_scheme(*net, sc->scheme, sc->p, cfg->seed);

        if (status != PND_OK) {
            pnd_net_free(*net);
            pnd_data_free(*data);
            *net = NULL;
            *data = NULL;
            return status;
        }
    }
    return PND_OK;
}

static int
run_case(const struct pnd_sim_config *cfg, bool override_scheme,
         struct sim_case *sc)
{
    struct pnd_net *net = NULL;
    struct pnd_data *data = NULL;
    double start = pnd_wall_seconds();
    int status;

    PND_TRY(case_network(cfg, sc, override_scheme, &net, &data));
    /* A network file fixes the shape; record what it holds. */
    sc->d = net->layers[0].d_in;
    sc->n = data->n;
    sc->c = net->n_out;
    sc->n_layers = net->n_layers;
    for (size_t l = 0; l < net->n_layers; l++)
        sc->h[l] = net->layers[l].d_out;
    sc->act = net->layers[0].act;
    sc->scheme = net->layers[0].mask.scheme;
    sc->p = net->layers[0].mask.p;

    status = monte_carlo(cfg, net, data, sc);
    if (status == PND_OK)
        status = analytic_values(cfg, net, data, sc);
    /* Without a ground truth, or on request beside it: the expansions. */
    if (status == PND_OK && (sc->n_kinds == 0 || cfg->expansions))
        status = expansion_values(net, data, sc);
    if (status == PND_OK)
        status = penalty_terms(net, data, sc);
    if (status == PND_OK)
        judge_case(sc);
    sc->elapsed_s = pnd_wall_seconds() - start;

    pnd_net_free(net);
    pnd_data_free(data);
    return status;
}

/* --- outputs ------------------------------------------------------------ */

static const char *const tsv_columns[] = {
    "case", "scheme", "model", "act", "p", "scale", "d", "h", "c", "n",
    "draws", "seed", "analytic", "analytic_kind", "mc_mean", "mc_se", "z",
    "residual", "residual_se", "R_diag", "R_cross", "mc_var", "mc_var_se",
    "var_analytic", "var_z", "batch_var_per_sample_mc",
    "batch_var_per_sample_se", "batch_var_per_sample_exact",
    "batch_var_shared_mc", "batch_var_shared_se", "batch_var_shared_exact",
    "cov_trace_mc", "cov_trace_se", "cov_trace_exact", "cov_offdiag_mc",
    "cov_offdiag_se", "cov_offdiag_exact", "grad_mean_norm", "grad_mean_se",
    "grad_tr_cov",
    "grad_tr_cov_se", "max_abs_z", "verdict", "elapsed_s", NULL
};

static void
format_widths(const struct sim_case *sc, char *text, size_t size)
{
    size_t used = 0;

    text[0] = '\0';
    for (size_t l = 0; l < sc->n_layers && used < size; l++)
        used += (size_t) snprintf(text + used, size - used, "%s%zu",
                                  l > 0 ? ":" : "", sc->h[l]);
}

static const char *
case_verdict(const struct sim_case *sc)
{
    if (sc->exact_checks == 0)
        return "-";
    return sc->exact_failed == 0 ? "pass" : "FAIL";
}

/* Values of one row, in tsv_columns order after the text columns. */
struct row_values {
    double analytic, z, residual, residual_se, var_z;
};

static struct row_values
row_values(const struct sim_case *sc, size_t r)
{
    struct row_values v;
    bool exact = sc->kinds[r] <= KIND_QUADRATURE;

    v.analytic = sc->analytic[r];
    v.z = exact ? pnd_sim_z(sc->own.mean, v.analytic, sc->own.se) : (double) NAN;
    v.residual = exact ? (double) NAN : sc->own.mean - v.analytic;
    v.residual_se = exact ? (double) NAN : sc->own.se;
    v.var_z = isnan(sc->var_analytic) ? (double) NAN
              : pnd_sim_z_scaled(sc->own.var, sc->var_analytic, sc->own.var_se,
                                 sc->own.mean * sc->own.mean);
    return v;
}

static void
write_tsv_row(FILE *fp, size_t index, const struct sim_case *sc, size_t r)
{
    struct row_values v = row_values(sc, r);
    char widths[128];
    const double nan = (double) NAN;

    format_widths(sc, widths, sizeof widths);
    fprintf(fp, "%zu\t%s\t%s\t%s\t%.6g\t%.6g\t%zu\t%s\t%zu\t%zu\t%llu\t%llu",
            index, pnd_scheme_name(sc->scheme), sc->model,
            pnd_activation_name(sc->act), sc->p, sc->scale, sc->d, widths,
            sc->c, sc->n, (unsigned long long) sc->draws,
            (unsigned long long) sc->seed);
    fprintf(fp, "\t%.12g\t%s\t%.12g\t%.6g\t%.4f\t%.6g\t%.6g\t%.6g\t%.6g",
            v.analytic, kind_names[sc->kinds[r]], sc->own.mean, sc->own.se,
            v.z, v.residual, v.residual_se, sc->R_diag, sc->R_cross);
    fprintf(fp, "\t%.12g\t%.6g\t%.12g\t%.4f", sc->own.var, sc->own.var_se,
            sc->var_analytic, v.var_z);
    fprintf(fp, "\t%.12g\t%.6g\t%.12g\t%.12g\t%.6g\t%.12g",
            sc->per_sample.var, sc->per_sample.var_se, sc->per_sample_exact,
            sc->shared.var, sc->shared.var_se, sc->shared_exact);
    fprintf(fp, "\t%.12g\t%.6g\t%.12g\t%.12g\t%.6g\t%.12g",
            sc->have_cov ? sc->cov_trace_mc : nan,
            sc->have_cov ? sc->cov_trace_se : nan,
            sc->have_cov ? sc->cov_trace_exact : nan,
            sc->have_cov ? sc->cov_off_mc : nan,
            sc->have_cov ? sc->cov_off_se : nan,
            sc->have_cov ? sc->cov_off_exact : nan);
    fprintf(fp, "\t%.12g\t%.6g\t%.12g\t%.6g",
            sc->have_grad ? sc->grad_mean_norm : nan,
            sc->have_grad ? sc->grad_mean_se : nan,
            sc->have_grad ? sc->grad_tr_cov : nan,
            sc->have_grad ? sc->grad_tr_cov_se : nan);
    fprintf(fp, "\t%.4f\t%s\t%.3f\n", sc->max_abs_z, case_verdict(sc),
            sc->elapsed_s);
}

static json_object *
json_number(double value)
{
    return isfinite(value) ? json_object_new_double(value) : NULL;
}

static json_object *
json_row(size_t index, const struct sim_case *sc, size_t r)
{
    struct row_values v = row_values(sc, r);
    json_object *row = json_object_new_object();
    char widths[128];

    format_widths(sc, widths, sizeof widths);
    json_object_object_add(row, "case", json_object_new_int64((int64_t) index));
    json_object_object_add(row, "scheme", json_object_new_string(pnd_scheme_name(sc->scheme)));
    json_object_object_add(row, "model", json_object_new_string(sc->model));
    json_object_object_add(row, "act", json_object_new_string(pnd_activation_name(sc->act)));
    json_object_object_add(row, "p", json_number(sc->p));
    json_object_object_add(row, "scale", json_number(sc->scale));
    json_object_object_add(row, "d", json_object_new_int64((int64_t) sc->d));
    json_object_object_add(row, "h", json_object_new_string(widths));
    json_object_object_add(row, "c", json_object_new_int64((int64_t) sc->c));
    json_object_object_add(row, "n", json_object_new_int64((int64_t) sc->n));
    json_object_object_add(row, "draws", json_object_new_int64((int64_t) sc->draws));
    json_object_object_add(row, "seed", json_object_new_uint64(sc->seed));
    json_object_object_add(row, "analytic", json_number(v.analytic));
    json_object_object_add(row, "analytic_kind", json_object_new_string(kind_names[sc->kinds[r]]));
    json_object_object_add(row, "mc_mean", json_number(sc->own.mean));
    json_object_object_add(row, "mc_se", json_number(sc->own.se));
    json_object_object_add(row, "z", json_number(v.z));
    json_object_object_add(row, "residual", json_number(v.residual));
    json_object_object_add(row, "residual_se", json_number(v.residual_se));
    json_object_object_add(row, "R_diag", json_number(sc->R_diag));
    json_object_object_add(row, "R_cross", json_number(sc->R_cross));
    json_object_object_add(row, "mc_var", json_number(sc->own.var));
    json_object_object_add(row, "mc_var_se", json_number(sc->own.var_se));
    json_object_object_add(row, "var_analytic", json_number(sc->var_analytic));
    json_object_object_add(row, "var_z", json_number(v.var_z));
    json_object_object_add(row, "batch_var_per_sample_mc", json_number(sc->per_sample.var));
    json_object_object_add(row, "batch_var_per_sample_se", json_number(sc->per_sample.var_se));
    json_object_object_add(row, "batch_var_per_sample_exact", json_number(sc->per_sample_exact));
    json_object_object_add(row, "batch_var_shared_mc", json_number(sc->shared.var));
    json_object_object_add(row, "batch_var_shared_se", json_number(sc->shared.var_se));
    json_object_object_add(row, "batch_var_shared_exact", json_number(sc->shared_exact));
    json_object_object_add(row, "cov_trace_mc", json_number(sc->have_cov ? sc->cov_trace_mc : (double) NAN));
    json_object_object_add(row, "cov_trace_se", json_number(sc->have_cov ? sc->cov_trace_se : (double) NAN));
    json_object_object_add(row, "cov_trace_exact", json_number(sc->have_cov ? sc->cov_trace_exact : (double) NAN));
    json_object_object_add(row, "cov_offdiag_mc", json_number(sc->have_cov ? sc->cov_off_mc : (double) NAN));
    json_object_object_add(row, "cov_offdiag_se", json_number(sc->have_cov ? sc->cov_off_se : (double) NAN));
    json_object_object_add(row, "cov_offdiag_exact", json_number(sc->have_cov ? sc->cov_off_exact : (double) NAN));
    json_object_object_add(row, "grad_mean_norm", json_number(sc->have_grad ? sc->grad_mean_norm : (double) NAN));
    json_object_object_add(row, "grad_mean_se", json_number(sc->have_grad ? sc->grad_mean_se : (double) NAN));
    json_object_object_add(row, "grad_tr_cov", json_number(sc->have_grad ? sc->grad_tr_cov : (double) NAN));
    json_object_object_add(row, "grad_tr_cov_se", json_number(sc->have_grad ? sc->grad_tr_cov_se : (double) NAN));
    json_object_object_add(row, "max_abs_z", json_number(sc->max_abs_z));
    json_object_object_add(row, "verdict", json_object_new_string(case_verdict(sc)));
    json_object_object_add(row, "elapsed_s", json_number(sc->elapsed_s));
    return row;
}

static void
log_verdict(size_t index, const struct sim_case *sc, size_t r)
{
    struct row_values v = row_values(sc, r);
    char widths[128];

    format_widths(sc, widths, sizeof widths);
    if (sc->kinds[r] <= KIND_QUADRATURE)
        pnd_log(PND_LOG_INFO,
                "%3zu %-20s p=%-6.3g h=%-6s n=%-4zu %-11s E[L] %.8g  mc %.8g +- %.2g  z %+6.2f  max|z| %.2f  %s",
                index, pnd_scheme_name(sc->scheme), sc->p, widths, sc->n,
                kind_names[sc->kinds[r]], v.analytic, sc->own.mean, sc->own.se,
                v.z, sc->max_abs_z, case_verdict(sc));
    else
        pnd_log(PND_LOG_INFO,
                "%3zu %-20s p=%-6.3g h=%-6s n=%-4zu %-11s E[L] %.8g  mc %.8g +- %.2g  residual %+.3g +- %.2g%s",
                index, pnd_scheme_name(sc->scheme), sc->p, widths, sc->n,
                kind_names[sc->kinds[r]], v.analytic, sc->own.mean, sc->own.se,
                v.residual, v.residual_se,
                sc->kink ? "  (ReLU kink: expansion not expected to hold)" : "");
}

/* --- the sweep ---------------------------------------------------------- */

struct sim_outputs {
    struct pnd_atomic_file tsv;
    bool tsv_open;
    FILE *tsv_fp;
    json_object *rows;
};

static int
open_outputs(const char *tsv_path, struct sim_outputs *out)
{
    memset(out, 0, sizeof *out);
    out->rows = json_object_new_array();
    if (out->rows == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for the JSON summary");
    if (tsv_path == NULL || strcmp(tsv_path, "-") == 0) {
        out->tsv_fp = stdout;
    } else {
        PND_TRY(pnd_atomic_open(&out->tsv, tsv_path));
        out->tsv_open = true;
        out->tsv_fp = out->tsv.fp;
    }
    return PND_OK;
}

static void
write_tsv_header(FILE *fp)
{
    for (size_t i = 0; tsv_columns[i] != NULL; i++)
        fprintf(fp, "%s%s", i > 0 ? "\t" : "", tsv_columns[i]);
    fputc('\n', fp);
}

static int
write_json(const char *json_path, json_object *rows,
           const struct pnd_sim_summary *summary)
{
    json_object *root = json_object_new_object();
    json_object *sum = json_object_new_object();
    const char *text;
    int status;

    if (root == NULL || sum == NULL) {
        json_object_put(root);
        json_object_put(sum);
        PND_ERROR(PND_ENOMEM, "out of memory for the JSON summary");
    }
    json_object_object_add(sum, "cases", json_object_new_int64((int64_t) summary->cases));
    json_object_object_add(sum, "rows", json_object_new_int64((int64_t) summary->rows));
    json_object_object_add(sum, "exact_checks", json_object_new_int64((int64_t) summary->exact_checks));
    json_object_object_add(sum, "exact_failed", json_object_new_int64((int64_t) summary->exact_failed));
    json_object_object_add(sum, "max_abs_z", json_number(summary->max_abs_z));
    json_object_object_add(sum, "z_max", json_object_new_double(PND_SIM_Z_MAX));
    json_object_object_add(sum, "elapsed_s", json_number(summary->elapsed_s));
    json_object_object_add(root, "summary", sum);
    json_object_object_add(root, "rows", json_object_get(rows));

    text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY
                                                | JSON_C_TO_STRING_NOSLASHESCAPE);
    status = pnd_atomic_write(json_path, text, strlen(text));
    json_object_put(root);
    return status;
}

/* Every combination of the lists, in a fixed nesting order. */
struct sweep_lists {
    enum pnd_scheme schemes[PND_SCHEME_COUNT];
    size_t n_schemes;
    bool override_scheme;
};

static int
validate_config(const struct pnd_sim_config *cfg)
{
    for (size_t i = 0; i < cfg->p.n; i++)
        PND_TRY(pnd_check_p(cfg->p.v[i], "p (--p)"));
    if (cfg->p.n == 0 || cfg->scale.n == 0 || cfg->d.n == 0 || cfg->h.n == 0
        || cfg->n.n == 0 || cfg->draws.n == 0)
        PND_ERROR(PND_EINVAL, "every sweep list (p, scale, d, h, n, draws) needs at least one value");
    if ((unsigned) cfg->model >= PND_MODEL_COUNT)
        PND_ERROR(PND_EINVAL, "invalid model %d", cfg->model);
    if (cfg->model == PND_MODEL_SOFTMAX && cfg->c < 2)
        PND_ERROR(PND_EINVAL, "the softmax model needs --c 2 or more, not %ld", cfg->c);
    return PND_OK;
}

int
pnd_sim_run(const struct pnd_sim_config *cfg, const char *tsv_path,
            const char *json_path, struct pnd_sim_summary *summary)
{
    struct pnd_sim_summary local = {0};
    struct sweep_lists lists;
    struct sim_outputs out;
    double start = pnd_wall_seconds();
    size_t index = 0;
    int status;

    PND_TRY(validate_config(cfg));
    PND_TRY(parse_schemes(cfg->schemes, lists.schemes, &lists.n_schemes));
    /* A network file keeps its own schemes unless --scheme names some. */
    lists.override_scheme = cfg->net_path == NULL || cfg->schemes != NULL;
    local.max_abs_z = 0.0;
    PND_TRY(open_outputs(tsv_path, &out));

    status = PND_OK;
    for (size_t is = 0; is < lists.n_schemes && status == PND_OK; is++)
    for (size_t idr = 0; idr < cfg->draws.n && status == PND_OK; idr++)
    for (size_t in = 0; in < cfg->n.n && status == PND_OK; in++)
    for (size_t id = 0; id < cfg->d.n && status == PND_OK; id++)
    for (size_t ih = 0; ih < cfg->h.n && status == PND_OK; ih++)
    for (size_t isc = 0; isc < cfg->scale.n && status == PND_OK; isc++)
    for (size_t ip = 0; ip < cfg->p.n && status == PND_OK; ip++) {
        struct sim_case sc;

        /* A network file fixes d, h, scale and n; without --scheme it also
         * fixes the schemes and p, so only the draws are swept. */
        if (cfg->net_path != NULL && (in > 0 || id > 0 || ih > 0 || isc > 0))
            continue;
        if (cfg->net_path != NULL && !lists.override_scheme && (is > 0 || ip > 0))
            continue;
        memset(&sc, 0, sizeof sc);
        sc.scheme = lists.schemes[is];
        sc.model = cfg->net_path != NULL ? "file" : pnd_model_name((enum pnd_model) cfg->model);
        sc.p = cfg->p.v[ip];
        sc.scale = cfg->net_path != NULL ? (double) NAN : cfg->scale.v[isc];
        sc.d = (size_t) cfg->d.v[id];
        sc.n = (size_t) cfg->n.v[in];
        sc.draws = (uint64_t) cfg->draws.v[idr];
        sc.seed = cfg->seed;
        sc.n_layers = cfg->model == PND_MODEL_MLP ? (size_t) cfg->layers : 1;
        for (size_t l = 0; l < sc.n_layers; l++)
            sc.h[l] = (size_t) cfg->h.v[ih];
        if (cfg->model == PND_MODEL_LINEAR || cfg->model == PND_MODEL_SOFTMAX)
            sc.h[0] = (size_t) cfg->c;

        status = run_case(cfg, lists.override_scheme, &sc);
        if (status != PND_OK)
            break;
        if (index == 0)
            write_tsv_header(out.tsv_fp);
        for (size_t r = 0; r < sc.n_kinds; r++) {
            write_tsv_row(out.tsv_fp, index, &sc, r);
            json_object_array_add(out.rows, json_row(index, &sc, r));
            log_verdict(index, &sc, r);
            local.rows++;
        }
        local.cases++;
        local.exact_checks += sc.exact_checks;
        local.exact_failed += sc.exact_failed;
        if (!isnan(sc.max_abs_z) && sc.max_abs_z > local.max_abs_z)
            local.max_abs_z = sc.max_abs_z;
        index++;
    }
    local.elapsed_s = pnd_wall_seconds() - start;

    if (status != PND_OK) {
        if (out.tsv_open)
            pnd_atomic_abort(&out.tsv);
        json_object_put(out.rows);
        return status;
    }
    if (out.tsv_open)
        status = pnd_atomic_commit(&out.tsv);
    else
        fflush(stdout);
    if (status == PND_OK && json_path != NULL)
        status = write_json(json_path, out.rows, &local);
    json_object_put(out.rows);
    PND_TRY(status);

    if (local.exact_checks == 0)
        pnd_log(PND_LOG_INFO, "%zu cases, no exact comparisons (expansions only), %.1f s",
                local.cases, local.elapsed_s);
    else
        pnd_log(PND_LOG_INFO, "%zu cases, %zu exact comparisons, %zu failed |z| <= %.0f (max |z| %.2f), %.1f s",
                local.cases, local.exact_checks, local.exact_failed, PND_SIM_Z_MAX,
                local.max_abs_z, local.elapsed_s);
    if (summary != NULL)
        *summary = local;
    if (cfg->check && local.exact_failed > 0)
        PND_ERROR(PND_EFAILED,
                  "%zu of %zu exact comparisons failed |z| <= %.0f: see the verdict column",
                  local.exact_failed, local.exact_checks, PND_SIM_Z_MAX);
    return PND_OK;
}
