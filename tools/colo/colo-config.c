/*
 * qemu-colo's configuration file.
 *
 * A GLib key file, the same on both nodes:
 *   [vm]          name, binary, run-dir; optional img-tool, args
 *   [colo]        port; optional checkpoint-delay, multifd-channels,
 *                 tls-dir
 *   [node NAME]   address; optional tls-name (exactly two such groups)
 *   [nic ID]      tap, mac; optional bridge, model
 *   [disk ID]     file; optional format, device
 * Unknown groups and keys are errors: a typo must not silently fall back
 * to a default on a machine that is supposed to survive a failure.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/id.h"
#include "colo-config.h"

/* Ports after the first: migration, NBD, then two per NIC. */
#define PORTS_BEFORE_NICS 2
#define PORTS_PER_NIC 2

static const char *const vm_keys[] = {
    "name", "binary", "run-dir", "img-tool", "args", NULL
};
static const char *const colo_keys[] = {
    "port", "checkpoint-delay", "multifd-channels", "tls-dir", NULL
};
static const char *const node_keys[] = { "address", "tls-name", NULL };
static const char *const nic_keys[] = {
    "tap", "mac", "bridge", "model", NULL
};
static const char *const disk_keys[] = { "file", "format", "device", NULL };

static bool check_keys(GKeyFile *kf, const char *group,
                       const char *const *known, Error **errp)
{
    g_auto(GStrv) keys = g_key_file_get_keys(kf, group, NULL, NULL);

    for (char **k = keys; k && *k; k++) {
        if (!g_strv_contains(known, *k)) {
            error_setg(errp, "[%s]: unknown key '%s'", group, *k);
            return false;
        }
    }
    return true;
}

static char *get_str(GKeyFile *kf, const char *group, const char *key,
                     const char *def, Error **errp)
{
    g_autoptr(GError) gerr = NULL;
    char *value = g_key_file_get_string(kf, group, key, &gerr);

    if (value && !*value) {
        g_free(value);
        value = NULL;
    }
    if (value) {
        return value;
    }
    if (def) {
        return g_strdup(def);
    }
    error_setg(errp, "[%s]: '%s' is required", group, key);
    return NULL;
}

static bool get_uint(GKeyFile *kf, const char *group, const char *key,
                     unsigned def, unsigned max, unsigned *out, Error **errp)
{
    g_autoptr(GError) gerr = NULL;
    g_autofree char *text = g_key_file_get_string(kf, group, key, NULL);
    guint64 value;

    if (!text) {
        *out = def;
        return true;
    }
    if (!g_ascii_string_to_unsigned(text, 10, 0, max, &value, &gerr)) {
        error_setg(errp, "[%s]: '%s' must be a number from 0 to %u: %s",
                   group, key, max, gerr->message);
        return false;
    }
    *out = value;
    return true;
}

/* A name that QEMU accepts as an id, and that our derived ids extend. */
static bool check_id(const char *what, const char *id, Error **errp)
{
    if (!id_wellformed(id) || strlen(id) > 32) {
        error_setg(errp, "%s '%s' is not a valid id: a letter, then up to "
                   "31 letters, digits, '-', '.' or '_'", what, id);
        return false;
    }
    return true;
}

static void node_free(gpointer p)
{
    ColoNodeConfig *n = p;

    g_free(n->name);
    g_free(n->address);
    g_free(n->tls_name);
    g_free(n);
}

static void nic_free(gpointer p)
{
    ColoNicConfig *n = p;

    g_free(n->id);
    g_free(n->tap);
    g_free(n->bridge);
    g_free(n->model);
    g_free(n->mac);
    g_free(n);
}

static void disk_free(gpointer p)
{
    ColoDiskConfig *d = p;

    g_free(d->id);
    g_free(d->file);
    g_free(d->format);
    g_free(d->device);
    g_free(d);
}

