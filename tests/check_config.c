/* INI configuration: every value type, every error message, write and read
 * back, and flags over files. Files are written under a mkdtemp directory. */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pnd/config.h"
#include "pnd/error.h"
#include "tests/suites.h"

static const char *const scheme_choices[] = {"none", "dropout", "dropconnect",
                                             "pernodedrop", NULL};

/* The values a table stores into; one per test. */
struct settings {
    char *name;
    long samples;
    uint64_t seed;
    double p;
    bool exact;
    int scheme;
    struct pnd_double_list rates;
    struct pnd_double_list widths;
};

#define N_KEYS 8

static void
make_keys(struct pnd_config_key keys[N_KEYS], struct settings *s)
{
    const struct pnd_config_key table[N_KEYS] = {
        {"", "name", PND_CONFIG_STRING, &s->name, 0, 0, NULL, "run name"},
        {"sim", "samples", PND_CONFIG_INT, &s->samples, 1, 1e6, NULL,
         "Monte Carlo samples per point"},
        {"sim", "seed", PND_CONFIG_UINT64, &s->seed, 0, 0, NULL, "base seed"},
        {"sim", "p", PND_CONFIG_DOUBLE, &s->p, 0, 0.99, NULL, "drop probability"},
        {"sim", "exact", PND_CONFIG_BOOL, &s->exact, 0, 0, NULL,
         "also compute the exact expectation"},
        {"train", "scheme", PND_CONFIG_CHOICE, &s->scheme, 0, 0, scheme_choices,
         "masking scheme"},
        {"train", "rates", PND_CONFIG_DOUBLE_LIST, &s->rates, 0, 1, NULL,
         "drop probabilities of the sweep"},
        {"train", "widths", PND_CONFIG_INT_LIST, &s->widths, 1, 4096, NULL,
         "hidden layer widths"},
    };

    memcpy(keys, table, sizeof table);
    memset(s, 0, sizeof *s);
}

struct temp_dir {
    char path[64];
};

static void
temp_dir_make(struct temp_dir *dir)
{
    snprintf(dir->path, sizeof dir->path, "/tmp/pnd-check-config-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir->path));
}

/* Write text to dir/name and store the full path in path. */
static void
write_text(const struct temp_dir *dir, const char *name, const char *text,
           char *path, size_t size)
{
    FILE *fp;

    snprintf(path, size, "%s/%s", dir->path, name);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fputs(text, fp) >= 0, 1);
    ck_assert_int_eq(fclose(fp), 0);
}

static void
temp_dir_remove(const struct temp_dir *dir, const char *const *names)
{
    char path[256];

    for (size_t i = 0; names[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir->path, names[i]);
        unlink(path);
    }
    ck_assert_int_eq(rmdir(dir->path), 0);
}

/* Read text as a configuration; return the status. */
static int
read_text(const char *text, struct pnd_config_key *keys, char *path, size_t size)
{
    struct temp_dir dir;
    const char *const names[] = {"run.ini", NULL};
    int status;

    temp_dir_make(&dir);
    write_text(&dir, "run.ini", text, path, size);
    pnd_error_clear();
    status = pnd_config_read(path, keys, N_KEYS);
    temp_dir_remove(&dir, names);
    return status;
}

/* Assert that message contains every one of the NULL-terminated parts. */
static void
assert_message_has(const char *message, const char *const *parts)
{
    for (size_t i = 0; parts[i]; i++)
        ck_assert_msg(strstr(message, parts[i]) != NULL,
                      "message '%s' lacks '%s'", message, parts[i]);
}

static const char good_config[] =
    "; a comment\n"
    "name = first run\n"
    "\n"
    "[sim]\n"
    "samples = 2000\n"
    "seed = 0xdeadbeefcafe\n"
    "p = 0.25      ; inline comment\n"
    "exact = yes\n"
    "# another comment\n"
    "[train]\n"
    "scheme = pernodedrop\n"
    "rates = 0.05, 0.1,0.2 ,\n"
    "    0.5\n"
    "widths = 128, 256\n";

/* ---- Core ---- */

START_TEST(test_config_parses_each_type)
{
    struct pnd_config_key keys[N_KEYS];
    struct settings s;
    char path[256];

    make_keys(keys, &s);
    ck_assert_int_eq(read_text(good_config, keys, path, sizeof path), PND_OK);
    ck_assert_str_eq(s.name, "first run");
    ck_assert_int_eq(s.samples, 2000);
    ck_assert_uint_eq(s.seed, 0xdeadbeefcafeULL);
    ck_assert_double_eq(s.p, 0.25);
    ck_assert(s.exact);
    ck_assert_int_eq(s.scheme, 3);
    ck_assert_uint_eq(s.rates.n, 4);
    ck_assert_double_eq(s.rates.v[0], 0.05);
    ck_assert_double_eq(s.rates.v[2], 0.2);
    ck_assert_double_eq(s.rates.v[3], 0.5);
    ck_assert_uint_eq(s.widths.n, 2);
    ck_assert_double_eq(s.widths.v[1], 256.0);
    pnd_config_free_strings(keys, N_KEYS);
    ck_assert_ptr_null(s.name);
}
END_TEST

