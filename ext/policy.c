/* Policy compiler and evaluator: writer builds a read-only pol_list (protocol
 * class -> dport intervals -> ordered candidate rules); readers evaluate it
 * lock-free under RCU. Writer calls are control-thread only (see policy.h). */
#include "policy.h"
#include "mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct pol_crule {
    uint64_t src[2], smask[2];
    uint64_t dst[2], dmask[2];
    uint16_t sport_lo, sport_hi;
    uint16_t dport_lo, dport_hi;
    uint8_t family, dir, action, log;
    uint32_t id;
    uint16_t proto;
};

struct pol_class {
    uint32_t nint;          /* intervals; starts[0] == 0 */
    uint16_t *starts;
    uint32_t *off;          /* nint + 1 offsets into ridx */
    uint32_t *ridx;         /* rule indices, ascending within an interval */
    uint64_t *pre;          /* per ridx entry: low dst word mask, value (a
                             * dense pre-filter before the full rule test) */
};

struct pol_list {
    uint32_t nrules;
    uint8_t default_action;
    uint8_t proto_class[256];
    uint32_t nclass;
    struct pol_crule *rules;
    struct pol_class *cls;
    size_t bytes;
};

struct pol_table {
    struct rcu_domain *rcu;
    uint32_t gen;
    struct pol_list *vrf[65536];
    struct pol_list *vif[65536];
};

static inline uint64_t load64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Mask with the first `len` bits (network order) set, loaded in host order
 * exactly like the addresses it is applied to. */
static void prefix_words(const uint8_t *addr, uint8_t len, uint64_t *a, uint64_t *m)
{
    uint8_t mb[16], ab[16];
    for (int i = 0; i < 16; i++) {
        int bits = (int)len - 8 * i;
        mb[i] = bits >= 8 ? 0xff : bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
        ab[i] = addr[i] & mb[i];
    }
    m[0] = load64(mb);
    m[1] = load64(mb + 8);
    a[0] = load64(ab);
    a[1] = load64(ab + 8);
}

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int rule_valid(const struct pol_rule *r)
{
    if (r->src_len > 128 || r->dst_len > 128 || r->sport_lo > r->sport_hi ||
        r->dport_lo > r->dport_hi || r->dir < POL_DIR_IN || r->dir > POL_DIR_BOTH ||
        r->action > POL_DENY || (r->proto > 255 && r->proto != POL_PROTO_ANY))
        return 0;
    if (r->family != 0 && r->family != 4 && r->family != 6)
        return 0;
    if (r->family == 0 && (r->src_len || r->dst_len))
        return 0;
    if (r->family == 4) {   /* mapped prefix: at least the ::ffff:0:0/96 part */
        if ((r->src_len < 96 || r->dst_len < 96) ||
            memcmp(r->src, v4mapped, 12) || memcmp(r->dst, v4mapped, 12))
            return 0;
    }
    return 1;
}

VR_EXPORT void pol_list_free(void *p)
{
    struct pol_list *l = p;
    if (!l)
        return;
    if (l->cls)
        for (uint32_t c = 0; c < l->nclass; c++) {
            vr_free(l->cls[c].starts);
            vr_free(l->cls[c].off);
            vr_free(l->cls[c].ridx);
            vr_free(l->cls[c].pre);
        }
    vr_free(l->cls);
    vr_free(l->rules);
    vr_free(l);
}

VR_EXPORT size_t pol_list_memory(const struct pol_list *l) { return l->bytes; }

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Build one protocol class: `proto` (or 256 for "every other protocol"). */
static int build_class(struct pol_list *l, struct pol_class *c, uint32_t proto)
{
    uint32_t n = l->nrules, npts = 1;
    uint32_t *pts = vr_malloc((2 * (size_t)n + 1) * sizeof(uint32_t));
    if (!pts)
        return -ENOMEM;
    pts[0] = 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct pol_crule *r = &l->rules[i];
        if (r->proto != POL_PROTO_ANY && r->proto != proto)
            continue;
        pts[npts++] = r->dport_lo;
        if (r->dport_hi < 65535)
            pts[npts++] = (uint32_t)r->dport_hi + 1;
    }
    qsort(pts, npts, sizeof(uint32_t), cmp_u32);
    uint32_t m = 0;
    for (uint32_t i = 0; i < npts; i++)
        if (m == 0 || pts[m - 1] != pts[i])
            pts[m++] = pts[i];
    c->nint = m;
    c->starts = vr_malloc(m * sizeof(uint16_t));
    c->off = vr_malloc((m + 1) * sizeof(uint32_t));
    if (!c->starts || !c->off) {
        vr_free(pts);
        return -ENOMEM;
    }
    /* Two passes: count, then fill. */
    size_t total = 0;
    for (uint32_t k = 0; k < m; k++) {
        c->starts[k] = (uint16_t)pts[k];
        c->off[k] = (uint32_t)total;
        for (uint32_t i = 0; i < n; i++) {
            const struct pol_crule *r = &l->rules[i];
            total += (r->proto == POL_PROTO_ANY || r->proto == proto) &&
                     r->dport_lo <= pts[k] && pts[k] <= r->dport_hi;
        }
        if (total > 0xffffffffu) {
            vr_free(pts);
            return -ENOMEM;
        }
    }
    c->off[m] = (uint32_t)total;
    c->ridx = vr_malloc((total ? total : 1) * sizeof(uint32_t));
    c->pre = vr_malloc((total ? total : 1) * 2 * sizeof(uint64_t));
    if (!c->ridx || !c->pre) {
        vr_free(pts);
        return -ENOMEM;
    }
    size_t w = 0;
    for (uint32_t k = 0; k < m; k++)
        for (uint32_t i = 0; i < n; i++) {
            const struct pol_crule *r = &l->rules[i];
            if ((r->proto == POL_PROTO_ANY || r->proto == proto) && r->dport_lo <= pts[k] &&
                pts[k] <= r->dport_hi) {
                c->pre[2 * w] = r->dmask[1];
                c->pre[2 * w + 1] = r->dst[1];
                c->ridx[w++] = i;
            }
        }
    l->bytes += m * (sizeof(uint16_t) + sizeof(uint32_t)) + total * (sizeof(uint32_t) + 16);
    vr_free(pts);
    return 0;
}

