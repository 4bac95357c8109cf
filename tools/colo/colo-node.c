/*
 * This node's QEMU for one replicated VM.
 *
 * QEMU runs in a session of its own (it must outlive the resource agent
 * that launched it), writes its pid file in the VM's run directory and
 * talks QMP on a socket there.  Its output goes to qemu.log next to them.
 *
 * The command line holds what does not change for the life of the
 * process: the disks as their role needs them, the NICs, and on a
 * secondary the network proxy's receiving half, which connects to the
 * primary's by itself.  What the primary adds to pair up goes in by QMP
 * (see colo-pair.c), so that a guest that runs alone has no proxy in its
 * way and can be paired again after a failover.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/wait.h>
#include "qapi/error.h"
#include "qobject/qjson.h"
#include "qobject/qnum.h"
#include "colo-node.h"

#define PID_FILE "qemu.pid"
#define QMP_SOCKET "qmp.sock"
#define CONTROL_SOCKET "control.sock"
#define LOG_FILE "qemu.log"

/* How long one attempt to reach a monitor that is starting may take. */
#define LAUNCH_PROBE_MS 2000
#define LOG_TAIL_BYTES 2000

/* Whether an argument of process @pid contains @needle (@whole: is it). */
static bool cmdline_has(guint64 pid, const char *needle, bool whole)
{
    g_autofree char *path = g_strdup_printf("/proc/%" PRIu64 "/cmdline",
                                            pid);
    g_autofree char *cmdline = NULL;
    gsize len;

    if (!g_file_get_contents(path, &cmdline, &len, NULL)) {
        return false;
    }
    for (gsize off = 0; off < len; off += strlen(cmdline + off) + 1) {
        if (whole ? !strcmp(cmdline + off, needle)
                  : strstr(cmdline + off, needle) != NULL) {
            return true;
        }
    }
    return false;
}

pid_t colo_node_pid(const ColoConfig *cfg)
{
    g_autofree char *pidfile = colo_config_run_file(cfg, PID_FILE);
    g_autofree char *sock = colo_config_run_file(cfg, QMP_SOCKET);
    g_autofree char *text = NULL;
    guint64 pid;

    if (!g_file_get_contents(pidfile, &text, NULL, NULL) ||
        !g_ascii_string_to_unsigned(g_strstrip(text), 10, 1, G_MAXINT32,
                                    &pid, NULL)) {
        return 0;
    }
    /* A recycled pid is not our QEMU: it must name our monitor socket. */
    return cmdline_has(pid, sock, false) ? pid : 0;
}

bool colo_node_started_as_secondary(pid_t pid)
{
    return cmdline_has(pid, "-incoming", true);
}

QmpClient *colo_node_monitor(const ColoConfig *cfg, ColoMonitor which,
                             int timeout_ms, bool *hung, Error **errp)
{
    g_autofree char *sock = colo_config_run_file(
        cfg, which == COLO_MONITOR_CONTROL ? CONTROL_SOCKET : QMP_SOCKET);

    return qmp_client_open(sock, timeout_ms, hung, errp);
}

/* --- the command line ---------------------------------------------------- */

static void add(GPtrArray *argv, const char *opt, char *value)
{
    g_ptr_array_add(argv, g_strdup(opt));
    g_ptr_array_add(argv, value);
}

static char *active_image(const ColoConfig *cfg, const ColoDiskConfig *d)
{
    g_autofree char *name = g_strdup_printf("%s-active.qcow2", d->id);

    return colo_config_run_file(cfg, name);
}

static char *hidden_image(const ColoConfig *cfg, const ColoDiskConfig *d)
{
    g_autofree char *name = g_strdup_printf("%s-hidden.qcow2", d->id);

    return colo_config_run_file(cfg, name);
}

/* The primary's disk: a quorum whose first child is the local image. */
static void add_primary_disk(GPtrArray *argv, const ColoDiskConfig *d)
{
    add(argv, "-drive", g_strdup_printf(
        "if=none,id=%s,driver=quorum,read-pattern=fifo,vote-threshold=1,"
        "children.0.driver=%s,children.0.file.filename=%s",
        d->id, d->format, d->file));
}

/*
 * The secondary's: the local image under the hidden and active overlays
 * of a secondary replication node, under the same quorum, so that after a
 * failover the disk can take a replication child of its own.
 */
