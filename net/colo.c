/*
 * COLO network proxy: packet parsing and connection tracking.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/xxhash.h"
#include "net/eth.h"
#include "net/colo.h"

#define COLO_ETH_HDR_LEN    sizeof(struct eth_header)
#define COLO_VLAN_TAG_LEN   sizeof(struct vlan_header)
#define COLO_IP4_HDR_LEN    sizeof(struct ip_header)
#define COLO_IP6_HDR_LEN    sizeof(struct ip6_header)
#define COLO_IP6_FRAG_LEN   8
#define COLO_TCP_HDR_LEN    sizeof(struct tcp_hdr)
#define COLO_UDP_HDR_LEN    sizeof(struct udp_hdr)
#define COLO_ICMP_HDR_LEN   4   /* type, code, checksum */
#define COLO_ICMP_ECHO_HDR_LEN  8   /* ... identifier, sequence number */

#define COLO_PROTO_ICMP     1
#define COLO_PROTO_ICMPV6   58

/* ---- Bounded reads ---- */

/*
 * True when @n bytes at @off lie below @end.  Written so that neither sum
 * can overflow, whatever a frame claims.
 */
static bool colo_fits(size_t off, size_t n, size_t end)
{
    return off <= end && n <= end - off;
}

/* The readers below are only called after colo_fits() said yes. */
static uint8_t colo_rd8(const ColoPacket *pkt, size_t off)
{
    return pkt->buf[off];
}

static uint16_t colo_rd16(const ColoPacket *pkt, size_t off)
{
    return lduw_be_p(pkt->buf + off);
}

static uint32_t colo_rd32(const ColoPacket *pkt, size_t off)
{
    return (uint32_t)ldl_be_p(pkt->buf + off);
}

/* ---- Layer 2 ---- */

static bool colo_is_vlan_tpid(uint16_t type)
{
    return type == ETH_P_VLAN || type == ETH_P_DVLAN;
}

static ColoParseResult colo_parse_l2(ColoPacket *pkt)
{
    size_t off = pkt->l2_off;

    if (!colo_fits(off, COLO_ETH_HDR_LEN, pkt->len)) {
        return COLO_PARSE_ERR_ETH_SHORT;
    }
    pkt->ethertype = colo_rd16(pkt, off + offsetof(struct eth_header, h_proto));
    off += COLO_ETH_HDR_LEN;

    while (colo_is_vlan_tpid(pkt->ethertype)) {
        if (pkt->vlan_count == COLO_MAX_VLAN_TAGS) {
            return COLO_PARSE_ERR_VLAN_DEPTH;
        }
        if (!colo_fits(off, COLO_VLAN_TAG_LEN, pkt->len)) {
            return COLO_PARSE_ERR_ETH_SHORT;
        }
        pkt->vlan_tpid[pkt->vlan_count] = pkt->ethertype;
        pkt->vlan_tci[pkt->vlan_count] =
            colo_rd16(pkt, off + offsetof(struct vlan_header, h_tci));
        pkt->vlan_count++;
        pkt->ethertype =
            colo_rd16(pkt, off + offsetof(struct vlan_header, h_proto));
        off += COLO_VLAN_TAG_LEN;
    }
    pkt->l3_off = off;
    return COLO_PARSE_OK;
}

/* ---- IPv4 ---- */

