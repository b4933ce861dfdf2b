/*
 * framing.h -- declarative message framing, done in C without calling Lua per
 * read: raw chunks, delimited records ("\n", "\r\n", ...), and length-prefixed
 * packets. Pure functions on byte ranges, so that fuzzers and benchmarks can
 * drive them without sockets.
 */
#ifndef LS_FRAMING_H
#define LS_FRAMING_H

#include <stddef.h>

/* LS_FRAMING_CUSTOM: a Lua protocol table (input/decode/encode), driven
 * by lua/lua_proto.c rather than by these functions. */
enum { LS_FRAMING_RAW, LS_FRAMING_DELIM, LS_FRAMING_LENGTH, LS_FRAMING_CUSTOM };

typedef struct ls_framing {
    int kind;
    /* LS_FRAMING_DELIM */
    char delim[16];
    size_t dlen;
    int strip_cr;          /* text: drop one '\r' before a "\n" delimiter */
    /* LS_FRAMING_LENGTH: a size-byte integer at offset gives the length */
    size_t offset;
    int size;              /* 1, 2, 4 or 8 */
    int big_endian;
    int includes_header;   /* the value counts offset + size header bytes */
    long long adjust;      /* added to the value (Netty's lengthAdjustment) */
    size_t strip;          /* bytes removed from the head of each packet */
} ls_framing_t;

typedef struct ls_packet {
    size_t total;  /* bytes the packet occupies in the stream */
    size_t off;    /* payload start, relative to the packet */
    size_t len;    /* payload length */
} ls_packet_t;

void ls_framing_init_raw(ls_framing_t *f);
void ls_framing_init_text(ls_framing_t *f);
void ls_framing_init_frame(ls_framing_t *f);

/*
 * Look for one whole packet at the head of buf[0..len). Returns 1 and fills
 * pkt; 0 when more bytes are needed (*scan records how far a delimiter search
 * got, so that the next call does not rescan; reset it to 0 after each
 * packet); -1 on bad input, with *err set to a static message. Packets whose
 * total size exceeds max are bad input.
 */
int ls_framing_next(const ls_framing_t *f, const char *buf, size_t len,
                    size_t max, size_t *scan, ls_packet_t *pkt,
                    const char **err);

/* How many more bytes make the packet at the head of buf[0..len) whole, if
 * that is known yet (length framing with the header in); else 0. */
size_t ls_framing_missing(const ls_framing_t *f, const char *buf, size_t len);

/* Bytes to write before (header) and after (trailer) a payload of len bytes
 * when sending; returns the header length written into hdr[16]. */
size_t ls_framing_header(const ls_framing_t *f, size_t len, char *hdr);
const char *ls_framing_trailer(const ls_framing_t *f, size_t *n);

#endif
