/*
 * qemu-colo's QMP client against a scripted monitor on a Unix socket:
 * what it accepts before the greeting, and what it refuses.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/socket.h>
#include <sys/un.h>
#include "qapi/error.h"
#include "qobject/qjson.h"
#include "qobject/qdict.h"
#include "tools/colo/qmp-client.h"

#define GREETING "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n"
#define STOP_EVENT "{\"event\": \"STOP\", \"timestamp\": " \
                   "{\"seconds\": 1, \"microseconds\": 2}}\n"
#define TIMEOUT_MS 2000

typedef struct FakeMonitor {
    char *dir;
    char *path;
    int listen_fd;
    const char *first;          /* what it writes as soon as a client comes */
    bool answer;                /* whether it answers qmp_capabilities */
    GThread *thread;
} FakeMonitor;

/* One request line from @fd, or NULL at end of stream. */
static char *read_line(int fd)
{
    GString *line = g_string_new(NULL);
    char c;

    while (read(fd, &c, 1) == 1) {
        if (c == '\n') {
            return g_string_free(line, false);
        }
        g_string_append_c(line, c);
    }
    g_string_free(line, true);
    return NULL;
}

static void write_text(int fd, const char *text)
{
    size_t len = strlen(text);

    g_assert_cmpint(write(fd, text, len), ==, len);
}

static gpointer fake_monitor_run(gpointer opaque)
{
    FakeMonitor *m = opaque;
    int fd = accept(m->listen_fd, NULL, NULL);
    g_autofree char *request = NULL;

    g_assert_cmpint(fd, >=, 0);
    write_text(fd, m->first);
    request = read_line(fd);
    if (request && m->answer) {
        g_autoptr(QDict) req = qobject_to(QDict,
                                          qobject_from_json(request, NULL));
        g_autofree char *reply = NULL;

        g_assert(req);
        g_assert_cmpstr(qdict_get_try_str(req, "execute"), ==,
                        "qmp_capabilities");
        reply = g_strdup_printf("{\"return\": {}, \"id\": \"%s\"}\n",
                                qdict_get_try_str(req, "id"));
        write_text(fd, reply);
        /* Until the client hangs up. */
        g_free(read_line(fd));
    }
    close(fd);
    return NULL;
}

static FakeMonitor *fake_monitor_start(const char *first, bool answer)
{
    FakeMonitor *m = g_new0(FakeMonitor, 1);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    m->dir = g_dir_make_tmp("qmp-client-XXXXXX", NULL);
    g_assert(m->dir);
    m->path = g_build_filename(m->dir, "qmp.sock", NULL);
    g_assert_cmpint(strlen(m->path), <, sizeof(addr.sun_path));
    strcpy(addr.sun_path, m->path);
    m->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    g_assert_cmpint(m->listen_fd, >=, 0);
    g_assert_cmpint(bind(m->listen_fd, (struct sockaddr *)&addr,
                         sizeof(addr)), ==, 0);
    g_assert_cmpint(listen(m->listen_fd, 1), ==, 0);
    m->first = first;
    m->answer = answer;
    m->thread = g_thread_new("fake-monitor", fake_monitor_run, m);
    return m;
}

static void fake_monitor_finish(FakeMonitor *m)
{
    g_thread_join(m->thread);
    close(m->listen_fd);
    unlink(m->path);
    rmdir(m->dir);
    g_free(m->path);
    g_free(m->dir);
    g_free(m);
}

static void test_greeting(void)
{
    FakeMonitor *m = fake_monitor_start(GREETING, true);
    QmpClient *c = qmp_client_open(m->path, TIMEOUT_MS, NULL, &error_abort);

    qmp_client_close(c);
    fake_monitor_finish(m);
}

/*
 * QEMU's monitor can write an event before it greets a new client (it
 * keeps the previous client's command mode until then): not a reason to
 * call the monitor broken.
 */
static void test_event_before_greeting(void)
{
    FakeMonitor *m = fake_monitor_start(STOP_EVENT STOP_EVENT GREETING,
                                        true);
    QmpClient *c = qmp_client_open(m->path, TIMEOUT_MS, NULL, &error_abort);

    qmp_client_close(c);
    fake_monitor_finish(m);
}

static void test_not_qmp(void)
{
    FakeMonitor *m = fake_monitor_start("{\"return\": {}}\n" GREETING,
                                        false);
    Error *err = NULL;
    bool hung = true;

    g_assert_null(qmp_client_open(m->path, TIMEOUT_MS, &hung, &err));
    g_assert(err);
    g_assert(strstr(error_get_pretty(err), "does not speak QMP"));
    g_assert_false(hung);
    error_free(err);
    fake_monitor_finish(m);
}

/* Events, and no greeting within the deadline: a hung monitor. */
static void test_events_without_greeting(void)
{
    FakeMonitor *m = fake_monitor_start(STOP_EVENT, false);
    Error *err = NULL;
    bool hung = false;

    g_assert_null(qmp_client_open(m->path, 300, &hung, &err));
    g_assert(err);
    g_assert(strstr(error_get_pretty(err), "did not answer"));
    g_assert_true(hung);
    error_free(err);
    fake_monitor_finish(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qemu-colo/qmp-client/greeting", test_greeting);
    g_test_add_func("/qemu-colo/qmp-client/event-before-greeting",
                    test_event_before_greeting);
    g_test_add_func("/qemu-colo/qmp-client/not-qmp", test_not_qmp);
    g_test_add_func("/qemu-colo/qmp-client/events-without-greeting",
                    test_events_without_greeting);
    return g_test_run();
}
