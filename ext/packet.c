/* Parser (Ethernet/802.1Q, ARP, IPv4, IPv6 + extension chain, TCP/UDP/ICMP)
 * into struct pkt metadata, and the Internet checksum helpers.
 * No shared state: any thread, one descriptor per thread at a time. */
#include "packet.h"

#include <string.h>

/* IPv4 address -> ::ffff:a.b.c.d (the flow key's form). */
static inline void map4(uint8_t out[16], const uint8_t *a4)
{
    memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    memcpy(out + 12, a4, 4);
}

/* The one place a parse outcome is recorded. */
static inline int pkt_drop(struct pkt *p, enum pkt_drop reason)
{
    p->drop = (uint8_t)reason;
    return -1;
}

/* ---------------------------------------------------------------- L4 */

/* l4 .. l4+avail is the IP payload after the extension chain; a first
 * fragment holds only part of it, so UDP's length may exceed avail there. */
static inline int parse_l4(struct pkt *p, const uint8_t *l4, uint32_t avail, int frag,
                           uint8_t icmp_proto)
{
    uint8_t proto = p->proto;

    if (proto == PKT_PROTO_TCP) {
        if (VR_UNLIKELY(avail < PKT_TCP_LEN))
            return pkt_drop(p, PKT_DROP_L4_TRUNCATED);
        unsigned doff = (unsigned)(l4[12] >> 4) * 4;
        if (VR_UNLIKELY(doff < PKT_TCP_LEN))
            return pkt_drop(p, PKT_DROP_BAD_TCP_OFFSET);
        if (VR_UNLIKELY(doff > avail))
            return pkt_drop(p, PKT_DROP_L4_TRUNCATED);
        p->sport = vr_get16(l4);
        p->dport = vr_get16(l4 + 2);
        p->tcp_flags = l4[13];
    } else if (proto == PKT_PROTO_UDP) {
        if (VR_UNLIKELY(avail < PKT_UDP_LEN))
            return pkt_drop(p, PKT_DROP_L4_TRUNCATED);
        uint16_t ulen = vr_get16(l4 + 4);
        if (VR_UNLIKELY(ulen < PKT_UDP_LEN || (!frag && ulen > avail)))
            return pkt_drop(p, PKT_DROP_BAD_UDP_LENGTH);
        p->sport = vr_get16(l4);
        p->dport = vr_get16(l4 + 2);
    } else if (proto == icmp_proto) {
        if (VR_UNLIKELY(avail < PKT_ICMP_LEN))
            return pkt_drop(p, PKT_DROP_L4_TRUNCATED);
        uint8_t type = l4[0];
        p->dport = type;
        /* echo request/reply: the identifier tells the sessions apart */
        if (icmp_proto == PKT_PROTO_ICMP ? (type == 0 || type == 8)
                                         : (type == 128 || type == 129))
            p->sport = vr_get16(l4 + 4);
    } else {
        return 0;   /* another upper layer: not ours to check, no ports */
    }
    p->flags |= PKT_F_L4;
    return 0;
}

/* ---------------------------------------------------------------- IPv4 */

/* Folded one's-complement sum of an IPv4 header (hlen: a multiple of 4) in
 * native byte order: 0xffff exactly when the header checksum is right, in
 * either byte order, so verification needs no swap and no call. */
static inline uint16_t ip4_sum_native(const uint8_t *ip, unsigned hlen)
{
    uint32_t w0, w1, w2, w3, w4;
    memcpy(&w0, ip, 4);
    memcpy(&w1, ip + 4, 4);
    memcpy(&w2, ip + 8, 4);
    memcpy(&w3, ip + 12, 4);
    memcpy(&w4, ip + 16, 4);
    uint64_t acc = (uint64_t)w0 + w1 + w2 + w3 + w4;   /* the 20 bytes every header has */
    for (unsigned i = PKT_IP4_LEN; i < hlen; i += 4) {
        uint32_t w;
        memcpy(&w, ip + i, 4);
        acc += w;
    }
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    return pkt_csum_fold((uint32_t)acc);
}

