/*
 * colo-compare: holds the primary VM's output until the secondary VM has
 * produced the same, and asks for a checkpoint when they differ.
 *
 * The object reads framed packets from two chardevs (primary_in, fed by a
 * filter-redirector on the primary's netdev; secondary_in, fed by the
 * secondary host) and writes the primary packets it releases to outdev.
 * Everything but object creation and deletion runs in its iothread, so the
 * main loop never waits for a packet; the matching itself is
 * net/colo-matcher.c.  The migration layer tells every instance when a
 * checkpoint begins and is committed, and when this side runs alone.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/lockable.h"
#include "qemu/queue.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "qom/object_interfaces.h"
#include "chardev/char-fe.h"
#include "block/aio.h"
#include "system/iothread.h"
#include "migration/colo.h"
#include "net/colo-compare.h"
#include "net/colo-frame.h"
#include "net/colo-matcher.h"
#include "colo-qom.h"
#include "trace.h"

#define TYPE_COLO_COMPARE "colo-compare"
OBJECT_DECLARE_SIMPLE_TYPE(ColoCompare, COLO_COMPARE)

#define COMPARE_DEFAULT_TIMEOUT_MS      3000
#define COMPARE_DEFAULT_SCAN_MS         1000
#define COMPARE_DEFAULT_MAX_QUEUE       1024
/* Connections tracked at once; the least recently used one goes beyond. */
#define COMPARE_MAX_CONNECTIONS         4096
/*
 * What outdev owes its reader is not capped: every packet in it was held
 * by the matcher a moment before, within the matcher's limits, and a
 * checkpoint lets out all that waited for it at once.  Input stops being
 * read while the reader owes this much (one frame overshoots at most).
 */
#define COMPARE_OUT_PAUSE_BYTES         (1 * 1024 * 1024)
/* notify_dev carries a few short messages. */
#define COMPARE_NOTIFY_QUEUE_BYTES      (64 * 1024)
/*
 * The Xen toolstack's protocol on notify_dev, one framed string each way:
 * we ask for a checkpoint; it says hello, which we answer, and tells us
 * when a checkpoint is done.
 */
#define COMPARE_XEN_CHECKPOINT_MSG      "DO_CHECKPOINT"
#define COMPARE_XEN_HELLO_MSG           "COLO_USERSPACE_PROXY_INIT"
#define COMPARE_XEN_HELLO_REPLY_MSG     "COLO_COMPARE_GET_XEN_INIT"
#define COMPARE_XEN_CHECKPOINT_DONE_MSG "COLO_CHECKPOINT"

enum { IN_PRIMARY, IN_SECONDARY, IN__MAX };

struct ColoCompare {
    Object parent_obj;

    char *name;                     /* the object's id, for traces */

    /* Properties, fixed once the object is complete. */
    char *in_id[IN__MAX];
    char *outdev_id;
    char *notify_id;
    IOThread *iothread;
    uint64_t timeout_ms;
    uint32_t scan_ms;
    uint32_t max_queue;
    bool vnet_hdr;

    bool running;                   /* complete and not torn down */
    AioContext *ctx;
    GMainContext *gctx;
    CharFrontend in[IN__MAX];
    CharFrontend out;
    CharFrontend notify;

    /* Only the iothread touches these, under @lock. */
    QemuMutex lock;
    ColoFrameReader reader[IN__MAX];
    ColoFrameReader notify_reader;  /* with notify_dev */
    ColoFrameWriter *out_writer;
    ColoFrameWriter *notify_writer;
    ColoMatcher *matcher;
    QEMUTimer *scan_timer;
    uint64_t checkpoint_requests;

    QTAILQ_ENTRY(ColoCompare) next;
};

/* Every running instance, for the migration layer's notifications. */
static QemuMutex compares_lock;
static QTAILQ_HEAD(, ColoCompare) compares =
    QTAILQ_HEAD_INITIALIZER(compares);

static void __attribute__((constructor)) colo_compare_init_lock(void)
{
    qemu_mutex_init(&compares_lock);
}

