/* Validated INI configuration, parsed with inih (libinih r55).
 *
 * inih reports no line numbers to the handler unless it was built with
 * INI_HANDLER_LINENO, which Debian's build leaves off. So pnd_config_read
 * reads the whole file and feeds it to ini_parse_stream one line at a time
 * through its own reader, which counts lines: every handler call belongs to
 * the line that the reader returned last.
 *
 * inih treats an indented line after "key = value" as a continuation of
 * that value (the Python configparser convention) and calls the handler
 * again with the same key. Here a continuation appends items to a list key
 * and is an error for every other type, so that a stray indentation cannot
 * silently replace a value.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "pnd/config.h"
#include "pnd/error.h"
#include "pnd/fileio.h"

/* inih reads each line into a buffer of INI_MAX_LINE bytes, which must also
 * hold "\r\n\0". A longer line would be cut, and its rest parsed as a new
 * line. */
#define LINE_LENGTH_MAX (INI_MAX_LINE - 3)
/* Lists that pnd_config_write prints wrap after this many items. */
#define LIST_ITEMS_PER_LINE 8
/* Room for "file:line" or a flag name in messages. */
#define LOCATION_MAX 512
/* Room for the list of accepted keys or choices in messages. */
#define ACCEPTED_MAX 640
/* Doubles represent every integer up to 2^53 exactly. */
#define EXACT_INTEGER_MAX 9007199254740992.0

struct read_context {
    const char *path;
    const struct pnd_config_key *keys;     /* (n_keys) */
    size_t n_keys;
    int *first_line;                       /* (n_keys): 0 when not yet set */
    const char *next;                      /* unread rest of the file text */
    const char *line_text;                 /* start of the current line */
    int line;                              /* number of the current line */
    int status;                            /* first error, or PND_OK */
    int error_line;
    long prev_key;                         /* key of the last entry, or -1 */
};

static void
format_location(char *out /* (LOCATION_MAX) */, const char *origin, int line)
{
    if (line > 0)
        snprintf(out, LOCATION_MAX, "%s:%d", origin, line);
    else
        snprintf(out, LOCATION_MAX, "%s", origin);
}

/* "section.name", or "name" for keys before any section. */
static void
format_key_name(char *out, size_t size, const char *section, const char *name)
{
    if (section[0] != '\0')
        snprintf(out, size, "%s.%s", section, name);
    else
        snprintf(out, size, "%s", name);
}

static void
append_text(char *out, size_t size, const char *text)
{
    size_t used = strlen(out);

    if (used + 1 < size)
        snprintf(out + used, size - used, "%s", text);
}

static bool
bounds_set(const struct pnd_config_key *key)
{
    return !(key->min == 0.0 && key->max == 0.0);
}

/* Shortest "%.Ng" that reads back as the same double. */
static void
format_double(char *out /* (32) */, double value)
{
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(out, 32, "%.*g", precision, value);
        if (strtod(out, NULL) == value)
            return;
    }
}

/* The interval [min, max] as text. A max just below a short number, such
 * as the largest double below 1 for a probability, reads as "[min, 1)". */
static void
format_range(char *out /* (80) */, double min, double max)
{
    char low[32], high[32], above[32];

    format_double(low, min);
    format_double(high, max);
    format_double(above, nextafter(max, INFINITY));
    if (strlen(above) + 8 < strlen(high))
        snprintf(out, 80, "[%s, %s)", low, above);
    else
        snprintf(out, 80, "[%s, %s]", low, high);
}

