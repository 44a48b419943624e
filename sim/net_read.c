/* Reading networks and data from files: whitespace-separated text
 * matrices, NumPy .npy arrays (format versions 1.0 to 3.0: magic string,
 * version, header length, a Python dict literal header, then the raw data),
 * and the INI network description of docs/sim.md that ties them together.
 */
#include <config.h>

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnd/error.h"
#include "pnd/fileio.h"
#include "pnd/mask.h"
#include "pnd/net.h"

/* --- text matrices ------------------------------------------------------ */

/* Append value to the growing array *values of *count entries. */
static int
push_value(double **values, size_t *count, size_t *capacity, double value)
{
    if (*count == *capacity) {
        size_t grown = *capacity ? 2 * *capacity : 256;
        double *bigger = realloc(*values, grown * sizeof *bigger);

        if (bigger == NULL)
            PND_ERROR(PND_ENOMEM, "out of memory reading a matrix of %zu values",
                      *count);
        *values = bigger;
        *capacity = grown;
    }
    (*values)[(*count)++] = value;
    return PND_OK;
}

static int
read_text_matrix(const char *path, const char *text, size_t *rows_out,
                 size_t *cols_out, double **values_out)
{
    double *values = NULL;
    size_t count = 0, capacity = 0, rows = 0, cols = 0, line_no = 0;
    const char *line = text;
    int status = PND_OK;

    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t) (end - line) : strlen(line);
        char *copy = strndup(line, len);
        char *cursor, *hash;
        size_t in_row = 0;

        line_no++;
        if (copy == NULL) {
            status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                                   "out of memory reading %s", path);
            goto fail;
        }
        hash = strchr(copy, '#');
        if (hash != NULL)
            *hash = '\0';
        cursor = copy;
        for (;;) {
            char *next;
            double value;

            while (*cursor == ' ' || *cursor == '\t' || *cursor == '\r'
                   || *cursor == ',')
                cursor++;
            if (*cursor == '\0')
                break;
            errno = 0;
            value = strtod(cursor, &next);
            if (next == cursor || (*next != '\0' && *next != ' '
                                   && *next != '\t' && *next != '\r'
                                   && *next != ',')) {
                int width = 0;

                while (cursor[width] != '\0' && cursor[width] != ' '
                       && cursor[width] != '\t' && width < 32)
                    width++;
                status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                                       "%s:%zu: invalid number '%.*s': a matrix file holds whitespace-separated numbers, one row per line",
                                       path, line_no, width, cursor);
                free(copy);
                goto fail;
            }
            if (!isfinite(value) || errno == ERANGE) {
                status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                                       "%s:%zu: value %.*s is not a finite double",
                                       path, line_no, (int) (next - cursor), cursor);
                free(copy);
                goto fail;
            }
            status = push_value(&values, &count, &capacity, value);
            if (status != PND_OK) {
                free(copy);
                goto fail;
            }
            in_row++;
            cursor = next;
        }
        free(copy);

        if (in_row > 0) {
            if (rows > 0 && in_row != cols) {
                status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                                       "%s:%zu: row has %zu values but the rows above have %zu",
                                       path, line_no, in_row, cols);
                goto fail;
            }
            cols = in_row;
            rows++;
        }
        line = end ? end + 1 : line + len;
    }
    if (rows == 0) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "%s: no numbers found: a matrix file needs at least one row",
                               path);
        goto fail;
    }
    *rows_out = rows;
    *cols_out = cols;
    *values_out = values;
    return PND_OK;

fail:
    free(values);
    return status;
}

/* --- .npy arrays -------------------------------------------------------- */

/* Find the value text after 'key': in a .npy header dictionary. */
static const char *
npy_field(const char *header, const char *key)
{
    char quoted[32];
    const char *at;

    snprintf(quoted, sizeof quoted, "'%s'", key);
    at = strstr(header, quoted);
    if (at == NULL)
        return NULL;
    at = strchr(at + strlen(quoted), ':');
    if (at == NULL)
        return NULL;
    at++;
    while (*at == ' ')
        at++;
    return at;
}