/* ---- Running a function in an instance's iothread and waiting ---- */

typedef struct CompareJob {
    ColoCompare *c;
    void (*fn)(ColoCompare *c);
    QemuEvent done;
} CompareJob;

static void compare_job_bh(void *opaque)
{
    CompareJob *job = opaque;

    job->fn(job->c);
    qemu_event_set(&job->done);
}

/*
 * The iothread never takes the BQL or compares_lock, so waiting for it
 * while holding either cannot deadlock.
 */
static void compare_run_sync(ColoCompare *c, void (*fn)(ColoCompare *c))
{
    CompareJob job = { .c = c, .fn = fn };

    qemu_event_init(&job.done, false);
    aio_bh_schedule_oneshot(c->ctx, compare_job_bh, &job);
    qemu_event_wait(&job.done);
    qemu_event_destroy(&job.done);
}

/* ---- The matcher's callbacks (iothread, @lock held) ---- */

static void compare_release(void *opaque, ColoFrame *frame)
{
    ColoCompare *c = opaque;
    struct iovec iov = { .iov_base = frame->data, .iov_len = frame->len };

    /* An absent outdev drops and counts; it never blocks. */
    colo_frame_writer_send(c->out_writer, &iov, 1, frame->vnet_hdr_len);
    g_free(frame->data);
}

static void compare_notify_send(ColoCompare *c, const char *msg)
{
    struct iovec iov = { .iov_base = (void *)msg, .iov_len = strlen(msg) };

    colo_frame_writer_send(c->notify_writer, &iov, 1, 0);
}

static COLOCheckpointCause compare_checkpoint_cause(ColoDivergence why)
{
    switch (why) {
    case COLO_DIVERGED_PAYLOAD:
        return COLO_CHECKPOINT_CAUSE_MISMATCH;
    case COLO_DIVERGED_TIMEOUT:
        return COLO_CHECKPOINT_CAUSE_TIMEOUT;
    default:
        /* A full queue, or a full connection table. */
        return COLO_CHECKPOINT_CAUSE_QUEUE_FULL;
    }
}

static void compare_diverged(void *opaque, ColoDivergence why)
{
    ColoCompare *c = opaque;

    c->checkpoint_requests++;
    trace_colo_compare_diverged(c->name, colo_divergence_str(why),
                                c->checkpoint_requests);
    if (c->notify_writer) {
        compare_notify_send(c, COMPARE_XEN_CHECKPOINT_MSG);
    } else {
        colo_checkpoint_request(compare_checkpoint_cause(why));
    }
}

static const ColoMatcherOps compare_matcher_ops = {
    .release = compare_release,
    .diverged = compare_diverged,
};

/* ---- Input (iothread) ---- */

static int64_t compare_now_ns(void)
{
    return qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
}

static void compare_frame_in(ColoCompare *c, ColoSide side,
                             const uint8_t *buf, size_t len,
                             uint32_t vnet_hdr_len)
{
    ColoFrame f = {
        .data = g_memdup2(buf, len),
        .len = len,
        .vnet_hdr_len = vnet_hdr_len,
        .arrival_ns = compare_now_ns(),
    };

    colo_matcher_input(c->matcher, side, &f);
}

static void compare_primary_frame(void *opaque, const uint8_t *buf,
                                  size_t len, uint32_t vnet_hdr_len)
{
    compare_frame_in(opaque, COLO_SIDE_PRIMARY, buf, len, vnet_hdr_len);
}

static void compare_secondary_frame(void *opaque, const uint8_t *buf,
                                    size_t len, uint32_t vnet_hdr_len)
{
    compare_frame_in(opaque, COLO_SIDE_SECONDARY, buf, len, vnet_hdr_len);
}

/*
 * Back-pressure: while outdev's reader lags, stop reading input rather than
 * drop released packets; the senders' own queues absorb the burst.
 */
