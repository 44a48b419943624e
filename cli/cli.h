/* Entry points of the pnd subcommands and their shared helpers. Each
 * command returns the process exit code: 0 success, 1 runtime failure,
 * 2 usage or input error. */
#ifndef PND_CLI_H
#define PND_CLI_H

#include <stdio.h>

int pnd_cmd_sim(int argc, char **argv);
int pnd_cmd_train(int argc, char **argv);
int pnd_cmd_plot(int argc, char **argv);
int pnd_cmd_report(int argc, char **argv);
int pnd_cmd_bench(int argc, char **argv);
int pnd_cmd_rng(int argc, char **argv);

/* Print "pnd CMD: message (at file:line)" for the last library error and
 * return the exit code that its status maps to. */
int pnd_cli_fail(const char *cmd, int status);

/* Print "pnd CMD: message" and a hint to run --help; return 2. */
int pnd_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Handle --quiet and --verbose, wherever they appear before "--". */
void pnd_cli_apply_verbosity(int argc, char **argv);

/* Parse an unsigned decimal or 0x-hex integer option value. Returns 0 on
 * success, or prints an error naming the option and returns 2. */
int pnd_cli_parse_u64(const char *cmd, const char *option, const char *text,
                      unsigned long long *value);
int pnd_cli_parse_double(const char *cmd, const char *option, const char *text,
                         double *value);

#endif
