/* Placeholder: this module is being written. */
#ifndef PND_TRAIN_H
#define PND_TRAIN_H
#endif
