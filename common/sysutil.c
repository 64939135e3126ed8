/* sysutil.c: see sysutil.h (being written) */
#include "sysutil.h"