static inline int parse_ip4(struct pkt *p, const uint8_t *ip, uint32_t avail, unsigned flags)
{
    if (VR_UNLIKELY(avail < PKT_IP4_LEN))
        return pkt_drop(p, PKT_DROP_TRUNCATED);
    if (VR_UNLIKELY((ip[0] >> 4) != 4))
        return pkt_drop(p, PKT_DROP_BAD_IP_VERSION);
    unsigned hlen = (unsigned)(ip[0] & 0x0f) * 4;
    if (VR_UNLIKELY(hlen < PKT_IP4_LEN || hlen > avail))
        return pkt_drop(p, PKT_DROP_BAD_IHL);
    unsigned tot = vr_get16(ip + 2);
    if (VR_UNLIKELY(tot < hlen || tot > avail))
        return pkt_drop(p, PKT_DROP_BAD_IP_LENGTH);
    if (flags & PKT_PARSE_VERIFY_IP4_CSUM) {
        if (VR_UNLIKELY(ip4_sum_native(ip, hlen) != 0xffff))
            return pkt_drop(p, PKT_DROP_BAD_IP_CHECKSUM);
        p->flags |= PKT_F_CSUM_OK;
    }
    p->flags |= PKT_F_IP4;
    p->ttl = ip[8];
    p->proto = ip[9];
    map4(p->src, ip + 12);
    map4(p->dst, ip + 16);
    p->l4_off = (uint16_t)(p->l3_off + hlen);

    unsigned frag = vr_get16(ip + 6);
    int is_frag = (frag & (PKT_IP4_MF | PKT_IP4_OFFMASK)) != 0;
    if (VR_UNLIKELY(is_frag)) {
        unsigned foff = (frag & PKT_IP4_OFFMASK) * 8;
        p->flags |= PKT_F_FRAG;
        if (foff + tot > 65535)   /* would reassemble past the IP maximum */
            return pkt_drop(p, PKT_DROP_BAD_FRAGMENT);
        if (foff)
            return 0;             /* no L4 header in a later fragment */
    }
    return parse_l4(p, ip + hlen, tot - hlen, is_frag, PKT_PROTO_ICMP);
}

/* ---------------------------------------------------------------- IPv6 */

static inline int parse_ip6(struct pkt *p, const uint8_t *ip, uint32_t avail)
{
    if (VR_UNLIKELY(avail < PKT_IP6_LEN))
        return pkt_drop(p, PKT_DROP_TRUNCATED);
    if (VR_UNLIKELY((ip[0] >> 4) != 6))
        return pkt_drop(p, PKT_DROP_BAD_IP_VERSION);
    uint32_t end = PKT_IP6_LEN + vr_get16(ip + 4);
    if (VR_UNLIKELY(end > avail))
        return pkt_drop(p, PKT_DROP_BAD_IP_LENGTH);
    p->flags |= PKT_F_IP6;
    p->ttl = ip[7];
    memcpy(p->src, ip + 8, 16);
    memcpy(p->dst, ip + 24, 16);

    /* Walk the extension chain: bounded by PKT_IP6_MAX_EXT headers, each
     * length-checked against the payload before it is read. */
    uint8_t nh = ip[6];
    uint32_t off = PKT_IP6_LEN;
    int is_frag = 0;
    for (unsigned i = 0;; i++) {
        if (nh != 0 && nh != 43 && nh != 60 && nh != 44)
            break;                                  /* an upper layer */
        if (VR_UNLIKELY(i == PKT_IP6_MAX_EXT || end - off < 8 || (nh == 0 && i != 0)))
            return pkt_drop(p, PKT_DROP_IPV6_EXT_CHAIN);
        const uint8_t *h = ip + off;
        if (nh == 44) {
            unsigned foff = vr_get16(h + 2) & 0xfff8u;  /* 13-bit offset << 3 = bytes */
            unsigned more = h[3] & 1;
            nh = h[0];
            off += PKT_IP6_FRAG_LEN;
            if (foff || more) {                     /* else an atomic fragment */
                is_frag = 1;
                p->flags |= PKT_F_FRAG;
                if (foff + (end - off) > 65535)
                    return pkt_drop(p, PKT_DROP_BAD_FRAGMENT);
                if (foff) {                         /* no L4 header in a later fragment */
                    p->proto = nh;
                    p->l4_off = (uint16_t)(p->l3_off + off);
                    return 0;
                }
            }
        } else {
            uint32_t hlen = ((uint32_t)h[1] + 1) * 8;
            if (VR_UNLIKELY(hlen > end - off))
                return pkt_drop(p, PKT_DROP_IPV6_EXT_CHAIN);
            nh = h[0];
            off += hlen;
        }
    }
    p->proto = nh;
    p->l4_off = (uint16_t)(p->l3_off + off);
    return parse_l4(p, ip + off, end - off, is_frag, PKT_PROTO_ICMP6);
}