static int
npy_parse_header(const char *path, const char *header, size_t *elem_size,
                 size_t *rows, size_t *cols)
{
    const char *descr = npy_field(header, "descr");
    const char *order = npy_field(header, "fortran_order");
    const char *shape = npy_field(header, "shape");
    size_t dims[2] = {1, 1}, n_dims = 0;
    const char *cursor;

    if (descr == NULL || order == NULL || shape == NULL)
        PND_ERROR(PND_EFORMAT,
                  "%s: invalid .npy header (needs 'descr', 'fortran_order' and 'shape'): %.80s",
                  path, header);
    if (strncmp(descr, "'<f8'", 5) == 0)
        *elem_size = 8;
    else if (strncmp(descr, "'<f4'", 5) == 0)
        *elem_size = 4;
    else
        PND_ERROR(PND_EFORMAT,
                  "%s: unsupported .npy dtype %.*s: save the array as little-endian float64 ('<f8') or float32 ('<f4')",
                  path, (int) strcspn(descr, ","), descr);
    if (strncmp(order, "True", 4) == 0)
        PND_ERROR(PND_EFORMAT,
                  "%s: the array is in Fortran order: save it in C order (numpy.ascontiguousarray)",
                  path);
    if (strncmp(order, "False", 5) != 0)
        PND_ERROR(PND_EFORMAT, "%s: invalid fortran_order value in the .npy header",
                  path);

    if (*shape != '(')
        PND_ERROR(PND_EFORMAT, "%s: invalid shape in the .npy header", path);
    cursor = shape + 1;
    for (;;) {
        char *end;
        unsigned long long dim;

        while (*cursor == ' ' || *cursor == ',')
            cursor++;
        if (*cursor == ')')
            break;
        errno = 0;
        dim = strtoull(cursor, &end, 10);
        if (end == cursor || errno != 0)
            PND_ERROR(PND_EFORMAT, "%s: invalid shape in the .npy header", path);
        if (n_dims == 2)
            PND_ERROR(PND_EFORMAT,
                      "%s: the array has more than 2 dimensions: save a matrix or a vector",
                      path);
        dims[n_dims++] = (size_t) dim;
        cursor = end;
    }
    if (n_dims == 0)
        PND_ERROR(PND_EFORMAT, "%s: the array is a scalar: save a matrix or a vector",
                  path);
    if (dims[0] == 0 || dims[1] == 0)
        PND_ERROR(PND_EFORMAT, "%s: the array is empty", path);
    *rows = dims[0];
    *cols = n_dims == 2 ? dims[1] : 1;
    return PND_OK;
}