static int compare_can_read(void *opaque)
{
    ColoCompare *c = opaque;
    size_t queued;

    WITH_QEMU_LOCK_GUARD(&c->lock) {
        queued = c->out_writer ? colo_frame_writer_queued(c->out_writer) : 0;
    }
    return queued < COMPARE_OUT_PAUSE_BYTES ? COLO_FRAME_MAX_LEN : 0;
}

static void compare_read(ColoCompare *c, int in, const uint8_t *buf, int size)
{
    QEMU_LOCK_GUARD(&c->lock);
    colo_frame_reader_feed(&c->reader[in], buf, size,
                           in == IN_PRIMARY ? compare_primary_frame
                                            : compare_secondary_frame, c);
}

static void compare_primary_read(void *opaque, const uint8_t *buf, int size)
{
    compare_read(opaque, IN_PRIMARY, buf, size);
}

static void compare_secondary_read(void *opaque, const uint8_t *buf,
                                   int size)
{
    compare_read(opaque, IN_SECONDARY, buf, size);
}

static bool compare_notify_is(const uint8_t *buf, size_t len,
                              const char *msg)
{
    return len == strlen(msg) && !memcmp(buf, msg, len);
}

/* A message from the Xen toolstack on notify_dev (iothread, @lock held). */
static void compare_notify_frame(void *opaque, const uint8_t *buf,
                                 size_t len, uint32_t vnet_hdr_len)
{
    ColoCompare *c = opaque;

    if (compare_notify_is(buf, len, COMPARE_XEN_HELLO_MSG)) {
        trace_colo_compare_event(c->name, "Xen toolstack connected");
        compare_notify_send(c, COMPARE_XEN_HELLO_REPLY_MSG);
    } else if (compare_notify_is(buf, len, COMPARE_XEN_CHECKPOINT_DONE_MSG)) {
        /*
         * Xen took the checkpoint without telling us it began: all that
         * came before this message is covered by it.
         */
        trace_colo_compare_event(c->name, "Xen checkpoint done");
        colo_matcher_checkpoint_begin(c->matcher);
        colo_matcher_checkpoint_done(c->matcher);
    } else {
        trace_colo_compare_event(c->name, "unknown notify_dev message");
    }
}

static int compare_notify_can_read(void *opaque)
{
    return COLO_FRAME_MAX_LEN;
}

static void compare_notify_read(void *opaque, const uint8_t *buf, int size)
{
    ColoCompare *c = opaque;

    QEMU_LOCK_GUARD(&c->lock);
    colo_frame_reader_feed(&c->notify_reader, buf, size,
                           compare_notify_frame, c);
}

/* A new connection starts on a frame boundary: forget a partial frame. */
static void compare_reader_event(ColoCompare *c, ColoFrameReader *r,
                                 QEMUChrEvent event)
{
    if (event == CHR_EVENT_CLOSED || event == CHR_EVENT_OPENED) {
        QEMU_LOCK_GUARD(&c->lock);
        colo_frame_reader_reset(r);
    }
}

static void compare_notify_event(void *opaque, QEMUChrEvent event)
{
    ColoCompare *c = opaque;

    compare_reader_event(c, &c->notify_reader, event);
}

static void compare_primary_event(void *opaque, QEMUChrEvent event)
{
    ColoCompare *c = opaque;

    compare_reader_event(c, &c->reader[IN_PRIMARY], event);
}

static void compare_secondary_event(void *opaque, QEMUChrEvent event)
{
    ColoCompare *c = opaque;

    compare_reader_event(c, &c->reader[IN_SECONDARY], event);
}

static void compare_scan(void *opaque)
{
    ColoCompare *c = opaque;
    int64_t now = compare_now_ns();

    WITH_QEMU_LOCK_GUARD(&c->lock) {
        colo_matcher_expire(c->matcher, now);
    }
    timer_mod(c->scan_timer,
              now / SCALE_MS + c->scan_ms);
}

/* ---- Set-up and teardown ---- */

