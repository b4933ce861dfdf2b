/*
 * fuzz_framing.c -- libFuzzer target for every framer in src/framing.c.
 *
 * Input layout: [kind][p1][p2][p3][p4][p5][split seed][stream ...]. The
 * first bytes choose the framer (text, frame, a custom delimiter, length with
 * any size/endianness/offset/adjust/strip, raw) and the maximum package size;
 * the split seed chooses where the stream is cut into arrivals. The stream is
 * then fed as a connection would get it: arrivals appended to what is left,
 * ls_framing_next() called until it wants more, with the scan position kept
 * between calls. Checked:
 *  - each call sees an exactly sized heap copy, so reading past it is an
 *    ASan report;
 *  - packets lie inside the buffer, delimited payloads end just before the
 *    first delimiter (and the '\r' text strips), so payloads plus delimiters
 *    rebuild the input; length packets carry the header's value;
 *  - the packets and the final outcome do not depend on the chunking: they
 *    equal those of one call sequence on the whole input;
 *  - ls_framing_missing() agrees with what the next call needs;
 *  - ls_framing_header() writes back the header a packet arrived with.
 */
#include "core/framing.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PKTS 4096

typedef struct result {
    size_t n;
    int failed;             /* -1 seen */
    size_t consumed;
    ls_packet_t pkt[MAX_PKTS];  /* not cleared between runs: n says */
    size_t at[MAX_PKTS];        /* stream offset of each packet */
} result_t;

static void
die(const char *what, size_t a, size_t b)
{
    fprintf(stderr, "fuzz_framing: invariant broken: %s (%zu, %zu)\n", what,
            a, b);
    abort();
}

static void
setup(ls_framing_t *f, const uint8_t *p, size_t *max)
{
    static const int sizes[] = {1, 2, 4, 8};

    switch (p[0] % 5) {
    case 0:
        ls_framing_init_text(f);
        break;
    case 1:
        ls_framing_init_frame(f);
        break;
    case 2:
        memset(f, 0, sizeof(*f));
        f->kind = LS_FRAMING_DELIM;
        f->dlen = 1 + p[1] % 4;
        /* delimiters from a small alphabet so that they actually occur */
        for (size_t i = 0; i < f->dlen; i++)
            f->delim[i] = "\r\n|a"[(p[2] >> (2 * i)) & 3];
        f->strip_cr = (p[3] & 1) && f->dlen == 1 && f->delim[0] == '\n';
        break;
    case 3:
        memset(f, 0, sizeof(*f));
        f->kind = LS_FRAMING_LENGTH;
        f->size = sizes[p[1] & 3];
        f->big_endian = (p[1] >> 2) & 1;
        f->includes_header = (p[1] >> 3) & 1;
        f->offset = (p[1] >> 4) & 3;
        f->adjust = (int8_t)p[2];
        f->strip = (size_t)p[3] % (f->offset + (size_t)f->size + 2);
        break;
    default:
        ls_framing_init_raw(f);
        break;
    }
    *max = (size_t)1 << (p[4] % 17);
    if (p[5] & 1)
        *max = SIZE_MAX / 2;
}

/* Check one packet against the bytes it came from. */
static void
check_packet(const ls_framing_t *f, const char *buf, size_t len, size_t max,
             const ls_packet_t *pkt)
{
    if (pkt->total == 0 || pkt->total > len)
        die("packet outside the buffer", pkt->total, len);
    if (pkt->off > pkt->total || pkt->len > pkt->total - pkt->off)
        die("payload outside the packet", pkt->off, pkt->len);
    if (f->kind != LS_FRAMING_RAW && pkt->total > max)
        die("packet larger than max", pkt->total, max);
    if (f->kind == LS_FRAMING_DELIM) {
        size_t body = pkt->total - f->dlen;
        const char *first;

        if (pkt->total < f->dlen ||
            memcmp(buf + body, f->delim, f->dlen) != 0)
            die("packet does not end with the delimiter", pkt->total, f->dlen);
        first = memmem(buf, pkt->total, f->delim, f->dlen);
        if (first != buf + body)
            die("delimiter before the packet end", (size_t)(first - buf),
                body);
        if (pkt->off != 0)
            die("delimited payload not at the start", pkt->off, 0);
        if (pkt->len != body) {
            if (!f->strip_cr || pkt->len + 1 != body || buf[pkt->len] != '\r')
                die("payload length wrong", pkt->len, body);
        } else if (f->strip_cr && body > 0 && buf[body - 1] == '\r') {
            die("'\\r' not stripped", pkt->len, body);
        }
    } else if (f->kind == LS_FRAMING_LENGTH) {
        char hdr[16];
        size_t n = ls_framing_header(f, pkt->len, hdr);

        if (pkt->off != f->strip)
            die("length payload offset is not strip", pkt->off, f->strip);
        if (n != 0 && (n != (size_t)f->size || memcmp(hdr, buf, n) != 0))
            die("header written does not match the one read", n, pkt->len);
    } else if (pkt->total != len || pkt->off != 0 || pkt->len != len) {
        die("raw packet is not all the input", pkt->total, len);
    }
}