static void add_secondary_disk(GPtrArray *argv, const ColoConfig *cfg,
                               const ColoDiskConfig *d)
{
    g_autofree char *active = active_image(cfg, d);
    g_autofree char *hidden = hidden_image(cfg, d);

    add(argv, "-drive", g_strdup_printf(
        "if=none,id=%s-parent,driver=%s,file.filename=%s",
        d->id, d->format, d->file));
    add(argv, "-drive", g_strdup_printf(
        "if=none,id=%s-secondary,driver=replication,mode=secondary,"
        "top-id=%s,file.driver=qcow2,file.node-name=%s-active,"
        "file.file.filename=%s,file.backing.driver=qcow2,"
        "file.backing.node-name=%s-hidden,"
        "file.backing.file.filename=%s,file.backing.backing=%s-parent",
        d->id, d->id, d->id, active, d->id, hidden, d->id));
    add(argv, "-drive", g_strdup_printf(
        "if=none,id=%s,driver=quorum,read-pattern=fifo,vote-threshold=1,"
        "children.0=%s-secondary", d->id, d->id));
}

/* @value inside one QemuOpts argument: its commas doubled. */
static char *opt_value(const char *value)
{
    g_auto(GStrv) parts = g_strsplit(value, ",", -1);

    return g_strjoinv(",,", parts);
}

/*
 * Both credentials on every node: a node serves some channels and is the
 * client of others, and which ones changes with its role.
 */
static void add_tls_objects(GPtrArray *argv, const ColoConfig *cfg)
{
    g_autofree char *dir = opt_value(cfg->tls_dir);
    g_autofree char *peer = opt_value(cfg->peer->tls_name);

    add(argv, "-object", g_strdup_printf(
        "tls-creds-x509,id=%s,endpoint=server,dir=%s,verify-peer=on",
        COLO_TLS_SERVER, dir));
    add(argv, "-object", g_strdup_printf(
        "tls-creds-x509,id=%s,endpoint=client,dir=%s", COLO_TLS_CLIENT, dir));
    add(argv, "-object", g_strdup_printf("authz-simple,id=%s,identity=%s",
                                         COLO_TLS_PEER, peer));
}

/* The secondary's half of the proxy: it is fed and heard by the primary. */
static void add_secondary_proxy(GPtrArray *argv, const ColoConfig *cfg,
                                const ColoNicConfig *n)
{
    const char *tls = cfg->tls_dir ? ",tls-creds=" COLO_TLS_CLIENT : "";

    add(argv, "-chardev", g_strdup_printf(
        "socket,id=%s-from-primary,host=%s,port=%u,reconnect-ms=200%s",
        n->id, cfg->peer->address, colo_config_mirror_port(cfg, n), tls));
    add(argv, "-chardev", g_strdup_printf(
        "socket,id=%s-to-compare,host=%s,port=%u,reconnect-ms=200%s",
        n->id, cfg->peer->address, colo_config_secondary_in_port(cfg, n),
        tls));
    add(argv, "-object", g_strdup_printf(
        "filter-redirector,id=%s-guest-in,netdev=%s,queue=tx,"
        "indev=%s-from-primary", n->id, n->id, n->id));
    add(argv, "-object", g_strdup_printf(
        "filter-redirector,id=%s-guest-out,netdev=%s,queue=rx,"
        "outdev=%s-to-compare", n->id, n->id, n->id));
    add(argv, "-object", g_strdup_printf(
        "filter-rewriter,id=%s-rewriter,netdev=%s,queue=all", n->id, n->id));
}

static GPtrArray *command_line(const ColoConfig *cfg, ColoNodeRole role)
{
    GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *sock = colo_config_run_file(cfg, QMP_SOCKET);
    g_autofree char *control = colo_config_run_file(cfg, CONTROL_SOCKET);

    g_ptr_array_add(argv, g_strdup(cfg->binary));
    add(argv, "-name", g_strdup_printf("%s,debug-threads=on", cfg->name));
    add(argv, "-chardev", g_strdup_printf(
        "socket,id=colo-qmp,path=%s,server=on,wait=off", sock));
    add(argv, "-mon", g_strdup("chardev=colo-qmp,mode=control"));
    add(argv, "-chardev", g_strdup_printf(
        "socket,id=colo-control,path=%s,server=on,wait=off", control));
    add(argv, "-mon", g_strdup("chardev=colo-control,mode=control"));
    add(argv, "-pidfile", colo_config_run_file(cfg, PID_FILE));
    if (cfg->tls_dir) {
        add_tls_objects(argv, cfg);
    }
    for (char **a = cfg->args; *a; a++) {
        g_ptr_array_add(argv, g_strdup(*a));
    }
    for (unsigned i = 0; i < cfg->disks->len; i++) {
        const ColoDiskConfig *d = g_ptr_array_index(cfg->disks, i);

        if (role == COLO_NODE_PRIMARY) {
            add_primary_disk(argv, d);
        } else {
            add_secondary_disk(argv, cfg, d);
        }
        add(argv, "-device", g_strdup_printf("%s,drive=%s,id=%s-dev",
                                             d->device, d->id, d->id));
    }
    for (unsigned i = 0; i < cfg->nics->len; i++) {
        const ColoNicConfig *n = g_ptr_array_index(cfg->nics, i);

        add(argv, "-netdev", g_strdup_printf(
            "tap,id=%s,ifname=%s,script=no,downscript=no", n->id, n->tap));
        add(argv, "-device", g_strdup_printf("%s,netdev=%s,mac=%s,id=%s-dev",
                                             n->model, n->id, n->mac, n->id));
        if (role == COLO_NODE_SECONDARY) {
            add_secondary_proxy(argv, cfg, n);
        }
    }
    if (role == COLO_NODE_SECONDARY) {
        add(argv, "-incoming", g_strdup("defer"));
    }
    g_ptr_array_add(argv, NULL);
    return argv;
}

