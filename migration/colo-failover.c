/*
 * COLO failover state machine.  See include/migration/failover.h.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/lockable.h"
#include "migration/failover.h"
#include "trace.h"

/* failover_legal[from][to] */
static const bool failover_legal[FAILOVER_STATUS__MAX][FAILOVER_STATUS__MAX] = {
    [FAILOVER_STATUS_NONE][FAILOVER_STATUS_REQUIRE] = true,
    [FAILOVER_STATUS_REQUIRE][FAILOVER_STATUS_ACTIVE] = true,
    [FAILOVER_STATUS_ACTIVE][FAILOVER_STATUS_COMPLETED] = true,
    [FAILOVER_STATUS_COMPLETED][FAILOVER_STATUS_NONE] = true,
};

static struct {
    QemuMutex lock;
    /* Guarded by @lock. */
    FailoverStatus state;
    ColoFailoverWakeFn *wake;
    void *wake_opaque;
} failover;

static void __attribute__((constructor)) colo_failover_init(void)
{
    qemu_mutex_init(&failover.lock);
}

/* The one writer of failover.state. */
static bool failover_transition_locked(FailoverStatus to)
{
    FailoverStatus from = failover.state;

    if (!failover_legal[from][to]) {
        return false;
    }
    failover.state = to;
    trace_colo_failover_transition(FailoverStatus_str(from),
                                   FailoverStatus_str(to));
    return true;
}

void colo_failover_reset(ColoFailoverWakeFn *wake, void *opaque)
{
    QEMU_LOCK_GUARD(&failover.lock);
    if (failover.state != FAILOVER_STATUS_NONE) {
        bool ok = failover_transition_locked(FAILOVER_STATUS_NONE);

        /* A session never starts while another one's failover is running. */
        assert(ok);
    }
    failover.wake = wake;
    failover.wake_opaque = opaque;
}

void colo_failover_detach(void)
{
    QEMU_LOCK_GUARD(&failover.lock);
    failover.wake = NULL;
    failover.wake_opaque = NULL;
}

FailoverStatus colo_failover_state(void)
{
    QEMU_LOCK_GUARD(&failover.lock);
    return failover.state;
}

bool colo_failover_request(Error **errp)
{
    ColoFailoverWakeFn *wake;
    void *opaque;

    WITH_QEMU_LOCK_GUARD(&failover.lock) {
        if (!failover.wake) {
            error_setg(errp, "VM is not in COLO mode");
            return false;
        }
        if (!failover_transition_locked(FAILOVER_STATUS_REQUIRE)) {
            error_setg(errp, "COLO failover is already %s",
                       failover.state == FAILOVER_STATUS_COMPLETED ?
                       "completed" : "in progress");
            return false;
        }
        wake = failover.wake;
        opaque = failover.wake_opaque;
    }
    /* Outside the lock: the waker may take locks of its own. */
    wake(opaque);
    return true;
}

void colo_failover_unblock(void)
{
    ColoFailoverWakeFn *wake;
    void *opaque;

    WITH_QEMU_LOCK_GUARD(&failover.lock) {
        wake = failover.wake;
        opaque = failover.wake_opaque;
    }
    if (wake) {
        wake(opaque);
    }
}

bool colo_failover_pending(void)
{
    QEMU_LOCK_GUARD(&failover.lock);
    return failover.state == FAILOVER_STATUS_REQUIRE ||
           failover.state == FAILOVER_STATUS_ACTIVE;
}

void colo_failover_begin(void)
{
    QEMU_LOCK_GUARD(&failover.lock);
    bool ok = failover_transition_locked(FAILOVER_STATUS_ACTIVE);

    assert(ok);
}

void colo_failover_finish(void)
{
    QEMU_LOCK_GUARD(&failover.lock);
    bool ok = failover_transition_locked(FAILOVER_STATUS_COMPLETED);

    assert(ok);
}
