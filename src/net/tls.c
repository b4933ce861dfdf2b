/*
 * tls.c -- TLS for listeners with the `ssl` option, with OpenSSL 3 on the
 * socket itself (a socket BIO, read-ahead on): no bufferevent, no memory
 * BIO copies.
 *
 * Contexts: one SSL_CTX for the default certificate and one per `sni`
 * host, all with the same protocols, ciphers, ALPN and ticket keys; the
 * servername callback switches a handshake to its host's context.
 *
 * Session resumption uses tickets only (no per-worker session cache): the
 * ticket keys derive from a secret the master draws once, before it forks
 * anything, and from the hour, so every worker of every generation issues
 * and accepts the same tickets; a ticket of the previous hour is still
 * taken (and renewed). A new master starts afresh.
 *
 * Handshakes: an accepted socket waits here (its own event, a deadline of
 * handshakeTimeout) until SSL_do_handshake is done, then becomes a
 * connection; a client that sends garbage, plain HTTP, half a handshake
 * or nothing is closed, counted (ls_tls_stats) and logged at most a few
 * times a second.
 */
#include "net/tls.h"
#include "core/log.h"
#include "net/conn.h"
#include "net/tls_pem.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define TLS_RECORD 16384        /* bytes per SSL_write: one record */
#define TLS_TICKET_PERIOD 3600  /* s a ticket key is issued for */
#define TLS_LEAN_AFTER 1.0      /* s quiet before a conn's buffers go */

struct ls_tls {
    SSL_CTX *ctx;               /* the default certificate */
    int nsni;
    struct {
        char host[256];
        SSL_CTX *ctx;
    } sni[];
};

ls_tls_stats_t ls_tls_stats;

static unsigned char tls_secret[32];
static int tls_secret_set;

void
ls_tls_init(void)
{
    size_t got = 0;

    while (got < sizeof(tls_secret)) {
        ssize_t n = getrandom(tls_secret + got, sizeof(tls_secret) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* each worker draws its own: no sharing */
        got += (size_t)n;
    }
    tls_secret_set = 1;
}

/* The connection's transport once the handshake is done (net/conn.h). */
static const ls_conn_io_t tls_conn_io = {
    ls_tls_read, ls_tls_write, ls_tls_write_buffer, ls_tls_pending,
    ls_tls_shutdown, ls_tls_release,
};

/* ---- session tickets ------------------------------------------------ */

typedef struct tls_ticket_key {
    uint64_t period;
    int ok;
    unsigned char name[16], aes[32], hmac[32];
} tls_ticket_key_t;

static int
tls_derive(const char *label, uint64_t period, unsigned char *out,
           size_t outlen)
{
    unsigned char msg[64], md[EVP_MAX_MD_SIZE];
    size_t mdlen = 0, ll = strlen(label);

    memcpy(msg, label, ll);
    memcpy(msg + ll, &period, sizeof(period));
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, tls_secret,
                  sizeof(tls_secret), msg, ll + sizeof(period), md,
                  sizeof(md), &mdlen) == NULL || mdlen < outlen)
        return -1;
    memcpy(out, md, outlen);
    return 0;
}

/* The keys of a period, derived once and kept (two periods in use). */
static const tls_ticket_key_t *
tls_ticket_key(uint64_t period)
{
    static tls_ticket_key_t keys[2];
    tls_ticket_key_t *k = &keys[period & 1];

    if (!tls_secret_set)
        ls_tls_init();
    if (k->ok && k->period == period)
        return k;
    k->ok = tls_derive("luaserv ticket name", period, k->name, 16) == 0 &&
            tls_derive("luaserv ticket aes", period, k->aes, 32) == 0 &&
            tls_derive("luaserv ticket hmac", period, k->hmac, 32) == 0;
    k->period = period;
    return k->ok ? k : NULL;
}

static int
tls_ticket_hmac(EVP_MAC_CTX *hctx, const tls_ticket_key_t *k)
{
    OSSL_PARAM params[3];

    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
                                                  (void *)k->hmac, 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, params);
}

/* OpenSSL's ticket key callback: 1 use, 2 use and renew, 0 unknown key
 * (a full handshake), -1 failure. */
static int
tls_on_ticket(SSL *s, unsigned char name[16], unsigned char *iv,
              EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    uint64_t period = (uint64_t)time(NULL) / TLS_TICKET_PERIOD;
    const tls_ticket_key_t *k;
    (void)s;

    if (enc) {
        if ((k = tls_ticket_key(period)) == NULL || RAND_bytes(iv, 16) <= 0)
            return -1;
        memcpy(name, k->name, 16);
        if (!EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) ||
            !tls_ticket_hmac(hctx, k))
            return -1;
        return 1;
    }
    for (uint64_t i = 0; i < 2; i++) {
        k = tls_ticket_key(period - i);
        if (k == NULL || memcmp(name, k->name, 16) != 0)
            continue;
        if (!tls_ticket_hmac(hctx, k) ||
            !EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv))
            return -1;
        return i == 0 ? 1 : 2;
    }
    return 0;
}

