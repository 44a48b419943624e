/* Error printing and option parsing shared by the subcommands. */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "pnd/error.h"
#include "pnd/log.h"

int
pnd_cli_fail(const char *cmd, int status)
{
    const char *message = pnd_error_message();

    if (message[0] == '\0')
        message = pnd_status_string(status);
    if (pnd_log_get_level() >= PND_LOG_DEBUG)
        fprintf(stderr, "pnd %s: %s (at %s)\n", cmd, message,
                pnd_error_location());
    else
        fprintf(stderr, "pnd %s: %s\n", cmd, message);
    return pnd_status_exit_code(status);
}

int
pnd_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "pnd %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'pnd %s --help' for the accepted options.\n", cmd);
    return 2;
}

void
pnd_cli_apply_verbosity(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0)
            pnd_log_set_level(PND_LOG_ERROR);
        else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0)
            pnd_log_set_level(PND_LOG_DEBUG);
    }
}

int
pnd_cli_parse_u64(const char *cmd, const char *option, const char *text,
                  unsigned long long *value)
{
    char *end;

    errno = 0;
    if (text[0] == '-' || text[0] == '\0')
        return pnd_cli_usage_error(cmd, "invalid value '%s' for %s: expected a non-negative integer",
                                   text, option);
    *value = strtoull(text, &end, 0);
    if (errno != 0 || *end != '\0')
        return pnd_cli_usage_error(cmd, "invalid value '%s' for %s: expected a non-negative integer (decimal or 0x hex)",
                                   text, option);
    return 0;
}

int
pnd_cli_parse_double(const char *cmd, const char *option, const char *text,
                     double *value)
{
    char *end;

    errno = 0;
    *value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(*value))
        return pnd_cli_usage_error(cmd, "invalid value '%s' for %s: expected a finite number",
                                   text, option);
    return 0;
}
