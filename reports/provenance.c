/* Provenance of a report: start time, machine and library versions. */
#include <config.h>

#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cmark.h>
#include <gsl/gsl_version.h>
#include <json-c/json_c_version.h>
#include <zlib.h>

#include "base/blas.h"
#include "reports/report_internal.h"

/* The "model name" line of /proc/cpuinfo, or "unknown" elsewhere. */
static void
cpu_model(char *buf, size_t size)
{
    FILE *fp = fopen("/proc/cpuinfo", "r");
    char line[512];

    snprintf(buf, size, "unknown");
    if (fp == NULL)
        return;
    while (fgets(line, sizeof line, fp) != NULL) {
        char *colon = strchr(line, ':');

        if (strncmp(line, "model name", 10) != 0 || colon == NULL)
            continue;
        colon += 1 + (colon[1] == ' ');
        colon[strcspn(colon, "\n")] = '\0';
        snprintf(buf, size, "%s", colon);
        break;
    }
    fclose(fp);
}

void
report_provenance_init(struct report_provenance *prov, int threads)
{
    struct utsname uts;
    time_t now = time(NULL);
    struct tm tm;
    size_t len;

    memset(prov, 0, sizeof *prov);
    gmtime_r(&now, &tm);
    strftime(prov->start_utc, sizeof prov->start_utc, "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* A machine description cut short still identifies the machine. */
    if (uname(&uts) != 0
        || snprintf(prov->machine, sizeof prov->machine, "%s %s %s (%s)", uts.sysname,
                    uts.release, uts.machine, uts.nodename) < 0)
        snprintf(prov->machine, sizeof prov->machine, "unknown");
    cpu_model(prov->cpu, sizeof prov->cpu);
    prov->cores = sysconf(_SC_NPROCESSORS_ONLN);
    prov->threads = threads;

    len = (size_t) snprintf(prov->libraries, sizeof prov->libraries,
                            "GSL %s; cmark %s; json-c %s; zlib %s", GSL_VERSION,
                            cmark_version_string(), json_c_version(), zlibVersion());
#ifdef PND_HAVE_OPENBLAS
    if (len < sizeof prov->libraries)
        snprintf(prov->libraries + len, sizeof prov->libraries - len,
                 "; OpenBLAS (%s)", openblas_get_config());
#else
    if (len < sizeof prov->libraries)
        snprintf(prov->libraries + len, sizeof prov->libraries - len,
                 "; CBLAS from GSL");
#endif
}
