/*
 * COLO network proxy: packet parsing and connection tracking.
 *
 * The comparator and the rewriter both need to know where the headers of a
 * frame are and which connection it belongs to.  This file does only that:
 * pure functions over the caller's buffer, and a bounded connection table
 * that holds one opaque pointer of per-connection state for its owner.
 * Nothing here depends on the main loop, netdevs or QOM.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NET_COLO_H
#define NET_COLO_H

/* ---- Packet parsing ---- */

/*
 * Result of colo_packet_parse().  Everything but COLO_PARSE_OK names the
 * first check a frame failed; a caller counts them with
 * colo_packet_stats_account().
 */
typedef enum ColoParseResult {
    COLO_PARSE_OK = 0,
    COLO_PARSE_ERR_VNET_HDR,        /* buffer shorter than the vnet header */
    COLO_PARSE_ERR_ETH_SHORT,       /* Ethernet header or a VLAN tag cut */
    COLO_PARSE_ERR_VLAN_DEPTH,      /* more than two VLAN tags */
    COLO_PARSE_ERR_IP4_SHORT,       /* fixed IPv4 header cut */
    COLO_PARSE_ERR_IP4_VERSION,     /* ethertype IPv4, version field not 4 */
    COLO_PARSE_ERR_IP4_IHL,         /* IHL < 5 or options past the buffer */
    COLO_PARSE_ERR_IP4_TOTAL_LEN,   /* total length < IHL or past buffer */
    COLO_PARSE_ERR_IP6_SHORT,       /* fixed IPv6 header cut */
    COLO_PARSE_ERR_IP6_VERSION,     /* ethertype IPv6, version field not 6 */
    COLO_PARSE_ERR_IP6_PAYLOAD_LEN, /* payload length past the buffer */
    COLO_PARSE_ERR_IP6_EXT_HDR,     /* extension header past the datagram */
    COLO_PARSE_ERR_TCP_SHORT,       /* fixed TCP header past the datagram */
    COLO_PARSE_ERR_TCP_DATA_OFFSET, /* data offset < 5 or past the datagram */
    COLO_PARSE_ERR_UDP_SHORT,       /* UDP header past the datagram */
    COLO_PARSE_ERR_UDP_LEN,         /* UDP length < 8 or past the datagram */
    COLO_PARSE_ERR_ICMP_SHORT,      /* ICMP/ICMPv6 header past the datagram */
    COLO_PARSE__MAX,
} ColoParseResult;

/* Where an IP datagram sits in a fragmented original. */
typedef enum ColoFragment {
    COLO_FRAG_NONE = 0,     /* not a fragment */
    COLO_FRAG_FIRST,        /* offset 0, more follow: L4 header present */
    COLO_FRAG_LATER,        /* offset > 0: no L4 header in this datagram */
} ColoFragment;

#define COLO_MAX_VLAN_TAGS 2

/*
 * A parsed frame.  It points into the caller's buffer and owns nothing;
 * the buffer must outlive it.  All offsets count from the start of that
 * buffer, i.e. they include the vnet header.  Numbers are in host order.
 *
 * Byte ranges, for a frame that parsed:
 *   [0, l2_off)                   vnet header
 *   [l2_off, l3_off)              Ethernet header and VLAN tags
 *   [l3_off, l4_off)              IP header with IPv6 extension headers
 *   [l4_off, payload_off)         L4 header (empty when !has_l4)
 *   [payload_off, l3_end)         payload
 *   [l3_end, len)                 link padding after the IP datagram
 * A frame that is not IP has l4_off == payload_off == l3_off and
 * l3_end == len.
 */
typedef struct ColoPacket {
    const uint8_t *buf;
    size_t len;

    size_t l2_off;
    size_t l3_off;
    size_t l4_off;
    size_t payload_off;
    size_t l3_end;
    size_t payload_len;

    uint16_t ethertype;         /* innermost, after the VLAN tags */
    uint8_t vlan_count;
    uint16_t vlan_tpid[COLO_MAX_VLAN_TAGS];     /* outermost first */
    uint16_t vlan_tci[COLO_MAX_VLAN_TAGS];

    uint8_t ip_version;         /* 4, 6, or 0 when not IP */
    uint8_t l4_proto;           /* IP protocol / last IPv6 next header */
    ColoFragment frag;
    uint8_t src_addr[16];       /* IPv4 uses the first 4 bytes */
    uint8_t dst_addr[16];

    bool has_l4;                /* TCP, UDP or ICMP header parsed */
    uint16_t src_port;          /* TCP, UDP; an ICMP echo: its identifier */
    uint16_t dst_port;
    struct {
        uint32_t seq;
        uint32_t ack;
        uint8_t flags;          /* TH_FIN, TH_SYN, ... */
        uint8_t hdr_len;        /* data offset in bytes */
        uint16_t window;
    } tcp;
    struct {
        uint8_t type;
        uint8_t code;
    } icmp;
} ColoPacket;

/*
 * Parse the frame in @buf[0..@len).  The first @vnet_hdr_len bytes are a
 * virtio-net header that the chardev framing carried and are skipped.
 * Never reads outside the buffer.  On failure, @pkt describes the layers
 * that parsed before the failing one and the rest is zero.
 */
ColoParseResult colo_packet_parse(ColoPacket *pkt, const void *buf,
                                  size_t len, size_t vnet_hdr_len);

/* A short fixed name for @res, for traces and error messages. */
const char *colo_parse_result_str(ColoParseResult res);

