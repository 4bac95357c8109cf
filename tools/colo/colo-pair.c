/*
 * Pairing and unpairing, by the QMP procedure that COLO documents.
 *
 * Names of what this file adds to QEMU, per disk D and NIC N:
 *   D-replica            replication node (primary mode) to the peer's D
 *   D-resync             NBD node and mirror job that copy D to the peer
 *   N-mirror-out         chardev: client packets to the secondary
 *   N-secondary-in       chardev: the secondary guest's packets
 *   N-primary-in(-srv)   chardev pair: this guest's packets to compare
 *   N-compare-out(-srv)  chardev pair: compare's verdicts to the wire
 *   N-mirror, N-to-compare, N-from-compare, N-compare   the objects
 * A protect first removes whatever a former pairing (or a former life as
 * a secondary, see colo-node.c) left, so that it can be repeated.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <netdb.h>
#include <poll.h>
#include <sys/file.h>
#include "qapi/error.h"
#include "qobject/qjson.h"
#include "qobject/qlist.h"
#include "qobject/qnum.h"
#include "colo-node.h"
#include "colo-pair.h"

#define POLL_MS 50

static int64_t now_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

/* query-colo-status's mode and reason, and the VM's run state. */
typedef struct ColoState {
    char *mode;
    char *last_mode;
    char *reason;
    char *vm;
} ColoState;

static void colo_state_clear(ColoState *s)
{
    g_free(s->mode);
    g_free(s->last_mode);
    g_free(s->reason);
    g_free(s->vm);
    memset(s, 0, sizeof(*s));
}

static bool colo_state_get(QmpClient *qmp, ColoState *s, Error **errp)
{
    g_autoptr(QDict) colo = qmp_client_query(qmp, "query-colo-status",
                                             errp);
    g_autoptr(QDict) run = colo ? qmp_client_query(qmp, "query-status", errp)
                                : NULL;

    colo_state_clear(s);
    if (!run) {
        return false;
    }
    s->mode = g_strdup(qdict_get_try_str(colo, "mode"));
    s->last_mode = g_strdup(qdict_get_try_str(colo, "last-mode"));
    s->reason = g_strdup(qdict_get_try_str(colo, "reason"));
    s->vm = g_strdup(qdict_get_try_str(run, "status"));
    return s->mode && s->vm;
}

/* Run a command whose failure only means there was nothing to undo. */
static void try_run(QmpClient *qmp, const char *command, QDict *args)
{
    qmp_client_run(qmp, command, args, NULL);
}

/* --- disks --------------------------------------------------------------- */

/* The name under which @node_name hangs from its (only) parent. */
static char *child_name(QmpClient *qmp, const char *node_name, Error **errp)
{
    g_autoptr(QDict) graph = qmp_client_query(qmp,
                                              "x-debug-query-block-graph",
                                              errp);
    QList *nodes, *edges;
    int64_t id = -1;

    if (!graph) {
        return NULL;
    }
    nodes = qdict_get_qlist(graph, "nodes");
    edges = qdict_get_qlist(graph, "edges");
    for (const QListEntry *e = nodes ? qlist_first(nodes) : NULL; e;
         e = qlist_next(e)) {
        QDict *n = qobject_to(QDict, qlist_entry_obj(e));

        if (n && !g_strcmp0(qdict_get_try_str(n, "name"), node_name) &&
            !g_strcmp0(qdict_get_try_str(n, "type"), "block-driver")) {
            id = qdict_get_int(n, "id");
        }
    }
    for (const QListEntry *e = edges ? qlist_first(edges) : NULL; id >= 0 && e;
         e = qlist_next(e)) {
        QDict *edge = qobject_to(QDict, qlist_entry_obj(e));

        if (edge && qdict_get_int(edge, "child") == id) {
            return g_strdup(qdict_get_try_str(edge, "name"));
        }
    }
    error_setg(errp, "block node %s is not attached to a disk", node_name);
    return NULL;
}

