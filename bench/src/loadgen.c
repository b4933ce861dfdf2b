/*
 * loadgen.c -- a small load generator for luaserv's raw-TCP benchmarks.
 *
 *   loadgen echo  [opts]   N connections, each keeping D messages of S bytes
 *                          in flight against an echo server; counts echoed
 *                          messages and their round-trip latency.
 *   loadgen hold  [opts]   open N idle connections and keep them open.
 *   loadgen bigframe [opts] send one large frame:// message in pieces and
 *                          time until its echo is back.
 *   loadgen monitor [opts] only sample CPU: sleep --warmup, then measure
 *                          the --pids and the cores over --duration (used
 *                          around wrk runs).
 *
 * Options:
 *   --host A (127.0.0.1)  --port P        --conns N (100)   --depth D (16)
 *   --size S (64)         --proto line|frame (line)
 *   --warmup SEC (2)      --duration SEC (8)
 *   --pids P1,P2,...      server processes whose CPU time (utime+stime from
 *                         /proc/PID/stat) is summed over the measured window
 *   --piece B (1024)      --reps R (3)    (bigframe)
 *   --hold-secs SEC (60)  (hold: exit by itself after this long)
 *
 * Output: one line starting with "LOADGEN" of key=value pairs, e.g.
 *   LOADGEN mode=echo secs=8.000 msgs=123 rate=15.4 p50_us=.. p99_us=..
 *           errors=0 server_cpu=0.987 cpu0=0.99 cpu1=0.97
 * server_cpu is CPU seconds per wall second of the listed pids (1.0 = one
 * core); cpu0/cpu1 are how busy each core was (from /proc/stat).
 *
 * Every loop is bounded in time: echo stops at warmup+duration, hold after
 * --hold-secs, bigframe after 60 s per repetition.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- options ---------------------------------------------------------- */

static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static int opt_conns = 100;
static int opt_depth = 16;
static int opt_size = 64;
static int opt_frame = 0;
static double opt_warmup = 2.0;
static double opt_duration = 8.0;
static const char *opt_pids = NULL;
static long opt_piece = 1024;
static int opt_reps = 3;
static double opt_hold_secs = 60.0;

static void
die(const char *msg)
{
    fprintf(stderr, "loadgen: %s\n", msg);
    exit(2);
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- CPU accounting ----------------------------------------------------- */

#define MAX_PIDS 64
static int npids;
static int pids[MAX_PIDS];

static void
parse_pids(void)
{
    const char *p = opt_pids;
    while (p && *p && npids < MAX_PIDS) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        if (v > 0)
            pids[npids++] = (int)v;
        p = *end ? end + 1 : end;
    }
}

/* utime + stime of one process, in clock ticks; -1 if gone. */
static long long
proc_ticks(int pid)
{
    char path[64], buf[1024], *p;
    long long ut = 0, st = 0;
    FILE *f;
    int field;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    if (!fgets(buf, sizeof(buf), f)) {
        fclose(f);
        return -1;
    }
    fclose(f);
    p = strrchr(buf, ')');
    if (!p)
        return -1;
    p += 2;                     /* field 3: state */
    for (field = 3; field < 14 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    if (!p || sscanf(p, "%lld %lld", &ut, &st) != 2)
        return -1;
    return ut + st;
}

static long long
pids_ticks(void)
{
    long long sum = 0;
    for (int i = 0; i < npids; i++) {
        long long t = proc_ticks(pids[i]);
        if (t > 0)
            sum += t;
    }
    return sum;
}

/* busy and total jiffies of cpu0 and cpu1 */
struct cpustat { long long busy[2], total[2]; };

static void
cpu_sample(struct cpustat *cs)
{
    char line[512];
    FILE *f = fopen("/proc/stat", "r");
    memset(cs, 0, sizeof(*cs));
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        int n;
        long long v[10] = {0};
        if (sscanf(line, "cpu%d %lld %lld %lld %lld %lld %lld %lld %lld", &n,
                   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                   &v[7]) >= 5 && n >= 0 && n < 2) {
            long long tot = 0;
            for (int i = 0; i < 8; i++)
                tot += v[i];
            cs->total[n] = tot;
            cs->busy[n] = tot - v[3] - v[4];
        }
    }
    fclose(f);
}

struct window {
    double t0, t1;
    long long ticks0, ticks1;
    long long pt0[MAX_PIDS], pt1[MAX_PIDS];
    struct cpustat c0, c1;
};

