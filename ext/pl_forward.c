/* Pipeline pass 2, forward: each classified packet from its flow entry, or on
 * a miss decided (route, ECMP member, policy) with the forward and reverse
 * flow installed; then TTL, MTU, Ethernet rewrite or tunnel encapsulation.
 * Reader side of every table (a worker, or the writer in pl_trace's dry run);
 * flow pairs are inserted under the flow table's own bucket locks.
 */
#include "pl_priv.h"

#include "encap.h"
#include "local.h"

#define PL_INSTALL_PREFETCH 4   /* misses ahead whose flow buckets are prefetched */

/* The member of an ECMP next hop for this flow: the slot the flow recorded,
 * unless that member has gone; then one of the live ones by flow hash (so
 * removing a member moves only the flows that were on it). */
static const struct nh *ecmp_member(struct pl_run *r, const struct nh *n, unsigned slot, uint32_t h,
                                    uint32_t flow_idx)
{
    uint32_t m = slot < n->s.n_members ? n->s.members[slot] : NH_NONE;
    if (m == NH_NONE) {
        if (!n->n_live)
            return NULL;
        slot = n->live[h % n->n_live];
        m = n->s.members[slot];
        /* the flow stays on its new member, even when the old one returns
         * (not in a trace: that is a dry run) */
        if (flow_idx != FLOW_NONE && !r->trace)
            flow_set_ecmp(r->pl->ft, flow_idx, (uint8_t)slot);
    }
    PL_TRACE(r, ecmp, slot, m, n->n_live);
    return nh_get(r->pl->nt, m);
}

static int too_big(struct pl_run *r, struct pkt *p, struct pl_result *res, struct pl_pctx *c, unsigned mtu)
{
    PL_TRACE(r, mtu, mtu, pl_ip_len(p));
    int df = (p->flags & PKT_F_IP6) || (pkt_data(p)[p->l3_off + 6] & 0x40);
    if (!c->from_workload || !df)
        return pl_drop(r, res, c->ivif, PL_DROP_TOO_BIG);
    int rc = local_icmp_error(p, c->ivif, LOCAL_TOO_BIG, mtu);
    if (rc == -2)
        return pl_drop(r, res, c->ivif, PL_DROP_NO_ROOM);
    if (rc < 0)
        return pl_drop(r, res, c->ivif, PL_DROP_TOO_BIG);
    return pl_reply(r, p, res, c->ivif, PL_REPLY_TOO_BIG);
}

static int ttl_expired(struct pl_run *r, struct pkt *p, struct pl_result *res, struct pl_pctx *c)
{
    PL_TRACE(r, ttl, p->ttl);
    int rc = local_icmp_error(p, c->ivif, LOCAL_TIME_EXCEEDED, 0);
    if (rc == -2)
        return pl_drop(r, res, c->ivif, PL_DROP_NO_ROOM);
    if (rc < 0)
        return pl_drop(r, res, c->ivif, PL_DROP_TTL_EXPIRED);
    return pl_reply(r, p, res, c->ivif, PL_REPLY_TIME_EXCEEDED);
}

/* The checks before a packet leaves on vif ov, `over` bytes of tunnel header
 * counted against its MTU: 1 = go on (TTL decremented when routed from a
 * workload), 0 = the packet was dropped or answered. */
static inline int may_leave(struct pl_run *r, struct pkt *p, struct pl_result *res, struct pl_pctx *c,
                            const struct vif *ov, unsigned over, unsigned ip_len)
{
    if (VR_UNLIKELY(!ov || (ov->flags & VIF_F_ADMIN_DOWN)))
        return pl_drop(r, res, c->ivif, PL_DROP_VIF_DOWN);
    if (c->from_workload && VR_UNLIKELY(p->ttl <= 1))
        return ttl_expired(r, p, res, c), 0;
    unsigned max = ov->mtu > over ? ov->mtu - over : 0;
    if (VR_UNLIKELY(ip_len > max))
        return too_big(r, p, res, c, max), 0;
    if (c->from_workload)
        pkt_ttl_dec(p);
    return 1;
}