/* ---- contexts ------------------------------------------------------- */

/* The reason of the last OpenSSL error, or dflt. */
static const char *
tls_reason(const char *dflt)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : dflt;
}

static int
tls_no_password(char *buf, int size, int rw, void *u)
{
    (void)buf;
    (void)size;
    (void)rw;
    (void)u;
    return -1; /* an encrypted key would otherwise prompt on the tty */
}

static int
tls_on_alpn(SSL *s, const unsigned char **out, unsigned char *outlen,
            const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char http11[] = "\x08http/1.1";
    (void)s;
    (void)arg;

    if (SSL_select_next_proto((unsigned char **)out, outlen, http11,
                              sizeof(http11) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no common protocol: go on without */
    return SSL_TLSEXT_ERR_OK;
}

static int
tls_host_match(const char *pattern, const char *name)
{
    if (strcasecmp(pattern, name) == 0)
        return 1;
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(name, '.');
        return dot != NULL && dot != name &&
               strcasecmp(pattern + 1, dot) == 0;
    }
    return 0;
}

static int
tls_on_servername(SSL *s, int *alert, void *arg)
{
    ls_tls_t *t = arg;
    const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    (void)alert;

    if (name == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    for (int pass = 0; pass < 2; pass++) /* exact names before wildcards */
        for (int i = 0; i < t->nsni; i++)
            if ((t->sni[i].host[0] == '*') == pass &&
                tls_host_match(t->sni[i].host, name)) {
                SSL_set_SSL_CTX(s, t->sni[i].ctx);
                return SSL_TLSEXT_ERR_OK;
            }
    return SSL_TLSEXT_ERR_NOACK; /* the default certificate */
}

static int
tls_version(const char *tok, size_t n)
{
    static const struct {
        const char *name;
        int v;
    } vs[] = {{"TLSv1", TLS1_VERSION}, {"TLSv1.1", TLS1_1_VERSION},
              {"TLSv1.2", TLS1_2_VERSION}, {"TLSv1.3", TLS1_3_VERSION}};

    for (size_t i = 0; i < sizeof(vs) / sizeof(*vs); i++)
        if (strlen(vs[i].name) == n && strncmp(vs[i].name, tok, n) == 0)
            return vs[i].v;
    return 0;
}

/* "TLSv1.2 TLSv1.3" -> the lowest and highest version named. */
static int
tls_protocols(const char *s, int *minv, int *maxv, char *err, size_t errlen)
{
    *minv = *maxv = 0;
    while (*s) {
        size_t n;
        int v;
        s += strspn(s, " ,:");
        n = strcspn(s, " ,:");
        if (n == 0)
            break;
        if ((v = tls_version(s, n)) == 0) {
            snprintf(err, errlen, "bad ssl.protocols: unknown protocol "
                     "\"%.*s\" (known: TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)",
                     (int)(n > 32 ? 32 : n), s);
            return -1;
        }
        if (*minv == 0 || v < *minv)
            *minv = v;
        if (v > *maxv)
            *maxv = v;
        s += n;
    }
    if (*minv == 0) {
        snprintf(err, errlen, "bad ssl.protocols: no protocol named "
                 "(e.g. \"TLSv1.2 TLSv1.3\")");
        return -1;
    }
    return 0;
}

/* The certificate chain in pem: the first one is the server's, the rest
 * its chain, as SSL_CTX_use_certificate_chain_file takes them. */
static int
tls_use_chain(SSL_CTX *ctx, const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = NULL;
    unsigned long e;
    int ok = 0;

    if (bio == NULL)
        return 0;
    if ((x = PEM_read_bio_X509_AUX(bio, NULL, tls_no_password, NULL)) ==
            NULL ||
        !SSL_CTX_use_certificate(ctx, x) || ERR_peek_error() != 0)
        goto done;
    SSL_CTX_clear_chain_certs(ctx);
    for (;;) {
        X509 *ca = PEM_read_bio_X509(bio, NULL, tls_no_password, NULL);
        if (ca == NULL)
            break;
        if (!SSL_CTX_add0_chain_cert(ctx, ca)) {
            X509_free(ca);
            goto done;
        }
    }
    e = ERR_peek_last_error(); /* the end of the file, or garbage */
    if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
        ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        ok = 1;
    }

done:
    X509_free(x);
    BIO_free(bio);
    return ok;
}

/* The private key in pem (none encrypted: no prompt), or NULL. */
static EVP_PKEY *
tls_read_key(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *k;

    if (bio == NULL)
        return NULL;
    k = PEM_read_bio_PrivateKey(bio, NULL, tls_no_password, NULL);
    BIO_free(bio);
    return k;
}

/* The certificate (chain) and the key, from the bytes tls_pem.c read
 * (while privileged, in a worker) and wiped here once used. */
static int
tls_ctx_use_files(SSL_CTX *ctx, const char *cert, const char *key,
                  char *err, size_t errlen)
{
    char *cpem = NULL, *kpem = NULL, why[256];
    size_t clen = 0, klen = 0;
    EVP_PKEY *pkey = NULL;
    int r = -1;

    if (ls_tls_pem_read(cert, &cpem, &clen, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "ssl.cert \"%s\": %s", cert, why);
        goto done;
    }
    if (ls_tls_pem_read(key, &kpem, &klen, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "ssl.key \"%s\": %s", key, why);
        goto done;
    }
    ERR_clear_error();
    if (!tls_use_chain(ctx, cpem, clen)) {
        snprintf(err, errlen, "ssl.cert \"%s\": not a usable PEM "
                 "certificate: %s", cert, tls_reason("unknown error"));
        goto done;
    }
    ERR_clear_error();
    if ((pkey = tls_read_key(kpem, klen)) == NULL) {
        snprintf(err, errlen, "ssl.key \"%s\": not a usable PEM private "
                 "key (an encrypted one is not supported): %s", key,
                 tls_reason("unknown error"));
        goto done;
    }
    ERR_clear_error();
    if (!SSL_CTX_use_PrivateKey(ctx, pkey)) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(err, errlen, "ssl.key \"%s\" does not match ssl.cert "
                     "\"%s\"", key, cert);
        else
            snprintf(err, errlen, "ssl.key \"%s\": cannot use it: %s", key,
                     tls_reason("unknown error"));
        goto done;
    }
    if (!SSL_CTX_check_private_key(ctx)) {
        snprintf(err, errlen, "ssl.key \"%s\" does not match ssl.cert "
                 "\"%s\"", key, cert);
        goto done;
    }
    r = 0;

done:
    EVP_PKEY_free(pkey); /* the context has its own reference */
    ls_tls_pem_free(cpem, clen);
    ls_tls_pem_free(kpem, klen);
    ERR_clear_error();
    return r;
}