/* Describe the accepted values of key, for error messages. */
static void
describe_accepted(char *out /* (ACCEPTED_MAX) */, const struct pnd_config_key *key)
{
    char range[80];

    format_range(range, key->min, key->max);
    out[0] = '\0';
    switch (key->type) {
    case PND_CONFIG_INT:
        if (bounds_set(key))
            snprintf(out, ACCEPTED_MAX, "a decimal integer in %s", range);
        else
            snprintf(out, ACCEPTED_MAX, "a decimal integer");
        break;
    case PND_CONFIG_UINT64:
        if (bounds_set(key))
            snprintf(out, ACCEPTED_MAX, "a non-negative integer (decimal or 0x hex) in %s",
                     range);
        else
            snprintf(out, ACCEPTED_MAX, "a non-negative integer below 2^64 (decimal or 0x hex)");
        break;
    case PND_CONFIG_DOUBLE:
        if (bounds_set(key))
            snprintf(out, ACCEPTED_MAX, "a finite number in %s", range);
        else
            snprintf(out, ACCEPTED_MAX, "a finite number");
        break;
    case PND_CONFIG_BOOL:
        snprintf(out, ACCEPTED_MAX, "true, false, yes, no, 1 or 0");
        break;
    case PND_CONFIG_STRING:
        snprintf(out, ACCEPTED_MAX, "a string");
        break;
    case PND_CONFIG_CHOICE:
        snprintf(out, ACCEPTED_MAX, "one of: ");
        for (size_t i = 0; key->choices && key->choices[i]; i++) {
            if (i > 0)
                append_text(out, ACCEPTED_MAX, ", ");
            append_text(out, ACCEPTED_MAX, key->choices[i]);
        }
        break;
    case PND_CONFIG_DOUBLE_LIST:
    case PND_CONFIG_INT_LIST:
        snprintf(out, ACCEPTED_MAX, "a comma-separated list of 1 to %d %s",
                 PND_CONFIG_LIST_MAX,
                 key->type == PND_CONFIG_INT_LIST ? "integers" : "finite numbers");
        if (bounds_set(key)) {
            append_text(out, ACCEPTED_MAX, ", each in ");
            append_text(out, ACCEPTED_MAX, range);
        }
        break;
    }
}

/* ---- parsing one value ---- */

static bool
in_bounds(const struct pnd_config_key *key, double value)
{
    return !bounds_set(key) || (value >= key->min && value <= key->max);
}

static bool
parse_long(const char *text, long *value)
{
    char *end;

    errno = 0;
    *value = strtol(text, &end, 10);
    return errno == 0 && end != text && *end == '\0';
}

static bool
parse_finite(const char *text, double *value)
{
    char *end;

    errno = 0;
    *value = strtod(text, &end);
    return errno == 0 && end != text && *end == '\0' && isfinite(*value);
}

static bool
parse_bool(const char *text, bool *value)
{
    static const char *const true_words[] = {"true", "yes", "1"};
    static const char *const false_words[] = {"false", "no", "0"};

    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(text, true_words[i]) == 0) {
            *value = true;
            return true;
        }
        if (strcasecmp(text, false_words[i]) == 0) {
            *value = false;
            return true;
        }
    }
    return false;
}

/* Append the comma-separated items of text to list. Items may have spaces
 * around them; a trailing comma is allowed so that a list can continue on
 * the next line. */
static bool
parse_list(const struct pnd_config_key *key, const char *text,
           struct pnd_double_list *list)
{
    const char *p = text;

    while (*p != '\0') {
        char item[64];
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t) (comma - p) : strlen(p);
        size_t start = 0;
        double value;
        long integer;

        while (start < len && isspace((unsigned char) p[start]))
            start++;
        while (len > start && isspace((unsigned char) p[len - 1]))
            len--;
        if (len == start) {
            if (comma == NULL && list->n > 0)
                break;                     /* a trailing comma */
            return false;                  /* an empty item */
        }
        if (len - start >= sizeof item || list->n >= PND_CONFIG_LIST_MAX)
            return false;
        memcpy(item, p + start, len - start);
        item[len - start] = '\0';

        if (key->type == PND_CONFIG_INT_LIST) {
            if (!parse_long(item, &integer) || fabs((double) integer) > EXACT_INTEGER_MAX)
                return false;
            value = (double) integer;
        } else if (!parse_finite(item, &value)) {
            return false;
        }
        if (!in_bounds(key, value))
            return false;
        list->v[list->n++] = value;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return list->n > 0;
}

