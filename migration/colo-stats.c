/*
 * COLO checkpoint statistics.
 *
 * Pauses are kept in a ring of the latest COLO_STATS_WINDOW, so that the
 * median and the 99th percentile follow what the checkpoints cost now;
 * counts, sums and the maximum cover the whole session.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-migration.h"
#include "qemu/lockable.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "migration/colo.h"
#include "migration-stats.h"
#include "colo-stats.h"
#include "colo-verify.h"

#define COLO_STATS_WINDOW 1024
#define COLO_NO_CAUSE (-1)

/* A secondary's figures: what applying the checkpoints cost it. */
typedef struct ColoApplied {
    bool active;                /* this QEMU is or was a secondary */
    uint64_t checkpoints;
    uint64_t phase_last[COLO_APPLY__MAX];
    uint64_t phase_total[COLO_APPLY__MAX];
} ColoApplied;

/* One COLO session's figures. */
typedef struct ColoSession {
    uint64_t checkpoints;
    uint64_t causes[COLO_CHECKPOINT_CAUSE__MAX];
    uint64_t pauses[COLO_STATS_WINDOW];   /* microseconds, a ring */
    uint64_t pause_last;
    uint64_t pause_max;
    uint64_t bytes_last, bytes_total;
    uint64_t pages_last, pages_total;
    uint64_t phase_last[COLO_PHASE__MAX];
    uint64_t phase_total[COLO_PHASE__MAX];
    ColoApplied applied;
} ColoSession;

typedef struct ColoStats {
    QemuMutex lock;
    int wanted;                 /* atomic: COLOCheckpointCause or NO_CAUSE */
    /* Guarded by @lock; the migration thread writes, the monitor reads. */
    ColoSession s;

    /* The checkpoint under way; only the migration thread touches these. */
    int cause;
    int64_t phase_start_ns;
    uint64_t phase_us[COLO_PHASE__MAX];
    uint64_t bytes_at_start, pages_at_start;

    /* The checkpoint a secondary applies; only its COLO thread. */
    int64_t apply_start_ns;
    uint64_t apply_us[COLO_APPLY__MAX];
} ColoStats;

static ColoStats stats = { .wanted = COLO_NO_CAUSE };

static void __attribute__((constructor)) colo_stats_init(void)
{
    qemu_mutex_init(&stats.lock);
}

static int64_t now_ns(void)
{
    return qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
}

static uint64_t pages_sent(void)
{
    return stat64_get(&mig_stats.normal_pages) +
           stat64_get(&mig_stats.zero_pages);
}

void colo_stats_reset(void)
{
    QEMU_LOCK_GUARD(&stats.lock);
    memset(&stats.s, 0, sizeof(stats.s));
    qatomic_set(&stats.wanted, COLO_NO_CAUSE);
}

void colo_stats_want(COLOCheckpointCause cause)
{
    qatomic_cmpxchg(&stats.wanted, COLO_NO_CAUSE, cause);
}

void colo_stats_checkpoint_begin(void)
{
    int cause = qatomic_xchg(&stats.wanted, COLO_NO_CAUSE);

    /* A request that raced with the timer's is still a request. */
    stats.cause = cause == COLO_NO_CAUSE ? COLO_CHECKPOINT_CAUSE_TIMER : cause;
    memset(stats.phase_us, 0, sizeof(stats.phase_us));
    stats.bytes_at_start = migration_transferred_bytes();
    stats.pages_at_start = pages_sent();
    stats.phase_start_ns = now_ns();
}

/* The time since *@since, in microseconds; *@since moves to now. */
static uint64_t lap_us(int64_t *since)
{
    int64_t now = now_ns();
    uint64_t us = (now - *since) / SCALE_US;

    *since = now;
    return us;
}

void colo_stats_phase_done(ColoStatsPhase phase)
{
    stats.phase_us[phase] = lap_us(&stats.phase_start_ns);
}

