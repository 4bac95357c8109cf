/*
 * A synchronous QMP client for qemu-colo.
 *
 * Everything that comes from QEMU goes through one JSON message parser
 * into a queue; a command then waits, within its deadline, until the
 * answer carrying its id is in the queue.  Events met on the way are set
 * aside for qmp_client_event().  QEMU's replies and events are trusted to
 * be QMP, but not to come in time: a monitor that does not answer is what
 * a hung QEMU looks like, so every wait has a deadline.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <poll.h>
#include <sys/un.h>
#include "qapi/error.h"
#include "qobject/json-parser.h"
#include "qobject/qjson.h"
#include "qobject/qlist.h"
#include "qobject/qstring.h"
#include "qmp-client.h"

struct QmpClient {
    int fd;
    int timeout_ms;
    bool hung;
    bool broken;                /* the stream failed or could not be parsed */
    bool oob;                   /* out-of-band execution is enabled */
    uint64_t next_id;
    JSONMessageParser parser;
    GQueue messages;            /* QDict *, in arrival order */
    GQueue events;              /* QDict *, set aside by a command's wait */
    Error *parse_err;
};

static void qmp_client_got(void *opaque, QObject *json, Error *err)
{
    QmpClient *c = opaque;
    QDict *msg;

    if (err) {
        if (!c->parse_err) {
            c->parse_err = err;
        } else {
            error_free(err);
        }
        c->broken = true;
        return;
    }
    msg = qobject_to(QDict, json);
    if (!msg) {
        qobject_unref(json);
        if (!c->parse_err) {
            error_setg(&c->parse_err,
                       "QMP sent something that is not a JSON object");
        }
        c->broken = true;
        return;
    }
    g_queue_push_tail(&c->messages, msg);
}

static int64_t deadline_in(int timeout_ms)
{
    return g_get_monotonic_time() / 1000 + timeout_ms;
}

static int ms_left(int64_t deadline)
{
    int64_t left = deadline - g_get_monotonic_time() / 1000;

    return left < 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/* Wait for @events on the socket until @deadline; false on timeout. */
static bool qmp_client_poll(QmpClient *c, short events, int64_t deadline,
                            Error **errp)
{
    struct pollfd pfd = { .fd = c->fd, .events = events };

    for (;;) {
        int ret = poll(&pfd, 1, ms_left(deadline));

        if (ret > 0) {
            return true;
        }
        if (ret == 0) {
            c->hung = true;
            error_setg(errp, "QEMU's monitor did not answer within %d ms",
                       c->timeout_ms);
            return false;
        }
        if (errno != EINTR) {
            error_setg_errno(errp, errno, "cannot wait for QEMU's monitor");
            c->broken = true;
            return false;
        }
    }
}

/* Read what is there and parse it; false if the stream ended or broke. */
static bool qmp_client_read(QmpClient *c, int64_t deadline, Error **errp)
{
    char buf[4096];
    ssize_t len;

    if (!qmp_client_poll(c, POLLIN, deadline, errp)) {
        return false;
    }
    do {
        len = read(c->fd, buf, sizeof(buf));
    } while (len < 0 && errno == EINTR);
    if (len < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return true;
    }
    if (len <= 0) {
        c->broken = true;
        if (len == 0) {
            error_setg(errp, "QEMU closed its monitor connection");
        } else {
            error_setg_errno(errp, errno, "cannot read QEMU's monitor");
        }
        return false;
    }
    json_message_parser_feed(&c->parser, buf, len);
    if (c->parse_err) {
        error_propagate(errp, c->parse_err);
        c->parse_err = NULL;
        return false;
    }
    return true;
}

static bool qmp_client_write(QmpClient *c, const char *data, size_t len,
                             int64_t deadline, Error **errp)
{
    while (len) {
        ssize_t done;

        if (!qmp_client_poll(c, POLLOUT, deadline, errp)) {
            return false;
        }
        done = write(c->fd, data, len);
        if (done < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
                continue;
            }
            c->broken = true;
            error_setg_errno(errp, errno, "cannot write to QEMU's monitor");
            return false;
        }
        data += done;
        len -= done;
    }
    return true;
}

