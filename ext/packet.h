/* Packet descriptor, L2/L3/L4 parser and Internet checksums.
 *
 * Ownership. Frame buffers belong to the caller (an I/O back-end: TAP read
 * buffers, AF_XDP UMEM frames, AF_PACKET ring slots). A struct pkt only points
 * into one: the frame is buf[data_off .. data_off + data_len), and the bytes
 * before data_off are headroom that encapsulation grows into (>= PKT_HEADROOM
 * when the back-end can give it). Everything here works in place: parsing
 * writes only the descriptor's metadata half; pkt_ttl_decrement and
 * pkt_l4_csum_fill write the frame. Nothing allocates, nothing frees.
 *
 * Concurrency. No shared state at all: any thread may call anything, as long
 * as one descriptor (and its frame) is touched by one thread at a time.
 * Every function is reentrant; the name table is read-only.
 */
#ifndef VR_PACKET_H
#define VR_PACKET_H

#include <stddef.h>
#include <stdint.h>

#include "drop.h"
#include "vr_common.h"

#define PKT_HEADROOM 128     /* outer Ethernet + IPv6 + UDP + VXLAN = 14+40+8+8 = 70 */
#define PKT_BURST_MAX 256    /* bursts the pipeline hands over; parse takes any n */
#define PKT_IP6_MAX_EXT 8    /* IPv6 extension headers walked before giving up */

/* Ethernet II, optionally with one 802.1Q tag (IEEE 802.3 / 802.1Q):
 *   0                   1                   2                   3
 *   +-------+-------+-------+-------+-------+-------+
 *   |                destination MAC (6)            |
 *   |                source MAC (6)                 |
 *   | TPID 0x8100 (2)| PCP|D|  VLAN id (12) |   <- optional tag, 4 bytes
 *   | ethertype (2)  |
 */
#define PKT_ETH_LEN 14
#define PKT_VLAN_LEN 4
#define PKT_ETH_P_IP4 0x0800
#define PKT_ETH_P_ARP 0x0806
#define PKT_ETH_P_IP6 0x86dd
#define PKT_ETH_P_8021Q 0x8100
#define PKT_ETH_P_8021AD 0x88a8

/* ARP for Ethernet/IPv4 (RFC 826), 28 bytes; offsets from l3_off:
 *   htype(2)=1 ptype(2)=0x0800 hlen(1)=6 plen(1)=4 oper(2)
 *   sha(6) @8  spa(4) @14  tha(6) @18  tpa(4) @24 */
#define PKT_ARP_LEN 28
#define PKT_ARP_OPER 6
#define PKT_ARP_SHA 8
#define PKT_ARP_SPA 14
#define PKT_ARP_THA 18
#define PKT_ARP_TPA 24

/* IPv4 (RFC 791), 20 bytes + options:
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version|  IHL  |Type of Service|          Total Length         |
 *   |         Identification        |Flags|      Fragment Offset    |
 *   |  Time to Live |    Protocol   |         Header Checksum       |
 *   |                       Source Address                          |
 *   |                    Destination Address                        |
 *   |                    Options                    |    Padding    |
 */
#define PKT_IP4_LEN 20
#define PKT_IP4_MF 0x2000
#define PKT_IP4_OFFMASK 0x1fff

/* IPv6 (RFC 8200), 40 bytes, then a chain of extension headers:
 *   |Version| Traffic Class |           Flow Label                  |
 *   |         Payload Length        |  Next Header  |   Hop Limit   |
 *   |                 Source Address (16)                           |
 *   |              Destination Address (16)                         |
 * Hop-by-hop (0, first only), routing (43), destination options (60):
 *   | Next Header | Hdr Ext Len (8-octet units, not counting the first 8) | ...
 * Fragment (44), 8 bytes:
 *   | Next Header | Reserved | Fragment Offset (13) |Res|M| Identification (32) |
 */
#define PKT_IP6_LEN 40
#define PKT_IP6_FRAG_LEN 8

/* TCP (RFC 9293): ports, seq, ack, | Offset(4) | Rsvd(4) | Flags(8) | Window |,
 * checksum @16, urgent @18; 20 bytes + options. UDP (RFC 768): sport, dport,
 * length, checksum; 8 bytes. ICMP (RFC 792) / ICMPv6 (RFC 4443): type, code,
 * checksum @2, then 4 bytes (echo: identifier @4, sequence @6). */
#define PKT_TCP_LEN 20
#define PKT_UDP_LEN 8
#define PKT_ICMP_LEN 8
#define PKT_PROTO_ICMP 1
#define PKT_PROTO_TCP 6
#define PKT_PROTO_UDP 17
#define PKT_PROTO_ICMP6 58

/* Parser outcome flags (struct pkt.flags). "other" = an ethertype we do not
 * parse (not an error: the pipeline decides). FRAG without L4 = a non-first
 * fragment: its ports are 0. CSUM_OK = IPv4 header checksum verified. */
#define PKT_FLAGS(X)                 \
    X(VLAN, 0x01, "vlan")            \
    X(ARP, 0x02, "arp")              \
    X(IP4, 0x04, "ip4")              \
    X(IP6, 0x08, "ip6")              \
    X(OTHER, 0x10, "other")          \
    X(FRAG, 0x20, "fragment")        \
    X(L4, 0x40, "l4")                \
    X(CSUM_OK, 0x80, "ip4_csum_ok")
enum pkt_flag {
#define PKT_X(n, v, s) PKT_F_##n = v,
    PKT_FLAGS(PKT_X)
#undef PKT_X
};

/* Why a frame is malformed: enum pkt_drop, declared in drop.def (the parser
 * stops at the first check that fails, so each frame gets one reason). */