/* ---------------------------------------------------------------- ARP */

static inline int parse_arp(struct pkt *p, const uint8_t *a, uint32_t avail)
{
    if (VR_UNLIKELY(avail < PKT_ARP_LEN))
        return pkt_drop(p, PKT_DROP_TRUNCATED);
    if (VR_UNLIKELY(vr_get16(a) != 1 || vr_get16(a + 2) != PKT_ETH_P_IP4 || a[4] != 6 || a[5] != 4))
        return pkt_drop(p, PKT_DROP_BAD_ARP);
    p->flags |= PKT_F_ARP;
    p->dport = vr_get16(a + PKT_ARP_OPER);
    map4(p->src, a + PKT_ARP_SPA);
    map4(p->dst, a + PKT_ARP_TPA);
    return 0;
}

/* ---------------------------------------------------------------- frame */

static inline int is_vlan_tpid(uint16_t et)
{
    return et == PKT_ETH_P_8021Q || et == PKT_ETH_P_8021AD;
}

static inline void pkt_parse_one(struct pkt *p, unsigned flags)
{
    const uint8_t *f = pkt_data(p);
    uint32_t len = p->data_len;

    /* the parser output is the 48 bytes after the back-end's 16 */
    memset(p->src, 0, sizeof(*p) - offsetof(struct pkt, src));
    if (VR_UNLIKELY(len < PKT_ETH_LEN)) {
        pkt_drop(p, PKT_DROP_TRUNCATED);
        return;
    }
    uint32_t off = PKT_ETH_LEN;
    uint16_t et = vr_get16(f + 12);
    if (is_vlan_tpid(et)) {
        if (VR_UNLIKELY(len < PKT_ETH_LEN + PKT_VLAN_LEN)) {
            pkt_drop(p, PKT_DROP_TRUNCATED);
            return;
        }
        p->flags |= PKT_F_VLAN;
        p->vlan_tci = vr_get16(f + 14);
        et = vr_get16(f + 16);
        off += PKT_VLAN_LEN;
        if (VR_UNLIKELY(is_vlan_tpid(et))) {
            p->ethertype = et;
            pkt_drop(p, PKT_DROP_VLAN_STACKED);
            return;
        }
    }
    p->ethertype = et;
    p->l3_off = (uint8_t)off;
    if (VR_LIKELY(et == PKT_ETH_P_IP4))
        parse_ip4(p, f + off, len - off, flags);
    else if (et == PKT_ETH_P_IP6)
        parse_ip6(p, f + off, len - off);
    else if (et == PKT_ETH_P_ARP)
        parse_arp(p, f + off, len - off);
    else
        p->flags |= PKT_F_OTHER;
}

#ifndef PKT_PREFETCH
#define PKT_PREFETCH 8
#endif

VR_EXPORT uint32_t pkt_parse_burst(struct pkt *pkts, uint32_t n, unsigned flags)
{
    uint32_t ok = 0;
    for (uint32_t i = 0; i < n; i++) {
        /* the frame PKT_PREFETCH ahead: its header line arrives while we
         * parse the ones before it */
        if (i + PKT_PREFETCH < n)
            __builtin_prefetch(pkt_data(&pkts[i + PKT_PREFETCH]));
        pkt_parse_one(&pkts[i], flags);
        ok += pkts[i].drop == PKT_DROP_NONE;
    }
    return ok;
}

/* ---------------------------------------------------------------- checksums */

/* Sum in native byte order and swap once at the end: the one's-complement
 * sum commutes with byte swapping (RFC 1071 section 2(B)). */