static SSL_CTX *
tls_ctx_new(const ls_tls_conf_t *conf, const char *cert, const char *key,
            int minv, int maxv, char *err, size_t errlen)
{
    static const unsigned char sid[] = "luaserv";
    SSL_CTX *ctx;

    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new() failed: %s",
                 tls_reason("out of memory"));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, minv);
    SSL_CTX_set_max_proto_version(ctx, maxv);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_passwd_cb(ctx, tls_no_password);
    if (conf->ciphers != NULL &&
        !SSL_CTX_set_cipher_list(ctx, conf->ciphers)) {
        snprintf(err, errlen, "bad ssl.ciphers \"%.200s\": %s", conf->ciphers,
                 tls_reason("no cipher matches"));
        goto fail;
    }
    if (tls_ctx_use_files(ctx, cert, key, err, errlen) < 0)
        goto fail;
    /* tickets only: a per-worker session cache would rarely be hit */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    SSL_CTX_set_timeout(ctx, TLS_TICKET_PERIOD);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_on_ticket);
    if (conf->alpn_http)
        SSL_CTX_set_alpn_select_cb(ctx, tls_on_alpn, NULL);
    ERR_clear_error();
    return ctx;

fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

ls_tls_t *
ls_tls_new(const ls_tls_conf_t *conf, char *err, size_t errlen)
{
    ls_tls_t *t;
    int minv, maxv;

    if (tls_protocols(conf->protocols ? conf->protocols : "TLSv1.2 TLSv1.3",
                      &minv, &maxv, err, errlen) < 0)
        return NULL;
    t = calloc(1, sizeof(*t) + sizeof(t->sni[0]) * (size_t)conf->nsni);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->ctx = tls_ctx_new(conf, conf->cert, conf->key, minv, maxv, err,
                         errlen);
    if (t->ctx == NULL)
        goto fail;
    for (int i = 0; i < conf->nsni; i++) {
        char e[LS_ERRLEN];
        SSL_CTX *ctx = tls_ctx_new(conf, conf->sni[i].cert, conf->sni[i].key,
                                   minv, maxv, e, sizeof(e));
        if (ctx == NULL) {
            snprintf(err, errlen, "ssl.sni[\"%s\"]: %s", conf->sni[i].host, e);
            goto fail;
        }
        snprintf(t->sni[i].host, sizeof(t->sni[i].host), "%s",
                 conf->sni[i].host);
        t->sni[i].ctx = ctx;
        t->nsni = i + 1;
    }
    if (t->nsni > 0) {
        SSL_CTX_set_tlsext_servername_callback(t->ctx, tls_on_servername);
        SSL_CTX_set_tlsext_servername_arg(t->ctx, t);
    }
    return t;

fail:
    ls_tls_free(t);
    return NULL;
}

