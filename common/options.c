/* options.c: see options.h (being written) */
#include "options.h"
