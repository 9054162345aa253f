/* The pipeline's private header, shared by its stages (VPP's graph nodes):
 * pipeline.c (the burst driver), pl_classify.c (vif, tunnels opened, local
 * answers), pl_forward.c (flow, route, policy, next hop, rewrite / encap),
 * pl_trace.c (trace records and their one formatter), pl_ctl.c (lifecycle,
 * counters, flow revalidation). Nothing here is API: see pipeline.h.
 *
 * Hot helpers are static inline here so that splitting the stages across
 * files costs no call on the packet path; each stage is entered once per
 * burst. Concurrency: a struct pl_run belongs to one thread (a worker in
 * pl_process, the writer in pl_trace / pl_flows_revalidate).
 */
#ifndef VR_PL_PRIV_H
#define VR_PL_PRIV_H

#include <string.h>

#include "pipeline.h"

struct pl_worker {
    struct pl_stats st;
    struct pl_vif_stats *vif;   /* VIF_MAX */
    struct pl_vrf_stats *vrf;   /* PL_VRF_MAX */
} VR_ALIGNED(VR_CACHE_LINE);

struct pipeline {
    struct nh_table *nt;
    struct lpm4 *l4;
    struct lpm6 *l6;
    struct flow_table *ft;
    struct pol_table *pt;
    unsigned parse_flags;
    int nworkers;
    struct pl_worker *w;        /* nworkers + 1: the last is pl_trace's scratch, never summed */
};

struct pl_trace;

/* One pl_process / pl_trace call. */
struct pl_run {
    struct pipeline *pl;
    struct pl_worker *w;
    int worker;
    uint64_t now;
    struct pl_trace *trace;     /* pl_trace only: records appended here; a dry run */
};

/* Per packet state between the two passes. */
struct pl_pctx {
    const struct vif *ivif;
    uint32_t forced_nh;         /* MPLS label -> next hop: no route lookup */
    uint16_t vrf;
    uint8_t from_workload;      /* TTL decremented, ICMP errors answered */
    uint8_t decap;              /* 0, or NH_ENC_VXLAN / NH_ENC_MPLSOUDP */
    uint16_t rx_len;            /* frame length as received (vif rx counters) */
    uint16_t routed_len;        /* 0, or the length routed in c->vrf (VRF counters) */
};

/* ------------------------------------------------------------ stages (one call per burst) */

/* Pass 1 (pl_classify.c): classify pkts[0..n) (already parsed). Frames that
 * end here (answers, drops, to the host) get their res; the others get
 * their flow key in keys[m] and their index in which[m]. Returns m. */
uint32_t pl_classify_burst(struct pl_run *r, struct pkt *pkts, struct pl_result *res, struct pl_pctx *c,
                           struct flow_key *keys, uint8_t *which, uint32_t n);

/* Pass 2 (pl_forward.c): forward the m classified packets from their flow
 * lookup results fr[] (decide and install the pair on a miss). Writes the
 * flow entries to touch (with the IP length and TCP flags of each packet)
 * and returns how many. */
uint32_t pl_forward_burst(struct pl_run *r, struct pkt *pkts, struct pl_result *res, struct pl_pctx *c,
                          const struct flow_key *keys, const struct flow_result *fr, const uint8_t *which,
                          uint32_t m, uint32_t *touch, uint32_t *tbytes, uint8_t *tflags);

/* ------------------------------------------------------------ trace records (pl_trace.c) */

/* Each stage's decision, recorded as a small struct per stage while a traced
 * frame goes through; pl_trace_format() turns them into the text lines the
 * Python side parses ("stage key=value ..."). */
enum pl_tr_kind {
    PL_TR_VIF, PL_TR_PARSE, PL_TR_ARP, PL_TR_ND, PL_TR_ECHO, PL_TR_DECAP, PL_TR_ROUTE, PL_TR_FLOW,
    PL_TR_POLICY, PL_TR_NH, PL_TR_ECMP, PL_TR_TTL, PL_TR_MTU, PL_TR_ENCAP, PL_TR_RESULT,
};

enum pl_tr_flow { PL_TR_FLOW_HIT, PL_TR_FLOW_MISS, PL_TR_FLOW_DRY_RUN };

