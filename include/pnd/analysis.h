/* Placeholder: this module is being written. */
#ifndef PND_ANALYSIS_H
#define PND_ANALYSIS_H
#endif
