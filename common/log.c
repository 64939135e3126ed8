/* log.c: see log.h (being written) */
#include "log.h"
