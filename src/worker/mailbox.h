/*
 * mailbox.h -- a worker reading the messages other workers send it
 * (core/mail.h), each handed to the app's onWorkerMessage.
 */
#ifndef LS_MAILBOX_H
#define LS_MAILBOX_H

#include "net/loop.h"

/* Start reading this worker's id's socket (once it serves). */
void ls_mailbox_start(ls_worker_t *w);
/* Stop reading (a stop or reload began): what is queued waits for the next
 * worker with this id. */
void ls_mailbox_stop(ls_worker_t *w);

#endif
