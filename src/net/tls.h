/*
 * tls.h -- TLS on a connection's read/write seam (OpenSSL 3).
 *
 * A listener with the `ssl` option gets an ls_tls_t (its certificates,
 * loaded when the generation starts). An accepted socket first goes
 * through the handshake here, outside the connection layer; only once it
 * is done does it become an ls_conn_t (onConnect), whose reads and writes
 * then go through ls_tls_read / ls_tls_write (its c->io, net/conn.h)
 * instead of read(2) and write(2). A connection without TLS never enters
 * this file.
 */
#ifndef LS_TLS_H
#define LS_TLS_H

#include "net/loop.h"

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct ls_conn;
struct evbuffer;

#define LS_TLS_SNI_MAX 64
#define LS_DEFAULT_HANDSHAKE_TIMEOUT 10.0

/* What the app declared; the strings are the caller's, read only by
 * ls_tls_new. */
typedef struct ls_tls_conf {
    const char *cert, *key;   /* PEM files: the chain, the private key */
    const char *protocols;    /* "TLSv1.2 TLSv1.3" (the default if NULL) */
    const char *ciphers;      /* OpenSSL cipher list, TLS <= 1.2 */
    int alpn_http;            /* answer ALPN with http/1.1 */
    int nsni;
    struct {
        const char *host;     /* "example.com" or "*.example.com" */
        const char *cert, *key;
    } sni[LS_TLS_SNI_MAX];
} ls_tls_conf_t;

typedef struct ls_tls ls_tls_t;

/* Handshake figures of this worker (metrics). */
typedef struct ls_tls_stats {
    uint64_t handshakes;      /* completed */
    uint64_t failed;          /* bad input, reset, unknown protocol ... */
    uint64_t timeouts;        /* handshakeTimeout */
    uint64_t resumed;         /* completed by resuming a session */
} ls_tls_stats_t;

extern ls_tls_stats_t ls_tls_stats;

/* Master, before the first fork: the secret the session ticket keys of
 * every worker derive from. */
void ls_tls_init(void);

/* Load the certificates and keys: NULL with err naming the file and the
 * reason. Never puts key material into err. */
ls_tls_t *ls_tls_new(const ls_tls_conf_t *conf, char *err, size_t errlen);
void ls_tls_free(ls_tls_t *t);

/* Worker: an accepted socket of a TLS listener (srv->conf.tls). */
void ls_tls_accept(ls_server_t *srv, int fd, const struct sockaddr *sa,
                   socklen_t salen);
size_t ls_tls_handshakes(void);   /* in progress */
void ls_tls_drop_all(void);       /* a fast stop: close them */

/* A connection's seam; the same outcomes as read(2) and write(2):
 * > 0 bytes; 0 (read) the peer finished; -1 with errno (EAGAIN: not now,
 * ECONNRESET: a fatal TLS error, already logged). */
ssize_t ls_tls_read(struct ls_conn *c, char *p, size_t n);
ssize_t ls_tls_write(struct ls_conn *c, const char *p, size_t n);
/* One record's worth from the head of b, drained by what was written. */
int ls_tls_write_buffer(struct ls_conn *c, struct evbuffer *b);
/* Decrypted or raw input that OpenSSL holds (epoll will not tell). */
int ls_tls_pending(const struct ls_conn *c);
/* close_notify (once; not after a fatal error). */
void ls_tls_shutdown(struct ls_conn *c);
void ls_tls_release(struct ls_conn *c);

/*
 * Client side, for cosockets (lua/lua_socket.c): sock:sslhandshake. The
 * system's CA store, and the sslTrustedCertificate setting's file.
 * A session box holds the newest session the server gave a connection
 * (TLS 1.3 tickets come after the handshake), shared by refcount between
 * the connection and the app's session object.
 */
struct ssl_st;
typedef struct ls_tls_session ls_tls_session_t;

int ls_tls_client_trust(const char *cafile, char *err, size_t errlen);
struct ssl_st *ls_tls_client_new(int fd, const char *server_name, int verify,
                                 ls_tls_session_t *reuse,
                                 ls_tls_session_t **box, char *err,
                                 size_t errlen);
/* 1 done; 0 wants to read; 2 wants to write; -1 failed (err). */
int ls_tls_client_step(struct ssl_st *ssl, char *err, size_t errlen);
ssize_t ls_tls_sread(struct ssl_st *ssl, char *p, size_t n);
ssize_t ls_tls_swrite(struct ssl_st *ssl, const char *p, size_t n);
/* close_notify if it may, then free (and the connection's session box). */
void ls_tls_client_close(struct ssl_st *ssl);
ls_tls_session_t *ls_tls_client_session(struct ssl_st *ssl); /* its box */
ls_tls_session_t *ls_tls_session_ref(ls_tls_session_t *b);
void ls_tls_session_unref(ls_tls_session_t *b);

#endif
