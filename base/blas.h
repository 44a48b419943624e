/* CBLAS declarations from the implementation chosen by configure
 * (--with-blas=openblas|gsl). Both use the same enum and function names. */
#ifndef PND_BLAS_H
#define PND_BLAS_H

#include <config.h>

#ifdef PND_HAVE_OPENBLAS
#include <cblas.h>
#else
#include <gsl/gsl_cblas.h>
#endif

#endif