void
ls_tls_free(ls_tls_t *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < t->nsni; i++)
        SSL_CTX_free(t->sni[i].ctx);
    SSL_CTX_free(t->ctx);
    free(t);
}

/* ---- handshakes ----------------------------------------------------- */

typedef struct tls_hs {
    struct tls_hs *next, *prev;
    ls_server_t *srv;
    SSL *ssl;
    int fd;
    struct event ev;
    double deadline;           /* 0: no handshakeTimeout */
    socklen_t salen;
    struct sockaddr_storage sa;
} tls_hs_t;

static tls_hs_t *hs_list;
static size_t hs_count;

size_t
ls_tls_handshakes(void)
{
    return hs_count;
}

static void
tls_hs_free(tls_hs_t *hs, int close_fd)
{
    event_del(&hs->ev);
    if (hs->prev)
        hs->prev->next = hs->next;
    else
        hs_list = hs->next;
    if (hs->next)
        hs->next->prev = hs->prev;
    hs_count--;
    if (close_fd) {
        SSL_free(hs->ssl);
        close(hs->fd);
    }
    free(hs);
}

static void
tls_peer(const tls_hs_t *hs, char *buf, size_t len)
{
    ls_conn_t tmp; /* only for ls_conn_peer's formatting */
    char ip[64];
    int port;

    memset(&tmp.peer, 0, sizeof(tmp.peer));
    memcpy(&tmp.peer, &hs->sa,
           hs->salen < sizeof(tmp.peer) ? hs->salen : sizeof(tmp.peer));
    if (ls_conn_peer(&tmp, ip, sizeof(ip), &port) < 0 || !ip[0])
        snprintf(buf, len, "unix");
    else
        snprintf(buf, len, "%s:%d", ip, port);
}

/* A plain HTTP request on an https:// port: say so, in plain HTTP, as
 * nginx does; what else the client sent is read away so that the close
 * is not a reset that destroys the answer. Best effort, never waits. */
static void
tls_hs_plain_http(tls_hs_t *hs)
{
    static const char reply[] =
        "HTTP/1.1 400 Bad Request\r\n"
        "Content-Type: text/plain\r\n"
        "Content-Length: 47\r\n"
        "Connection: close\r\n\r\n"
        "The plain HTTP request was sent to HTTPS port\r\n";
    char junk[4096];

    if (send(hs->fd, reply, sizeof(reply) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) <
        0)
        return;
    shutdown(hs->fd, SHUT_WR);
    for (int i = 0; i < 16; i++)
        if (recv(hs->fd, junk, sizeof(junk), MSG_DONTWAIT) <= 0)
            break;
}

static void
tls_hs_fail(tls_hs_t *hs, const char *why, int timeout)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("TLS handshake failures", 0);
    char peer[96];

    if (timeout)
        ls_tls_stats.timeouts++;
    else
        ls_tls_stats.failed++;
    tls_peer(hs, peer, sizeof(peer));
    ls_log_limited(&lim, LS_LOG_INFO, 0, "TLS handshake with %s failed: %s; "
                   "closing", peer, why);
    tls_hs_free(hs, 1);
    if (ls_worker->conn_closed)
        ls_worker->conn_closed(ls_worker);
}

static void tls_hs_on_event(evutil_socket_t fd, short what, void *arg);

/*
 * OpenSSL keeps a read and a write buffer, some 34 KiB, per connection.
 * SSL_MODE_RELEASE_BUFFERS (nginx's choice) frees and allocates them
 * around every record: 4% of a worker's instructions under W10, keep-alive
 * hello. Instead they stay while a connection is busy, and a sweep once a
 * second gives them back for the connections quiet for TLS_LEAN_AFTER, so
 * idle ones cost what they did. The server's list is ordered by activity:
 * the sweep passes the busy ones at its head and stops at the first one an
 * earlier sweep made lean (the older ones all are, or are busy again and
 * nearer the head).
 */
static struct event lean_ev;
static int lean_on;

