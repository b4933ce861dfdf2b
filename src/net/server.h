/*
 * server.h -- the listener a worker serves: accept, idleTimeout, stop.
 */
#ifndef LS_SERVER_H
#define LS_SERVER_H

#include "net/loop.h"

void ls_server_listen(ls_worker_t *w);
void ls_server_unlisten(ls_worker_t *w);
void ls_server_destroy_all(ls_server_t *srv);
void ls_server_drain_all(ls_server_t *srv);
void ls_server_check_done(ls_worker_t *w);

#endif
