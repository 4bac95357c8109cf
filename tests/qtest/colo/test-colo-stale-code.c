/*
 * A COLO checkpoint that replaces code the secondary has already run.
 *
 * Under TCG a VM runs blocks translated from its guest code; a secondary
 * that loads a checkpoint copies the primary's pages into its RAM behind
 * the translator's back.  If the translations of the old bytes survive,
 * the secondary goes on running code that is no longer in its memory: a
 * Linux guest booting under COLO oopsed that way, with an instruction
 * pointer and a stack from two different states.
 *
 * The guest here is a boot sector that stores one byte in a loop.  The
 * test patches that byte in the primary's code (qtest writes go through
 * the memory API, so the primary's translations are dropped), lets a
 * checkpoint carry the page over, and checks that the secondary now
 * stores the new byte too.  It does not, if the checkpoint left the old
 * translation in place: the RAM digests of colo-verify would still be
 * equal, since the RAM is; only what the vCPU runs differs.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qobject/qdict.h"
#include <netinet/in.h>

#define WAIT_US (120 * G_USEC_PER_SEC)
#define POLL_US (20 * 1000)

/* Where the loop stores, and the offset of the stored byte in the code. */
#define STORE_ADDR 0x8000
#define STORE_IMM_ADDR 0x7c09
#define OLD_BYTE 0xaa
#define NEW_BYTE 0xbb

/*
 * 7c00  fa              cli
 * 7c01  31 c0           xor  ax, ax
 * 7c03  8e d8           mov  ds, ax
 * 7c05  c6 06 00 80 aa  mov  byte [0x8000], 0xaa    (immediate at 7c09)
 * 7c0a  eb f9           jmp  7c05
 * The store's target is in another page than the code, so that the loop
 * itself never invalidates its own translation.
 */
static const uint8_t boot_code[] = {
    0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0xc6, 0x06, 0x00, 0x80, OLD_BYTE,
    0xeb, 0xf9,
};

static char *write_boot_sector(const char *dir)
{
    uint8_t sector[512] = { 0 };
    char *path = g_build_filename(dir, "boot.raw", NULL);

    memcpy(sector, boot_code, sizeof(boot_code));
    sector[510] = 0x55;
    sector[511] = 0xaa;
    g_assert(g_file_set_contents(path, (const char *)sector, sizeof(sector),
                                 NULL));
    return path;
}

static int free_tcp_port(void)
{
    struct sockaddr_in addr = {
        .sin_family = AF_INET,
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    g_assert_cmpint(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&addr, &len), ==, 0);
    close(fd);
    return ntohs(addr.sin_port);
}

static void wait_store(QTestState *qts, uint8_t value)
{
    gint64 deadline = g_get_monotonic_time() + WAIT_US;

    while (qtest_readb(qts, STORE_ADDR) != value) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(POLL_US);
    }
}

static const char *colo_mode(QTestState *qts)
{
    QDict *rsp = qtest_qmp_assert_success_ref(qts,
                                   "{ 'execute': 'query-colo-status' }");
    const char *mode = qdict_get_str(rsp, "mode");
    static const char *const modes[] = { "none", "primary", "secondary" };

    for (int i = 0; i < G_N_ELEMENTS(modes); i++) {
        if (g_str_equal(mode, modes[i])) {
            qobject_unref(rsp);
            return modes[i];
        }
    }
    g_error("unknown COLO mode %s", mode);
}

static void wait_mode(QTestState *qts, const char *mode)
{
    gint64 deadline = g_get_monotonic_time() + WAIT_US;

    while (!g_str_equal(colo_mode(qts), mode)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(POLL_US);
    }
}

static uint64_t verified_checkpoints(QTestState *qts)
{
    QDict *rsp = qtest_qmp_assert_success_ref(qts,
                                   "{ 'execute': 'query-colo-status' }");
    uint64_t n = qdict_get_try_int(rsp, "verified-checkpoints", 0);

    g_assert_cmpint(qdict_get_try_int(rsp, "verify-mismatches", 0), ==, 0);
    qobject_unref(rsp);
    return n;
}

static void wait_checkpoints(QTestState *to, unsigned count)
{
    uint64_t target = verified_checkpoints(to) + count;
    gint64 deadline = g_get_monotonic_time() + WAIT_US;

    while (verified_checkpoints(to) < target) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(POLL_US);
    }
}

static void set_colo_caps(QTestState *qts)
{
    qtest_qmp_assert_success(qts,
        "{ 'execute': 'migrate-set-capabilities', 'arguments': "
        "{ 'capabilities': [ { 'capability': 'x-colo', 'state': true },"
        " { 'capability': 'colo-verify', 'state': true } ] } }");
}

static void test_code_replaced(const void *opaque)
{
    const char *machine = opaque;
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("colo-code-XXXXXX", &err);
    g_autofree char *boot = NULL;
    g_autofree char *args = NULL;
    g_autofree char *uri = g_strdup_printf("tcp:127.0.0.1:%d",
                                           free_tcp_port());
    QTestState *from, *to;

    g_assert_no_error(err);
    boot = write_boot_sector(dir);
    /* A one-sector disk needs an explicit geometry for SeaBIOS to boot it. */
    args = g_strdup_printf("-machine %s -accel tcg -m 64M -nodefaults "
                           "-snapshot -drive if=none,id=d0,file=%s,"
                           "format=raw -device ide-hd,drive=d0,secs=1,"
                           "cyls=1,heads=1", machine, boot);
    to = qtest_initf("%s -incoming defer", args);
    from = qtest_initf("%s", args);
    set_colo_caps(to);
    set_colo_caps(from);
    qtest_qmp_assert_success(to, "{ 'execute': 'migrate-incoming', "
                             "'arguments': { 'uri': %s } }", uri);
    wait_store(from, OLD_BYTE);

    qtest_qmp_assert_success(from, "{ 'execute': 'migrate-set-parameters', "
                             "'arguments': { 'x-checkpoint-delay': 200 } }");
    qtest_qmp_assert_success(from, "{ 'execute': 'migrate', 'arguments': "
                             "{ 'uri': %s } }", uri);
    wait_mode(from, "primary");
    wait_mode(to, "secondary");
    wait_checkpoints(to, 1);
    g_assert_cmphex(qtest_readb(to, STORE_ADDR), ==, OLD_BYTE);

    /* New code on the primary; a checkpoint carries it over. */
    qtest_writeb(from, STORE_IMM_ADDR, NEW_BYTE);
    wait_store(from, NEW_BYTE);
    wait_checkpoints(to, 2);
    g_assert_cmphex(qtest_readb(to, STORE_IMM_ADDR), ==, NEW_BYTE);
    /* The secondary's loop runs all the time: an old translation shows. */
    for (int i = 0; i < 10; i++) {
        g_assert_cmphex(qtest_readb(to, STORE_ADDR), ==, NEW_BYTE);
        g_usleep(50 * 1000);
    }

    qtest_qmp_assert_success(from, "{ 'execute': 'x-colo-lost-heartbeat' }");
    wait_mode(from, "none");
    qtest_quit(from);
    qtest_quit(to);
    unlink(boot);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_data_func("/colo/checkpoint/code-replaced/pc", "pc",
                        test_code_replaced);
    qtest_add_data_func("/colo/checkpoint/code-replaced/q35", "q35",
                        test_code_replaced);
    return g_test_run();
}
