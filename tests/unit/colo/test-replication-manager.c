/*
 * The replication manager (replication.c) with fake components: ordering,
 * rollback of a failed start, error propagation.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/main-loop.h"
#include "block/replication.h"

/* What the fake components did, in order, e.g. "start:a stop:b". */
static GString *journal;

typedef struct Fake {
    const char *name;
    bool fail_start;
    bool fail_stop;
    bool fail_checkpoint;
    bool fail_get_error;
    ReplicationState *rs;
} Fake;

static void journal_add(const char *verb, ReplicationState *rs)
{
    Fake *f = rs->opaque;

    g_string_append_printf(journal, "%s%s:%s", journal->len ? " " : "",
                           verb, f->name);
}

static bool fake_start(ReplicationState *rs, ReplicationMode mode,
                       Error **errp)
{
    Fake *f = rs->opaque;

    journal_add(mode == REPLICATION_MODE_PRIMARY ? "start-primary" :
                                                   "start-secondary", rs);
    if (f->fail_start) {
        error_setg(errp, "%s cannot start", f->name);
        return false;
    }
    return true;
}

static bool fake_stop(ReplicationState *rs, bool failover, Error **errp)
{
    Fake *f = rs->opaque;

    journal_add(failover ? "failover" : "stop", rs);
    if (f->fail_stop) {
        error_setg(errp, "%s cannot stop", f->name);
        return false;
    }
    return true;
}

static bool fake_checkpoint(ReplicationState *rs, Error **errp)
{
    Fake *f = rs->opaque;

    journal_add("checkpoint", rs);
    if (f->fail_checkpoint) {
        error_setg(errp, "%s cannot checkpoint", f->name);
        return false;
    }
    return true;
}

static bool fake_get_error(ReplicationState *rs, Error **errp)
{
    Fake *f = rs->opaque;

    journal_add("get-error", rs);
    if (f->fail_get_error) {
        error_setg(errp, "%s is broken", f->name);
        return false;
    }
    return true;
}

static const ReplicationOps fake_ops = {
    .start = fake_start,
    .stop = fake_stop,
    .checkpoint = fake_checkpoint,
    .get_error = fake_get_error,
};

static Fake a, b, c;

static void setup(void)
{
    a = (Fake) { .name = "a" };
    b = (Fake) { .name = "b" };
    c = (Fake) { .name = "c" };
    a.rs = replication_new(&a, &fake_ops);
    b.rs = replication_new(&b, &fake_ops);
    c.rs = replication_new(&c, &fake_ops);
    g_string_truncate(journal, 0);
}

static void teardown(void)
{
    replication_remove(a.rs);
    replication_remove(b.rs);
    replication_remove(c.rs);
}

static void assert_journal(const char *expected)
{
    g_assert_cmpstr(journal->str, ==, expected);
    g_string_truncate(journal, 0);
}

static void test_order(void)
{
    setup();
    replication_start_all(REPLICATION_MODE_SECONDARY, &error_abort);
    assert_journal("start-secondary:a start-secondary:b start-secondary:c");
    replication_do_checkpoint_all(&error_abort);
    assert_journal("checkpoint:a checkpoint:b checkpoint:c");
    replication_get_error_all(&error_abort);
    assert_journal("get-error:a get-error:b get-error:c");
    replication_stop_all(true, &error_abort);
    assert_journal("failover:c failover:b failover:a");
    teardown();
}

static void test_failed_start_unwinds(void)
{
    Error *err = NULL;

    setup();
    c.fail_start = true;
    replication_start_all(REPLICATION_MODE_PRIMARY, &err);
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, "c cannot start");
    error_free(err);
    /* c never started, so only b and a are stopped, newest first. */
    assert_journal("start-primary:a start-primary:b start-primary:c "
                   "stop:b stop:a");
    teardown();
}

static void test_first_start_fails_alone(void)
{
    Error *err = NULL;

    setup();
    a.fail_start = true;
    replication_start_all(REPLICATION_MODE_PRIMARY, &err);
    g_assert_nonnull(err);
    error_free(err);
    assert_journal("start-primary:a");
    teardown();
}

static void test_checkpoint_stops_at_failure(void)
{
    Error *err = NULL;

    setup();
    b.fail_checkpoint = true;
    replication_do_checkpoint_all(&err);
    g_assert_cmpstr(error_get_pretty(err), ==, "b cannot checkpoint");
    error_free(err);
    assert_journal("checkpoint:a checkpoint:b");
    teardown();
}

static void test_get_error_reports_first(void)
{
    Error *err = NULL;

    setup();
    b.fail_get_error = true;
    c.fail_get_error = true;
    replication_get_error_all(&err);
    g_assert_cmpstr(error_get_pretty(err), ==, "b is broken");
    error_free(err);
    assert_journal("get-error:a get-error:b");
    teardown();
}

static void test_stop_goes_on_after_failure(void)
{
    Error *err = NULL;

    setup();
    c.fail_stop = true;
    a.fail_stop = true;
    replication_stop_all(false, &err);
    /* Newest first, so c's error is the first one. */
    g_assert_cmpstr(error_get_pretty(err), ==, "c cannot stop");
    error_free(err);
    assert_journal("stop:c stop:b stop:a");
    teardown();
}

static void test_removed_component_is_left_alone(void)
{
    setup();
    replication_remove(b.rs);
    b.rs = NULL;
    replication_do_checkpoint_all(&error_abort);
    assert_journal("checkpoint:a checkpoint:c");
    teardown();
}

static void test_nothing_registered(void)
{
    replication_start_all(REPLICATION_MODE_PRIMARY, &error_abort);
    replication_do_checkpoint_all(&error_abort);
    replication_get_error_all(&error_abort);
    replication_stop_all(true, &error_abort);
    g_assert_cmpuint(journal->len, ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    journal = g_string_new("");
    /* The manager insists on the BQL; the unit test is its only thread. */
    rust_bql_mock_lock();

    g_test_add_func("/replication-manager/order", test_order);
    g_test_add_func("/replication-manager/failed-start-unwinds",
                    test_failed_start_unwinds);
    g_test_add_func("/replication-manager/first-start-fails-alone",
                    test_first_start_fails_alone);
    g_test_add_func("/replication-manager/checkpoint-stops-at-failure",
                    test_checkpoint_stops_at_failure);
    g_test_add_func("/replication-manager/get-error-reports-first",
                    test_get_error_reports_first);
    g_test_add_func("/replication-manager/stop-goes-on-after-failure",
                    test_stop_goes_on_after_failure);
    g_test_add_func("/replication-manager/removed-component-left-alone",
                    test_removed_component_is_left_alone);
    g_test_add_func("/replication-manager/nothing-registered",
                    test_nothing_registered);
    return g_test_run();
}
