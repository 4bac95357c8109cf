/*
 * COLO chardev framing: the writer, which never blocks its thread.
 *
 * What this relies on in the chardev layer (chardev/char.c, char-fe.c,
 * char-socket.c, char-io.c):
 * - qemu_chr_fe_write() makes one attempt: it returns the bytes the backend
 *   took (possibly fewer than asked), or -1 with errno EAGAIN when the
 *   socket would block.  Only qemu_chr_fe_write_all() sleeps and retries,
 *   which is why it is not used here.
 * - A socket chardev that is not connected returns -1 with errno EIO, and
 *   other write errors come back as -1 with another errno, after the chardev
 *   may already have disconnected (emitting CHR_EVENT_CLOSED to the frontend
 *   from inside the write).  The data is gone in both cases.
 * - It returns 0 when the frontend has no chardev.
 * - qemu_chr_fe_add_watch() attaches the watch to chr->gcontext, the context
 *   given to qemu_chr_fe_set_handlers() (NULL: the main loop), and returns 0
 *   when the backend cannot watch (e.g. a disconnected socket has no ioc).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/bswap.h"
#include "qemu/iov.h"
#include "qom/object.h"
#include "chardev/char.h"
#include "net/colo-frame.h"

/* One framed packet waiting for the chardev. */
typedef struct ColoFrameOut {
    size_t len;             /* framing + payload */
    size_t off;             /* bytes already written */
    uint32_t payload_len;
    uint8_t data[];
} ColoFrameOut;

struct ColoFrameWriter {
    CharFrontend *fe;
    bool vnet_hdr;
    size_t max_queued;
    size_t queued;          /* unwritten bytes in @queue */
    GQueue queue;           /* of ColoFrameOut, oldest first */
    guint watch;
    GMainContext *watch_ctx;
    bool flushing;
    bool reset_pending;     /* a reset arrived while flushing */
    ColoFrameStats stats;
    void (*room_cb)(void *opaque);
    void *room_opaque;
};

/*
 * Every frame is a packet that a guest, a client or the comparator waits
 * for.  With Nagle's algorithm a small frame that follows one not yet
 * acknowledged stays in the socket until the peer's delayed ACK, up to
 * 40 ms, which used to be most of what COLO added to a request's latency;
 * so turn it off on a socket chardev whether or not the user asked.
 */
static void colo_frame_writer_no_delay(CharFrontend *fe)
{
    Chardev *chr = qemu_chr_fe_get_driver(fe);

    if (chr && object_property_find(OBJECT(chr), "nodelay")) {
        object_property_set_bool(OBJECT(chr), "nodelay", true, &error_abort);
    }
}

ColoFrameWriter *colo_frame_writer_new(CharFrontend *fe, bool vnet_hdr,
                                       size_t max_queued)
{
    ColoFrameWriter *w = g_new0(ColoFrameWriter, 1);

    colo_frame_writer_no_delay(fe);

    w->fe = fe;
    w->vnet_hdr = vnet_hdr;
    w->max_queued = max_queued;
    g_queue_init(&w->queue);
    return w;
}

static void colo_frame_writer_unwatch(ColoFrameWriter *w)
{
    GSource *src;

    if (!w->watch) {
        return;
    }
    /* The watch lives in the chardev's context, not always the default. */
    src = g_main_context_find_source_by_id(w->watch_ctx, w->watch);
    if (src) {
        g_source_destroy(src);
    }
    w->watch = 0;
}

static void colo_frame_writer_drop_all(ColoFrameWriter *w)
{
    ColoFrameOut *f;

    while ((f = g_queue_pop_head(&w->queue))) {
        w->stats.dropped++;
        g_free(f);
    }
    w->queued = 0;
    colo_frame_writer_unwatch(w);
}

void colo_frame_writer_reset(ColoFrameWriter *w)
{
    if (w->flushing) {
        /* The flush loop holds a frame: let it finish the job. */
        w->reset_pending = true;
        return;
    }
    colo_frame_writer_drop_all(w);
}

void colo_frame_writer_free(ColoFrameWriter *w)
{
    if (!w) {
        return;
    }
    colo_frame_writer_drop_all(w);
    g_free(w);
}

static gboolean colo_frame_writer_writable(void *do_not_use,
                                           GIOCondition cond, void *opaque);