/* Parse text into the value of key. With append, list items are added to
 * the current list (a continuation line). Returns false for a bad value
 * and leaves the stored value unchanged. */
static bool
parse_value(const struct pnd_config_key *key, const char *text, bool append,
            int *status)
{
    *status = PND_OK;
    switch (key->type) {
    case PND_CONFIG_INT: {
        long value;

        if (!parse_long(text, &value) || !in_bounds(key, (double) value))
            return false;
        *(long *) key->value = value;
        return true;
    }
    case PND_CONFIG_UINT64: {
        unsigned long long value;
        char *end;

        if (text[0] == '-' || text[0] == '+' || isspace((unsigned char) text[0]))
            return false;
        errno = 0;
        value = strtoull(text, &end, 0);
        if (errno != 0 || end == text || *end != '\0' || !in_bounds(key, (double) value))
            return false;
        *(uint64_t *) key->value = value;
        return true;
    }
    case PND_CONFIG_DOUBLE: {
        double value;

        if (!parse_finite(text, &value) || !in_bounds(key, value))
            return false;
        *(double *) key->value = value;
        return true;
    }
    case PND_CONFIG_BOOL:
        return parse_bool(text, key->value);
    case PND_CONFIG_STRING: {
        char *copy = strdup(text);
        char **slot = key->value;

        if (copy == NULL) {
            *status = PND_ENOMEM;
            return false;
        }
        free(*slot);
        *slot = copy;
        return true;
    }
    case PND_CONFIG_CHOICE:
        for (int i = 0; key->choices && key->choices[i]; i++)
            if (strcmp(text, key->choices[i]) == 0) {
                *(int *) key->value = i;
                return true;
            }
        return false;
    case PND_CONFIG_DOUBLE_LIST:
    case PND_CONFIG_INT_LIST: {
        struct pnd_double_list *list = key->value;
        struct pnd_double_list parsed = {0};

        if (append)
            parsed = *list;
        if (!parse_list(key, text, &parsed))
            return false;
        *list = parsed;
        return true;
    }
    }
    return false;
}

/* ---- looking up keys ---- */