void colo_stats_checkpoint_end(void)
{
    uint64_t pause = 0;
    ColoSession *s = &stats.s;

    for (int i = COLO_PHASE_STOP; i < COLO_PHASE__MAX; i++) {
        pause += stats.phase_us[i];
    }
    QEMU_LOCK_GUARD(&stats.lock);
    s->pauses[s->checkpoints % COLO_STATS_WINDOW] = pause;
    s->checkpoints++;
    s->causes[stats.cause]++;
    s->pause_last = pause;
    s->pause_max = MAX(s->pause_max, pause);
    s->bytes_last = migration_transferred_bytes() - stats.bytes_at_start;
    s->bytes_total += s->bytes_last;
    s->pages_last = pages_sent() - stats.pages_at_start;
    s->pages_total += s->pages_last;
    for (int i = 0; i < COLO_PHASE__MAX; i++) {
        s->phase_last[i] = stats.phase_us[i];
        s->phase_total[i] += stats.phase_us[i];
    }
}

void colo_stats_secondary_start(void)
{
    colo_stats_reset();
    QEMU_LOCK_GUARD(&stats.lock);
    stats.s.applied.active = true;
}

void colo_stats_apply_begin(void)
{
    memset(stats.apply_us, 0, sizeof(stats.apply_us));
    stats.apply_start_ns = now_ns();
}

void colo_stats_apply_phase_done(ColoApplyPhase phase)
{
    stats.apply_us[phase] = lap_us(&stats.apply_start_ns);
}

void colo_stats_apply_end(void)
{
    ColoApplied *a = &stats.s.applied;

    QEMU_LOCK_GUARD(&stats.lock);
    a->checkpoints++;
    for (int i = 0; i < COLO_APPLY__MAX; i++) {
        a->phase_last[i] = stats.apply_us[i];
        a->phase_total[i] += stats.apply_us[i];
    }
}