VR_EXPORT uint32_t pkt_csum_add(const void *data, size_t len, uint32_t sum)
{
    const uint8_t *b = data;
    uint64_t acc = 0;
    while (len >= 8) {
        uint32_t w0, w1;
        memcpy(&w0, b, 4);
        memcpy(&w1, b + 4, 4);
        acc += (uint64_t)w0 + w1;
        b += 8;
        len -= 8;
    }
    if (len >= 4) {
        uint32_t w;
        memcpy(&w, b, 4);
        acc += w;
        b += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t w;
        memcpy(&w, b, 2);
        acc += w;
        b += 2;
        len -= 2;
    }
    if (len) {   /* an odd last byte is the high half of a zero-padded word */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        acc += b[0];
#else
        acc += (uint32_t)b[0] << 8;
#endif
    }
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    uint16_t folded = pkt_csum_fold((uint32_t)acc);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    folded = __builtin_bswap16(folded);
#endif
    return (uint32_t)pkt_csum_fold(sum) + folded;
}

VR_EXPORT uint16_t pkt_ip4_csum(const uint8_t *ip, unsigned hlen)
{
    return (uint16_t)~pkt_csum_fold(pkt_csum_add(ip, hlen, 0));
}

VR_EXPORT uint16_t pkt_csum_update(uint16_t csum, const uint8_t *old, const uint8_t *new_,
                                   unsigned len)
{
    uint32_t s = (uint16_t)~csum;
    for (unsigned i = 0; i + 1 < len; i += 2)
        s += (uint32_t)(uint16_t)~vr_get16(old + i) + vr_get16(new_ + i);
    return (uint16_t)~pkt_csum_fold(s);
}

VR_EXPORT uint32_t pkt_pseudo_sum(int family, const uint8_t *src, const uint8_t *dst,
                                  uint8_t proto, uint32_t l4_len)
{
    size_t alen = family == 6 ? 16 : 4;
    uint32_t s = pkt_csum_add(src, alen, 0);
    s = pkt_csum_add(dst, alen, s);
    return s + proto + (l4_len >> 16) + (l4_len & 0xffff);
}

/* Where the L4 checksum field is, or -1 for protocols without one we know. */
static inline int l4_csum_field(const struct pkt *p)
{
    switch (p->proto) {
    case PKT_PROTO_TCP: return 16;
    case PKT_PROTO_UDP: return 6;
    case PKT_PROTO_ICMP: return (p->flags & PKT_F_IP4) ? 2 : -1;
    case PKT_PROTO_ICMP6: return (p->flags & PKT_F_IP6) ? 2 : -1;
    default: return -1;
    }
}

/* Bytes from l4_off to the end of the IP packet (not the frame: padding). */
static inline uint32_t l4_len(const struct pkt *p, const uint8_t *ip)
{
    uint32_t end = (p->flags & PKT_F_IP4) ? vr_get16(ip + 2) : PKT_IP6_LEN + (uint32_t)vr_get16(ip + 4);
    return p->l3_off + end - p->l4_off;
}

VR_EXPORT uint16_t pkt_l4_csum(const struct pkt *p)
{
    const uint8_t *f = pkt_data(p);
    const uint8_t *ip = f + p->l3_off;
    uint32_t n = l4_len(p, ip);
    uint32_t s;
    if (p->flags & PKT_F_IP4)
        s = p->proto == PKT_PROTO_ICMP ? 0 : pkt_pseudo_sum(4, ip + 12, ip + 16, p->proto, n);
    else
        s = pkt_pseudo_sum(6, ip + 8, ip + 24, p->proto, n);
    return (uint16_t)~pkt_csum_fold(pkt_csum_add(f + p->l4_off, n, s));
}

VR_EXPORT int pkt_l4_csum_fill(struct pkt *p)
{
    int field = l4_csum_field(p);
    if (p->drop != PKT_DROP_NONE || !(p->flags & PKT_F_L4) || (p->flags & PKT_F_FRAG) || field < 0)
        return -1;
    uint8_t *c = pkt_data(p) + p->l4_off + field;
    vr_put16(c, 0);
    uint16_t v = pkt_l4_csum(p);
    if (v == 0 && p->proto == PKT_PROTO_UDP)
        v = 0xffff;   /* 0 means "no checksum" in UDP (RFC 768) */
    vr_put16(c, v);
    return 0;
}

VR_EXPORT int pkt_ttl_decrement(struct pkt *p)
{
    if (p->drop != PKT_DROP_NONE || !(p->flags & (PKT_F_IP4 | PKT_F_IP6)) || p->ttl <= 1)
        return -1;
    pkt_ttl_dec(p);
    return 0;
}
