/*
 * handler.h: the relay's one h2o handler. It routes every request (route.h),
 * authenticates it (auth.h: 401 without or with an unknown key, 403 with a
 * known key that may not do this), and hands it to the registry or the
 * tunnel, which answer it now or later.
 */
#ifndef PTTH_RELAY_HANDLER_H
#define PTTH_RELAY_HANDLER_H

#include <h2o.h>

#include "relay.h"

/* Registers the handler on path "/" of hostconf. */
void ptth_handler_register(ptth_relay *relay, h2o_hostconf_t *hostconf);

#endif