static ColoParseResult colo_parse_ip4(ColoPacket *pkt)
{
    size_t off = pkt->l3_off;
    size_t avail = pkt->len - off;
    uint8_t ver_ihl;
    size_t hdr_len, total_len;
    uint16_t frag_field;

    if (avail < COLO_IP4_HDR_LEN) {
        return COLO_PARSE_ERR_IP4_SHORT;
    }
    ver_ihl = colo_rd8(pkt, off + offsetof(struct ip_header, ip_ver_len));
    if ((ver_ihl >> 4) != IP_HEADER_VERSION_4) {
        return COLO_PARSE_ERR_IP4_VERSION;
    }
    hdr_len = (ver_ihl & 0x0f) * 4;
    if (hdr_len < COLO_IP4_HDR_LEN || hdr_len > avail) {
        return COLO_PARSE_ERR_IP4_IHL;
    }
    total_len = colo_rd16(pkt, off + offsetof(struct ip_header, ip_len));
    if (total_len < hdr_len || total_len > avail) {
        return COLO_PARSE_ERR_IP4_TOTAL_LEN;
    }

    pkt->ip_version = IP_HEADER_VERSION_4;
    pkt->l3_end = off + total_len;
    pkt->l4_off = off + hdr_len;
    pkt->l4_proto = colo_rd8(pkt, off + offsetof(struct ip_header, ip_p));
    memcpy(pkt->src_addr, pkt->buf + off + offsetof(struct ip_header, ip_src),
           4);
    memcpy(pkt->dst_addr, pkt->buf + off + offsetof(struct ip_header, ip_dst),
           4);

    frag_field = colo_rd16(pkt, off + offsetof(struct ip_header, ip_off));
    if (frag_field & IP_OFFMASK) {
        pkt->frag = COLO_FRAG_LATER;
    } else if (frag_field & IP_MF) {
        pkt->frag = COLO_FRAG_FIRST;
    }
    return COLO_PARSE_OK;
}

/* ---- IPv6 ---- */

static bool colo_ip6_is_skippable_ext(uint8_t nxt)
{
    return nxt == IP6_HOP_BY_HOP || nxt == IP6_ROUTING ||
           nxt == IP6_DESTINATON;
}

/*
 * Step over one extension header at pkt->l4_off.  Returns true to go on
 * to the next header, false when the L4 header (or an unknown one, or the
 * data of a later fragment) starts at pkt->l4_off.
 */
static bool colo_ip6_skip_ext(ColoPacket *pkt, ColoParseResult *res)
{
    size_t off = pkt->l4_off;
    uint8_t nxt = pkt->l4_proto;
    size_t ext_len;
    uint16_t frag_field;

    if (!colo_ip6_is_skippable_ext(nxt) && nxt != IP6_FRAGMENT) {
        return false;
    }
    if (!colo_fits(off, sizeof(struct ip6_ext_hdr), pkt->l3_end)) {
        *res = COLO_PARSE_ERR_IP6_EXT_HDR;
        return false;
    }
    if (nxt == IP6_FRAGMENT) {
        ext_len = COLO_IP6_FRAG_LEN;
    } else {
        ext_len = (colo_rd8(pkt, off + 1) + 1) * IP6_EXT_GRANULARITY;
    }
    if (!colo_fits(off, ext_len, pkt->l3_end)) {
        *res = COLO_PARSE_ERR_IP6_EXT_HDR;
        return false;
    }
    pkt->l4_proto = colo_rd8(pkt, off);
    pkt->l4_off = off + ext_len;
    if (nxt != IP6_FRAGMENT) {
        return true;
    }

    /* Offset in the top 13 bits, "more fragments" in bit 0. */
    frag_field = colo_rd16(pkt, off + 2);
    if (frag_field & ~7) {
        pkt->frag = COLO_FRAG_LATER;
        return false;
    }
    if (frag_field & 1) {
        pkt->frag = COLO_FRAG_FIRST;
    }
    return true;
}

static ColoParseResult colo_parse_ip6(ColoPacket *pkt)
{
    size_t off = pkt->l3_off;
    size_t avail = pkt->len - off;
    size_t payload_len;
    ColoParseResult res = COLO_PARSE_OK;

    if (avail < COLO_IP6_HDR_LEN) {
        return COLO_PARSE_ERR_IP6_SHORT;
    }
    if ((colo_rd8(pkt, off) >> 4) != IP_HEADER_VERSION_6) {
        return COLO_PARSE_ERR_IP6_VERSION;
    }
    payload_len = colo_rd16(pkt, off + offsetof(struct ip6_header, ip6_plen));
    if (payload_len > avail - COLO_IP6_HDR_LEN) {
        return COLO_PARSE_ERR_IP6_PAYLOAD_LEN;
    }

    pkt->ip_version = IP_HEADER_VERSION_6;
    pkt->l3_end = off + COLO_IP6_HDR_LEN + payload_len;
    pkt->l4_off = off + COLO_IP6_HDR_LEN;
    pkt->l4_proto = colo_rd8(pkt, off + offsetof(struct ip6_header, ip6_nxt));
    memcpy(pkt->src_addr, pkt->buf + off + offsetof(struct ip6_header, ip6_src),
           16);
    memcpy(pkt->dst_addr, pkt->buf + off + offsetof(struct ip6_header, ip6_dst),
           16);

    /* Each header is at least 8 bytes long, so this ends. */
    while (colo_ip6_skip_ext(pkt, &res)) {
        /* nothing */
    }
    return res;
}