static long
find_key(const struct pnd_config_key *keys, size_t n_keys, const char *section,
         const char *name)
{
    for (size_t i = 0; i < n_keys; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return (long) i;
    return -1;
}

static bool
section_known(const struct pnd_config_key *keys, size_t n_keys, const char *section)
{
    for (size_t i = 0; i < n_keys; i++)
        if (strcmp(keys[i].section, section) == 0)
            return true;
    return false;
}

/* Raise PND_EINVAL for a section or key that the table does not accept,
 * listing what it accepts. */
static int
raise_unknown(const struct pnd_config_key *keys, size_t n_keys,
              const char *section, const char *name, const char *location)
{
    char accepted[ACCEPTED_MAX] = "";
    char key_name[256];

    format_key_name(key_name, sizeof key_name, section, name);
    if (!section_known(keys, n_keys, section)) {
        for (size_t i = 0; i < n_keys; i++) {
            if (section_known(keys, i, keys[i].section))
                continue;                  /* listed already */
            if (accepted[0] != '\0')
                append_text(accepted, sizeof accepted, ", ");
            append_text(accepted, sizeof accepted,
                        keys[i].section[0] ? keys[i].section : "(top level)");
        }
        if (section[0] == '\0')
            PND_ERROR(PND_EINVAL, "%s: key '%s' must be inside a section; accepted "
                      "sections: %s", location, name, accepted);
        PND_ERROR(PND_EINVAL, "%s: unknown section [%s] (key '%s'); accepted sections: %s",
                  location, section, name, accepted);
    }
    for (size_t i = 0; i < n_keys; i++) {
        if (strcmp(keys[i].section, section) != 0)
            continue;
        if (accepted[0] != '\0')
            append_text(accepted, sizeof accepted, ", ");
        append_text(accepted, sizeof accepted, keys[i].name);
    }
    PND_ERROR(PND_EINVAL, "%s: unknown key '%s'; accepted keys%s%s%s: %s",
              location, key_name, section[0] ? " in [" : "", section,
              section[0] ? "]" : "", accepted);
}

/* Validate and store value for keys[index]. */
static int
set_key(const struct pnd_config_key *key, const char *value, bool append,
        const char *location)
{
    char accepted[ACCEPTED_MAX];
    char key_name[256];
    int status;

    if (parse_value(key, value, append, &status))
        return PND_OK;
    format_key_name(key_name, sizeof key_name, key->section, key->name);
    if (status == PND_ENOMEM)
        PND_ERROR(PND_ENOMEM, "%s: out of memory storing %s", location, key_name);
    describe_accepted(accepted, key);
    PND_ERROR(PND_EINVAL, "%s: invalid value '%s' for %s: expected %s",
              location, value, key_name, accepted);
}

int
pnd_config_set(const struct pnd_config_key *keys, size_t n_keys,
               const char *section, const char *name, const char *value,
               const char *origin, int line)
{
    char location[LOCATION_MAX];
    long index;

    format_location(location, origin ? origin : "(unknown)", line);
    if (section == NULL)
        section = "";
    if (name == NULL || value == NULL)
        PND_ERROR(PND_EINVAL, "%s: missing key name or value", location);
    index = find_key(keys, n_keys, section, name);
    if (index < 0)
        return raise_unknown(keys, n_keys, section, name, location);
    return set_key(&keys[index], value, false, location);
}

/* ---- reading a file ---- */

/* fgets-like reader over the file text: returns one line per call and
 * counts lines. */
static char *
read_line(char *str, int num, void *stream)
{
    struct read_context *ctx = stream;
    size_t len = strcspn(ctx->next, "\n");
    size_t with_newline = len + (ctx->next[len] == '\n');

    if (*ctx->next == '\0')
        return NULL;
    ctx->line++;
    ctx->line_text = ctx->next;
    /* Lines were checked against LINE_LENGTH_MAX before parsing. */
    if (with_newline >= (size_t) num)
        with_newline = (size_t) num - 1;
    memcpy(str, ctx->next, with_newline);
    str[with_newline] = '\0';
    ctx->next += len + (ctx->next[len] == '\n');

    /* A section header ends the value that a continuation could extend. */
    {
        const char *p = ctx->line_text;

        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '[')
            ctx->prev_key = -1;
    }
    return str;
}

static int
record_error(struct read_context *ctx, int status)
{
    ctx->status = status;
    ctx->error_line = ctx->line;
    return 0;
}

static int
handle_entry(void *user, const char *section, const char *name, const char *value)
{
    struct read_context *ctx = user;
    char location[LOCATION_MAX];
    bool continuation;
    long index;

    if (ctx->status != PND_OK)
        return 0;    /* report only the first error */
    format_location(location, ctx->path, ctx->line);
    continuation = (ctx->line_text[0] == ' ' || ctx->line_text[0] == '\t')
                   && ctx->prev_key >= 0;

    if (continuation) {
        const struct pnd_config_key *key = &ctx->keys[ctx->prev_key];
        char key_name[256];

        if (key->type != PND_CONFIG_DOUBLE_LIST && key->type != PND_CONFIG_INT_LIST) {
            format_key_name(key_name, sizeof key_name, key->section, key->name);
            pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                          "%s: indented line continues the value of %s, but only "
                          "lists may continue over several lines; remove the "
                          "indentation", location, key_name);
            return record_error(ctx, PND_EINVAL);
        }
        if (set_key(key, value, true, location) != PND_OK)
            return record_error(ctx, pnd_error_status());
        return 1;
    }

    index = find_key(ctx->keys, ctx->n_keys, section, name);
    if (index < 0)
        return record_error(ctx, raise_unknown(ctx->keys, ctx->n_keys, section,
                                               name, location));
    if (ctx->first_line[index] > 0) {
        char key_name[256];

        format_key_name(key_name, sizeof key_name, section, name);
        pnd_error_set(PND_EINVAL, __FILE__, __LINE__,
                      "%s: duplicate key %s, first set on line %d; keep one of them",
                      location, key_name, ctx->first_line[index]);
        return record_error(ctx, PND_EINVAL);
    }
    if (set_key(&ctx->keys[index], value, false, location) != PND_OK)
        return record_error(ctx, pnd_error_status());
    ctx->first_line[index] = ctx->line;
    ctx->prev_key = index;
    return 1;
}