/* Take D-replica out of D and delete it, if it is there. */
static bool drop_replica(QmpClient *qmp, const ColoDiskConfig *d,
                         Error **errp)
{
    g_autofree char *node = g_strdup_printf("%s-replica", d->id);
    g_autofree char *child = child_name(qmp, node, NULL);

    if (child &&
        !qmp_client_run(qmp, "x-blockdev-change", qdict_from_jsonf_nofail(
                            "{'parent': %s, 'child': %s}", d->id, child),
                        errp)) {
        return false;
    }
    /* Also when it hangs from nothing: a half-done drop left it there. */
    try_run(qmp, "blockdev-del",
            qdict_from_jsonf_nofail("{'node-name': %s}", node));
    return true;
}

static QDict *nbd_node(const ColoConfig *cfg, const char *node_name,
                       const char *export)
{
    g_autofree char *port = g_strdup_printf("%u", colo_config_nbd_port(cfg));
    QDict *node = qdict_from_jsonf_nofail(
        "{'driver': 'nbd', 'node-name': %s, 'export': %s,"
        " 'server': {'type': 'inet', 'host': %s, 'port': %s}}",
        node_name, export, cfg->peer->address, port);

    if (cfg->tls_dir) {
        qdict_put_str(node, "tls-creds", COLO_TLS_CLIENT);
    }
    return node;
}

static bool add_replica(QmpClient *qmp, const ColoConfig *cfg,
                        const ColoDiskConfig *d, Error **errp)
{
    g_autofree char *node = g_strdup_printf("%s-replica", d->id);
    g_autofree char *link = g_strdup_printf("%s-link", d->id);
    QDict *args = qdict_from_jsonf_nofail(
        "{'driver': 'replication', 'node-name': %s, 'mode': 'primary'}",
        node);

    qdict_put(args, "file", nbd_node(cfg, link, d->id));
    return qmp_client_run(qmp, "blockdev-add", args, errp) &&
           qmp_client_run(qmp, "x-blockdev-change", qdict_from_jsonf_nofail(
                              "{'parent': %s, 'node': %s}", d->id, node),
                          errp);
}

static QDict *find_job(QmpClient *qmp, const char *id, Error **errp)
{
    QObject *ret = qmp_client_call(qmp, "query-block-jobs", NULL, errp);
    QList *jobs = qobject_to(QList, ret);
    QDict *found = NULL;

    for (const QListEntry *e = jobs ? qlist_first(jobs) : NULL; e;
         e = qlist_next(e)) {
        QDict *job = qobject_to(QDict, qlist_entry_obj(e));

        if (job && !g_strcmp0(qdict_get_try_str(job, "device"), id)) {
            found = job;
            qobject_ref(found);
        }
    }
    qobject_unref(ret);
    return found;
}

/*
 * Copy D to the peer's disk while the guest runs.  D-replica is already
 * in D, so every write the guest makes from now on reaches the peer too;
 * the mirror copies what was there before, and whatever the guest
 * rewrites meanwhile again, until the copy is complete.
 */