static void compare_start_in_iothread(ColoCompare *c)
{
    ColoMatcherConfig cfg = {
        .max_connections = COMPARE_MAX_CONNECTIONS,
        .max_queue = c->max_queue,
        .timeout_ns = c->timeout_ms * SCALE_MS,
    };

    QEMU_LOCK_GUARD(&c->lock);
    c->matcher = colo_matcher_new(&cfg, &compare_matcher_ops, c);
    c->scan_timer = aio_timer_new(c->ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                  compare_scan, c);
    timer_mod(c->scan_timer,
              qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + c->scan_ms);
}

static void compare_stop_in_iothread(ColoCompare *c)
{
    QEMU_LOCK_GUARD(&c->lock);
    timer_free(c->scan_timer);
    c->scan_timer = NULL;
    /* Held primary packets go out only if no checkpoint owes them. */
    colo_matcher_free(c->matcher);
    c->matcher = NULL;
    colo_frame_writer_free(c->out_writer);
    c->out_writer = NULL;
    colo_frame_writer_free(c->notify_writer);
    c->notify_writer = NULL;
}

static bool compare_chardev_init(CharFrontend *fe, const char *prop,
                                 const char *id, Error **errp)
{
    Chardev *chr = qemu_chr_find(id);

    if (!chr) {
        error_setg(errp, "colo-compare: %s: no chardev '%s'", prop, id);
        return false;
    }
    if (!qemu_chr_has_feature(chr, QEMU_CHAR_FEATURE_GCONTEXT)) {
        /* Its handlers would have to run in the main loop. */
        error_setg(errp, "colo-compare: %s: chardev '%s' cannot be used "
                   "from an iothread; use a socket chardev", prop, id);
        return false;
    }
    if (!qemu_chr_fe_init(fe, chr, errp)) {
        error_prepend(errp, "colo-compare: %s '%s': ", prop, id);
        return false;
    }
    return true;
}

static bool compare_check_properties(ColoCompare *c, Error **errp)
{
    const char *ids[] = { c->in_id[IN_PRIMARY], c->in_id[IN_SECONDARY],
                          c->outdev_id, c->notify_id };
    const char *names[] = { "primary_in", "secondary_in", "outdev",
                            "notify_dev" };

    for (int i = 0; i < 3; i++) {
        if (!ids[i] || !*ids[i]) {
            error_setg(errp, "colo-compare: '%s' is required", names[i]);
            return false;
        }
    }
    if (!c->iothread) {
        error_setg(errp, "colo-compare: 'iothread' is required");
        return false;
    }
    for (int i = 0; i < ARRAY_SIZE(ids); i++) {
        for (int j = i + 1; j < ARRAY_SIZE(ids); j++) {
            if (ids[i] && ids[j] && !strcmp(ids[i], ids[j])) {
                error_setg(errp, "colo-compare: '%s' and '%s' must be "
                           "different chardevs, both are '%s'",
                           names[i], names[j], ids[i]);
                return false;
            }
        }
    }
    if (!c->timeout_ms || !c->scan_ms || !c->max_queue) {
        error_setg(errp, "colo-compare: compare_timeout, expired_scan_cycle "
                   "and max_queue_size must be greater than 0");
        return false;
    }
    if (c->timeout_ms > INT64_MAX / SCALE_MS) {
        error_setg(errp, "colo-compare: compare_timeout is too large");
        return false;
    }
    return true;
}

static void compare_release_chardevs(ColoCompare *c)
{
    for (int i = 0; i < IN__MAX; i++) {
        qemu_chr_fe_deinit(&c->in[i], false);
    }
    qemu_chr_fe_deinit(&c->out, false);
    qemu_chr_fe_deinit(&c->notify, false);
}

