/* Pipeline pass 1, classify: ingress vif -> VRF, tunnels from the fabric
 * opened (VXLAN VNI -> VRF, MPLSoUDP label -> next hop), ARP / ND / echo to
 * the vrouter answered, anti-spoofing; the flow key of every packet that goes
 * on. Reader side: a worker (or the writer in pl_trace), no shared writes.
 */
#include "pl_priv.h"

#include "encap.h"
#include "local.h"

/* An address answered by proxy: routed in the VRF, and not to the asker. */
static int proxied(struct pl_run *r, const struct vif *v, int family, const uint8_t a[16])
{
    int why;
    uint32_t nh = pl_resolve(r->pl, r->trace, v->vrf, family, a, &why);
    if (nh == LPM_NO_ROUTE)
        return 0;
    const struct nh *n = nh_get(r->pl->nt, nh);
    return !(n && n->s.type == NH_INTERFACE && n->s.vif == v->id);
}

static int arp_in(struct pl_run *r, struct pkt *p, struct pl_result *res, const struct vif *v)
{
    const uint8_t *a = pkt_data(p) + p->l3_off;
    uint8_t tpa[16], spa[16];
    memcpy(spa, p->src, 16);
    memcpy(tpa, p->dst, 16);
    PL_TRACE(r, arp, vr_get16(a + PKT_ARP_OPER), spa, tpa, 0);
    if (vr_get16(a + PKT_ARP_OPER) != 1 || vr_get32(spa + 12) == 0 || memcmp(spa, tpa, 16) == 0)
        return pl_drop(r, res, v, PL_DROP_ARP_NOT_FOR_US);   /* replies, probes, gratuitous */
    if (v->kind == VIF_VIRTUAL && !pl_vif_owns(v, spa))
        return pl_drop(r, res, v, PL_DROP_SPOOFED_SOURCE);
    if (!pl_is_gw(v, 4, tpa) && !proxied(r, v, 4, tpa))
        return pl_drop(r, res, v, PL_DROP_ARP_NOT_FOR_US);
    local_arp_reply(p, v->mac);
    return pl_reply(r, p, res, v, PL_REPLY_ARP);
}

static int nd_in(struct pl_run *r, struct pkt *p, struct pl_result *res, const struct vif *v)
{
    const uint8_t *icmp = pkt_data(p) + p->l4_off;
    unsigned len = (unsigned)p->l3_off + pl_ip_len(p) - p->l4_off;
    if (icmp[0] != 135 || icmp[1] != 0 || p->ttl != 255 || len < 24) {
        PL_TRACE(r, nd, icmp, p->ttl, 0);
        return pl_drop(r, res, v, PL_DROP_ND_NOT_FOR_US);
    }
    uint8_t target[16];
    memcpy(target, icmp + 8, 16);
    PL_TRACE(r, nd, icmp, p->ttl, 1);
    static const uint8_t unspecified[16];
    if (memcmp(p->src, unspecified, 16) == 0 || target[0] == 0xff)
        return pl_drop(r, res, v, PL_DROP_ND_NOT_FOR_US);   /* DAD, or nonsense */
    if (!pl_is_gw(v, 6, target) && !proxied(r, v, 6, target))
        return pl_drop(r, res, v, PL_DROP_ND_NOT_FOR_US);
    if (local_nd_advert(p, v->mac, target) < 0)
        return pl_drop(r, res, v, PL_DROP_NO_ROOM);
    return pl_reply(r, p, res, v, PL_REPLY_NA);
}

/* From a pod / VM (or the host vif). 1 = on to the flow stage. */
static int workload_in(struct pl_run *r, struct pkt *p, struct pl_result *res, struct pl_pctx *c)
{
    const struct vif *v = c->ivif;
    if (p->flags & PKT_F_ARP)
        return arp_in(r, p, res, v);
    if (!(p->flags & (PKT_F_IP4 | PKT_F_IP6)))
        return pl_drop(r, res, v, PL_DROP_L2_UNSUPPORTED);
    int fam = pl_family(p);
    if (fam == 6 && p->proto == PKT_PROTO_ICMP6 && (p->flags & PKT_F_L4) && p->dport >= 133 &&
        p->dport <= 137)
        return nd_in(r, p, res, v);
    /* multicast first: a pod's MLD reports and the like come from its
     * link-local address and are not spoofing, just not forwarded */
    if (pl_multicast(fam, p->dst) || (pkt_data(p)[0] & 1))
        return pl_drop(r, res, v, PL_DROP_MULTICAST);
    if (v->kind == VIF_VIRTUAL && !pl_vif_owns(v, p->src))
        return pl_drop(r, res, v, PL_DROP_SPOOFED_SOURCE);
    if (pl_is_gw(v, fam, p->dst)) {
        int echo = (p->flags & PKT_F_L4) && !(p->flags & PKT_F_FRAG) &&
                   ((fam == 4 && p->proto == PKT_PROTO_ICMP && p->dport == 8) ||
                    (fam == 6 && p->proto == PKT_PROTO_ICMP6 && p->dport == 128));
        if (!echo)
            return pl_drop(r, res, v, PL_DROP_TO_GATEWAY);
        PL_TRACE(r, echo);
        local_echo_reply(p, v->mac);
        return pl_reply(r, p, res, v, PL_REPLY_ECHO);
    }
    c->vrf = v->vrf;
    c->from_workload = 1;
    return 1;
}

