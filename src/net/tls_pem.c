/*
 * tls_pem.c -- certificate and key bytes read while privileged (see
 * tls_pem.h). Every buffer that held them is wiped before it is freed,
 * including the ones outgrown while reading.
 */
#include "net/tls_pem.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct pem_kept {
    struct pem_kept *next;
    char *data;                /* NULL: not readable, errno in err */
    size_t len;
    int err;
    char path[];
} pem_kept_t;

static pem_kept_t *kept;

void
ls_tls_pem_free(char *data, size_t len)
{
    if (data == NULL)
        return;
    OPENSSL_cleanse(data, len + 1);
    free(data);
}

/* The whole file, NUL-terminated; -1 with errno (EFBIG: over the limit). */
static int
pem_slurp(const char *path, char **data, size_t *len)
{
    struct stat st;
    size_t cap = 8192, n = 0;
    char *buf = NULL;
    int fd, e;

    *data = NULL;
    *len = 0;
    while ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
        if (errno != EINTR)
            return -1;
    if (fstat(fd, &st) < 0)
        goto fail;
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        goto fail;
    }
    if (S_ISREG(st.st_mode) && st.st_size >= LS_TLS_PEM_MAX) {
        errno = EFBIG;
        goto fail;
    }
    if (S_ISREG(st.st_mode) && (size_t)st.st_size + 1 > cap)
        cap = (size_t)st.st_size + 1;
    if ((buf = malloc(cap)) == NULL)
        goto fail;
    for (;;) {
        ssize_t r;
        if (n + 1 == cap) { /* it grew (or is not a regular file) */
            char *nb;
            if (cap >= LS_TLS_PEM_MAX) {
                errno = EFBIG;
                goto fail;
            }
            if ((nb = malloc(cap * 2)) == NULL)
                goto fail;
            memcpy(nb, buf, n);
            OPENSSL_cleanse(buf, cap);
            free(buf);
            buf = nb;
            cap *= 2;
        }
        r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto fail;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;

fail:
    e = errno;
    if (buf != NULL) {
        OPENSSL_cleanse(buf, cap);
        free(buf);
    }
    close(fd);
    errno = e;
    return -1;
}

static const char *
pem_strerror(int e)
{
    return e == EFBIG ? "larger than 1 MiB (not a PEM file?)" : strerror(e);
}

void
ls_tls_pem_keep(const char *path)
{
    size_t n = strlen(path);
    pem_kept_t *k;

    for (k = kept; k != NULL; k = k->next)
        if (strcmp(k->path, path) == 0)
            return; /* a certificate named twice (sni, several listeners) */
    if ((k = calloc(1, sizeof(*k) + n + 1)) == NULL)
        return; /* read later, if it can be */
    memcpy(k->path, path, n + 1);
    if (pem_slurp(path, &k->data, &k->len) < 0)
        k->err = errno;
    k->next = kept;
    kept = k;
}

int
ls_tls_pem_read(const char *path, char **data, size_t *len, char *err,
                size_t errlen)
{
    for (pem_kept_t *k = kept; k != NULL; k = k->next) {
        if (strcmp(k->path, path) != 0)
            continue;
        if (k->data == NULL) {
            snprintf(err, errlen, "cannot read it: %s", pem_strerror(k->err));
            return -1;
        }
        if ((*data = malloc(k->len + 1)) == NULL) {
            snprintf(err, errlen, "cannot read it: out of memory");
            return -1;
        }
        memcpy(*data, k->data, k->len + 1);
        *len = k->len;
        return 0;
    }
    if (pem_slurp(path, data, len) < 0) {
        snprintf(err, errlen, "cannot read it: %s", pem_strerror(errno));
        return -1;
    }
    return 0;
}

void
ls_tls_pem_forget(void)
{
    while (kept != NULL) {
        pem_kept_t *k = kept;
        kept = k->next;
        ls_tls_pem_free(k->data, k->len);
        free(k);
    }
}