static void colo_compare_complete(UserCreatable *uc, Error **errp)
{
    ColoCompare *c = COLO_COMPARE(uc);

    if (!compare_check_properties(c, errp) ||
        !compare_chardev_init(&c->in[IN_PRIMARY], "primary_in",
                              c->in_id[IN_PRIMARY], errp) ||
        !compare_chardev_init(&c->in[IN_SECONDARY], "secondary_in",
                              c->in_id[IN_SECONDARY], errp) ||
        !compare_chardev_init(&c->out, "outdev", c->outdev_id, errp) ||
        (c->notify_id &&
         !compare_chardev_init(&c->notify, "notify_dev", c->notify_id,
                               errp))) {
        compare_release_chardevs(c);
        return;
    }

    c->name = g_strdup(object_get_canonical_path_component(OBJECT(c)));
    c->ctx = iothread_get_aio_context(c->iothread);
    c->gctx = iothread_get_g_main_context(c->iothread);
    for (int i = 0; i < IN__MAX; i++) {
        colo_frame_reader_init(&c->reader[i], c->vnet_hdr);
    }
    /* The writers' watches run where the handlers were set: the iothread. */
    qemu_chr_fe_set_handlers(&c->out, NULL, NULL, NULL, NULL, NULL,
                             c->gctx, true);
    c->out_writer = colo_frame_writer_new(&c->out, c->vnet_hdr, SIZE_MAX);
    if (c->notify_id) {
        colo_frame_reader_init(&c->notify_reader, false);
        qemu_chr_fe_set_handlers(&c->notify, NULL, NULL, NULL, NULL, NULL,
                                 c->gctx, true);
        c->notify_writer = colo_frame_writer_new(&c->notify, false,
                                                 COMPARE_NOTIFY_QUEUE_BYTES);
    }
    compare_run_sync(c, compare_start_in_iothread);
    if (c->notify_id) {
        /* After the matcher exists: a message may come at once. */
        qemu_chr_fe_set_handlers(&c->notify, compare_notify_can_read,
                                 compare_notify_read, compare_notify_event,
                                 NULL, c, c->gctx, true);
    }

    qemu_chr_fe_set_handlers(&c->in[IN_PRIMARY], compare_can_read,
                             compare_primary_read, compare_primary_event,
                             NULL, c, c->gctx, true);
    qemu_chr_fe_set_handlers(&c->in[IN_SECONDARY], compare_can_read,
                             compare_secondary_read, compare_secondary_event,
                             NULL, c, c->gctx, true);
    c->running = true;
    WITH_QEMU_LOCK_GUARD(&compares_lock) {
        QTAILQ_INSERT_TAIL(&compares, c, next);
    }
}

/* Stop reading, release what is held, let go of the chardevs. */
static void compare_teardown(ColoCompare *c)
{
    if (!c->running) {
        return;
    }
    WITH_QEMU_LOCK_GUARD(&compares_lock) {
        QTAILQ_REMOVE(&compares, c, next);
    }
    c->running = false;
    for (int i = 0; i < IN__MAX; i++) {
        qemu_chr_fe_set_handlers(&c->in[i], NULL, NULL, NULL, NULL, NULL,
                                 NULL, true);
    }
    if (c->notify_id) {
        /* The writer's watch stays in the iothread until it is freed. */
        qemu_chr_fe_set_handlers(&c->notify, NULL, NULL, NULL, NULL, NULL,
                                 c->gctx, true);
    }
    /* Also waits for a read handler that was running to return. */
    compare_run_sync(c, compare_stop_in_iothread);
    for (int i = 0; i < IN__MAX; i++) {
        colo_frame_reader_destroy(&c->reader[i]);
    }
    if (c->notify_id) {
        colo_frame_reader_destroy(&c->notify_reader);
    }
    compare_release_chardevs(c);
}

/* ---- Notifications from the migration layer ---- */

static void compare_checkpoint_begin_job(ColoCompare *c)
{
    trace_colo_compare_event(c->name, "checkpoint begins");
    QEMU_LOCK_GUARD(&c->lock);
    colo_matcher_checkpoint_begin(c->matcher);
}

static void compare_checkpoint_done_job(ColoCompare *c)
{
    trace_colo_compare_event(c->name, "checkpoint committed");
    QEMU_LOCK_GUARD(&c->lock);
    colo_matcher_checkpoint_done(c->matcher);
}

