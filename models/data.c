/* Image data sets: IDX and CSV readers (gzipped or not), the seeded
 * validation split and per-pixel standardisation.
 *
 * IDX is the format of the MNIST and Fashion-MNIST files (Y. LeCun et al.,
 * "The MNIST database of handwritten digits"): a big-endian 32-bit magic
 * number whose third byte is the element type (0x08, unsigned byte) and
 * fourth byte the number of dimensions, then one big-endian 32-bit size per
 * dimension, then the elements in row-major order. zlib's gzread reads
 * plain and gzipped files alike, so every byte offset in an error message
 * counts bytes of the decompressed data.
 */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/rng.h"
#include "pnd/train.h"

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_MAX_LABEL 255
/* Standard deviation below which a pixel counts as constant. */
#define STANDARDIZE_MIN_STD 1e-8
/* Coordinate that tags the validation-split stream of pnd_rng_derive. */
#define STREAM_SPLIT 0x53504c4954ULL

int
pnd_dataset_alloc(size_t n, size_t d, size_t c, struct pnd_dataset **result)
{
    struct pnd_dataset *ds;

    *result = NULL;
    if (d == 0 || c == 0)
        PND_ERROR(PND_EINVAL, "data set needs d > 0 and c > 0 (got d = %zu, c = %zu)", d, c);
    if (n > SIZE_MAX / d / sizeof(double))
        PND_ERROR(PND_ENOMEM, "data set of %zu images of %zu pixels is too large", n, d);
    ds = calloc(1, sizeof *ds);
    if (ds == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory for a data set");
    ds->n = n;
    ds->d = d;
    ds->c = c;
    ds->X = calloc(n * d + 1, sizeof *ds->X);
    ds->labels = calloc(n + 1, sizeof *ds->labels);
    if (ds->X == NULL || ds->labels == NULL) {
        pnd_dataset_free(ds);
        PND_ERROR(PND_ENOMEM, "out of memory for %zu images of %zu pixels", n, d);
    }
    *result = ds;
    return PND_OK;
}

void
pnd_dataset_free(struct pnd_dataset *ds)
{
    if (ds == NULL)
        return;
    free(ds->X);
    free(ds->labels);
    free(ds);
}

/* Read the whole of path, decompressing it when it is gzipped. */
static int
read_gz_file(const char *path, unsigned char **data, size_t *len)
{
    gzFile gz;
    unsigned char *buf = NULL;
    size_t cap = 1 << 20, used = 0;
    int errnum = Z_OK;
    const char *zmsg;

    *data = NULL;
    *len = 0;
    errno = 0;
    gz = gzopen(path, "rb");
    if (gz == NULL)
        PND_ERROR(errno ? pnd_input_open_status(errno) : PND_ENOMEM,
                  "cannot open '%s': %s", path,
                  errno ? strerror(errno) : "out of memory");
    buf = malloc(cap);
    if (buf == NULL)
        goto nomem;
    for (;;) {
        int got;

        if (cap - used < (1u << 16)) {
            unsigned char *bigger = realloc(buf, cap * 2);

            if (bigger == NULL)
                goto nomem;
            buf = bigger;
            cap *= 2;
        }
        got = gzread(gz, buf + used, (unsigned) (cap - used < (1u << 30) ? cap - used : (1u << 30)));
        if (got < 0)
            break;
        if (got == 0)
            break;
        used += (size_t) got;
    }
    zmsg = gzerror(gz, &errnum);
    if (errnum != Z_OK && errnum != Z_STREAM_END) {
        char message[256];

        snprintf(message, sizeof message, "%s", zmsg ? zmsg : "unknown zlib error");
        gzclose(gz);
        free(buf);
        PND_ERROR(PND_EFORMAT,
                  "corrupt gzip data in '%s' at byte %zu of the decompressed data: %s",
                  path, used, message);
    }
    gzclose(gz);
    *data = buf;
    *len = used;
    return PND_OK;

nomem:
    gzclose(gz);
    free(buf);
    PND_ERROR(PND_ENOMEM, "out of memory reading '%s'", path);
}

static uint32_t
read_be32(const unsigned char *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16)
           | ((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

/* Check the IDX header of data (len bytes) against the expected magic and
 * return the dimensions (n_dims of them) and the offset of the elements. */
static int
parse_idx_header(const char *path, const unsigned char *data, size_t len,
                 uint32_t magic, size_t n_dims, uint32_t *dims)
{
    size_t header = 4 + 4 * n_dims;
    uint64_t n_elements = 1;

    if (len < 4)
        PND_ERROR(PND_EFORMAT, "'%s' is truncated at byte %zu: an IDX file starts with a 4-byte magic number",
                  path, len);
    if (read_be32(data) != magic)
        PND_ERROR(PND_EFORMAT,
                  "'%s' has the wrong magic number 0x%08x at byte 0: expected 0x%08x (IDX %s)",
                  path, read_be32(data), magic,
                  magic == IDX_MAGIC_IMAGES ? "unsigned-byte images, 3 dimensions"
                                            : "unsigned-byte labels, 1 dimension");
    if (len < header)
        PND_ERROR(PND_EFORMAT, "'%s' is truncated at byte %zu: the IDX header needs %zu bytes",
                  path, len, header);
    for (size_t i = 0; i < n_dims; i++) {
        dims[i] = read_be32(data + 4 + 4 * i);
        n_elements *= dims[i];
    }
    if (n_elements > (uint64_t) len - header) {
        PND_ERROR(PND_EFORMAT,
                  "'%s' is truncated at byte %zu: the header (bytes 0-%zu) announces %llu elements, so the file needs %llu bytes",
                  path, len, header - 1, (unsigned long long) n_elements,
                  (unsigned long long) (n_elements + header));
    }
    if (n_elements < (uint64_t) len - header)
        PND_ERROR(PND_EFORMAT,
                  "'%s' has %llu unexpected bytes after the data, from byte %llu",
                  path, (unsigned long long) (len - header - n_elements),
                  (unsigned long long) (header + n_elements));
    return PND_OK;
}

int
pnd_dataset_read_idx(const char *images_path, const char *labels_path,
                     double pixel_max, struct pnd_dataset **result)
{
    unsigned char *images = NULL, *labels = NULL;
    size_t images_len, labels_len;
    uint32_t image_dims[3], label_dims[1];
    struct pnd_dataset *ds = NULL;
    int max_label = 0;
    int status;

    *result = NULL;
    if (!(pixel_max > 0) || !isfinite(pixel_max))
        PND_ERROR(PND_EINVAL, "pixel_max must be a positive number (got %g)", pixel_max);

    status = read_gz_file(images_path, &images, &images_len);
    if (status != PND_OK)
        goto fail;
    status = parse_idx_header(images_path, images, images_len,
                              IDX_MAGIC_IMAGES, 3, image_dims);
    if (status != PND_OK)
        goto fail;
    status = read_gz_file(labels_path, &labels, &labels_len);
    if (status != PND_OK)
        goto fail;
    status = parse_idx_header(labels_path, labels, labels_len,
                              IDX_MAGIC_LABELS, 1, label_dims);
    if (status != PND_OK)
        goto fail;
    if (image_dims[0] != label_dims[0]) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "'%s' announces %u images at byte 4 but '%s' announces %u labels at byte 4: the counts must match",
                               images_path, image_dims[0], labels_path, label_dims[0]);
        goto fail;
    }
    if (image_dims[1] == 0 || image_dims[2] == 0) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "'%s' announces images of %u x %u pixels at byte 8: both must be positive",
                               images_path, image_dims[1], image_dims[2]);
        goto fail;
    }
    for (size_t k = 0; k < label_dims[0]; k++)
        if (labels[8 + k] > max_label)
            max_label = labels[8 + k];

    status = pnd_dataset_alloc(image_dims[0], (size_t) image_dims[1] * image_dims[2],
                               (size_t) max_label + 1, &ds);
    if (status != PND_OK)
        goto fail;
    for (size_t k = 0; k < ds->n; k++) {
        const unsigned char *pixels = images + 16 + k * ds->d;   /* (d) */

        for (size_t i = 0; i < ds->d; i++)
            ds->X[k * ds->d + i] = pixels[i] / pixel_max;
        ds->labels[k] = labels[8 + k];
    }
    free(images);
    free(labels);
    *result = ds;
    return PND_OK;

