/*
 * COLO chardev framing: the reader, which cuts a byte stream into frames.
 *
 * Pure logic over buffers (no chardev), so the unit tests link it alone.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "net/colo-frame.h"

void colo_frame_reader_init(ColoFrameReader *r, bool vnet_hdr)
{
    memset(r, 0, sizeof(*r));
    r->vnet_hdr = vnet_hdr;
    r->state = COLO_FRAME_READ_LEN;
}

void colo_frame_reader_reset(ColoFrameReader *r)
{
    r->state = COLO_FRAME_READ_LEN;
    r->word_got = 0;
    r->got = 0;
}

void colo_frame_reader_destroy(ColoFrameReader *r)
{
    g_free(r->buf);
    r->buf = NULL;
    r->buf_size = 0;
    colo_frame_reader_reset(r);
}

/* A framing error: no resync marker, so the next byte starts a length. */
static void colo_frame_reader_bad(ColoFrameReader *r)
{
    r->stats.bad_frames++;
    colo_frame_reader_reset(r);
}

static void colo_frame_reader_deliver(ColoFrameReader *r, const uint8_t *buf,
                                      ColoFrameFunc *fn, void *opaque)
{
    r->stats.frames++;
    r->stats.bytes += r->len;
    /* Reset first: @fn may look at the stats but sees a clean state. */
    colo_frame_reader_reset(r);
    fn(opaque, buf, r->len, r->vnet_hdr_len);
}

/*
 * Collect a be32 field that may arrive split across feeds.  Returns the
 * number of bytes consumed; *done tells whether the word is complete.
 */
static size_t colo_frame_reader_word(ColoFrameReader *r, const uint8_t *buf,
                                     size_t len, uint32_t *value, bool *done)
{
    size_t n = MIN(len, sizeof(r->word) - r->word_got);

    memcpy(r->word + r->word_got, buf, n);
    r->word_got += n;
    *done = r->word_got == sizeof(r->word);
    if (*done) {
        *value = ldl_be_p(r->word);
        r->word_got = 0;
    }
    return n;
}

/* The header of a frame is complete: check it and pick the next state. */
static void colo_frame_reader_header_done(ColoFrameReader *r)
{
    if (r->vnet_hdr_len > r->len) {
        colo_frame_reader_bad(r);
        return;
    }
    r->got = 0;
    r->state = COLO_FRAME_READ_PAYLOAD;
}

static size_t colo_frame_reader_len(ColoFrameReader *r, const uint8_t *buf,
                                    size_t len)
{
    bool done;
    size_t n = colo_frame_reader_word(r, buf, len, &r->len, &done);

    if (!done) {
        return n;
    }
    if (r->len == 0 || r->len > COLO_FRAME_MAX_LEN) {
        colo_frame_reader_bad(r);
        return n;
    }
    r->vnet_hdr_len = 0;
    if (r->vnet_hdr) {
        r->state = COLO_FRAME_READ_VNET_LEN;
    } else {
        colo_frame_reader_header_done(r);
    }
    return n;
}

static size_t colo_frame_reader_vnet_len(ColoFrameReader *r,
                                         const uint8_t *buf, size_t len)
{
    bool done;
    size_t n = colo_frame_reader_word(r, buf, len, &r->vnet_hdr_len, &done);

    if (done) {
        colo_frame_reader_header_done(r);
    }
    return n;
}

static size_t colo_frame_reader_payload(ColoFrameReader *r,
                                        const uint8_t *buf, size_t len,
                                        ColoFrameFunc *fn, void *opaque)
{
    size_t n = MIN(len, r->len - r->got);

    /* A whole payload in the caller's buffer needs no copy. */
    if (r->got == 0 && n == r->len) {
        colo_frame_reader_deliver(r, buf, fn, opaque);
        return n;
    }
    if (r->buf_size < r->len) {
        /* Bounded: r->len was checked against COLO_FRAME_MAX_LEN. */
        r->buf = g_realloc(r->buf, r->len);
        r->buf_size = r->len;
    }
    memcpy(r->buf + r->got, buf, n);
    r->got += n;
    if (r->got == r->len) {
        colo_frame_reader_deliver(r, r->buf, fn, opaque);
    }
    return n;
}

void colo_frame_reader_feed(ColoFrameReader *r, const uint8_t *buf,
                            size_t len, ColoFrameFunc *fn, void *opaque)
{
    while (len) {
        size_t n;

        switch (r->state) {
        case COLO_FRAME_READ_LEN:
            n = colo_frame_reader_len(r, buf, len);
            break;
        case COLO_FRAME_READ_VNET_LEN:
            n = colo_frame_reader_vnet_len(r, buf, len);
            break;
        case COLO_FRAME_READ_PAYLOAD:
            n = colo_frame_reader_payload(r, buf, len, fn, opaque);
            break;
        default:
            g_assert_not_reached();
        }
        buf += n;
        len -= n;
    }
}
