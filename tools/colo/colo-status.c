/*
 * `qemu-colo status`: one key=value line per fact, stable keys, so that a
 * resource agent can read them with a shell and a person at a glance.
 *
 *   qemu        running | stopped | hung | unreachable
 *   pid         QEMU's process id
 *   role        primary | secondary | alone | waiting-for-primary
 *               ("alone": the guest runs here without a replica;
 *                "waiting-for-primary": a secondary that has no guest yet)
 *   colo        running | peer-lost | off
 *               ("peer-lost": COLO lost its peer and waits for a decision)
 *   reason      query-colo-status's reason
 *   vm          QEMU's run state
 *   verified-checkpoints, verify-mismatches   when the secondary verifies
 *   NIC.COUNTER every counter of each NIC's colo-compare (primary)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qobject/qjson.h"
#include "qobject/qlist.h"
#include "qobject/qnum.h"
#include "colo-node.h"
#include "colo-status.h"

/*
 * A secondary's QEMU leaves "inmigrate" when the first migration has
 * loaded, a moment before COLO starts: until then it has been in no COLO
 * session (last-mode none) and runs no guest of its own.  Calling it
 * "alone" would make a cluster manager take it for a primary.
 */
static const char *role_of(const char *mode, const char *last_mode,
                           const char *vm, bool started_as_secondary)
{
    if (!strcmp(mode, "primary") || !strcmp(mode, "secondary")) {
        return mode;
    }
    if (!strcmp(vm, "inmigrate") ||
        (started_as_secondary && !strcmp(last_mode, "none"))) {
        return "waiting-for-primary";
    }
    return "alone";
}

/* Every counter of @nic's colo-compare, from one qom-list-get answer. */
static void print_counters(const ColoNicConfig *nic, QDict *values,
                           FILE *out)
{
    QList *props = values ? qdict_get_qlist(values, "properties") : NULL;

    for (const QListEntry *e = props ? qlist_first(props) : NULL; e;
         e = qlist_next(e)) {
        QDict *prop = qobject_to(QDict, qlist_entry_obj(e));
        const char *name = prop ? qdict_get_try_str(prop, "name") : NULL;
        QNum *num = prop ? qobject_to(QNum, qdict_get(prop, "value")) : NULL;
        uint64_t u;

        /* The counters; the settable numbers are the ones with '_'. */
        if (!name || strchr(name, '_') || !num ||
            g_strcmp0(qdict_get_try_str(prop, "type"), "uint64") ||
            !qnum_get_try_uint(num, &u)) {
            continue;
        }
        fprintf(out, "%s.%s=%" PRIu64 "\n", nic->id, name, u);
    }
}

/* The counters of every NIC's colo-compare, in one query. */
static void print_compare(QmpClient *qmp, const ColoConfig *cfg, FILE *out)
{
    QList *paths = qlist_new();
    QDict *args = qdict_new();
    QList *ret;
    const QListEntry *e;

    for (unsigned i = 0; i < cfg->nics->len; i++) {
        const ColoNicConfig *nic = g_ptr_array_index(cfg->nics, i);
        g_autofree char *path = g_strdup_printf("/objects/%s-compare",
                                                nic->id);

        qlist_append_str(paths, path);
    }
    qdict_put(args, "paths", paths);
    ret = qobject_to(QList, qmp_client_call(qmp, "qom-list-get", args, NULL));
    e = ret ? qlist_first(ret) : NULL;
    for (unsigned i = 0; i < cfg->nics->len && e; i++, e = qlist_next(e)) {
        print_counters(g_ptr_array_index(cfg->nics, i),
                       qobject_to(QDict, qlist_entry_obj(e)), out);
    }
    qobject_unref(ret);
}

ColoStatusCode colo_status_print(const ColoConfig *cfg, int timeout_ms,
                                 FILE *out)
{
    pid_t pid = colo_node_pid(cfg);
    g_autoptr(QDict) colo = NULL;
    g_autoptr(QDict) run = NULL;
    Error *err = NULL;
    QmpClient *qmp;
    const char *mode, *last_mode, *reason, *vm;
    bool hung;

    if (!pid) {
        fprintf(out, "qemu=stopped\n");
        return COLO_STATUS_STOPPED;
    }
    fprintf(out, "pid=%d\n", pid);
    qmp = colo_node_monitor(cfg, COLO_MONITOR_CONTROL, timeout_ms, &hung,
                            &err);
    if (qmp) {
        colo = qmp_client_query(qmp, "query-colo-status", &err);
        run = colo ? qmp_client_query(qmp, "query-status", &err) : NULL;
        hung = qmp_client_hung(qmp);
    }
    if (!run) {
        fprintf(out, "qemu=%s\nerror=%s\n", hung ? "hung" : "unreachable",
                error_get_pretty(err));
        error_free(err);
        qmp_client_close(qmp);
        return hung ? COLO_STATUS_HUNG : COLO_STATUS_ERROR;
    }
    mode = qdict_get_try_str(colo, "mode") ?: "none";
    last_mode = qdict_get_try_str(colo, "last-mode") ?: "none";
    reason = qdict_get_try_str(colo, "reason") ?: "none";
    vm = qdict_get_try_str(run, "status") ?: "unknown";
    fprintf(out, "qemu=running\nrole=%s\n",
            role_of(mode, last_mode, vm,
                    colo_node_started_as_secondary(pid)));
    if (!strcmp(mode, "none")) {
        fprintf(out, "colo=off\n");
    } else if (!strcmp(reason, "peer-lost") || !strcmp(reason, "peer-left")) {
        fprintf(out, "colo=peer-lost\n");
    } else {
        fprintf(out, "colo=running\n");
    }
    fprintf(out, "reason=%s\nvm=%s\n", reason, vm);
    if (qdict_haskey(colo, "verified-checkpoints")) {
        fprintf(out, "verified-checkpoints=%" PRId64 "\n"
                "verify-mismatches=%" PRId64 "\n",
                qdict_get_try_int(colo, "verified-checkpoints", 0),
                qdict_get_try_int(colo, "verify-mismatches", 0));
    }
    if (!strcmp(mode, "primary")) {
        print_compare(qmp, cfg, out);
    }
    qmp_client_close(qmp);
    return COLO_STATUS_RUNNING;
}
