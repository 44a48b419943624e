/* Throughput of the masked layer passes, in masked connections per second,
 * for pnd bench. The data are uniform in [-1, 1) with every third input set
 * to zero, as in image inputs, and every fourth dZ set to zero, as after
 * ReLU. */
#include <config.h>

#include <stdlib.h>
#include <time.h>

#include "pnd/error.h"
#include "pnd/mask.h"
#include "pnd/rng.h"

/* Coordinate of the benchmark's data stream (not a mask stream). */
#define BENCH_DATA_TAG UINT64_C(0x62656e6368000000)

static double
seconds_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

static void
fill_data(size_t count, size_t zero_every, pnd_pcg64 *r, double *a)
{
    for (size_t j = 0; j < count; j++)
        a[j] = j % zero_every == 0 ? 0.0
                                   : 2.0 * pnd_pcg64dxsm_double(r) - 1.0;
}

int
pnd_mask_bench(enum pnd_scheme scheme, double p, size_t n, size_t h,
               size_t d, bool backward, double min_seconds, double *rate)
{
    struct pnd_mask_spec spec = { scheme, p, NULL };
    struct pnd_mask_key key = { 1, 0, 0, 0 };
    struct pnd_mask_workspace *w = NULL;
    double *W = NULL, *b = NULL, *X = NULL, *Z = NULL, *dW = NULL,
           *dX = NULL;
    uint64_t data_tag = BENCH_DATA_TAG;
    double start, elapsed;
    size_t calls = 0;
    int status = PND_OK;
    pnd_pcg64 r;

    if (n == 0 || h == 0 || d == 0 || rate == NULL)
        PND_ERROR(PND_EINVAL, "pnd_mask_bench: n = %zu, h = %zu, d = %zu "
                  "must be at least 1 and rate not NULL", n, h, d);
    w = pnd_mask_workspace_alloc(h, d);
    W = malloc(h * d * sizeof *W);       /* (h, d) */
    b = calloc(h, sizeof *b);            /* (h) */
    X = malloc(n * d * sizeof *X);       /* (n, d) */
    Z = malloc(n * h * sizeof *Z);       /* (n, h), also dZ */
    dW = calloc(h * d, sizeof *dW);      /* (h, d) */
    dX = malloc(n * d * sizeof *dX);     /* (n, d) */
    if (!w || !W || !b || !X || !Z || !dW || !dX) {
        status = pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                               "pnd_mask_bench: out of memory for a layer "
                               "of h = %zu, d = %zu and %zu samples", h, d,
                               n);
        goto done;
    }
    pnd_rng_derive(&r, 1, &data_tag, 1);
    fill_data(h * d, h * d + 1, &r, W);
    fill_data(n * d, 3, &r, X);
    fill_data(n * h, 4, &r, Z);
    if (scheme == PND_SCHEME_FIXED_MASK && p > 0.0) {
        uint64_t *bits = malloc(h * ((d + 63) / 64) * sizeof *bits);

        spec.fixed_bits = bits;
        status = bits ? pnd_mask_fixed_bits(1, 0, p, h, d, bits)
                      : pnd_error_set(PND_ENOMEM, __FILE__, __LINE__,
                                      "pnd_mask_bench: out of memory");
        if (status != PND_OK)
            goto done;
    }

    start = seconds_now();
    do {
        key.step = calls++;
        status = backward
                 ? pnd_layer_backward(&spec, &key, n, h, d, W, X, Z, dW,
                                      b, dX, w)
                 : pnd_layer_forward(&spec, &key, n, h, d, W, b, X, Z, w);
        if (status != PND_OK)
            goto done;
        elapsed = seconds_now() - start;
    } while (elapsed < min_seconds);
    *rate = (double) calls * (double) n * (double) h * (double) d / elapsed;

done:
    free((void *) spec.fixed_bits);
    pnd_mask_workspace_free(w);
    free(W);
    free(b);
    free(X);
    free(Z);
    free(dW);
    free(dX);
    return status;
}
