/* Pipeline trace: the per-stage records a traced frame leaves (pl_tr_*), and
 * the one formatter that turns them into "stage key=value ..." lines, the
 * text vrouter/pipeline.py parses and vrouter-ctl trace prints. Also the
 * reply-kind names. Writer thread only (pl_tr_route reads the routes' RIB).
 */
#include "pl_priv.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>

static const char *const reply_names[PL_REPLY__COUNT] = {
#define PL_X(n, s) [PL_REPLY_##n] = s,
    PL_REPLIES(PL_X)
#undef PL_X
};

VR_EXPORT const char *pl_reply_name(int kind)
{
    return kind >= 0 && kind < PL_REPLY__COUNT ? reply_names[kind] : "unknown";
}

/* ------------------------------------------------------------ records */

/* The next free record, or NULL when the trace is full (more stages than a
 * frame can go through: the rest is left out). */
static struct pl_tr_rec *push(struct pl_trace *t, enum pl_tr_kind kind)
{
    if (t->n >= PL_TRACE_RECS)
        return NULL;
    struct pl_tr_rec *x = &t->rec[t->n++];
    memset(x, 0, sizeof *x);
    x->kind = (uint8_t)kind;
    return x;
}

void pl_tr_vif(struct pl_trace *t, uint16_t id, const struct vif *v)
{
    struct pl_tr_rec *x = push(t, PL_TR_VIF);
    if (!x)
        return;
    x->vif.id = id;
    x->vif.known = v != NULL;
    if (v) {
        x->vif.kind = v->kind;
        x->vif.vrf = v->vrf;
    }
}

void pl_tr_parse(struct pl_trace *t, const struct pkt *p)
{
    struct pl_tr_rec *x = push(t, PL_TR_PARSE);
    if (!x)
        return;
    x->parse.ip = !!(p->flags & (PKT_F_IP4 | PKT_F_IP6));
    x->parse.family = (uint8_t)pl_family(p);
    x->parse.proto = p->proto;
    x->parse.ttl = p->ttl;
    x->parse.drop = p->drop;
    x->parse.sport = p->sport;
    x->parse.dport = p->dport;
    x->parse.len = p->data_len;
    x->parse.ethertype = p->ethertype;
    memcpy(x->parse.src, p->src, 16);
    memcpy(x->parse.dst, p->dst, 16);
}

void pl_tr_arp(struct pl_trace *t, uint16_t op, const uint8_t spa[16], const uint8_t tpa[16], int vxlan)
{
    struct pl_tr_rec *x = push(t, PL_TR_ARP);
    if (!x)
        return;
    x->arp.op = op;
    x->arp.vxlan = (uint8_t)vxlan;
    memcpy(x->arp.spa, spa, 16);
    memcpy(x->arp.tpa, tpa, 16);
}

void pl_tr_nd(struct pl_trace *t, const uint8_t *icmp, uint8_t hop_limit, int solicit)
{
    struct pl_tr_rec *x = push(t, PL_TR_ND);
    if (!x)
        return;
    x->nd.type = icmp[0];
    x->nd.code = icmp[1];
    x->nd.hop_limit = hop_limit;
    x->nd.solicit = (uint8_t)solicit;
    if (solicit)   /* a valid solicitation holds its target */
        memcpy(x->nd.target, icmp + 8, 16);
}

void pl_tr_echo(struct pl_trace *t)
{
    push(t, PL_TR_ECHO);
}

void pl_tr_decap(struct pl_trace *t, int encap, uint32_t id, int to)
{
    struct pl_tr_rec *x = push(t, PL_TR_DECAP);
    if (!x)
        return;
    x->decap.encap = (uint8_t)encap;
    x->decap.id = id;
    x->decap.to = to;
}

/* Names the route that matched: the longest prefix of a that the writer's
 * RIB holds (len -1: none found). */