static void
tls_on_lean(evutil_socket_t fd, short what, void *arg)
{
    ls_server_t *srv = arg;
    double limit = ls_loop_time() - TLS_LEAN_AFTER;
    (void)fd;
    (void)what;

    for (ls_conn_t *c = srv->conns; c != NULL; c = c->next) {
        if (c->active > limit || c->tls == NULL)
            continue;
        if (c->flags & LS_CONN_TLS_LEAN)
            break;
        /* not while OpenSSL holds input (a record read ahead) or output
         * (a record that did not leave: ours waits in c->out then) */
        if (SSL_has_pending(c->tls) ||
            (c->out != NULL && evbuffer_get_length(c->out) > 0))
            continue;
        if (SSL_free_buffers(c->tls))
            c->flags |= LS_CONN_TLS_LEAN;
    }
}

static void
tls_lean_start(ls_server_t *srv)
{
    struct timeval tv = {1, 0};

    if (lean_on)
        return;
    event_assign(&lean_ev, ls_worker->base, -1, EV_PERSIST, tls_on_lean, srv);
    event_add(&lean_ev, &tv);
    lean_on = 1;
}

/* The handshake is done: it becomes a connection (onConnect). */
static void
tls_hs_done(tls_hs_t *hs)
{
    ls_server_t *srv = hs->srv;
    SSL *ssl = hs->ssl;
    int fd = hs->fd;
    ls_conn_t *c;

    c = ls_conn_new(srv, fd, (struct sockaddr *)&hs->sa, hs->salen);
    if (c == NULL) {
        ls_log(LS_LOG_ERROR, ENOMEM, "cannot allocate a connection");
        tls_hs_free(hs, 1);
        return;
    }
    tls_hs_free(hs, 0);
    ls_tls_stats.handshakes++;
    if (SSL_session_reused(ssl))
        ls_tls_stats.resumed++;
    c->tls = ssl;
    c->io = &tls_conn_io;
    tls_lean_start(srv);
    ls_conn_incref(c);
    ls_conn_start(c);
    /* a graceful stop began meanwhile: as ls_server_drain_all does */
    if (!(c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED)) &&
        ls_worker->stopping) {
        if (c->proto->drain)
            c->proto->drain(c);
        else
            ls_conn_report_drain(c);
    }
    if ((c->flags & (LS_CONN_READING | LS_CONN_CLOSED)) == LS_CONN_READING &&
        SSL_has_pending(ssl))
        event_active(&c->rev, EV_READ, 0); /* read along with the handshake */
    ls_conn_decref(c);
}

static void
tls_hs_step(tls_hs_t *hs)
{
    char why[256];
    unsigned long e;
    int r, se;

    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(hs->ssl);
    if (r == 1) {
        tls_hs_done(hs);
        return;
    }
    se = SSL_get_error(hs->ssl, r);
    if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
        struct timeval tv, *tvp = NULL;
        if (hs->deadline > 0) {
            double left = hs->deadline - ls_loop_time();
            if (left <= 0) {
                tls_hs_fail(hs, "handshakeTimeout", 1);
                return;
            }
            tv.tv_sec = (time_t)left;
            tv.tv_usec = (suseconds_t)((left - (double)tv.tv_sec) * 1e6);
            tvp = &tv;
        }
        event_assign(&hs->ev, ls_worker->base, hs->fd,
                     se == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE,
                     tls_hs_on_event, hs);
        event_add(&hs->ev, tvp);
        return;
    }
    e = ERR_peek_error();
    if (se == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST) {
        snprintf(why, sizeof(why), "a plain HTTP request");
        if (hs->srv->conf.tls_http)
            tls_hs_plain_http(hs);
    } else if (se == SSL_ERROR_SSL) {
        snprintf(why, sizeof(why), "%s", tls_reason("protocol error"));
    } else if (se == SSL_ERROR_SYSCALL && errno != 0) {
        snprintf(why, sizeof(why), "%s", strerror(errno));
    } else {
        snprintf(why, sizeof(why), "the peer closed the connection");
    }
    ERR_clear_error();
    tls_hs_fail(hs, why, 0);
}

static void
tls_hs_on_event(evutil_socket_t fd, short what, void *arg)
{
    tls_hs_t *hs = arg;
    (void)fd;

    if (what & EV_TIMEOUT)
        tls_hs_fail(hs, "handshakeTimeout", 1);
    else
        tls_hs_step(hs);
    ls_conn_flush_all();
}

