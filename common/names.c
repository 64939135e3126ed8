/* names.c: see names.h (being written) */
#include "names.h"