static bool load_vm(ColoConfig *cfg, GKeyFile *kf, Error **errp)
{
    g_autofree char *dir = NULL;
    g_autofree char *args = NULL;
    g_autofree char *sibling = NULL;

    if (!check_keys(kf, "vm", vm_keys, errp)) {
        return false;
    }
    cfg->name = get_str(kf, "vm", "name", NULL, errp);
    if (!cfg->name || !check_id("[vm] name", cfg->name, errp)) {
        return false;
    }
    cfg->binary = get_str(kf, "vm", "binary", NULL, errp);
    cfg->run_dir = cfg->binary ? get_str(kf, "vm", "run-dir", NULL, errp)
                               : NULL;
    if (!cfg->run_dir) {
        return false;
    }
    if (!g_path_is_absolute(cfg->run_dir)) {
        error_setg(errp, "[vm]: run-dir must be an absolute path");
        return false;
    }
    /* By default the qemu-img that was built with the emulator. */
    dir = g_path_get_dirname(cfg->binary);
    sibling = g_build_filename(dir, "qemu-img", NULL);
    cfg->img_tool = get_str(kf, "vm", "img-tool",
                            g_file_test(sibling, G_FILE_TEST_IS_EXECUTABLE)
                            ? sibling : "qemu-img", errp);
    cfg->args = g_key_file_get_string_list(kf, "vm", "args", NULL, NULL);
    if (!cfg->args) {
        cfg->args = g_new0(char *, 1);
    }
    return true;
}

static bool load_colo(ColoConfig *cfg, GKeyFile *kf, Error **errp)
{
    if (!g_key_file_has_group(kf, "colo")) {
        error_setg(errp, "the [colo] group is missing");
        return false;
    }
    if (!check_keys(kf, "colo", colo_keys, errp) ||
        !get_uint(kf, "colo", "checkpoint-delay", 2000, 3600 * 1000,
                  &cfg->checkpoint_delay_ms, errp) ||
        !get_uint(kf, "colo", "multifd-channels", 0, 255,
                  &cfg->multifd_channels, errp) ||
        !get_uint(kf, "colo", "port", 0, 65535, &cfg->port, errp)) {
        return false;
    }
    if (!cfg->port) {
        error_setg(errp, "[colo]: 'port' is required (the first of the "
                   "TCP ports that COLO uses)");
        return false;
    }
    cfg->tls_dir = get_str(kf, "colo", "tls-dir", "", NULL);
    if (!*cfg->tls_dir) {
        g_clear_pointer(&cfg->tls_dir, g_free);
    } else if (!g_path_is_absolute(cfg->tls_dir)) {
        error_setg(errp, "[colo]: tls-dir must be an absolute path");
        return false;
    }
    return true;
}

static bool load_group(ColoConfig *cfg, GKeyFile *kf, const char *group,
                       Error **errp)
{
    const char *space = strchr(group, ' ');
    g_autofree char *kind = NULL;
    const char *id;

    if (!strcmp(group, "vm") || !strcmp(group, "colo")) {
        return true;
    }
    if (!space) {
        error_setg(errp, "unknown group [%s]", group);
        return false;
    }
    kind = g_strndup(group, space - group);
    id = space + 1;

    if (!strcmp(kind, "node")) {
        ColoNodeConfig *n = g_new0(ColoNodeConfig, 1);
        g_autofree char *cn = NULL;

        n->name = g_strdup(id);
        g_ptr_array_add(cfg->nodes, n);
        if (!check_keys(kf, group, node_keys, errp)) {
            return false;
        }
        n->address = get_str(kf, group, "address", NULL, errp);
        /* How QEMU's x509 check names a certificate made out to "n1". */
        cn = g_strdup_printf("CN=%s", id);
        n->tls_name = get_str(kf, group, "tls-name", cn, NULL);
        return n->address != NULL;
    }
    if (!strcmp(kind, "nic")) {
        ColoNicConfig *n = g_new0(ColoNicConfig, 1);

        n->id = g_strdup(id);
        n->index = cfg->nics->len;
        g_ptr_array_add(cfg->nics, n);
        if (!check_keys(kf, group, nic_keys, errp) ||
            !check_id("[nic] id", id, errp)) {
            return false;
        }
        n->tap = get_str(kf, group, "tap", NULL, errp);
        n->mac = n->tap ? get_str(kf, group, "mac", NULL, errp) : NULL;
        n->model = get_str(kf, group, "model", "e1000", NULL);
        n->bridge = g_key_file_get_string(kf, group, "bridge", NULL);
        return n->mac != NULL;
    }
    if (!strcmp(kind, "disk")) {
        ColoDiskConfig *d = g_new0(ColoDiskConfig, 1);

        d->id = g_strdup(id);
        g_ptr_array_add(cfg->disks, d);
        if (!check_keys(kf, group, disk_keys, errp) ||
            !check_id("[disk] id", id, errp)) {
            return false;
        }
        d->file = get_str(kf, group, "file", NULL, errp);
        d->format = get_str(kf, group, "format", "raw", NULL);
        d->device = get_str(kf, group, "device", "virtio-blk-pci", NULL);
        return d->file != NULL;
    }
    error_setg(errp, "unknown group [%s]", group);
    return false;
}

