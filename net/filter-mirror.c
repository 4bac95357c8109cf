/*
 * COLO network filters over chardevs: filter-mirror and filter-redirector.
 *
 * filter-mirror copies every packet it sees to the chardev "outdev" and lets
 * it go on.  filter-redirector sends the packets it sees to "outdev" instead
 * of letting them go on (if it has no outdev they go on), and injects the
 * frames read from "indev" where it sits in the filter chain, in its
 * direction (see redirector_sender()).  Frames use the COLO chardev framing
 * (net/colo-frame.h); writes never block.  A reader that is absent or
 * gone makes frames drop and count.  One that is slow holds a redirector's
 * senders back instead: once outdev's queue is full the redirector keeps
 * each new packet (NETFILTER_HELD) and the sender waits, as for a full
 * peer, until the queue is half empty again; only a sender that cannot
 * wait (one without sent_cb, e.g. e1000) has its packets dropped, beyond
 * REDIRECTOR_MAX_HELD bytes.  filter-mirror does not hold: its packets go
 * on to their real receiver, and a lost copy costs the secondary a
 * mismatch, not the client a packet.
 *
 * vnet headers: packets in the chain carry the netdev's vnet header
 * (qemu_get_vnet_hdr_len(), 0 for most backends; none on packets flagged
 * QEMU_NET_PACKET_FLAG_RAW).  With vnet_hdr_support=on the header length is
 * sent with each frame; with it off the header is stripped, so the peer
 * always gets what it asked for.  Frames read from indev are adapted to the
 * netdev's header length: a missing or shorter header is zero-extended and a
 * longer one truncated (virtio-net header layouts extend each other, and an
 * all-zero header means "no offload").
 *
 * Read-only uint64 properties, for users and tests:
 *   frames-out          frames fully written to outdev
 *   bytes-out           payload bytes of those frames
 *   frames-out-dropped  packets not written to outdev: reader too slow
 *                       (queue full), absent or gone, or packet too big
 *   frames-out-held     (redirector) packets that had to wait for room
 *   frames-in           (redirector) frames read from indev and injected
 *   frames-in-dropped   (redirector) frames read from indev with nowhere to
 *                       go (the netdev has no peer on that side)
 *   frames-in-bad       (redirector) framing errors on indev
 * While a redirector is off, indev is not read: its frames wait in the
 * chardev and are injected once it is on again.
 *
 * At a COLO failover every filter is switched off, but a redirector goes
 * on reading indev until it has been quiet for REDIRECTOR_DRAIN_QUIET_MS
 * (at most REDIRECTOR_DRAIN_MAX_MS): on the primary, indev carries the
 * packets colo-compare released at the failover, which must still reach
 * the wire; on the secondary, the client's packets mirrored just before.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/iov.h"
#include "qemu/timer.h"
#include "qemu/units.h"
#include "qom/object.h"
#include "chardev/char.h"
#include "chardev/char-fe.h"
#include "net/filter.h"
#include "net/net.h"
#include "net/colo-frame.h"
#include "migration/colo.h"
#include "colo-qom.h"

#define TYPE_FILTER_MIRROR "filter-mirror"
#define TYPE_FILTER_REDIRECTOR "filter-redirector"

/* Bytes queued for a slow outdev reader before packets are dropped. */
#define FILTER_MIRROR_MAX_QUEUED (1 * MiB)

/* Packets a redirector holds for senders that cannot be made to wait. */
#define REDIRECTOR_MAX_HELD (4 * MiB)

/* How a redirector drains indev at a failover (see the top comment). */
#define REDIRECTOR_DRAIN_QUIET_MS   100
#define REDIRECTOR_DRAIN_MAX_MS     2000

/* One state for both types: they differ only in their class hooks. */
typedef struct MirrorState {
    NetFilterState parent_obj;

    char *indev;
    char *outdev;
    bool vnet_hdr;
    CharFrontend chr_in;
    CharFrontend chr_out;
    ColoFrameReader reader;
    ColoFrameWriter *writer;
    uint64_t frames_in;
    uint64_t frames_in_dropped;
    /* Packets waiting for room in outdev's queue, oldest first. */
    GQueue held;
    size_t held_bytes;
    uint64_t frames_held;
    uint64_t frames_held_dropped;
    QEMUBH *release_bh;
    bool closing;           /* being deleted: let packets pass */
    /* Draining indev after a failover switched the redirector off. */
    QEMUTimer *drain_timer;
    int64_t drain_started_ms;
    int64_t drain_last_read_ms; /* 0 until the first tick */
} MirrorState;