static bool resync_disk(QmpClient *qmp, const ColoConfig *cfg,
                        const ColoDiskConfig *d, int64_t deadline,
                        Error **errp)
{
    g_autofree char *job = g_strdup_printf("%s-resync", d->id);
    bool ready = false;

    if (!qmp_client_run(qmp, "blockdev-add", nbd_node(cfg, job, d->id),
                        errp) ||
        !qmp_client_run(qmp, "blockdev-mirror", qdict_from_jsonf_nofail(
                            "{'job-id': %s, 'device': %s, 'target': %s,"
                            " 'sync': 'full'}", job, d->id, job), errp)) {
        try_run(qmp, "blockdev-del",
                qdict_from_jsonf_nofail("{'node-name': %s}", job));
        return false;
    }
    while (!ready) {
        g_autoptr(QDict) info = find_job(qmp, job, errp);

        if (!info) {
            if (errp && !*errp) {
                error_setg(errp, "the copy of disk %s to %s ended before "
                           "it was complete", d->id, cfg->peer->name);
            }
            goto fail;
        }
        ready = qdict_get_try_bool(info, "ready", false);
        if (!ready && now_ms() > deadline) {
            error_setg(errp, "the copy of disk %s to %s is not complete "
                       "in time (%" PRId64 " of %" PRId64 " bytes)", d->id,
                       cfg->peer->name, qdict_get_try_int(info, "offset", 0),
                       qdict_get_try_int(info, "len", 0));
            goto fail;
        }
        if (!ready) {
            g_usleep(POLL_MS * 1000);
        }
    }
    /* Cancelled once ready, a mirror leaves a complete copy, no pivot. */
    if (!qmp_client_run(qmp, "block-job-cancel", qdict_from_jsonf_nofail(
                            "{'device': %s}", job), errp)) {
        goto fail;
    }
    for (;;) {
        g_autoptr(QDict) info = find_job(qmp, job, NULL);

        if (!info) {
            break;
        }
        if (now_ms() > deadline) {
            error_setg(errp, "the copy of disk %s does not finish", d->id);
            goto fail;
        }
        g_usleep(POLL_MS * 1000);
    }
    return qmp_client_run(qmp, "blockdev-del", qdict_from_jsonf_nofail(
                              "{'node-name': %s}", job), errp);

fail:
    try_run(qmp, "block-job-cancel",
            qdict_from_jsonf_nofail("{'device': %s, 'force': true}", job));
    return false;
}

/* --- the network proxy ---------------------------------------------------- */

static const char *const proxy_objects[] = {
    /* as a primary, in reverse order of creation */
    "compare", "to-compare", "from-compare", "mirror",
    /* as a secondary (colo-node.c) */
    "rewriter", "guest-out", "guest-in",
};

static const char *const proxy_chardevs[] = {
    "compare-out", "compare-out-srv", "primary-in", "primary-in-srv",
    "secondary-in", "mirror-out",
    "to-compare", "from-primary",
};

static void drop_proxy(QmpClient *qmp, const ColoNicConfig *n)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(proxy_objects); i++) {
        g_autofree char *id = g_strdup_printf("%s-%s", n->id,
                                              proxy_objects[i]);

        try_run(qmp, "object-del", qdict_from_jsonf_nofail("{'id': %s}",
                                                           id));
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(proxy_chardevs); i++) {
        g_autofree char *id = g_strdup_printf("%s-%s", n->id,
                                              proxy_chardevs[i]);

        try_run(qmp, "chardev-remove", qdict_from_jsonf_nofail("{'id': %s}",
                                                               id));
    }
}

/* With @tls, a server that accepts only the peer, over TLS. */
static bool add_chardev(QmpClient *qmp, const char *nic, const char *name,
                        QDict *addr, bool server, bool tls, Error **errp)
{
    g_autofree char *id = g_strdup_printf("%s-%s", nic, name);
    QDict *data = qdict_new();
    QDict *backend = qdict_new();
    QDict *args = qdict_new();

    qdict_put(data, "addr", addr);
    qdict_put_bool(data, "server", server);
    if (server) {
        qdict_put_bool(data, "wait", false);
    }
    if (tls) {
        qdict_put_str(data, "tls-creds", COLO_TLS_SERVER);
        qdict_put_str(data, "tls-authz", COLO_TLS_PEER);
    }
    qdict_put_str(backend, "type", "socket");
    qdict_put(backend, "data", data);
    qdict_put_str(args, "id", id);
    qdict_put(args, "backend", backend);
    return qmp_client_run(qmp, "chardev-add", args, errp);
}

