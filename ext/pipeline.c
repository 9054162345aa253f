/* The pipeline's burst driver: parse, classify (pl_classify.c), one bulk flow
 * lookup, forward (pl_forward.c), flow touch, counters; pl_process and
 * pl_trace. See pipeline.h for the contract and pl_priv.h for the stages.
 * Each worker runs on its own counter block: no atomic per packet.
 */
#include "pl_priv.h"

/* Per burst counters. A burst comes from one queue (mostly one vif, one
 * VRF) and leaves mostly on one vif: runs are summed and written once. */
struct run_ctr {
    uint32_t id;     /* VIF_NONE: nothing pending */
    uint32_t pkts;
    uint64_t bytes;
};

static inline void rx_flush(struct pl_worker *w, struct run_ctr *c, uint32_t next)
{
    if (c->pkts) {
        w->vif[c->id].rx_packets += c->pkts;
        w->vif[c->id].rx_bytes += c->bytes;
    }
    *c = (struct run_ctr){next, 0, 0};
}

static inline void tx_flush(struct pl_worker *w, struct run_ctr *c, uint32_t next)
{
    if (c->pkts) {
        w->vif[c->id].tx_packets += c->pkts;
        w->vif[c->id].tx_bytes += c->bytes;
    }
    *c = (struct run_ctr){next, 0, 0};
}

static inline void vrf_flush(struct pl_worker *w, struct run_ctr *c, uint32_t next)
{
    if (c->pkts) {
        w->vrf[c->id].packets += c->pkts;
        w->vrf[c->id].bytes += c->bytes;
    }
    *c = (struct run_ctr){next, 0, 0};
}

/* A trace's flow lookup: the one key, scalar, from the entry itself. */
static void trace_lookup(struct pl_run *r, const struct flow_key *k, struct flow_result *fr)
{
    struct flow_entry e;
    struct flow_times tm;
    memset(fr, 0, sizeof *fr);
    fr->hash = flow_hash32(flow_hash(k));
    fr->index = flow_lookup(r->pl->ft, k);
    if (fr->index != FLOW_NONE && flow_get(r->pl->ft, fr->index, &e, &tm) == 0) {
        fr->found = 1;
        fr->nh = e.nh;
        fr->rule_id = e.rule_id;
        fr->action = e.action;
        fr->ecmp = e.ecmp;
    }
}

/* Verdict, vif and VRF counters of the burst; returns the frames to send. */
static inline uint32_t count(struct pl_worker *w, const struct pkt *pkts, const struct pl_result *res,
                             const struct pl_pctx *c, uint32_t n)
{
    struct run_ctr rx = {VIF_NONE, 0, 0}, tx = {VIF_NONE, 0, 0}, vrf = {VIF_NONE, 0, 0};
    uint32_t sent = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (c[i].ivif) {
            if (c[i].ivif->id != rx.id)
                rx_flush(w, &rx, c[i].ivif->id);
            rx.pkts++;
            rx.bytes += c[i].rx_len;
        }
        if (c[i].routed_len) {
            if (c[i].vrf != vrf.id)
                vrf_flush(w, &vrf, c[i].vrf);
            vrf.pkts++;
            vrf.bytes += c[i].routed_len;
        }
        switch (res[i].verdict) {
        case PL_FORWARD:
        case PL_REPLY:
            if (res[i].out_vif != tx.id)
                tx_flush(w, &tx, res[i].out_vif);
            tx.pkts++;
            tx.bytes += pkts[i].data_len;
            sent++;
            if (res[i].verdict == PL_FORWARD)
                w->st.forwarded++;
            else
                w->st.replies++;
            break;
        case PL_HOST:
            w->st.to_host++;
            break;
        default:
            w->st.dropped++;
        }
        if (c[i].decap == NH_ENC_VXLAN)
            w->st.decap_vxlan++;
        else if (c[i].decap == NH_ENC_MPLSOUDP)
            w->st.decap_mpls++;
    }
    rx_flush(w, &rx, VIF_NONE);
    tx_flush(w, &tx, VIF_NONE);
    vrf_flush(w, &vrf, VIF_NONE);
    return sent;
}

static uint32_t burst(struct pl_run *r, struct pkt *pkts, struct pl_result *res, uint32_t n)
{
    struct pl_pctx c[PL_BURST];
    struct flow_key keys[PL_BURST];
    struct flow_result fr[PL_BURST];
    uint8_t which[PL_BURST];
    uint32_t touch[PL_BURST], tbytes[PL_BURST];
    uint8_t tflags[PL_BURST];
    struct pl_worker *w = r->w;

    pkt_parse_burst(pkts, n, r->pl->parse_flags);
    w->st.packets += n;
    uint32_t m = pl_classify_burst(r, pkts, res, c, keys, which, n);
    if (m) {
        if (VR_LIKELY(r->trace == NULL))
            flow_lookup_bulk(r->pl->ft, r->worker, keys, m, fr);
        else
            trace_lookup(r, &keys[0], &fr[0]);
    }
    uint32_t nt = pl_forward_burst(r, pkts, res, c, keys, fr, which, m, touch, tbytes, tflags);
    if (nt && VR_LIKELY(r->trace == NULL))
        flow_touch_bulk(r->pl->ft, touch, tbytes, tflags, nt, r->now);
    return count(w, pkts, res, c, n);
}

VR_EXPORT uint32_t pl_process(struct pipeline *pl, int worker, struct pkt *pkts, uint32_t n,
                              struct pl_result *res, uint64_t now)
{
    if (VR_UNLIKELY(worker < 0 || worker >= pl->nworkers))
        return 0;
    struct pl_run r = {pl, &pl->w[worker], worker, now, NULL};
    uint32_t sent = 0;
    for (uint32_t base = 0; base < n; base += PL_BURST) {
        uint32_t m = n - base < PL_BURST ? n - base : PL_BURST;
        sent += burst(&r, pkts + base, res + base, m);
    }
    return sent;
}

VR_EXPORT size_t pl_trace(struct pipeline *pl, struct pkt *p, struct pl_result *res, uint64_t now,
                          char *buf, size_t cap)
{
    struct pl_trace t;
    t.n = 0;
    /* the scratch worker block: its counters are never summed */
    struct pl_run r = {pl, &pl->w[pl->nworkers], 0, now, &t};
    burst(&r, p, res, 1);
    return pl_trace_format(&t, buf, cap);
}
