/*
 * filter-rewriter: on the COLO secondary, make the SVM's TCP streams carry
 * the PVM's sequence numbers.  The rules live in net/colo-rewrite.c; this
 * file only ties them to a netdev, the COLO events and QOM.
 *
 * Read-only counters (QOM uint64 properties):
 *   tracked-connections   connections in the table now
 *   rewritten-packets     frames whose seq/ack were changed
 *   malformed-packets     frames that did not parse (passed unchanged)
 *   non-tcp-packets       frames that parsed but are not TCP (passed)
 *   evicted-connections   connections dropped because the table was full
 *   closed-connections    connections ended by FIN/RST
 *   untracked-packets     TCP frames left alone after failover
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/iov.h"
#include "qemu/module.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "net/filter.h"
#include "net/net.h"
#include "migration/colo.h"
#include "net/colo-rewrite.h"
#include "colo-qom.h"
#include "trace.h"

#define TYPE_FILTER_REWRITER "filter-rewriter"
OBJECT_DECLARE_SIMPLE_TYPE(FilterRewriterState, FILTER_REWRITER)

struct FilterRewriterState {
    NetFilterState parent_obj;

    ColoRewriter *rw;
    bool vnet_hdr;          /* frames start with the netdev's vnet header */
};

typedef enum FilterRewriterCounter {
    FR_TRACKED,
    FR_REWRITTEN,
    FR_MALFORMED,
    FR_NON_TCP,
    FR_EVICTED,
    FR_CLOSED,
    FR_UNTRACKED,
    FR__MAX,
} FilterRewriterCounter;

static const char *const rewriter_counter_names[FR__MAX] = {
    [FR_TRACKED] = "tracked-connections",
    [FR_REWRITTEN] = "rewritten-packets",
    [FR_MALFORMED] = "malformed-packets",
    [FR_NON_TCP] = "non-tcp-packets",
    [FR_EVICTED] = "evicted-connections",
    [FR_CLOSED] = "closed-connections",
    [FR_UNTRACKED] = "untracked-packets",
};

static size_t rewriter_vnet_hdr_len(NetFilterState *nf)
{
    FilterRewriterState *s = FILTER_REWRITER(nf);

    return s->vnet_hdr && nf->netdev ? nf->netdev->vnet_hdr_len : 0;
}

/*
 * The sender's buffers are not ours to change (for virtio-net they are
 * guest memory), so a frame is rewritten in a copy, which then goes on
 * down the chain in place of the original.
 */
static ssize_t rewriter_receive_iov(NetFilterState *nf,
                                    NetClientState *sender, unsigned flags,
                                    const struct iovec *iov, int iovcnt,
                                    NetPacketSent *sent_cb)
{
    FilterRewriterState *s = FILTER_REWRITER(nf);
    ColoRewriteDir dir = sender == nf->netdev ? COLO_REWRITE_TO_GUEST
                                              : COLO_REWRITE_FROM_GUEST;
    size_t size = iov_size(iov, iovcnt);
    g_autofree uint8_t *buf = NULL;
    struct iovec copy;

    if (!size || !colo_rewriter_active(s->rw)) {
        return 0;
    }
    buf = g_malloc(size);
    iov_to_buf(iov, iovcnt, 0, buf, size);
    if (!colo_rewriter_process(s->rw, buf, size,
                               rewriter_vnet_hdr_len(nf), dir,
                               qemu_clock_get_ms(QEMU_CLOCK_REALTIME))) {
        return 0;
    }
    copy = (struct iovec) { .iov_base = buf, .iov_len = size };
    /* Queued frames are copied by the net queue, so buf may go. */
    return qemu_netfilter_pass_to_next(sender, flags, &copy, 1, nf);
}

/*
 * Unlike other COLO filters, the rewriter stays on after failover while
 * connections with an offset live: their clients still use PVM numbers.
 */
static void rewriter_handle_event(NetFilterState *nf, int event,
                                  Error **errp)
{
    FilterRewriterState *s = FILTER_REWRITER(nf);
    const char *id = object_get_canonical_path_component(OBJECT(nf));

    switch ((ColoEvent)event) {
    case COLO_EVENT_CHECKPOINT:
        colo_rewriter_checkpoint(s->rw);
        trace_colo_rewriter_event(id, "checkpoint",
                                  colo_rewriter_conn_count(s->rw));
        break;
    case COLO_EVENT_FAILOVER:
        colo_rewriter_failover(s->rw);
        trace_colo_rewriter_event(id, "failover",
                                  colo_rewriter_conn_count(s->rw));
        /* Off only when nothing is left to rewrite. */
        if (!colo_rewriter_active(s->rw)) {
            object_property_set_str(OBJECT(nf), "status", "off", errp);
        }
        break;
    case COLO_EVENT_NONE:
        break;
    }
}

static uint64_t rewriter_counter(Object *obj, unsigned which)
{
    FilterRewriterState *s = FILTER_REWRITER(obj);
    const ColoRewriteStats *st = colo_rewriter_stats(s->rw);

    switch ((FilterRewriterCounter)which) {
    case FR_TRACKED:
        return colo_rewriter_conn_count(s->rw);
    case FR_REWRITTEN:
        return st->rewritten;
    case FR_MALFORMED:
        return st->parse.malformed;
    case FR_NON_TCP:
        return st->non_tcp;
    case FR_EVICTED:
        return colo_rewriter_table_stats(s->rw)->evicted;
    case FR_CLOSED:
        return st->closed;
    case FR_UNTRACKED:
        return st->untracked;
    default:
        g_assert_not_reached();
    }
}

static bool rewriter_get_vnet_hdr(Object *obj, Error **errp)
{
    return FILTER_REWRITER(obj)->vnet_hdr;
}

static void rewriter_set_vnet_hdr(Object *obj, bool value, Error **errp)
{
    FILTER_REWRITER(obj)->vnet_hdr = value;
}

static void rewriter_init(Object *obj)
{
    FILTER_REWRITER(obj)->rw =
        colo_rewriter_new(COLO_REWRITE_DEFAULT_CAPACITY);
}

static void rewriter_finalize(Object *obj)
{
    FilterRewriterState *s = FILTER_REWRITER(obj);

    g_clear_pointer(&s->rw, colo_rewriter_free);
}

static void rewriter_class_init(ObjectClass *oc, const void *data)
{
    NETFILTER_CLASS(oc)->receive_iov = rewriter_receive_iov;
    NETFILTER_CLASS(oc)->handle_event = rewriter_handle_event;
    object_class_property_add_bool(oc, "vnet_hdr_support",
                                   rewriter_get_vnet_hdr,
                                   rewriter_set_vnet_hdr);
    colo_qom_add_counters(oc, rewriter_counter_names, FR__MAX,
                          rewriter_counter);
}

static const TypeInfo rewriter_info = {
    .name = TYPE_FILTER_REWRITER,
    .parent = TYPE_NETFILTER,
    .class_init = rewriter_class_init,
    .instance_size = sizeof(FilterRewriterState),
    .instance_init = rewriter_init,
    .instance_finalize = rewriter_finalize,
};

static void rewriter_register_types(void)
{
    type_register_static(&rewriter_info);
}

type_init(rewriter_register_types);
