/*
 * The QMP commands a Xen toolstack uses to drive COLO's disks and
 * netfilters (xen-set-replication, query-xen-replication-status,
 * xen-colo-do-checkpoint), on a QEMU with one replicated disk in the
 * primary's layout: a quorum whose second child replicates to a "remote"
 * node (null-co here, NBD in real use).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qobject/qdict.h"

static QTestState *start_with_disk(void)
{
    return qtest_init(
        "-machine none "
        "-blockdev driver=null-co,node-name=local,size=1048576 "
        "-blockdev driver=null-co,node-name=remote,size=1048576 "
        "-blockdev driver=replication,mode=primary,file=remote,"
        "node-name=repl0 "
        "-blockdev driver=quorum,node-name=disk0,vote-threshold=1,"
        "children.0=local,children.1=repl0");
}

/* The command @cmd fails, and its error contains @desc. */
#define assert_error(qts, cmd, desc) \
    assert_desc(qtest_qmp_assert_failure_ref(qts, cmd), cmd, desc)

static void assert_desc(QDict *rsp, const char *cmd, const char *desc)
{
    const char *got = qdict_get_try_str(rsp, "desc");

    if (!got || !strstr(got, desc)) {
        g_test_message("'%s' said '%s', not '%s'", cmd, got, desc);
        g_assert_not_reached();
    }
    qobject_unref(rsp);
}

static void assert_status_ok(QTestState *qts)
{
    QDict *st = qtest_qmp_assert_success_ref(qts,
        "{ 'execute': 'query-xen-replication-status' }");

    g_assert_false(qdict_get_bool(st, "error"));
    g_assert_false(qdict_haskey(st, "desc"));
    qobject_unref(st);
}

/* Without replicated disks every command is a no-op, not an error. */
static void test_no_disks(void)
{
    QTestState *qts = qtest_init("-machine none");

    assert_status_ok(qts);
    qtest_qmp_assert_success(qts, "{ 'execute': 'xen-colo-do-checkpoint' }");
    qtest_qmp_assert_success(qts, "{ 'execute': 'xen-set-replication', "
                             "'arguments': { 'enable': true, "
                             "'primary': true } }");
    qtest_qmp_assert_success(qts, "{ 'execute': 'xen-set-replication', "
                             "'arguments': { 'enable': false, "
                             "'primary': true } }");
    qtest_quit(qts);
}

static void test_bad_arguments(void)
{
    QTestState *qts = qtest_init("-machine none");

    assert_error(qts, "{ 'execute': 'xen-set-replication', 'arguments': "
                 "{ 'enable': true, 'primary': true, 'failover': true } }",
                 "'failover' only applies when disabling replication");
    assert_error(qts, "{ 'execute': 'xen-set-replication', 'arguments': "
                 "{ 'enable': true } }", "'primary'");
    qtest_quit(qts);
}

/* The life of a replicated disk as the toolstack drives it. */
static void test_primary_lifecycle(void)
{
    QTestState *qts = start_with_disk();

    /* Not started: a checkpoint has nothing consistent to mark. */
    assert_error(qts, "{ 'execute': 'xen-colo-do-checkpoint' }",
                 "cannot checkpoint in state 'idle'");

    qtest_qmp_assert_success(qts, "{ 'execute': 'xen-set-replication', "
                             "'arguments': { 'enable': true, "
                             "'primary': true } }");
    assert_status_ok(qts);
    qtest_qmp_assert_success(qts, "{ 'execute': 'xen-colo-do-checkpoint' }");
    qtest_qmp_assert_success(qts, "{ 'execute': 'xen-colo-do-checkpoint' }");
    assert_error(qts, "{ 'execute': 'xen-set-replication', 'arguments': "
                 "{ 'enable': true, 'primary': true } }",
                 "cannot start in state 'replicating'");
    /* The node may not leave its quorum while it replicates. */
    assert_error(qts, "{ 'execute': 'x-blockdev-change', 'arguments': "
                 "{ 'parent': 'disk0', 'child': 'children.1' } }", "");

    qtest_qmp_assert_success(qts, "{ 'execute': 'xen-set-replication', "
                             "'arguments': { 'enable': false, "
                             "'primary': true, 'failover': false } }");
    assert_status_ok(qts);
    assert_error(qts, "{ 'execute': 'xen-colo-do-checkpoint' }",
                 "cannot checkpoint in state 'stopped'");
    assert_error(qts, "{ 'execute': 'xen-set-replication', 'arguments': "
                 "{ 'enable': false, 'primary': true } }",
                 "cannot stop in state 'stopped'");
    /* Once stopped it may leave, and the VM goes on without it. */
    qtest_qmp_assert_success(qts, "{ 'execute': 'x-blockdev-change', "
                             "'arguments': { 'parent': 'disk0', "
                             "'child': 'children.1' } }");
    qtest_quit(qts);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/colo/xen/no-disks", test_no_disks);
    qtest_add_func("/colo/xen/bad-arguments", test_bad_arguments);
    qtest_add_func("/colo/xen/primary-lifecycle", test_primary_lifecycle);
    return g_test_run();
}
