/* pnd rng: print raw outputs of a PCG generator, for checks against other
 * implementations of pcg32, pcg64 and pcg64-dxsm. */
#include <config.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "pnd/rng.h"

#define CMD "rng"
#define DEFAULT_COUNT 10
#define DEFAULT_SEED 42

enum generator { GEN_PCG32, GEN_PCG64, GEN_PCG64DXSM };

struct rng_options {
    enum generator generator;
    pnd_uint128 seed;        /* initstate */
    pnd_uint128 stream;      /* initseq */
    pnd_uint128 advance;     /* steps modulo 2^128 */
    bool advance_negative;
    pnd_uint128 advance_magnitude;
    unsigned long long count;
};

static void
print_help(void)
{
    printf("Usage: pnd rng [--type NAME] [--seed S] [--stream Q] [--advance K] [-n N]\n"
           "\n"
           "Print N raw outputs of a PCG generator in hex, one per line: 0x%%08x for\n"
           "pcg32 and 0x%%016x for the 64-bit generators.\n"
           "\n"
           "Options:\n"
           "  --type NAME   pcg32, pcg64 (XSL-RR) or pcg64-dxsm (default pcg64-dxsm)\n"
           "  --seed S      initstate of srandom(initstate, initseq) (default %d)\n"
           "  --stream Q    initseq; the increment is 2 Q + 1 (default 0x%llx)\n"
           "  --advance K   jump K steps before printing; K may be negative (default 0)\n"
           "  -n N          number of outputs (default %d)\n"
           "  --help        print this help\n"
           "\n"
           "S, Q and K are decimal or 0x hex. For pcg32 they are 64-bit values. For\n"
           "pcg64 and pcg64-dxsm they may have up to 128 bits; a value below 2^64\n"
           "sets the low 64 bits of the 128-bit initstate or initseq and leaves the\n"
           "high bits 0, so pnd rng --type pcg64 --seed 42 --stream 54 equals\n"
           "srandom(42, 54) of the reference library.\n"
           "\n"
           "Exit status: 0 success, 1 write failure, 2 invalid option.\n",
           DEFAULT_SEED, (unsigned long long) PND_RNG_DEFAULT_STREAM,
           DEFAULT_COUNT);
}

/* Parse a decimal or 0x-hex unsigned integer of up to 128 bits. Returns
 * false on an empty string, a bad digit or overflow. */
static bool
parse_u128(const char *text, pnd_uint128 *value)
{
    const pnd_uint128 max = ~(pnd_uint128) 0;
    unsigned int base = 10;
    pnd_uint128 result = 0;

    if (text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        base = 16;
        text += 2;
    }
    if (text[0] == '\0')
        return false;
    for (const char *c = text; *c; c++) {
        unsigned int digit;

        if (*c >= '0' && *c <= '9')
            digit = (unsigned int) (*c - '0');
        else if (base == 16 && *c >= 'a' && *c <= 'f')
            digit = (unsigned int) (*c - 'a' + 10);
        else if (base == 16 && *c >= 'A' && *c <= 'F')
            digit = (unsigned int) (*c - 'A' + 10);
        else
            return false;
        if (result > (max - digit) / base)
            return false;
        result = result * base + digit;
    }
    *value = result;
    return true;
}

/* Parse the value of option into a 128-bit integer; 2 on error. */
static int
parse_option_u128(const char *option, const char *text, pnd_uint128 *value)
{
    if (!parse_u128(text, value))
        return pnd_cli_usage_error(CMD, "invalid value '%s' for %s: expected a "
                                   "non-negative integer below 2^128 (decimal or 0x hex)",
                                   text, option);
    return 0;
}

static int
parse_generator(const char *text, enum generator *generator)
{
    if (strcmp(text, "pcg32") == 0)
        *generator = GEN_PCG32;
    else if (strcmp(text, "pcg64") == 0)
        *generator = GEN_PCG64;
    else if (strcmp(text, "pcg64-dxsm") == 0 || strcmp(text, "pcg64dxsm") == 0)
        *generator = GEN_PCG64DXSM;
    else
        return pnd_cli_usage_error(CMD, "invalid value '%s' for --type: expected "
                                   "pcg32, pcg64 or pcg64-dxsm", text);
    return 0;
}