fail:
    free(images);
    free(labels);
    pnd_dataset_free(ds);
    return status;
}

/* Parse one CSV field that ends at ',' or the end of the line. */
static int
parse_csv_field(const char *path, size_t line, size_t column,
                const char **cursor, double *value)
{
    const char *start = *cursor;
    char *end;

    errno = 0;
    *value = strtod(start, &end);
    if (end == start || errno != 0 || !isfinite(*value)
        || (*end != ',' && *end != '\0' && *end != '\r'))
        PND_ERROR(PND_EFORMAT, "'%s' line %zu column %zu: invalid number '%.20s'",
                  path, line, column, start);
    *cursor = end;
    return PND_OK;
}

/* Count the comma-separated fields of a line. */
static size_t
csv_field_count(const char *line)
{
    size_t n = 1;

    for (; *line; line++)
        n += *line == ',';
    return n;
}

int
pnd_dataset_read_csv(const char *path, double pixel_max,
                     struct pnd_dataset **result)
{
    unsigned char *data = NULL;
    size_t len, n_lines = 0, n_fields = 0, first = 0, k = 0, line_no = 0;
    struct pnd_dataset *ds = NULL;
    char *text, *line, *next;
    int max_label = 0;
    int status;

    *result = NULL;
    if (!(pixel_max > 0) || !isfinite(pixel_max))
        PND_ERROR(PND_EINVAL, "pixel_max must be a positive number (got %g)", pixel_max);
    PND_TRY(read_gz_file(path, &data, &len));
    text = (char *) data;
    if (memchr(text, '\0', len) != NULL) {
        size_t at = (size_t) ((char *) memchr(text, '\0', len) - text);

        free(data);
        PND_ERROR(PND_EFORMAT, "'%s' contains a NUL byte at byte %zu: not a CSV text file",
                  path, at);
    }
    {
        unsigned char *terminated = realloc(data, len + 1);

        if (terminated == NULL) {
            free(data);
            PND_ERROR(PND_ENOMEM, "out of memory reading '%s'", path);
        }
        data = terminated;
        data[len] = '\0';
        text = (char *) data;
    }