static int
read_npy_matrix(const char *path, const unsigned char *bytes, size_t len,
                size_t *rows_out, size_t *cols_out, double **values_out)
{
    size_t header_len, header_start, elem_size = 0, rows = 0, cols = 0, count;
    char *header;
    double *values;
    int status;

    if (len < 10 || memcmp(bytes, "\x93NUMPY", 6) != 0)
        PND_ERROR(PND_EFORMAT, "%s: not a .npy file (the magic string is missing)",
                  path);
    if (bytes[6] == 1) {
        header_len = (size_t) bytes[8] | (size_t) bytes[9] << 8;
        header_start = 10;
    } else if (bytes[6] == 2 || bytes[6] == 3) {
        if (len < 12)
            PND_ERROR(PND_EFORMAT, "%s: truncated .npy header", path);
        header_len = (size_t) bytes[8] | (size_t) bytes[9] << 8
                     | (size_t) bytes[10] << 16 | (size_t) bytes[11] << 24;
        header_start = 12;
    } else {
        PND_ERROR(PND_EFORMAT, "%s: unsupported .npy format version %d.%d",
                  path, bytes[6], bytes[7]);
    }
    if (header_start + header_len > len)
        PND_ERROR(PND_EFORMAT,
                  "%s: the .npy header claims %zu bytes but the file has %zu",
                  path, header_len, len - header_start);

    header = strndup((const char *) bytes + header_start, header_len);
    if (header == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory reading %s", path);
    status = npy_parse_header(path, header, &elem_size, &rows, &cols);
    free(header);
    PND_TRY(status);

    count = rows * cols;
    if (count / rows != cols || len - header_start - header_len != count * elem_size)
        PND_ERROR(PND_EFORMAT,
                  "%s: data size at byte offset %zu is %zu bytes, but shape (%zu, %zu) needs %zu",
                  path, header_start + header_len, len - header_start - header_len,
                  rows, cols, count * elem_size);
    values = malloc(count * sizeof *values);
    if (values == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory reading %s", path);

    for (size_t e = 0; e < count; e++) {
        const unsigned char *at = bytes + header_start + header_len + e * elem_size;

        if (elem_size == 8) {
            uint64_t word = 0;
            double value;

            for (int b = 7; b >= 0; b--)
                word = word << 8 | at[b];
            memcpy(&value, &word, sizeof value);
            values[e] = value;
        } else {
            uint32_t word = 0;
            float value;

            for (int b = 3; b >= 0; b--)
                word = word << 8 | at[b];
            memcpy(&value, &word, sizeof value);
            values[e] = (double) value;
        }
        if (!isfinite(values[e])) {
            free(values);
            PND_ERROR(PND_EFORMAT, "%s: element %zu (byte offset %zu) is not finite",
                      path, e, (size_t) (at - bytes));
        }
    }
    *rows_out = rows;
    *cols_out = cols;
    *values_out = values;
    return PND_OK;
}

int
pnd_matrix_read(const char *path, size_t *rows, size_t *cols, double **values)
{
    char *data;
    size_t len;
    int status;

    *values = NULL;
    PND_TRY(pnd_read_file(path, &data, &len));
    if (len >= 6 && memcmp(data, "\x93NUMPY", 6) == 0)
        status = read_npy_matrix(path, (const unsigned char *) data, len, rows,
                                 cols, values);
    else if (strlen(data) != len)
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "%s: binary data in a text matrix file (byte %zu is NUL); .npy files must start with the NumPy magic string",
                               path, strlen(data));
    else
        status = read_text_matrix(path, data, rows, cols, values);
    free(data);
    return status;
}

/* --- INI network description -------------------------------------------- */

#define INI_ENTRIES_MAX 128

/* Length of a nested error message kept while adding its context. */
#define PND_READ_REASON_MAX 1024

struct ini_entry {
    char section[32];
    char name[32];
    char *value;
    int line;
};

struct ini_state {
    const char *path;
    FILE *fp;
    int line;                  /* lines read so far by ini_line_reader */
    size_t n_entries;
    struct ini_entry entries[INI_ENTRIES_MAX];
    int status;                /* first error met by the handler */
};

/* fgets that counts lines, so that the handler gets the line of each entry. */
static char *
ini_line_reader(char *str, int num, void *stream)
{
    struct ini_state *state = stream;
    char *got = fgets(str, num, state->fp);

    if (got != NULL)
        state->line++;
    return got;
}

static const char *const layer_keys[] = {
    "weights", "bias", "activation", "scheme", "p", NULL
};
static const char *const network_keys[] = {
    "loss", "inputs", "targets", "labels", "fixed_seed", NULL
};
static const char *const readout_keys[] = {"weights", "bias", NULL};

static bool
in_list(const char *name, const char *const *list)
{
    for (int i = 0; list[i] != NULL; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

/* Layer number N of a section named "layerN", or 0. */
static int
layer_section(const char *section)
{
    char *end;
    long index;

    if (strncmp(section, "layer", 5) != 0)
        return 0;
    index = strtol(section + 5, &end, 10);
    if (*end != '\0' || end == section + 5 || index < 1
        || index > PND_NET_MAX_LAYERS)
        return 0;
    return (int) index;
}

static int
entry_handler(void *user, const char *section, const char *name,
            const char *value)
{
    struct ini_state *state = user;
    const char *const *keys = NULL;
    struct ini_entry *entry;

    if (state->status != PND_OK)
        return 0;
    if (strcmp(section, "network") == 0)
        keys = network_keys;
    else if (strcmp(section, "readout") == 0)
        keys = readout_keys;
    else if (layer_section(section) > 0)
        keys = layer_keys;
    if (keys == NULL && section[0] == '\0') {
        state->status = pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                                      "%s:%d: key '%s' is outside any section: put it under [network], [layerN] or [readout]",
                                      state->path, state->line, name);
        return 0;
    }
    if (keys == NULL) {
        state->status = pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                                      "%s:%d: unknown section [%s]: use [network], [layer1] to [layer%d] or [readout]",
                                      state->path, state->line, section,
                                      PND_NET_MAX_LAYERS);
        return 0;
    }
    if (!in_list(name, keys)) {
        state->status = pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                                      "%s:%d: unknown key '%s' in [%s]: use %s",
                                      state->path, state->line, name, section,
                                      keys == layer_keys ? "weights, bias, activation, scheme, p"
                                      : keys == readout_keys ? "weights, bias"
                                      : "loss, inputs, targets, labels, fixed_seed");
        return 0;
    }
    for (size_t e = 0; e < state->n_entries; e++) {
        if (strcmp(state->entries[e].section, section) == 0
            && strcmp(state->entries[e].name, name) == 0) {
            state->status = pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                                          "%s:%d: key '%s' in [%s] is already set on line %d",
                                          state->path, state->line, name,
                                          section, state->entries[e].line);
            return 0;
        }
    }
    if (state->n_entries == INI_ENTRIES_MAX) {
        state->status = pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                                      "%s:%d: too many entries (at most %d)",
                                      state->path, state->line, INI_ENTRIES_MAX);
        return 0;
    }
    entry = &state->entries[state->n_entries];
    snprintf(entry->section, sizeof entry->section, "%s", section);
    snprintf(entry->name, sizeof entry->name, "%s", name);
    entry->value = strdup(value);
    entry->line = state->line;
    if (entry->value == NULL) {
        state->status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                                      "out of memory reading %s", state->path);
        return 0;
    }
    state->n_entries++;
    return 1;
}