struct pl_tr_rec {
    uint8_t kind;   /* enum pl_tr_kind */
    union {
        struct { uint16_t id, vrf; uint8_t kind, known; } vif;
        struct {
            uint8_t ip, family, proto, ttl, drop;
            uint16_t sport, dport, len, ethertype;
            uint8_t src[16], dst[16];
        } parse;
        struct { uint16_t op; uint8_t vxlan; uint8_t spa[16], tpa[16]; } arp;
        struct { uint8_t type, code, hop_limit, solicit; uint8_t target[16]; } nd;
        struct { uint8_t encap; uint32_t id; int32_t to; } decap;            /* to: VRF / next hop */
        struct { uint16_t vrf; uint8_t family; int16_t len; uint32_t nh; uint8_t addr[16]; } route;
        struct { uint8_t what, action; uint32_t index, nh; int32_t rule, rev_nh; } flow;
        struct { uint16_t vif; uint8_t out, pass; int32_t rule; } policy;
        struct {
            uint32_t id, label;
            uint8_t missing, type, encap, family;
            uint16_t vif;
            uint8_t dmac[6];
            uint8_t src[16], dst[16];
        } nh;
        struct { uint32_t slot, member, live; } ecmp;
        struct { uint8_t value; } ttl;
        struct { uint32_t limit, len; } mtu;
        struct { uint8_t encap; uint16_t sport, outer_len; uint32_t label; } encap;
        struct { uint8_t verdict, reason; uint16_t out_vif, len; } result;
    };
};

#define PL_TRACE_RECS 48

struct pl_trace {
    uint32_t n;
    struct pl_tr_rec rec[PL_TRACE_RECS];
};

#define PL_TR_COLD __attribute__((cold, noinline))
PL_TR_COLD void pl_tr_vif(struct pl_trace *t, uint16_t id, const struct vif *v);
PL_TR_COLD void pl_tr_parse(struct pl_trace *t, const struct pkt *p);
PL_TR_COLD void pl_tr_arp(struct pl_trace *t, uint16_t op, const uint8_t spa[16], const uint8_t tpa[16], int vxlan);
PL_TR_COLD void pl_tr_nd(struct pl_trace *t, const uint8_t *icmp, uint8_t hop_limit, int solicit);
PL_TR_COLD void pl_tr_echo(struct pl_trace *t);
PL_TR_COLD void pl_tr_decap(struct pl_trace *t, int encap, uint32_t id, int to);
PL_TR_COLD void pl_tr_route(struct pl_trace *t, const struct pipeline *pl, uint16_t vrf, int family,
                            const uint8_t a[16], uint32_t nh);
PL_TR_COLD void pl_tr_flow(struct pl_trace *t, int what, const struct flow_result *fr, uint32_t nh, uint32_t rev);
PL_TR_COLD void pl_tr_policy(struct pl_trace *t, uint16_t vif, int out, const struct pol_result *pr);
PL_TR_COLD void pl_tr_nh(struct pl_trace *t, uint32_t id, const struct nh *n);
PL_TR_COLD void pl_tr_ecmp(struct pl_trace *t, unsigned slot, uint32_t member, unsigned live);
PL_TR_COLD void pl_tr_ttl(struct pl_trace *t, uint8_t value);
PL_TR_COLD void pl_tr_mtu(struct pl_trace *t, unsigned limit, unsigned len);
PL_TR_COLD void pl_tr_encap(struct pl_trace *t, const struct nh *n, uint16_t sport, uint16_t outer_len);
PL_TR_COLD void pl_tr_result(struct pl_trace *t, int verdict, int reason, uint16_t out_vif, uint16_t len);

/* The records as text: "stage key=value ...\n" lines into buf (NUL-ended,
 * cut at cap). Returns the text length. */
size_t pl_trace_format(const struct pl_trace *t, char *buf, size_t cap);

/* Record a stage's decision when the run is traced (pl_trace); nothing else
 * otherwise, at the cost of one predicted branch. */
#define PL_TRACE(r, stage, ...)                                 \
    do {                                                        \
        if (VR_UNLIKELY((r)->trace != NULL))                    \
            pl_tr_##stage((r)->trace, ##__VA_ARGS__);           \
    } while (0)

/* ------------------------------------------------------------ packet helpers */

static inline int pl_family(const struct pkt *p)
{
    return (p->flags & PKT_F_IP4) ? 4 : 6;
}

/* The IP packet's length (header included), from its header. */
static inline unsigned pl_ip_len(const struct pkt *p)
{
    const uint8_t *ip = pkt_data(p) + p->l3_off;
    return (p->flags & PKT_F_IP4) ? vr_get16(ip + 2) : PKT_IP6_LEN + vr_get16(ip + 4);
}

static inline int pl_multicast(int family, const uint8_t a[16])
{
    if (family == 4)
        return a[12] >= 224 || (a[12] == 255 && a[13] == 255 && a[14] == 255 && a[15] == 255);
    return a[0] == 0xff;
}