static QDict *inet_address(const char *host, unsigned port)
{
    g_autofree char *text = g_strdup_printf("%u", port);

    return qdict_from_jsonf_nofail(
        "{'type': 'inet', 'data': {'host': %s, 'port': %s}}", host, text);
}

static QDict *unix_address(const ColoConfig *cfg, const char *nic,
                        const char *name)
{
    g_autofree char *file = g_strdup_printf("%s-%s.sock", nic, name);
    g_autofree char *path = colo_config_run_file(cfg, file);

    return qdict_from_jsonf_nofail(
        "{'type': 'unix', 'data': {'path': %s}}", path);
}

static bool add_object(QmpClient *qmp, QDict *args, Error **errp)
{
    return qmp_client_run(qmp, "object-add", args, errp);
}

static bool add_proxy(QmpClient *qmp, const ColoConfig *cfg,
                      const ColoNicConfig *n, Error **errp)
{
    const char *self = cfg->self->address;
    const char *id = n->id;
    g_autofree char *mirror = g_strdup_printf("%s-mirror", id);
    g_autofree char *to_compare = g_strdup_printf("%s-to-compare", id);
    g_autofree char *from_compare = g_strdup_printf("%s-from-compare", id);
    g_autofree char *compare = g_strdup_printf("%s-compare", id);
    g_autofree char *c_mirror = g_strdup_printf("%s-mirror-out", id);
    g_autofree char *c_sin = g_strdup_printf("%s-secondary-in", id);
    g_autofree char *c_pin = g_strdup_printf("%s-primary-in", id);
    g_autofree char *c_pin_srv = g_strdup_printf("%s-primary-in-srv", id);
    g_autofree char *c_out = g_strdup_printf("%s-compare-out", id);
    g_autofree char *c_out_srv = g_strdup_printf("%s-compare-out-srv", id);

    bool tls = cfg->tls_dir != NULL;

    /* The two that cross to the peer; the rest stay in this host. */
    return add_chardev(qmp, id, "mirror-out",
                       inet_address(self, colo_config_mirror_port(cfg, n)),
                       true, tls, errp) &&
           add_chardev(qmp, id, "secondary-in",
                       inet_address(self,
                                    colo_config_secondary_in_port(cfg, n)),
                       true, tls, errp) &&
           add_chardev(qmp, id, "primary-in-srv",
                       unix_address(cfg, id, "primary-in"), true, false,
                       errp) &&
           add_chardev(qmp, id, "primary-in",
                       unix_address(cfg, id, "primary-in"), false, false,
                       errp) &&
           add_chardev(qmp, id, "compare-out-srv",
                       unix_address(cfg, id, "compare-out"), true, false,
                       errp) &&
           add_chardev(qmp, id, "compare-out",
                       unix_address(cfg, id, "compare-out"), false, false,
                       errp) &&
           add_object(qmp, qdict_from_jsonf_nofail(
                          "{'qom-type': 'filter-mirror', 'id': %s,"
                          " 'netdev': %s, 'queue': 'tx', 'outdev': %s}",
                          mirror, id, c_mirror), errp) &&
           add_object(qmp, qdict_from_jsonf_nofail(
                          "{'qom-type': 'filter-redirector', 'id': %s,"
                          " 'netdev': %s, 'queue': 'rx', 'indev': %s}",
                          from_compare, id, c_out_srv), errp) &&
           add_object(qmp, qdict_from_jsonf_nofail(
                          "{'qom-type': 'filter-redirector', 'id': %s,"
                          " 'netdev': %s, 'queue': 'rx', 'outdev': %s}",
                          to_compare, id, c_pin_srv), errp) &&
           add_object(qmp, qdict_from_jsonf_nofail(
                          "{'qom-type': 'colo-compare', 'id': %s,"
                          " 'primary_in': %s, 'secondary_in': %s,"
                          " 'outdev': %s, 'iothread': 'colo-iothread'}",
                          compare, c_pin, c_sin, c_out), errp);
}

/* --- protect -------------------------------------------------------------- */