/*
 * TCP sequence numbers compare modulo 2^32 (RFC 793, RFC 1982): a is
 * before b when b - a, as a signed 32-bit number, is positive.
 */
static inline bool colo_seq_lt(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

static inline bool colo_seq_le(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) <= 0;
}

static inline const uint8_t *colo_packet_payload(const ColoPacket *pkt)
{
    return pkt->buf + pkt->payload_off;
}

/*
 * Parser counters kept by the caller; the parser itself stays pure.
 * parsed + malformed is every frame accounted; by_result splits them.
 */
typedef struct ColoPacketStats {
    uint64_t parsed;
    uint64_t malformed;
    uint64_t by_result[COLO_PARSE__MAX];
} ColoPacketStats;

void colo_packet_stats_account(ColoPacketStats *stats, ColoParseResult res);

/* ---- Connection keys ---- */

/* Which way a packet travels, relative to the normalised key. */
typedef enum ColoConnDir {
    COLO_DIR_A_TO_B = 0,    /* source is endpoint a of the key */
    COLO_DIR_B_TO_A = 1,
} ColoConnDir;

/*
 * A connection, independent of direction: endpoint a is the lower of the
 * two (address, port) pairs, compared as bytes then port.  Both directions
 * of a flow give the same key.  Hashed and compared as raw bytes, so it has
 * no padding and unused address bytes are zero.
 */
typedef struct ColoConnKey {
    uint8_t addr_a[16];
    uint8_t addr_b[16];
    uint16_t port_a;
    uint16_t port_b;
    uint8_t family;         /* 4 or 6 */
    uint8_t proto;
} ColoConnKey;

/*
 * Fill @key for @pkt and return the packet's direction in @dir.  Returns
 * false for a frame that is not IP.  Ports are zero for protocols without
 * them and for every IPv4/IPv6 fragment, so that all fragments of a
 * datagram land in the same connection.
 */
bool colo_conn_key_from_packet(const ColoPacket *pkt, ColoConnKey *key,
                               ColoConnDir *dir);

/* GHashFunc and GEqualFunc over ColoConnKey pointers. */
guint colo_conn_key_hash(gconstpointer key);
gboolean colo_conn_key_equal(gconstpointer a, gconstpointer b);

/* ---- Connection table ---- */

/*
 * The table is not thread-safe: its owner serialises calls.  A ColoConn
 * pointer stays valid until the next call that may create or remove a
 * connection (get, remove, remove_if, free).
 */
typedef struct ColoConn ColoConn;
typedef struct ColoConnTable ColoConnTable;

typedef struct ColoConnTableStats {
    uint64_t created;
    uint64_t evicted;       /* removed to make room, least recently used */
    uint64_t removed;       /* removed by the caller */
} ColoConnTableStats;

/*
 * A table of at most @capacity connections (> 0).  @user_free, if not
 * NULL, destroys the user data of a connection whenever it leaves the
 * table: on eviction, removal, replacement of the data, and table free.
 *
 * Eviction: when a new connection arrives in a full table, the least
 * recently used connection (the one whose last lookup is oldest) is
 * evicted and counted.  A table full of connections whose peers vanished
 * without a FIN must not lock out new ones, and the whole table is never
 * dropped at once.  Callers that must not lose state hold it elsewhere or
 * size the table for their load.
 */
ColoConnTable *colo_conn_table_new(guint capacity, GDestroyNotify user_free);
void colo_conn_table_free(ColoConnTable *table);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ColoConnTable, colo_conn_table_free)

/* The connection for @key, or NULL.  Marks it most recently used. */
ColoConn *colo_conn_table_lookup(ColoConnTable *table, const ColoConnKey *key);

/*
 * The connection for @key, created when absent (evicting one if the table
 * is full); @dir is the direction of the packet that asked, recorded as
 * the connection's origin on creation.  *@created, if not NULL, says
 * whether it was created.  Marks it most recently used.  Never NULL.
 */
ColoConn *colo_conn_table_get(ColoConnTable *table, const ColoConnKey *key,
                              ColoConnDir dir, bool *created);

/* Remove the connection for @key; returns false if there was none. */
bool colo_conn_table_remove(ColoConnTable *table, const ColoConnKey *key);

/* Called from most to least recently used; must not change the table. */
typedef void (*ColoConnFunc)(ColoConn *conn, void *opaque);
void colo_conn_table_foreach(ColoConnTable *table, ColoConnFunc func,
                             void *opaque);

/*
 * Remove every connection for which @pred returns true; returns how many.
 * Neither @pred nor user_free may change the table.
 */
typedef bool (*ColoConnPred)(ColoConn *conn, void *opaque);
guint colo_conn_table_remove_if(ColoConnTable *table, ColoConnPred pred,
                                void *opaque);

guint colo_conn_table_count(const ColoConnTable *table);
guint colo_conn_table_capacity(const ColoConnTable *table);
const ColoConnTableStats *colo_conn_table_stats(const ColoConnTable *table);

const ColoConnKey *colo_conn_key(const ColoConn *conn);

/* Direction of the packet that created the connection. */
ColoConnDir colo_conn_origin(const ColoConn *conn);

void *colo_conn_get_user_data(const ColoConn *conn);

/* Replace the user data, destroying the previous one with user_free. */
void colo_conn_set_user_data(ColoConn *conn, void *data);

/* Hand the user data over to the caller; @conn keeps none. */
void *colo_conn_steal_user_data(ColoConn *conn);

#endif /* NET_COLO_H */
