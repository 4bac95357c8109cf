/*
 * What this node's QEMU is doing, for a person and for a resource agent.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef QEMU_COLO_STATUS_H
#define QEMU_COLO_STATUS_H

#include "colo-config.h"

/* Exit codes of `qemu-colo status`, after the LSB's for a status action. */
typedef enum ColoStatusCode {
    COLO_STATUS_RUNNING = 0,    /* QEMU answers; the lines say the rest */
    COLO_STATUS_ERROR = 1,      /* QEMU runs but cannot be asked */
    COLO_STATUS_HUNG = 4,       /* QEMU runs but its monitor is silent */
    COLO_STATUS_STOPPED = 7,    /* no QEMU for this VM on this node */
} ColoStatusCode;

/* Print key=value lines about the VM on this node to @out. */
ColoStatusCode colo_status_print(const ColoConfig *cfg, int timeout_ms,
                                 FILE *out);

#endif