START_TEST(test_config_bool_words)
{
    const char *const true_words[] = {"true", "TRUE", "yes", "Yes", "1"};
    const char *const false_words[] = {"false", "False", "no", "NO", "0"};
    struct pnd_config_key keys[N_KEYS];
    struct settings s;

    make_keys(keys, &s);
    for (size_t i = 0; i < 5; i++) {
        s.exact = false;
        ck_assert_int_eq(pnd_config_set(keys, N_KEYS, "sim", "exact", true_words[i],
                                        "--exact", 0), PND_OK);
        ck_assert(s.exact);
        ck_assert_int_eq(pnd_config_set(keys, N_KEYS, "sim", "exact", false_words[i],
                                        "--exact", 0), PND_OK);
        ck_assert(!s.exact);
    }
}
END_TEST

START_TEST(test_config_round_trip)
{
    struct pnd_config_key keys[N_KEYS], keys2[N_KEYS];
    struct settings s, t;
    struct temp_dir dir;
    const char *const names[] = {"out.ini", NULL};
    char path[256];

    make_keys(keys, &s);
    s.name = strdup("round trip");
    ck_assert_ptr_nonnull(s.name);
    s.samples = 123456;
    s.seed = UINT64_MAX;
    s.p = 0.1 + 0.2;                   /* needs 17 digits */
    s.exact = true;
    s.scheme = 2;
    s.rates.n = 20;                    /* longer than one written line */
    for (size_t i = 0; i < s.rates.n; i++)
        s.rates.v[i] = 1.0 / (double) (i + 3);
    s.widths.n = 3;
    s.widths.v[0] = 1;
    s.widths.v[1] = 64;
    s.widths.v[2] = 4096;

    temp_dir_make(&dir);
    snprintf(path, sizeof path, "%s/out.ini", dir.path);
    ck_assert_int_eq(pnd_config_write(path, keys, N_KEYS), PND_OK);
    make_keys(keys2, &t);
    ck_assert_msg(pnd_config_read(path, keys2, N_KEYS) == PND_OK, "%s",
                  pnd_error_message());
    temp_dir_remove(&dir, names);

    ck_assert_str_eq(t.name, s.name);
    ck_assert_int_eq(t.samples, s.samples);
    ck_assert_uint_eq(t.seed, s.seed);
    ck_assert_double_eq(t.p, s.p);
    ck_assert(t.exact);
    ck_assert_int_eq(t.scheme, s.scheme);
    ck_assert_uint_eq(t.rates.n, s.rates.n);
    for (size_t i = 0; i < s.rates.n; i++)
        ck_assert_double_eq(t.rates.v[i], s.rates.v[i]);
    ck_assert_uint_eq(t.widths.n, 3);
    ck_assert_double_eq(t.widths.v[2], 4096.0);
    pnd_config_free_strings(keys, N_KEYS);
    pnd_config_free_strings(keys2, N_KEYS);
}
END_TEST

START_TEST(test_config_flag_overrides_file)
{
    struct pnd_config_key keys[N_KEYS];
    struct settings s;
    char path[256];

    make_keys(keys, &s);
    ck_assert_int_eq(read_text(good_config, keys, path, sizeof path), PND_OK);
    ck_assert_int_eq(pnd_config_set(keys, N_KEYS, "sim", "samples", "77",
                                    "--samples", 0), PND_OK);
    ck_assert_int_eq(s.samples, 77);
    ck_assert_int_eq(pnd_config_set(keys, N_KEYS, "", "name", "from flag",
                                    "--name", 0), PND_OK);
    ck_assert_str_eq(s.name, "from flag");
    /* A list flag replaces the list from the file. */
    ck_assert_int_eq(pnd_config_set(keys, N_KEYS, "train", "rates", "0.3",
                                    "--rates", 0), PND_OK);
    ck_assert_uint_eq(s.rates.n, 1);
    ck_assert_double_eq(s.rates.v[0], 0.3);
    pnd_config_free_strings(keys, N_KEYS);
}
END_TEST