/* Feed stream[0..len) in arrivals cut at the given sizes (cuts == NULL: all
 * at once); record packets and the outcome. */
static void
run(const ls_framing_t *f, size_t max, const uint8_t *stream, size_t len,
    const uint8_t *cuts, size_t ncuts, result_t *r)
{
    size_t have = 0, start = 0, scan = 0, ci = 0;

    memset(r, 0, offsetof(result_t, pkt));
    while (have < len && !r->failed) {
        size_t step = len - have;

        if (cuts != NULL && ncuts > 0) {
            step = 1 + cuts[ci++ % ncuts] % 64;
            if (step > len - have)
                step = len - have;
        }
        have += step;
        for (;;) {
            size_t n = have - start;
            char *buf = malloc(n ? n : 1);
            ls_packet_t pkt;
            const char *err = NULL;
            size_t miss;
            int rc;

            memcpy(buf, stream + start, n);
            miss = ls_framing_missing(f, buf, n);
            rc = ls_framing_next(f, buf, n, max, &scan, &pkt, &err);
            if (rc < 0) {
                if (err == NULL)
                    die("error without a message", n, 0);
                r->failed = 1;
                free(buf);
                break;
            }
            if (rc == 0) {
                if (scan > n)
                    die("scan past the buffer", scan, n);
                free(buf);
                break;
            }
            if (miss != 0)
                die("missing > 0 but a packet was complete", miss, n);
            check_packet(f, buf, n, max, &pkt);
            free(buf);
            if (r->n < MAX_PKTS) {
                r->pkt[r->n] = pkt;
                r->at[r->n] = start;
                r->n++;
            }
            start += pkt.total;
            scan = 0;
            if (f->kind == LS_FRAMING_RAW)
                break;
        }
    }
    r->consumed = start;
}

static result_t whole, split;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ls_framing_t f;
    size_t max, ncuts;
    const uint8_t *cuts, *stream;

    if (size < 7)
        return 0;
    setup(&f, data, &max);
    ncuts = 1 + data[6] % 8;
    if (size < 7 + ncuts)
        return 0;
    cuts = data + 7;
    stream = data + 7 + ncuts;
    size -= 7 + ncuts;

    run(&f, max, stream, size, NULL, 0, &whole);
    run(&f, max, stream, size, cuts, ncuts, &split);

    if (f.kind == LS_FRAMING_RAW) {
        /* raw hands over whatever arrived: only the total must match */
        if (whole.consumed != size || split.consumed != size)
            die("raw did not consume everything", split.consumed, size);
        return 0;
    }
    if (whole.n != split.n)
        die("packet count depends on chunking", whole.n, split.n);
    if (whole.failed != split.failed)
        die("outcome depends on chunking", (size_t)whole.failed,
            (size_t)split.failed);
    for (size_t i = 0; i < whole.n; i++)
        if (whole.at[i] != split.at[i] ||
            whole.pkt[i].total != split.pkt[i].total ||
            whole.pkt[i].off != split.pkt[i].off ||
            whole.pkt[i].len != split.pkt[i].len)
            die("packet depends on chunking", i, whole.at[i]);
    return 0;
}
