/*
 * colo-compare: what the migration layer and the net core tell every
 * comparator in this process.
 *
 * The calls wait until each instance has handled them in its iothread, so
 * that a checkpoint's boundary is the same for the comparator and for the
 * VMs.  Without any colo-compare object they do nothing.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NET_COLO_COMPARE_H
#define NET_COLO_COMPARE_H

/*
 * Both VMs are stopped for a checkpoint: the secondary's output so far is
 * dropped, the primary's is held until the checkpoint is committed.
 */
void colo_compare_checkpoint_begin(void);

/* The secondary has loaded the checkpoint: release what was held. */
void colo_compare_checkpoint_done(void);

/*
 * This side runs alone: release everything and pass the primary's output
 * straight through from now on.
 */
void colo_compare_failover(void);

/* Called once at exit, after the net clients are gone. */
void colo_compare_cleanup(void);

#endif /* NET_COLO_COMPARE_H */