/* Send the packet where next hop `id` (ECMP slot `slot`) says. */
static int out_nh(struct pl_run *r, struct pkt *p, struct pl_result *res, struct pl_pctx *c, uint32_t h,
                  uint32_t id, unsigned slot, uint32_t flow_idx)
{
    struct nh_table *nt = r->pl->nt;
    const struct nh *n = nh_get(nt, id);
    PL_TRACE(r, nh, id, n);
    if (n && n->s.type == NH_ECMP) {
        n = ecmp_member(r, n, slot, h, flow_idx);
        if (n)
            PL_TRACE(r, nh, n->s.id, n);
    }
    if (VR_UNLIKELY(!n))
        return pl_drop(r, res, c->ivif, PL_DROP_NH_INVALID);
    unsigned l3 = (unsigned)p->data_off + p->l3_off;
    unsigned ip_len = pl_ip_len(p);
    uint16_t ethertype = (p->flags & PKT_F_IP4) ? PKT_ETH_P_IP4 : PKT_ETH_P_IP6;

    switch (n->s.type) {
    case NH_INTERFACE: {
        const struct vif *ov = vif_get(nt, n->s.vif);
        if (!may_leave(r, p, res, c, ov, 0, ip_len))
            return 0;
        if (VR_UNLIKELY(l3 < n->hdr_len))
            return pl_drop(r, res, c->ivif, PL_DROP_NO_ROOM);
        unsigned start = l3 - n->hdr_len;
        vr_copy_small(p->buf + start, n->hdr, n->hdr_len);
        vr_put16(p->buf + l3 - 2, ethertype);
        p->data_off = (uint16_t)start;
        p->data_len = (uint16_t)(n->hdr_len + ip_len);
        return pl_forward(r, p, res, ov->id);
    }
    case NH_TUNNEL: {
        const struct vif *fv = vif_get(nt, n->s.vif);
        if (!may_leave(r, p, res, c, fv, encap_mtu_overhead(n), ip_len))
            return 0;
        uint16_t sport = encap_sport(h);
        if (VR_UNLIKELY(encap_push(p, n, l3, ip_len, ethertype, sport) < 0))
            return pl_drop(r, res, c->ivif, PL_DROP_NO_ROOM);
        if (n->s.encap == NH_ENC_VXLAN)
            r->w->st.encap_vxlan++;
        else
            r->w->st.encap_mpls++;
        PL_TRACE(r, encap, n, sport, p->data_len);
        return pl_forward(r, p, res, fv->id);
    }
    case NH_DISCARD:
        return pl_drop(r, res, c->ivif, PL_DROP_DISCARD);
    case NH_RECEIVE:
        return pl_to_host(r, p, res);
    default:   /* a VRF next hop in a flow, or nested ECMP */
        return pl_drop(r, res, c->ivif, PL_DROP_NH_INVALID);
    }
}

/* The ECMP slot a new flow takes on next hop id (0 if not ECMP). */
static unsigned ecmp_pick(struct pl_run *r, uint32_t id, uint32_t h)
{
    const struct nh *n = id == LPM_NO_ROUTE ? NULL : nh_get(r->pl->nt, id);
    if (!n || n->s.type != NH_ECMP || !n->n_live)
        return 0;
    return n->live[h % n->n_live];
}

/* Flow miss: route, policy, install the pair. 0 with *nh / *slot set (and
 * *touch = the new forward entry), or -1 when the packet was dropped. */
static int decide(struct pl_run *r, struct pl_result *res, struct pl_pctx *c, const struct flow_key *k,
                  uint32_t h, uint32_t *nh_out, unsigned *slot_out, uint32_t *touch)
{
    struct pipeline *pl = r->pl;
    const struct vif *iv = c->ivif;
    uint32_t gen = pol_generation(pl->pt);   /* before evaluating: a change after it re-validates */
    int why = PL_DROP_NO_ROUTE;
    uint32_t nh = c->forced_nh != NH_NONE ? c->forced_nh : pl_resolve(pl, r->trace, c->vrf, k->family, k->dst, &why);
    if (nh == LPM_NO_ROUTE)
        return pl_drop(r, res, iv, why) - 1;
    const struct nh *n = nh_get(pl->nt, nh);
    if (!n) {
        PL_TRACE(r, nh, nh, n);
        return pl_drop(r, res, iv, PL_DROP_NH_INVALID) - 1;
    }
    unsigned slot = ecmp_pick(r, nh, h);
    const struct nh *fin = n->s.type == NH_ECMP ? nh_get(pl->nt, n->s.members[slot]) : n;

    struct pol_result pr = {POL_RULE_NONE, POL_PASS, 0, 0};
    if (iv->flags & VIF_F_POLICY) {
        pol_eval(pl->pt, k, iv->id, POL_DIR_IN, &pr);
        PL_TRACE(r, policy, iv->id, 0, &pr);
    }
    const struct vif *dv = fin && fin->s.type == NH_INTERFACE ? vif_get(pl->nt, fin->s.vif) : NULL;
    if (pr.action == POL_PASS && dv && (dv->flags & VIF_F_POLICY)) {
        pol_eval_vif(pl->pt, k, dv->id, POL_DIR_OUT, &pr);
        PL_TRACE(r, policy, dv->id, 1, &pr);
    }

    /* The reply comes from the destination: delivered to a local vif of
     * another VRF (a leaked route), it arrives in that vif's VRF, so the
     * reverse entry is keyed and routed there. */
    struct flow_key rk;
    flow_key_reverse(k, &rk);
    uint16_t rvrf = c->vrf;
    if (dv && dv->kind == VIF_VIRTUAL && dv->vrf != c->vrf)
        rk.vrf = rvrf = dv->vrf;
    int ignore;
    /* not recorded: the reverse route shows as rev_nh on the flow line */
    uint32_t rev = pl_resolve(pl, NULL, rvrf, k->family, k->src, &ignore);
    struct flow_install in = {
        .nh = nh,
        .rev_nh = rev == LPM_NO_ROUTE ? NH_NONE : rev,
        .rule_id = pr.rule_id,
        .policy_gen = gen,
        .vif = iv->id,
        .action = pr.action == POL_PASS ? FLOW_ACT_FORWARD : FLOW_ACT_DROP,
        .drop_reason = pr.action == POL_PASS ? FLOW_DROP_NONE : FLOW_DROP_POLICY_DENY,
        .ecmp = (uint8_t)slot,
        .rev_ecmp = (uint8_t)ecmp_pick(r, rev, h),
    };
    if (VR_UNLIKELY(r->trace != NULL)) {
        pl_tr_flow(r->trace, PL_TR_FLOW_DRY_RUN, NULL, nh, rev);   /* a trace installs nothing */
    } else {
        int reason = 0;
        int rc = flow_insert_pair(pl->ft, r->worker, k, &rk, &in, r->now, &reason);
        if (rc >= 0) {
            *touch = (uint32_t)rc;
            r->w->st.flow_installs++;
        } else if (rc == -EEXIST) {
            /* another packet of the burst (or another worker) was first */
            *touch = flow_lookup(pl->ft, k);
        } else if (rc == -EDQUOT) {
            return pl_drop(r, res, iv, reason == FLOW_DROP_VRF_QUOTA ? PL_DROP_FLOW_VRF_QUOTA
                                                                     : PL_DROP_FLOW_VIF_QUOTA) - 1;
        } else {
            return pl_drop(r, res, iv, PL_DROP_FLOW_TABLE_FULL) - 1;
        }
    }
    if (pr.action != POL_PASS)
        return pl_drop(r, res, iv, PL_DROP_POLICY_DENY) - 1;
    *nh_out = nh;
    *slot_out = slot;
    return 0;
}

