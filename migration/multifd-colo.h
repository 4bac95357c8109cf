/*
 * Multifd receive path into the COLO RAM cache.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_MULTIFD_COLO_H
#define MIGRATION_MULTIFD_COLO_H

#include "multifd.h"

/*
 * Receive the pages of one multifd packet on a COLO secondary.  Used instead
 * of the plain receive whenever the COLO RAM cache exists.
 */
int multifd_colo_recv_pages(MultiFDRecvParams *p, Error **errp);

#endif /* MIGRATION_MULTIFD_COLO_H */
