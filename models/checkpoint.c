/* Binary checkpoints of an MLP (format in docs/train.md).
 *
 * Every integer and double is little-endian whatever the host; doubles are
 * their IEEE 754 bit patterns. The last four bytes are the CRC32 (zlib's
 * crc32, the ISO 3309 polynomial) of every byte before them.
 */
#include <config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/train.h"

static const unsigned char CHECKPOINT_MAGIC[8] = {'P', 'N', 'D', 'C', 'K', 'P', 'T', 0};
#define CHECKPOINT_VERSION 1u
/* Largest layer width a checkpoint may declare. */
#define CHECKPOINT_MAX_WIDTH (1u << 24)

/* Header bytes before the widths: magic, version, n_layers, seed, epoch, step. */
#define HEADER_FIXED 40

static size_t
checkpoint_size(size_t n_layers, size_t n_params)
{
    return HEADER_FIXED + 8 * (n_layers + 1) + 4 * n_layers + 4 * n_layers
           + 8 * n_layers + 8 + 8 * n_params + 4;
}

static void
put_u32(unsigned char **at, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        (*at)[i] = (unsigned char) (v >> (8 * i));
    *at += 4;
}

static void
put_u64(unsigned char **at, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        (*at)[i] = (unsigned char) (v >> (8 * i));
    *at += 8;
}

static void
put_f64(unsigned char **at, double x)
{
    uint64_t v;

    memcpy(&v, &x, sizeof v);
    put_u64(at, v);
}

static uint32_t
get_u32(const unsigned char **at)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++)
        v |= (uint32_t) (*at)[i] << (8 * i);
    *at += 4;
    return v;
}

static uint64_t
get_u64(const unsigned char **at)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v |= (uint64_t) (*at)[i] << (8 * i);
    *at += 8;
    return v;
}

static double
get_f64(const unsigned char **at)
{
    uint64_t v = get_u64(at);
    double x;

    memcpy(&x, &v, sizeof x);
    return x;
}