typedef enum MirrorCounter {
    MIRROR_FRAMES_OUT,
    MIRROR_BYTES_OUT,
    MIRROR_FRAMES_OUT_DROPPED,
    MIRROR_FRAMES_OUT_HELD,
    MIRROR_FRAMES_IN,
    MIRROR_FRAMES_IN_DROPPED,
    MIRROR_FRAMES_IN_BAD,
} MirrorCounter;

static MirrorState *mirror_state(void *obj)
{
    return container_of(NETFILTER(obj), MirrorState, parent_obj);
}

/* Send one packet to outdev, with or without its vnet header. */
static void mirror_send(MirrorState *s, unsigned flags,
                        const struct iovec *iov, int iovcnt)
{
    NetFilterState *nf = &s->parent_obj;
    uint32_t hdr = 0;
    g_autofree struct iovec *payload = NULL;
    int n;

    if (!(flags & QEMU_NET_PACKET_FLAG_RAW)) {
        hdr = qemu_get_vnet_hdr_len(nf->netdev);
    }
    if (s->vnet_hdr || !hdr) {
        colo_frame_writer_send(s->writer, iov, iovcnt, hdr);
        return;
    }
    payload = g_new(struct iovec, iovcnt);
    n = iov_copy(payload, iovcnt, iov, iovcnt, hdr, SIZE_MAX);
    colo_frame_writer_send(s->writer, payload, n, 0);
}

/* A copy goes to outdev; the packet itself goes on (0: not consumed). */
static ssize_t mirror_receive_iov(NetFilterState *nf, NetClientState *sender,
                                  unsigned flags, const struct iovec *iov,
                                  int iovcnt, NetPacketSent *sent_cb)
{
    mirror_send(mirror_state(nf), flags, iov, iovcnt);
    return 0;
}

/* A packet a redirector keeps until outdev has room for it. */
typedef struct HeldPacket {
    NetClientState *sender;
    NetPacketSent *sent_cb;
    unsigned flags;
    size_t size;
    uint8_t data[];
} HeldPacket;

/* Whether @sender still is one of the two ends of the filter's netdev. */
static bool redirector_sender_alive(NetFilterState *nf, NetClientState *nc)
{
    return nc == nf->netdev || nc == nf->netdev->peer;
}

/*
 * Hand held packets to outdev, oldest first, and let their senders go on.
 * @all: whether there is room or not (the filter goes off or away).
 */
static void redirector_release(MirrorState *s, bool all)
{
    NetFilterState *nf = &s->parent_obj;
    HeldPacket *p;

    while ((p = g_queue_peek_head(&s->held)) &&
           (all || !s->writer || colo_frame_writer_has_room(s->writer,
                                                            p->size))) {
        struct iovec iov = { .iov_base = p->data, .iov_len = p->size };

        g_queue_pop_head(&s->held);
        s->held_bytes -= p->size;
        if (s->writer) {
            mirror_send(s, p->flags, &iov, 1);
        }
        if (p->sent_cb && redirector_sender_alive(nf, p->sender)) {
            p->sent_cb(p->sender, p->size);
        }
        g_free(p);
    }
}

static void redirector_release_bh(void *opaque)
{
    redirector_release(opaque, false);
}

/* From the writer's watch: never call the senders from inside it. */
static void redirector_room(void *opaque)
{
    MirrorState *s = opaque;

    if (!g_queue_is_empty(&s->held)) {
        qemu_bh_schedule(s->release_bh);
    }
}

static ssize_t redirector_hold(MirrorState *s, NetClientState *sender,
                               unsigned flags, const struct iovec *iov,
                               int iovcnt, NetPacketSent *sent_cb)
{
    size_t size = iov_size(iov, iovcnt);
    HeldPacket *p;

    if (!sent_cb && s->held_bytes + size > REDIRECTOR_MAX_HELD) {
        s->frames_held_dropped++;
        return size;
    }
    p = g_malloc(sizeof(*p) + size);
    p->sender = sender;
    p->sent_cb = sent_cb;
    p->flags = flags;
    p->size = size;
    iov_to_buf(iov, iovcnt, 0, p->data, size);
    g_queue_push_tail(&s->held, p);
    s->held_bytes += size;
    s->frames_held++;
    /* A sender without sent_cb must not learn it: it would wait forever. */
    return sent_cb ? NETFILTER_HELD : size;
}