static void
window_start(struct window *w)
{
    w->t0 = now_s();
    w->ticks0 = pids_ticks();
    for (int i = 0; i < npids; i++)
        w->pt0[i] = proc_ticks(pids[i]);
    cpu_sample(&w->c0);
}

static void
window_end(struct window *w)
{
    w->t1 = now_s();
    w->ticks1 = pids_ticks();
    for (int i = 0; i < npids; i++)
        w->pt1[i] = proc_ticks(pids[i]);
    cpu_sample(&w->c1);
}

static void
window_print(const struct window *w)
{
    double secs = w->t1 - w->t0;
    double hz = (double)sysconf(_SC_CLK_TCK);
    if (npids > 0 && secs > 0) {
        printf(" server_cpu=%.3f",
               (double)(w->ticks1 - w->ticks0) / hz / secs);
        printf(" pid_cpu=");
        for (int i = 0; i < npids; i++) {
            double share = w->pt0[i] >= 0 && w->pt1[i] >= 0
                ? (double)(w->pt1[i] - w->pt0[i]) / hz / secs : -1;
            printf("%s%d:%.2f", i ? "," : "", pids[i], share);
        }
    }
    for (int i = 0; i < 2; i++) {
        long long dt = w->c1.total[i] - w->c0.total[i];
        if (dt > 0)
            printf(" cpu%d=%.2f", i,
                   (double)(w->c1.busy[i] - w->c0.busy[i]) / (double)dt);
    }
}

/* ---- latency histogram (log-linear, ~1% resolution) -------------------- */

#define SUB_BITS 7
#define SUB (1 << SUB_BITS)
#define NBUCKETS (64 * SUB)
static uint64_t hist[NBUCKETS];
static uint64_t hist_n;