static const struct ini_entry *
ini_find(const struct ini_state *state, const char *section, const char *name)
{
    for (size_t e = 0; e < state->n_entries; e++)
        if (strcmp(state->entries[e].section, section) == 0
            && strcmp(state->entries[e].name, name) == 0)
            return &state->entries[e];
    return NULL;
}

/* The path of entry, resolved against the folder of the INI file. */
static char *
resolve_path(const char *ini_path, const char *path)
{
    const char *slash = strrchr(ini_path, '/');
    size_t dir_len = slash ? (size_t) (slash - ini_path + 1) : 0;
    char *full;

    if (path[0] == '/' || dir_len == 0)
        return strdup(path);
    full = malloc(dir_len + strlen(path) + 1);
    if (full != NULL) {
        memcpy(full, ini_path, dir_len);
        strcpy(full + dir_len, path);
    }
    return full;
}

/* Prefix the last error with the file, line and key of entry. */
static int
entry_error(const struct ini_state *state, const struct ini_entry *entry,
            int status)
{
    char reason[PND_READ_REASON_MAX];

    /* Copy first: the message buffer is also pnd_error_set's destination. */
    snprintf(reason, sizeof reason, "%s", pnd_error_message());
    return pnd_error_set(status, __FILE__, __LINE__, "%s:%d: [%s] %s: %s",
                         state->path, entry->line, entry->section, entry->name,
                         reason);
}

/* Read the matrix named by an entry and check its shape; a required shape
 * of 0 accepts any size. Vectors may be stored as one row or one column. */
static int
read_entry_matrix(const struct ini_state *state, const struct ini_entry *entry,
                  size_t want_rows, size_t want_cols, bool vector,
                  size_t *rows, size_t *cols, double **values)
{
    char *full = resolve_path(state->path, entry->value);
    int status;

    if (full == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory reading %s", state->path);
    status = pnd_matrix_read(full, rows, cols, values);
    free(full);
    if (status != PND_OK)
        return entry_error(state, entry, status);
    if (vector && *rows == 1) {
        *rows = *cols;
        *cols = 1;
    }
    if ((want_rows != 0 && *rows != want_rows)
        || (want_cols != 0 && *cols != want_cols)) {
        status = pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                               "%s:%d: [%s] %s = %s has shape (%zu, %zu), expected (%zu, %zu)%s",
                               state->path, entry->line, entry->section,
                               entry->name, entry->value, *rows, *cols,
                               want_rows ? want_rows : *rows,
                               want_cols ? want_cols : *cols,
                               vector ? " or one row" : "");
        free(*values);
        *values = NULL;
        return status;
    }
    return PND_OK;
}


/* Parse the layer options (activation, scheme, p) of section into layer. */
static int
read_layer_options(const struct ini_state *state, const char *section,
                   struct pnd_layer *layer)
{
    const struct ini_entry *act = ini_find(state, section, "activation");
    const struct ini_entry *scheme = ini_find(state, section, "scheme");
    const struct ini_entry *p = ini_find(state, section, "p");

    if (act != NULL && pnd_activation_parse(act->value, &layer->act) != PND_OK)
        return entry_error(state, act, PND_EINVAL);
    if (scheme != NULL
        && pnd_scheme_parse(scheme->value, &layer->mask.scheme) != PND_OK)
        return entry_error(state, scheme, PND_EINVAL);
    if (p != NULL) {
        char *end;

        errno = 0;
        layer->mask.p = strtod(p->value, &end);
        if (end == p->value || *end != '\0' || errno != 0)
            return pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                                 "%s:%d: [%s] p = '%s' is not a number: use a drop probability in [0, 1)",
                                 state->path, p->line, section, p->value);
        if (pnd_check_p(layer->mask.p, "p") != PND_OK)
            return entry_error(state, p, PND_EINVAL);
    }
    return PND_OK;
}