/* An ARP request inside VXLAN: answered back through the tunnel (local.h),
 * only for addresses of local pods (an INTERFACE route in the VNI's VRF). */
static int vxlan_arp_in(struct pl_run *r, struct pkt *p, struct pl_result *res, const struct vif *v, uint16_t vrf,
                        const struct local_outer *o)
{
    uint16_t op = vr_get16(pkt_data(p) + p->l3_off + PKT_ARP_OPER);
    PL_TRACE(r, arp, op, p->src, p->dst, 1);
    if (op != 1 || vr_get32(p->src + 12) == 0 || memcmp(p->src, p->dst, 16) == 0)
        return pl_drop(r, res, v, PL_DROP_ARP_NOT_FOR_US);
    int why;
    uint32_t nh = pl_resolve(r->pl, r->trace, vrf, 4, p->dst, &why);
    const struct nh *n = nh == LPM_NO_ROUTE ? NULL : nh_get(r->pl->nt, nh);
    if (!n || n->s.type != NH_INTERFACE)
        return pl_drop(r, res, v, PL_DROP_ARP_NOT_FOR_US);
    local_vxlan_arp_reply(p, v->mac, o);
    return pl_reply(r, p, res, v, PL_REPLY_VXLAN_ARP);
}

/* Plain IP from the fabric that is not a tunnel to this node: routed in the
 * fabric vif's VRF (the "fabric VRF": host routes of local pods whose network
 * forwards on the underlay) when that VRF has a route for it, else the
 * node's own traffic (to the host, as before). 1 = on to the flow stage. */
static int fabric_plain_in(struct pl_run *r, struct pkt *p, struct pl_result *res, struct pl_pctx *c)
{
    const struct vif *v = c->ivif;
    if (!(p->flags & (PKT_F_IP4 | PKT_F_IP6)) || pl_vif_owns(v, p->dst) || pl_multicast(pl_family(p), p->dst))
        return pl_to_host(r, p, res);
    int why;
    if (pl_resolve(r->pl, r->trace, v->vrf, pl_family(p), p->dst, &why) == LPM_NO_ROUTE)
        return pl_to_host(r, p, res);
    c->vrf = v->vrf;
    return 1;
}

/* From the fabric: tunnels addressed to this node are opened; the rest is
 * plain IP (fabric_plain_in). 1 = on to the flow stage. */
