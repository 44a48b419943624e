/* Validated INI configuration (parsed with inih).
 *
 * A caller describes every accepted key in a table of pnd_config_key. Reading
 * a file stores each value through the table's pointers and rejects unknown
 * sections, unknown keys and bad values with a message naming the file, the
 * line, the key and the accepted values. Command-line flags go through
 * pnd_config_set with the same table, so a flag is validated exactly like a
 * file entry and, applied after the file, overrides it.
 */
#ifndef PND_CONFIG_H
#define PND_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PND_CONFIG_LIST_MAX 64

/* A comma-separated list of numbers, as used by sweeps ("0.05,0.1,0.2"). */
struct pnd_double_list {
    size_t n;
    double v[PND_CONFIG_LIST_MAX];
};

enum pnd_config_type {
    PND_CONFIG_INT,          /* value: long *, range [min, max] */
    PND_CONFIG_UINT64,       /* value: uint64_t *, decimal or 0x hex */
    PND_CONFIG_DOUBLE,       /* value: double *, finite, range [min, max] */
    PND_CONFIG_BOOL,         /* value: bool *, true/false/yes/no/1/0 */
    PND_CONFIG_STRING,       /* value: char ** (malloc'd; previous value freed) */
    PND_CONFIG_CHOICE,       /* value: int *, index into choices */
    PND_CONFIG_DOUBLE_LIST,  /* value: struct pnd_double_list *, each in [min, max] */
    PND_CONFIG_INT_LIST      /* value: struct pnd_double_list * of integers in [min, max] */
};

struct pnd_config_key {
    const char *section;           /* "" for keys before any [section] */
    const char *name;
    enum pnd_config_type type;
    void *value;
    double min, max;               /* inclusive bounds for numeric types;
                                      min = max = 0 means no bounds */
    const char *const *choices;    /* NULL-terminated, for PND_CONFIG_CHOICE */
    const char *help;              /* one line: what the key sets, in what unit */
};

/* Parse path and store every entry through keys. Returns PND_EINVAL when
 * the file is missing or not readable (PND_EIO for other read failures),
 * PND_EINVAL for an unknown key or bad value, and PND_EFORMAT for a line
 * that is not INI syntax. */
int pnd_config_read(const char *path, const struct pnd_config_key *keys,
                    size_t n_keys);

/* Validate and store one value. origin names where it came from (a file
 * name or "--flag") and line is its line number, or 0 for flags. */
int pnd_config_set(const struct pnd_config_key *keys, size_t n_keys,
                   const char *section, const char *name, const char *value,
                   const char *origin, int line);

/* Write every key as an INI file that pnd_config_read accepts back with the
 * same values: the resolved configuration that run directories and reports
 * record. Keys without a section come first, then one [section] block per
 * section in table order, each key preceded by its help as a "; " comment.
 * Doubles are written with the fewest digits that read back exactly; long
 * lists wrap onto indented continuation lines. A NULL string or an empty
 * list is written as a comment, so reading the file leaves it unset. The
 * file is replaced atomically. Returns PND_EINVAL for a string that INI
 * cannot hold (a line break, spaces at either end, " ;") or a choice index
 * out of range, PND_EIO when the file cannot be written. */
int pnd_config_write(const char *path, const struct pnd_config_key *keys,
                     size_t n_keys);

/* Free every PND_CONFIG_STRING value in the table and set it to NULL. */
void pnd_config_free_strings(const struct pnd_config_key *keys, size_t n_keys);

#endif