static bool pick_nodes(ColoConfig *cfg, const char *node_name, Error **errp)
{
    g_autofree char *host = NULL;
    const char *me = node_name;

    if (cfg->nodes->len != 2) {
        error_setg(errp, "name exactly two nodes ([node NAME] groups), "
                   "not %u", cfg->nodes->len);
        return false;
    }
    if (!me) {
        host = g_strdup(g_get_host_name());
        me = host;
    }
    for (unsigned i = 0; i < 2; i++) {
        ColoNodeConfig *n = g_ptr_array_index(cfg->nodes, i);

        if (!strcmp(n->name, me)) {
            cfg->self = n;
            cfg->peer = g_ptr_array_index(cfg->nodes, 1 - i);
            return true;
        }
    }
    error_setg(errp, "this node ('%s') is not one of the file's nodes; "
               "name it with --node", me);
    return false;
}

ColoConfig *colo_config_load(const char *path, const char *node_name,
                             Error **errp)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) gerr = NULL;
    g_autoptr(ColoConfig) cfg = g_new0(ColoConfig, 1);
    g_auto(GStrv) groups = NULL;
    unsigned last_port;

    cfg->path = g_strdup(path);
    cfg->nodes = g_ptr_array_new_with_free_func(node_free);
    cfg->nics = g_ptr_array_new_with_free_func(nic_free);
    cfg->disks = g_ptr_array_new_with_free_func(disk_free);

    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &gerr)) {
        error_setg(errp, "%s: %s", path, gerr->message);
        return NULL;
    }
    groups = g_key_file_get_groups(kf, NULL);
    if (!g_key_file_has_group(kf, "vm")) {
        error_setg(errp, "%s: the [vm] group is missing", path);
        return NULL;
    }
    if (!load_vm(cfg, kf, errp) || !load_colo(cfg, kf, errp)) {
        error_prepend(errp, "%s: ", path);
        return NULL;
    }
    for (char **g = groups; *g; g++) {
        if (!load_group(cfg, kf, *g, errp)) {
            error_prepend(errp, "%s: ", path);
            return NULL;
        }
    }
    if (!pick_nodes(cfg, node_name, errp)) {
        error_prepend(errp, "%s: ", path);
        return NULL;
    }
    last_port = cfg->port + PORTS_BEFORE_NICS +
                PORTS_PER_NIC * cfg->nics->len - 1;
    if (last_port > 65535) {
        error_setg(errp, "%s: [colo] port %u leaves no room for the %u "
                   "ports COLO needs", path, cfg->port, last_port -
                   cfg->port + 1);
        return NULL;
    }
    return g_steal_pointer(&cfg);
}

void colo_config_free(ColoConfig *cfg)
{
    if (!cfg) {
        return;
    }
    g_free(cfg->path);
    g_free(cfg->name);
    g_free(cfg->binary);
    g_free(cfg->img_tool);
    g_free(cfg->run_dir);
    g_free(cfg->tls_dir);
    g_strfreev(cfg->args);
    if (cfg->nodes) {
        g_ptr_array_free(cfg->nodes, true);
    }
    if (cfg->nics) {
        g_ptr_array_free(cfg->nics, true);
    }
    if (cfg->disks) {
        g_ptr_array_free(cfg->disks, true);
    }
    g_free(cfg);
}

char *colo_config_run_file(const ColoConfig *cfg, const char *name)
{
    return g_build_filename(cfg->run_dir, name, NULL);
}

unsigned colo_config_migration_port(const ColoConfig *cfg)
{
    return cfg->port;
}

unsigned colo_config_nbd_port(const ColoConfig *cfg)
{
    return cfg->port + 1;
}

unsigned colo_config_mirror_port(const ColoConfig *cfg,
                                 const ColoNicConfig *nic)
{
    return cfg->port + PORTS_BEFORE_NICS + PORTS_PER_NIC * nic->index;
}

unsigned colo_config_secondary_in_port(const ColoConfig *cfg,
                                       const ColoNicConfig *nic)
{
    return colo_config_mirror_port(cfg, nic) + 1;
}