/* Returns false when no watch can be had: nothing would ever flush. */
static bool colo_frame_writer_watch(ColoFrameWriter *w)
{
    Chardev *chr = qemu_chr_fe_get_driver(w->fe);

    if (w->watch) {
        return true;
    }
    if (!chr) {
        return false;
    }
    w->watch_ctx = chr->gcontext ? chr->gcontext : g_main_context_default();
    w->watch = qemu_chr_fe_add_watch(w->fe, G_IO_OUT | G_IO_HUP,
                                     colo_frame_writer_writable, w);
    return w->watch != 0;
}

/* A frame is written out completely. */
static void colo_frame_writer_done(ColoFrameWriter *w)
{
    ColoFrameOut *f = g_queue_pop_head(&w->queue);

    w->stats.frames++;
    w->stats.bytes += f->payload_len;
    g_free(f);
}

/* Write as much as the chardev takes now; arm the watch for the rest. */
static void colo_frame_writer_flush(ColoFrameWriter *w)
{
    ColoFrameOut *f;

    w->flushing = true;
    while ((f = g_queue_peek_head(&w->queue))) {
        int ret = qemu_chr_fe_write(w->fe, f->data + f->off, f->len - f->off);
        int err = errno;

        if (w->reset_pending) {
            break;
        }
        if (ret > 0) {
            f->off += ret;
            w->queued -= ret;
            if (f->off == f->len) {
                colo_frame_writer_done(w);
            }
            continue;
        }
        if ((ret == 0 || err == EAGAIN) && colo_frame_writer_watch(w)) {
            break;
        }
        /* The peer is gone, or nothing would ever flush the queue. */
        colo_frame_writer_drop_all(w);
        break;
    }
    w->flushing = false;
    if (w->reset_pending) {
        w->reset_pending = false;
        colo_frame_writer_drop_all(w);
    }
}

static gboolean colo_frame_writer_writable(void *do_not_use,
                                           GIOCondition cond, void *opaque)
{
    ColoFrameWriter *w = opaque;

    /* Returning G_SOURCE_REMOVE destroys this source; flush may add one. */
    w->watch = 0;
    colo_frame_writer_flush(w);
    /* Half empty, not just one frame's room: senders resume in bulk. */
    if (w->room_cb && w->queued <= w->max_queued / 2) {
        w->room_cb(w->room_opaque);
    }
    return G_SOURCE_REMOVE;
}

static size_t colo_frame_writer_framing(const ColoFrameWriter *w)
{
    return w->vnet_hdr ? 8 : 4;
}

static ColoFrameOut *colo_frame_out_new(ColoFrameWriter *w,
                                        const struct iovec *iov, int iovcnt,
                                        size_t size, uint32_t vnet_hdr_len)
{
    size_t hdr = colo_frame_writer_framing(w);
    ColoFrameOut *f = g_malloc(sizeof(*f) + hdr + size);

    f->len = hdr + size;
    f->off = 0;
    f->payload_len = size;
    stl_be_p(f->data, size);
    if (w->vnet_hdr) {
        stl_be_p(f->data + 4, vnet_hdr_len);
    }
    iov_to_buf(iov, iovcnt, 0, f->data + hdr, size);
    return f;
}

bool colo_frame_writer_send(ColoFrameWriter *w, const struct iovec *iov,
                            int iovcnt, uint32_t vnet_hdr_len)
{
    size_t size = iov_size(iov, iovcnt);
    uint64_t dropped = w->stats.dropped;
    ColoFrameOut *f;

    if (size == 0 || size > COLO_FRAME_MAX_LEN || vnet_hdr_len > size) {
        w->stats.bad_frames++;
        return false;
    }
    if (!colo_frame_writer_has_room(w, size)) {
        w->stats.dropped++;
        return false;
    }
    f = colo_frame_out_new(w, iov, iovcnt, size, vnet_hdr_len);
    g_queue_push_tail(&w->queue, f);
    w->queued += f->len;
    if (!w->watch) {
        colo_frame_writer_flush(w);
    }
    /* Dropped now if the chardev refused it (peer absent or gone). */
    return w->stats.dropped == dropped;
}

bool colo_frame_writer_has_room(const ColoFrameWriter *w, size_t size)
{
    /* An empty queue always takes a frame, whatever max_queued says. */
    return !w->queued ||
           w->queued + colo_frame_writer_framing(w) + size <= w->max_queued;
}

void colo_frame_writer_on_room(ColoFrameWriter *w, void (*cb)(void *opaque),
                               void *opaque)
{
    w->room_cb = cb;
    w->room_opaque = opaque;
}

size_t colo_frame_writer_queued(const ColoFrameWriter *w)
{
    return w->queued;
}

const ColoFrameStats *colo_frame_writer_stats(const ColoFrameWriter *w)
{
    return &w->stats;
}