static int
bucket_of(uint64_t v)
{
    if (v < SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - SUB_BITS;
    return (shift + 1) * SUB + (int)((v >> shift) & (SUB - 1));
}

static uint64_t
bucket_value(int b)
{
    if (b < SUB)
        return (uint64_t)b;
    int shift = b / SUB - 1;
    uint64_t m = (uint64_t)(b % SUB) | SUB;
    return (m << shift) + ((1ull << shift) >> 1);
}

static void
hist_add(uint64_t v, uint64_t count)
{
    hist[bucket_of(v)] += count;
    hist_n += count;
}

static double
hist_pct_us(double pct)
{
    uint64_t want = (uint64_t)((double)hist_n * pct / 100.0), seen = 0;
    if (hist_n == 0)
        return 0;
    if (want >= hist_n)
        want = hist_n - 1;
    for (int b = 0; b < NBUCKETS; b++) {
        seen += hist[b];
        if (seen > want)
            return (double)bucket_value(b) / 1000.0;
    }
    return 0;
}

/* ---- sockets ------------------------------------------------------------ */

static struct sockaddr_in srv_addr;

static int
open_conn(int nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
                    (nonblock ? SOCK_NONBLOCK : 0), 0);
    int on = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (connect(fd, (struct sockaddr *)&srv_addr, sizeof(srv_addr)) < 0 &&
        errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void
set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* ---- echo mode ------------------------------------------------------------ */

struct conn {
    int fd;
    int dead;
    long inflight;          /* messages sent (or queued) and not yet back */
    long long unsent;       /* bytes queued but not yet written */
    long long sent_total;   /* bytes written so far */
    long rx_pos;            /* offset inside the message being received */
    int want_out;
    uint64_t *ts;           /* ring of send times, one per message in flight */
    long ts_head, ts_tail;
};

static char *pattern;       /* (depth + 1) messages back to back */
static size_t pattern_len;

static void
build_pattern(void)
{
    size_t s = (size_t)opt_size;
    pattern_len = s * (size_t)(opt_depth + 1);
    pattern = malloc(pattern_len);
    if (!pattern)
        die("out of memory");
    for (size_t i = 0; i < pattern_len; i += s) {
        memset(pattern + i, 'x', s);
        if (opt_frame) {
            uint32_t be = htonl((uint32_t)s);
            memcpy(pattern + i, &be, 4);
        } else {
            pattern[i + s - 1] = '\n';
        }
    }
}

static void
queue_msgs(struct conn *c, long k, uint64_t t)
{
    for (long i = 0; i < k; i++) {
        c->ts[c->ts_tail] = t;
        c->ts_tail = (c->ts_tail + 1) % (opt_depth + 1);
    }
    c->inflight += k;
    c->unsent += (long long)k * opt_size;
}

/* Write what is queued; 0 ok, -1 dead. */
static int
flush_conn(struct conn *c)
{
    while (c->unsent > 0) {
        size_t off = (size_t)(c->sent_total % opt_size);
        size_t n = pattern_len - off;
        if ((long long)n > c->unsent)
            n = (size_t)c->unsent;
        ssize_t w = write(c->fd, pattern + off, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -1;
        }
        c->unsent -= w;
        c->sent_total += w;
    }
    return 0;
}

static int
run_echo(void)
{
    struct conn *conns = calloc((size_t)opt_conns, sizeof(*conns));
    struct epoll_event *evs = calloc((size_t)opt_conns, sizeof(*evs));
    static char rbuf[256 * 1024];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    long long msgs = 0, errors = 0, conn_errors = 0;
    int alive = 0, measuring = 0;
    struct window win;
    double start, t_measure, t_end;

    if (!conns || !evs || ep < 0)
        die("setup failed");
    build_pattern();
    for (int i = 0; i < opt_conns; i++) {
        struct conn *c = &conns[i];
        struct epoll_event ev;
        c->fd = open_conn(0);
        c->ts = calloc((size_t)opt_depth + 1, sizeof(uint64_t));
        if (c->fd < 0) {
            c->dead = 1;
            conn_errors++;
            continue;
        }
        set_nonblock(c->fd);
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        alive++;
    }
    if (alive == 0) {
        printf("LOADGEN mode=echo error=connect_failed errors=%lld\n",
               conn_errors);
        return 1;
    }
    start = now_s();
    t_measure = start + opt_warmup;
    t_end = t_measure + opt_duration;
    for (int i = 0; i < opt_conns; i++) {
        struct conn *c = &conns[i];
        if (c->dead)
            continue;
        queue_msgs(c, opt_depth, now_ns());
        if (flush_conn(c) < 0) {
            c->dead = 1;
            conn_errors++;
        }
    }

    for (;;) {
        double t = now_s();
        if (!measuring && t >= t_measure) {
            measuring = 1;
            msgs = 0;
            memset(hist, 0, sizeof(hist));
            hist_n = 0;
            window_start(&win);
        }
        if (t >= t_end)
            break;
        int n = epoll_wait(ep, evs, opt_conns, 10);
        if (n < 0 && errno != EINTR)
            die("epoll_wait failed");
        uint64_t tnow = n > 0 ? now_ns() : 0;
        for (int e = 0; e < n; e++) {
            struct conn *c = &conns[evs[e].data.u32];
            if (c->dead)
                continue;
            if (evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                ssize_t r = read(c->fd, rbuf, sizeof(rbuf));
                if (r <= 0) {
                    if (r < 0 && (errno == EAGAIN || errno == EINTR))
                        goto out;
                    c->dead = 1;
                    conn_errors++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    continue;
                }
                /* Walk message boundaries, checking each one. */
                long done = 0;
                long pos = c->rx_pos;
                long i = 0;
                while (i < r) {
                    long need = opt_size - pos;
                    if (opt_frame && pos < 4) {
                        /* check the header byte by byte */
                        if (rbuf[i] != pattern[pos]) {
                            errors++;
                            c->dead = 1;
                            break;
                        }
                        pos++;
                        i++;
                        if (pos == opt_size) {
                            pos = 0;
                            done++;
                        }
                        continue;
                    }
                    if (r - i >= need) {
                        i += need;
                        if (!opt_frame && rbuf[i - 1] != '\n') {
                            errors++;
                            c->dead = 1;
                            break;
                        }
                        pos = 0;
                        done++;
                    } else {
                        pos += r - i;
                        i = r;
                    }
                }
                if (c->dead) {
                    conn_errors++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    continue;
                }
                c->rx_pos = pos;
                if (done > c->inflight) {
                    errors++;   /* more came back than was sent */
                    done = c->inflight;
                }
                for (long k = 0; k < done; k++) {
                    uint64_t ts = c->ts[c->ts_head];
                    c->ts_head = (c->ts_head + 1) % (opt_depth + 1);
                    if (measuring)
                        hist_add(tnow - ts, 1);
                }
                c->inflight -= done;
                if (measuring)
                    msgs += done;
                if (done > 0)
                    queue_msgs(c, done, tnow);
            }
        out:
            if (c->dead)
                continue;
            if (flush_conn(c) < 0) {
                c->dead = 1;
                conn_errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                continue;
            }
            int want = c->unsent > 0;
            if (want != c->want_out) {
                struct epoll_event ev;
                ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
                ev.data.u32 = evs[e].data.u32;
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->want_out = want;
            }
        }
    }
    if (!measuring) {
        window_start(&win);
    }
    window_end(&win);
    double secs = win.t1 - win.t0;
    printf("LOADGEN mode=echo proto=%s conns=%d depth=%d size=%d secs=%.3f "
           "msgs=%lld rate=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
           "errors=%lld conn_errors=%lld",
           opt_frame ? "frame" : "line", opt_conns, opt_depth, opt_size, secs,
           msgs, secs > 0 ? (double)msgs / secs : 0.0, hist_pct_us(50),
           hist_pct_us(99), hist_pct_us(99.9), errors, conn_errors);
    window_print(&win);
    printf("\n");
    fflush(stdout);
    for (int i = 0; i < opt_conns; i++)
        if (!conns[i].dead)
            close(conns[i].fd);
    return msgs > 0 ? 0 : 1;
}

/* ---- hold mode ---------------------------------------------------------- */

static volatile sig_atomic_t stop_flag;

static void
on_term(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int
run_hold(void)
{
    int *fds = calloc((size_t)opt_conns, sizeof(int));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event evs[256];
    int opened = 0, connected = 0, failed = 0, pending = 0;
    double deadline = now_s() + opt_hold_secs;
    const int max_pending = 256;

    if (!fds || ep < 0)
        die("setup failed");
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    while ((connected + failed < opt_conns) && now_s() < deadline &&
           !stop_flag) {
        while (pending < max_pending && opened < opt_conns) {
            int fd = open_conn(1);
            struct epoll_event ev;
            if (fd < 0) {
                failed++;
                opened++;
                continue;
            }
            fds[opened] = fd;
            ev.events = EPOLLOUT;
            ev.data.u32 = (uint32_t)opened;
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            opened++;
            pending++;
        }
        int n = epoll_wait(ep, evs, 256, 100);
        for (int e = 0; e < n; e++) {
            int i = (int)evs[e].data.u32, err = 0;
            socklen_t len = sizeof(err);
            getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len);
            epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
            pending--;
            if (err) {
                close(fds[i]);
                fds[i] = -1;
                failed++;
            } else {
                connected++;
            }
        }
    }
    printf("HELD n=%d failed=%d\n", connected, failed);
    fflush(stdout);
    while (!stop_flag && now_s() < deadline)
        usleep(50000);
    for (int i = 0; i < opened; i++)
        if (fds[i] > 0)
            close(fds[i]);
    return connected == opt_conns ? 0 : 1;
}

/* ---- bigframe mode -------------------------------------------------------- */

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int
run_bigframe(void)
{
    size_t total = (size_t)opt_size;
    char *buf = malloc(total);
    static char rbuf[1 << 20];
    double *times = calloc((size_t)opt_reps, sizeof(double));
    long long errors = 0;
    struct window win;
    int fd;

    if (!buf || !times || total < 8 || total > 0xffffffffu)
        die("bad --size");
    for (size_t i = 0; i < total; i++)
        buf[i] = (char)('a' + i % 26);
    uint32_t be = htonl((uint32_t)total);
    memcpy(buf, &be, 4);
    fd = open_conn(0);
    if (fd < 0) {
        printf("LOADGEN mode=bigframe error=connect_failed\n");
        return 1;
    }
    set_nonblock(fd);
    window_start(&win);
    int reps = 0;
    for (int rep = 0; rep < opt_reps; rep++) {
        double t0 = now_s(), limit = t0 + 60.0;
        size_t off = 0, got = 0;
        int ok = 1;
        while (got < total) {
            if (now_s() > limit) {
                ok = 0;
                break;
            }
            if (off < total) {
                size_t n = total - off;
                if ((long)n > opt_piece)
                    n = (size_t)opt_piece;
                ssize_t w = write(fd, buf + off, n);
                if (w > 0) {
                    off += (size_t)w;
                    continue;
                }
                if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    ok = 0;
                    break;
                }
            }
            struct pollfd p = {fd, POLLIN | (off < total ? POLLOUT : 0), 0};
            poll(&p, 1, 100);
            if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = read(fd, rbuf, sizeof(rbuf));
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    ok = 0;
                    break;
                }
                if (r > 0) {
                    /* the echo must be byte for byte what we sent */
                    if (got + (size_t)r > total ||
                        memcmp(rbuf, buf + got, (size_t)r) != 0) {
                        ok = 0;
                        break;
                    }
                    got += (size_t)r;
                }
            }
        }
        if (!ok) {
            errors++;
            break;
        }
        times[reps++] = (now_s() - t0) * 1000.0;
    }
    window_end(&win);
    close(fd);
    if (reps > 0)
        qsort(times, (size_t)reps, sizeof(double), cmp_double);
    printf("LOADGEN mode=bigframe size=%zu piece=%ld reps=%d secs=%.3f "
           "best_ms=%.1f median_ms=%.1f errors=%lld",
           total, opt_piece, reps, win.t1 - win.t0, reps ? times[0] : 0.0,
           reps ? times[reps / 2] : 0.0, errors);
    window_print(&win);
    printf("\n");
    fflush(stdout);
    return errors || reps == 0;
}

