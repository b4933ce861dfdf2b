/*
 * metrics.c -- `luaserv.settings{ metrics = "127.0.0.1:9145" }`: the master
 * answers GET /metrics in Prometheus's text exposition format (version
 * 0.0.4: # HELP and # TYPE before each family, one sample a line, labels
 * quoted and escaped). The figures come from the workers' cells in shared
 * memory (core/stats.h) and from the master itself; no worker is asked, so
 * a stuck worker still shows. A scrape is a short plain HTTP/1.0 exchange:
 * read the request head (bounded, with a deadline), answer, close.
 */
#include "master/metrics.h"
#include "core/config.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/luaserv.h"
#include "core/shdict.h"
#include "core/task.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define METRICS_CLIENTS 8
#define METRICS_HEAD_MAX 4096
#define METRICS_DEADLINE 5.0      /* s to send the request head */

typedef struct mclient {
    int fd;
    double since;
    size_t len;
    char buf[METRICS_HEAD_MAX];
} mclient_t;

static int metrics_fd = -1;
static ls_addr_t metrics_addr;
static mclient_t clients[METRICS_CLIENTS];
static int nclients;

int
ls_metrics_listen(const char *addr, char *err, size_t errlen)
{
    char url[LS_URL_MAX + 8];

    snprintf(url, sizeof(url), "tcp://%s", addr);
    if (ls_listener_parse(url, &metrics_addr, err, errlen) < 0)
        return -1;
    metrics_fd = ls_listener_open(&metrics_addr, 0, 64, err, errlen);
    if (metrics_fd < 0)
        return -1;
    ls_log(LS_LOG_INFO, 0, "metrics on http://%s/metrics", addr);
    return 0;
}

void
ls_metrics_close(void)
{
    for (int i = 0; i < nclients; i++)
        close(clients[i].fd);
    nclients = 0;
    if (metrics_fd >= 0)
        close(metrics_fd);
    metrics_fd = -1;
}

int
ls_metrics_pollfds(struct pollfd *p, int max)
{
    int n = 0;

    if (metrics_fd < 0 || max < 1 + nclients)
        return 0;
    p[n].fd = metrics_fd;
    p[n++].events = nclients < METRICS_CLIENTS ? POLLIN : 0;
    for (int i = 0; i < nclients; i++) {
        p[n].fd = clients[i].fd;
        p[n++].events = POLLIN;
    }
    return n;
}

/* ---- the text format ---------------------------------------------------- */

typedef struct mbuf {
    char *p;
    size_t len, cap;
    int failed;
} mbuf_t;

static void
mb_printf(mbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        {
            size_t cap = b->cap * 2 + (size_t)n;
            char *q = realloc(b->p, cap);
            if (q == NULL) {
                b->failed = 1;
                return;
            }
            b->p = q;
            b->cap = cap;
        }
    }
}

/* A label value: backslash, double quote and newline escaped. */
static void
mb_label(mbuf_t *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            mb_printf(b, "\\%c", *v);
        else if (*v == '\n')
            mb_printf(b, "\\n");
        else
            mb_printf(b, "%c", *v);
    }
}

