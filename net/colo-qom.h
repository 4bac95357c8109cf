/*
 * QOM properties the COLO netfilters and colo-compare share: read-only
 * counters, and chardev ids that may change only until the object is
 * set up.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NET_COLO_QOM_H
#define NET_COLO_QOM_H

#include "qom/object.h"

/* The current value of counter @which of @obj. */
typedef uint64_t ColoCounterRead(Object *obj, unsigned which);

/* Whether property @name of @obj may still change; sets @errp if not. */
typedef bool ColoSettable(Object *obj, const char *name, Error **errp);

/* A read-only uint64 property @name: counter @which, read by @read. */
void colo_qom_add_counter(ObjectClass *oc, const char *name, unsigned which,
                          ColoCounterRead *read);

/* One counter property per entry of @names, @which being its index. */
void colo_qom_add_counters(ObjectClass *oc, const char *const *names,
                           unsigned count, ColoCounterRead *read);

/*
 * A string property @name kept in the char * at @offset of the instance
 * (freed by its owner), which @settable may refuse to change.
 */
void colo_qom_add_chardev_id(ObjectClass *oc, const char *name,
                             size_t offset, ColoSettable *settable);

#endif
