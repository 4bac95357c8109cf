/*
 * qemu-colo's configuration: one key file that describes a replicated VM
 * and both nodes that may run it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef QEMU_COLO_CONFIG_H
#define QEMU_COLO_CONFIG_H

typedef struct ColoNodeConfig {
    char *name;
    char *address;              /* where its COLO channels listen */
    char *tls_name;             /* its certificate's distinguished name */
} ColoNodeConfig;

typedef struct ColoNicConfig {
    char *id;                   /* the netdev's id */
    char *tap;
    char *bridge;               /* NULL: the user attaches the tap */
    char *model;
    char *mac;
    unsigned index;             /* position in the file: picks its ports */
} ColoNicConfig;

typedef struct ColoDiskConfig {
    char *id;                   /* the quorum node the guest's device uses */
    char *file;
    char *format;
    char *device;               /* the guest's device model */
} ColoDiskConfig;

typedef struct ColoConfig {
    char *path;
    char *name;
    char *binary;
    char *img_tool;
    char *run_dir;
    char **args;                /* more QEMU arguments, NULL-terminated */
    unsigned port;              /* the first of the ports COLO uses */
    unsigned checkpoint_delay_ms;
    unsigned multifd_channels;  /* 0: no multifd */
    char *tls_dir;              /* NULL: no TLS */
    GPtrArray *nodes;           /* ColoNodeConfig * */
    GPtrArray *nics;            /* ColoNicConfig * */
    GPtrArray *disks;           /* ColoDiskConfig * */
    const ColoNodeConfig *self;
    const ColoNodeConfig *peer;
} ColoConfig;

/*
 * Read @path.  This node is @node_name, or the node named like this
 * host when NULL; the file must name exactly one other node, the peer.
 */
ColoConfig *colo_config_load(const char *path, const char *node_name,
                             Error **errp);
void colo_config_free(ColoConfig *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ColoConfig, colo_config_free)

/* A file in the VM's run directory. */
char *colo_config_run_file(const ColoConfig *cfg, const char *name);

/* The TCP ports, all on the listening node's address. */
unsigned colo_config_migration_port(const ColoConfig *cfg);
unsigned colo_config_nbd_port(const ColoConfig *cfg);
unsigned colo_config_mirror_port(const ColoConfig *cfg,
                                 const ColoNicConfig *nic);
unsigned colo_config_secondary_in_port(const ColoConfig *cfg,
                                       const ColoNicConfig *nic);

/*
 * With [colo] tls-dir, every node's QEMU has these objects: its
 * credentials as a TLS server and as a client (both from tls-dir), and
 * the authorization that accepts only the peer's certificate.
 */
#define COLO_TLS_SERVER "colo-tls-server"
#define COLO_TLS_CLIENT "colo-tls-client"
#define COLO_TLS_PEER "colo-tls-peer"

#endif