/* ---- Layer 4 ---- */

static ColoParseResult colo_parse_tcp(ColoPacket *pkt)
{
    size_t off = pkt->l4_off;
    uint16_t off_flags;
    size_t hdr_len;

    if (!colo_fits(off, COLO_TCP_HDR_LEN, pkt->l3_end)) {
        return COLO_PARSE_ERR_TCP_SHORT;
    }
    off_flags = colo_rd16(pkt, off + 12);
    hdr_len = (off_flags >> 12) * 4;
    if (hdr_len < COLO_TCP_HDR_LEN || !colo_fits(off, hdr_len, pkt->l3_end)) {
        return COLO_PARSE_ERR_TCP_DATA_OFFSET;
    }
    pkt->src_port = colo_rd16(pkt, off + offsetof(struct tcp_hdr, th_sport));
    pkt->dst_port = colo_rd16(pkt, off + offsetof(struct tcp_hdr, th_dport));
    pkt->tcp.seq = colo_rd32(pkt, off + offsetof(struct tcp_hdr, th_seq));
    pkt->tcp.ack = colo_rd32(pkt, off + offsetof(struct tcp_hdr, th_ack));
    pkt->tcp.flags = off_flags & 0xff;
    pkt->tcp.hdr_len = hdr_len;
    pkt->tcp.window = colo_rd16(pkt, off + offsetof(struct tcp_hdr, th_win));
    pkt->payload_off = off + hdr_len;
    return COLO_PARSE_OK;
}

static ColoParseResult colo_parse_udp(ColoPacket *pkt)
{
    size_t off = pkt->l4_off;
    size_t udp_len;

    if (!colo_fits(off, COLO_UDP_HDR_LEN, pkt->l3_end)) {
        return COLO_PARSE_ERR_UDP_SHORT;
    }
    /* A first fragment holds only part of what the length counts. */
    udp_len = colo_rd16(pkt, off + offsetof(struct udp_hdr, uh_ulen));
    if (pkt->frag == COLO_FRAG_NONE &&
        (udp_len < COLO_UDP_HDR_LEN || !colo_fits(off, udp_len, pkt->l3_end))) {
        return COLO_PARSE_ERR_UDP_LEN;
    }
    pkt->src_port = colo_rd16(pkt, off + offsetof(struct udp_hdr, uh_sport));
    pkt->dst_port = colo_rd16(pkt, off + offsetof(struct udp_hdr, uh_dport));
    pkt->payload_off = off + COLO_UDP_HDR_LEN;
    return COLO_PARSE_OK;
}

static bool colo_icmp_is_echo(const ColoPacket *pkt)
{
    uint8_t t = pkt->icmp.type;

    return pkt->ip_version == IP_HEADER_VERSION_4 ? t == 8 || t == 0
                                                  : t == 128 || t == 129;
}

static ColoParseResult colo_parse_icmp(ColoPacket *pkt)
{
    size_t off = pkt->l4_off;

    if (!colo_fits(off, COLO_ICMP_HDR_LEN, pkt->l3_end)) {
        return COLO_PARSE_ERR_ICMP_SHORT;
    }
    pkt->icmp.type = colo_rd8(pkt, off);
    pkt->icmp.code = colo_rd8(pkt, off + 1);
    /*
     * An echo's identifier tells one pinger from another between the same
     * hosts: it stands for both ports, so that each pinger is a connection
     * of its own, requests and replies alike.  It stays in the payload.
     */
    if (colo_icmp_is_echo(pkt) &&
        colo_fits(off, COLO_ICMP_ECHO_HDR_LEN, pkt->l3_end)) {
        pkt->src_port = colo_rd16(pkt, off + COLO_ICMP_HDR_LEN);
        pkt->dst_port = pkt->src_port;
    }
    pkt->payload_off = off + COLO_ICMP_HDR_LEN;
    return COLO_PARSE_OK;
}

