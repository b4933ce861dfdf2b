/*
 * tls_pem.h -- the bytes of certificate and key files, read while the
 * process may still read them.
 *
 * A private key is usually readable by root alone (/etc/letsencrypt/live,
 * /etc/ssl/private), and workers drop to settings.user before they load
 * the app. So a worker reads its listener's ssl files while still
 * privileged (ls_tls_pem_keep), the app's listen() builds the SSL_CTX from
 * those bytes (ls_tls_pem_read), and once the app is loaded the bytes are
 * wiped (ls_tls_pem_forget), as nginx builds its contexts before it drops
 * privileges. A file not kept is read when asked for: the validator and a
 * worker that never was root.
 */
#ifndef LS_TLS_PEM_H
#define LS_TLS_PEM_H

#include <stddef.h>

#define LS_TLS_PEM_MAX (1024 * 1024) /* bytes a certificate chain may have */

/* Read path now and keep its bytes (or why it could not be read, which
 * ls_tls_pem_read reports later: a failure here is not one yet). */
void ls_tls_pem_keep(const char *path);

/* The bytes of path, NUL-terminated, in *data (free with ls_tls_pem_free):
 * a copy of the kept ones, or read now. 0, or -1 with err "cannot read it:
 * <reason>" (what names the file goes before it: the caller's). */
int ls_tls_pem_read(const char *path, char **data, size_t *len, char *err,
                    size_t errlen);

/* Wipe (OPENSSL_cleanse) and free bytes from ls_tls_pem_read. */
void ls_tls_pem_free(char *data, size_t len);

/* Wipe and drop everything kept. */
void ls_tls_pem_forget(void);

#endif
