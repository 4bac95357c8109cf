/*
 * QOM properties the COLO netfilters and colo-compare share.
 *
 * A property's opaque tells the shared accessor which field or counter
 * it stands for; classes live as long as QEMU, so do these.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "colo-qom.h"

typedef struct ColoCounterProp {
    ColoCounterRead *read;
    unsigned which;
} ColoCounterProp;

static void colo_counter_get(Object *obj, Visitor *v, const char *name,
                             void *opaque, Error **errp)
{
    const ColoCounterProp *p = opaque;
    uint64_t value = p->read(obj, p->which);

    visit_type_uint64(v, name, &value, errp);
}

void colo_qom_add_counter(ObjectClass *oc, const char *name, unsigned which,
                          ColoCounterRead *read)
{
    ColoCounterProp *p = g_new(ColoCounterProp, 1);

    *p = (ColoCounterProp) { .read = read, .which = which };
    object_class_property_add(oc, name, "uint64", colo_counter_get, NULL,
                              NULL, p);
}

void colo_qom_add_counters(ObjectClass *oc, const char *const *names,
                           unsigned count, ColoCounterRead *read)
{
    for (unsigned i = 0; i < count; i++) {
        colo_qom_add_counter(oc, names[i], i, read);
    }
}

typedef struct ColoChardevProp {
    size_t offset;
    ColoSettable *settable;
} ColoChardevProp;

static char **chardev_field(Object *obj, const ColoChardevProp *p)
{
    return (char **)((char *)obj + p->offset);
}

static void colo_chardev_get(Object *obj, Visitor *v, const char *name,
                             void *opaque, Error **errp)
{
    char *value = g_strdup(*chardev_field(obj, opaque) ?: "");

    visit_type_str(v, name, &value, errp);
    g_free(value);
}

static void colo_chardev_set(Object *obj, Visitor *v, const char *name,
                             void *opaque, Error **errp)
{
    const ColoChardevProp *p = opaque;
    char **field = chardev_field(obj, p);
    char *value;

    if (!visit_type_str(v, name, &value, errp)) {
        return;
    }
    if (!p->settable(obj, name, errp)) {
        g_free(value);
        return;
    }
    g_free(*field);
    *field = value;
}

void colo_qom_add_chardev_id(ObjectClass *oc, const char *name,
                             size_t offset, ColoSettable *settable)
{
    ColoChardevProp *p = g_new(ColoChardevProp, 1);

    *p = (ColoChardevProp) { .offset = offset, .settable = settable };
    object_class_property_add(oc, name, "str", colo_chardev_get,
                              colo_chardev_set, NULL, p);
}