void pl_tr_route(struct pl_trace *t, const struct pipeline *pl, uint16_t vrf, int family, const uint8_t a[16],
                 uint32_t nh)
{
    struct pl_tr_rec *x = push(t, PL_TR_ROUTE);
    if (!x)
        return;
    x->route.vrf = vrf;
    x->route.family = (uint8_t)family;
    x->route.nh = nh;
    x->route.len = -1;
    memcpy(x->route.addr, a, 16);
    if (nh == LPM_NO_ROUTE)
        return;
    uint8_t m[16];
    unsigned bits = family == 4 ? 32 : 128;
    for (int len = (int)bits; len >= 0; len--) {
        uint32_t got;
        int rc;
        if (family == 4) {
            uint32_t v = vr_get32(a + 12), mask = len ? ~0u << (32 - len) : 0;
            rc = lpm4_get(pl->l4, vrf, v & mask, (unsigned)len, &got);
            memset(m, 0, 12);
            vr_put32(m + 12, v & mask);
        } else {
            memcpy(m, a, 16);
            for (int b = len; b < 128; b++)
                m[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
            rc = lpm6_get(pl->l6, vrf, m, (unsigned)len, &got);
        }
        if (rc == 0) {
            x->route.len = (int16_t)len;
            x->route.nh = got;
            memcpy(x->route.addr, m, 16);
            return;
        }
    }
}

void pl_tr_flow(struct pl_trace *t, int what, const struct flow_result *fr, uint32_t nh, uint32_t rev)
{
    struct pl_tr_rec *x = push(t, PL_TR_FLOW);
    if (!x)
        return;
    x->flow.what = (uint8_t)what;
    if (what == PL_TR_FLOW_HIT) {
        x->flow.index = fr->index;
        x->flow.nh = fr->nh;
        x->flow.action = fr->action;
        x->flow.rule = fr->rule_id == POL_RULE_NONE ? -1 : fr->rule_id == POL_RULE_DEFAULT ? -2 : (int32_t)fr->rule_id;
    } else if (what == PL_TR_FLOW_DRY_RUN) {
        x->flow.nh = nh;
        x->flow.rev_nh = rev == LPM_NO_ROUTE ? -1 : (int32_t)rev;
    }
}

/* Rule ids in traces: -1 = no list applied, -2 = the list's default. */
void pl_tr_policy(struct pl_trace *t, uint16_t vif, int out, const struct pol_result *pr)
{
    struct pl_tr_rec *x = push(t, PL_TR_POLICY);
    if (!x)
        return;
    x->policy.vif = vif;
    x->policy.out = (uint8_t)out;
    x->policy.pass = pr->action == POL_PASS;
    x->policy.rule = pr->rule_id == POL_RULE_NONE ? -1 : pr->rule_id == POL_RULE_DEFAULT ? -2 : (int32_t)pr->rule_id;
}

void pl_tr_nh(struct pl_trace *t, uint32_t id, const struct nh *n)
{
    struct pl_tr_rec *x = push(t, PL_TR_NH);
    if (!x)
        return;
    x->nh.id = id;
    x->nh.missing = n == NULL;
    if (!n)
        return;
    const struct nh_spec *s = &n->s;
    x->nh.type = s->type;
    x->nh.encap = s->encap;
    x->nh.family = s->family;
    x->nh.vif = s->vif;
    x->nh.label = s->label;
    memcpy(x->nh.dmac, s->dmac, 6);
    if (s->family == 4) {   /* as the trace prints addresses: IPv4 mapped */
        memcpy(x->nh.src + 12, s->src, 4);
        memcpy(x->nh.dst + 12, s->dst, 4);
    } else {
        memcpy(x->nh.src, s->src, 16);
        memcpy(x->nh.dst, s->dst, 16);
    }
}

void pl_tr_ecmp(struct pl_trace *t, unsigned slot, uint32_t member, unsigned live)
{
    struct pl_tr_rec *x = push(t, PL_TR_ECMP);
    if (!x)
        return;
    x->ecmp.slot = slot;
    x->ecmp.member = member;
    x->ecmp.live = live;
}

void pl_tr_ttl(struct pl_trace *t, uint8_t value)
{
    struct pl_tr_rec *x = push(t, PL_TR_TTL);
    if (x)
        x->ttl.value = value;
}

void pl_tr_mtu(struct pl_trace *t, unsigned limit, unsigned len)
{
    struct pl_tr_rec *x = push(t, PL_TR_MTU);
    if (!x)
        return;
    x->mtu.limit = limit;
    x->mtu.len = len;
}

void pl_tr_encap(struct pl_trace *t, const struct nh *n, uint16_t sport, uint16_t outer_len)
{
    struct pl_tr_rec *x = push(t, PL_TR_ENCAP);
    if (!x)
        return;
    x->encap.encap = n->s.encap;
    x->encap.label = n->s.label;
    x->encap.sport = sport;
    x->encap.outer_len = outer_len;
}

void pl_tr_result(struct pl_trace *t, int verdict, int reason, uint16_t out_vif, uint16_t len)
{
    struct pl_tr_rec *x = push(t, PL_TR_RESULT);
    if (!x)
        return;
    x->result.verdict = (uint8_t)verdict;
    x->result.reason = (uint8_t)reason;
    x->result.out_vif = out_vif;
    x->result.len = len;
}

/* ------------------------------------------------------------ the formatter */

struct text {
    char *buf;
    size_t cap, len;
};

static void __attribute__((format(printf, 2, 3))) put(struct text *t, const char *fmt, ...)
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

/* An address as stored in keys and records (IPv4 mapped) in text form. */
static const char *addr(int family, const uint8_t a[16], char *out)
{
    return inet_ntop(family == 4 ? AF_INET : AF_INET6, family == 4 ? a + 12 : a, out, INET6_ADDRSTRLEN);
}

static const char *const vif_kinds[] = {"?", "virtual", "fabric", "host"};
static const char *const nh_types[] = {"?", "discard", "receive", "interface", "tunnel", "ecmp", "vrf"};

static void format_one(struct text *o, const struct pl_tr_rec *x)
{
    char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
    switch ((enum pl_tr_kind)x->kind) {
    case PL_TR_VIF:
        if (!x->vif.known)
            put(o, "vif id=%u result=unknown\n", x->vif.id);
        else
            put(o, "vif id=%u kind=%s vrf=%u\n", x->vif.id, vif_kinds[x->vif.kind & 3], x->vif.vrf);
        break;
    case PL_TR_PARSE: {
        const typeof(x->parse) *p = &x->parse;
        if (p->ip)
            put(o, "parse family=ipv%d proto=%u src=%s dst=%s sport=%u dport=%u ttl=%u len=%u\n", p->family,
                p->proto, addr(p->family, p->src, s), addr(p->family, p->dst, d), p->sport, p->dport, p->ttl,
                p->len);
        else
            put(o, "parse ethertype=0x%04x len=%u%s%s\n", p->ethertype, p->len, p->drop ? " drop=" : "",
                p->drop ? vr_drop_name(p->drop) : "");
        break;
    }
    case PL_TR_ARP:
        if (x->arp.vxlan)
            put(o, "arp op=%u target=%s in=vxlan\n", x->arp.op, addr(4, x->arp.tpa, d));
        else
            put(o, "arp op=%u sender=%s target=%s\n", x->arp.op, addr(4, x->arp.spa, s), addr(4, x->arp.tpa, d));
        break;
    case PL_TR_ND:
        if (x->nd.solicit)
            put(o, "nd type=neighbour_solicitation target=%s\n", addr(6, x->nd.target, s));
        else
            put(o, "nd type=%u code=%u hop_limit=%u\n", x->nd.type, x->nd.code, x->nd.hop_limit);
        break;
    case PL_TR_ECHO:
        put(o, "local echo_request to=gateway\n");
        break;
    case PL_TR_DECAP:
        if (x->decap.encap == NH_ENC_VXLAN)
            put(o, "decap encap=vxlan vni=%u vrf=%d\n", x->decap.id, x->decap.to);
        else
            put(o, "decap encap=mplsoudp label=%u nh=%d\n", x->decap.id, x->decap.to);
        break;
    case PL_TR_ROUTE:
        if (x->route.nh == LPM_NO_ROUTE)
            put(o, "route vrf=%u dst=%s result=no_route\n", x->route.vrf, addr(x->route.family, x->route.addr, d));
        else if (x->route.len >= 0)
            put(o, "route vrf=%u prefix=%s/%d nh=%u\n", x->route.vrf, addr(x->route.family, x->route.addr, d),
                x->route.len, x->route.nh);
        else
            put(o, "route vrf=%u nh=%u\n", x->route.vrf, x->route.nh);
        break;
    case PL_TR_FLOW:
        if (x->flow.what == PL_TR_FLOW_HIT)
            put(o, "flow result=hit index=%u nh=%u action=%s rule=%d\n", x->flow.index, x->flow.nh,
                x->flow.action == FLOW_ACT_FORWARD ? "forward" : "drop", x->flow.rule);
        else if (x->flow.what == PL_TR_FLOW_MISS)
            put(o, "flow result=miss\n");
        else
            put(o, "flow install=dry_run nh=%u rev_nh=%d\n", x->flow.nh, x->flow.rev_nh);
        break;
    case PL_TR_POLICY:
        put(o, "policy vif=%u direction=%s rule=%d action=%s\n", x->policy.vif, x->policy.out ? "out" : "in",
            x->policy.rule, x->policy.pass ? "pass" : "deny");
        break;
    case PL_TR_NH: {
        const typeof(x->nh) *n = &x->nh;
        if (n->missing)
            put(o, "nexthop id=%u result=missing\n", n->id);
        else if (n->type == NH_INTERFACE)
            put(o, "nexthop id=%u type=interface vif=%u dmac=%02x:%02x:%02x:%02x:%02x:%02x\n", n->id, n->vif,
                n->dmac[0], n->dmac[1], n->dmac[2], n->dmac[3], n->dmac[4], n->dmac[5]);
        else if (n->type == NH_TUNNEL)
            put(o, "nexthop id=%u type=tunnel encap=%s %s=%u src=%s dst=%s vif=%u\n", n->id,
                n->encap == NH_ENC_VXLAN ? "vxlan" : "mplsoudp", n->encap == NH_ENC_VXLAN ? "vni" : "label",
                n->label, addr(n->family, n->src, s), addr(n->family, n->dst, d), n->vif);
        else
            put(o, "nexthop id=%u type=%s\n", n->id, nh_types[n->type <= NH_VRF ? n->type : 0]);
        break;
    }
    case PL_TR_ECMP:
        put(o, "ecmp slot=%u member=%u live=%u\n", x->ecmp.slot, x->ecmp.member, x->ecmp.live);
        break;
    case PL_TR_TTL:
        put(o, "ttl value=%u result=expired\n", x->ttl.value);
        break;
    case PL_TR_MTU:
        put(o, "mtu limit=%u len=%u\n", x->mtu.limit, x->mtu.len);
        break;
    case PL_TR_ENCAP:
        put(o, "encap %s=%u sport=%u outer_len=%u\n", x->encap.encap == NH_ENC_VXLAN ? "vni" : "label",
            x->encap.label, x->encap.sport, x->encap.outer_len);
        break;
    case PL_TR_RESULT:
        switch (x->result.verdict) {
        case PL_DROP:
            put(o, "result verdict=drop reason=%s\n", vr_drop_name(x->result.reason));
            break;
        case PL_HOST:
            put(o, "result verdict=host len=%u\n", x->result.len);
            break;
        case PL_REPLY:
            put(o, "result verdict=reply kind=%s out_vif=%u len=%u\n", pl_reply_name(x->result.reason),
                x->result.out_vif, x->result.len);
            break;
        default:
            put(o, "result verdict=forward out_vif=%u len=%u\n", x->result.out_vif, x->result.len);
        }
        break;
    }
}

size_t pl_trace_format(const struct pl_trace *t, char *buf, size_t cap)
{
    struct text o = {buf, cap, 0};
    if (cap)
        buf[0] = 0;
    for (uint32_t i = 0; i < t->n; i++)
        format_one(&o, &t->rec[i]);
    return o.len;
}
