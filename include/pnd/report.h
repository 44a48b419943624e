/* Placeholder: this module is being written. */
#ifndef PND_REPORT_H
#define PND_REPORT_H
#endif