/* --- helpers run on the host --------------------------------------------- */

static bool run_tool(const char *const *argv, char **out, Error **errp)
{
    g_autoptr(GError) gerr = NULL;
    g_autofree char *err_text = NULL;
    int status;

    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                      NULL, out, &err_text, &status, &gerr)) {
        error_setg(errp, "cannot run %s: %s", argv[0], gerr->message);
        return false;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_autofree char *cmd = g_strjoinv(" ", (char **)argv);

        error_setg(errp, "'%s' failed: %s", cmd, g_strstrip(err_text));
        return false;
    }
    return true;
}

static bool disk_size(const ColoConfig *cfg, const ColoDiskConfig *d,
                      uint64_t *size, Error **errp)
{
    const char *argv[] = { cfg->img_tool, "info", "--output=json", "-f",
                           d->format, d->file, NULL };
    g_autofree char *out = NULL;
    g_autoptr(QDict) info = NULL;
    QNum *vsize;

    if (!run_tool(argv, &out, errp)) {
        return false;
    }
    info = qobject_to(QDict, qobject_from_json(out, NULL));
    vsize = info ? qobject_to(QNum, qdict_get(info, "virtual-size")) : NULL;
    if (!vsize || !qnum_get_try_uint(vsize, size)) {
        error_setg(errp, "%s info gave no virtual size for %s",
                   cfg->img_tool, d->file);
        return false;
    }
    return true;
}

/* Fresh, empty overlays: a secondary starts from its own image only. */
static bool make_overlays(const ColoConfig *cfg, Error **errp)
{
    for (unsigned i = 0; i < cfg->disks->len; i++) {
        const ColoDiskConfig *d = g_ptr_array_index(cfg->disks, i);
        g_autofree char *active = active_image(cfg, d);
        g_autofree char *hidden = hidden_image(cfg, d);
        g_autofree char *size_text = NULL;
        uint64_t size;

        if (!disk_size(cfg, d, &size, errp)) {
            return false;
        }
        size_text = g_strdup_printf("%" PRIu64, size);
        for (const char *img = active; img; img = img == active ? hidden
                                                                : NULL) {
            const char *argv[] = { cfg->img_tool, "create", "-q", "-f",
                                   "qcow2", img, size_text, NULL };

            if (!run_tool(argv, NULL, errp)) {
                return false;
            }
        }
    }
    return true;
}

bool colo_node_plug_taps(const ColoConfig *cfg, bool serve, Error **errp)
{
    for (unsigned i = 0; i < cfg->nics->len; i++) {
        const ColoNicConfig *n = g_ptr_array_index(cfg->nics, i);
        const char *argv[] = { "ip", "link", "set", "dev", n->tap,
                               "nomaster", "up", NULL, NULL };

        if (serve && n->bridge) {
            argv[5] = "master";
            argv[6] = n->bridge;
            argv[7] = "up";
        }
        if (!run_tool(argv, NULL, errp)) {
            return false;
        }
    }
    return true;
}

/* --- launch and stop ------------------------------------------------------ */

static char *log_tail(const ColoConfig *cfg)
{
    g_autofree char *path = colo_config_run_file(cfg, LOG_FILE);
    g_autofree char *text = NULL;
    gsize len;

    if (!g_file_get_contents(path, &text, &len, NULL)) {
        return g_strdup("(no log)");
    }
    return g_strdup(g_strstrip(text + (len > LOG_TAIL_BYTES ?
                                       len - LOG_TAIL_BYTES : 0)));
}