/* The next message of any kind, waiting at most until @deadline. */
static QDict *qmp_client_next(QmpClient *c, int64_t deadline, Error **errp)
{
    while (g_queue_is_empty(&c->messages)) {
        if (!qmp_client_read(c, deadline, errp)) {
            return NULL;
        }
    }
    return g_queue_pop_head(&c->messages);
}

static QObject *qmp_client_exec(QmpClient *c, const char *command,
                                QDict *args, bool oob, Error **errp)
{
    g_autofree char *id = g_strdup_printf("qemu-colo-%" PRIu64,
                                          c->next_id++);
    QDict *req = qdict_new();
    g_autoptr(GString) json = NULL;
    int64_t deadline = deadline_in(c->timeout_ms);
    QObject *ret = NULL;

    if (c->hung || c->broken) {
        qobject_unref(args);
        qobject_unref(req);
        error_setg(errp, "QEMU's monitor connection is no longer usable");
        return NULL;
    }
    qdict_put_str(req, oob && c->oob ? "exec-oob" : "execute", command);
    if (args) {
        qdict_put(req, "arguments", args);
    }
    qdict_put_str(req, "id", id);
    json = qobject_to_json(QOBJECT(req));
    g_string_append_c(json, '\n');
    qobject_unref(req);
    if (!qmp_client_write(c, json->str, json->len, deadline, errp)) {
        return NULL;
    }

    for (;;) {
        QDict *msg = qmp_client_next(c, deadline, errp);
        QDict *error;

        if (!msg) {
            return NULL;
        }
        if (qdict_haskey(msg, "event")) {
            g_queue_push_tail(&c->events, msg);
            continue;
        }
        if (g_strcmp0(qdict_get_try_str(msg, "id"), id) != 0) {
            /* An answer to a command that timed out earlier: not ours. */
            qobject_unref(msg);
            continue;
        }
        error = qdict_get_qdict(msg, "error");
        if (error) {
            error_setg(errp, "%s: %s", command,
                       qdict_get_try_str(error, "desc") ?: "(no description)");
        } else if (qdict_haskey(msg, "return")) {
            ret = qdict_get(msg, "return");
            qobject_ref(ret);
        } else {
            error_setg(errp, "%s: QEMU answered neither return nor error",
                       command);
        }
        qobject_unref(msg);
        return ret;
    }
}

QObject *qmp_client_call(QmpClient *c, const char *command, QDict *args,
                         Error **errp)
{
    return qmp_client_exec(c, command, args, false, errp);
}

QObject *qmp_client_call_oob(QmpClient *c, const char *command, QDict *args,
                             Error **errp)
{
    return qmp_client_exec(c, command, args, true, errp);
}

bool qmp_client_run(QmpClient *c, const char *command, QDict *args,
                    Error **errp)
{
    QObject *ret = qmp_client_call(c, command, args, errp);

    qobject_unref(ret);
    return ret != NULL;
}

QDict *qmp_client_query(QmpClient *c, const char *command, Error **errp)
{
    QObject *ret = qmp_client_call(c, command, NULL, errp);
    QDict *dict = qobject_to(QDict, ret);

    if (ret && !dict) {
        qobject_unref(ret);
        error_setg(errp, "%s: QEMU answered something else than an object",
                   command);
    }
    return dict;
}

bool qmp_client_hung(QmpClient *c)
{
    return c->hung;
}

QDict *qmp_client_event(QmpClient *c, const char *name, int timeout_ms,
                        Error **errp)
{
    int64_t deadline = deadline_in(timeout_ms);

    for (;;) {
        QDict *msg;

        while ((msg = g_queue_pop_head(&c->events))) {
            if (!name || g_strcmp0(qdict_get_try_str(msg, "event"),
                                   name) == 0) {
                return msg;
            }
            qobject_unref(msg);
        }
        msg = qmp_client_next(c, deadline, errp);
        if (!msg) {
            return NULL;
        }
        if (qdict_haskey(msg, "event")) {
            g_queue_push_tail(&c->events, msg);
        } else {
            qobject_unref(msg);
        }
    }
}

