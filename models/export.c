/* Export of a trained MLP as the INI network description that pnd sim
 * reads (docs/sim.md): [network] with the loss, inputs, labels and the
 * fixed-mask seed, then [layer1] .. [layerL] with weights, bias,
 * activation, scheme and p. Every matrix is a whitespace-separated text
 * file, one row per line, each value printed with %.17g so that it reads
 * back bit for bit.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/train.h"

static int
write_text_matrix(const char *dir, const char *name, size_t rows, size_t cols,
                  const double *M)
{
    char path[4096];
    struct pnd_atomic_file f;

    if ((size_t) snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        PND_ERROR(PND_EINVAL, "export directory name '%s' is too long", dir);
    PND_TRY(pnd_atomic_open(&f, path));
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            fprintf(f.fp, j + 1 < cols ? "%.17g " : "%.17g\n", M[i * cols + j]);
    return pnd_atomic_commit(&f);
}

int
pnd_mlp_export(const struct pnd_mlp *mlp, const struct pnd_dataset *ds,
               size_t n_inputs, const char *dir)
{
    size_t L = mlp->spec.n_layers;
    double *labels = NULL;   /* (n_inputs) */
    char name[64], path[4096];
    struct pnd_atomic_file f;

    if (L > PND_NET_MAX_LAYERS)
        PND_ERROR(PND_EINVAL, "cannot export %zu layers: pnd sim reads at most %d",
                  L, PND_NET_MAX_LAYERS);
    if (ds == NULL || n_inputs == 0)
        PND_ERROR(PND_EINVAL, "an export needs at least one input image: pnd sim requires [network] inputs");
    if (n_inputs > ds->n)
        n_inputs = ds->n;
    if (ds->d != mlp->spec.widths[0])
        PND_ERROR(PND_EINVAL, "images have %zu pixels but the network takes %zu",
                  ds->d, mlp->spec.widths[0]);
    PND_TRY(pnd_mkdir_p(dir));

    /* Matrices: weights and biases of each layer, inputs and labels. */
    for (size_t l = 0; l < L; l++) {
        snprintf(name, sizeof name, "W%zu.txt", l + 1);
        PND_TRY(write_text_matrix(dir, name, mlp->spec.widths[l + 1], mlp->spec.widths[l],
                                  mlp->W[l]));
        snprintf(name, sizeof name, "b%zu.txt", l + 1);
        PND_TRY(write_text_matrix(dir, name, 1, mlp->spec.widths[l + 1], mlp->b[l]));
    }
    PND_TRY(write_text_matrix(dir, "inputs.txt", n_inputs, ds->d, ds->X));
    labels = malloc(n_inputs * sizeof *labels);
    if (labels == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for %zu labels", n_inputs);
    for (size_t k = 0; k < n_inputs; k++)
        labels[k] = ds->labels[k];
    {
        int status = write_text_matrix(dir, "labels.txt", n_inputs, 1, labels);

        free(labels);
        PND_TRY(status);
    }

    /* The INI description that ties them together. */
    if ((size_t) snprintf(path, sizeof path, "%s/net.ini", dir) >= sizeof path)
        PND_ERROR(PND_EINVAL, "export directory name '%s' is too long", dir);
    PND_TRY(pnd_atomic_open(&f, path));
    fprintf(f.fp, "# Network exported by pnd train: %zu dense layers, softmax output.\n", L);
    fprintf(f.fp, "[network]\nloss = %s\ninputs = inputs.txt\nlabels = labels.txt\n"
                  "fixed_seed = %llu\n",
            pnd_loss_name(PND_LOSS_SOFTMAX_XENT), (unsigned long long) mlp->seed);
    for (size_t l = 0; l < L; l++)
        fprintf(f.fp, "\n[layer%zu]\nweights = W%zu.txt\nbias = b%zu.txt\n"
                      "activation = %s\nscheme = %s\np = %.17g\n",
                l + 1, l + 1, l + 1, pnd_activation_name(mlp->spec.act[l]),
                pnd_scheme_name(mlp->spec.scheme[l]), mlp->spec.p[l]);
    return pnd_atomic_commit(&f);
}
