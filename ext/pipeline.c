/* The packet pipeline: classify, local answers, flow, route, next hop,
 * rewrite / encapsulate. See pipeline.h for the contract.
 *
 * A burst goes through in two passes. The first classifies every frame (and
 * finishes those that never reach a table: answers, tunnels to decapsulate
 * first, drops) and collects the flow keys of the rest; one bulk flow lookup
 * follows; the second pass forwards each packet from its flow entry, or
 * decides and installs the flow on a miss. Counters go to the worker's own
 * block, so no atomic is taken per packet.
 */
#include "pipeline.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "encap.h"
#include "local.h"
#include "mem.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static inline uint64_t tsc(void) { return __rdtsc(); }
#else
static inline uint64_t tsc(void) { return 0; }
#endif

static const char *const drop_names[PL_DROP__COUNT] = {
#define PL_X(n, s) [PL_DROP_##n] = s,
    PL_DROP_REASONS(PL_X)
#undef PL_X
};

static const char *const reply_names[PL_REPLY__COUNT] = {
#define PL_X(n, s) [PL_REPLY_##n] = s,
    PL_REPLIES(PL_X)
#undef PL_X
};

VR_EXPORT const char *pl_drop_name(int reason)
{
    return reason >= 0 && reason < PL_DROP__COUNT ? drop_names[reason] : "unknown";
}

VR_EXPORT const char *pl_reply_name(int kind)
{
    return kind >= 0 && kind < PL_REPLY__COUNT ? reply_names[kind] : "unknown";
}

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

/* Trace text: "stage key=value ...\n" lines. */
struct tr {
    char *buf;
    size_t cap, len;
};

