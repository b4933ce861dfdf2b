/*
 * loop.c -- the worker's loop state shared by the connection, protocol and
 * Lua layers: the cached clock, libevent common timeouts, and the name
 * resolver.
 */
#include "net/loop.h"

#include <event2/dns.h>

ls_worker_t *ls_worker;

/* The loop's cached time: cheap, and exact enough for timeouts. */
double
ls_loop_time(void)
{
    struct timeval tv;
    event_base_gettimeofday_cached(ls_worker->base, &tv);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/*
 * The timeval for a timeout that many connections share (headerTimeout,
 * sendTimeout, ...): libevent keeps the events of a "common timeout" in a
 * queue in the order they were added instead of in its heap, so arming and
 * disarming one per request is O(1). NULL for 0 (no timeout).
 */
const struct timeval *
ls_loop_timeout(double secs)
{
    static struct timeval fallback;
    ls_worker_t *w = ls_worker;
    const size_t n = sizeof(w->tmo) / sizeof(*w->tmo);
    const struct timeval *common;
    struct timeval tv;
    size_t i;

    if (!(secs > 0))
        return NULL;
    for (i = 0; i < n && w->tmo[i].tv != NULL; i++)
        if (w->tmo[i].secs == secs)
            return w->tmo[i].tv;
    tv.tv_sec = (time_t)secs;
    tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
    common = event_base_init_common_timeout(w->base, &tv);
    if (common == NULL) {
        fallback = tv; /* a plain heap timeout does the same, slower */
        return &fallback;
    }
    if (i < n) {
        w->tmo[i].secs = secs;
        w->tmo[i].tv = common;
    }
    return common;
}

/* The worker's resolver (evdns: /etc/resolv.conf and /etc/hosts), made on
 * first use; NULL when it cannot be made. */
struct evdns_base *
ls_loop_dns(void)
{
    ls_worker_t *w = ls_worker;

    if (w->dns == NULL)
        w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    return w->dns;
}