static int
build_net(const struct ini_state *state, struct pnd_net **net_out,
          struct pnd_data **data_out)
{
    const struct ini_entry *loss_e = ini_find(state, "network", "loss");
    const struct ini_entry *inputs_e = ini_find(state, "network", "inputs");
    const struct ini_entry *targets_e = ini_find(state, "network", "targets");
    const struct ini_entry *labels_e = ini_find(state, "network", "labels");
    const struct ini_entry *seed_e = ini_find(state, "network", "fixed_seed");
    const struct ini_entry *readout_e = ini_find(state, "readout", "weights");
    const struct ini_entry *readout_bias_e = ini_find(state, "readout", "bias");
    enum pnd_loss loss = PND_LOSS_SQUARED;
    double *W[PND_NET_MAX_LAYERS] = {NULL}, *X = NULL, *V = NULL, *Y = NULL;
    size_t widths[PND_NET_MAX_LAYERS + 1], n_layers = 0, rows, cols, n, n_out = 0;
    uint64_t fixed_seed = 1;
    struct pnd_net *net = NULL;
    struct pnd_data *data = NULL;
    int status = PND_OK;

    /* Sections [layer1] .. [layerL] must be consecutive. */
    while (n_layers < PND_NET_MAX_LAYERS) {
        char section[16];

        snprintf(section, sizeof section, "layer%zu", n_layers + 1);
        if (ini_find(state, section, "weights") == NULL)
            break;
        n_layers++;
    }
    for (size_t e = 0; e < state->n_entries; e++) {
        int index = layer_section(state->entries[e].section);

        if (index > (int) n_layers)
            PND_ERROR(PND_EINVAL,
                      "%s:%d: [%s] without 'weights' in [layer%zu]: layers must be numbered 1, 2, ... and each needs weights",
                      state->path, state->entries[e].line,
                      state->entries[e].section, n_layers + 1);
    }
    if (n_layers == 0)
        PND_ERROR(PND_EINVAL, "%s: no [layer1] section with 'weights': a network needs at least one layer",
                  state->path);
    if (inputs_e == NULL)
        PND_ERROR(PND_EINVAL, "%s: [network] needs 'inputs', a matrix of (n, d) inputs",
                  state->path);
    if (loss_e != NULL && pnd_loss_parse(loss_e->value, &loss) != PND_OK)
        return entry_error(state, loss_e, PND_EINVAL);
    if (loss == PND_LOSS_SQUARED && targets_e == NULL)
        PND_ERROR(PND_EINVAL, "%s: [network] needs 'targets' for the squared loss",
                  state->path);
    if (loss == PND_LOSS_SOFTMAX_XENT && labels_e == NULL)
        PND_ERROR(PND_EINVAL, "%s: [network] needs 'labels' for the softmax-xent loss",
                  state->path);
    if (seed_e != NULL) {
        char *end;

        errno = 0;
        fixed_seed = strtoull(seed_e->value, &end, 0);
        if (end == seed_e->value || *end != '\0' || errno != 0
            || seed_e->value[0] == '-')
            PND_ERROR(PND_EINVAL, "%s:%d: [network] fixed_seed = '%s': use a non-negative integer",
                      state->path, seed_e->line, seed_e->value);
    }