/* ---- Reading ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static COLOCheckpointPhases *phases_new(const uint64_t *us, uint64_t div)
{
    COLOCheckpointPhases *p = g_new0(COLOCheckpointPhases, 1);

    div = MAX(div, 1);
    p->request = us[COLO_PHASE_REQUEST] / div;
    p->stop = us[COLO_PHASE_STOP] / div;
    p->ram = us[COLO_PHASE_RAM] / div;
    p->device_state = us[COLO_PHASE_DEVICE_STATE] / div;
    p->send = us[COLO_PHASE_SEND] / div;
    p->load = us[COLO_PHASE_LOAD] / div;
    p->resume = us[COLO_PHASE_RESUME] / div;
    return p;
}

static COLOApplyPhases *apply_phases_new(const uint64_t *us, uint64_t div)
{
    COLOApplyPhases *p = g_new0(COLOApplyPhases, 1);

    div = MAX(div, 1);
    p->stop = us[COLO_APPLY_STOP] / div;
    p->ram = us[COLO_APPLY_RAM] / div;
    p->device_state = us[COLO_APPLY_DEVICE_STATE] / div;
    p->reset = us[COLO_APPLY_RESET] / div;
    p->ram_flush = us[COLO_APPLY_RAM_FLUSH] / div;
    p->device_load = us[COLO_APPLY_DEVICE_LOAD] / div;
    p->disks = us[COLO_APPLY_DISKS] / div;
    p->verify = us[COLO_APPLY_VERIFY] / div;
    p->resume = us[COLO_APPLY_RESUME] / div;
    return p;
}

static COLOSecondaryStats *secondary_stats_new(const ColoApplied *a)
{
    COLOSecondaryStats *r = g_new0(COLOSecondaryStats, 1);

    r->checkpoints = a->checkpoints;
    r->phases_last = apply_phases_new(a->phase_last, 1);
    r->phases_mean = apply_phases_new(a->phase_total, a->checkpoints);
    return r;
}

COLOStats *qmp_query_colo_stats(Error **errp)
{
    COLOStats *r = g_new0(COLOStats, 1);
    COLOCheckpointCountList **tail = &r->causes;
    g_autofree uint64_t *sorted = NULL;
    COLOStatus verify = {};
    size_t n;

    const ColoSession *s = &stats.s;

    QEMU_LOCK_GUARD(&stats.lock);
    r->checkpoints = s->checkpoints;
    for (int i = 0; i < COLO_CHECKPOINT_CAUSE__MAX; i++) {
        COLOCheckpointCount *c = g_new0(COLOCheckpointCount, 1);

        c->cause = i;
        c->count = s->causes[i];
        QAPI_LIST_APPEND(tail, c);
    }
    n = MIN(s->checkpoints, COLO_STATS_WINDOW);
    if (n) {
        sorted = g_memdup2(s->pauses, n * sizeof(uint64_t));
        qsort(sorted, n, sizeof(uint64_t), cmp_u64);
        r->pause_median = sorted[n / 2];
        r->pause_p99 = sorted[MIN(n - 1, n * 99 / 100)];
    }
    r->pause_last = s->pause_last;
    r->pause_max = s->pause_max;
    r->bytes_last = s->bytes_last;
    r->bytes_total = s->bytes_total;
    r->pages_last = s->pages_last;
    r->pages_total = s->pages_total;
    r->phases_last = phases_new(s->phase_last, 1);
    r->phases_mean = phases_new(s->phase_total, s->checkpoints);
    colo_verify_fill_status(&verify);
    r->has_verify_mismatches = verify.has_verify_mismatches;
    r->verify_mismatches = verify.verify_mismatches;
    if (s->applied.active) {
        r->secondary = secondary_stats_new(&s->applied);
    }
    return r;
}

static void hmp_print_phases(Monitor *mon, const char *what,
                             const COLOCheckpointPhases *p)
{
    monitor_printf(mon, "  %s (us): request %" PRIu64 ", stop %" PRIu64
                   ", ram %" PRIu64 ", device state %" PRIu64 ", send %"
                   PRIu64 ", load %" PRIu64 ", resume %" PRIu64 "\n", what,
                   p->request, p->stop, p->ram, p->device_state, p->send,
                   p->load, p->resume);
}

static void hmp_print_apply_phases(Monitor *mon, const char *what,
                                   const COLOApplyPhases *p)
{
    monitor_printf(mon, "  %s (us): stop %" PRIu64 ", ram %" PRIu64
                   ", device state %" PRIu64 ", reset %" PRIu64
                   ", ram flush %" PRIu64 ", device load %" PRIu64
                   ", disks %" PRIu64 ", verify %" PRIu64 ", resume %"
                   PRIu64 "\n", what, p->stop, p->ram, p->device_state,
                   p->reset, p->ram_flush, p->device_load, p->disks,
                   p->verify, p->resume);
}

void hmp_info_colo(Monitor *mon, const QDict *qdict)
{
    g_autoptr(COLOStatus) st = qmp_query_colo_status(NULL);
    g_autoptr(COLOStats) s = qmp_query_colo_stats(NULL);

    monitor_printf(mon, "COLO mode: %s (last: %s, reason: %s)\n",
                   COLOMode_str(st->mode), COLOMode_str(st->last_mode),
                   COLOExitReason_str(st->reason));
    monitor_printf(mon, "checkpoints: %" PRIu64 " (", s->checkpoints);
    for (COLOCheckpointCountList *c = s->causes; c; c = c->next) {
        monitor_printf(mon, "%s %s %" PRIu64, c == s->causes ? "" : ",",
                       COLOCheckpointCause_str(c->value->cause),
                       c->value->count);
    }
    monitor_printf(mon, " )\n");
    monitor_printf(mon, "pause (us): last %" PRIu64 ", median %" PRIu64
                   ", p99 %" PRIu64 ", max %" PRIu64 "\n", s->pause_last,
                   s->pause_median, s->pause_p99, s->pause_max);
    monitor_printf(mon, "sent: last %" PRIu64 " bytes in %" PRIu64
                   " pages, in all %" PRIu64 " bytes in %" PRIu64 " pages\n",
                   s->bytes_last, s->pages_last, s->bytes_total,
                   s->pages_total);
    hmp_print_phases(mon, "last checkpoint", s->phases_last);
    hmp_print_phases(mon, "mean", s->phases_mean);
    if (s->has_verify_mismatches) {
        monitor_printf(mon, "RAM digest mismatches: %" PRIu64 "\n",
                       s->verify_mismatches);
    }
    if (s->secondary) {
        monitor_printf(mon, "applied as the secondary: %" PRIu64
                       " checkpoints\n", s->secondary->checkpoints);
        hmp_print_apply_phases(mon, "last checkpoint",
                               s->secondary->phases_last);
        hmp_print_apply_phases(mon, "mean", s->secondary->phases_mean);
    }
}