static bool colo_is_icmp(const ColoPacket *pkt)
{
    return (pkt->ip_version == IP_HEADER_VERSION_4 &&
            pkt->l4_proto == COLO_PROTO_ICMP) ||
           (pkt->ip_version == IP_HEADER_VERSION_6 &&
            pkt->l4_proto == COLO_PROTO_ICMPV6);
}

/* Protocols we do not know, and later fragments, are all payload. */
static ColoParseResult colo_parse_l4(ColoPacket *pkt)
{
    ColoParseResult res = COLO_PARSE_OK;

    pkt->payload_off = pkt->l4_off;
    if (pkt->frag == COLO_FRAG_LATER) {
        return COLO_PARSE_OK;
    }
    if (pkt->l4_proto == IP_PROTO_TCP) {
        res = colo_parse_tcp(pkt);
    } else if (pkt->l4_proto == IP_PROTO_UDP) {
        res = colo_parse_udp(pkt);
    } else if (colo_is_icmp(pkt)) {
        res = colo_parse_icmp(pkt);
    } else {
        return COLO_PARSE_OK;
    }
    pkt->has_l4 = res == COLO_PARSE_OK;
    return res;
}

/* ---- Whole frame ---- */

static ColoParseResult colo_parse_l3_l4(ColoPacket *pkt)
{
    ColoParseResult res;

    switch (pkt->ethertype) {
    case ETH_P_IP:
        res = colo_parse_ip4(pkt);
        break;
    case ETH_P_IPV6:
        res = colo_parse_ip6(pkt);
        break;
    default:
        /* ARP and the rest: everything after L2 is payload. */
        pkt->l4_off = pkt->payload_off = pkt->l3_off;
        pkt->l3_end = pkt->len;
        return COLO_PARSE_OK;
    }
    if (res != COLO_PARSE_OK) {
        return res;
    }
    return colo_parse_l4(pkt);
}

ColoParseResult colo_packet_parse(ColoPacket *pkt, const void *buf,
                                  size_t len, size_t vnet_hdr_len)
{
    ColoParseResult res;

    memset(pkt, 0, sizeof(*pkt));
    pkt->buf = buf;
    pkt->len = len;
    if (vnet_hdr_len > len) {
        return COLO_PARSE_ERR_VNET_HDR;
    }
    pkt->l2_off = vnet_hdr_len;

    res = colo_parse_l2(pkt);
    if (res == COLO_PARSE_OK) {
        res = colo_parse_l3_l4(pkt);
    }
    if (res == COLO_PARSE_OK) {
        pkt->payload_len = pkt->l3_end - pkt->payload_off;
    }
    return res;
}

static const char *const colo_parse_result_names[COLO_PARSE__MAX] = {
    [COLO_PARSE_OK] = "ok",
    [COLO_PARSE_ERR_VNET_HDR] = "vnet-header-short",
    [COLO_PARSE_ERR_ETH_SHORT] = "ethernet-short",
    [COLO_PARSE_ERR_VLAN_DEPTH] = "vlan-too-deep",
    [COLO_PARSE_ERR_IP4_SHORT] = "ipv4-short",
    [COLO_PARSE_ERR_IP4_VERSION] = "ipv4-bad-version",
    [COLO_PARSE_ERR_IP4_IHL] = "ipv4-bad-ihl",
    [COLO_PARSE_ERR_IP4_TOTAL_LEN] = "ipv4-bad-total-length",
    [COLO_PARSE_ERR_IP6_SHORT] = "ipv6-short",
    [COLO_PARSE_ERR_IP6_VERSION] = "ipv6-bad-version",
    [COLO_PARSE_ERR_IP6_PAYLOAD_LEN] = "ipv6-bad-payload-length",
    [COLO_PARSE_ERR_IP6_EXT_HDR] = "ipv6-bad-extension-header",
    [COLO_PARSE_ERR_TCP_SHORT] = "tcp-short",
    [COLO_PARSE_ERR_TCP_DATA_OFFSET] = "tcp-bad-data-offset",
    [COLO_PARSE_ERR_UDP_SHORT] = "udp-short",
    [COLO_PARSE_ERR_UDP_LEN] = "udp-bad-length",
    [COLO_PARSE_ERR_ICMP_SHORT] = "icmp-short",
};

