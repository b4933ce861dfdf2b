/*
 * worker_harness.c -- see worker_harness.h.
 */
#include "worker_harness.h"

#include "core/log.h"
#include "http/http.h"
#include "http/ws.h"
#include "lua/lua_core.h"
#include "lua/lua_events.h"
#include "lua/lua_proto.h"
#include "lua/vm.h"
#include "net/conn.h"

#include "lua/compat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static ls_worker_t fh_worker;
static unsigned fh_runs;
static int fh_verbose;  /* FUZZ_VERBOSE=1: answers go to stderr */

void
fh_init(const char *app, const char *name)
{
    ls_worker_t *w = &fh_worker;
    char path[4096], err[4096];
    const char *lvl = getenv("FUZZ_LOG_LEVEL");

    /* Logs: crit only by default (a bad request per input otherwise). */
    ls_log_set_level(lvl ? ls_log_level_from_name(lvl) : LS_LOG_CRIT);
    ls_log_set_role("fuzz worker");
    fh_verbose = getenv("FUZZ_VERBOSE") != NULL;
    signal(SIGPIPE, SIG_IGN);
    ls_worker = w;
    w->stop_timeout = 1;
    w->emfile_fd = -1;
    w->base = event_base_new();
    w->rbuf = malloc(LS_READ_SIZE);
    w->stage = malloc(LS_STAGE_SIZE);
    if (w->base == NULL || w->rbuf == NULL || w->stage == NULL) {
        fprintf(stderr, "fuzz: no event loop\n");
        abort();
    }
    snprintf(path, sizeof(path), "%s/%s", LUASERV_FUZZ_APPS, app);
    w->vm = ls_vm_new(LS_VM_WORKER, path, err, sizeof(err));
    if (w->vm == NULL) {
        fprintf(stderr, "fuzz: %s\n", err);
        abort();
    }
    w->vm->worker = w;
    ls_lua_core_install(w->vm);
    /* wired as worker/worker.c wires a worker */
    ls_conn_set_events(&ls_lua_conn_events);
    ls_http_set_events(&ls_lua_http_events);
    ls_ws_init();
    snprintf(w->vm->serve_name, sizeof(w->vm->serve_name), "%s", name);
    if (ls_vm_load_app(w->vm, err, sizeof(err)) < 0 ||
        !ls_vm_serves(w->vm)) {
        fprintf(stderr, "fuzz: cannot load %s: %s\n", path, err);
        abort();
    }
    w->srv.conf = w->vm->serve;
    w->srv.lua_ref = w->vm->serve_ref;
    w->srv.fd = -1;
    ls_lua_proto_attach(&w->srv);
}

/* Read and drop what the server wrote; count it. */
static size_t
fh_drain(int fd)
{
    char buf[65536];
    size_t total = 0;
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (fh_verbose)
            fwrite(buf, 1, (size_t)n, stderr);
        total += (size_t)n;
    }
    return total;
}

static void
fh_turn(int peer, size_t *out)
{
    /* Twice: a resumed connection offers buffered input from the loop. */
    for (int i = 0; i < 2; i++) {
        event_base_loop(fh_worker.base, EVLOOP_NONBLOCK);
        ls_conn_flush_all();
        if (peer >= 0)
            *out += fh_drain(peer);
    }
}

size_t
fh_run(const uint8_t *data, size_t size, uint8_t seed, int eof)
{
    ls_worker_t *w = &fh_worker;
    struct sockaddr_in sin;
    ls_conn_t *c;
    int sv[2];
    size_t off = 0, out = 0;
    uint32_t x = seed * 2654435761u + 1;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) < 0) {
        perror("fuzz: socketpair");
        abort();
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(40000);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c = ls_conn_new(&w->srv, sv[0], (struct sockaddr *)&sin, sizeof(sin));
    if (c == NULL) {
        fprintf(stderr, "fuzz: no connection\n");
        abort();
    }
    ls_conn_start(c);
    ls_conn_flush_all();

    while (off < size) {
        size_t step = size - off;
        ssize_t n;

        if (seed != 0) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            step = 1 + x % 64;
            if (step > size - off)
                step = size - off;
        }
        n = write(sv[1], data + off, step);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            break; /* the server closed its end */
        if (n > 0)
            off += (size_t)n;
        fh_turn(sv[1], &out);
        if (n <= 0 && w->srv.nconns == 0)
            break;
    }
    if (eof)
        shutdown(sv[1], SHUT_WR);
    fh_turn(sv[1], &out);
    close(sv[1]);
    fh_turn(-1, &out);
    /* Whatever still lingers or waits goes now, as at a fast stop. */
    while (w->srv.conns != NULL)
        ls_conn_destroy(w->srv.conns);
    ls_conn_flush_all();
    event_base_loop(w->base, EVLOOP_NONBLOCK);
    if (++fh_runs % 256 == 0)
        lua_gc(w->vm->L, LUA_GCCOLLECT);
    return out;
}
