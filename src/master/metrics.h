/*
 * metrics.h -- the master's /metrics endpoint (Prometheus text format).
 */
#ifndef LS_METRICS_H
#define LS_METRICS_H

#include "core/stats.h"

#include <poll.h>
#include <stddef.h>

/* One worker as /metrics shows it. */
typedef struct ls_metrics_worker {
    const char *listener;
    int id, generation, pid;
    int ready;
    const ls_stats_t *stats;   /* NULL: no figures */
} ls_metrics_worker_t;

/* What the master knows besides the workers. */
typedef struct ls_metrics_master {
    unsigned long long reloads, reload_failures, respawns;
    int generation;
    double started;            /* ls_now() at start */
} ls_metrics_master_t;

/* The master fills these in for each scrape. */
typedef struct ls_metrics_view {
    ls_metrics_master_t master;
    const ls_metrics_worker_t *workers;
    int nworkers;
    const struct ls_conf *conf;  /* the serving generation's (its dicts) */
} ls_metrics_view_t;

int ls_metrics_listen(const char *addr, char *err, size_t errlen);
void ls_metrics_close(void);
/* Its descriptors for poll(): returns how many were put at p (<= max). */
int ls_metrics_pollfds(struct pollfd *p, int max);
/* After poll(): serve what is ready; view() is asked once per answer. */
void ls_metrics_serve(const struct pollfd *p, int n,
                      void (*view)(ls_metrics_view_t *v));
/* The text a scrape gets (for the spec helpers too); returns its length,
 * the buffer malloc'd. */
size_t ls_metrics_render(const ls_metrics_view_t *v, char **out);

#endif