const char *colo_parse_result_str(ColoParseResult res)
{
    if ((unsigned)res >= COLO_PARSE__MAX) {
        return "invalid";
    }
    return colo_parse_result_names[res];
}

void colo_packet_stats_account(ColoPacketStats *stats, ColoParseResult res)
{
    assert((unsigned)res < COLO_PARSE__MAX);
    stats->by_result[res]++;
    if (res == COLO_PARSE_OK) {
        stats->parsed++;
    } else {
        stats->malformed++;
    }
}

/* ---- Connection keys ---- */

/* Raw-byte hashing and equality rely on this layout having no padding. */
QEMU_BUILD_BUG_ON(sizeof(ColoConnKey) != 2 * 16 + 2 * 2 + 2);

bool colo_conn_key_from_packet(const ColoPacket *pkt, ColoConnKey *key,
                               ColoConnDir *dir)
{
    uint16_t sport = 0, dport = 0;
    int order;

    if (pkt->ip_version == 0) {
        return false;
    }
    if (pkt->frag == COLO_FRAG_NONE) {
        sport = pkt->src_port;
        dport = pkt->dst_port;
    }
    order = memcmp(pkt->src_addr, pkt->dst_addr, sizeof(pkt->src_addr));
    if (order == 0) {
        order = (int)sport - (int)dport;
    }

    memset(key, 0, sizeof(*key));
    key->family = pkt->ip_version;
    key->proto = pkt->l4_proto;
    /* A flow to itself has equal endpoints and always reads as a to b. */
    if (order <= 0) {
        memcpy(key->addr_a, pkt->src_addr, sizeof(key->addr_a));
        memcpy(key->addr_b, pkt->dst_addr, sizeof(key->addr_b));
        key->port_a = sport;
        key->port_b = dport;
        *dir = COLO_DIR_A_TO_B;
    } else {
        memcpy(key->addr_a, pkt->dst_addr, sizeof(key->addr_a));
        memcpy(key->addr_b, pkt->src_addr, sizeof(key->addr_b));
        key->port_a = dport;
        key->port_b = sport;
        *dir = COLO_DIR_B_TO_A;
    }
    return true;
}

guint colo_conn_key_hash(gconstpointer data)
{
    const ColoConnKey *key = data;
    uint32_t addrs, rest;

    addrs = qemu_xxhash8(ldq_he_p(key->addr_a), ldq_he_p(key->addr_a + 8),
                         ldq_he_p(key->addr_b), ldl_he_p(key->addr_b + 8),
                         ldl_he_p(key->addr_b + 12));
    rest = ((uint32_t)key->family << 8 | key->proto);
    return qemu_xxhash6(addrs, (uint64_t)key->port_a << 16 | key->port_b,
                        rest, 0);
}

gboolean colo_conn_key_equal(gconstpointer a, gconstpointer b)
{
    return memcmp(a, b, sizeof(ColoConnKey)) == 0;
}

/* ---- Connection table ---- */

struct ColoConn {
    ColoConnKey key;
    ColoConnDir origin;
    void *user_data;
    ColoConnTable *table;
    GList lru_link;         /* in table->lru; data points back here */
};

struct ColoConnTable {
    GHashTable *by_key;     /* &conn->key -> conn; the table owns conns */
    GQueue lru;             /* head is the most recently used */
    guint capacity;
    GDestroyNotify user_free;
    ColoConnTableStats stats;
};

ColoConnTable *colo_conn_table_new(guint capacity, GDestroyNotify user_free)
{
    ColoConnTable *table = g_new0(ColoConnTable, 1);

    assert(capacity > 0);
    table->by_key = g_hash_table_new(colo_conn_key_hash, colo_conn_key_equal);
    g_queue_init(&table->lru);
    table->capacity = capacity;
    table->user_free = user_free;
    return table;
}