static void
mb_family(mbuf_t *b, const char *name, const char *type, const char *help)
{
    mb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
mb_worker_labels(mbuf_t *b, const ls_metrics_worker_t *w, const char *extra)
{
    mb_printf(b, "{listener=\"");
    mb_label(b, w->listener);
    mb_printf(b, "\",worker=\"%d\",generation=\"%d\"%s%s}", w->id,
              w->generation, extra ? "," : "", extra ? extra : "");
}

/* One family with a sample per worker that has figures. */
typedef uint64_t (*mfield_fn)(const ls_stats_t *s, int arg);

static void
mb_per_worker(mbuf_t *b, const ls_metrics_view_t *v, const char *name,
              const char *type, const char *help, mfield_fn f,
              const char *const *kinds, int nkinds, const char *kind_label)
{
    mb_family(b, name, type, help);
    for (int i = 0; i < v->nworkers; i++) {
        const ls_metrics_worker_t *w = &v->workers[i];
        if (w->stats == NULL)
            continue;
        for (int k = 0; k < (nkinds ? nkinds : 1); k++) {
            char extra[64];
            if (nkinds)
                snprintf(extra, sizeof(extra), "%s=\"%s\"", kind_label,
                         kinds[k]);
            mb_printf(b, "%s", name);
            mb_worker_labels(b, w, nkinds ? extra : NULL);
            mb_printf(b, " %llu\n", (unsigned long long)f(w->stats, k));
        }
    }
}

static uint64_t f_open(const ls_stats_t *s, int k) { (void)k; return s->conns_open; }
static uint64_t f_total(const ls_stats_t *s, int k) { (void)k; return s->conns_total; }
static uint64_t f_closed(const ls_stats_t *s, int k)
{
    (void)k;
    return s->conns_total >= s->conns_open ? s->conns_total - s->conns_open
                                           : 0;
}
static uint64_t f_in(const ls_stats_t *s, int k) { (void)k; return s->msgs_in; }
static uint64_t f_out(const ls_stats_t *s, int k) { (void)k; return s->msgs_out; }
static uint64_t f_bin(const ls_stats_t *s, int k) { (void)k; return s->bytes_in; }
static uint64_t f_bout(const ls_stats_t *s, int k) { (void)k; return s->bytes_out; }
static uint64_t f_tmo(const ls_stats_t *s, int k) { return s->timeouts[k]; }
static uint64_t f_emfile(const ls_stats_t *s, int k) { (void)k; return s->emfile; }
static uint64_t f_err(const ls_stats_t *s, int k) { (void)k; return s->lua_errors; }
static uint64_t f_mem(const ls_stats_t *s, int k) { (void)k; return s->lua_mem; }
static uint64_t f_wait(const ls_stats_t *s, int k) { (void)k; return s->waiting; }
static uint64_t f_udrop(const ls_stats_t *s, int k) { (void)k; return s->udp_dropped; }
static uint64_t f_tls(const ls_stats_t *s, int k) { return s->tls[k]; }
static uint64_t f_mail(const ls_stats_t *s, int k)
{
    return k == 0 ? s->mail_sent : k == 1 ? s->mail_full : s->mail_received;
}

/* The shared dicts (read without their locks), when there are any. */
static void
metrics_dicts(mbuf_t *b, const ls_conf_t *c)
{
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"luaserv_shared_dict_capacity_bytes", "gauge",
         "A shared dict's declared size."},
        {"luaserv_shared_dict_used_bytes", "gauge",
         "Bytes of a shared dict's blocks in use (expired keys count until "
         "reclaimed)."},
        {"luaserv_shared_dict_free_bytes", "gauge",
         "Bytes of a shared dict's free blocks."},
        {"luaserv_shared_dict_keys", "gauge",
         "Keys in a shared dict (expired ones until reclaimed)."},
        {"luaserv_shared_dict_evictions_total", "counter",
         "Keys that had not expired evicted to make room (forcible)."},
        {"luaserv_shared_dict_lock_recoveries_total", "counter",
         "Times a process died holding a shared dict's lock."},
    };

    if (c == NULL || c->nshared == 0)
        return;
    for (size_t f = 0; f < sizeof(fam) / sizeof(*fam); f++) {
        mb_family(b, fam[f].name, fam[f].type, fam[f].help);
        for (int i = 0; i < c->nshared; i++) {
            ls_shdict_usage_t u;
            uint64_t val[6];
            if (c->shared[i].dict == NULL)
                continue;
            ls_shdict_usage(c->shared[i].dict, &u);
            val[0] = u.capacity;
            val[1] = u.used;
            val[2] = u.free_bytes;
            val[3] = u.keys;
            val[4] = u.evictions;
            val[5] = u.recoveries;
            mb_printf(b, "%s{dict=\"", fam[f].name);
            mb_label(b, c->shared[i].name);
            mb_printf(b, "\"} %llu\n", (unsigned long long)val[f]);
        }
    }
}