static inline uint64_t pl_be64(const uint8_t *b)
{
    uint64_t x;
    memcpy(&x, b, 8);
    return __builtin_bswap64(x);
}

/* a inside the prefix? Two 64-bit masked compares, no call. */
static inline int pl_prefix_has(const struct vr_prefix *pf, const uint8_t a[16])
{
    unsigned len = pf->len;
    uint64_t mh = len >= 64 ? ~0ull : len ? ~0ull << (64 - len) : 0;
    uint64_t ml = len >= 128 ? ~0ull : len > 64 ? ~0ull << (128 - len) : 0;
    return !(((pl_be64(pf->addr) ^ pl_be64(a)) & mh) | ((pl_be64(pf->addr + 8) ^ pl_be64(a + 8)) & ml));
}

static inline int pl_vif_owns(const struct vif *v, const uint8_t a[16])
{
    if (!v->n_prefixes)
        return 1;
    for (unsigned i = 0; i < v->n_prefixes; i++)
        if (pl_prefix_has(&v->prefixes[i], a))
            return 1;
    return 0;
}

static inline int pl_is_gw(const struct vif *v, int family, const uint8_t a[16])
{
    return family == 4 ? v->has_gw4 && memcmp(v->gw4, a + 12, 4) == 0
                       : v->has_gw6 && memcmp(v->gw6, a, 16) == 0;
}

/* ------------------------------------------------------------ routes */

static inline uint32_t pl_lpm_lookup(const struct pipeline *pl, uint16_t vrf, int family, const uint8_t a[16])
{
    return family == 4 ? lpm4_lookup(pl->l4, vrf, vr_get32(a + 12)) : lpm6_lookup(pl->l6, vrf, a);
}

/* Route lookup with one level of NH_VRF: LPM_NO_ROUTE (*reason says why) or
 * a next-hop id. Each lookup is recorded in tr when it is not NULL. */
static inline uint32_t pl_resolve(const struct pipeline *pl, struct pl_trace *tr, uint16_t vrf, int family,
                                  const uint8_t a[16], int *reason)
{
    uint32_t nh = pl_lpm_lookup(pl, vrf, family, a);
    if (VR_UNLIKELY(tr != NULL))
        pl_tr_route(tr, pl, vrf, family, a, nh);
    if (nh == LPM_NO_ROUTE) {
        *reason = PL_DROP_NO_ROUTE;
        return nh;
    }
    const struct nh *n = nh_get(pl->nt, nh);
    if (n && n->s.type == NH_VRF) {
        uint16_t v2 = n->s.vrf;
        nh = pl_lpm_lookup(pl, v2, family, a);
        if (VR_UNLIKELY(tr != NULL))
            pl_tr_route(tr, pl, v2, family, a, nh);
        if (nh == LPM_NO_ROUTE) {
            *reason = PL_DROP_NO_ROUTE;
            return nh;
        }
        n = nh_get(pl->nt, nh);
        if (n && n->s.type == NH_VRF) {
            *reason = PL_DROP_NH_INVALID;   /* a second VRF hop: a loop in the making */
            return LPM_NO_ROUTE;
        }
    }
    return nh;
}

/* ------------------------------------------------------------ finishing a packet (every stage) */

static inline int pl_drop(struct pl_run *r, struct pl_result *res, const struct vif *ivif, int reason)
{
    res->verdict = PL_DROP;
    res->reason = (uint8_t)reason;
    res->out_vif = VIF_NONE;
    r->w->st.drops[reason]++;
    if (ivif)
        r->w->vif[ivif->id].drops++;
    PL_TRACE(r, result, PL_DROP, reason, VIF_NONE, 0);
    return 0;
}

static inline int pl_to_host(struct pl_run *r, struct pkt *p, struct pl_result *res)
{
    res->verdict = PL_HOST;
    res->reason = 0;
    res->out_vif = VIF_NONE;
    PL_TRACE(r, result, PL_HOST, 0, VIF_NONE, p->data_len);
    return 0;
}

static inline int pl_reply(struct pl_run *r, struct pkt *p, struct pl_result *res, const struct vif *v, int kind)
{
    res->verdict = PL_REPLY;
    res->reason = (uint8_t)kind;
    res->out_vif = v->id;
    r->w->st.reply[kind]++;
    PL_TRACE(r, result, PL_REPLY, kind, v->id, p->data_len);
    return 0;
}

static inline int pl_forward(struct pl_run *r, struct pkt *p, struct pl_result *res, uint16_t out)
{
    res->verdict = PL_FORWARD;
    res->reason = 0;
    res->out_vif = out;
    PL_TRACE(r, result, PL_FORWARD, 0, out, p->data_len);
    return 0;
}

#endif