/* Raise PND_EFORMAT for text that inih would misread: NUL bytes, or lines
 * longer than its line buffer. */
static int
check_text(const char *path, const char *text, size_t len)
{
    int line = 1;

    if (strlen(text) != len)
        PND_ERROR(PND_EFORMAT, "%s: contains a NUL byte; a configuration file must "
                  "be text", path);
    for (const char *p = text; *p != '\0'; line++) {
        size_t line_len = strcspn(p, "\n");

        if (line_len > 0 && p[line_len - 1] == '\r')
            line_len--;
        if (line_len > LINE_LENGTH_MAX)
            PND_ERROR(PND_EFORMAT, "%s:%d: line is longer than %d characters; split "
                      "a long list over indented continuation lines", path, line,
                      LINE_LENGTH_MAX);
        p += strcspn(p, "\n");
        if (*p == '\n')
            p++;
    }
    return PND_OK;
}

int
pnd_config_read(const char *path, const struct pnd_config_key *keys,
                size_t n_keys)
{
    struct read_context ctx = {0};
    char *text = NULL;
    size_t len;
    int status, syntax_line;

    status = pnd_read_file(path, &text, &len);
    if (status != PND_OK)
        return status;
    status = check_text(path, text, len);
    if (status != PND_OK)
        goto fail;
    ctx.first_line = calloc(n_keys ? n_keys : 1, sizeof *ctx.first_line);
    if (ctx.first_line == NULL) {
        status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                               "out of memory reading %s", path);
        goto fail;
    }
    ctx.path = path;
    ctx.keys = keys;
    ctx.n_keys = n_keys;
    ctx.next = text;
    ctx.line_text = text;
    ctx.prev_key = -1;

    syntax_line = ini_parse_stream(read_line, &ctx, handle_entry, &ctx);
    /* inih returns the first line where the syntax or the handler failed;
     * report whichever error comes first. */
    if (syntax_line > 0 && (ctx.status == PND_OK || syntax_line < ctx.error_line)) {
        status = pnd_error_set(PND_EFORMAT, __FILE__, __LINE__,
                               "%s:%d: invalid INI syntax: expected '[section]', "
                               "'key = value' or a comment starting with ';' or '#'",
                               path, syntax_line);
    } else if (ctx.status != PND_OK) {
        status = ctx.status;
    } else if (syntax_line == -2) {
        status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                               "out of memory parsing %s", path);
    }

fail:
    free(ctx.first_line);
    free(text);
    return status;
}

/* ---- writing ---- */

/* Raise PND_EINVAL for a string that would not read back unchanged: inih
 * strips spaces at both ends, ends the value at " ;" and reads one line. */
static int
check_writable_string(const struct pnd_config_key *key, const char *text)
{
    size_t len = strlen(text);
    char key_name[256];

    format_key_name(key_name, sizeof key_name, key->section, key->name);
    if (strchr(text, '\n') || strchr(text, '\r')
        || (len > 0 && (isspace((unsigned char) text[0])
                        || isspace((unsigned char) text[len - 1])))
        || strstr(text, " ;") || strstr(text, "\t;"))
        PND_ERROR(PND_EINVAL, "cannot write %s = '%s' as an INI value: it has a line "
                  "break, spaces at an end, or a ';' after a space", key_name, text);
    if (len > LINE_LENGTH_MAX - strlen(key->name) - 3)
        PND_ERROR(PND_EINVAL, "cannot write %s: its value is longer than an INI "
                  "line allows (%d characters)", key_name, LINE_LENGTH_MAX);
    return PND_OK;
}