static bool start_migration(QmpClient *qmp, const ColoConfig *cfg,
                            Error **errp)
{
    g_autofree char *uri = g_strdup_printf(
        "tcp:%s:%u", cfg->peer->address, colo_config_migration_port(cfg));
    QDict *params = qdict_from_jsonf_nofail(
        "{'x-checkpoint-delay': %d}", (int)cfg->checkpoint_delay_ms);

    if (cfg->multifd_channels) {
        qdict_put_int(params, "multifd-channels", cfg->multifd_channels);
    }
    /*
     * The client's side now, also in a QEMU that was a secondary and still
     * has the server's; the multifd channels follow the main one.
     */
    if (cfg->tls_dir) {
        qdict_put_str(params, "tls-creds", COLO_TLS_CLIENT);
    }
    return qmp_client_run(qmp, "migrate-set-capabilities",
                          qdict_from_jsonf_nofail(
                              "{'capabilities': ["
                              " {'capability': 'x-colo', 'state': true},"
                              " {'capability': 'return-path', 'state': true},"
                              " {'capability': 'multifd', 'state': %i}]}",
                              cfg->multifd_channels > 0),
                          errp) &&
           qmp_client_run(qmp, "migrate-set-parameters", params, errp) &&
           qmp_client_run(qmp, "migrate",
                          qdict_from_jsonf_nofail("{'uri': %s}", uri), errp);
}

static bool wait_colo_running(QmpClient *qmp, int64_t deadline, Error **errp)
{
    for (;;) {
        g_autoptr(QDict) mig = qmp_client_query(qmp, "query-migrate", errp);
        ColoState s = {};
        bool running;

        if (!mig || !colo_state_get(qmp, &s, errp)) {
            colo_state_clear(&s);
            return false;
        }
        running = !strcmp(s.mode, "primary");
        colo_state_clear(&s);
        if (running) {
            return true;
        }
        if (!g_strcmp0(qdict_get_try_str(mig, "status"), "failed")) {
            error_setg(errp, "the migration to the secondary failed: %s",
                       qdict_get_try_str(mig, "error-desc") ?: "no reason");
            return false;
        }
        if (now_ms() > deadline) {
            error_setg(errp, "COLO did not start in time (migration %s)",
                       qdict_get_try_str(mig, "status") ?: "?");
            return false;
        }
        g_usleep(POLL_MS * 1000);
    }
}

/*
 * A protection that is under way owns the proxy objects and the disks'
 * replication children: a second one would tear them down under it.
 */
static bool migration_idle(QmpClient *qmp, Error **errp)
{
    static const char *const busy[] = {
        "setup", "active", "pre-switchover", "device", "wait-unplug",
        "cancelling", "colo", NULL
    };
    g_autoptr(QDict) mig = qmp_client_query(qmp, "query-migrate", errp);
    const char *status = mig ? qdict_get_try_str(mig, "status") : NULL;

    if (!mig) {
        return false;
    }
    if (status && g_strv_contains(busy, status)) {
        error_setg(errp, "a migration is under way (%s): is another "
                   "protect running?", status);
        return false;
    }
    return true;
}

/* How long the peer's NBD server may take to accept a probe. */
#define PEER_PROBE_MS 3000

/*
 * QEMU connects to the peer's NBD server while it holds the BQL, for as
 * long as the kernel keeps trying (minutes, when the link drops packets),
 * and the guest stalls meanwhile.  So the peer must have answered a probe
 * of our own, with a deadline, before QEMU is asked to connect.  The probe
 * goes to the NBD server: a connection that closes before its handshake
 * does that server no harm, as it would to an incoming migration.
 */
