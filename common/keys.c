/* keys.c: see keys.h (being written) */
#include "keys.h"
