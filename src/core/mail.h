/*
 * mail.h -- messages between workers (luaserv.send / broadcast): one unix
 * datagram socketpair per worker id, made by the master before it forks,
 * so that every worker holds every id's sending end and the receiving end
 * outlives the worker reading it. A datagram is (sender id, bytes); a
 * message to an id whose worker is being replaced waits in that socket for
 * the next holder of the id. Sends never block: a full queue (the sending
 * end's buffer, shared by all senders to that id) is EAGAIN.
 */
#ifndef LS_MAIL_H
#define LS_MAIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LS_MAIL_MAX ((size_t)1 << 20)   /* bytes of one message */

/* Master: make sure ids 0..n-1 have their sockets; -1 with err. */
int ls_mail_ensure(int n, char *err, size_t errlen);
/* How many ids have sockets (in a worker: as forked). */
int ls_mail_count(void);
/* The receiving end of id, or -1. */
int ls_mail_recv_fd(int id);
/* Send msg from `from` to `to`: 0, or -1 with errno (EAGAIN: queue full;
 * EINVAL: no such id; EMSGSIZE: too big). */
int ls_mail_send(int to, int from, const void *msg, size_t len);

/* This process's message figures, for /metrics: sent, refused because the
 * receiver's queue was full, received. */
typedef struct ls_mail_stats {
    uint64_t sent, full, received;
} ls_mail_stats_t;
extern ls_mail_stats_t ls_mail_stats;
/* One message from fd into buf (LS_MAIL_MAX bytes): its length and the
 * sender in *from, or -1 with errno (EAGAIN: none). */
ssize_t ls_mail_recv(int fd, int *from, char *buf);

#endif
