/* frame.c: see frame.h (being written) */
#include "frame.h"
