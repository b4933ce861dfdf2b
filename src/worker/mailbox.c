/*
 * mailbox.c -- this worker's end of luaserv.send / broadcast (see
 * mailbox.h): a read event on its id's socket; each wakeup delivers up to
 * MAILBOX_BATCH messages, so a flood of them does not starve connections.
 */
#include "worker/mailbox.h"
#include "core/log.h"
#include "core/mail.h"
#include "lua/lua_mail.h"
#include "net/conn.h"

#include <errno.h>
#include <stdlib.h>

#define MAILBOX_BATCH 64

static struct event mailbox_ev;
static int mailbox_on;
static char *mailbox_buf;   /* LS_MAIL_MAX bytes */

static void
mailbox_on_read(evutil_socket_t fd, short what, void *arg)
{
    ls_worker_t *w = arg;
    (void)what;

    for (int i = 0; i < MAILBOX_BATCH && mailbox_on; i++) {
        int from;
        ssize_t n = ls_mail_recv(fd, &from, mailbox_buf);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                ls_log(LS_LOG_ERROR, errno, "recvmsg() of a worker message "
                       "failed");
            break;
        }
        ls_lua_mail_deliver(w->vm, from, mailbox_buf, (size_t)n);
    }
    ls_conn_flush_all();
}

void
ls_mailbox_start(ls_worker_t *w)
{
    int fd = ls_mail_recv_fd(w->id);

    if (fd < 0 || mailbox_on)
        return;
    if (mailbox_buf == NULL && (mailbox_buf = malloc(LS_MAIL_MAX)) == NULL) {
        ls_log(LS_LOG_ERROR, 0, "out of memory: this worker gets no "
               "messages from the others");
        return;
    }
    event_assign(&mailbox_ev, w->base, fd, EV_READ | EV_PERSIST,
                 mailbox_on_read, w);
    event_add(&mailbox_ev, NULL);
    mailbox_on = 1;
}

void
ls_mailbox_stop(ls_worker_t *w)
{
    (void)w;
    if (mailbox_on) {
        event_del(&mailbox_ev);
        mailbox_on = 0;
    }
}
