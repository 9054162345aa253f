/* VXLAN / MPLSoUDP encapsulation from a next hop's template, and the checks
 * that open a tunnel packet. See encap.h. */
#include "encap.h"

#include <string.h>

VR_EXPORT int encap_push(struct pkt *p, const struct nh *nh, unsigned ip_off, unsigned ip_len,
                         uint16_t ethertype, uint16_t sport)
{
    unsigned front = encap_overhead(nh);
    if (VR_UNLIKELY(ip_off < front))
        return -1;
    unsigned start = ip_off - front;
    uint8_t *f = p->buf + start;
    unsigned len = front + ip_len;

    vr_copy_small(f, nh->hdr, nh->hdr_len);
    if (nh->s.encap == NH_ENC_VXLAN) {
        uint8_t *eth = f + nh->hdr_len;
        memcpy(eth, nh->s.inner_dmac, 6);
        memcpy(eth + 6, nh->hdr + 6, 6);   /* the fabric MAC, from the template */
        vr_put16(eth + 12, ethertype);
    }
    uint8_t *ip = f + nh->l3_off;
    unsigned ip_total = len - nh->l3_off;
    uint8_t *udp;
    if (nh->s.family == 4) {
        udp = ip + PKT_IP4_LEN;
        vr_put16(ip + 2, (uint16_t)ip_total);
        vr_put16(ip + 10, (uint16_t)~pkt_csum_fold(nh->ip_csum_base + ip_total));
        vr_put16(udp + 4, (uint16_t)(ip_total - PKT_IP4_LEN));
        vr_put16(udp, sport);
        /* checksum 0: from the template */
    } else {
        udp = ip + PKT_IP6_LEN;
        unsigned ulen = ip_total - PKT_IP6_LEN;
        vr_put16(ip + 4, (uint16_t)ulen);
        vr_put16(udp, sport);
        vr_put16(udp + 4, (uint16_t)ulen);
        vr_put16(udp + 6, 0);
        uint16_t c = (uint16_t)~pkt_csum_fold(pkt_csum_add(udp, ulen, nh->udp_csum_base + ulen));
        vr_put16(udp + 6, c ? c : 0xffff);
    }
    p->data_off = (uint16_t)start;
    p->data_len = (uint16_t)len;
    return 0;
}

/* The UDP payload of a parsed UDP packet: [*off, *end) from the frame start. */
static inline int udp_payload(const struct pkt *p, unsigned *off, unsigned *end)
{
    const uint8_t *udp = pkt_data(p) + p->l4_off;
    unsigned ulen = vr_get16(udp + 4);
    *off = p->l4_off + PKT_UDP_LEN;
    *end = p->l4_off + ulen;
    return *end <= p->data_len && ulen >= PKT_UDP_LEN ? 0 : -1;
}

VR_EXPORT int encap_vxlan_inner(const struct pkt *p, uint32_t *vni, unsigned *end)
{
    unsigned off;
    if (udp_payload(p, &off, end) < 0 || *end - off < ENCAP_VXLAN_LEN + PKT_ETH_LEN)
        return -1;
    const uint8_t *vx = pkt_data(p) + off;
    if (!(vx[0] & 0x08))
        return -1;
    *vni = vr_get32(vx + 4) >> 8;
    return (int)(off + ENCAP_VXLAN_LEN);
}

VR_EXPORT int encap_mpls_inner(const struct pkt *p, uint32_t *label, unsigned *end)
{
    unsigned off;
    if (udp_payload(p, &off, end) < 0 || *end - off < ENCAP_MPLS_LEN + 1)
        return -1;
    const uint8_t *m = pkt_data(p) + off;
    uint32_t e = vr_get32(m);
    if (!(e & 0x100))
        return -1;   /* one label only: bottom of stack */
    unsigned v = m[ENCAP_MPLS_LEN] >> 4;
    if (v != 4 && v != 6)
        return -1;
    *label = e >> 12;
    return (int)(off + ENCAP_MPLS_LEN);
}