static void new_session(gpointer data)
{
    setsid();
}

static pid_t spawn_qemu(const ColoConfig *cfg, GPtrArray *argv,
                        Error **errp)
{
    g_autofree char *log_path = colo_config_run_file(cfg, LOG_FILE);
    g_autoptr(GError) gerr = NULL;
    int log_fd, null_fd;
    GPid pid;
    bool ok;

    log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        error_setg_errno(errp, errno, "cannot open %s", log_path);
        return 0;
    }
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ok = g_spawn_async_with_fds(NULL, (char **)argv->pdata, NULL,
                                G_SPAWN_DO_NOT_REAP_CHILD, new_session, NULL,
                                &pid, null_fd, log_fd, log_fd, &gerr);
    close(log_fd);
    if (null_fd >= 0) {
        close(null_fd);
    }
    if (!ok) {
        error_setg(errp, "cannot run %s: %s", cfg->binary, gerr->message);
        return 0;
    }
    return pid;
}

/* Until QEMU's monitor answers; an exit on the way is a failed launch. */
static QmpClient *wait_for_monitor(const ColoConfig *cfg, pid_t pid,
                                   int timeout_ms, Error **errp)
{
    int64_t deadline = g_get_monotonic_time() / 1000 + timeout_ms;

    for (;;) {
        QmpClient *qmp;
        int status;

        if (waitpid(pid, &status, WNOHANG) == pid) {
            g_autofree char *tail = log_tail(cfg);

            error_setg(errp, "QEMU exited while starting");
            error_append_hint(errp, "Its output:\n%s\n", tail);
            return NULL;
        }
        qmp = colo_node_monitor(cfg, COLO_MONITOR_SESSION, LAUNCH_PROBE_MS,
                                NULL, NULL);
        if (qmp) {
            return qmp;
        }
        if (g_get_monotonic_time() / 1000 > deadline) {
            error_setg(errp, "QEMU's monitor did not answer within %d ms",
                       timeout_ms);
            kill(pid, SIGKILL);
            return NULL;
        }
        g_usleep(100 * 1000);
    }
}

/* The secondary's listening half: disks exported, migration incoming. */
static bool secondary_listen(const ColoConfig *cfg, QmpClient *qmp,
                             Error **errp)
{
    g_autofree char *uri = g_strdup_printf(
        "tcp:%s:%u", cfg->self->address, colo_config_migration_port(cfg));
    g_autofree char *nbd_port = g_strdup_printf(
        "%u", colo_config_nbd_port(cfg));
    QDict *caps = qdict_from_jsonf_nofail(
        "{'capabilities': [{'capability': 'x-colo', 'state': true},"
        " {'capability': 'return-path', 'state': true},"
        " {'capability': 'multifd', 'state': %i}]}",
        cfg->multifd_channels > 0);
    g_autoptr(QDict) params = qdict_new();
    g_autoptr(QDict) nbd = qdict_from_jsonf_nofail(
        "{'addr': {'type': 'inet', 'data': {'host': %s, 'port': %s}}}",
        cfg->self->address, nbd_port);

    if (cfg->multifd_channels) {
        qdict_put_int(params, "multifd-channels", cfg->multifd_channels);
    }
    /* Only the peer may checkpoint into this node or write its disks. */
    if (cfg->tls_dir) {
        qdict_put_str(params, "tls-creds", COLO_TLS_SERVER);
        qdict_put_str(params, "tls-authz", COLO_TLS_PEER);
        qdict_put_str(nbd, "tls-creds", COLO_TLS_SERVER);
        qdict_put_str(nbd, "tls-authz", COLO_TLS_PEER);
    }
    if (!qmp_client_run(qmp, "migrate-set-capabilities", caps, errp) ||
        (qdict_size(params) &&
         !qmp_client_run(qmp, "migrate-set-parameters",
                         g_steal_pointer(&params), errp)) ||
        !qmp_client_run(qmp, "nbd-server-start", g_steal_pointer(&nbd),
                        errp)) {
        return false;
    }
    for (unsigned i = 0; i < cfg->disks->len; i++) {
        const ColoDiskConfig *d = g_ptr_array_index(cfg->disks, i);
        g_autofree char *parent = g_strdup_printf("%s-parent", d->id);

        if (!qmp_client_run(qmp, "nbd-server-add", qdict_from_jsonf_nofail(
                                "{'device': %s, 'name': %s, "
                                "'writable': true}", parent, d->id), errp)) {
            return false;
        }
    }
    return qmp_client_run(qmp, "migrate-incoming",
                          qdict_from_jsonf_nofail("{'uri': %s}", uri), errp);
}