/* 0 once @fd's connect has finished, ETIMEDOUT if not within @ms. */
static int connect_wait(int fd, int ms)
{
    int64_t deadline = g_get_monotonic_time() / 1000 + ms;
    struct pollfd pfd = { .fd = fd, .events = POLLOUT };
    int rc;

    do {
        int left = deadline - g_get_monotonic_time() / 1000;

        rc = poll(&pfd, 1, MAX(left, 0));
    } while (rc < 0 && errno == EINTR);
    return rc == 1 ? 0 : ETIMEDOUT;
}

static bool peer_reachable(const ColoConfig *cfg, Error **errp)
{
    g_autofree char *port = g_strdup_printf("%u", colo_config_nbd_port(cfg));
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int err = ETIMEDOUT;
    int rc;

    rc = getaddrinfo(cfg->peer->address, port, &hints, &res);
    if (rc) {
        error_setg(errp, "the peer's address %s: %s", cfg->peer->address,
                   gai_strerror(rc));
        return false;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        socklen_t len = sizeof(err);
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
                        SOCK_CLOEXEC, ai->ai_protocol);

        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            err = 0;
        } else if (errno != EINPROGRESS) {
            err = errno;
        } else {
            err = connect_wait(fd, PEER_PROBE_MS);
            if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)) {
                err = errno;
            }
        }
        close(fd);
        if (!err) {
            break;
        }
    }
    freeaddrinfo(res);
    if (err) {
        error_setg(errp, "the secondary's NBD server (%s port %s) does not "
                   "answer: %s", cfg->peer->address, port, strerror(err));
        return false;
    }
    return true;
}

/* The monitor, with the state it reports; NULL (and closed) on error. */
static QmpClient *open_with_state(const ColoConfig *cfg, ColoMonitor which,
                                  int timeout_ms, ColoState *s, Error **errp)
{
    QmpClient *qmp = colo_node_monitor(cfg, which, timeout_ms, NULL, errp);

    if (qmp && !colo_state_get(qmp, s, errp)) {
        colo_state_clear(s);
        qmp_client_close(qmp);
        return NULL;
    }
    return qmp;
}

/*
 * One protection per node at a time: before its migration starts, a
 * protection is busy with the disks, which no QEMU state shows, and a
 * second one would tear down what the first has set up.  The lock goes
 * with the process, however it ends.  Returns its fd, or -1.
 */
static int protect_lock(const ColoConfig *cfg, Error **errp)
{
    g_autofree char *path = g_build_filename(cfg->run_dir, "protect.lock",
                                             NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open %s", path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) {
            error_setg(errp, "another protect of this node is under way");
        } else {
            error_setg_errno(errp, errno, "cannot lock %s", path);
        }
        close(fd);
        return -1;
    }
    return fd;
}

bool colo_pair_protect(const ColoConfig *cfg, bool resync, int timeout_ms,
                       Error **errp)
{
    int64_t deadline = now_ms() + timeout_ms;
    int lock = protect_lock(cfg, errp);
    QmpClient *qmp;
    ColoState s = {};
    bool ok = false;

    if (lock < 0) {
        return false;
    }
    qmp = open_with_state(cfg, COLO_MONITOR_SESSION, timeout_ms, &s, errp);
    if (!qmp) {
        close(lock);
        return false;
    }
    if (!strcmp(s.mode, "primary")) {
        ok = true;
        goto out;
    }
    if (strcmp(s.mode, "none") || !strcmp(s.vm, "inmigrate")) {
        error_setg(errp, "the guest does not run alone here (COLO mode %s, "
                   "VM %s): only such a guest can be protected", s.mode,
                   s.vm);
        goto out;
    }
    if (!migration_idle(qmp, errp) || !peer_reachable(cfg, errp)) {
        goto out;
    }

    for (unsigned i = 0; i < cfg->nics->len; i++) {
        drop_proxy(qmp, g_ptr_array_index(cfg->nics, i));
    }
    try_run(qmp, "nbd-server-stop", NULL);
    for (unsigned i = 0; i < cfg->disks->len; i++) {
        const ColoDiskConfig *d = g_ptr_array_index(cfg->disks, i);

        if (!drop_replica(qmp, d, errp) || !add_replica(qmp, cfg, d, errp) ||
            (resync && !resync_disk(qmp, cfg, d, deadline, errp))) {
            error_prepend(errp, "disk %s: ", d->id);
            goto out;
        }
    }
    try_run(qmp, "object-add", qdict_from_jsonf_nofail(
                "{'qom-type': 'iothread', 'id': 'colo-iothread'}"));
    for (unsigned i = 0; i < cfg->nics->len; i++) {
        const ColoNicConfig *n = g_ptr_array_index(cfg->nics, i);

        if (!add_proxy(qmp, cfg, n, errp)) {
            error_prepend(errp, "NIC %s: ", n->id);
            goto out;
        }
    }
    ok = start_migration(qmp, cfg, errp) &&
         wait_colo_running(qmp, deadline, errp);
out:
    colo_state_clear(&s);
    qmp_client_close(qmp);
    close(lock);
    return ok;
}

