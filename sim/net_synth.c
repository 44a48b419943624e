/* Synthetic teacher-student problems for the simulator.
 *
 * The student is the network whose masked loss is studied. The teacher is
 * an independent random network of the same shape. Its outputs plus
 * Gaussian noise are the targets, or its argmax, flipped to a uniform class
 * with probability noise, is the label. Every matrix is drawn from its own derived
 * stream (seed; SYNTH_STREAM, role, network, layer), so changing one
 * dimension does not shift the draws of the others' streams.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnd/error.h"
#include "pnd/net.h"
#include "pnd/rng.h"
#include "sim/net_private.h"

/* First coordinate of every stream drawn here ("synt" in ASCII), so these
 * streams never coincide with the mask streams of the same seed. */
#define SYNTH_STREAM 0x73796e74u

enum synth_role {
    ROLE_W = 1, ROLE_B, ROLE_V, ROLE_E, ROLE_X, ROLE_NOISE
};

enum { NET_STUDENT = 0, NET_TEACHER = 1 };

/* Scale of the biases relative to the weight scale. */
#define SYNTH_BIAS_SCALE 0.1

const char *const pnd_model_names[] = {
    "linear", "readout", "softmax", "mlp", NULL
};

const char *
pnd_model_name(enum pnd_model model)
{
    if ((unsigned) model >= PND_MODEL_COUNT)
        return "unknown";
    return pnd_model_names[model];
}

int
pnd_model_parse(const char *name, enum pnd_model *model)
{
    for (int i = 0; pnd_model_names[i] != NULL; i++) {
        if (strcmp(name, pnd_model_names[i]) == 0) {
            *model = (enum pnd_model) i;
            return PND_OK;
        }
    }
    PND_ERROR(PND_EINVAL, "unknown model '%s': use linear, readout, softmax or mlp",
              name);
}

void
pnd_synth_spec_init(struct pnd_synth_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->model = PND_MODEL_READOUT;
    spec->d = 8;
    spec->n_layers = 1;
    spec->h[0] = 4;
    spec->c = 2;
    spec->n = 1;
    spec->scale = 1.0;
    spec->noise = 0.1;
    spec->act = PND_ACT_TANH;
    spec->loss = PND_LOSS_SQUARED;
    spec->seed = 1;
}

static void
fill_normal(uint64_t seed, enum synth_role role, int which, size_t layer,
            double sd, size_t count, double *out /* (count) */)
{
    uint64_t coords[4] = {SYNTH_STREAM, (uint64_t) role, (uint64_t) which,
                          (uint64_t) layer};
    pnd_pcg64 r;

    pnd_rng_derive(&r, seed, coords, 4);
    for (size_t e = 0; e < count; e++)
        out[e] = sd * pnd_rng_normal(&r);
}

/* Draw the weights of one network (student or teacher) of net's shape. */
static void
fill_net(struct pnd_net *net, uint64_t seed, int which, double scale)
{
    for (size_t l = 0; l < net->n_layers; l++) {
        struct pnd_layer *layer = &net->layers[l];
        double sd = scale / sqrt((double) layer->d_in);

        fill_normal(seed, ROLE_W, which, l, sd, layer->d_out * layer->d_in,
                    layer->W);
        fill_normal(seed, ROLE_B, which, l, SYNTH_BIAS_SCALE * scale,
                    layer->d_out, layer->b);
    }
    if (net->V != NULL) {
        size_t h = net->layers[net->n_layers - 1].d_out;

        fill_normal(seed, ROLE_V, which, 0, 1.0 / sqrt((double) h),
                    net->n_out * h, net->V);
        fill_normal(seed, ROLE_E, which, 0, SYNTH_BIAS_SCALE, net->n_out,
                    net->e);
    }
}

static int
check_spec(const struct pnd_synth_spec *spec)
{
    if ((unsigned) spec->model >= PND_MODEL_COUNT)
        PND_ERROR(PND_EINVAL, "invalid model %d", (int) spec->model);
    if (spec->d == 0 || spec->c == 0 || spec->n == 0)
        PND_ERROR(PND_EINVAL,
                  "invalid dimensions d=%zu, c=%zu, n=%zu: each must be at least 1",
                  spec->d, spec->c, spec->n);
    if (spec->n_layers == 0 || spec->n_layers > PND_NET_MAX_LAYERS)
        PND_ERROR(PND_EINVAL, "invalid number of layers %zu: use 1 to %d",
                  spec->n_layers, PND_NET_MAX_LAYERS);
    if (spec->model == PND_MODEL_READOUT || spec->model == PND_MODEL_MLP)
        for (size_t l = 0; l < spec->n_layers; l++)
            if (spec->h[l] == 0)
                PND_ERROR(PND_EINVAL, "invalid width 0 of layer %zu: use at least 1",
                          l + 1);
    if (!(spec->scale > 0.0) || !isfinite(spec->scale))
        PND_ERROR(PND_EINVAL, "invalid weight scale %g: use a finite number > 0",
                  spec->scale);
    if (!(spec->noise >= 0.0) || !isfinite(spec->noise))
        PND_ERROR(PND_EINVAL, "invalid noise %g: use a finite number >= 0",
                  spec->noise);
    if (spec->model == PND_MODEL_SOFTMAX && spec->c < 2)
        PND_ERROR(PND_EINVAL, "the softmax model needs c >= 2 classes, not %zu",
                  spec->c);
    return PND_OK;
}