static void colo_conn_free_user_data(ColoConn *conn)
{
    void *data = conn->user_data;

    conn->user_data = NULL;
    if (data && conn->table->user_free) {
        conn->table->user_free(data);
    }
}

/* Take @conn out of its table and free it with its user data. */
static void colo_conn_drop(ColoConnTable *table, ColoConn *conn)
{
    g_queue_unlink(&table->lru, &conn->lru_link);
    g_hash_table_remove(table->by_key, &conn->key);
    colo_conn_free_user_data(conn);
    g_free(conn);
}

void colo_conn_table_free(ColoConnTable *table)
{
    if (!table) {
        return;
    }
    while (table->lru.head) {
        colo_conn_drop(table, table->lru.head->data);
    }
    g_hash_table_destroy(table->by_key);
    g_free(table);
}

static void colo_conn_touch(ColoConnTable *table, ColoConn *conn)
{
    g_queue_unlink(&table->lru, &conn->lru_link);
    g_queue_push_head_link(&table->lru, &conn->lru_link);
}

ColoConn *colo_conn_table_lookup(ColoConnTable *table, const ColoConnKey *key)
{
    ColoConn *conn = g_hash_table_lookup(table->by_key, key);

    if (conn) {
        colo_conn_touch(table, conn);
    }
    return conn;
}

static ColoConn *colo_conn_insert(ColoConnTable *table,
                                  const ColoConnKey *key, ColoConnDir dir)
{
    ColoConn *conn = g_new0(ColoConn, 1);

    if (table->lru.length >= table->capacity) {
        colo_conn_drop(table, table->lru.tail->data);
        table->stats.evicted++;
    }
    conn->key = *key;
    conn->origin = dir;
    conn->table = table;
    conn->lru_link.data = conn;
    g_queue_push_head_link(&table->lru, &conn->lru_link);
    g_hash_table_insert(table->by_key, &conn->key, conn);
    table->stats.created++;
    return conn;
}

ColoConn *colo_conn_table_get(ColoConnTable *table, const ColoConnKey *key,
                              ColoConnDir dir, bool *created)
{
    ColoConn *conn = colo_conn_table_lookup(table, key);

    if (created) {
        *created = !conn;
    }
    return conn ? conn : colo_conn_insert(table, key, dir);
}

bool colo_conn_table_remove(ColoConnTable *table, const ColoConnKey *key)
{
    ColoConn *conn = g_hash_table_lookup(table->by_key, key);

    if (!conn) {
        return false;
    }
    colo_conn_drop(table, conn);
    table->stats.removed++;
    return true;
}

void colo_conn_table_foreach(ColoConnTable *table, ColoConnFunc func,
                             void *opaque)
{
    GList *link;

    for (link = table->lru.head; link; link = link->next) {
        func(link->data, opaque);
    }
}

guint colo_conn_table_remove_if(ColoConnTable *table, ColoConnPred pred,
                                void *opaque)
{
    GList *link = table->lru.head;
    guint n = 0;

    while (link) {
        ColoConn *conn = link->data;

        link = link->next;
        if (pred(conn, opaque)) {
            colo_conn_drop(table, conn);
            n++;
        }
    }
    table->stats.removed += n;
    return n;
}

guint colo_conn_table_count(const ColoConnTable *table)
{
    return table->lru.length;
}

guint colo_conn_table_capacity(const ColoConnTable *table)
{
    return table->capacity;
}

const ColoConnTableStats *colo_conn_table_stats(const ColoConnTable *table)
{
    return &table->stats;
}

const ColoConnKey *colo_conn_key(const ColoConn *conn)
{
    return &conn->key;
}

ColoConnDir colo_conn_origin(const ColoConn *conn)
{
    return conn->origin;
}

void *colo_conn_get_user_data(const ColoConn *conn)
{
    return conn->user_data;
}

void colo_conn_set_user_data(ColoConn *conn, void *data)
{
    if (conn->user_data != data) {
        colo_conn_free_user_data(conn);
    }
    conn->user_data = data;
}

void *colo_conn_steal_user_data(ColoConn *conn)
{
    return g_steal_pointer(&conn->user_data);
}