    /* Pass 1: count the data lines and check the header. */
    for (line = text; *line; line = next) {
        next = strchr(line, '\n');
        next = next ? next + 1 : line + strlen(line);
        if (line[0] == '\n' || line[0] == '\r')
            continue;
        n_lines++;
    }
    if (n_lines > 0) {
        char *end;

        errno = 0;
        strtod(text, &end);
        if (end == text)
            first = 1;      /* header line */
    }
    if (n_lines <= first) {
        free(data);
        PND_ERROR(PND_EFORMAT, "'%s' has no data lines", path);
    }
    {
        char *data_line = text;

        if (first) {
            data_line = strchr(text, '\n');
            data_line = data_line ? data_line + 1 : text + strlen(text);
        }
        {
            char *eol = strchrnul(data_line, '\n');
            char saved = *eol;

            *eol = '\0';
            n_fields = csv_field_count(data_line);
            *eol = saved;
        }
    }
    if (n_fields < 2) {
        free(data);
        PND_ERROR(PND_EFORMAT, "'%s': a line needs a label and at least one pixel", path);
    }
    status = pnd_dataset_alloc(n_lines - first, n_fields - 1, 1, &ds);
    if (status != PND_OK)
        goto fail;

    /* Pass 2: parse. */
    for (line = text; *line; line = next) {
        char *eol = strchrnul(line, '\n');
        const char *cursor = line;
        double label;

        next = *eol ? eol + 1 : eol;
        line_no++;
        *eol = '\0';
        if (line[0] == '\0' || line[0] == '\r')
            continue;
        if (first && line_no == 1)
            continue;
        if (csv_field_count(line) != n_fields) {
            status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                                   "'%s' line %zu has %zu fields: expected %zu (a label and %zu pixels)",
                                   path, line_no, csv_field_count(line), n_fields, n_fields - 1);
            goto fail;
        }
        status = parse_csv_field(path, line_no, 1, &cursor, &label);
        if (status != PND_OK)
            goto fail;
        if (label < 0 || label > IDX_MAX_LABEL || label != floor(label)) {
            status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                                   "'%s' line %zu column 1: label %g is not an integer in [0, %d]",
                                   path, line_no, label, IDX_MAX_LABEL);
            goto fail;
        }
        ds->labels[k] = (int) label;
        if (ds->labels[k] > max_label)
            max_label = ds->labels[k];
        for (size_t i = 0; i < ds->d; i++) {
            double pixel;

            cursor++;   /* the comma */
            status = parse_csv_field(path, line_no, i + 2, &cursor, &pixel);
            if (status != PND_OK)
                goto fail;
            ds->X[k * ds->d + i] = pixel / pixel_max;
        }
        k++;
    }
    ds->c = (size_t) max_label + 1;
    free(data);
    *result = ds;
    return PND_OK;