int
pnd_mlp_checkpoint_write(const char *path, const struct pnd_mlp *mlp,
                         uint64_t epoch, uint64_t step)
{
    size_t L = mlp->spec.n_layers;
    size_t size = checkpoint_size(L, mlp->n_params);
    unsigned char *buf = malloc(size), *at = buf;
    int status;

    if (buf == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for a checkpoint of %zu bytes", size);
    memcpy(at, CHECKPOINT_MAGIC, sizeof CHECKPOINT_MAGIC);
    at += sizeof CHECKPOINT_MAGIC;
    put_u32(&at, CHECKPOINT_VERSION);
    put_u32(&at, (uint32_t) L);
    put_u64(&at, mlp->seed);
    put_u64(&at, epoch);
    put_u64(&at, step);
    for (size_t l = 0; l <= L; l++)
        put_u64(&at, mlp->spec.widths[l]);
    for (size_t l = 0; l < L; l++)
        put_u32(&at, (uint32_t) mlp->spec.act[l]);
    for (size_t l = 0; l < L; l++)
        put_u32(&at, (uint32_t) mlp->spec.scheme[l]);
    for (size_t l = 0; l < L; l++)
        put_f64(&at, mlp->spec.p[l]);
    put_u64(&at, mlp->n_params);
    for (size_t j = 0; j < mlp->n_params; j++)
        put_f64(&at, mlp->params[j]);
    put_u32(&at, (uint32_t) crc32(0L, buf, (uInt) (size - 4)));

    status = pnd_atomic_write(path, buf, size);
    free(buf);
    return status;
}

/* Check the architecture fields of a checkpoint. */
static int
check_spec(const char *path, const struct pnd_mlp_spec *spec)
{
    for (size_t l = 0; l <= spec->n_layers; l++)
        if (spec->widths[l] == 0 || spec->widths[l] > CHECKPOINT_MAX_WIDTH)
            PND_ERROR(PND_EFORMAT, "checkpoint '%s': width %zu of layer %zu is outside [1, %u]",
                      path, spec->widths[l], l, CHECKPOINT_MAX_WIDTH);
    for (size_t l = 0; l < spec->n_layers; l++) {
        if ((unsigned) spec->act[l] > PND_ACT_RELU)
            PND_ERROR(PND_EFORMAT, "checkpoint '%s': layer %zu has an unknown activation code %u",
                      path, l + 1, (unsigned) spec->act[l]);
        if ((unsigned) spec->scheme[l] >= PND_SCHEME_COUNT)
            PND_ERROR(PND_EFORMAT, "checkpoint '%s': layer %zu has an unknown scheme code %u",
                      path, l + 1, (unsigned) spec->scheme[l]);
        if (!(spec->p[l] >= 0 && spec->p[l] < 1))
            PND_ERROR(PND_EFORMAT, "checkpoint '%s': layer %zu has drop probability %g outside [0, 1)",
                      path, l + 1, spec->p[l]);
    }
    return PND_OK;
}

int
pnd_mlp_checkpoint_read(const char *path, struct pnd_mlp **result,
                        uint64_t *epoch, uint64_t *step)
{
    char *data = NULL;
    size_t len, L, n_params, expected = 0;
    const unsigned char *at;
    struct pnd_mlp_spec spec;
    struct pnd_mlp *mlp = NULL;
    uint64_t seed, n_params_file;
    uint32_t version, crc_file, crc;
    int status;

    *result = NULL;
    PND_TRY(pnd_read_file(path, &data, &len));
    at = (const unsigned char *) data;

    /* Header: magic, version, layer count; then the length they imply. */
    if (len < HEADER_FIXED) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "checkpoint '%s' is truncated: %zu bytes, the header alone needs %d",
                               path, len, HEADER_FIXED);
        goto fail;
    }
    if (memcmp(at, CHECKPOINT_MAGIC, sizeof CHECKPOINT_MAGIC) != 0) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "'%s' is not a pnd checkpoint: wrong magic bytes at offset 0", path);
        goto fail;
    }
    at += sizeof CHECKPOINT_MAGIC;
    version = get_u32(&at);
    if (version != CHECKPOINT_VERSION) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "checkpoint '%s' has version %u at offset 8: this program reads version %u",
                               path, version, CHECKPOINT_VERSION);
        goto fail;
    }
    L = get_u32(&at);
    if (L < 1 || L > PND_TRAIN_MAX_LAYERS) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "checkpoint '%s' declares %zu layers at offset 12: expected 1 to %d",
                               path, L, PND_TRAIN_MAX_LAYERS);
        goto fail;
    }
    if (len < checkpoint_size(L, 0)) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "checkpoint '%s' is truncated: %zu bytes, its header needs %zu",
                               path, len, checkpoint_size(L, 0));
        goto fail;
    }
    crc_file = (uint32_t) ((const unsigned char *) data)[len - 4]
               | (uint32_t) ((const unsigned char *) data)[len - 3] << 8
               | (uint32_t) ((const unsigned char *) data)[len - 2] << 16
               | (uint32_t) ((const unsigned char *) data)[len - 1] << 24;
    crc = (uint32_t) crc32(0L, (const unsigned char *) data, (uInt) (len - 4));

    memset(&spec, 0, sizeof spec);
    spec.n_layers = L;
    seed = get_u64(&at);
    *epoch = get_u64(&at);
    *step = get_u64(&at);
    n_params = 0;
    for (size_t l = 0; l <= L; l++)
        spec.widths[l] = (size_t) get_u64(&at);
    for (size_t l = 0; l < L; l++)
        spec.act[l] = (enum pnd_activation) get_u32(&at);
    for (size_t l = 0; l < L; l++)
        spec.scheme[l] = (enum pnd_scheme) get_u32(&at);
    for (size_t l = 0; l < L; l++)
        spec.p[l] = get_f64(&at);
    n_params_file = get_u64(&at);
    status = check_spec(path, &spec);
    if (status != PND_OK)
        goto fail;
    for (size_t l = 0; l < L; l++)
        n_params += spec.widths[l + 1] * spec.widths[l] + spec.widths[l + 1];
    if (n_params_file != n_params) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "checkpoint '%s' declares %llu parameters, but its widths need %zu",
                               path, (unsigned long long) n_params_file, n_params);
        goto fail;
    }
    expected = checkpoint_size(L, n_params);
    if (len != expected) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "checkpoint '%s' has %zu bytes: its header declares %zu (%s)",
                               path, len, expected, len < expected ? "truncated" : "trailing bytes");
        goto fail;
    }
    if (crc != crc_file) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "checkpoint '%s' is corrupt: CRC32 0x%08x stored at offset %zu, 0x%08x computed",
                               path, crc_file, len - 4, crc);
        goto fail;
    }

    /* Parameters. */
    status = pnd_mlp_alloc(&spec, seed, &mlp);
    if (status != PND_OK)
        goto fail;
    for (size_t j = 0; j < n_params; j++) {
        mlp->params[j] = get_f64(&at);
        if (!isfinite(mlp->params[j])) {
            status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                                   "checkpoint '%s': parameter %zu is not finite", path, j);
            goto fail;
        }
    }
    free(data);
    *result = mlp;
    return PND_OK;

fail:
    free(data);
    pnd_mlp_free(mlp);
    return status;
}