static int
parse_options(int argc, char **argv, struct rng_options *opt)
{
    opt->generator = GEN_PCG64DXSM;
    opt->seed = DEFAULT_SEED;
    opt->stream = PND_RNG_DEFAULT_STREAM;
    opt->advance_negative = false;
    opt->advance_magnitude = 0;
    opt->count = DEFAULT_COUNT;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value;
        int status = 0;

        if (strcmp(arg, "--quiet") == 0 || strcmp(arg, "-q") == 0
            || strcmp(arg, "--verbose") == 0 || strcmp(arg, "-v") == 0)
            continue;    /* handled by main */
        if (strcmp(arg, "--type") != 0 && strcmp(arg, "--seed") != 0
            && strcmp(arg, "--stream") != 0 && strcmp(arg, "--advance") != 0
            && strcmp(arg, "-n") != 0)
            return pnd_cli_usage_error(CMD, "unknown option '%s'", arg);
        if (i + 1 >= argc)
            return pnd_cli_usage_error(CMD, "missing value for %s", arg);
        value = argv[++i];

        if (strcmp(arg, "--type") == 0) {
            status = parse_generator(value, &opt->generator);
        } else if (strcmp(arg, "--seed") == 0) {
            status = parse_option_u128(arg, value, &opt->seed);
        } else if (strcmp(arg, "--stream") == 0) {
            status = parse_option_u128(arg, value, &opt->stream);
        } else if (strcmp(arg, "--advance") == 0) {
            opt->advance_negative = value[0] == '-';
            status = parse_option_u128(arg, value + opt->advance_negative,
                                       &opt->advance_magnitude);
        } else {
            status = pnd_cli_parse_u64(CMD, arg, value, &opt->count);
        }
        if (status != 0)
            return status;
    }

    if (opt->generator == GEN_PCG32) {
        if (opt->seed >> 64)
            return pnd_cli_usage_error(CMD, "invalid value for --seed: pcg32 takes "
                                       "an initstate below 2^64");
        if (opt->stream >> 64)
            return pnd_cli_usage_error(CMD, "invalid value for --stream: pcg32 takes "
                                       "an initseq below 2^64");
        if (opt->advance_magnitude >> 63)
            return pnd_cli_usage_error(CMD, "invalid value for --advance: pcg32 "
                                       "takes a jump in (-2^63, 2^63)");
    }
    opt->advance = opt->advance_negative ? -opt->advance_magnitude
                                         : opt->advance_magnitude;
    return 0;
}

int
pnd_cmd_rng(int argc, char **argv)
{
    struct rng_options opt;
    pnd_pcg32 r32;
    pnd_pcg64 r64;
    int status;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help();
            return 0;
        }
    status = parse_options(argc, argv, &opt);
    if (status != 0)
        return status;

    switch (opt.generator) {
    case GEN_PCG32:
        pnd_pcg32_init(&r32, (uint64_t) opt.seed, (uint64_t) opt.stream);
        pnd_pcg32_advance(&r32, (int64_t) (uint64_t) opt.advance);
        for (unsigned long long i = 0; i < opt.count; i++)
            printf("0x%08x\n", pnd_pcg32_next(&r32));
        break;
    case GEN_PCG64:
        pnd_pcg64_init(&r64, opt.seed, opt.stream);
        pnd_pcg64_advance(&r64, opt.advance);
        for (unsigned long long i = 0; i < opt.count; i++)
            printf("0x%016llx\n", (unsigned long long) pnd_pcg64_next(&r64));
        break;
    case GEN_PCG64DXSM:
        pnd_pcg64dxsm_init(&r64, opt.seed, opt.stream);
        pnd_pcg64dxsm_advance(&r64, opt.advance);
        for (unsigned long long i = 0; i < opt.count; i++)
            printf("0x%016llx\n", (unsigned long long) pnd_pcg64dxsm_next(&r64));
        break;
    }

    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "pnd %s: writing to standard output failed\n", CMD);
        return 1;
    }
    return 0;
}