START_TEST(test_config_flag_error_names_flag)
{
    struct pnd_config_key keys[N_KEYS];
    struct settings s;
    const char *const parts[] = {"--samples:", "sim.samples", "'many'", "[1, 1e+06]",
                                 NULL};

    make_keys(keys, &s);
    s.samples = 5;
    ck_assert_int_eq(pnd_config_set(keys, N_KEYS, "sim", "samples", "many",
                                    "--samples", 0), PND_EINVAL);
    assert_message_has(pnd_error_message(), parts);
    ck_assert_int_eq(s.samples, 5);    /* unchanged */
}
END_TEST

/* A bound just below 1, the largest double that a probability p < 1 may
 * take, reads as the half-open "[0, 1)", not as 0.9999999999999999. */
START_TEST(test_config_half_open_bound)
{
    double p = 0.5;
    const struct pnd_config_key key = {
        "model", "p", PND_CONFIG_DOUBLE, &p, 0.0, nextafter(1.0, 0.0), NULL,
        "drop probability"
    };
    const char *const parts[] = {"--p:", "model.p", "'1'", "in [0, 1)", NULL};

    ck_assert_int_eq(pnd_config_set(&key, 1, "model", "p", "1", "--p", 0),
                     PND_EINVAL);
    assert_message_has(pnd_error_message(), parts);
    ck_assert_ptr_null(strstr(pnd_error_message(), "0.9999"));
    ck_assert_double_eq(p, 0.5);
    ck_assert_int_eq(pnd_config_set(&key, 1, "model", "p", "0.9999",
                                    "--p", 0), PND_OK);
}
END_TEST

/* ---- Limits: each error names file:line, the key and what is accepted ---- */

struct error_case {
    const char *text;
    int status;
    const char *parts[5];
};

static const struct error_case error_cases[] = {
    {"[sim]\nsmaples = 3\n", PND_EINVAL,
     {"run.ini:2", "sim.smaples", "samples, seed, p, exact", NULL}},
    {"[sim]\nsamples = 3\n[simulation]\nseed = 1\n", PND_EINVAL,
     {"run.ini:4", "[simulation]", "sim, train", NULL}},
    {"[sim]\nsamples = 0\n", PND_EINVAL,
     {"run.ini:2", "sim.samples", "'0'", "[1, 1e+06]", NULL}},
    {"[sim]\nsamples = 2.5\n", PND_EINVAL,
     {"run.ini:2", "sim.samples", "'2.5'", "integer", NULL}},
    {"\n\n[sim]\nseed = -1\n", PND_EINVAL,
     {"run.ini:4", "sim.seed", "'-1'", "non-negative", NULL}},
    {"[sim]\np = nan\n", PND_EINVAL,
     {"run.ini:2", "sim.p", "'nan'", "finite number in [0, 0.99]", NULL}},
    {"[sim]\np = 1.5\n", PND_EINVAL,
     {"run.ini:2", "sim.p", "'1.5'", "[0, 0.99]", NULL}},
    {"[sim]\nexact = maybe\n", PND_EINVAL,
     {"run.ini:2", "sim.exact", "'maybe'", "true, false, yes, no, 1 or 0", NULL}},
    {"[train]\nscheme = dropall\n", PND_EINVAL,
     {"run.ini:2", "train.scheme", "'dropall'", "none, dropout, dropconnect, pernodedrop",
      NULL}},
    {"[train]\nrates = 0.1, x\n", PND_EINVAL,
     {"run.ini:2", "train.rates", "'0.1, x'", "list", NULL}},
    {"[train]\nrates = 0.1,,0.2\n", PND_EINVAL,
     {"run.ini:2", "train.rates", "comma-separated", NULL}},
    {"[train]\nrates = 0.1, 2\n", PND_EINVAL,
     {"run.ini:2", "train.rates", "each in [0, 1]", NULL}},
    {"[train]\nwidths = 64, 32.5\n", PND_EINVAL,
     {"run.ini:2", "train.widths", "integers", NULL}},
    {"[train]\nwidths = 64\n\n  x\n", PND_EINVAL,
     {"run.ini:4", "train.widths", "'x'", NULL}},
    {"[sim]\nsamples = 5\n  6\n", PND_EINVAL,
     {"run.ini:3", "sim.samples", "only lists", NULL}},
    {"[sim]\nsamples = 5\nseed = 1\nsamples = 6\n", PND_EINVAL,
     {"run.ini:4", "duplicate", "sim.samples", "line 2", NULL}},
    {"[sim]\nsamples 5\n", PND_EFORMAT,
     {"run.ini:2", "INI syntax", NULL}},
    {"[sim\nsamples = 5\n", PND_EFORMAT,
     {"run.ini:1", "INI syntax", NULL}},
    {"samples = 5\n", PND_EINVAL,
     {"run.ini:1", "samples", "accepted keys: name", NULL}},
};