void
ls_tls_accept(ls_server_t *srv, int fd, const struct sockaddr *sa,
              socklen_t salen)
{
    tls_hs_t *hs = calloc(1, sizeof(*hs));

    if (hs == NULL || (hs->ssl = SSL_new(srv->conf.tls->ctx)) == NULL ||
        !SSL_set_fd(hs->ssl, fd)) {
        ls_log(LS_LOG_ERROR, ENOMEM, "cannot start a TLS handshake");
        if (hs != NULL)
            SSL_free(hs->ssl);
        free(hs);
        close(fd);
        ERR_clear_error();
        return;
    }
    SSL_set_accept_state(hs->ssl);
    hs->srv = srv;
    hs->fd = fd;
    if (salen > sizeof(hs->sa))
        salen = sizeof(hs->sa);
    memcpy(&hs->sa, sa, salen);
    hs->salen = salen;
    if (srv->conf.handshake_timeout > 0)
        hs->deadline = ls_loop_time() + srv->conf.handshake_timeout;
    event_assign(&hs->ev, ls_worker->base, fd, EV_READ, tls_hs_on_event, hs);
    hs->next = hs_list;
    if (hs_list)
        hs_list->prev = hs;
    hs_list = hs;
    hs_count++;
    if (srv->conf.defer_accept) {
        tls_hs_step(hs); /* the ClientHello is in */
    } else {
        struct timeval tv;
        double t = srv->conf.handshake_timeout;
        tv.tv_sec = (time_t)t;
        tv.tv_usec = (suseconds_t)((t - (double)tv.tv_sec) * 1e6);
        event_add(&hs->ev, t > 0 ? &tv : NULL);
    }
}

void
ls_tls_drop_all(void)
{
    while (hs_list != NULL)
        tls_hs_free(hs_list, 1);
    if (lean_on)
        event_del(&lean_ev);
    lean_on = 0;
}

/* ---- the connection's seam ------------------------------------------ */

/* A fatal error on an established connection: no close_notify after it.
 * who: "conn 12", "cosocket 10.0.0.1:443". */
static void
tls_fatal(SSL *ssl, const char *who, const char *what)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("TLS errors", 0);

    ls_log_limited(&lim, LS_LOG_INFO, 0, "%s: TLS %s failed: %s; closing",
                   who, what, tls_reason("protocol error"));
    SSL_set_quiet_shutdown(ssl, 1);
    ERR_clear_error();
    errno = ECONNRESET;
}

static const char *
tls_conn_name(const ls_conn_t *c, char *buf, size_t len)
{
    snprintf(buf, len, "conn %llu", (unsigned long long)c->id);
    return buf;
}

/* SSL_get_error is only right with an empty error queue, which every
 * failure path here leaves empty. So the queue is looked at, and cleared
 * only when something else left it dirty: ERR_clear_error walks all its
 * slots, some 800 instructions, twice per request on a keep-alive
 * connection (7% of a worker's user time under W10). */
static void
tls_clean_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* read(2)'s outcomes (see tls.h); fatal: set on a TLS error (then -1,
 * ECONNRESET, the caller logs). */
static ssize_t
tls_read(SSL *ssl, char *p, size_t n, int *fatal)
{
    size_t got = 0, r;

    for (;;) {
        int se;
        tls_clean_errors();
        errno = 0;
        if (SSL_read_ex(ssl, p + got, n - got, &r)) {
            got += r;
            if (got == n || !SSL_has_pending(ssl))
                return (ssize_t)got;
            continue;
        }
        se = SSL_get_error(ssl, 0);
        if (got > 0) { /* what stopped us comes again next time */
            ERR_clear_error();
            return (ssize_t)got;
        }
        switch (se) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            errno = EAGAIN;
            return -1;
        case SSL_ERROR_ZERO_RETURN: /* close_notify */
            return 0;
        case SSL_ERROR_SYSCALL:
            ERR_clear_error();
            SSL_set_quiet_shutdown(ssl, 1);
            if (errno == 0)
                return 0; /* EOF without close_notify */
            return -1;
        default:
            *fatal = 1;
            errno = ECONNRESET;
            return -1;
        }
    }
}

ssize_t
ls_tls_read(ls_conn_t *c, char *p, size_t n)
{
    unsigned lean = c->flags & LS_CONN_TLS_LEAN;
    int fatal = 0;
    ssize_t r;
    char who[32];

    c->flags &= ~LS_CONN_TLS_LEAN; /* OpenSSL takes a buffer again */
    r = tls_read(c->tls, p, n, &fatal);
    if (lean && r < 0 && errno == EAGAIN && !SSL_has_pending(c->tls) &&
        SSL_free_buffers(c->tls)) {
        /* woken for nothing: lean still, as the sweep expects */
        c->flags |= LS_CONN_TLS_LEAN;
        errno = EAGAIN;
    }
    if (fatal)
        tls_fatal(c->tls, tls_conn_name(c, who, sizeof(who)), "read");
    return r;
}

