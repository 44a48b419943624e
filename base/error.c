/* Per-thread error records and the GSL error handler. */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <gsl/gsl_errno.h>

#include "pnd/error.h"

#define PND_ERROR_MESSAGE_MAX 1024
#define PND_ERROR_LOCATION_MAX 256

struct error_record {
    int status;
    char message[PND_ERROR_MESSAGE_MAX];
    char location[PND_ERROR_LOCATION_MAX];
};

static _Thread_local struct error_record last_error;

int
pnd_error_set(int status, const char *file, int line, const char *fmt, ...)
{
    /* The arguments may include the last message itself, as in "%s; ..."
     * with pnd_error_message(): format into a copy first. */
    char message[PND_ERROR_MESSAGE_MAX];
    va_list ap;

    last_error.status = status;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    memcpy(last_error.message, message, sizeof message);
    snprintf(last_error.location, sizeof last_error.location, "%s:%d",
             file ? file : "?", line);
    return status;
}

const char *
pnd_error_message(void)
{
    return last_error.message;
}

const char *
pnd_error_location(void)
{
    return last_error.location;
}

int
pnd_error_status(void)
{
    return last_error.status;
}

void
pnd_error_clear(void)
{
    last_error.status = PND_OK;
    last_error.message[0] = '\0';
    last_error.location[0] = '\0';
}

const char *
pnd_status_string(int status)
{
    switch (status) {
    case PND_OK:         return "success";
    case PND_EINVAL:     return "invalid input";
    case PND_EFORMAT:    return "malformed file";
    case PND_EIO:        return "input/output error";
    case PND_ENOMEM:     return "out of memory";
    case PND_ENUMERIC:   return "numerical failure";
    case PND_EUNAVAIL:   return "not available";
    case PND_EINTERRUPT: return "interrupted";
    case PND_EFAILED:    return "failed";
    default:             return "unknown status";
    }
}

int
pnd_status_exit_code(int status)
{
    if (status == PND_OK)
        return 0;
    if (status == PND_EINVAL || status == PND_EFORMAT)
        return 2;
    return 1;
}

/* GSL calls this instead of abort(); the message is kept so that the caller
 * of the failing GSL routine can report it with its own context. */
static void
gsl_handler(const char *reason, const char *file, int line, int gsl_errno)
{
    pnd_error_set(PND_ENUMERIC, file, line, "GSL error %d (%s): %s",
                  gsl_errno, gsl_strerror(gsl_errno), reason);
}

void
pnd_error_install_gsl_handler(void)
{
    gsl_set_error_handler(gsl_handler);
}