static void compare_failover_job(ColoCompare *c)
{
    trace_colo_compare_event(c->name, "failover, passing packets through");
    QEMU_LOCK_GUARD(&c->lock);
    colo_matcher_flush(c->matcher, true);
}

static void compare_for_each(void (*fn)(ColoCompare *c))
{
    ColoCompare *c;

    QEMU_LOCK_GUARD(&compares_lock);
    QTAILQ_FOREACH(c, &compares, next) {
        compare_run_sync(c, fn);
    }
}

void colo_compare_checkpoint_begin(void)
{
    compare_for_each(compare_checkpoint_begin_job);
}

void colo_compare_checkpoint_done(void)
{
    compare_for_each(compare_checkpoint_done_job);
}

void colo_compare_failover(void)
{
    compare_for_each(compare_failover_job);
}

void colo_compare_cleanup(void)
{
    ColoCompare *c;

    /* Teardown removes the instance from the list; take them one by one. */
    for (;;) {
        WITH_QEMU_LOCK_GUARD(&compares_lock) {
            c = QTAILQ_FIRST(&compares);
        }
        if (!c) {
            return;
        }
        compare_teardown(c);
    }
}

/* ---- Properties ---- */

static bool compare_settable(ColoCompare *c, const char *name, Error **errp)
{
    if (c->running) {
        error_setg(errp, "colo-compare: '%s' cannot change once the object "
                   "is created", name);
        return false;
    }
    return true;
}

/* The chardev ids, as colo_qom_add_chardev_id() asks. */
static bool compare_chardev_settable(Object *obj, const char *name,
                                     Error **errp)
{
    return compare_settable(COLO_COMPARE(obj), name, errp);
}

static bool compare_get_vnet_hdr(Object *obj, Error **errp)
{
    return COLO_COMPARE(obj)->vnet_hdr;
}

static void compare_set_vnet_hdr(Object *obj, bool value, Error **errp)
{
    ColoCompare *c = COLO_COMPARE(obj);

    if (compare_settable(c, "vnet_hdr_support", errp)) {
        c->vnet_hdr = value;
    }
}

static void compare_get_timeout(Object *obj, Visitor *v, const char *name,
                                void *opaque, Error **errp)
{
    uint64_t value = COLO_COMPARE(obj)->timeout_ms;

    visit_type_uint64(v, name, &value, errp);
}

static void compare_set_timeout(Object *obj, Visitor *v, const char *name,
                                void *opaque, Error **errp)
{
    ColoCompare *c = COLO_COMPARE(obj);
    uint64_t value;

    if (compare_settable(c, name, errp) &&
        visit_type_uint64(v, name, &value, errp)) {
        c->timeout_ms = value;
    }
}

/* uint32 properties; @opaque is the field's offset in ColoCompare. */
static void compare_get_u32(Object *obj, Visitor *v, const char *name,
                            void *opaque, Error **errp)
{
    uint32_t value = *(uint32_t *)((char *)obj + (uintptr_t)opaque);

    visit_type_uint32(v, name, &value, errp);
}

static void compare_set_u32(Object *obj, Visitor *v, const char *name,
                            void *opaque, Error **errp)
{
    uint32_t value;

    if (compare_settable(COLO_COMPARE(obj), name, errp) &&
        visit_type_uint32(v, name, &value, errp)) {
        *(uint32_t *)((char *)obj + (uintptr_t)opaque) = value;
    }
}

/*
 * Counters, read-only.  They are the way to watch a running comparator:
 * how much it matched, why it asked for checkpoints, what it dropped.
 */