/* write(2)'s outcomes; fatal as for tls_read (then -1, EPIPE). */
static ssize_t
tls_write(SSL *ssl, const char *p, size_t n, int *fatal)
{
    size_t done = 0, w;

    while (done < n) {
        size_t k = n - done > TLS_RECORD ? TLS_RECORD : n - done;
        int se;
        tls_clean_errors();
        errno = 0;
        if (SSL_write_ex(ssl, p + done, k, &w)) {
            done += w;
            continue;
        }
        /* a record that did not leave is retried with at least as many
         * bytes: the caller keeps them at the head of its output */
        if (done > 0) {
            ERR_clear_error();
            return (ssize_t)done;
        }
        se = SSL_get_error(ssl, 0);
        if (se == SSL_ERROR_WANT_WRITE || se == SSL_ERROR_WANT_READ) {
            errno = EAGAIN;
            return -1;
        }
        if (se == SSL_ERROR_SYSCALL) {
            ERR_clear_error();
            SSL_set_quiet_shutdown(ssl, 1);
            if (errno == 0)
                errno = EPIPE;
            return -1;
        }
        *fatal = 1;
        errno = EPIPE;
        return -1;
    }
    return (ssize_t)done;
}

ssize_t
ls_tls_write(ls_conn_t *c, const char *p, size_t n)
{
    int fatal = 0;
    ssize_t r;
    char who[32];

    c->flags &= ~LS_CONN_TLS_LEAN;
    r = tls_write(c->tls, p, n, &fatal);
    if (fatal) {
        tls_fatal(c->tls, tls_conn_name(c, who, sizeof(who)), "write");
        errno = EPIPE;
    }
    return r;
}

int
ls_tls_write_buffer(ls_conn_t *c, struct evbuffer *b)
{
    size_t len = evbuffer_get_length(b);
    size_t k = len > TLS_RECORD ? TLS_RECORD : len;
    unsigned char *p = evbuffer_pullup(b, (ev_ssize_t)k);
    ssize_t n;

    if (p == NULL) {
        errno = ENOMEM;
        return -1;
    }
    n = ls_tls_write(c, (const char *)p, k);
    if (n > 0)
        evbuffer_drain(b, (size_t)n);
    return (int)n;
}

int
ls_tls_pending(const ls_conn_t *c)
{
    return c->tls != NULL && SSL_has_pending(c->tls);
}

void
ls_tls_shutdown(ls_conn_t *c)
{
    SSL *ssl = c->tls;

    if (ssl == NULL || SSL_get_quiet_shutdown(ssl) ||
        (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) ||
        !SSL_is_init_finished(ssl))
        return;
    ERR_clear_error();
    SSL_shutdown(ssl);
    ERR_clear_error();
}

void
ls_tls_release(ls_conn_t *c)
{
    SSL_free(c->tls);
    c->tls = NULL;
    c->io = NULL;
}

/* ---- client: cosockets (sock:sslhandshake) -------------------------- */

struct ls_tls_session {
    int refs;
    SSL_SESSION *sess;          /* the newest the server gave; or NULL */
};

static SSL_CTX *client_ctx;
static char client_cafile[4096];

ls_tls_session_t *
ls_tls_session_ref(ls_tls_session_t *b)
{
    if (b != NULL)
        b->refs++;
    return b;
}

ls_tls_session_t *
ls_tls_client_session(SSL *ssl)
{
    return SSL_get_app_data(ssl);
}

void
ls_tls_session_unref(ls_tls_session_t *b)
{
    if (b == NULL || --b->refs > 0)
        return;
    SSL_SESSION_free(b->sess);
    free(b);
}

/* A session (a TLS 1.3 ticket comes after the handshake): into the box of
 * its connection, for the next sslhandshake(session). */
static int
tls_on_client_session(SSL *ssl, SSL_SESSION *sess)
{
    ls_tls_session_t *b = SSL_get_app_data(ssl);

    if (b == NULL)
        return 0;
    SSL_SESSION_free(b->sess);
    b->sess = sess;
    return 1; /* the reference is ours */
}

int
ls_tls_client_trust(const char *cafile, char *err, size_t errlen)
{
    SSL_CTX *ctx;
    FILE *f;
    int ok;

    if (strlen(cafile) >= sizeof(client_cafile)) {
        snprintf(err, errlen, "sslTrustedCertificate: path too long");
        return -1;
    }
    if ((f = fopen(cafile, "r")) == NULL) {
        snprintf(err, errlen, "sslTrustedCertificate \"%s\": cannot read "
                 "it: %s", cafile, strerror(errno));
        return -1;
    }
    fclose(f);
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    ok = ctx != NULL && SSL_CTX_load_verify_locations(ctx, cafile, NULL);
    if (!ok)
        snprintf(err, errlen, "sslTrustedCertificate \"%s\": no PEM "
                 "certificate in it: %s", cafile, tls_reason("bad file"));
    SSL_CTX_free(ctx);
    ERR_clear_error();
    if (!ok)
        return -1;
    snprintf(client_cafile, sizeof(client_cafile), "%s", cafile);
    return 0;
}

