/* libpnd: PerNodeDrop theory checks. Include this header for the whole API. */
#ifndef PND_PND_H
#define PND_PND_H

#include "pnd/error.h"
#include "pnd/log.h"
#include "pnd/fileio.h"
#include "pnd/config.h"
#include "pnd/rng.h"
#include "pnd/mask.h"
#include "pnd/net.h"
#include "pnd/sim.h"
#include "pnd/analysis.h"
#include "pnd/train.h"
#include "pnd/report.h"

#endif