static inline void route_one(struct pl_run *r, struct pkt *p, struct pl_result *res, struct pl_pctx *c,
                             const struct flow_key *k, const struct flow_result *fr, uint32_t *touch)
{
    uint32_t nh;
    unsigned slot;
    *touch = FLOW_NONE;
    if (fr->found) {
        r->w->st.flow_hits++;
        *touch = fr->index;
        PL_TRACE(r, flow, PL_TR_FLOW_HIT, fr, 0, 0);
        if (VR_UNLIKELY(fr->action != FLOW_ACT_FORWARD)) {
            pl_drop(r, res, c->ivif, PL_DROP_POLICY_DENY);
            return;
        }
        nh = fr->nh;
        slot = fr->ecmp;
        if (VR_UNLIKELY(nh == NH_NONE)) {
            /* a reverse entry whose source had no route when the pair was
             * made: route this direction now */
            int why = PL_DROP_NO_ROUTE;
            nh = pl_resolve(r->pl, r->trace, c->vrf, k->family, k->dst, &why);
            if (nh == LPM_NO_ROUTE) {
                pl_drop(r, res, c->ivif, why);
                return;
            }
            slot = ecmp_pick(r, nh, fr->hash);
        }
    } else {
        r->w->st.flow_misses++;
        PL_TRACE(r, flow, PL_TR_FLOW_MISS, fr, 0, 0);
        if (decide(r, res, c, k, fr->hash, &nh, &slot, touch) < 0)
            return;
    }
    out_nh(r, p, res, c, fr->hash, nh, slot, *touch);
}

uint32_t pl_forward_burst(struct pl_run *r, struct pkt *pkts, struct pl_result *res, struct pl_pctx *c,
                          const struct flow_key *keys, const struct flow_result *fr, const uint8_t *which,
                          uint32_t m, uint32_t *touch, uint32_t *tbytes, uint8_t *tflags)
{
    uint32_t nt = 0, pf = 0;
    for (uint32_t j = 0; j < m; j++) {
        uint32_t i = which[j];
        /* a miss installs a pair: its four buckets are (mostly) cold */
        for (; pf < m && pf <= j + PL_INSTALL_PREFETCH; pf++)
            if (!fr[pf].found && !r->trace)
                flow_prefetch_insert(r->pl->ft, &keys[pf]);
        uint32_t bytes = pl_ip_len(&pkts[i]);
        uint8_t tf = pkts[i].proto == PKT_PROTO_TCP ? pkts[i].tcp_flags : 0;
        route_one(r, &pkts[i], &res[i], &c[i], &keys[j], &fr[j], &touch[nt]);
        if (touch[nt] != FLOW_NONE) {
            tbytes[nt] = bytes;
            tflags[nt] = tf;
            nt++;
        }
    }
    return nt;
}