typedef enum CompareCounter {
    CNT_PRIMARY_FRAMES,
    CNT_SECONDARY_FRAMES,
    CNT_RELEASED,
    CNT_MATCHED,
    CNT_MATCH_WAIT_US,
    CNT_MATCH_WAIT_MAX_US,
    CNT_RELEASED_UNMATCHED,
    CNT_RELEASED_CHECKPOINT,
    CNT_HELD_FOR_CHECKPOINT,
    CNT_MISMATCHES,
    CNT_TIMEOUTS,
    CNT_QUEUE_OVERFLOWS,
    CNT_EVICTIONS,
    CNT_CHECKPOINT_REQUESTS,
    CNT_RETRANSMITS,
    CNT_SECONDARY_REFUSED,
    CNT_SECONDARY_EVICTIONS,
    CNT_MALFORMED,
    CNT_BAD_FRAMING,
    CNT_OUT_DROPPED,
    CNT_CONNECTIONS,
    CNT_CHECKPOINTS,
    CNT__MAX,
} CompareCounter;

static const char *const counter_names[CNT__MAX] = {
    [CNT_PRIMARY_FRAMES] = "primary-packets",
    [CNT_SECONDARY_FRAMES] = "secondary-packets",
    [CNT_RELEASED] = "released",
    [CNT_MATCHED] = "matched",
    [CNT_MATCH_WAIT_US] = "match-wait-us",
    [CNT_MATCH_WAIT_MAX_US] = "match-wait-max-us",
    [CNT_RELEASED_UNMATCHED] = "released-unmatched",
    [CNT_RELEASED_CHECKPOINT] = "released-at-checkpoint",
    [CNT_HELD_FOR_CHECKPOINT] = "held-for-checkpoint",
    [CNT_MISMATCHES] = "mismatches",
    [CNT_TIMEOUTS] = "timeouts",
    [CNT_QUEUE_OVERFLOWS] = "queue-overflows",
    [CNT_EVICTIONS] = "evictions",
    [CNT_CHECKPOINT_REQUESTS] = "checkpoint-requests",
    [CNT_RETRANSMITS] = "retransmits",
    [CNT_SECONDARY_REFUSED] = "secondary-refused",
    [CNT_SECONDARY_EVICTIONS] = "secondary-evictions",
    [CNT_MALFORMED] = "malformed",
    [CNT_BAD_FRAMING] = "bad-framing",
    [CNT_OUT_DROPPED] = "out-dropped",
    [CNT_CONNECTIONS] = "connections",
    [CNT_CHECKPOINTS] = "checkpoints",
};

static uint64_t compare_counter(Object *obj, unsigned which)
{
    ColoCompare *c = COLO_COMPARE(obj);
    const ColoMatcherStats *st;

    QEMU_LOCK_GUARD(&c->lock);
    if (!c->matcher) {
        return 0;
    }
    st = colo_matcher_stats(c->matcher);
    switch ((CompareCounter)which) {
    case CNT_PRIMARY_FRAMES:
        return st->frames[COLO_SIDE_PRIMARY];
    case CNT_SECONDARY_FRAMES:
        return st->frames[COLO_SIDE_SECONDARY];
    case CNT_RELEASED:
        return st->released;
    case CNT_MATCHED:
        return st->matched;
    case CNT_MATCH_WAIT_US:
        return st->match_wait_ns / SCALE_US;
    case CNT_MATCH_WAIT_MAX_US:
        return st->match_wait_max_ns / SCALE_US;
    case CNT_RELEASED_UNMATCHED:
        return st->released_unmatched;
    case CNT_RELEASED_CHECKPOINT:
        return st->released_checkpoint;
    case CNT_HELD_FOR_CHECKPOINT:
        return st->held_for_checkpoint;
    case CNT_MISMATCHES:
        return st->diverged[COLO_DIVERGED_PAYLOAD];
    case CNT_TIMEOUTS:
        return st->diverged[COLO_DIVERGED_TIMEOUT];
    case CNT_QUEUE_OVERFLOWS:
        return st->diverged[COLO_DIVERGED_QUEUE_FULL];
    case CNT_EVICTIONS:
        return st->diverged[COLO_DIVERGED_EVICTED];
    case CNT_CHECKPOINT_REQUESTS:
        return c->checkpoint_requests;
    case CNT_RETRANSMITS:
        return st->retransmits;
    case CNT_SECONDARY_REFUSED:
        return st->secondary_refused;
    case CNT_SECONDARY_EVICTIONS:
        return st->secondary_conns_evicted;
    case CNT_MALFORMED:
        return st->parse[COLO_SIDE_PRIMARY].malformed +
               st->parse[COLO_SIDE_SECONDARY].malformed;
    case CNT_BAD_FRAMING:
        return c->reader[IN_PRIMARY].stats.bad_frames +
               c->reader[IN_SECONDARY].stats.bad_frames;
    case CNT_OUT_DROPPED:
        return colo_frame_writer_stats(c->out_writer)->dropped;
    case CNT_CONNECTIONS:
        return colo_matcher_connections(c->matcher);
    case CNT_CHECKPOINTS:
        return st->checkpoints;
    default:
        g_assert_not_reached();
    }
}