/* One descriptor: one cache line. The first 16 bytes are the I/O back-end's
 * (it fills them, the parser only reads them); the rest is parser output,
 * overwritten by every parse. Offsets are from the frame start (data_off).
 * Addresses: IPv4 stored IPv4-mapped (::ffff:a.b.c.d) as in struct flow_key;
 * ARP puts sender/target protocol addresses there and dport = opcode.
 * Ports: TCP/UDP ports; ICMP/ICMPv6 echo: sport = identifier; ICMP: dport =
 * type (flow_key's convention), the code is at l4_off + 1. On a drop, the
 * fields parsed before the failing check are kept (for traces). */
struct pkt {
    uint8_t *buf;          /* start of the buffer (headroom included) */
    uint16_t buf_size;     /* bytes usable from buf (<= 65535: GSO frames are segmented first) */
    uint16_t data_off;     /* frame start = buf + data_off */
    uint16_t data_len;     /* frame length */
    uint16_t vif;          /* ingress interface */
    /* parser output */
    uint8_t src[16];
    uint8_t dst[16];
    uint16_t sport;
    uint16_t dport;
    uint16_t ethertype;    /* inner ethertype when VLAN-tagged */
    uint16_t vlan_tci;     /* the tag's TCI (VLAN id = & 0xfff); 0 if untagged */
    uint16_t l4_off;       /* after the IPv6 extension chain; 0 if no L3 */
    uint8_t l3_off;        /* 14 or 18 */
    uint8_t flags;         /* PKT_F_* */
    uint8_t proto;         /* IPv4 protocol / IPv6 upper-layer next header */
    uint8_t ttl;           /* TTL / hop limit */
    uint8_t tcp_flags;
    uint8_t drop;          /* enum pkt_drop; PKT_DROP_NONE = parsed */
} VR_ALIGNED(VR_CACHE_LINE);

_Static_assert(sizeof(struct pkt) == 64, "struct pkt is one cache line");

static inline uint8_t *pkt_data(const struct pkt *p)
{
    return p->buf + p->data_off;
}

/* Parse flags. */
#define PKT_PARSE_VERIFY_IP4_CSUM 1u   /* drop bad IPv4 header checksums;
    without it the checksum is not read (a NIC or the kernel checked it) */

/* Parse n descriptors in place (an array, any n). Returns how many parsed
 * without a drop reason. Never reads outside buf[data_off, data_off+data_len). */
VR_EXPORT uint32_t pkt_parse_burst(struct pkt *pkts, uint32_t n, unsigned flags);

/* ---- checksums (RFC 1071 / RFC 1624) ----
 * "sum" values are 32-bit one's-complement accumulators of big-endian 16-bit
 * words, as host integers; pkt_csum_fold() gives the 16-bit folded sum and a
 * checksum field holds its complement. A region that includes its own correct
 * checksum sums to 0xffff, so its "checksum" comes out 0. */
VR_EXPORT uint32_t pkt_csum_add(const void *data, size_t len, uint32_t sum);

static inline uint16_t pkt_csum_fold(uint32_t sum)
{
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

/* IPv4 header checksum over hlen bytes with the field as it is: 0 when the
 * header is correct; with the field zeroed, the value to store. */
VR_EXPORT uint16_t pkt_ip4_csum(const uint8_t *ip, unsigned hlen);

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for one 16-bit word m -> m'. */
static inline uint16_t pkt_csum_update16(uint16_t csum, uint16_t old, uint16_t new_)
{
    uint32_t s = (uint16_t)~csum + (uint32_t)(uint16_t)~old + new_;
    return (uint16_t)~pkt_csum_fold(s);
}

/* Same for a rewritten field of len bytes (even: an address, a port pair). */
VR_EXPORT uint16_t pkt_csum_update(uint16_t csum, const uint8_t *old, const uint8_t *new_,
                                   unsigned len);

/* Pseudo-header sum (RFC 768/9293 for IPv4, RFC 8200 8.1 for IPv6) of raw
 * addresses (4 or 16 bytes each by family), protocol and upper-layer length. */
VR_EXPORT uint32_t pkt_pseudo_sum(int family, const uint8_t *src, const uint8_t *dst,
                                  uint8_t proto, uint32_t l4_len);

/* For a parsed, unfragmented packet with PKT_F_L4: the checksum over pseudo
 * header (none for ICMPv4) + L4 header + payload up to the IP length, with
 * the field as it is (0 = correct). IPv6 routing headers are not followed:
 * the pseudo-header uses the header's destination. */
VR_EXPORT uint16_t pkt_l4_csum(const struct pkt *p);
/* Compute and store it (UDP: 0 is sent as 0xffff). 0, or -1 if not applicable. */
VR_EXPORT int pkt_l4_csum_fill(struct pkt *p);

/* TTL / hop limit - 1 of a parsed IP packet the caller checked (IP, TTL > 1),
 * the IPv4 header checksum updated incrementally (RFC 1624). */
static inline void pkt_ttl_dec(struct pkt *p)
{
    uint8_t *ip = pkt_data(p) + p->l3_off;
    if (p->flags & PKT_F_IP4) {
        /* TTL is the high byte of the (TTL, protocol) word */
        uint16_t old = vr_get16(ip + 8);
        ip[8]--;
        vr_put16(ip + 10, pkt_csum_update16(vr_get16(ip + 10), old, vr_get16(ip + 8)));
    } else {
        ip[7]--;
    }
    p->ttl--;
}

/* Decrement TTL / hop limit of a parsed IP packet, updating the IPv4 header
 * checksum incrementally. Returns 0, or -1 (frame untouched) when the TTL is
 * <= 1 (the caller answers time exceeded) or the packet is not IP. */
VR_EXPORT int pkt_ttl_decrement(struct pkt *p);

#endif