static ssize_t redirector_receive_iov(NetFilterState *nf,
                                      NetClientState *sender, unsigned flags,
                                      const struct iovec *iov, int iovcnt,
                                      NetPacketSent *sent_cb)
{
    MirrorState *s = mirror_state(nf);
    size_t size = iov_size(iov, iovcnt);

    if (!s->writer || s->closing) {
        return 0;
    }
    /* Behind packets already waiting, or in front of a full queue: wait. */
    if (!g_queue_is_empty(&s->held) ||
        !colo_frame_writer_has_room(s->writer, size)) {
        return redirector_hold(s, sender, flags, iov, iovcnt, sent_cb);
    }
    mirror_send(s, flags, iov, iovcnt);
    /* Swallowed, even when dropped: it was meant for outdev only. */
    return size;
}

/*
 * Injected frames enter the chain as if the netdev (queue=tx: towards the
 * guest) or its peer (queue=rx: towards the backend) had sent them.  A frame
 * does not say which way it goes, so queue=all must pick one: towards the
 * guest, like tx, since feeding a guest (the secondary's copy of the client
 * traffic) is what an indev is mostly for.
 */
static NetClientState *redirector_sender(NetFilterState *nf)
{
    if (nf->direction == NET_FILTER_DIRECTION_RX) {
        return nf->netdev->peer;
    }
    return nf->netdev;
}

static void redirector_inject(void *opaque, const uint8_t *buf, size_t len,
                              uint32_t vnet_hdr_len)
{
    MirrorState *s = opaque;
    NetFilterState *nf = &s->parent_obj;
    NetClientState *sender = redirector_sender(nf);
    uint32_t want = qemu_get_vnet_hdr_len(nf->netdev);
    g_autofree uint8_t *copy = NULL;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    if (!sender || !sender->peer) {
        s->frames_in_dropped++;
        return;
    }
    if (vnet_hdr_len != want) {
        iov.iov_len = want + len - vnet_hdr_len;
        copy = g_malloc0(iov.iov_len);
        memcpy(copy, buf, MIN(want, vnet_hdr_len));
        memcpy(copy + want, buf + vnet_hdr_len, len - vnet_hdr_len);
        iov.iov_base = copy;
    }
    s->frames_in++;
    qemu_netfilter_pass_to_next(sender, QEMU_NET_PACKET_FLAG_NONE, &iov, 1,
                                nf);
}

static int redirector_can_read(void *opaque)
{
    return COLO_FRAME_MAX_LEN;
}

static void redirector_read(void *opaque, const uint8_t *buf, int size)
{
    MirrorState *s = opaque;

    if (s->drain_timer && s->drain_last_read_ms) {
        s->drain_last_read_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    }
    colo_frame_reader_feed(&s->reader, buf, size, redirector_inject, s);
}

static void redirector_in_event(void *opaque, QEMUChrEvent event)
{
    MirrorState *s = opaque;

    /* A new connection starts with a new frame. */
    if (event == CHR_EVENT_CLOSED) {
        colo_frame_reader_reset(&s->reader);
    }
}

static void mirror_out_event(void *opaque, QEMUChrEvent event)
{
    MirrorState *s = opaque;

    if (event == CHR_EVENT_CLOSED) {
        colo_frame_writer_reset(s->writer);
        /* Nobody reads outdev now: held packets go (and drop) at once. */
        if (s->release_bh && !g_queue_is_empty(&s->held)) {
            qemu_bh_schedule(s->release_bh);
        }
    }
}

/* Read indev only while on; keep its close events either way. */
static void redirector_set_in_handlers(MirrorState *s, bool on)
{
    qemu_chr_fe_set_handlers(&s->chr_in,
                             on ? redirector_can_read : NULL,
                             on ? redirector_read : NULL,
                             redirector_in_event, NULL, s, NULL, true);
}

static bool mirror_open_chardev(NetFilterState *nf, CharFrontend *fe,
                                const char *prop, const char *id,
                                Error **errp)
{
    Chardev *chr = qemu_chr_find(id);

    if (!chr) {
        error_setg(errp, "%s: %s chardev '%s' not found",
                   object_get_typename(OBJECT(nf)), prop, id);
        return false;
    }
    return qemu_chr_fe_init(fe, chr, errp);
}

static bool mirror_open_outdev(MirrorState *s, Error **errp)
{
    if (!mirror_open_chardev(&s->parent_obj, &s->chr_out, "outdev",
                             s->outdev, errp)) {
        return false;
    }
    s->writer = colo_frame_writer_new(&s->chr_out, s->vnet_hdr,
                                      FILTER_MIRROR_MAX_QUEUED);
    qemu_chr_fe_set_handlers(&s->chr_out, NULL, NULL, mirror_out_event,
                             NULL, s, NULL, true);
    return true;
}

