/*
 * The COLO failover state machine, cell by cell: every state, with and
 * without a session attached, against every event, allowed or refused.
 * An event the machine must never see in a state (begin, finish, reset
 * out of turn) is an assertion: those cells run in a subprocess that
 * must abort.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "migration/failover.h"

typedef enum Event {
    EV_REQUEST,
    EV_BEGIN,
    EV_FINISH,
    EV_RESET,
    EV_DETACH,
    EV_UNBLOCK,
    EV__MAX,
} Event;

static const char *const event_names[EV__MAX] = {
    [EV_REQUEST] = "request", [EV_BEGIN] = "begin", [EV_FINISH] = "finish",
    [EV_RESET] = "reset", [EV_DETACH] = "detach", [EV_UNBLOCK] = "unblock",
};

/* What an event does in a state, with a session attached. */
typedef struct Cell {
    bool aborts;                /* a broken invariant: assert */
    FailoverStatus to;          /* the state after it */
    const char *error;          /* request refused with this message */
    bool wakes;                 /* the session's waker runs */
} Cell;

#define N FAILOVER_STATUS_NONE
#define R FAILOVER_STATUS_REQUIRE
#define A FAILOVER_STATUS_ACTIVE
#define C FAILOVER_STATUS_COMPLETED

static const Cell cells[FAILOVER_STATUS__MAX][EV__MAX] = {
    [N] = {
        [EV_REQUEST] = { .to = R, .wakes = true },
        [EV_BEGIN] = { .aborts = true },
        [EV_FINISH] = { .aborts = true },
        [EV_RESET] = { .to = N },
        [EV_DETACH] = { .to = N },
        [EV_UNBLOCK] = { .to = N, .wakes = true },
    },
    [R] = {
        [EV_REQUEST] = { .to = R,
                         .error = "COLO failover is already in progress" },
        [EV_BEGIN] = { .to = A },
        [EV_FINISH] = { .aborts = true },
        [EV_RESET] = { .aborts = true },
        [EV_DETACH] = { .to = R },
        [EV_UNBLOCK] = { .to = R, .wakes = true },
    },
    [A] = {
        [EV_REQUEST] = { .to = A,
                         .error = "COLO failover is already in progress" },
        [EV_BEGIN] = { .aborts = true },
        [EV_FINISH] = { .to = C },
        [EV_RESET] = { .aborts = true },
        [EV_DETACH] = { .to = A },
        [EV_UNBLOCK] = { .to = A, .wakes = true },
    },
    [C] = {
        [EV_REQUEST] = { .to = C,
                         .error = "COLO failover is already completed" },
        [EV_BEGIN] = { .aborts = true },
        [EV_FINISH] = { .aborts = true },
        [EV_RESET] = { .to = N },
        [EV_DETACH] = { .to = C },
        [EV_UNBLOCK] = { .to = C, .wakes = true },
    },
};

static unsigned wakes;

static void count_wake(void *opaque)
{
    g_assert(opaque == &wakes);
    wakes++;
}

/* From wherever the last cell left the machine, by legal steps only. */
static void go_to(FailoverStatus target, bool attached)
{
    switch (colo_failover_state()) {
    case R:
        colo_failover_begin();
        /* fall through */
    case A:
        colo_failover_finish();
        break;
    default:
        break;
    }
    colo_failover_reset(count_wake, &wakes);
    if (target != N) {
        g_assert_true(colo_failover_request(&error_abort));
    }
    if (target == A || target == C) {
        colo_failover_begin();
    }
    if (target == C) {
        colo_failover_finish();
    }
    if (!attached) {
        colo_failover_detach();
    }
    g_assert_cmpint(colo_failover_state(), ==, target);
    g_assert_cmpint(colo_failover_pending(), ==, target == R || target == A);
    wakes = 0;
}

/* Returns the error of a refused request, NULL otherwise. */
static char *fire(Event ev)
{
    Error *err = NULL;
    char *msg = NULL;

    switch (ev) {
    case EV_REQUEST:
        if (!colo_failover_request(&err)) {
            msg = g_strdup(error_get_pretty(err));
            error_free(err);
        }
        break;
    case EV_BEGIN:
        colo_failover_begin();
        break;
    case EV_FINISH:
        colo_failover_finish();
        break;
    case EV_RESET:
        colo_failover_reset(count_wake, &wakes);
        break;
    case EV_DETACH:
        colo_failover_detach();
        break;
    case EV_UNBLOCK:
        colo_failover_unblock();
        break;
    default:
        g_assert_not_reached();
    }
    return msg;
}

typedef struct CellTest {
    FailoverStatus from;
    Event ev;
    bool attached;
} CellTest;

static void test_cell(const void *opaque)
{
    const CellTest *t = opaque;
    Cell c = cells[t->from][t->ev];
    g_autofree char *error = NULL;

    /* Without a session nobody can be woken or asked to take over. */
    if (!t->attached) {
        c.wakes = false;
        if (t->ev == EV_REQUEST) {
            c.error = "VM is not in COLO mode";
            c.to = t->from;
        }
    }
    if (c.aborts) {
        if (g_test_subprocess()) {
            go_to(t->from, t->attached);
            fire(t->ev);
            return;
        }
        g_test_trap_subprocess(NULL, 0, 0);
        g_test_trap_assert_failed();
        return;
    }
    go_to(t->from, t->attached);
    error = fire(t->ev);
    g_assert_cmpstr(error, ==, c.error);
    g_assert_cmpint(colo_failover_state(), ==, c.to);
    g_assert_cmpuint(wakes, ==, c.wakes ? 1 : 0);
    g_assert_cmpint(colo_failover_pending(), ==, c.to == R || c.to == A);
}

int main(int argc, char **argv)
{
    /* 'relaunch' is in the QAPI enum for upstream's sake; nothing enters it. */
    static const FailoverStatus states[] = { N, R, A, C };

    g_test_init(&argc, &argv, NULL);
    for (int i = 0; i < ARRAY_SIZE(states); i++) {
        FailoverStatus from = states[i];

        for (int ev = 0; ev < EV__MAX; ev++) {
            for (int attached = 1; attached >= 0; attached--) {
                CellTest *t = g_new(CellTest, 1);
                g_autofree char *path = g_strdup_printf(
                    "/colo-failover/%s/%s/%s",
                    attached ? "in-session" : "detached",
                    FailoverStatus_str(from), event_names[ev]);

                *t = (CellTest) { from, ev, attached };
                g_test_add_data_func_full(path, t, test_cell, g_free);
            }
        }
    }
    return g_test_run();
}
