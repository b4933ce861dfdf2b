/*
 * config.h -- what an app script declares (listeners and settings), and how
 * the validator child hands it to the master: a few text lines over a pipe.
 */
#ifndef LS_CONFIG_H
#define LS_CONFIG_H

#include "core/framing.h"
#include "core/listener.h"
#include "core/luaserv.h"

#include <stdint.h>

typedef struct ls_listen_conf {
    char name[LS_NAME_MAX];
    ls_addr_t addr;
    int count;
    int reuseport;
    int backlog;
    /* Read by the worker from its own Lua state; not serialized. */
    size_t max_package_size;
    size_t max_send_buffer_size;
    size_t max_header_size;    /* http: request line + headers */
    size_t max_body_size;      /* http: request body */
    double idle_timeout;       /* seconds without traffic; 0: none */
    int max_connections;       /* per worker; 0: no limit */
    double connect_timeout;    /* outbound connections */
    double send_timeout;       /* pending output without progress; 0: none */
    double header_timeout;     /* http: until a request head is whole */
    double body_timeout;       /* http: between two reads of a body */
    int defer_accept;          /* TCP_DEFER_ACCEPT: accept once data is in */
    uint64_t max_requests;     /* recycle a worker after that many; 0: no */
    size_t max_memory;         /* recycle a worker above that RSS; 0: no */
    int64_t lua_memory_limit;  /* overrides the setting; -1: not set */
    double callback_timeout;   /* overrides the setting; -1: not set */
    ls_framing_t framing;
    /* TLS (the ssl option): the certificates, loaded by listen() in the
     * worker that serves the listener (NULL elsewhere, and without ssl) */
    struct ls_tls *tls;
    int tls_http;              /* ALPN http/1.1, plain-HTTP answer */
    double handshake_timeout;  /* s; 0: none */
} ls_listen_conf_t;

/* A shared dict (settings.shared): its name and size; the master maps it
 * for a generation (dict), so a worker finds it there after the fork. */
#define LS_SHARED_MAX 32
typedef struct ls_shared_conf {
    char name[LS_NAME_MAX];
    size_t size;
    struct ls_shdict *dict;    /* NULL until the master maps it */
} ls_shared_conf_t;

/* A file a listener's ssl option names (a certificate or a key, sni ones
 * too): the worker serving the listener reads it before it drops
 * privileges (net/tls_pem.h). Only the path travels, never the bytes. */
typedef struct ls_conf_file {
    char listener[LS_NAME_MAX];
    char *path;
} ls_conf_file_t;

typedef struct ls_conf {
    ls_listen_conf_t *listeners;
    int nlisteners;
    ls_conf_file_t *files;     /* the ssl options' files */
    int nfiles;
    char name[LS_NAME_MAX];    /* settings.name */
    double stop_timeout;       /* settings.stopTimeout, seconds */
    double stop_delay;         /* settings.stopDelay: accept on, s */
    char pid_file[4096];
    char log_file[4096];
    char user[64];
    char group[64];
    int log_level;             /* -1: not set */
    size_t lua_memory_limit;   /* settings.luaMemoryLimit, bytes; 0: none */
    double callback_timeout;   /* settings.callbackTimeout, s; 0: none */
    double watchdog_timeout;   /* settings.watchdogTimeout, s; 0: none */
    char metrics[LS_URL_MAX];  /* settings.metrics "host:port"; "": off */
    ls_shared_conf_t shared[LS_SHARED_MAX]; /* settings.shared */
    int nshared;
    int task_workers;          /* settings.taskWorkers; 0: none */
    int task_queue;            /* settings.taskQueue: tasks waiting */
} ls_conf_t;

#define LS_DEFAULT_STOP_TIMEOUT 5.0
#define LS_DEFAULT_BACKLOG 1024
#define LS_DEFAULT_MAX_PACKAGE (10 * 1024 * 1024)
#define LS_DEFAULT_UDP_MAX_PACKAGE 65507 /* the largest over IPv4 */
#define LS_DEFAULT_MAX_SEND_BUFFER (1024 * 1024)
#define LS_DEFAULT_MAX_HEADER (16 * 1024)
#define LS_DEFAULT_CONNECT_TIMEOUT 10.0
#define LS_DEFAULT_SEND_TIMEOUT 60.0
#define LS_DEFAULT_HEADER_TIMEOUT 10.0
#define LS_DEFAULT_BODY_TIMEOUT 30.0
#define LS_DEFAULT_LUA_MEMORY_LIMIT ((size_t)1024 * 1024 * 1024)
#define LS_DEFAULT_CALLBACK_TIMEOUT 10.0
#define LS_DEFAULT_WATCHDOG_TIMEOUT 30.0
#define LS_DEFAULT_TASK_QUEUE 1024

void ls_conf_init(ls_conf_t *c);
void ls_conf_free(ls_conf_t *c);
ls_listen_conf_t *ls_conf_find(ls_conf_t *c, const char *name);
int ls_conf_add_listener(ls_conf_t *c, const ls_listen_conf_t *l, char *err,
                         size_t errlen);
int ls_conf_add_file(ls_conf_t *c, const char *listener, const char *path);
int ls_conf_write(const ls_conf_t *c, int fd);
int ls_conf_read(ls_conf_t *c, char *text, char *err, size_t errlen);

#endif