fail:
    free(data);
    pnd_dataset_free(ds);
    return status;
}

int
pnd_dataset_truncate(struct pnd_dataset *ds, size_t n)
{
    if (n > ds->n)
        PND_ERROR(PND_EINVAL, "cannot keep %zu images of a data set of %zu", n, ds->n);
    ds->n = n;
    return PND_OK;
}

int
pnd_dataset_split(struct pnd_dataset **train, size_t n_valid,
                  uint64_t split_seed, struct pnd_dataset **valid)
{
    struct pnd_dataset *all = *train, *rest = NULL, *held = NULL;
    size_t *order = NULL;   /* (n): a random permutation */
    unsigned char *is_valid = NULL;   /* (n) */
    pnd_pcg64 r;
    uint64_t coords[1] = {STREAM_SPLIT};
    size_t i_rest = 0, i_valid = 0;
    int status;

    *valid = NULL;
    if (n_valid >= all->n)
        PND_ERROR(PND_EINVAL, "validation split of %zu images leaves no training images out of %zu",
                  n_valid, all->n);
    order = malloc(all->n * sizeof *order);
    is_valid = calloc(all->n, 1);
    if (order == NULL || is_valid == NULL) {
        status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__, "out of memory for the split");
        goto fail;
    }

    /* Fisher-Yates shuffle. The first n_valid indices are held out. */
    pnd_rng_derive(&r, split_seed, coords, 1);
    for (size_t i = 0; i < all->n; i++)
        order[i] = i;
    for (size_t i = all->n - 1; i > 0; i--) {
        size_t j = (size_t) pnd_pcg64dxsm_bounded(&r, (uint64_t) i + 1);
        size_t t = order[i];

        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n_valid; i++)
        is_valid[order[i]] = 1;

    status = pnd_dataset_alloc(all->n - n_valid, all->d, all->c, &rest);
    if (status != PND_OK)
        goto fail;
    status = pnd_dataset_alloc(n_valid, all->d, all->c, &held);
    if (status != PND_OK)
        goto fail;
    for (size_t k = 0; k < all->n; k++) {
        struct pnd_dataset *to = is_valid[k] ? held : rest;
        size_t *at = is_valid[k] ? &i_valid : &i_rest;

        memcpy(to->X + *at * all->d, all->X + k * all->d, all->d * sizeof(double));
        to->labels[*at] = all->labels[k];
        (*at)++;
    }
    free(order);
    free(is_valid);
    pnd_dataset_free(all);
    *train = rest;
    *valid = held;
    return PND_OK;

fail:
    free(order);
    free(is_valid);
    pnd_dataset_free(rest);
    pnd_dataset_free(held);
    return status;
}

int
pnd_dataset_standardize(const struct pnd_dataset *ref,
                        struct pnd_dataset *const *sets, size_t n_sets)
{
    double *mean = NULL, *scale = NULL;   /* (d) each */
    size_t d = ref->d;

    if (ref->n == 0)
        PND_ERROR(PND_EINVAL, "cannot standardise with an empty reference set");
    mean = calloc(d, sizeof *mean);
    scale = calloc(d, sizeof *scale);
    if (mean == NULL || scale == NULL) {
        free(mean);
        free(scale);
        PND_ERROR(PND_ENOMEM, "out of memory for standardisation");
    }

    /* Two passes: mean, then variance about it (divisor n). */
    for (size_t k = 0; k < ref->n; k++)
        for (size_t i = 0; i < d; i++)
            mean[i] += ref->X[k * d + i];
    for (size_t i = 0; i < d; i++)
        mean[i] /= (double) ref->n;
    for (size_t k = 0; k < ref->n; k++)
        for (size_t i = 0; i < d; i++) {
            double dev = ref->X[k * d + i] - mean[i];

            scale[i] += dev * dev;
        }
    for (size_t i = 0; i < d; i++) {
        double sd = sqrt(scale[i] / (double) ref->n);

        scale[i] = sd < STANDARDIZE_MIN_STD ? 1.0 : 1.0 / sd;
    }

    for (size_t s = 0; s < n_sets; s++) {
        struct pnd_dataset *ds = sets[s];

        if (ds == NULL)
            continue;
        for (size_t k = 0; k < ds->n; k++)
            for (size_t i = 0; i < d; i++)
                ds->X[k * d + i] = (ds->X[k * d + i] - mean[i]) * scale[i];
    }
    free(mean);
    free(scale);
    return PND_OK;
}
