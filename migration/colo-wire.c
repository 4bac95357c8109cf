/*
 * COLO control messages.
 *
 * Both directions carry big-endian 32-bit COLOMessage codes; a message that
 * carries a value is followed by a big-endian 64-bit value.  Every send is
 * flushed at once: the peer is waiting for it.  Between checkpoints the
 * primary sends heartbeats, which receivers skip.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-types-migration.h"
#include "io/channel.h"
#include "colo-wire.h"
#include "trace.h"

/* @msg is COLO_MESSAGE__MAX when the message is not known yet. */
static bool colo_file_ok(QEMUFile *f, const char *what, COLOMessage msg,
                         Error **errp)
{
    const char *name = msg < COLO_MESSAGE__MAX ? COLOMessage_str(msg) :
                                                 "a message";
    Error *cause = NULL;

    if (qemu_file_get_error_obj(f, &cause) == 0) {
        return true;
    }
    if (cause) {
        error_propagate_prepend(errp, cause, "COLO: cannot %s %s: ", what,
                                name);
    } else {
        error_setg(errp, "COLO: cannot %s %s", what, name);
    }
    return false;
}

void colo_wire_open(QEMUFile *f)
{
    /*
     * A checkpoint is a dialogue of small messages that each wait for
     * the last one's answer.  With Nagle's algorithm a message waits for
     * the ACK of the one before, which the peer delays (it has nothing to
     * send back): tens of milliseconds of pause per checkpoint.
     */
    qio_channel_set_delay(qemu_file_get_ioc(f), false);
}

bool colo_send_message(QEMUFile *f, COLOMessage msg, Error **errp)
{
    trace_colo_send_message(COLOMessage_str(msg));
    qemu_put_be32(f, msg);
    qemu_fflush(f);
    return colo_file_ok(f, "send", msg, errp);
}

bool colo_send_value(QEMUFile *f, COLOMessage msg, uint64_t value,
                     Error **errp)
{
    trace_colo_send_message(COLOMessage_str(msg));
    qemu_put_be32(f, msg);
    qemu_put_be64(f, value);
    qemu_fflush(f);
    return colo_file_ok(f, "send", msg, errp);
}

/* The next message but heartbeats; @hint names what the caller awaits. */
static bool colo_read_message(QEMUFile *f, COLOMessage hint, COLOMessage *msg,
                              Error **errp)
{
    uint32_t got;

    do {
        got = qemu_get_be32(f);
        if (!colo_file_ok(f, "receive", hint, errp)) {
            return false;
        }
        if (got >= COLO_MESSAGE__MAX) {
            error_setg(errp, "COLO: invalid message 0x%" PRIx32 "%s%s", got,
                       hint < COLO_MESSAGE__MAX ? " while waiting for " : "",
                       hint < COLO_MESSAGE__MAX ? COLOMessage_str(hint) : "");
            return false;
        }
        trace_colo_receive_message(COLOMessage_str(got));
    } while (got == COLO_MESSAGE_HEARTBEAT);

    *msg = got;
    return true;
}

bool colo_receive_next(QEMUFile *f, COLOMessage *msg, Error **errp)
{
    return colo_read_message(f, COLO_MESSAGE__MAX, msg, errp);
}

bool colo_expect_message(COLOMessage got, COLOMessage expected, Error **errp)
{
    if (got != expected) {
        error_setg(errp, "COLO: received %s while waiting for %s",
                   COLOMessage_str(got), COLOMessage_str(expected));
        return false;
    }
    return true;
}

bool colo_receive_message(QEMUFile *f, COLOMessage expected, Error **errp)
{
    COLOMessage got;

    return colo_read_message(f, expected, &got, errp) &&
           colo_expect_message(got, expected, errp);
}

bool colo_receive_value(QEMUFile *f, COLOMessage expected, uint64_t *value,
                        Error **errp)
{
    if (!colo_receive_message(f, expected, errp)) {
        return false;
    }
    *value = qemu_get_be64(f);
    return colo_file_ok(f, "receive the value of", expected, errp);
}
