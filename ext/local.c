/* ARP / ND / echo answers and ICMP errors, built in place. See local.h. */
#include "local.h"

#include <string.h>

/* Ethernet: the answer goes to whoever sent the frame, from mac. */
static inline void eth_turn(uint8_t *f, const uint8_t mac[6])
{
    memcpy(f, f + 6, 6);
    memcpy(f + 6, mac, 6);
}

static inline void swap_bytes(uint8_t *a, uint8_t *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint8_t t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

VR_EXPORT void local_arp_reply(struct pkt *p, const uint8_t mac[6])
{
    uint8_t *f = pkt_data(p), *a = f + p->l3_off;
    uint8_t sha[6], spa[4];
    memcpy(sha, a + PKT_ARP_SHA, 6);
    memcpy(spa, a + PKT_ARP_SPA, 4);
    eth_turn(f, mac);
    vr_put16(a + PKT_ARP_OPER, 2);
    memcpy(a + PKT_ARP_SPA, a + PKT_ARP_TPA, 4);
    memcpy(a + PKT_ARP_SHA, mac, 6);
    memcpy(a + PKT_ARP_THA, sha, 6);
    memcpy(a + PKT_ARP_TPA, spa, 4);
}

VR_EXPORT void local_vxlan_arp_reply(struct pkt *p, const uint8_t mac[6], const struct local_outer *o)
{
    local_arp_reply(p, mac);
    uint8_t *f = p->buf + o->off, *ip = f + o->l3, *udp = f + o->l4;
    eth_turn(f, mac);
    if (o->v4) {
        swap_bytes(ip + 12, ip + 16, 4);
        ip[8] = LOCAL_TTL;
        vr_put16(ip + 10, 0);
        vr_put16(ip + 10, pkt_ip4_csum(ip, (ip[0] & 0xfu) * 4));
        vr_put16(udp + 6, 0);   /* RFC 768: no UDP checksum over IPv4 */
    } else {
        swap_bytes(ip + 8, ip + 24, 16);
        ip[7] = LOCAL_TTL;
        unsigned ulen = vr_get16(udp + 4);
        vr_put16(udp + 6, 0);
        uint16_t c = (uint16_t)~pkt_csum_fold(
            pkt_csum_add(udp, ulen, pkt_pseudo_sum(6, ip + 8, ip + 24, PKT_PROTO_UDP, ulen)));
        vr_put16(udp + 6, c ? c : 0xffff);
    }
    p->data_off = (uint16_t)o->off;
    p->data_len = (uint16_t)o->len;
}

#define ND_NA_LEN 32   /* type, code, checksum, flags, target, option (type 2, len 1, MAC) */

VR_EXPORT int local_nd_advert(struct pkt *p, const uint8_t mac[6], const uint8_t target[16])
{
    if ((unsigned)p->data_off + p->l3_off + PKT_IP6_LEN + ND_NA_LEN > p->buf_size)
        return -1;
    uint8_t *f = pkt_data(p), *ip = f + p->l3_off, *icmp = ip + PKT_IP6_LEN;
    uint8_t tgt[16];
    memcpy(tgt, target, 16);   /* target may point into the frame */
    eth_turn(f, mac);
    vr_put32(ip, 0x60000000u);
    vr_put16(ip + 4, ND_NA_LEN);
    ip[6] = PKT_PROTO_ICMP6;
    ip[7] = 255;                       /* RFC 4861 7.1.2: hop limit 255 */
    memcpy(ip + 24, ip + 8, 16);       /* to the solicitor */
    memcpy(ip + 8, tgt, 16);           /* from the target */
    memset(icmp, 0, ND_NA_LEN);
    icmp[0] = 136;
    icmp[4] = 0xe0;                    /* Router | Solicited | Override */
    memcpy(icmp + 8, tgt, 16);
    icmp[24] = 2;                      /* target link-layer address */
    icmp[25] = 1;
    memcpy(icmp + 26, mac, 6);
    uint32_t sum = pkt_pseudo_sum(6, ip + 8, ip + 24, PKT_PROTO_ICMP6, ND_NA_LEN);
    vr_put16(icmp + 2, (uint16_t)~pkt_csum_fold(pkt_csum_add(icmp, ND_NA_LEN, sum)));
    p->data_len = (uint16_t)(p->l3_off + PKT_IP6_LEN + ND_NA_LEN);
    return 0;
}

VR_EXPORT void local_echo_reply(struct pkt *p, const uint8_t mac[6])
{
    uint8_t *f = pkt_data(p), *ip = f + p->l3_off, *icmp = f + p->l4_off;
    uint16_t old = vr_get16(icmp);
    eth_turn(f, mac);
    if (p->flags & PKT_F_IP4) {
        unsigned ihl = (ip[0] & 0xfu) * 4;
        swap_bytes(ip + 12, ip + 16, 4);
        ip[8] = LOCAL_TTL;
        vr_put16(ip + 10, 0);
        vr_put16(ip + 10, pkt_ip4_csum(ip, ihl));
        icmp[0] = 0;
    } else {
        swap_bytes(ip + 8, ip + 24, 16);   /* the pseudo-header sum does not change */
        ip[7] = LOCAL_TTL;
        icmp[0] = 129;
    }
    vr_put16(icmp + 2, pkt_csum_update16(vr_get16(icmp + 2), old, vr_get16(icmp)));
}

static inline int is_zero(const uint8_t *a, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (a[i])
            return 0;
    return 1;
}

VR_EXPORT int local_icmp_error_allowed(const struct pkt *p)
{
    if (p->drop != PKT_DROP_NONE || !(p->flags & (PKT_F_IP4 | PKT_F_IP6)))
        return 0;
    if ((p->flags & PKT_F_FRAG) && !(p->flags & PKT_F_L4))
        return 0;   /* a non-first fragment */
    if (p->flags & PKT_F_IP4) {
        const uint8_t *s = p->src + 12;
        if (is_zero(s, 4) || s[0] >= 224 || (s[0] == 127))
            return 0;
        if (p->proto == PKT_PROTO_ICMP && (p->flags & PKT_F_L4)) {
            unsigned t = p->dport;   /* the parser's ICMP type */
            if (!(t == 0 || t == 8 || (t >= 13 && t <= 18)))
                return 0;   /* an error (or unknown type): never answer it */
        }
    } else {
        if (is_zero(p->src, 16) || p->src[0] == 0xff)
            return 0;
        if (p->proto == PKT_PROTO_ICMP6 && (p->flags & PKT_F_L4) && p->dport < 128)
            return 0;
    }
    return 1;
}

VR_EXPORT int local_icmp_error(struct pkt *p, const struct vif *v, int kind, uint32_t mtu)
{
    int v4 = !!(p->flags & PKT_F_IP4);
    if (!local_icmp_error_allowed(p) || !(v4 ? v->has_gw4 : v->has_gw6))
        return -1;
    unsigned l3 = (unsigned)p->data_off + p->l3_off;     /* from buf */
    const uint8_t *orig = p->buf + l3;
    unsigned ip_len = v4 ? vr_get16(orig + 2) : PKT_IP6_LEN + vr_get16(orig + 4);
    unsigned quote = ip_len < (v4 ? LOCAL_ICMP4_QUOTE_MAX : LOCAL_ICMP6_QUOTE_MAX)
                         ? ip_len : (v4 ? LOCAL_ICMP4_QUOTE_MAX : LOCAL_ICMP6_QUOTE_MAX);
    unsigned iph = v4 ? PKT_IP4_LEN : PKT_IP6_LEN;
    unsigned l2 = PKT_ETH_LEN + (v->vlan ? PKT_VLAN_LEN : 0);
    unsigned front = l2 + iph + PKT_ICMP_LEN;
    if (l3 < front)
        return -2;
    uint8_t dmac[6], dst[16];
    memcpy(dmac, pkt_data(p) + 6, 6);
    memcpy(dst, v4 ? p->src + 12 : p->src, v4 ? 4 : 16);

    uint8_t *g = p->buf + l3 - front;
    memcpy(g, dmac, 6);
    memcpy(g + 6, v->mac, 6);
    uint8_t *et = g + 12;
    if (v->vlan) {
        vr_put16(et, PKT_ETH_P_8021Q);
        vr_put16(et + 2, v->vlan);
        et += PKT_VLAN_LEN;
    }
    vr_put16(et, v4 ? PKT_ETH_P_IP4 : PKT_ETH_P_IP6);
    uint8_t *ip = g + l2, *icmp = ip + iph;
    unsigned icmp_len = PKT_ICMP_LEN + quote;
    memset(icmp, 0, PKT_ICMP_LEN);
    if (v4) {
        memset(ip, 0, PKT_IP4_LEN);
        ip[0] = 0x45;
        ip[1] = 0xc0;                  /* internetwork control */
        vr_put16(ip + 2, (uint16_t)(PKT_IP4_LEN + icmp_len));
        ip[8] = LOCAL_TTL;
        ip[9] = PKT_PROTO_ICMP;
        memcpy(ip + 12, v->gw4, 4);
        memcpy(ip + 16, dst, 4);
        vr_put16(ip + 10, pkt_ip4_csum(ip, PKT_IP4_LEN));
        if (kind == LOCAL_TIME_EXCEEDED) {
            icmp[0] = 11;              /* time exceeded in transit, code 0 */
        } else {
            icmp[0] = 3;               /* destination unreachable, */
            icmp[1] = 4;               /* fragmentation needed and DF set */
            vr_put16(icmp + 6, (uint16_t)mtu);
        }
        vr_put16(icmp + 2, (uint16_t)~pkt_csum_fold(pkt_csum_add(icmp, icmp_len, 0)));
    } else {
        vr_put32(ip, 0x60000000u);
        vr_put16(ip + 4, (uint16_t)icmp_len);
        ip[6] = PKT_PROTO_ICMP6;
        ip[7] = LOCAL_TTL;
        memcpy(ip + 8, v->gw6, 16);
        memcpy(ip + 24, dst, 16);
        if (kind == LOCAL_TIME_EXCEEDED) {
            icmp[0] = 3;               /* time exceeded, hop limit exceeded in transit */
        } else {
            icmp[0] = 2;               /* packet too big */
            vr_put32(icmp + 4, mtu);
        }
        uint32_t sum = pkt_pseudo_sum(6, ip + 8, ip + 24, PKT_PROTO_ICMP6, icmp_len);
        vr_put16(icmp + 2, (uint16_t)~pkt_csum_fold(pkt_csum_add(icmp, icmp_len, sum)));
    }
    p->data_off = (uint16_t)(l3 - front);
    p->data_len = (uint16_t)(front + quote);
    return 0;
}