static void __attribute__((format(printf, 2, 3))) tr_add(struct tr *t, const char *fmt, ...)
{
    if (t->len + 1 >= t->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len = t->len + (size_t)n < t->cap ? t->len + (size_t)n : t->cap - 1;
}

/* One pl_process / pl_trace call. */
struct run {
    struct pipeline *pl;
    struct pl_worker *w;
    int worker;
    uint64_t now;
    struct tr *tr;              /* non-NULL: trace (dry run) */
};

#define TR(r, ...)                                  \
    do {                                            \
        if (VR_UNLIKELY((r)->tr != NULL))           \
            tr_add((r)->tr, __VA_ARGS__);           \
    } while (0)

#define PL_INSTALL_PREFETCH 4   /* misses ahead whose flow buckets are prefetched */

/* Per packet state between the two passes. */
struct pctx {
    const struct vif *ivif;
    uint32_t forced_nh;         /* MPLS label -> next hop: no route lookup */
    uint16_t vrf;
    uint8_t from_workload;      /* TTL decremented, ICMP errors answered */
    uint8_t decap;              /* 0, or NH_ENC_VXLAN / NH_ENC_MPLSOUDP */
    uint16_t rx_len;            /* frame length as received (vif rx counters) */
    uint16_t routed_len;        /* 0, or the length routed in c->vrf (VRF counters) */
};

/* ------------------------------------------------------------ helpers */

static const char *addr_str(int family, const uint8_t a[16], char *out, size_t cap)
{
    return inet_ntop(family == 4 ? AF_INET : AF_INET6, family == 4 ? a + 12 : a, out, (socklen_t)cap);
}

static inline int pkt_family(const struct pkt *p)
{
    return (p->flags & PKT_F_IP4) ? 4 : 6;
}

static inline unsigned ip_len_of(const struct pkt *p)
{
    const uint8_t *ip = pkt_data(p) + p->l3_off;
    return (p->flags & PKT_F_IP4) ? vr_get16(ip + 2) : PKT_IP6_LEN + vr_get16(ip + 4);
}

static inline int mapped_multicast(int family, const uint8_t a[16])
{
    if (family == 4)
        return a[12] >= 224 || (a[12] == 255 && a[13] == 255 && a[14] == 255 && a[15] == 255);
    return a[0] == 0xff;
}

static inline uint64_t be64(const uint8_t *b)
{
    uint64_t x;
    memcpy(&x, b, 8);
    return __builtin_bswap64(x);
}

/* a inside the prefix? Two 64-bit masked compares, no call. */
static inline int prefix_has(const struct vr_prefix *pf, const uint8_t a[16])
{
    unsigned len = pf->len;
    uint64_t mh = len >= 64 ? ~0ull : len ? ~0ull << (64 - len) : 0;
    uint64_t ml = len >= 128 ? ~0ull : len > 64 ? ~0ull << (128 - len) : 0;
    return !(((be64(pf->addr) ^ be64(a)) & mh) | ((be64(pf->addr + 8) ^ be64(a + 8)) & ml));
}

static int vif_owns(const struct vif *v, const uint8_t a[16])
{
    if (!v->n_prefixes)
        return 1;
    for (unsigned i = 0; i < v->n_prefixes; i++)
        if (prefix_has(&v->prefixes[i], a))
            return 1;
    return 0;
}

static inline int is_gw(const struct vif *v, int family, const uint8_t a[16])
{
    return family == 4 ? v->has_gw4 && memcmp(v->gw4, a + 12, 4) == 0
                       : v->has_gw6 && memcmp(v->gw6, a, 16) == 0;
}

/* ------------------------------------------------------------ finishing */

static int drop(struct run *r, struct pl_result *res, const struct vif *ivif, int reason)
{
    res->verdict = PL_DROP;
    res->reason = (uint8_t)reason;
    res->out_vif = VIF_NONE;
    r->w->st.drops[reason]++;
    if (ivif)
        r->w->vif[ivif->id].drops++;
    TR(r, "result verdict=drop reason=%s\n", drop_names[reason]);
    return 0;
}

static int to_host(struct run *r, struct pkt *p, struct pl_result *res)
{
    res->verdict = PL_HOST;
    res->reason = 0;
    res->out_vif = VIF_NONE;
    TR(r, "result verdict=host len=%u\n", p->data_len);
    return 0;
}

static int reply(struct run *r, struct pkt *p, struct pl_result *res, const struct vif *v, int kind)
{
    res->verdict = PL_REPLY;
    res->reason = (uint8_t)kind;
    res->out_vif = v->id;
    r->w->st.reply[kind]++;
    TR(r, "result verdict=reply kind=%s out_vif=%u len=%u\n", reply_names[kind], v->id, p->data_len);
    return 0;
}

static int forward(struct run *r, struct pkt *p, struct pl_result *res, uint16_t out)
{
    res->verdict = PL_FORWARD;
    res->reason = 0;
    res->out_vif = out;
    TR(r, "result verdict=forward out_vif=%u len=%u\n", out, p->data_len);
    return 0;
}

/* ------------------------------------------------------------ routes */

static inline uint32_t lpm_lookup(const struct pipeline *pl, uint16_t vrf, int family, const uint8_t a[16])
{
    return family == 4 ? lpm4_lookup(pl->l4, vrf, vr_get32(a + 12)) : lpm6_lookup(pl->l6, vrf, a);
}

/* Trace only: name the route that matched (reads the writer's RIB: pl_trace
 * runs on the writer thread). */
static void tr_route(struct run *r, uint16_t vrf, int family, const uint8_t a[16], uint32_t nh)
{
    char s[INET6_ADDRSTRLEN];
    if (nh == LPM_NO_ROUTE) {
        TR(r, "route vrf=%u dst=%s result=no_route\n", vrf, addr_str(family, a, s, sizeof s));
        return;
    }
    uint8_t m[16];
    unsigned bits = family == 4 ? 32 : 128;
    for (int len = (int)bits; len >= 0; len--) {
        uint32_t got;
        int rc;
        if (family == 4) {
            uint32_t x = vr_get32(a + 12), mask = len ? ~0u << (32 - len) : 0;
            rc = lpm4_get(r->pl->l4, vrf, x & mask, (unsigned)len, &got);
            memset(m, 0, 12);
            vr_put32(m + 12, x & mask);
        } else {
            memcpy(m, a, 16);
            for (int b = len; b < 128; b++)
                m[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
            rc = lpm6_get(r->pl->l6, vrf, m, (unsigned)len, &got);
        }
        if (rc == 0) {
            TR(r, "route vrf=%u prefix=%s/%d nh=%u\n", vrf, addr_str(family, m, s, sizeof s), len, got);
            return;
        }
    }
    TR(r, "route vrf=%u nh=%u\n", vrf, nh);
}

/* Route lookup with one level of NH_VRF. LPM_NO_ROUTE, or a next-hop id. */
static uint32_t resolve(struct run *r, uint16_t vrf, int family, const uint8_t a[16], int *reason)
{
    uint32_t nh = lpm_lookup(r->pl, vrf, family, a);
    if (r->tr)
        tr_route(r, vrf, family, a, nh);
    if (nh == LPM_NO_ROUTE) {
        *reason = PL_DROP_NO_ROUTE;
        return nh;
    }
    const struct nh *n = nh_get(r->pl->nt, nh);
    if (n && n->s.type == NH_VRF) {
        uint16_t v2 = n->s.vrf;
        nh = lpm_lookup(r->pl, v2, family, a);
        if (r->tr)
            tr_route(r, v2, family, a, nh);
        if (nh == LPM_NO_ROUTE) {
            *reason = PL_DROP_NO_ROUTE;
            return nh;
        }
        n = nh_get(r->pl->nt, nh);
        if (n && n->s.type == NH_VRF) {
            *reason = PL_DROP_NH_INVALID;   /* a second VRF hop: a loop in the making */
            return LPM_NO_ROUTE;
        }
    }
    return nh;
}

/* An address answered by proxy: routed in the VRF, and not to the asker. */
static int proxied(struct run *r, const struct vif *v, int family, const uint8_t a[16])
{
    int why;
    uint32_t nh = resolve(r, v->vrf, family, a, &why);
    if (nh == LPM_NO_ROUTE)
        return 0;
    const struct nh *n = nh_get(r->pl->nt, nh);
    return !(n && n->s.type == NH_INTERFACE && n->s.vif == v->id);
}

/* ------------------------------------------------------------ pass 1: classify */

static int arp_in(struct run *r, struct pkt *p, struct pl_result *res, const struct vif *v)
{
    const uint8_t *a = pkt_data(p) + p->l3_off;
    uint8_t tpa[16], spa[16];
    memcpy(spa, p->src, 16);
    memcpy(tpa, p->dst, 16);
    char s[INET6_ADDRSTRLEN], t[INET6_ADDRSTRLEN];
    TR(r, "arp op=%u sender=%s target=%s\n", vr_get16(a + PKT_ARP_OPER), addr_str(4, spa, s, sizeof s),
       addr_str(4, tpa, t, sizeof t));
    if (vr_get16(a + PKT_ARP_OPER) != 1 || vr_get32(spa + 12) == 0 || memcmp(spa, tpa, 16) == 0)
        return drop(r, res, v, PL_DROP_ARP_NOT_FOR_US);   /* replies, probes, gratuitous */
    if (v->kind == VIF_VIRTUAL && !vif_owns(v, spa))
        return drop(r, res, v, PL_DROP_SPOOFED_SOURCE);
    if (!is_gw(v, 4, tpa) && !proxied(r, v, 4, tpa))
        return drop(r, res, v, PL_DROP_ARP_NOT_FOR_US);
    local_arp_reply(p, v->mac);
    return reply(r, p, res, v, PL_REPLY_ARP);
}

static int nd_in(struct run *r, struct pkt *p, struct pl_result *res, const struct vif *v)
{
    const uint8_t *icmp = pkt_data(p) + p->l4_off;
    unsigned len = (unsigned)p->l3_off + ip_len_of(p) - p->l4_off;
    char s[INET6_ADDRSTRLEN];
    if (icmp[0] != 135 || icmp[1] != 0 || p->ttl != 255 || len < 24) {
        TR(r, "nd type=%u code=%u hop_limit=%u\n", icmp[0], icmp[1], p->ttl);
        return drop(r, res, v, PL_DROP_ND_NOT_FOR_US);
    }
    uint8_t target[16];
    memcpy(target, icmp + 8, 16);
    TR(r, "nd type=neighbour_solicitation target=%s\n", addr_str(6, target, s, sizeof s));
    static const uint8_t unspecified[16];
    if (memcmp(p->src, unspecified, 16) == 0 || target[0] == 0xff)
        return drop(r, res, v, PL_DROP_ND_NOT_FOR_US);   /* DAD, or nonsense */
    if (!is_gw(v, 6, target) && !proxied(r, v, 6, target))
        return drop(r, res, v, PL_DROP_ND_NOT_FOR_US);
    if (local_nd_advert(p, v->mac, target) < 0)
        return drop(r, res, v, PL_DROP_NO_ROOM);
    return reply(r, p, res, v, PL_REPLY_NA);
}

/* From a pod / VM (or the host vif). 1 = on to the flow stage. */
static int workload_in(struct run *r, struct pkt *p, struct pl_result *res, struct pctx *c)
{
    const struct vif *v = c->ivif;
    if (p->flags & PKT_F_ARP)
        return arp_in(r, p, res, v);
    if (!(p->flags & (PKT_F_IP4 | PKT_F_IP6)))
        return drop(r, res, v, PL_DROP_L2_UNSUPPORTED);
    int fam = pkt_family(p);
    if (fam == 6 && p->proto == PKT_PROTO_ICMP6 && (p->flags & PKT_F_L4) && p->dport >= 133 &&
        p->dport <= 137)
        return nd_in(r, p, res, v);
    /* multicast first: a pod's MLD reports and the like come from its
     * link-local address and are not spoofing, just not forwarded */
    if (mapped_multicast(fam, p->dst) || (pkt_data(p)[0] & 1))
        return drop(r, res, v, PL_DROP_MULTICAST);
    if (v->kind == VIF_VIRTUAL && !vif_owns(v, p->src))
        return drop(r, res, v, PL_DROP_SPOOFED_SOURCE);
    if (is_gw(v, fam, p->dst)) {
        int echo = (p->flags & PKT_F_L4) && !(p->flags & PKT_F_FRAG) &&
                   ((fam == 4 && p->proto == PKT_PROTO_ICMP && p->dport == 8) ||
                    (fam == 6 && p->proto == PKT_PROTO_ICMP6 && p->dport == 128));
        if (!echo)
            return drop(r, res, v, PL_DROP_TO_GATEWAY);
        TR(r, "local echo_request to=gateway\n");
        local_echo_reply(p, v->mac);
        return reply(r, p, res, v, PL_REPLY_ECHO);
    }
    c->vrf = v->vrf;
    c->from_workload = 1;
    return 1;
}

/* Where the outer headers of a tunnel packet were, once it is decapsulated. */
struct outer {
    unsigned off, len, l3, l4;
    int v4;
};

/* An ARP request inside VXLAN (a remote VTEP, e.g. a Linux vxlan device,
 * resolving one of our pods): answered by sending the packet back where it
 * came from: outer addresses swapped, inner ARP turned into the reply. Only
 * for addresses of local pods (an INTERFACE route in the VNI's VRF). */
static int vxlan_arp(struct run *r, struct pkt *p, struct pl_result *res, const struct vif *v, uint16_t vrf,
                     const struct outer *o)
{
    const uint8_t *a = pkt_data(p) + p->l3_off;
    char s[INET6_ADDRSTRLEN];
    TR(r, "arp op=%u target=%s in=vxlan\n", vr_get16(a + PKT_ARP_OPER), addr_str(4, p->dst, s, sizeof s));
    if (vr_get16(a + PKT_ARP_OPER) != 1 || vr_get32(p->src + 12) == 0 || memcmp(p->src, p->dst, 16) == 0)
        return drop(r, res, v, PL_DROP_ARP_NOT_FOR_US);
    int why;
    uint32_t nh = resolve(r, vrf, 4, p->dst, &why);
    const struct nh *n = nh == LPM_NO_ROUTE ? NULL : nh_get(r->pl->nt, nh);
    if (!n || n->s.type != NH_INTERFACE)
        return drop(r, res, v, PL_DROP_ARP_NOT_FOR_US);
    local_arp_reply(p, v->mac);
    uint8_t *f = p->buf + o->off, *ip = f + o->l3, *udp = f + o->l4;
    memcpy(f, f + 6, 6);
    memcpy(f + 6, v->mac, 6);
    if (o->v4) {
        uint8_t t[4];
        memcpy(t, ip + 12, 4);
        memcpy(ip + 12, ip + 16, 4);
        memcpy(ip + 16, t, 4);
        ip[8] = LOCAL_TTL;
        vr_put16(ip + 10, 0);
        vr_put16(ip + 10, pkt_ip4_csum(ip, (ip[0] & 0xfu) * 4));
        vr_put16(udp + 6, 0);
    } else {
        uint8_t t[16];
        memcpy(t, ip + 8, 16);
        memcpy(ip + 8, ip + 24, 16);
        memcpy(ip + 24, t, 16);
        ip[7] = LOCAL_TTL;
        unsigned ulen = vr_get16(udp + 4);
        vr_put16(udp + 6, 0);
        uint16_t c = (uint16_t)~pkt_csum_fold(
            pkt_csum_add(udp, ulen, pkt_pseudo_sum(6, ip + 8, ip + 24, PKT_PROTO_UDP, ulen)));
        vr_put16(udp + 6, c ? c : 0xffff);
    }
    p->data_off = (uint16_t)o->off;
    p->data_len = (uint16_t)o->len;
    return reply(r, p, res, v, PL_REPLY_VXLAN_ARP);
}

/* From the fabric: tunnels addressed to this node are opened; the rest is
 * the node's own traffic. 1 = on to the flow stage. */
static int fabric_in(struct run *r, struct pkt *p, struct pl_result *res, struct pctx *c)
{
    const struct vif *v = c->ivif;
    struct nh_table *nt = r->pl->nt;
    if (!(p->flags & (PKT_F_IP4 | PKT_F_IP6)) || p->proto != PKT_PROTO_UDP || !(p->flags & PKT_F_L4) ||
        (p->flags & PKT_F_FRAG) || !vif_owns(v, p->dst) ||
        (p->dport != PL_VXLAN_PORT && p->dport != PL_MPLSOUDP_PORT))
        return to_host(r, p, res);
    uint32_t id;
    unsigned end;
    struct outer o = {p->data_off, p->data_len, p->l3_off, p->l4_off, !!(p->flags & PKT_F_IP4)};
    if (p->dport == PL_VXLAN_PORT) {
        int off = encap_vxlan_inner(p, &id, &end);
        if (off < 0)
            return drop(r, res, v, PL_DROP_BAD_TUNNEL);
        int vrf = vni_lookup(nt, id);
        TR(r, "decap encap=vxlan vni=%u vrf=%d\n", id, vrf);
        if (vrf < 0)
            return drop(r, res, v, PL_DROP_UNKNOWN_VNI);
        p->data_off = (uint16_t)(p->data_off + off);
        p->data_len = (uint16_t)(end - (unsigned)off);
        c->vrf = (uint16_t)vrf;
        c->decap = NH_ENC_VXLAN;
    } else {
        int off = encap_mpls_inner(p, &id, &end);
        if (off < 0)
            return drop(r, res, v, PL_DROP_BAD_TUNNEL);
        uint32_t nh = label_lookup(nt, id);
        const struct nh *n = nh == NH_NONE ? NULL : nh_get(nt, nh);
        TR(r, "decap encap=mplsoudp label=%u nh=%d\n", id, n ? (int)nh : -1);
        if (nh == NH_NONE)
            return drop(r, res, v, PL_DROP_UNKNOWN_LABEL);
        if (!n)
            return drop(r, res, v, PL_DROP_NH_INVALID);
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
        return drop(r, res, v, p->drop);
    if (p->flags & PKT_F_ARP)
        return c->decap == NH_ENC_VXLAN ? vxlan_arp(r, p, res, v, c->vrf, &o)
                                        : drop(r, res, v, PL_DROP_ARP_NOT_FOR_US);
    if (!(p->flags & (PKT_F_IP4 | PKT_F_IP6)))
        return drop(r, res, v, PL_DROP_L2_UNSUPPORTED);
    if (mapped_multicast(pkt_family(p), p->dst))
        return drop(r, res, v, PL_DROP_MULTICAST);
    return 1;
}

static void tr_packet(struct run *r, const struct pkt *p)
{
    char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
    if (p->flags & (PKT_F_IP4 | PKT_F_IP6))
        TR(r, "parse family=ipv%d proto=%u src=%s dst=%s sport=%u dport=%u ttl=%u len=%u\n",
           pkt_family(p), p->proto, addr_str(pkt_family(p), p->src, s, sizeof s),
           addr_str(pkt_family(p), p->dst, d, sizeof d), p->sport, p->dport, p->ttl, p->data_len);
    else
        TR(r, "parse ethertype=0x%04x len=%u%s%s\n", p->ethertype, p->data_len,
           p->drop ? " drop=" : "", p->drop ? pkt_drop_name(p->drop) : "");
}

static const char *const kind_names[] = {"?", "virtual", "fabric", "host"};

/* 1 = on to the flow stage (key filled). */
static int classify(struct run *r, struct pkt *p, struct pl_result *res, struct pctx *c,
                    struct flow_key *k)
{
    const struct vif *v = vif_get(r->pl->nt, p->vif);
    c->ivif = v;
    c->routed_len = 0;
    c->forced_nh = NH_NONE;
    c->from_workload = 0;
    c->decap = 0;
    if (VR_UNLIKELY(!v)) {
        TR(r, "vif id=%u result=unknown\n", p->vif);
        return drop(r, res, NULL, PL_DROP_UNKNOWN_VIF);
    }
    c->rx_len = p->data_len;
    TR(r, "vif id=%u kind=%s vrf=%u\n", v->id, kind_names[v->kind & 3], v->vrf);
    if (r->tr)
        tr_packet(r, p);
    if (VR_UNLIKELY(v->flags & VIF_F_ADMIN_DOWN))
        return drop(r, res, v, PL_DROP_VIF_DOWN);
    if (VR_UNLIKELY(p->drop != PKT_DROP_NONE))
        return drop(r, res, v, p->drop);
    unsigned vid = (p->flags & PKT_F_VLAN) ? (p->vlan_tci & 0xfffu) : 0;
    if (VR_UNLIKELY(vid != v->vlan))
        return drop(r, res, v, PL_DROP_VLAN_MISMATCH);
    int go = v->kind == VIF_FABRIC ? fabric_in(r, p, res, c) : workload_in(r, p, res, c);
    if (!go)
        return 0;
    if (r->tr && c->decap)
        tr_packet(r, p);
    memcpy(k->src, p->src, 16);
    memcpy(k->dst, p->dst, 16);
    k->sport = p->sport;
    k->dport = p->dport;
    k->vrf = c->vrf;
    k->proto = p->proto;
    k->family = (uint8_t)pkt_family(p);
    c->routed_len = p->data_len;
    return 1;
}

/* ------------------------------------------------------------ pass 2: forward */

/* The member of an ECMP next hop for this flow: the slot the flow recorded,
 * unless that member has gone; then one of the live ones by flow hash (so
 * removing a member moves only the flows that were on it). */
static const struct nh *ecmp_member(struct run *r, const struct nh *n, unsigned slot, uint32_t h,
                                    uint32_t flow_idx)
{
    uint32_t m = slot < n->s.n_members ? n->s.members[slot] : NH_NONE;
    if (m == NH_NONE) {
        if (!n->n_live)
            return NULL;
        slot = n->live[h % n->n_live];
        m = n->s.members[slot];
        /* the flow stays on its new member, even when the old one returns */
        if (flow_idx != FLOW_NONE && !r->tr)
            flow_set_ecmp(r->pl->ft, flow_idx, (uint8_t)slot);
    }
    TR(r, "ecmp slot=%u member=%u live=%u\n", slot, m, n->n_live);
    return nh_get(r->pl->nt, m);
}

static int too_big(struct run *r, struct pkt *p, struct pl_result *res, struct pctx *c, unsigned mtu)
{
    TR(r, "mtu limit=%u len=%u\n", mtu, ip_len_of(p));
    int df = (p->flags & PKT_F_IP6) || (pkt_data(p)[p->l3_off + 6] & 0x40);
    if (!c->from_workload || !df)
        return drop(r, res, c->ivif, PL_DROP_TOO_BIG);
    int rc = local_icmp_error(p, c->ivif, LOCAL_TOO_BIG, mtu);
    if (rc == -2)
        return drop(r, res, c->ivif, PL_DROP_NO_ROOM);
    if (rc < 0)
        return drop(r, res, c->ivif, PL_DROP_TOO_BIG);
    return reply(r, p, res, c->ivif, PL_REPLY_TOO_BIG);
}

static int ttl_expired(struct run *r, struct pkt *p, struct pl_result *res, struct pctx *c)
{
    TR(r, "ttl value=%u result=expired\n", p->ttl);
    int rc = local_icmp_error(p, c->ivif, LOCAL_TIME_EXCEEDED, 0);
    if (rc == -2)
        return drop(r, res, c->ivif, PL_DROP_NO_ROOM);
    if (rc < 0)
        return drop(r, res, c->ivif, PL_DROP_TTL_EXPIRED);
    return reply(r, p, res, c->ivif, PL_REPLY_TIME_EXCEEDED);
}

static const char *const nh_type_names[] = {"?", "discard", "receive", "interface", "tunnel", "ecmp", "vrf"};

static void tr_nh(struct run *r, uint32_t id, const struct nh *n)
{
    if (!r->tr)
        return;
    if (!n) {
        TR(r, "nexthop id=%u result=missing\n", id);
        return;
    }
    char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
    const struct nh_spec *x = &n->s;
    switch (x->type) {
    case NH_INTERFACE:
        TR(r, "nexthop id=%u type=interface vif=%u dmac=%02x:%02x:%02x:%02x:%02x:%02x\n", id, x->vif,
           x->dmac[0], x->dmac[1], x->dmac[2], x->dmac[3], x->dmac[4], x->dmac[5]);
        break;
    case NH_TUNNEL: {
        uint8_t a[16] = {0}, b[16] = {0};
        if (x->family == 4) {
            memcpy(a + 12, x->src, 4);
            memcpy(b + 12, x->dst, 4);
        } else {
            memcpy(a, x->src, 16);
            memcpy(b, x->dst, 16);
        }
        TR(r, "nexthop id=%u type=tunnel encap=%s %s=%u src=%s dst=%s vif=%u\n", id,
           x->encap == NH_ENC_VXLAN ? "vxlan" : "mplsoudp", x->encap == NH_ENC_VXLAN ? "vni" : "label",
           x->label, addr_str(x->family, a, s, sizeof s), addr_str(x->family, b, d, sizeof d), x->vif);
        break;
    }
    default:
        TR(r, "nexthop id=%u type=%s\n", id, nh_type_names[x->type <= NH_VRF ? x->type : 0]);
    }
}

/* The checks before a packet leaves on vif ov, `over` bytes of tunnel header
 * counted against its MTU: 1 = go on (TTL decremented when routed from a
 * workload), 0 = the packet was dropped or answered. */
static inline int may_leave(struct run *r, struct pkt *p, struct pl_result *res, struct pctx *c,
                            const struct vif *ov, unsigned over, unsigned ip_len)
{
    if (VR_UNLIKELY(!ov || (ov->flags & VIF_F_ADMIN_DOWN)))
        return drop(r, res, c->ivif, PL_DROP_VIF_DOWN);
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
static int out_nh(struct run *r, struct pkt *p, struct pl_result *res, struct pctx *c, uint32_t h,
                  uint32_t id, unsigned slot, uint32_t flow_idx)
{
    struct nh_table *nt = r->pl->nt;
    const struct nh *n = nh_get(nt, id);
    tr_nh(r, id, n);
    if (n && n->s.type == NH_ECMP) {
        n = ecmp_member(r, n, slot, h, flow_idx);
        if (n)
            tr_nh(r, n->s.id, n);
    }
    if (VR_UNLIKELY(!n))
        return drop(r, res, c->ivif, PL_DROP_NH_INVALID);
    unsigned l3 = (unsigned)p->data_off + p->l3_off;
    unsigned ip_len = ip_len_of(p);
    uint16_t ethertype = (p->flags & PKT_F_IP4) ? PKT_ETH_P_IP4 : PKT_ETH_P_IP6;

    switch (n->s.type) {
    case NH_INTERFACE: {
        const struct vif *ov = vif_get(nt, n->s.vif);
        if (!may_leave(r, p, res, c, ov, 0, ip_len))
            return 0;
        if (VR_UNLIKELY(l3 < n->hdr_len))
            return drop(r, res, c->ivif, PL_DROP_NO_ROOM);
        unsigned start = l3 - n->hdr_len;
        vr_copy_small(p->buf + start, n->hdr, n->hdr_len);
        vr_put16(p->buf + l3 - 2, ethertype);
        p->data_off = (uint16_t)start;
        p->data_len = (uint16_t)(n->hdr_len + ip_len);
        return forward(r, p, res, ov->id);
    }
    case NH_TUNNEL: {
        const struct vif *fv = vif_get(nt, n->s.vif);
        if (!may_leave(r, p, res, c, fv, encap_mtu_overhead(n), ip_len))
            return 0;
        uint16_t sport = encap_sport(h);
        if (VR_UNLIKELY(encap_push(p, n, l3, ip_len, ethertype, sport) < 0))
            return drop(r, res, c->ivif, PL_DROP_NO_ROOM);
        if (n->s.encap == NH_ENC_VXLAN)
            r->w->st.encap_vxlan++;
        else
            r->w->st.encap_mpls++;
        TR(r, "encap %s=%u sport=%u outer_len=%u\n", n->s.encap == NH_ENC_VXLAN ? "vni" : "label",
           n->s.label, sport, p->data_len);
        return forward(r, p, res, fv->id);
    }
    case NH_DISCARD:
        return drop(r, res, c->ivif, PL_DROP_DISCARD);
    case NH_RECEIVE:
        return to_host(r, p, res);
    default:   /* a VRF next hop in a flow, or nested ECMP */
        return drop(r, res, c->ivif, PL_DROP_NH_INVALID);
    }
}

/* Rule ids in traces: -1 = no list applied, -2 = the list's default. */
static inline int tr_rule(uint32_t id)
{
    return id == POL_RULE_NONE ? -1 : id == POL_RULE_DEFAULT ? -2 : (int)id;
}

static void tr_policy(struct run *r, uint16_t vif, const char *dir, const struct pol_result *pr)
{
    TR(r, "policy vif=%u direction=%s rule=%d action=%s\n", vif, dir, tr_rule(pr->rule_id),
       pr->action == POL_PASS ? "pass" : "deny");
}

/* The ECMP slot a new flow takes on next hop id (0 if not ECMP). */
static unsigned ecmp_pick(struct run *r, uint32_t id, uint32_t h)
{
    const struct nh *n = id == LPM_NO_ROUTE ? NULL : nh_get(r->pl->nt, id);
    if (!n || n->s.type != NH_ECMP || !n->n_live)
        return 0;
    return n->live[h % n->n_live];
}

/* Flow miss: route, policy, install the pair. 0 with *nh / *slot set (and
 * *touch = the new forward entry), or -1 when the packet was dropped. */
static int decide(struct run *r, struct pl_result *res, struct pctx *c, const struct flow_key *k,
                  uint32_t h, uint32_t *nh_out, unsigned *slot_out, uint32_t *touch)
{
    struct pipeline *pl = r->pl;
    const struct vif *iv = c->ivif;
    uint32_t gen = pol_generation(pl->pt);   /* before evaluating: a change after it re-validates */
    int why = PL_DROP_NO_ROUTE;
    uint32_t nh = c->forced_nh != NH_NONE ? c->forced_nh : resolve(r, c->vrf, k->family, k->dst, &why);
    if (nh == LPM_NO_ROUTE)
        return drop(r, res, iv, why) - 1;
    const struct nh *n = nh_get(pl->nt, nh);
    if (!n)
        return tr_nh(r, nh, n), drop(r, res, iv, PL_DROP_NH_INVALID) - 1;
    unsigned slot = ecmp_pick(r, nh, h);
    const struct nh *fin = n->s.type == NH_ECMP ? nh_get(pl->nt, n->s.members[slot]) : n;

    struct pol_result pr = {POL_RULE_NONE, POL_PASS, 0, 0};
    if (iv->flags & VIF_F_POLICY) {
        pol_eval(pl->pt, k, iv->id, POL_DIR_IN, &pr);
        tr_policy(r, iv->id, "in", &pr);
    }
    const struct vif *dv = fin && fin->s.type == NH_INTERFACE ? vif_get(pl->nt, fin->s.vif) : NULL;
    if (pr.action == POL_PASS && dv && (dv->flags & VIF_F_POLICY)) {
        pol_eval_vif(pl->pt, k, dv->id, POL_DIR_OUT, &pr);
        tr_policy(r, dv->id, "out", &pr);
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
    struct tr *t = r->tr;
    r->tr = NULL;   /* the reverse lookup shows as rev_nh on the flow line */
    uint32_t rev = resolve(r, rvrf, k->family, k->src, &ignore);
    r->tr = t;
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
    if (r->tr) {
        TR(r, "flow install=dry_run nh=%u rev_nh=%d\n", nh, rev == LPM_NO_ROUTE ? -1 : (int)rev);
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
            return drop(r, res, iv, reason == FLOW_DROP_VRF_QUOTA ? PL_DROP_FLOW_VRF_QUOTA
                                                                  : PL_DROP_FLOW_VIF_QUOTA) - 1;
        } else {
            return drop(r, res, iv, PL_DROP_FLOW_TABLE_FULL) - 1;
        }
    }
    if (pr.action != POL_PASS)
        return drop(r, res, iv, PL_DROP_POLICY_DENY) - 1;
    *nh_out = nh;
    *slot_out = slot;
    return 0;
}

static void route_one(struct run *r, struct pkt *p, struct pl_result *res, struct pctx *c,
                      const struct flow_key *k, const struct flow_result *fr, uint32_t *touch)
{
    uint32_t nh;
    unsigned slot;
    *touch = FLOW_NONE;
    if (fr->found) {
        r->w->st.flow_hits++;
        *touch = fr->index;
        TR(r, "flow result=hit index=%u nh=%u action=%s rule=%d\n", fr->index, fr->nh,
           fr->action == FLOW_ACT_FORWARD ? "forward" : "drop",
           tr_rule(fr->rule_id));
        if (VR_UNLIKELY(fr->action != FLOW_ACT_FORWARD)) {
            drop(r, res, c->ivif, PL_DROP_POLICY_DENY);
            return;
        }
        nh = fr->nh;
        slot = fr->ecmp;
        if (VR_UNLIKELY(nh == NH_NONE)) {
            /* a reverse entry whose source had no route when the pair was
             * made: route this direction now */
            int why = PL_DROP_NO_ROUTE;
            nh = resolve(r, c->vrf, k->family, k->dst, &why);
            if (nh == LPM_NO_ROUTE) {
                drop(r, res, c->ivif, why);
                return;
            }
            slot = ecmp_pick(r, nh, fr->hash);
        }
    } else {
        r->w->st.flow_misses++;
        TR(r, "flow result=miss\n");
        if (decide(r, res, c, k, fr->hash, &nh, &slot, touch) < 0)
            return;
    }
    out_nh(r, p, res, c, fr->hash, nh, slot, *touch);
}

/* ------------------------------------------------------------ bursts */

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

static uint32_t burst(struct run *r, struct pkt *pkts, struct pl_result *res, uint32_t n)
{
    struct pctx c[PL_BURST];
    struct flow_key keys[PL_BURST];
    struct flow_result fr[PL_BURST];
    uint8_t which[PL_BURST];
    uint32_t touch[PL_BURST], tbytes[PL_BURST];
    uint8_t tflags[PL_BURST];
    struct pl_worker *w = r->w;

    pkt_parse_burst(pkts, n, r->pl->parse_flags);
    w->st.packets += n;
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (classify(r, &pkts[i], &res[i], &c[i], &keys[m]))
            which[m++] = (uint8_t)i;
    if (m) {
        if (!r->tr) {
            flow_lookup_bulk(r->pl->ft, r->worker, keys, m, fr);
        } else {
            struct flow_entry e;
            struct flow_times tm;
            memset(&fr[0], 0, sizeof fr[0]);
            fr[0].hash = flow_hash32(flow_hash(&keys[0]));
            fr[0].index = flow_lookup(r->pl->ft, &keys[0]);
            if (fr[0].index != FLOW_NONE && flow_get(r->pl->ft, fr[0].index, &e, &tm) == 0) {
                fr[0].found = 1;
                fr[0].nh = e.nh;
                fr[0].rule_id = e.rule_id;
                fr[0].action = e.action;
                fr[0].ecmp = e.ecmp;
            }
        }
    }
    uint32_t nt = 0, pf = 0;
    for (uint32_t j = 0; j < m; j++) {
        uint32_t i = which[j];
        /* a miss installs a pair: its four buckets are (mostly) cold */
        for (; pf < m && pf <= j + PL_INSTALL_PREFETCH; pf++)
            if (!fr[pf].found && !r->tr)
                flow_prefetch_insert(r->pl->ft, &keys[pf]);
        uint32_t bytes = ip_len_of(&pkts[i]);
        uint8_t tf = pkts[i].proto == PKT_PROTO_TCP ? pkts[i].tcp_flags : 0;
        route_one(r, &pkts[i], &res[i], &c[i], &keys[j], &fr[j], &touch[nt]);
        if (touch[nt] != FLOW_NONE) {
            tbytes[nt] = bytes;
            tflags[nt] = tf;
            nt++;
        }
    }
    if (nt && !r->tr)
        flow_touch_bulk(r->pl->ft, touch, tbytes, tflags, nt, r->now);

    /* Counters. A burst comes from one queue (mostly one vif, one VRF) and
     * leaves mostly on one vif: runs are summed here and written once. */
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

VR_EXPORT uint32_t pl_process(struct pipeline *pl, int worker, struct pkt *pkts, uint32_t n,
                              struct pl_result *res, uint64_t now)
{
    if (VR_UNLIKELY(worker < 0 || worker >= pl->nworkers))
        return 0;
    struct run r = {pl, &pl->w[worker], worker, now, NULL};
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
    struct tr t = {buf, cap, 0};
    if (cap)
        buf[0] = 0;
    struct run r = {pl, &pl->w[pl->nworkers], 0, now, &t};
    burst(&r, p, res, 1);
    return t.len;
}

/* ------------------------------------------------------------ route changes */

VR_EXPORT uint32_t pl_flows_revalidate(struct pipeline *pl, int vrf, uint32_t *examined)
{
    enum { CHUNK = 256 };
    struct flow_entry e[CHUNK];
    struct flow_times tm[CHUNK];
    uint32_t idx[CHUNK];
    struct run r = {pl, &pl->w[pl->nworkers], 0, 0, NULL};
    uint32_t cursor = 0, deleted = 0, seen = 0, n;
    while ((n = flow_dump(pl->ft, &cursor, e, tm, idx, CHUNK)) > 0) {
        for (uint32_t i = 0; i + 1 < n; i += 2) {   /* forward, reverse of one pair */
            seen += 2;
            if (vrf >= 0 && e[i].key.vrf != vrf && e[i + 1].key.vrf != vrf)
                continue;   /* (the reverse end may sit in the destination's VRF) */
            int stale = 0;
            for (uint32_t j = i; j < i + 2 && !stale; j++) {
                int why;
                uint32_t want = resolve(&r, e[j].key.vrf, e[j].key.family, e[j].key.dst, &why);
                uint32_t have = e[j].nh;
                /* a reverse end made without a route routes itself per packet: stale only
                 * once a route appeared; everything else: stale when the route moved */
                stale = have == NH_NONE ? want != LPM_NO_ROUTE : want != have;
            }
            if (stale && flow_delete_index(pl->ft, pl->nworkers % FLOW_MAX_WORKERS, idx[i]) == 0)
                deleted++;
        }
    }
    if (examined)
        *examined = seen;
    return deleted;
}

/* ------------------------------------------------------------ lifecycle, counters */

VR_EXPORT int pl_create(struct nh_table *nt, struct lpm4 *l4, struct lpm6 *l6, struct flow_table *ft,
                        struct pol_table *pt, int nworkers, unsigned flags, struct pipeline **out)
{
    if (!nt || !l4 || !l6 || !ft || !pt || nworkers < 1 || nworkers > PL_MAX_WORKERS ||
        (flags & ~PL_F_VERIFY_IP4_CSUM))
        return -EINVAL;
    struct pipeline *pl = vr_calloc(1, sizeof *pl);
    if (!pl)
        return -ENOMEM;
    *pl = (struct pipeline){nt, l4, l6, ft, pt, 0, nworkers, NULL};
    if (flags & PL_F_VERIFY_IP4_CSUM)
        pl->parse_flags |= PKT_PARSE_VERIFY_IP4_CSUM;
    pl->w = vr_aligned_alloc(VR_CACHE_LINE, sizeof(struct pl_worker) * (size_t)(nworkers + 1));
    if (!pl->w)
        goto fail;
    memset(pl->w, 0, sizeof(struct pl_worker) * (size_t)(nworkers + 1));
    for (int i = 0; i <= nworkers; i++) {
        /* calloc of this size is fresh zero pages: memory follows the ids in use */
        pl->w[i].vif = vr_calloc(VIF_MAX, sizeof(struct pl_vif_stats));
        pl->w[i].vrf = vr_calloc(PL_VRF_MAX, sizeof(struct pl_vrf_stats));
        if (!pl->w[i].vif || !pl->w[i].vrf)
            goto fail;
    }
    *out = pl;
    return 0;
fail:
    pl_destroy(pl);
    return -ENOMEM;
}

VR_EXPORT void pl_destroy(struct pipeline *pl)
{
    if (!pl)
        return;
    if (pl->w)
        for (int i = 0; i <= pl->nworkers; i++) {
            vr_free(pl->w[i].vif);
            vr_free(pl->w[i].vrf);
        }
    vr_free(pl->w);
    vr_free(pl);
}

VR_EXPORT int pl_workers(const struct pipeline *pl)
{
    return pl->nworkers;
}

VR_EXPORT void pl_stats_clear(struct pipeline *pl)
{
    for (int i = 0; i <= pl->nworkers; i++) {
        memset(&pl->w[i].st, 0, sizeof pl->w[i].st);
        memset(pl->w[i].vif, 0, VIF_MAX * sizeof(struct pl_vif_stats));
        memset(pl->w[i].vrf, 0, PL_VRF_MAX * sizeof(struct pl_vrf_stats));
    }
}

/* Sum arrays of uint64_t counters word by word. */
static void sum_words(uint64_t *dst, const uint64_t *src, size_t words)
{
    for (size_t i = 0; i < words; i++)
        dst[i] += VR_LOAD_RLX(&src[i]);
}

VR_EXPORT void pl_read_stats(const struct pipeline *pl, struct pl_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < pl->nworkers; i++)
        sum_words((uint64_t *)out, (const uint64_t *)&pl->w[i].st, sizeof *out / 8);
}

VR_EXPORT void pl_read_vif_stats(const struct pipeline *pl, uint16_t vif, struct pl_vif_stats *out)
{
    memset(out, 0, sizeof *out);
    if (vif >= VIF_MAX)
        return;
    for (int i = 0; i < pl->nworkers; i++)
        sum_words((uint64_t *)out, (const uint64_t *)&pl->w[i].vif[vif], sizeof *out / 8);
}

VR_EXPORT void pl_read_vrf_stats(const struct pipeline *pl, uint16_t vrf, struct pl_vrf_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < pl->nworkers; i++)
        sum_words((uint64_t *)out, (const uint64_t *)&pl->w[i].vrf[vrf], sizeof *out / 8);
}

VR_EXPORT uint64_t pl_bench_loop(struct pipeline *pl, int worker, struct pkt *pkts, const uint8_t *tmpl,
                                 uint32_t stride, const uint16_t *lens, const uint16_t *vifs, uint32_t n,
                                 uint32_t burst_n, uint32_t iterations, struct pl_result *res, uint64_t now)
{
    uint64_t cycles = 0;
    if (!burst_n)
        return 0;
    for (uint32_t it = 0; it < iterations; it++) {
        for (uint32_t base = 0; base < n; base += burst_n) {
            uint32_t m = n - base < burst_n ? n - base : burst_n;
            for (uint32_t i = base; i < base + m; i++) {
                struct pkt *p = &pkts[i];
                p->data_off = PKT_HEADROOM;
                p->data_len = lens[i];
                p->vif = vifs[i];
                if (lens[i] <= 128)
                    vr_copy_small(p->buf + PKT_HEADROOM, tmpl + (size_t)i * stride, lens[i]);
                else
                    memcpy(p->buf + PKT_HEADROOM, tmpl + (size_t)i * stride, lens[i]);
            }
            uint64_t t0 = tsc();
            pl_process(pl, worker, pkts + base, m, res + base, now);
            cycles += tsc() - t0;
        }
    }
    return cycles;
}

VR_EXPORT uint64_t pl_tsc(void)
{
    return tsc();
}