/* ---- QOM ---- */

static void colo_compare_instance_init(Object *obj)
{
    ColoCompare *c = COLO_COMPARE(obj);

    c->timeout_ms = COMPARE_DEFAULT_TIMEOUT_MS;
    c->scan_ms = COMPARE_DEFAULT_SCAN_MS;
    c->max_queue = COMPARE_DEFAULT_MAX_QUEUE;
    qemu_mutex_init(&c->lock);
}

static void colo_compare_finalize(Object *obj)
{
    ColoCompare *c = COLO_COMPARE(obj);

    compare_teardown(c);
    qemu_mutex_destroy(&c->lock);
    for (int i = 0; i < IN__MAX; i++) {
        g_free(c->in_id[i]);
    }
    g_free(c->outdev_id);
    g_free(c->notify_id);
    g_free(c->name);
}

static void colo_compare_class_init(ObjectClass *oc, const void *data)
{
    UserCreatableClass *ucc = USER_CREATABLE_CLASS(oc);

    ucc->complete = colo_compare_complete;

    colo_qom_add_chardev_id(oc, "primary_in",
                            offsetof(ColoCompare, in_id[IN_PRIMARY]),
                            compare_chardev_settable);
    colo_qom_add_chardev_id(oc, "secondary_in",
                            offsetof(ColoCompare, in_id[IN_SECONDARY]),
                            compare_chardev_settable);
    colo_qom_add_chardev_id(oc, "outdev", offsetof(ColoCompare, outdev_id),
                            compare_chardev_settable);
    colo_qom_add_chardev_id(oc, "notify_dev",
                            offsetof(ColoCompare, notify_id),
                            compare_chardev_settable);
    object_class_property_add_link(oc, "iothread", TYPE_IOTHREAD,
                                   offsetof(ColoCompare, iothread),
                                   object_property_allow_set_link,
                                   OBJ_PROP_LINK_STRONG);
    object_class_property_add(oc, "compare_timeout", "uint64",
                              compare_get_timeout, compare_set_timeout,
                              NULL, NULL);
    object_class_property_add(oc, "expired_scan_cycle", "uint32",
                              compare_get_u32, compare_set_u32, NULL,
                              (void *)offsetof(ColoCompare, scan_ms));
    object_class_property_add(oc, "max_queue_size", "uint32",
                              compare_get_u32, compare_set_u32, NULL,
                              (void *)offsetof(ColoCompare, max_queue));
    object_class_property_add_bool(oc, "vnet_hdr_support",
                                   compare_get_vnet_hdr,
                                   compare_set_vnet_hdr);
    colo_qom_add_counters(oc, counter_names, CNT__MAX, compare_counter);
}

static const TypeInfo colo_compare_info = {
    .name = TYPE_COLO_COMPARE,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(ColoCompare),
    .instance_init = colo_compare_instance_init,
    .instance_finalize = colo_compare_finalize,
    .class_init = colo_compare_class_init,
    .interfaces = (const InterfaceInfo[]) {
        { TYPE_USER_CREATABLE },
        { }
    },
};

static void colo_compare_register_types(void)
{
    type_register_static(&colo_compare_info);
}

type_init(colo_compare_register_types);