static bool qmp_client_greet(QmpClient *c, Error **errp)
{
    int64_t deadline = deadline_in(c->timeout_ms);
    QDict *greeting = qmp_client_next(c, deadline, errp);
    QDict *qmp, *args = NULL;
    QList *offered;
    bool ok;

    /*
     * An event can come first: QEMU's monitor keeps the previous client's
     * command mode until it greets the next one, and a thread that emits
     * an event in between (COLO's STOP and RESUME, several a second) writes
     * it to the new connection.
     */
    while (greeting && qdict_haskey(greeting, "event")) {
        qobject_unref(greeting);
        greeting = qmp_client_next(c, deadline, errp);
    }
    if (!greeting) {
        return false;
    }
    qmp = qdict_get_qdict(greeting, "QMP");
    if (!qmp) {
        qobject_unref(greeting);
        error_setg(errp, "the socket does not speak QMP");
        return false;
    }
    offered = qdict_get_qlist(qmp, "capabilities");
    for (const QListEntry *e = offered ? qlist_first(offered) : NULL; e;
         e = qlist_next(e)) {
        QString *cap = qobject_to(QString, qlist_entry_obj(e));

        if (cap && !strcmp(qstring_get_str(cap), "oob")) {
            args = qdict_from_jsonf_nofail("{'enable': ['oob']}");
        }
    }
    qobject_unref(greeting);
    ok = qmp_client_run(c, "qmp_capabilities", args, errp);
    c->oob = ok && args;
    return ok;
}

/*
 * Connect without blocking.  A QEMU that is stopped or hung does not
 * accept, and once the clients that gave up on it fill its listen queue, a
 * blocking connect would wait for as long as QEMU hangs: so a full queue
 * is retried until @deadline, and then counts as a hang.
 */
static int qmp_client_connect(QmpClient *c, const char *path,
                              int64_t deadline, Error **errp)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    if (strlen(path) >= sizeof(addr.sun_path)) {
        error_setg(errp, "the socket path %s is too long", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        0);
        int err;

        if (fd < 0) {
            error_setg_errno(errp, errno, "cannot create a socket");
            return -1;
        }
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            return fd;
        }
        err = errno;
        close(fd);
        if (err == EINTR) {
            continue;
        }
        if (err != EAGAIN) {
            error_setg_errno(errp, err, "cannot connect");
            return -1;
        }
        if (!ms_left(deadline)) {
            c->hung = true;
            error_setg(errp, "QEMU's monitor accepted no connection within "
                       "%d ms", c->timeout_ms);
            return -1;
        }
        g_usleep(20 * 1000);
    }
}

QmpClient *qmp_client_open(const char *path, int timeout_ms, bool *hung,
                           Error **errp)
{
    QmpClient *c = g_new0(QmpClient, 1);

    if (hung) {
        *hung = false;
    }
    c->timeout_ms = timeout_ms;
    g_queue_init(&c->messages);
    g_queue_init(&c->events);
    json_message_parser_init(&c->parser, qmp_client_got, c, NULL);
    c->fd = qmp_client_connect(c, path, deadline_in(timeout_ms), errp);
    if (c->fd < 0 || !qmp_client_greet(c, errp)) {
        /* A monitor that accepts but never greets: QEMU hangs. */
        if (hung) {
            *hung = c->hung;
        }
        error_prepend(errp, "QMP at %s: ", path);
        qmp_client_close(c);
        return NULL;
    }
    return c;
}

static void qmp_client_drop_message(gpointer msg)
{
    qobject_unref((QDict *)msg);
}

void qmp_client_close(QmpClient *c)
{
    if (!c) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    json_message_parser_destroy(&c->parser);
    g_queue_clear_full(&c->messages, qmp_client_drop_message);
    g_queue_clear_full(&c->events, qmp_client_drop_message);
    error_free(c->parse_err);
    g_free(c);
}