static void
write_list(FILE *fp, const struct pnd_config_key *key)
{
    const struct pnd_double_list *list = key->value;
    char item[32];

    for (size_t i = 0; i < list->n; i++) {
        if (i > 0 && i % LIST_ITEMS_PER_LINE == 0)
            fprintf(fp, ",\n    ");        /* an indented continuation line */
        else if (i > 0)
            fprintf(fp, ", ");
        if (key->type == PND_CONFIG_INT_LIST)
            snprintf(item, sizeof item, "%.0f", list->v[i]);
        else
            format_double(item, list->v[i]);
        fputs(item, fp);
    }
}

static int
write_key(FILE *fp, const struct pnd_config_key *key)
{
    char number[32];

    if (key->help && key->help[0])
        fprintf(fp, "; %s\n", key->help);
    switch (key->type) {
    case PND_CONFIG_INT:
        fprintf(fp, "%s = %ld\n", key->name, *(const long *) key->value);
        break;
    case PND_CONFIG_UINT64:
        fprintf(fp, "%s = %llu\n", key->name,
                (unsigned long long) *(const uint64_t *) key->value);
        break;
    case PND_CONFIG_DOUBLE:
        format_double(number, *(const double *) key->value);
        fprintf(fp, "%s = %s\n", key->name, number);
        break;
    case PND_CONFIG_BOOL:
        fprintf(fp, "%s = %s\n", key->name, *(const bool *) key->value ? "true" : "false");
        break;
    case PND_CONFIG_STRING: {
        const char *text = *(char *const *) key->value;

        if (text == NULL) {
            fprintf(fp, "; %s is not set\n", key->name);
            break;
        }
        PND_TRY(check_writable_string(key, text));
        fprintf(fp, "%s = %s\n", key->name, text);
        break;
    }
    case PND_CONFIG_CHOICE: {
        int index = *(const int *) key->value;
        int n_choices = 0;

        while (key->choices && key->choices[n_choices])
            n_choices++;
        if (index < 0 || index >= n_choices)
            PND_ERROR(PND_EINVAL, "cannot write %s: choice index %d is outside "
                      "[0, %d)", key->name, index, n_choices);
        fprintf(fp, "%s = %s\n", key->name, key->choices[index]);
        break;
    }
    case PND_CONFIG_DOUBLE_LIST:
    case PND_CONFIG_INT_LIST:
        if (((const struct pnd_double_list *) key->value)->n == 0) {
            fprintf(fp, "; %s is empty\n", key->name);
            break;
        }
        fprintf(fp, "%s = ", key->name);
        write_list(fp, key);
        fputc('\n', fp);
        break;
    }
    return PND_OK;
}

int
pnd_config_write(const char *path, const struct pnd_config_key *keys,
                 size_t n_keys)
{
    struct pnd_atomic_file out = {0};
    int status;

    status = pnd_atomic_open(&out, path);
    if (status != PND_OK)
        return status;

    /* Keys without a section must come before the first [section]. Each
     * section is written once, at the place of its first key. */
    for (size_t i = 0; i < n_keys; i++)
        if (keys[i].section[0] == '\0') {
            status = write_key(out.fp, &keys[i]);
            if (status != PND_OK)
                goto fail;
        }
    for (size_t i = 0; i < n_keys; i++) {
        if (keys[i].section[0] == '\0' || section_known(keys, i, keys[i].section))
            continue;
        fprintf(out.fp, "\n[%s]\n", keys[i].section);
        for (size_t j = i; j < n_keys; j++) {
            if (strcmp(keys[j].section, keys[i].section) != 0)
                continue;
            status = write_key(out.fp, &keys[j]);
            if (status != PND_OK)
                goto fail;
        }
    }
    return pnd_atomic_commit(&out);

fail:
    pnd_atomic_abort(&out);
    return status;
}

void
pnd_config_free_strings(const struct pnd_config_key *keys, size_t n_keys)
{
    for (size_t i = 0; i < n_keys; i++)
        if (keys[i].type == PND_CONFIG_STRING && keys[i].value != NULL) {
            char **slot = keys[i].value;

            free(*slot);
            *slot = NULL;
        }
}
