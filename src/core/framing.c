/*
 * framing.c -- find packet boundaries in a byte stream.
 *
 * A delimiter search resumes where the previous one stopped (minus the bytes
 * that could hold the start of a split delimiter), and a length header is read
 * once it has arrived, so a message arriving in many small pieces costs time
 * linear in its size.
 */
#include "core/framing.h"

#include <string.h>

void
ls_framing_init_raw(ls_framing_t *f)
{
    memset(f, 0, sizeof(*f));
    f->kind = LS_FRAMING_RAW;
}

void
ls_framing_init_text(ls_framing_t *f)
{
    memset(f, 0, sizeof(*f));
    f->kind = LS_FRAMING_DELIM;
    f->delim[0] = '\n';
    f->dlen = 1;
    f->strip_cr = 1;
}

void
ls_framing_init_frame(ls_framing_t *f)
{
    memset(f, 0, sizeof(*f));
    f->kind = LS_FRAMING_LENGTH;
    f->offset = 0;
    f->size = 4;
    f->big_endian = 1;
    f->includes_header = 1;
    f->strip = 4;
}

static unsigned long long
framing_read_uint(const ls_framing_t *f, const unsigned char *p)
{
    unsigned long long v = 0;
    if (f->big_endian) {
        for (int i = 0; i < f->size; i++)
            v = (v << 8) | p[i];
    } else {
        for (int i = f->size - 1; i >= 0; i--)
            v = (v << 8) | p[i];
    }
    return v;
}

/* Total packet size from the length header, or -1 if it is impossible. */
static long long
framing_total(const ls_framing_t *f, const char *buf)
{
    unsigned long long v =
        framing_read_uint(f, (const unsigned char *)buf + f->offset);
    size_t hdr = f->offset + (size_t)f->size;
    long long total;

    if (v > (1ULL << 62))
        return -1;
    total = (long long)v + f->adjust;
    if (!f->includes_header)
        total += (long long)hdr;
    if (total < (long long)hdr || total < (long long)f->strip)
        return -1;
    return total;
}

int
ls_framing_next(const ls_framing_t *f, const char *buf, size_t len,
                size_t max, size_t *scan, ls_packet_t *pkt, const char **err)
{
    switch (f->kind) {
    case LS_FRAMING_RAW:
        if (len == 0)
            return 0;
        pkt->total = len;
        pkt->off = 0;
        pkt->len = len;
        return 1;

    case LS_FRAMING_DELIM: {
        size_t from = *scan;
        const char *hit;

        if (from > len)
            from = len;
        if (f->dlen == 1)
            hit = memchr(buf + from, f->delim[0], len - from);
        else
            hit = memmem(buf + from, len - from, f->delim, f->dlen);
        if (hit == NULL) {
            if (len > max) {
                *err = "package too big";
                return -1;
            }
            /* Resume where a split delimiter could begin. */
            *scan = len >= f->dlen - 1 ? len - (f->dlen - 1) : 0;
            return 0;
        }
        pkt->total = (size_t)(hit - buf) + f->dlen;
        if (pkt->total > max) {
            *err = "package too big";
            return -1;
        }
        pkt->off = 0;
        pkt->len = (size_t)(hit - buf);
        if (f->strip_cr && pkt->len > 0 && buf[pkt->len - 1] == '\r')
            pkt->len--;
        return 1;
    }

    case LS_FRAMING_LENGTH: {
        size_t hdr = f->offset + (size_t)f->size;
        long long total;

        if (len < hdr)
            return 0;
        total = framing_total(f, buf);
        if (total < 0) {
            *err = "bad length header";
            return -1;
        }
        if ((unsigned long long)total > max) {
            *err = "package too big";
            return -1;
        }
        if (len < (size_t)total)
            return 0;
        pkt->total = (size_t)total;
        pkt->off = f->strip;
        pkt->len = (size_t)total - f->strip;
        return 1;
    }
    }
    *err = "unknown framing";
    return -1;
}

size_t
ls_framing_missing(const ls_framing_t *f, const char *buf, size_t len)
{
    long long total;

    if (f->kind != LS_FRAMING_LENGTH || len < f->offset + (size_t)f->size)
        return 0;
    total = framing_total(f, buf);
    if (total < 0 || (size_t)total <= len)
        return 0;
    return (size_t)total - len;
}

size_t
ls_framing_header(const ls_framing_t *f, size_t len, char *hdr)
{
    unsigned long long v;

    /* Only a header at the very start that is all that is stripped can be
     * written for the app; other layouts send what the app built. */
    if (f->kind != LS_FRAMING_LENGTH || f->offset != 0 ||
        f->strip != (size_t)f->size)
        return 0;
    v = (unsigned long long)len + (f->includes_header ? (size_t)f->size : 0);
    v = (unsigned long long)((long long)v - f->adjust);
    for (int i = 0; i < f->size; i++) {
        int shift = f->big_endian ? (f->size - 1 - i) * 8 : i * 8;
        hdr[i] = (char)((v >> shift) & 0xff);
    }
    return (size_t)f->size;
}

const char *
ls_framing_trailer(const ls_framing_t *f, size_t *n)
{
    if (f->kind != LS_FRAMING_DELIM) {
        *n = 0;
        return NULL;
    }
    *n = f->dlen;
    return f->delim;
}