bool colo_node_launch(const ColoConfig *cfg, ColoNodeRole role,
                      int timeout_ms, Error **errp)
{
    g_autofree char *pidfile = colo_config_run_file(cfg, PID_FILE);
    g_autofree char *sock = colo_config_run_file(cfg, QMP_SOCKET);
    g_autoptr(GPtrArray) argv = NULL;
    pid_t pid = colo_node_pid(cfg);
    QmpClient *qmp;
    bool ok;

    if (pid) {
        error_setg(errp, "QEMU for %s already runs here (pid %d)",
                   cfg->name, pid);
        return false;
    }
    if (g_mkdir_with_parents(cfg->run_dir, 0700) < 0) {
        error_setg_errno(errp, errno, "cannot create %s", cfg->run_dir);
        return false;
    }
    unlink(pidfile);
    unlink(sock);
    if (role == COLO_NODE_SECONDARY && !make_overlays(cfg, errp)) {
        return false;
    }
    argv = command_line(cfg, role);
    pid = spawn_qemu(cfg, argv, errp);
    if (!pid) {
        return false;
    }
    qmp = wait_for_monitor(cfg, pid, timeout_ms, errp);
    if (!qmp) {
        return false;
    }
    ok = colo_node_plug_taps(cfg, role == COLO_NODE_PRIMARY, errp) &&
         (role == COLO_NODE_PRIMARY || secondary_listen(cfg, qmp, errp));
    qmp_client_close(qmp);
    if (!ok) {
        error_prepend(errp, "QEMU started (pid %d) but: ", pid);
        kill(pid, SIGKILL);
        return false;
    }
    return true;
}

static bool wait_gone(pid_t pid, int timeout_ms)
{
    int64_t deadline = g_get_monotonic_time() / 1000 + timeout_ms;

    while (kill(pid, 0) == 0) {
        char path[64], state = 0;
        g_autofree char *stat = NULL;
        const char *paren;

        /* A zombie has stopped; nobody here may be its parent to reap it. */
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        paren = g_file_get_contents(path, &stat, NULL, NULL)
                ? strrchr(stat, ')') : NULL;
        if (paren && paren[1]) {
            state = paren[2];
        }
        if (state == 'Z') {
            return true;
        }
        if (g_get_monotonic_time() / 1000 > deadline) {
            return false;
        }
        g_usleep(50 * 1000);
    }
    return true;
}

/*
 * Within @timeout_ms in all: half for QEMU to quit when asked (by QMP, or
 * SIGTERM when its monitor cannot be reached), the rest for SIGKILL to
 * land.  A QEMU whose monitor accepts but does not answer is hung (or
 * stopped by a signal): it would not handle SIGTERM either, and a cluster
 * waits for this stop before the guest may run elsewhere, so it is killed
 * at once.
 */
bool colo_node_stop(const ColoConfig *cfg, int timeout_ms, Error **errp)
{
    pid_t pid = colo_node_pid(cfg);
    g_autofree char *pidfile = colo_config_run_file(cfg, PID_FILE);
    g_autofree char *sock = colo_config_run_file(cfg, QMP_SOCKET);
    g_autofree char *control = colo_config_run_file(cfg, CONTROL_SOCKET);
    int64_t polite_end = g_get_monotonic_time() / 1000 + timeout_ms / 2;
    QmpClient *qmp;
    bool hung = false;
    int left = 0;

    if (!pid) {
        return true;
    }
    qmp = colo_node_monitor(cfg, COLO_MONITOR_CONTROL,
                            MIN(timeout_ms / 4, LAUNCH_PROBE_MS), &hung, NULL);
    if (qmp) {
        /* The answer may not come: QEMU may be gone before it writes it. */
        qobject_unref(qmp_client_call(qmp, "quit", NULL, NULL));
        qmp_client_close(qmp);
    } else if (!hung) {
        kill(pid, SIGTERM);
    }
    if (!hung) {
        left = MAX(polite_end - g_get_monotonic_time() / 1000, 0);
    }
    if (!wait_gone(pid, left)) {
        kill(pid, SIGKILL);
        if (!wait_gone(pid, timeout_ms - timeout_ms / 2)) {
            error_setg(errp, "QEMU (pid %d) survived SIGKILL", pid);
            return false;
        }
    }
    unlink(pidfile);
    unlink(sock);
    unlink(control);
    return true;
}