static int fabric_in(struct pl_run *r, struct pkt *p, struct pl_result *res, struct pl_pctx *c)
{
    const struct vif *v = c->ivif;
    struct nh_table *nt = r->pl->nt;
    if (!(p->flags & (PKT_F_IP4 | PKT_F_IP6)) || p->proto != PKT_PROTO_UDP || !(p->flags & PKT_F_L4) ||
        (p->flags & PKT_F_FRAG) || !pl_vif_owns(v, p->dst) ||
        (p->dport != PL_VXLAN_PORT && p->dport != PL_MPLSOUDP_PORT))
        return fabric_plain_in(r, p, res, c);
    uint32_t id;
    unsigned end;
    struct local_outer o = {p->data_off, p->data_len, p->l3_off, p->l4_off, !!(p->flags & PKT_F_IP4)};
    if (p->dport == PL_VXLAN_PORT) {
        int off = encap_vxlan_inner(p, &id, &end);
        if (off < 0)
            return pl_drop(r, res, v, PL_DROP_BAD_TUNNEL);
        int vrf = vni_lookup(nt, id);
        PL_TRACE(r, decap, NH_ENC_VXLAN, id, vrf);
        if (vrf < 0)
            return pl_drop(r, res, v, PL_DROP_UNKNOWN_VNI);
        p->data_off = (uint16_t)(p->data_off + off);
        p->data_len = (uint16_t)(end - (unsigned)off);
        c->vrf = (uint16_t)vrf;
        c->decap = NH_ENC_VXLAN;
    } else {
        int off = encap_mpls_inner(p, &id, &end);
        if (off < 0)
            return pl_drop(r, res, v, PL_DROP_BAD_TUNNEL);
        uint32_t nh = label_lookup(nt, id);
        const struct nh *n = nh == NH_NONE ? NULL : nh_get(nt, nh);
        PL_TRACE(r, decap, NH_ENC_MPLSOUDP, id, n ? (int)nh : -1);
        if (nh == NH_NONE)
            return pl_drop(r, res, v, PL_DROP_UNKNOWN_LABEL);
        if (!n)
            return pl_drop(r, res, v, PL_DROP_NH_INVALID);
        /* The inner IP packet gets an Ethernet header where the label was
         * (the parser wants one; the next hop rewrites it anyway). */
        uint8_t *f = pkt_data(p);
        uint8_t *eth = f + off - PKT_ETH_LEN;
        memset(eth, 0, 12);
        vr_put16(eth + 12, (f[off] >> 4) == 4 ? PKT_ETH_P_IP4 : PKT_ETH_P_IP6);
        p->data_off = (uint16_t)(p->data_off + off - PKT_ETH_LEN);
        p->data_len = (uint16_t)(end - (unsigned)off + PKT_ETH_LEN);
        if (n->s.type == NH_VRF) {
            c->vrf = n->s.vrf;
        } else {
            const struct vif *ov = n->s.type == NH_INTERFACE ? vif_get(nt, n->s.vif) : NULL;
            c->vrf = ov ? ov->vrf : 0;
            c->forced_nh = nh;
        }
        c->decap = NH_ENC_MPLSOUDP;
    }
    if (pkt_parse_burst(p, 1, r->pl->parse_flags) != 1)
        return pl_drop(r, res, v, p->drop);
    if (p->flags & PKT_F_ARP)
        return c->decap == NH_ENC_VXLAN ? vxlan_arp_in(r, p, res, v, c->vrf, &o)
                                        : pl_drop(r, res, v, PL_DROP_ARP_NOT_FOR_US);
    if (!(p->flags & (PKT_F_IP4 | PKT_F_IP6)))
        return pl_drop(r, res, v, PL_DROP_L2_UNSUPPORTED);
    if (pl_multicast(pl_family(p), p->dst))
        return pl_drop(r, res, v, PL_DROP_MULTICAST);
    return 1;
}

/* 1 = on to the flow stage (key filled). */
static inline int classify(struct pl_run *r, struct pkt *p, struct pl_result *res, struct pl_pctx *c,
                           struct flow_key *k)
{
    const struct vif *v = vif_get(r->pl->nt, p->vif);
    c->ivif = v;
    c->routed_len = 0;
    c->forced_nh = NH_NONE;
    c->from_workload = 0;
    c->decap = 0;
    PL_TRACE(r, vif, p->vif, v);
    if (VR_UNLIKELY(!v))
        return pl_drop(r, res, NULL, PL_DROP_UNKNOWN_VIF);
    c->rx_len = p->data_len;
    PL_TRACE(r, parse, p);
    if (VR_UNLIKELY(v->flags & VIF_F_ADMIN_DOWN))
        return pl_drop(r, res, v, PL_DROP_VIF_DOWN);
    if (VR_UNLIKELY(p->drop != PKT_DROP_NONE))
        return pl_drop(r, res, v, p->drop);
    unsigned vid = (p->flags & PKT_F_VLAN) ? (p->vlan_tci & 0xfffu) : 0;
    if (VR_UNLIKELY(vid != v->vlan))
        return pl_drop(r, res, v, PL_DROP_VLAN_MISMATCH);
    int go = v->kind == VIF_FABRIC ? fabric_in(r, p, res, c) : workload_in(r, p, res, c);
    if (!go)
        return 0;
    if (c->decap)
        PL_TRACE(r, parse, p);   /* the inner packet */
    memcpy(k->src, p->src, 16);
    memcpy(k->dst, p->dst, 16);
    k->sport = p->sport;
    k->dport = p->dport;
    k->vrf = c->vrf;
    k->proto = p->proto;
    k->family = (uint8_t)pl_family(p);
    c->routed_len = p->data_len;
    return 1;
}

uint32_t pl_classify_burst(struct pl_run *r, struct pkt *pkts, struct pl_result *res, struct pl_pctx *c,
                           struct flow_key *keys, uint8_t *which, uint32_t n)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (classify(r, &pkts[i], &res[i], &c[i], &keys[m]))
            which[m++] = (uint8_t)i;
    return m;
}