/* Shape of the model: widths (n_layers + 1), readout rows, activation and
 * loss. */
static void
model_shape(const struct pnd_synth_spec *spec, size_t *n_layers,
            size_t *widths, size_t *n_out, enum pnd_activation *act,
            enum pnd_loss *loss)
{
    widths[0] = spec->d;
    *n_layers = 1;
    *act = PND_ACT_IDENTITY;
    *n_out = 0;
    switch (spec->model) {
    case PND_MODEL_LINEAR:
        widths[1] = spec->c;
        *loss = PND_LOSS_SQUARED;
        break;
    case PND_MODEL_READOUT:
        widths[1] = spec->h[0];
        *n_out = spec->c;
        *loss = PND_LOSS_SQUARED;
        break;
    case PND_MODEL_SOFTMAX:
        widths[1] = spec->c;
        *loss = PND_LOSS_SOFTMAX_XENT;
        break;
    case PND_MODEL_MLP:
    default:
        *n_layers = spec->n_layers;
        for (size_t l = 0; l < spec->n_layers; l++)
            widths[l + 1] = spec->h[l];
        *n_out = spec->c;
        *act = spec->act;
        *loss = spec->loss;
        break;
    }
}

/* Targets or labels from the teacher's clean outputs. */
static int
label_data(const struct pnd_synth_spec *spec, const struct pnd_net *teacher,
           struct pnd_data *data)
{
    struct pnd_net_workspace *w = pnd_net_workspace_alloc(teacher);
    size_t c = teacher->n_out;
    uint64_t coords[4] = {SYNTH_STREAM, ROLE_NOISE, NET_TEACHER, 0};
    pnd_pcg64 r;

    if (w == NULL)
        return pnd_error_status();

    pnd_rng_derive(&r, spec->seed, coords, 4);
    for (size_t k = 0; k < data->n; k++) {
        const double *y = pnd_net_output_clean(teacher, data->X + k * data->d, w);

        if (y == NULL) {
            pnd_net_workspace_free(w);
            return pnd_error_status();
        }
        if (data->T != NULL) {
            for (size_t j = 0; j < c; j++)
                data->T[k * c + j] = y[j] + spec->noise * pnd_rng_normal(&r);
        } else {
            size_t best = 0;
            double flip = pnd_pcg64dxsm_double(&r);
            uint64_t other = pnd_pcg64dxsm_bounded(&r, c);

            for (size_t j = 1; j < c; j++)
                if (y[j] > y[best])
                    best = j;
            data->labels[k] = (int) (flip < spec->noise ? other : best);
        }
    }

    pnd_net_workspace_free(w);
    return PND_OK;
}

int
pnd_net_synth(const struct pnd_synth_spec *spec, struct pnd_net **net_out,
              struct pnd_data **data_out)
{
    size_t widths[PND_NET_MAX_LAYERS + 1], n_layers, n_out;
    enum pnd_activation act;
    enum pnd_loss loss;
    struct pnd_net *net = NULL, *teacher = NULL;
    struct pnd_data *data = NULL;
    int status;

    *net_out = NULL;
    *data_out = NULL;
    PND_TRY(check_spec(spec));
    model_shape(spec, &n_layers, widths, &n_out, &act, &loss);

    net = pnd_net_alloc(n_layers, widths, n_out, loss);
    teacher = pnd_net_alloc(n_layers, widths, n_out, loss);
    data = pnd_data_alloc(spec->n, spec->d, spec->c,
                          loss == PND_LOSS_SOFTMAX_XENT);
    if (net == NULL || teacher == NULL || data == NULL) {
        status = pnd_error_status();
        goto fail;
    }
    for (size_t l = 0; l < n_layers; l++) {
        net->layers[l].act = act;
        teacher->layers[l].act = act;
    }
    fill_net(net, spec->seed, NET_STUDENT, spec->scale);
    fill_net(teacher, spec->seed, NET_TEACHER, spec->scale);
    fill_normal(spec->seed, ROLE_X, NET_STUDENT, 0, 1.0, spec->n * spec->d,
                data->X);
    status = label_data(spec, teacher, data);
    if (status != PND_OK)
        goto fail;

    pnd_net_free(teacher);
    *net_out = net;
    *data_out = data;
    return PND_OK;

fail:
    pnd_net_free(net);
    pnd_net_free(teacher);
    pnd_data_free(data);
    return status;
}