VR_EXPORT int pol_list_build(const struct pol_rule *rules, uint32_t n, uint8_t default_action,
                             struct pol_list **out, uint32_t *bad_rule)
{
    *out = NULL;
    if (n > POL_MAX_RULES || default_action > POL_DENY)
        return -EINVAL;
    for (uint32_t i = 0; i < n; i++)
        if (!rule_valid(&rules[i])) {
            if (bad_rule)
                *bad_rule = i;
            return -EINVAL;
        }
    struct pol_list *l = vr_calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->nrules = n;
    l->default_action = default_action;
    l->rules = vr_calloc(n ? n : 1, sizeof(struct pol_crule));
    if (!l->rules) {
        pol_list_free(l);
        return -ENOMEM;
    }
    l->bytes = sizeof(*l) + n * sizeof(struct pol_crule);
    /* Each protocol named by a rule gets a class; class 0 is "the others". */
    memset(l->proto_class, 0, sizeof(l->proto_class));
    uint32_t protos[257];
    protos[0] = 256;
    l->nclass = 1;
    for (uint32_t i = 0; i < n; i++) {
        const struct pol_rule *r = &rules[i];
        struct pol_crule *c = &l->rules[i];
        prefix_words(r->src, r->src_len, c->src, c->smask);
        prefix_words(r->dst, r->dst_len, c->dst, c->dmask);
        c->sport_lo = r->sport_lo;
        c->sport_hi = r->sport_hi;
        c->dport_lo = r->dport_lo;
        c->dport_hi = r->dport_hi;
        c->family = r->family;
        c->dir = r->dir;
        c->action = r->action;
        c->log = r->log;
        c->id = r->id;
        c->proto = r->proto;
        if (r->proto != POL_PROTO_ANY && !l->proto_class[r->proto]) {
            l->proto_class[r->proto] = (uint8_t)l->nclass;
            protos[l->nclass++] = r->proto;
        }
    }
    l->cls = vr_calloc(l->nclass, sizeof(struct pol_class));
    if (!l->cls) {
        l->nclass = 0;
        pol_list_free(l);
        return -ENOMEM;
    }
    l->bytes += l->nclass * sizeof(struct pol_class);
    for (uint32_t c = 0; c < l->nclass; c++) {
        int rc = build_class(l, &l->cls[c], protos[c]);
        if (rc) {
            pol_list_free(l);
            return rc;
        }
    }
    *out = l;
    return 0;
}

/* ------------------------------------------------------------ evaluation */

static inline int rule_match(const struct pol_crule *r, const uint64_t *s, const uint64_t *d,
                             const struct flow_key *k, int dir)
{
    return (r->dir & dir) && (!r->family || r->family == k->family) &&
           k->sport >= r->sport_lo && k->sport <= r->sport_hi &&
           (((s[0] & r->smask[0]) ^ r->src[0]) | ((s[1] & r->smask[1]) ^ r->src[1]) |
            ((d[0] & r->dmask[0]) ^ r->dst[0]) | ((d[1] & r->dmask[1]) ^ r->dst[1])) == 0;
}

static inline int set_result(struct pol_result *res, uint32_t id, uint8_t action, uint8_t log)
{
    res->rule_id = id;
    res->action = action;
    res->log = log;
    res->pad = 0;
    return action;
}

VR_EXPORT int pol_list_eval(const struct pol_list *l, const struct flow_key *k, int dir,
                            struct pol_result *res)
{
    const struct pol_class *c = &l->cls[l->proto_class[k->proto]];
    uint32_t lo = 0, hi = c->nint;
    const uint16_t dp = k->dport;
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (c->starts[mid] <= dp)
            lo = mid;
        else
            hi = mid;
    }
    const uint64_t s[2] = {load64(k->src), load64(k->src + 8)};
    const uint64_t d[2] = {load64(k->dst), load64(k->dst + 8)};
    const uint64_t *pre = c->pre;
    for (uint32_t i = c->off[lo], e = c->off[lo + 1]; i < e; i++) {
        if ((d[1] & pre[2 * i]) != pre[2 * i + 1])
            continue;
        const struct pol_crule *r = &l->rules[c->ridx[i]];
        if (rule_match(r, s, d, k, dir))
            return set_result(res, r->id, r->action, r->log);
    }
    return set_result(res, POL_RULE_DEFAULT, l->default_action, 0);
}

