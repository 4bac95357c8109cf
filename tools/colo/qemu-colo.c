/*
 * qemu-colo: run one node of a COLO-replicated VM.
 *
 * A person or a cluster resource agent starts the node's QEMU in its
 * role, pairs the primary with the secondary, asks how it goes, decides a
 * failover, and stops it, all from one configuration file that both nodes
 * share.  See docs/system/colo-cluster.rst.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <getopt.h>
#include "qapi/error.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu-version.h"
#include "colo-config.h"
#include "colo-node.h"
#include "colo-pair.h"
#include "colo-status.h"

#define DEFAULT_TIMEOUT_S 60

static void usage(FILE *out)
{
    fprintf(out,
"Usage: qemu-colo [OPTIONS] COMMAND\n"
"Run this node's side of a COLO-replicated VM.\n"
"\n"
"Commands:\n"
"  start primary      launch QEMU running the guest from this node's disks\n"
"  start secondary    launch QEMU waiting to receive the guest\n"
"  protect [--resync] pair the guest that runs here with the peer's\n"
"                     secondary; --resync copies the disks to it first\n"
"  failover           let this node's guest go on without its peer\n"
"  status             print key=value lines; exit 0 running, 1 error,\n"
"                     4 QEMU hung, 7 not running\n"
"  stop               stop this node's QEMU\n"
"\n"
"Options:\n"
"  -c, --config=FILE  the VM's configuration (required)\n"
"  -n, --node=NAME    this node's name in it (default: the host name)\n"
"  -t, --timeout=SEC  how long a command may take (default %d)\n"
"  -h, --help         this help\n"
"  -V, --version      the version\n",
            DEFAULT_TIMEOUT_S);
}

static bool want_args(int argc, int n, const char *usage_line)
{
    if (argc != n) {
        error_report("usage: qemu-colo [OPTIONS] %s", usage_line);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "node", required_argument, NULL, 'n' },
        { "timeout", required_argument, NULL, 't' },
        { "resync", no_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    g_autoptr(ColoConfig) cfg = NULL;
    const char *config = NULL, *node = NULL, *command;
    unsigned long timeout_s = DEFAULT_TIMEOUT_S;
    int timeout_ms;
    bool resync = false;
    Error *err = NULL;
    bool ok;
    int c;

    error_init(argv[0]);
    while ((c = getopt_long(argc, argv, "+c:n:t:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'n':
            node = optarg;
            break;
        case 't':
            if (qemu_strtoul(optarg, NULL, 10, &timeout_s) < 0 ||
                !timeout_s || timeout_s > 24 * 3600) {
                error_report("--timeout wants seconds, from 1 to 86400");
                return EXIT_FAILURE;
            }
            break;
        case 'r':
            resync = true;
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        case 'V':
            printf("qemu-colo version " QEMU_FULL_VERSION "\n");
            return EXIT_SUCCESS;
        default:
            usage(stderr);
            return EXIT_FAILURE;
        }
    }
    /* "protect --resync": the option may follow its command. */
    argv += optind;
    argc -= optind;
    if (argc == 2 && !strcmp(argv[0], "protect") &&
        !strcmp(argv[1], "--resync")) {
        resync = true;
        argc--;
    }
    if (resync && (argc < 1 || strcmp(argv[0], "protect"))) {
        error_report("--resync goes only with protect");
        return EXIT_FAILURE;
    }
    if (argc < 1) {
        usage(stderr);
        return EXIT_FAILURE;
    }
    if (!config) {
        error_report("name the VM's configuration file with --config");
        return EXIT_FAILURE;
    }
    command = argv[0];
    timeout_ms = timeout_s * 1000;
    cfg = colo_config_load(config, node, &err);
    if (!cfg) {
        error_report_err(err);
        return EXIT_FAILURE;
    }

    if (!strcmp(command, "status")) {
        if (!want_args(argc, 1, "status")) {
            return EXIT_FAILURE;
        }
        return colo_status_print(cfg, timeout_ms, stdout);
    }
    if (!strcmp(command, "start")) {
        ColoNodeRole role;

        if (!want_args(argc, 2, "start primary|secondary")) {
            return EXIT_FAILURE;
        }
        if (!strcmp(argv[1], "primary")) {
            role = COLO_NODE_PRIMARY;
        } else if (!strcmp(argv[1], "secondary")) {
            role = COLO_NODE_SECONDARY;
        } else {
            error_report("start: the role is primary or secondary, not '%s'",
                         argv[1]);
            return EXIT_FAILURE;
        }
        ok = colo_node_launch(cfg, role, timeout_ms, &err);
    } else if (!strcmp(command, "protect")) {
        ok = want_args(argc, 1, "protect [--resync]") &&
             colo_pair_protect(cfg, resync, timeout_ms, &err);
    } else if (!strcmp(command, "failover")) {
        ok = want_args(argc, 1, "failover") &&
             colo_pair_failover(cfg, timeout_ms, &err);
    } else if (!strcmp(command, "stop")) {
        ok = want_args(argc, 1, "stop") &&
             colo_node_stop(cfg, timeout_ms, &err);
    } else {
        error_report("unknown command '%s'; see qemu-colo --help", command);
        return EXIT_FAILURE;
    }
    if (!ok) {
        if (err) {
            error_report_err(err);
        }
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}