static SSL_CTX *
tls_client_ctx(char *err, size_t errlen)
{
    SSL_CTX *ctx;

    if (client_ctx != NULL)
        return client_ctx;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new() failed: %s",
                 tls_reason("out of memory"));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!SSL_CTX_set_default_verify_paths(ctx))
        ls_log(LS_LOG_WARN, 0, "TLS: the system's CA store: %s",
               tls_reason("cannot load it"));
    if (client_cafile[0] &&
        !SSL_CTX_load_verify_locations(ctx, client_cafile, NULL))
        ls_log(LS_LOG_WARN, 0, "TLS: sslTrustedCertificate \"%s\": %s",
               client_cafile, tls_reason("cannot load it"));
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                            SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, tls_on_client_session);
    ERR_clear_error();
    client_ctx = ctx;
    return ctx;
}

SSL *
ls_tls_client_new(int fd, const char *server_name, int verify,
                  ls_tls_session_t *reuse, ls_tls_session_t **box, char *err,
                  size_t errlen)
{
    SSL_CTX *ctx = tls_client_ctx(err, errlen);
    unsigned char addr[16];
    int is_ip;
    SSL *ssl;

    *box = NULL;
    if (ctx == NULL)
        return NULL;
    ERR_clear_error();
    if ((ssl = SSL_new(ctx)) == NULL || !SSL_set_fd(ssl, fd))
        goto fail;
    SSL_set_connect_state(ssl);
    is_ip = server_name != NULL &&
            (inet_pton(AF_INET, server_name, addr) == 1 ||
             inet_pton(AF_INET6, server_name, addr) == 1);
    if (server_name != NULL && !is_ip &&
        !SSL_set_tlsext_host_name(ssl, server_name))
        goto fail;
    SSL_set_verify(ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (verify && server_name != NULL) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        if (!(is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, server_name)
                    : SSL_set1_host(ssl, server_name)))
            goto fail;
    }
    if (reuse != NULL && reuse->sess != NULL &&
        !SSL_set_session(ssl, reuse->sess))
        goto fail;
    if ((*box = calloc(1, sizeof(**box))) == NULL)
        goto fail;
    (*box)->refs = 1;
    SSL_set_app_data(ssl, *box);
    return ssl;

fail:
    snprintf(err, errlen, "handshake failed: %s",
             tls_reason("out of memory"));
    ERR_clear_error();
    SSL_free(ssl);
    return NULL;
}

int
ls_tls_client_step(SSL *ssl, char *err, size_t errlen)
{
    long v;
    int r, se;

    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    se = SSL_get_error(ssl, r);
    if (se == SSL_ERROR_WANT_READ)
        return 0;
    if (se == SSL_ERROR_WANT_WRITE)
        return 2;
    v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK)
        snprintf(err, errlen, "certificate verify failed: %ld: %s", v,
                 X509_verify_cert_error_string(v));
    else if (se == SSL_ERROR_SSL)
        snprintf(err, errlen, "handshake failed: %s",
                 tls_reason("protocol error"));
    else if (se == SSL_ERROR_SYSCALL && errno != 0)
        snprintf(err, errlen, "handshake failed: %s", strerror(errno));
    else
        snprintf(err, errlen, "handshake failed: the peer closed the "
                 "connection");
    SSL_set_quiet_shutdown(ssl, 1);
    ERR_clear_error();
    return -1;
}

ssize_t
ls_tls_sread(SSL *ssl, char *p, size_t n)
{
    int fatal = 0;
    ssize_t r = tls_read(ssl, p, n, &fatal);

    if (fatal)
        tls_fatal(ssl, "cosocket", "read");
    return r;
}

ssize_t
ls_tls_swrite(SSL *ssl, const char *p, size_t n)
{
    int fatal = 0;
    ssize_t r = tls_write(ssl, p, n, &fatal);

    if (fatal) {
        tls_fatal(ssl, "cosocket", "write");
        errno = EPIPE;
    }
    return r;
}

void
ls_tls_client_close(SSL *ssl)
{
    if (ssl == NULL)
        return;
    if (!SSL_get_quiet_shutdown(ssl) && SSL_is_init_finished(ssl) &&
        !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN)) {
        ERR_clear_error();
        SSL_shutdown(ssl);
    }
    ERR_clear_error();
    ls_tls_session_unref(SSL_get_app_data(ssl));
    SSL_free(ssl);
}
