/*
 * COLO packet comparator: the entry points the net core calls.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NET_COLO_COMPARE_H
#define NET_COLO_COMPARE_H

/* Called once at exit, after the net clients are gone. */
void colo_compare_cleanup(void);

#endif /* NET_COLO_COMPARE_H */