size_t
ls_metrics_render(const ls_metrics_view_t *v, char **out)
{
    static const char *const tmo[] = {"header", "body", "send", "idle"};
    static const char *const mail[] = {"sent", "queue_full", "received"};
    static const char *const tls[] = {"full", "resumed", "failed",
                                      "timeout"};
    mbuf_t b = {malloc(16384), 0, 16384, 0};
    struct timespec ts;
    uint64_t now_ms;

    if (b.p == NULL) {
        *out = NULL;
        return 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;

    mb_family(&b, "luaserv_up", "gauge", "1 while the master answers.");
    mb_printf(&b, "luaserv_up 1\n");
    mb_family(&b, "luaserv_uptime_seconds", "gauge",
              "Seconds since the master started.");
    mb_printf(&b, "luaserv_uptime_seconds %.3f\n", ls_now() - v->master.started);
    mb_family(&b, "luaserv_generation", "gauge",
              "The generation serving now (1, then one more per reload).");
    mb_printf(&b, "luaserv_generation %d\n", v->master.generation);
    mb_family(&b, "luaserv_reloads_total", "counter",
              "Reloads carried out (a new generation took over).");
    mb_printf(&b, "luaserv_reloads_total %llu\n", v->master.reloads);
    mb_family(&b, "luaserv_reload_failures_total", "counter",
              "Reloads refused (a broken script) or rolled back.");
    mb_printf(&b, "luaserv_reload_failures_total %llu\n",
              v->master.reload_failures);
    mb_family(&b, "luaserv_worker_restarts_total", "counter",
              "Workers started again after they died.");
    mb_printf(&b, "luaserv_worker_restarts_total %llu\n", v->master.respawns);

    mb_family(&b, "luaserv_worker_up", "gauge",
              "1 for a worker process that serves, 0 while it starts.");
    for (int i = 0; i < v->nworkers; i++) {
        mb_printf(&b, "luaserv_worker_up");
        mb_worker_labels(&b, &v->workers[i], NULL);
        mb_printf(&b, " %d\n", v->workers[i].ready);
    }
    mb_family(&b, "luaserv_worker_figures_age_seconds", "gauge",
              "How old the worker's figures below are (a stuck worker's "
              "grow).");
    for (int i = 0; i < v->nworkers; i++) {
        const ls_stats_t *s = v->workers[i].stats;
        if (s == NULL || s->updated_ms == 0)
            continue;
        mb_printf(&b, "luaserv_worker_figures_age_seconds");
        mb_worker_labels(&b, &v->workers[i], NULL);
        mb_printf(&b, " %.3f\n", now_ms >= s->updated_ms
                                     ? (double)(now_ms - s->updated_ms) / 1000
                                     : 0.0);
    }
    mb_per_worker(&b, v, "luaserv_connections_open", "gauge",
                  "Connections open now.", f_open, NULL, 0, NULL);
    mb_per_worker(&b, v, "luaserv_connections_accepted_total", "counter",
                  "Connections accepted (or made by luaserv.connect).",
                  f_total, NULL, 0, NULL);
    mb_per_worker(&b, v, "luaserv_connections_closed_total", "counter",
                  "Connections that ended.", f_closed, NULL, 0, NULL);
    mb_per_worker(&b, v, "luaserv_messages_received_total", "counter",
                  "Messages (HTTP requests, WebSocket messages, packets) "
                  "handed to onMessage.", f_in, NULL, 0, NULL);
    mb_per_worker(&b, v, "luaserv_messages_sent_total", "counter",
                  "Messages the app sent.", f_out, NULL, 0, NULL);
    mb_per_worker(&b, v, "luaserv_received_bytes_total", "counter",
                  "Bytes read from connections.", f_bin, NULL, 0, NULL);
    mb_per_worker(&b, v, "luaserv_sent_bytes_total", "counter",
                  "Bytes written to connections.", f_bout, NULL, 0, NULL);
    mb_per_worker(&b, v, "luaserv_timeouts_total", "counter",
                  "Connections ended by a timeout, by kind.", f_tmo, tmo, 4,
                  "kind");
    mb_per_worker(&b, v, "luaserv_accept_failures_total", "counter",
                  "accept4() failures for want of descriptors (EMFILE).",
                  f_emfile, NULL, 0, NULL);
    mb_per_worker(&b, v, "luaserv_lua_errors_total", "counter",
                  "Errors raised in the app's callbacks.", f_err, NULL, 0,
                  NULL);
    mb_per_worker(&b, v, "luaserv_lua_memory_bytes", "gauge",
                  "Memory the worker's Lua state holds.", f_mem, NULL, 0,
                  NULL);
    mb_per_worker(&b, v, "luaserv_waiting_callbacks", "gauge",
                  "Callbacks waiting now (luaserv.sleep, cosockets).",
                  f_wait, NULL, 0, NULL);
    mb_per_worker(&b, v, "luaserv_udp_dropped_total", "counter",
                  "udp:// datagrams dropped for being over maxPackageSize.",
                  f_udrop, NULL, 0, NULL);
    mb_per_worker(&b, v, "luaserv_tls_handshakes_total", "counter",
                  "TLS handshakes by outcome: full, resumed (a session "
                  "ticket), failed (bad input, reset), timeout "
                  "(handshakeTimeout).", f_tls, tls, 4, "result");
    mb_per_worker(&b, v, "luaserv_worker_messages_total", "counter",
                  "Messages between workers (luaserv.send, broadcast): "
                  "sent by this worker, refused because the receiver's "
                  "queue was full, received by it.", f_mail, mail, 3,
                  "kind");
    metrics_dicts(&b, v->conf);
    if (ls_task_ready()) {
        unsigned waiting, limit;
        ls_task_depth(&waiting, &limit);
        mb_family(&b, "luaserv_task_queue_depth", "gauge",
                  "Tasks waiting for a task worker (luaserv.task).");
        mb_printf(&b, "luaserv_task_queue_depth %u\n", waiting);
        mb_family(&b, "luaserv_task_queue_limit", "gauge",
                  "taskQueue: tasks that may wait.");
        mb_printf(&b, "luaserv_task_queue_limit %u\n", limit);
    }
    if (b.failed) {
        free(b.p);
        *out = NULL;
        return 0;
    }
    *out = b.p;
    return b.len;
}

/* ---- serving ------------------------------------------------------------ */

static void
client_drop(int i)
{
    close(clients[i].fd);
    clients[i] = clients[--nclients];
}

static void
client_reply(int fd, const char *status, const char *type, const char *body,
             size_t n)
{
    char head[256];
    int h = snprintf(head, sizeof(head), "HTTP/1.0 %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, type, n);
    struct iovec iov[2] = {{head, (size_t)h}, {(void *)body, n}};
    struct msghdr m;

    memset(&m, 0, sizeof(m));
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    /* a scrape is small: one non-blocking send of the whole answer (a
     * client whose buffer takes less gets what fitted, then the close) */
    if (sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN)
        ls_log(LS_LOG_DEBUG, errno, "metrics: send");
}

static void
client_answer(mclient_t *c, void (*view)(ls_metrics_view_t *v))
{
    char *text = NULL;
    size_t n;
    ls_metrics_view_t v;

    if (strncmp(c->buf, "GET /metrics ", 13) != 0 &&
        strncmp(c->buf, "GET /metrics?", 13) != 0) {
        static const char nf[] = "not found: try GET /metrics\n";
        client_reply(c->fd, "404 Not Found", "text/plain", nf, sizeof(nf) - 1);
        return;
    }
    memset(&v, 0, sizeof(v));
    view(&v);
    n = ls_metrics_render(&v, &text);
    if (text == NULL) {
        static const char oom[] = "out of memory\n";
        client_reply(c->fd, "500 Internal Server Error", "text/plain", oom,
                     sizeof(oom) - 1);
        return;
    }
    client_reply(c->fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8",
                 text, n);
    free(text);
}

void
ls_metrics_serve(const struct pollfd *p, int n,
                 void (*view)(ls_metrics_view_t *v))
{
    double now = ls_now();

    if (metrics_fd < 0 || n < 1)
        return;
    /* clients first (the accept below may reorder the array) */
    for (int i = n - 2; i >= 0; i--) {
        mclient_t *c;
        ssize_t r;
        if (i >= nclients || !(p[1 + i].revents) ||
            clients[i].fd != p[1 + i].fd)
            continue;
        c = &clients[i];
        r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len,
                 MSG_DONTWAIT);
        if (r <= 0) {
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            client_drop(i);
            continue;
        }
        c->len += (size_t)r;
        c->buf[c->len] = '\0';
        if (strstr(c->buf, "\r\n\r\n") != NULL ||
            strstr(c->buf, "\n\n") != NULL) {
            client_answer(c, view);
            client_drop(i);
        } else if (c->len >= sizeof(c->buf) - 1) {
            static const char big[] = "request head too large\n";
            client_reply(c->fd, "431 Request Header Fields Too Large",
                         "text/plain", big, sizeof(big) - 1);
            client_drop(i);
        }
    }
    for (int i = nclients - 1; i >= 0; i--)
        if (now - clients[i].since > METRICS_DEADLINE)
            client_drop(i); /* a client that sends nothing */
    if ((p[0].revents & POLLIN) && nclients < METRICS_CLIENTS) {
        int fd = accept4(metrics_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            clients[nclients].fd = fd;
            clients[nclients].since = now;
            clients[nclients].len = 0;
            nclients++;
        }
    }
}