static void mirror_setup(NetFilterState *nf, Error **errp)
{
    MirrorState *s = mirror_state(nf);

    if (!s->outdev) {
        error_setg(errp, "filter-mirror: parameter 'outdev' is required");
        return;
    }
    mirror_open_outdev(s, errp);
}

static void redirector_setup(NetFilterState *nf, Error **errp)
{
    MirrorState *s = mirror_state(nf);

    if (!s->indev && !s->outdev) {
        error_setg(errp, "filter-redirector: 'indev' or 'outdev' is required");
        return;
    }
    if (s->indev && s->outdev && !strcmp(s->indev, s->outdev)) {
        error_setg(errp, "filter-redirector: 'indev' and 'outdev' must be "
                   "different chardevs");
        return;
    }
    if (s->indev) {
        if (!mirror_open_chardev(nf, &s->chr_in, "indev", s->indev, errp)) {
            return;
        }
        colo_frame_reader_init(&s->reader, s->vnet_hdr);
        redirector_set_in_handlers(s, nf->on);
    }
    if (s->outdev && mirror_open_outdev(s, errp)) {
        s->release_bh = qemu_bh_new(redirector_release_bh, s);
        colo_frame_writer_on_room(s->writer, redirector_room, s);
    }
}

static void redirector_drain_end(MirrorState *s)
{
    if (s->drain_timer) {
        timer_free(s->drain_timer);
        s->drain_timer = NULL;
    }
}

static void redirector_status_changed(NetFilterState *nf, Error **errp)
{
    MirrorState *s = mirror_state(nf);

    /* Whoever changes the status now decides about indev. */
    redirector_drain_end(s);
    if (!nf->on) {
        /* Packets that pass it by now must not overtake the held ones. */
        redirector_release(s, true);
    }
    if (s->indev) {
        redirector_set_in_handlers(s, nf->on);
    }
}

static void redirector_drain_tick(void *opaque)
{
    MirrorState *s = opaque;
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);

    /*
     * The failover ran with the BQL held, so the main loop may not have
     * polled indev yet: quiet counts from the first tick.
     */
    if (!s->drain_last_read_ms) {
        s->drain_started_ms = now;
        s->drain_last_read_ms = now;
    }
    if (now - s->drain_last_read_ms < REDIRECTOR_DRAIN_QUIET_MS &&
        now - s->drain_started_ms < REDIRECTOR_DRAIN_MAX_MS) {
        timer_mod(s->drain_timer, now + REDIRECTOR_DRAIN_QUIET_MS / 2);
        return;
    }
    redirector_drain_end(s);
    redirector_set_in_handlers(s, s->parent_obj.on);
}

/*
 * A failover switches the redirector off like any filter, then keeps
 * indev open until what was in flight on it has been injected.
 */
static void redirector_handle_event(NetFilterState *nf, int event,
                                    Error **errp)
{
    MirrorState *s = mirror_state(nf);
    int64_t now;

    if ((ColoEvent)event != COLO_EVENT_FAILOVER) {
        return;
    }
    if (!object_property_set_str(OBJECT(nf), "status", "off", errp) ||
        !s->indev) {
        return;
    }
    now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    s->drain_last_read_ms = 0;
    s->drain_timer = timer_new_ms(QEMU_CLOCK_REALTIME, redirector_drain_tick,
                                  s);
    timer_mod(s->drain_timer, now + REDIRECTOR_DRAIN_QUIET_MS / 2);
    redirector_set_in_handlers(s, true);
}

/* Also runs when setup failed or never ran: everything may be unset. */
static void mirror_cleanup(NetFilterState *nf)
{
    MirrorState *s = mirror_state(nf);

    redirector_drain_end(s);
    /* A sender called back may send again at once, through this filter. */
    s->closing = true;
    redirector_release(s, true);
    if (s->release_bh) {
        qemu_bh_delete(s->release_bh);
        s->release_bh = NULL;
    }
    qemu_chr_fe_deinit(&s->chr_in, false);
    colo_frame_reader_destroy(&s->reader);
    /* Handlers first: the close event handler uses the writer. */
    qemu_chr_fe_deinit(&s->chr_out, false);
    colo_frame_writer_free(s->writer);
    s->writer = NULL;
}

static void mirror_finalize(Object *obj)
{
    MirrorState *s = mirror_state(obj);

    g_free(s->indev);
    g_free(s->outdev);
}