VR_EXPORT int pol_list_eval_linear(const struct pol_list *l, const struct flow_key *k, int dir,
                                   struct pol_result *res)
{
    const uint64_t s[2] = {load64(k->src), load64(k->src + 8)};
    const uint64_t d[2] = {load64(k->dst), load64(k->dst + 8)};
    for (uint32_t i = 0; i < l->nrules; i++) {
        const struct pol_crule *r = &l->rules[i];
        if ((r->proto == POL_PROTO_ANY || r->proto == k->proto) && k->dport >= r->dport_lo &&
            k->dport <= r->dport_hi && rule_match(r, s, d, k, dir))
            return set_result(res, r->id, r->action, r->log);
    }
    return set_result(res, POL_RULE_DEFAULT, l->default_action, 0);
}

VR_EXPORT int pol_table_create(struct rcu_domain *d, struct pol_table **out)
{
    *out = NULL;
    if (!d)
        return -EINVAL;
    struct pol_table *pt = vr_calloc(1, sizeof(*pt));
    if (!pt)
        return -ENOMEM;
    pt->rcu = d;
    pt->gen = 1;
    *out = pt;
    return 0;
}

VR_EXPORT void pol_table_destroy(struct pol_table *pt)
{
    if (!pt)
        return;
    /* Lists this table deferred must go before the table does. */
    if (rcu_pending(pt->rcu))
        rcu_synchronize(pt->rcu);
    for (int i = 0; i < 65536; i++) {
        pol_list_free(pt->vrf[i]);
        pol_list_free(pt->vif[i]);
    }
    vr_free(pt);
}

VR_EXPORT int pol_attach(struct pol_table *pt, int kind, uint16_t id, struct pol_list *list)
{
    struct pol_list **slot = kind == POL_ATTACH_VIF ? &pt->vif[id] : &pt->vrf[id];
    if (rcu_defer_reserve(pt->rcu, 1) < 0) {
        pol_list_free(list);
        return -ENOMEM;
    }
    struct pol_list *old = __atomic_exchange_n(slot, list, __ATOMIC_ACQ_REL);
    __atomic_add_fetch(&pt->gen, 1, __ATOMIC_RELEASE);
    rcu_defer(pt->rcu, old, pol_list_free);   /* cannot fail after the reserve */
    return 0;
}

VR_EXPORT uint32_t pol_generation(const struct pol_table *pt) { return VR_LOAD_ACQ(&pt->gen); }

static inline int eval_one(const struct pol_table *pt, const struct flow_key *k, int has_vif,
                           uint16_t vif, int dir, struct pol_result *r, int linear)
{
    int (*ev)(const struct pol_list *, const struct flow_key *, int, struct pol_result *) =
        linear ? pol_list_eval_linear : pol_list_eval;
    const struct pol_list *sg = has_vif ? VR_LOAD_ACQ(&pt->vif[vif]) : NULL;
    const struct pol_list *np = VR_LOAD_ACQ(&pt->vrf[k->vrf]);
    struct pol_result sgr;
    if (sg && ev(sg, k, dir, &sgr) == POL_DENY) {
        *r = sgr;
        return POL_DENY;
    }
    if (np)
        return ev(np, k, dir, r);
    if (sg) {
        *r = sgr;
        return sgr.action;
    }
    return set_result(r, POL_RULE_NONE, POL_PASS, 0);
}

VR_EXPORT int pol_eval(const struct pol_table *pt, const struct flow_key *k, uint16_t vif, int dir,
                       struct pol_result *r)
{
    return eval_one(pt, k, 1, vif, dir, r, 0);
}

VR_EXPORT int pol_eval_vif(const struct pol_table *pt, const struct flow_key *k, uint16_t vif, int dir,
                           struct pol_result *r)
{
    const struct pol_list *sg = VR_LOAD_ACQ(&pt->vif[vif]);
    if (!sg)
        return set_result(r, POL_RULE_NONE, POL_PASS, 0);
    return pol_list_eval(sg, k, dir, r);
}

VR_EXPORT void pol_eval_bulk(const struct pol_table *pt, const struct flow_key *keys,
                             const uint16_t *vifs, int dir, uint32_t n, struct pol_result *res,
                             int linear)
{
    for (uint32_t i = 0; i < n; i++)
        eval_one(pt, &keys[i], vifs != NULL, vifs ? vifs[i] : 0, dir, &res[i], linear);
}

VR_EXPORT int pol_flow_reval(void *ctx, const struct flow_key *k, uint16_t vif, uint32_t *rule_id)
{
    struct pol_result r;
    int a = pol_eval((const struct pol_table *)ctx, k, vif, POL_DIR_IN, &r);
    *rule_id = r.rule_id;
    return a;
}