/* ---- monitor mode ------------------------------------------------------------ */

static int
run_monitor(void)
{
    struct window win;
    struct timespec ts;

    ts.tv_sec = (time_t)opt_warmup;
    ts.tv_nsec = (long)((opt_warmup - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
    window_start(&win);
    ts.tv_sec = (time_t)opt_duration;
    ts.tv_nsec = (long)((opt_duration - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
    window_end(&win);
    printf("LOADGEN mode=monitor secs=%.3f", win.t1 - win.t0);
    window_print(&win);
    printf("\n");
    fflush(stdout);
    return 0;
}

/* ---- main ------------------------------------------------------------------ */

int
main(int argc, char **argv)
{
    const char *mode;

    if (argc < 2)
        die("usage: loadgen echo|hold|bigframe --port P [options]");
    mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die("option without value");
        i++;
        if (!strcmp(a, "--host"))
            opt_host = v;
        else if (!strcmp(a, "--port"))
            opt_port = atoi(v);
        else if (!strcmp(a, "--conns"))
            opt_conns = atoi(v);
        else if (!strcmp(a, "--depth"))
            opt_depth = atoi(v);
        else if (!strcmp(a, "--size"))
            opt_size = atoi(v);
        else if (!strcmp(a, "--proto"))
            opt_frame = !strcmp(v, "frame");
        else if (!strcmp(a, "--warmup"))
            opt_warmup = atof(v);
        else if (!strcmp(a, "--duration"))
            opt_duration = atof(v);
        else if (!strcmp(a, "--pids"))
            opt_pids = v;
        else if (!strcmp(a, "--piece"))
            opt_piece = atol(v);
        else if (!strcmp(a, "--reps"))
            opt_reps = atoi(v);
        else if (!strcmp(a, "--hold-secs"))
            opt_hold_secs = atof(v);
        else
            die("unknown option");
    }
    parse_pids();
    if (!strcmp(mode, "monitor"))
        return run_monitor();
    if (opt_port <= 0 || opt_conns <= 0 || opt_depth <= 0 ||
        opt_piece <= 0 || opt_reps <= 0)
        die("bad options");
    if (opt_frame && opt_size < 5)
        die("frame messages need --size >= 5");
    if (!opt_frame && opt_size < 1)
        die("bad --size");
    if (opt_duration > 600 || opt_warmup > 600 || opt_hold_secs > 3600)
        die("durations are bounded (600 s, hold 3600 s)");
    memset(&srv_addr, 0, sizeof(srv_addr));
    srv_addr.sin_family = AF_INET;
    srv_addr.sin_port = htons((uint16_t)opt_port);
    if (inet_pton(AF_INET, opt_host, &srv_addr.sin_addr) != 1)
        die("bad --host");
    if ((ntohl(srv_addr.sin_addr.s_addr) >> 24) != 127)
        die("only loopback addresses (127.0.0.0/8)");
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(mode, "echo"))
        return run_echo();
    if (!strcmp(mode, "hold"))
        return run_hold();
    if (!strcmp(mode, "bigframe")) {
        if (opt_size == 64)
            opt_size = 16 << 20;
        return run_bigframe();
    }
    die("unknown mode");
    return 2;
}
