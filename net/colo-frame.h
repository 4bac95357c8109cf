/*
 * COLO chardev framing: packets between the COLO filters and colo-compare.
 *
 * Wire format of one frame:
 *   be32 payload length
 *   be32 vnet header length       (only when vnet_hdr_support is on)
 *   payload                        (starts with the vnet header, if any)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NET_COLO_FRAME_H
#define NET_COLO_FRAME_H

#include "chardev/char-fe.h"
#include "net/net.h"

typedef struct ColoFrameStats {
    /* reader: frames delivered; writer: frames fully handed to the chardev */
    uint64_t frames;
    /* payload bytes of those frames */
    uint64_t bytes;
    /*
     * reader: framing errors (length 0 or > COLO_FRAME_MAX_LEN,
     * vnet_hdr_len > length); writer: frames refused as empty or too big
     */
    uint64_t bad_frames;
    /* writer: frames dropped because the peer is too slow, absent or gone */
    uint64_t dropped;
} ColoFrameStats;

/* The largest packet QEMU's net layer carries, vnet header included. */
#define COLO_FRAME_MAX_LEN  (NET_BUFSIZE)

/* Called for each complete frame; buf is valid only during the call. */
typedef void ColoFrameFunc(void *opaque, const uint8_t *buf, size_t len,
                           uint32_t vnet_hdr_len);

typedef enum ColoFrameReadState {
    COLO_FRAME_READ_LEN,
    COLO_FRAME_READ_VNET_LEN,
    COLO_FRAME_READ_PAYLOAD,
} ColoFrameReadState;

typedef struct ColoFrameReader {
    /* private */
    bool vnet_hdr;
    ColoFrameReadState state;
    uint8_t word[4];        /* a length field being assembled */
    size_t word_got;
    uint32_t len;
    uint32_t vnet_hdr_len;
    uint8_t *buf;           /* payload of a frame split across feeds */
    size_t buf_size;
    size_t got;
    /* public, read-only */
    ColoFrameStats stats;
} ColoFrameReader;

void colo_frame_reader_init(ColoFrameReader *r, bool vnet_hdr);
/* Drop a partial frame, e.g. on reconnect; the stats are kept. */
void colo_frame_reader_reset(ColoFrameReader *r);
void colo_frame_reader_destroy(ColoFrameReader *r);
/*
 * Feed bytes as they come from the chardev; frames may span calls.  A
 * framing error is counted in stats.bad_frames, the partial frame dropped
 * and parsing restarts with the next byte as a new length (there is no
 * resync marker).  Never allocates more than COLO_FRAME_MAX_LEN.
 * @fn must not call back into @r.
 */
void colo_frame_reader_feed(ColoFrameReader *r, const uint8_t *buf,
                            size_t len, ColoFrameFunc *fn, void *opaque);

typedef struct ColoFrameWriter ColoFrameWriter;

/*
 * Writes frames to @fe without ever blocking: what the chardev does not take
 * at once is queued (up to @max_queued bytes, framing included) and flushed
 * from a G_IO_OUT watch, which the chardev attaches to the GMainContext its
 * frontend handlers were set with (NULL = main loop).  A frame the chardev
 * refuses outright (not connected, I/O error) is dropped with everything
 * queued, so a new connection always starts on a frame boundary.  Used from
 * one thread only: the one running that context.
 */
ColoFrameWriter *colo_frame_writer_new(CharFrontend *fe, bool vnet_hdr,
                                       size_t max_queued);
void colo_frame_writer_free(ColoFrameWriter *w);
/*
 * Queue one frame of iov (the vnet header, if any, is the first vnet_hdr_len
 * bytes) and write what the chardev takes now.  Returns false if the frame
 * was dropped: queue full or peer gone (stats.dropped), or frame empty or
 * larger than COLO_FRAME_MAX_LEN (stats.bad_frames).
 */
bool colo_frame_writer_send(ColoFrameWriter *w, const struct iovec *iov,
                            int iovcnt, uint32_t vnet_hdr_len);
/*
 * Drop what is queued (counted in stats.dropped), e.g. when the chardev
 * reports CHR_EVENT_CLOSED: the rest of a half-written frame must not start
 * the next connection.  Safe to call from a chardev event handler that runs
 * inside colo_frame_writer_send().
 */
void colo_frame_writer_reset(ColoFrameWriter *w);
/* Whether a frame of @size payload bytes would be queued, not dropped. */
bool colo_frame_writer_has_room(const ColoFrameWriter *w, size_t size);
/*
 * @cb runs (from the writer's watch, never inside another writer call)
 * each time the chardev has taken enough that the queue is at most half
 * full again: for a frontend that held packets back to send them.
 */
void colo_frame_writer_on_room(ColoFrameWriter *w, void (*cb)(void *opaque),
                               void *opaque);
/* Bytes accepted but not yet taken by the chardev. */
size_t colo_frame_writer_queued(const ColoFrameWriter *w);
const ColoFrameStats *colo_frame_writer_stats(const ColoFrameWriter *w);

#endif /* NET_COLO_FRAME_H */
