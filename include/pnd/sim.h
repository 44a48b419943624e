/* Placeholder: this module is being written. */
#ifndef PND_SIM_H
#define PND_SIM_H
#endif