/* --- failover ------------------------------------------------------------- */

static bool wait_alone(QmpClient *qmp, int64_t deadline, ColoState *s,
                       Error **errp)
{
    for (;;) {
        if (!colo_state_get(qmp, s, errp)) {
            return false;
        }
        if (!strcmp(s->mode, "none") && !strcmp(s->vm, "running")) {
            return true;
        }
        if (now_ms() > deadline) {
            error_setg(errp, "the guest does not run alone in time "
                       "(COLO mode %s, VM %s)", s->mode, s->vm);
            return false;
        }
        g_usleep(POLL_MS * 1000);
    }
}

/* What a former primary's disks and a former secondary's network need. */
static bool take_over(QmpClient *qmp, const ColoConfig *cfg,
                      const char *was, Error **errp)
{
    if (!strcmp(was, "primary")) {
        for (unsigned i = 0; i < cfg->disks->len; i++) {
            if (!drop_replica(qmp, g_ptr_array_index(cfg->disks, i), errp)) {
                return false;
            }
        }
        return true;
    }
    if (strcmp(was, "secondary")) {
        return true;            /* it never was in COLO */
    }
    try_run(qmp, "nbd-server-stop", NULL);
    return colo_node_plug_taps(cfg, true, errp) &&
           qmp_client_run(qmp, "announce-self", qdict_from_jsonf_nofail(
                              "{'initial': 50, 'max': 550, 'rounds': 5,"
                              " 'step': 100}"), errp);
}

bool colo_pair_failover(const ColoConfig *cfg, int timeout_ms, Error **errp)
{
    int64_t deadline = now_ms() + timeout_ms;
    QmpClient *qmp;
    ColoState s = {};
    g_autofree char *was = NULL;
    bool ok = false;

    qmp = open_with_state(cfg, COLO_MONITOR_CONTROL, timeout_ms, &s, errp);
    if (!qmp) {
        return false;
    }
    if (!strcmp(s.mode, "none")) {
        if (!strcmp(s.vm, "inmigrate")) {
            error_setg(errp, "this node never received the guest: it has "
                       "nothing to run");
            goto out;
        }
        was = g_strdup(s.last_mode);
    } else {
        was = g_strdup(s.mode);
        /*
         * The migration channels may hang in a dead peer's TCP timeout:
         * cut them first, out of band in case the main loop waits on them.
         */
        qobject_unref(qmp_client_call_oob(qmp, "yank", qdict_from_jsonf_nofail(
                                         "{'instances': "
                                         "[{'type': 'migration'}]}"), NULL));
        if (!qmp_client_run(qmp, "x-colo-lost-heartbeat", NULL, errp)) {
            goto out;
        }
    }
    ok = wait_alone(qmp, deadline, &s, errp) &&
         take_over(qmp, cfg, was, errp);
out:
    colo_state_clear(&s);
    qmp_client_close(qmp);
    return ok;
}