START_TEST(test_config_error_messages)
{
    const struct error_case *c = &error_cases[_i];
    struct pnd_config_key keys[N_KEYS];
    struct settings s;
    char path[256];
    int status;

    make_keys(keys, &s);
    status = read_text(c->text, keys, path, sizeof path);
    ck_assert_msg(status == c->status, "case %d: status %d, expected %d (%s)",
                  _i, status, c->status, pnd_error_message());
    assert_message_has(pnd_error_message(), c->parts);
    /* The message names the file by its full path. */
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), path));
    pnd_config_free_strings(keys, N_KEYS);
}
END_TEST

START_TEST(test_config_first_error_reported)
{
    struct pnd_config_key keys[N_KEYS];
    struct settings s;
    char path[256];

    make_keys(keys, &s);
    ck_assert_int_eq(read_text("[sim]\nsamples = x\nseed = y\n", keys, path,
                               sizeof path), PND_EINVAL);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "run.ini:2"));
    ck_assert_int_eq(read_text("[sim]\nbad line\nseed = y\n", keys, path,
                               sizeof path), PND_EFORMAT);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "run.ini:2"));
}
END_TEST

START_TEST(test_config_missing_file)
{
    struct pnd_config_key keys[N_KEYS];
    struct settings s;

    make_keys(keys, &s);
    pnd_error_clear();
    ck_assert_int_eq(pnd_config_read("/nonexistent/pnd-run.ini", keys, N_KEYS),
                     PND_EINVAL);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "/nonexistent/pnd-run.ini"));
}
END_TEST

START_TEST(test_config_long_line)
{
    struct pnd_config_key keys[N_KEYS];
    struct settings s;
    char text[512], path[256];
    size_t n;

    make_keys(keys, &s);
    n = (size_t) snprintf(text, sizeof text, "[train]\nrates = 0.5");
    while (n < 300)
        n += (size_t) snprintf(text + n, sizeof text - n, ", 0.5");
    ck_assert_int_eq(read_text(text, keys, path, sizeof path), PND_EFORMAT);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "run.ini:2"));
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "continuation"));
}
END_TEST

START_TEST(test_config_list_too_long)
{
    struct pnd_config_key keys[N_KEYS];
    struct settings s;
    char text[2048], path[256];
    size_t n;

    /* 65 items over several continuation lines: one more than the maximum. */
    make_keys(keys, &s);
    n = (size_t) snprintf(text, sizeof text, "[train]\nrates = 0.5");
    for (int i = 1; i < PND_CONFIG_LIST_MAX + 1; i++)
        n += (size_t) snprintf(text + n, sizeof text - n, i % 10 ? ", 0.5" : ",\n  0.5");
    ck_assert_int_eq(read_text(text, keys, path, sizeof path), PND_EINVAL);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "1 to 64"));
}
END_TEST

START_TEST(test_config_write_rejects_unreadable_string)
{
    struct pnd_config_key keys[N_KEYS];
    struct settings s;
    struct temp_dir dir;
    const char *const names[] = {NULL};
    char path[256];

    make_keys(keys, &s);
    s.name = strdup("two\nlines");
    ck_assert_ptr_nonnull(s.name);
    temp_dir_make(&dir);
    snprintf(path, sizeof path, "%s/bad.ini", dir.path);
    ck_assert_int_eq(pnd_config_write(path, keys, N_KEYS), PND_EINVAL);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "name"));
    /* Nothing is left under the final name. */
    ck_assert_int_ne(access(path, F_OK), 0);
    temp_dir_remove(&dir, names);
    pnd_config_free_strings(keys, N_KEYS);
}
END_TEST

Suite *
pnd_config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *core = tcase_create("Core");
    TCase *limits = tcase_create("Limits");
    int n_error_cases = (int) (sizeof error_cases / sizeof error_cases[0]);

    tcase_add_test(core, test_config_parses_each_type);
    tcase_add_test(core, test_config_bool_words);
    tcase_add_test(core, test_config_round_trip);
    tcase_add_test(core, test_config_flag_overrides_file);
    tcase_add_test(core, test_config_flag_error_names_flag);
    suite_add_tcase(s, core);

    tcase_add_loop_test(limits, test_config_error_messages, 0, n_error_cases);
    tcase_add_test(limits, test_config_first_error_reported);
    tcase_add_test(limits, test_config_half_open_bound);
    tcase_add_test(limits, test_config_missing_file);
    tcase_add_test(limits, test_config_long_line);
    tcase_add_test(limits, test_config_list_too_long);
    tcase_add_test(limits, test_config_write_rejects_unreadable_string);
    suite_add_tcase(s, limits);
    return s;
}