    /* Inputs, then each layer's weights in order, checking the chain. */
    status = read_entry_matrix(state, inputs_e, 0, 0, false, &n, &widths[0], &X);
    if (status != PND_OK)
        goto fail;
    for (size_t l = 0; l < n_layers; l++) {
        char section[16];

        snprintf(section, sizeof section, "layer%zu", l + 1);
        status = read_entry_matrix(state, ini_find(state, section, "weights"), 0,
                                   widths[l], false, &widths[l + 1], &cols, &W[l]);
        if (status != PND_OK)
            goto fail;
    }
    if (readout_e != NULL) {
        status = read_entry_matrix(state, readout_e, 0, widths[n_layers], false,
                                   &n_out, &cols, &V);
        if (status != PND_OK)
            goto fail;
    } else if (readout_bias_e != NULL) {
        status = pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                               "%s:%d: [readout] bias without weights",
                               state->path, readout_bias_e->line);
        goto fail;
    }

    net = pnd_net_alloc(n_layers, widths, n_out, loss);
    if (net == NULL) {
        status = pnd_error_status();
        goto fail;
    }
    for (size_t l = 0; l < n_layers; l++) {
        struct pnd_layer *layer = &net->layers[l];
        const struct ini_entry *bias;
        char section[16];

        snprintf(section, sizeof section, "layer%zu", l + 1);
        memcpy(layer->W, W[l], layer->d_out * layer->d_in * sizeof *layer->W);
        bias = ini_find(state, section, "bias");
        if (bias != NULL) {
            double *b;

            status = read_entry_matrix(state, bias, layer->d_out, 1, true, &rows,
                                       &cols, &b);
            if (status != PND_OK)
                goto fail;
            memcpy(layer->b, b, layer->d_out * sizeof *b);
            free(b);
        }
        status = read_layer_options(state, section, layer);
        if (status != PND_OK)
            goto fail;
        if (layer->mask.scheme == PND_SCHEME_FIXED_MASK) {
            size_t words = layer->d_out * ((layer->d_in + 63) / 64);

            layer->fixed_bits = calloc(words, sizeof *layer->fixed_bits);
            if (layer->fixed_bits == NULL) {
                status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                                       "out of memory for a fixed mask");
                goto fail;
            }
            status = pnd_mask_fixed_bits(fixed_seed, l, layer->mask.p,
                                         layer->d_out, layer->d_in,
                                         layer->fixed_bits);
            if (status != PND_OK)
                goto fail;
            layer->mask.fixed_bits = layer->fixed_bits;
        }
    }
    if (V != NULL) {
        memcpy(net->V, V, net->n_out * widths[n_layers] * sizeof *V);
        if (readout_bias_e != NULL) {
            double *e;

            status = read_entry_matrix(state, readout_bias_e, net->n_out, 1, true,
                                       &rows, &cols, &e);
            if (status != PND_OK)
                goto fail;
            memcpy(net->e, e, net->n_out * sizeof *e);
            free(e);
        }
    }

    /* Targets (n, n_out) or labels (n) in [0, n_out). */
    data = pnd_data_alloc(n, widths[0], net->n_out, loss == PND_LOSS_SOFTMAX_XENT);
    if (data == NULL) {
        status = pnd_error_status();
        goto fail;
    }
    memcpy(data->X, X, n * widths[0] * sizeof *X);
    if (loss == PND_LOSS_SQUARED) {
        status = read_entry_matrix(state, targets_e, n, net->n_out, false, &rows,
                                   &cols, &Y);
        if (status != PND_OK)
            goto fail;
        memcpy(data->T, Y, n * net->n_out * sizeof *Y);
    } else {
        status = read_entry_matrix(state, labels_e, n, 1, true, &rows, &cols, &Y);
        if (status != PND_OK)
            goto fail;
        for (size_t k = 0; k < n; k++) {
            if (Y[k] != floor(Y[k]) || Y[k] < 0 || Y[k] >= (double) net->n_out) {
                status = pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                                       "%s:%d: [network] labels: label %g of sample %zu is not an integer in [0, %zu)",
                                       state->path, labels_e->line, Y[k], k,
                                       net->n_out);
                goto fail;
            }
            data->labels[k] = (int) Y[k];
        }
    }
    status = pnd_net_check_data(net, data);
    if (status != PND_OK)
        goto fail;

    *net_out = net;
    *data_out = data;
    net = NULL;
    data = NULL;

fail:
    for (size_t l = 0; l < PND_NET_MAX_LAYERS; l++)
        free(W[l]);
    free(X);
    free(V);
    free(Y);
    pnd_net_free(net);
    pnd_data_free(data);
    return status;
}

int
pnd_net_read(const char *path, struct pnd_net **net, struct pnd_data **data)
{
    struct ini_state *state = calloc(1, sizeof *state);
    int status, parse;

    *net = NULL;
    *data = NULL;
    if (state == NULL)
        PND_ERROR(PND_ENOMEM, "out of memory reading %s", path);
    state->path = path;
    state->fp = fopen(path, "r");
    if (state->fp == NULL) {
        int saved = errno;

        free(state);
        PND_ERROR(pnd_input_open_status(saved), "cannot open network file %s: %s",
                  path, strerror(saved));
    }
    parse = ini_parse_stream(ini_line_reader, state, entry_handler, state);
    fclose(state->fp);

    if (state->status != PND_OK)
        status = state->status;
    else if (parse != 0)
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "%s:%d: not INI syntax: expected [section] or key = value",
                               path, parse);
    else
        status = build_net(state, net, data);

    for (size_t e = 0; e < state->n_entries; e++)
        free(state->entries[e].value);
    free(state);
    return status;
}
