/* Placeholder: this suite is being written. */
#include <config.h>
