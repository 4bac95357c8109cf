/*
 * Smoke test for the guest that the COLO migration tests run: the boot
 * sector of the migration-test framework must boot and keep dirtying its
 * memory under TCG, on both machine types COLO supports.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "../migration/bootfile.h"

/* Generous for a loaded 2-core host running TCG. */
#define BOOT_TIMEOUT_US (60 * G_USEC_PER_SEC)
#define POLL_US (20 * 1000)

/*
 * The boot sector prints 'A' once it runs, then 'B' after each pass over
 * X86_TEST_MEM_START..X86_TEST_MEM_END.  Wait for @want; anything else on
 * the serial line means the guest is not the one we booted.
 */
static void wait_for_serial_char(const char *path, char want)
{
    gint64 deadline = g_get_monotonic_time() + BOOT_TIMEOUT_US;

    while (g_get_monotonic_time() < deadline) {
        g_autofree char *text = NULL;
        gsize len = 0;

        if (g_file_get_contents(path, &text, &len, NULL)) {
            for (gsize i = 0; i < len; i++) {
                if (text[i] == want) {
                    return;
                }
                g_assert(text[i] == 'A' || text[i] == 'B');
            }
        }
        g_usleep(POLL_US);
    }
    g_error("no '%c' on %s within %d s", want, path,
            (int)(BOOT_TIMEOUT_US / G_USEC_PER_SEC));
}

/* The guest adds one to the first byte of every page on each pass. */
static void assert_memory_progresses(QTestState *qts)
{
    uint64_t addr = X86_TEST_MEM_START + 16 * TEST_MEM_PAGE_SIZE;
    uint8_t first = qtest_readb(qts, addr);
    gint64 deadline = g_get_monotonic_time() + BOOT_TIMEOUT_US;

    while (qtest_readb(qts, addr) == first) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(POLL_US);
    }
}

static void test_boot(const void *opaque)
{
    const char *machine = opaque;
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("colo-boot-XXXXXX", &err);
    g_autofree char *serial = NULL;
    const char *boot;           /* owned by bootfile.c */
    QTestState *qts;

    g_assert_no_error(err);
    serial = g_build_filename(dir, "serial", NULL);
    boot = bootfile_create("x86_64", dir, false);

    /* A one-sector disk needs an explicit geometry for SeaBIOS to boot it. */
    qts = qtest_initf("-machine %s -accel tcg -m 150M -nodefaults "
                      "-serial file:%s -drive if=none,id=d0,file=%s,format=raw "
                      "-device ide-hd,drive=d0,secs=1,cyls=1,heads=1",
                      machine, serial, boot);
    wait_for_serial_char(serial, 'B');
    assert_memory_progresses(qts);
    qtest_quit(qts);

    bootfile_delete();
    unlink(serial);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_data_func("/colo/bootsector/pc", "pc", test_boot);
    qtest_add_data_func("/colo/bootsector/q35", "q35", test_boot);
    return g_test_run();
}
