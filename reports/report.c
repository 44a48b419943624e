/* Placeholder: this module is being written. */
#include <config.h>