/* The chardevs are opened at creation: changing them later means nothing. */
static bool mirror_settable(Object *obj, const char *name, Error **errp)
{
    if (NETFILTER(obj)->netdev) {
        error_setg(errp, "%s: '%s' cannot be changed once the filter is "
                   "created", object_get_typename(obj), name);
        return false;
    }
    return true;
}

static bool mirror_get_vnet_hdr(Object *obj, Error **errp)
{
    return mirror_state(obj)->vnet_hdr;
}

static void mirror_set_vnet_hdr(Object *obj, bool value, Error **errp)
{
    if (mirror_settable(obj, "vnet_hdr_support", errp)) {
        mirror_state(obj)->vnet_hdr = value;
    }
}

static uint64_t mirror_counter(Object *obj, unsigned c)
{
    MirrorState *s = mirror_state(obj);
    const ColoFrameStats *out = s->writer ?
                                colo_frame_writer_stats(s->writer) : NULL;

    switch ((MirrorCounter)c) {
    case MIRROR_FRAMES_OUT:
        return out ? out->frames : 0;
    case MIRROR_BYTES_OUT:
        return out ? out->bytes : 0;
    case MIRROR_FRAMES_OUT_DROPPED:
        return (out ? out->dropped + out->bad_frames : 0) +
               s->frames_held_dropped;
    case MIRROR_FRAMES_OUT_HELD:
        return s->frames_held;
    case MIRROR_FRAMES_IN:
        return s->frames_in;
    case MIRROR_FRAMES_IN_DROPPED:
        return s->frames_in_dropped;
    case MIRROR_FRAMES_IN_BAD:
        return s->reader.stats.bad_frames;
    default:
        g_assert_not_reached();
    }
}

static void mirror_add_counter(ObjectClass *oc, const char *name,
                               MirrorCounter c)
{
    colo_qom_add_counter(oc, name, c, mirror_counter);
}

static void mirror_class_add_common(ObjectClass *oc)
{
    /* indev and outdev: chardev ids, kept until setup opens them. */
    colo_qom_add_chardev_id(oc, "outdev", offsetof(MirrorState, outdev),
                            mirror_settable);
    object_class_property_add_bool(oc, "vnet_hdr_support",
                                   mirror_get_vnet_hdr, mirror_set_vnet_hdr);
    mirror_add_counter(oc, "frames-out", MIRROR_FRAMES_OUT);
    mirror_add_counter(oc, "bytes-out", MIRROR_BYTES_OUT);
    mirror_add_counter(oc, "frames-out-dropped", MIRROR_FRAMES_OUT_DROPPED);
}

static void mirror_class_init(ObjectClass *oc, const void *data)
{
    NETFILTER_CLASS(oc)->receive_iov = mirror_receive_iov;
    NETFILTER_CLASS(oc)->setup = mirror_setup;
    NETFILTER_CLASS(oc)->cleanup = mirror_cleanup;
    mirror_class_add_common(oc);
}

static void redirector_class_init(ObjectClass *oc, const void *data)
{
    NetFilterClass *nfc = NETFILTER_CLASS(oc);

    nfc->receive_iov = redirector_receive_iov;
    nfc->status_changed = redirector_status_changed;
    nfc->handle_event = redirector_handle_event;
    nfc->setup = redirector_setup;
    nfc->cleanup = mirror_cleanup;
    mirror_class_add_common(oc);
    colo_qom_add_chardev_id(oc, "indev", offsetof(MirrorState, indev),
                            mirror_settable);
    mirror_add_counter(oc, "frames-out-held", MIRROR_FRAMES_OUT_HELD);
    mirror_add_counter(oc, "frames-in", MIRROR_FRAMES_IN);
    mirror_add_counter(oc, "frames-in-dropped", MIRROR_FRAMES_IN_DROPPED);
    mirror_add_counter(oc, "frames-in-bad", MIRROR_FRAMES_IN_BAD);
}

/* One state type for both: a redirector is a mirror that may also read. */
static const TypeInfo mirror_types[] = {
    {
        .name = TYPE_FILTER_MIRROR,
        .parent = TYPE_NETFILTER,
        .instance_size = sizeof(MirrorState),
        .instance_finalize = mirror_finalize,
        .class_init = mirror_class_init,
    }, {
        .name = TYPE_FILTER_REDIRECTOR,
        .parent = TYPE_NETFILTER,
        .instance_size = sizeof(MirrorState),
        .instance_finalize = mirror_finalize,
        .class_init = redirector_class_init,
    },
};

DEFINE_TYPES(mirror_types)
