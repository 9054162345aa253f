/* Interface, next-hop, label and VNI tables (see nexthop.h). Vifs and next
 * hops are immutable objects published with one pointer store, the old one
 * handed to RCU; labels and VNIs are slots in never-moving pages. Writer
 * calls are control-thread only; each validates and allocates everything
 * first, reserves its RCU deferrals, and only then publishes: nothing can
 * fail after the first store. */
#include "nexthop.h"
#include "mem.h"
#include "packet.h"

#include <errno.h>
#include <string.h>

#define NH_TTL_DEFAULT 64
#define NH_PORT_VXLAN 4789       /* RFC 7348 */
#define NH_PORT_MPLSOUDP 6635    /* RFC 7510 */
#define VXLAN_FLAG_I 0x08
#define VXLAN_LEN 8
#define MPLS_LEN 4
#define VLAN_ID_MAX 4094
#define IP_MTU_MIN 68

#define BAD(field)              \
    do {                        \
        *why = (field);         \
        return -EINVAL;         \
    } while (0)

_Static_assert(PKT_ETH_LEN + PKT_VLAN_LEN + PKT_IP6_LEN + PKT_UDP_LEN + VXLAN_LEN <= NH_HDR_MAX,
               "the longest tunnel rewrite fits in struct nh.hdr");

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static inline void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, (uint16_t)(v >> 16));
    wr16(p + 2, (uint16_t)v);
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* An individual (I/G bit clear), non-zero MAC. */
static int mac_unicast(const uint8_t *m) { return !(m[0] & 1) && !all_zero(m, 6); }

/* A unicast host address: not 0.0.0.0/8 ("this network"), 127/8 (loopback),
 * 224/4 (multicast) or 240/4 (reserved, with the limited broadcast). */
static int ip4_unicast(const uint8_t *a) { return a[0] != 0 && a[0] != 127 && a[0] < 224; }

/* Not ::, ::1, ff00::/8 (multicast), nor an IPv4-mapped address (that is
 * IPv4 traffic, family 4). */
static int ip6_unicast(const uint8_t *a)
{
    static const uint8_t loopback[16] = {[15] = 1};
    return a[0] != 0xff && !all_zero(a, 16) && memcmp(a, loopback, 16) != 0 &&
           memcmp(a, v4mapped, sizeof(v4mapped)) != 0;
}

/* Family and length consistent, host bits zero. Fabric vifs list the node's
 * own addresses (tunnel endpoints): host prefixes only. */
static int prefix_ok(const struct vr_prefix *p, int fabric)
{
    if (p->len > 128 || (fabric && p->len != 128))
        return 0;
    if (p->family == 4) {
        if (p->len < 96 || memcmp(p->addr, v4mapped, sizeof(v4mapped)) != 0)
            return 0;
    } else if (p->family != 6) {
        return 0;
    }
    for (int i = 0; i < 16; i++) {
        int bits = (int)p->len - 8 * i;
        unsigned mask = bits >= 8 ? 0xffu : bits <= 0 ? 0u : (0xff00u >> bits) & 0xffu;
        if (p->addr[i] & ~mask)
            return 0;
    }
    return 1;
}

static int vif_check(const struct vif *v, const char **why)
{
    if (v->kind < VIF_VIRTUAL || v->kind > VIF_HOST)
        BAD("kind");
    if (v->flags & ~(VIF_F_POLICY | VIF_F_ADMIN_DOWN))
        BAD("flags");
    if (v->mtu < IP_MTU_MIN)
        BAD("mtu");
    if (v->vlan > VLAN_ID_MAX)
        BAD("vlan");
    if (!mac_unicast(v->mac))
        BAD("mac");
    if (v->has_gw4 > 1 || (v->has_gw4 && !ip4_unicast(v->gw4)))
        BAD("gw4");
    if (v->has_gw6 > 1 || (v->has_gw6 && !ip6_unicast(v->gw6)))
        BAD("gw6");
    if (v->n_prefixes > VIF_MAX_PREFIXES)
        BAD("prefixes");
    for (unsigned i = 0; i < v->n_prefixes; i++)
        if (!prefix_ok(&v->prefixes[i], v->kind == VIF_FABRIC))
            BAD("prefixes");
    return 0;
}

/* Ethernet header [+ 802.1Q tag]; returns its length. */
static uint8_t eth_hdr(uint8_t *h, const uint8_t *dmac, const uint8_t *smac, uint16_t vlan,
                       uint16_t ethertype)
{
    uint8_t off = 12;
    memcpy(h, dmac, 6);
    memcpy(h + 6, smac, 6);
    if (vlan) {
        wr16(h + off, PKT_ETH_P_8021Q);
        wr16(h + off + 2, vlan);   /* PCP 0, DEI 0 */
        off += PKT_VLAN_LEN;
    }
    wr16(h + off, ethertype);
    return (uint8_t)(off + 2);
}

/* Outer IP + UDP + VXLAN/MPLS after the Ethernet header at h[0..off). */
static void tunnel_hdr(struct nh *n, uint8_t off)
{
    const struct nh_spec *s = &n->s;
    uint8_t *h = n->hdr, *ip = h + off;
    uint8_t ttl = s->ttl ? s->ttl : NH_TTL_DEFAULT;
    n->l3_off = off;
    if (s->family == 4) {
        ip[0] = 0x45;               /* version 4, IHL 5; tos, length, id: 0 */
        wr16(ip + 6, 0x4000);       /* DF, offset 0 */
        ip[8] = ttl;
        ip[9] = PKT_PROTO_UDP;      /* checksum @10: 0 */
        memcpy(ip + 12, s->src, 4);
        memcpy(ip + 16, s->dst, 4);
        /* The pipeline stores ~fold(base + total length). */
        n->ip_csum_base = pkt_csum_add(ip, PKT_IP4_LEN, 0);
        off += PKT_IP4_LEN;
    } else {
        wr32(ip, 0x60000000u);      /* version 6, class 0, flow label 0; payload length 0 */
        ip[6] = PKT_PROTO_UDP;
        ip[7] = ttl;
        memcpy(ip + 8, s->src, 16);
        memcpy(ip + 24, s->dst, 16);
        /* The pipeline adds the UDP length (the pseudo header's), then the
         * UDP header as sent (ports, length) and the payload. */
        n->udp_csum_base = pkt_pseudo_sum(6, s->src, s->dst, PKT_PROTO_UDP, 0);
        off += PKT_IP6_LEN;
    }
    uint8_t *udp = h + off;         /* source port, length, checksum: per packet */
    wr16(udp + 2, s->encap == NH_ENC_VXLAN ? NH_PORT_VXLAN : NH_PORT_MPLSOUDP);
    off += PKT_UDP_LEN;
    if (s->encap == NH_ENC_VXLAN) {
        h[off] = VXLAN_FLAG_I;
        wr32(h + off + 4, s->label << 8);   /* VNI in bytes 4..6, byte 7 reserved */
        off += VXLAN_LEN;
    } else {
        wr32(h + off, s->label << 12 | 1u << 8 | ttl);   /* TC 0, bottom of stack */
        off += MPLS_LEN;
    }
    n->hdr_len = off;
}

/* Validate spec s and build its published form in n: only the fields the
 * type uses are kept (the rest zero), and the rewrite is precomputed.
 * vif_ovr, when not NULL, stands in for vif s->vif: vif_set rebuilds the
 * dependants of a vif before publishing it. Reads only the writer's view. */
static int nh_build(const struct nh_table *t, const struct nh_spec *s, const struct vif *vif_ovr,
                    struct nh *n, const char **why)
{
    struct nh_spec *o = &n->s;
    memset(n, 0, sizeof(*n));
    o->id = s->id;
    o->type = s->type;
    switch (s->type) {
    case NH_DISCARD:
    case NH_RECEIVE:
        return 0;
    case NH_VRF:
        o->vrf = s->vrf;
        return 0;
    case NH_INTERFACE:
    case NH_TUNNEL: {
        const struct vif *v = vif_ovr ? vif_ovr : s->vif < VIF_MAX ? t->vifs[s->vif] : NULL;
        int tun = s->type == NH_TUNNEL;
        if (!v || (tun && v->kind != VIF_FABRIC))
            BAD("vif");
        if (tun) {
            if (s->encap != NH_ENC_VXLAN && s->encap != NH_ENC_MPLSOUDP)
                BAD("encap");
            if (s->family != 4 && s->family != 6)
                BAD("family");
            if (s->encap == NH_ENC_VXLAN ? s->label > VNI_MAX
                                         : s->label < LABEL_MIN || s->label > LABEL_MAX)
                BAD("label");
            if (s->family == 4 ? !ip4_unicast(s->src) || !all_zero(s->src + 4, 12) : !ip6_unicast(s->src))
                BAD("src");
            if (s->family == 4 ? !ip4_unicast(s->dst) || !all_zero(s->dst + 4, 12) : !ip6_unicast(s->dst))
                BAD("dst");
            if (!mac_unicast(s->dmac))
                BAD("dmac");
        } else if (all_zero(s->dmac, 6)) {   /* a group address may be meant */
            BAD("dmac");
        }
        if (!all_zero(s->smac, 6) && !mac_unicast(s->smac))
            BAD("smac");
        o->vif = s->vif;
        memcpy(o->dmac, s->dmac, 6);
        memcpy(o->smac, s->smac, 6);   /* zero = follow the vif's MAC */
        const uint8_t *smac = all_zero(s->smac, 6) ? v->mac : s->smac;
        if (!tun) {
            /* The ethertype stays 0: the pipeline writes the packet's own. */
            n->hdr_len = n->l3_off = eth_hdr(n->hdr, s->dmac, smac, v->vlan, 0);
            return 0;
        }
        o->encap = s->encap;
        o->family = s->family;
        o->ttl = s->ttl;
        o->label = s->label;
        memcpy(o->src, s->src, s->family == 4 ? 4 : 16);
        memcpy(o->dst, s->dst, s->family == 4 ? 4 : 16);
        if (s->encap == NH_ENC_VXLAN)
            memcpy(o->inner_dmac, s->inner_dmac, 6);
        tunnel_hdr(n, eth_hdr(n->hdr, s->dmac, smac, v->vlan,
                              s->family == 4 ? PKT_ETH_P_IP4 : PKT_ETH_P_IP6));
        return 0;
    }
    case NH_ECMP:
        if (s->n_members < 1 || s->n_members > NH_ECMP_MAX)
            BAD("n_members");
        for (uint32_t i = 0; i < s->n_members; i++) {
            uint32_t m = s->members[i];
            if (m != NH_NONE) {
                const struct nh *mn = m < t->capacity ? t->nhs[m] : NULL;
                /* One level only: the pipeline picks a member and uses it. */
                if (m == s->id || !mn || mn->s.type == NH_ECMP)
                    BAD("members");
                n->live[n->n_live++] = i;
            }
            o->members[i] = m;
        }
        o->n_members = s->n_members;
        return 0;
    default:
        BAD("type");
    }
}

/* Take (take = 1) or release the references a published next hop holds. */
static void nh_refs_adjust(struct nh_table *t, const struct nh *n, int take)
{
    const uint32_t delta = take ? 1u : UINT32_MAX;   /* modular: -1 */
    if (n->s.type == NH_INTERFACE || n->s.type == NH_TUNNEL)
        t->vif_ref[n->s.vif] += delta;
    else if (n->s.type == NH_ECMP)
        for (uint32_t k = 0; k < n->n_live; k++)
            t->nh_ref[n->s.members[n->live[k]]] += delta;
}

/* Is nh `id` a live member of some ECMP next hop? A scan: only asked when a
 * referenced next hop is about to become ECMP. */
static int ecmp_member(const struct nh_table *t, uint32_t id)
{
    for (uint32_t i = 0; i < t->capacity; i++) {
        const struct nh *e = t->nhs[i];
        if (e && e->s.type == NH_ECMP)
            for (uint32_t k = 0; k < e->n_live; k++)
                if (e->s.members[e->live[k]] == id)
                    return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ id maps */

static uint32_t idmap_dir_len(const struct idmap *m) { return (m->max_id >> IDMAP_PAGE_BITS) + 1; }

static int idmap_init(struct idmap *m, uint32_t max_id)
{
    m->max_id = max_id;
    m->dir = vr_calloc(idmap_dir_len(m), sizeof(*m->dir));
    return m->dir ? 0 : -ENOMEM;
}

static void idmap_free(struct idmap *m)
{
    if (m->dir)
        for (uint32_t i = 0; i < idmap_dir_len(m); i++)
            vr_free(m->dir[i]);
    vr_free(m->dir);
}

/* The slot of id (id <= max_id); with alloc, its page is created (zeroed,
 * then published) if missing. NULL: no page (or no memory when alloc). */
static uint32_t *idmap_slot(struct idmap *m, uint32_t id, int alloc)
{
    uint32_t **pp = &m->dir[id >> IDMAP_PAGE_BITS];
    uint32_t *page = *pp;
    if (!page) {
        if (!alloc || !(page = vr_calloc(IDMAP_PAGE, sizeof(*page))))
            return NULL;
        VR_STORE_REL(pp, page);
        m->pages++;
    }
    return &page[id & (IDMAP_PAGE - 1)];
}

/* Ids in use from *cursor, ascending; values (slot - 1) to v32 or v16. */
static uint32_t idmap_list(const struct idmap *m, uint32_t *cursor, uint32_t *ids, uint32_t *v32,
                           uint16_t *v16, uint32_t cap)
{
    uint32_t n = 0, id = *cursor;
    while (id <= m->max_id && n < cap) {
        const uint32_t *page = m->dir[id >> IDMAP_PAGE_BITS];
        if (!page) {
            id = (id | (IDMAP_PAGE - 1)) + 1;   /* max_id < 2^32 - 1: no wrap */
            continue;
        }
        uint32_t v = page[id & (IDMAP_PAGE - 1)];
        if (v) {
            ids[n] = id;
            if (v32)
                v32[n] = v - 1;
            if (v16)
                v16[n] = (uint16_t)(v - 1);
            n++;
        }
        id++;
    }
    if (id > *cursor)
        *cursor = id;
    return n;
}

/* ------------------------------------------------------------ table */

VR_EXPORT int nh_table_create(struct rcu_domain *rcu, uint32_t capacity, struct nh_table **out)
{
    *out = NULL;
    if (!rcu)
        return -EINVAL;
    if (capacity < 1 || capacity > NH_MAX_CAPACITY)
        return -ERANGE;
    struct nh_table *t = vr_calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->rcu = rcu;
    t->capacity = capacity;
    t->vifs = vr_calloc(VIF_MAX, sizeof(*t->vifs));
    t->vif_ref = vr_calloc(VIF_MAX, sizeof(*t->vif_ref));
    t->nhs = vr_calloc(capacity, sizeof(*t->nhs));
    t->nh_ref = vr_calloc(capacity, sizeof(*t->nh_ref));
    if (!t->vifs || !t->vif_ref || !t->nhs || !t->nh_ref || idmap_init(&t->labels, LABEL_MAX) ||
        idmap_init(&t->vnis, VNI_MAX)) {
        nh_table_destroy(t);
        return -ENOMEM;
    }
    *out = t;
    return 0;
}

/* Objects this table handed to RCU earlier are plain allocations that do not
 * point back here: they can be reclaimed after the table is gone. */
VR_EXPORT void nh_table_destroy(struct nh_table *t)
{
    if (!t)
        return;
    if (t->vifs)
        for (uint32_t i = 0; i < VIF_MAX; i++)
            vr_free(t->vifs[i]);
    if (t->nhs)
        for (uint32_t i = 0; i < t->capacity; i++)
            vr_free(t->nhs[i]);
    idmap_free(&t->labels);
    idmap_free(&t->vnis);
    vr_free(t->vifs);
    vr_free(t->vif_ref);
    vr_free(t->nhs);
    vr_free(t->nh_ref);
    vr_free(t);
}

VR_EXPORT uint32_t nh_capacity(const struct nh_table *t) { return t->capacity; }

VR_EXPORT size_t nh_table_memory(const struct nh_table *t)
{
    return sizeof(*t) + (size_t)VIF_MAX * (sizeof(*t->vifs) + sizeof(*t->vif_ref)) +
           (size_t)t->capacity * (sizeof(*t->nhs) + sizeof(*t->nh_ref)) +
           ((size_t)idmap_dir_len(&t->labels) + idmap_dir_len(&t->vnis)) * sizeof(uint32_t *) +
           ((size_t)t->labels.pages + t->vnis.pages) * IDMAP_PAGE * sizeof(uint32_t) +
           (size_t)t->n_vifs * sizeof(struct vif) + (size_t)t->n_nhs * sizeof(struct nh);
}

/* ------------------------------------------------------------ vifs */

VR_EXPORT int vif_set(struct nh_table *t, const struct vif *v, const char **why)
{
    const char *why_sink;
    if (!why)
        why = &why_sink;
    *why = NULL;
    if (v->id >= VIF_MAX)
        return -ERANGE;
    int rc = vif_check(v, why);
    if (rc)
        return rc;
    const uint16_t id = v->id;
    struct vif *old = t->vifs[id];
    const uint32_t nref = t->vif_ref[id];
    if (old && nref && old->kind != v->kind) {
        *why = "kind";   /* a tunnel must keep leaving through a fabric vif */
        return -EBUSY;
    }
    struct vif *nv = vr_malloc(sizeof(*nv));
    if (!nv)
        return -ENOMEM;
    *nv = *v;
    if (!nv->has_gw4)
        memset(nv->gw4, 0, sizeof(nv->gw4));
    if (!nv->has_gw6)
        memset(nv->gw6, 0, sizeof(nv->gw6));
    memset(nv->pad, 0, sizeof(nv->pad));
    memset(nv->prefixes + nv->n_prefixes, 0,
           (VIF_MAX_PREFIXES - nv->n_prefixes) * sizeof(nv->prefixes[0]));

    /* The next hops using this vif carry its MAC and VLAN in their rewrite:
     * build their replacements now, publish them right after the vif. */
    uint32_t nreb = old && (memcmp(old->mac, nv->mac, 6) != 0 || old->vlan != nv->vlan) ? nref : 0;
    uint32_t *ids = NULL, k = 0;
    struct nh **objs = NULL;
    rc = -ENOMEM;
    if (nreb) {
        ids = vr_malloc(nreb * sizeof(*ids));
        objs = vr_calloc(nreb, sizeof(*objs));
        if (!ids || !objs)
            goto fail;
        for (uint32_t i = 0; i < t->capacity && k < nreb; i++) {
            const struct nh *x = t->nhs[i];
            if (x && (x->s.type == NH_INTERFACE || x->s.type == NH_TUNNEL) && x->s.vif == id)
                ids[k++] = i;
        }
        nreb = k;   /* == vif_ref[id] */
        for (k = 0; k < nreb; k++) {
            if (!(objs[k] = vr_malloc(sizeof(struct nh))))
                goto fail;
            /* Same spec, same vif kind: cannot be refused (checked anyway). */
            int brc = nh_build(t, &t->nhs[ids[k]]->s, nv, objs[k], why);
            if (brc) {
                rc = brc;
                goto fail;
            }
        }
    }
    /* Reserve only what will be deferred: adding a vif never fails here. */
    if (rcu_defer_reserve(t->rcu, (old != NULL) + (size_t)nreb) < 0) {
        rc = -ENOMEM;
        goto fail;
    }
    VR_STORE_REL(&t->vifs[id], nv);
    if (old)
        rcu_defer(t->rcu, old, vr_free);
    else
        t->n_vifs++;
    for (k = 0; k < nreb; k++) {
        struct nh *prev = t->nhs[ids[k]];
        VR_STORE_REL(&t->nhs[ids[k]], objs[k]);
        rcu_defer(t->rcu, prev, vr_free);
    }
    vr_free(ids);
    vr_free(objs);
    return 0;
fail:
    if (objs)
        for (k = 0; k < nreb; k++)
            vr_free(objs[k]);
    vr_free(objs);
    vr_free(ids);
    vr_free(nv);
    return rc;
}

VR_EXPORT int vif_del(struct nh_table *t, uint16_t id)
{
    if (id >= VIF_MAX)
        return -ERANGE;
    struct vif *old = t->vifs[id];
    if (!old)
        return -ENOENT;
    if (t->vif_ref[id])
        return -EBUSY;
    if (rcu_defer_reserve(t->rcu, 1) < 0)
        return -ENOMEM;
    VR_STORE_REL(&t->vifs[id], NULL);
    rcu_defer(t->rcu, old, vr_free);
    t->n_vifs--;
    return 0;
}

VR_EXPORT uint32_t vif_refs(const struct nh_table *t, uint16_t id)
{
    return id < VIF_MAX ? t->vif_ref[id] : 0;
}

VR_EXPORT uint32_t vif_list(const struct nh_table *t, uint32_t *cursor, uint16_t *ids, uint32_t cap)
{
    uint32_t n = 0, i = *cursor;
    for (; i < VIF_MAX && n < cap; i++)
        if (t->vifs[i])
            ids[n++] = (uint16_t)i;
    if (i > *cursor)
        *cursor = i;
    return n;
}

/* ------------------------------------------------------------ next hops */

VR_EXPORT int nh_set(struct nh_table *t, const struct nh_spec *s, const char **why)
{
    const char *why_sink;
    if (!why)
        why = &why_sink;
    *why = NULL;
    if (s->id >= t->capacity)
        return -ERANGE;
    struct nh tmp;   /* validated before anything is allocated */
    int rc = nh_build(t, s, NULL, &tmp, why);
    if (rc)
        return rc;
    struct nh *old = t->nhs[s->id];
    /* ECMP members are never ECMP themselves (one level of choice). */
    if (s->type == NH_ECMP && old && old->s.type != NH_ECMP && t->nh_ref[s->id] &&
        ecmp_member(t, s->id))
        BAD("type");
    struct nh *n = vr_malloc(sizeof(*n));
    if (!n)
        return -ENOMEM;
    memcpy(n, &tmp, sizeof(*n));
    if (rcu_defer_reserve(t->rcu, old != NULL) < 0) {
        vr_free(n);
        return -ENOMEM;
    }
    nh_refs_adjust(t, n, 1);
    VR_STORE_REL(&t->nhs[s->id], n);
    if (old) {
        nh_refs_adjust(t, old, 0);
        rcu_defer(t->rcu, old, vr_free);
    } else {
        t->n_nhs++;
    }
    return 0;
}

VR_EXPORT int nh_del(struct nh_table *t, uint32_t id)
{
    if (id >= t->capacity)
        return -ERANGE;
    struct nh *old = t->nhs[id];
    if (!old)
        return -ENOENT;
    if (t->nh_ref[id])
        return -EBUSY;
    if (rcu_defer_reserve(t->rcu, 1) < 0)
        return -ENOMEM;
    VR_STORE_REL(&t->nhs[id], NULL);
    nh_refs_adjust(t, old, 0);
    rcu_defer(t->rcu, old, vr_free);
    t->n_nhs--;
    return 0;
}

VR_EXPORT uint32_t nh_refs(const struct nh_table *t, uint32_t id)
{
    return id < t->capacity ? t->nh_ref[id] : 0;
}

VR_EXPORT uint32_t nh_list(const struct nh_table *t, uint32_t *cursor, uint32_t *ids, uint32_t cap)
{
    uint32_t n = 0, i = *cursor;
    for (; i < t->capacity && n < cap; i++)
        if (t->nhs[i])
            ids[n++] = i;
    if (i > *cursor)
        *cursor = i;
    return n;
}

/* ------------------------------------------------------------ labels, VNIs */

VR_EXPORT int label_set(struct nh_table *t, uint32_t label, uint32_t nh)
{
    if (label < LABEL_MIN || label > LABEL_MAX)
        return -ERANGE;
    if (nh >= t->capacity || !t->nhs[nh])
        return -ENOENT;
    uint32_t *slot = idmap_slot(&t->labels, label, 1);
    if (!slot)
        return -ENOMEM;
    uint32_t cur = *slot;
    t->nh_ref[nh]++;
    if (cur)
        t->nh_ref[cur - 1]--;
    else
        t->labels.count++;
    VR_STORE_REL(slot, nh + 1);   /* nh < capacity <= 2^24: no wrap */
    return 0;
}

VR_EXPORT int label_del(struct nh_table *t, uint32_t label)
{
    if (label < LABEL_MIN || label > LABEL_MAX)
        return -ERANGE;
    uint32_t *slot = idmap_slot(&t->labels, label, 0);
    if (!slot || !*slot)
        return -ENOENT;
    t->nh_ref[*slot - 1]--;
    VR_STORE_RLX(slot, 0);
    t->labels.count--;
    return 0;
}

VR_EXPORT int vni_set(struct nh_table *t, uint32_t vni, uint16_t vrf)
{
    if (vni > VNI_MAX)
        return -ERANGE;
    uint32_t *slot = idmap_slot(&t->vnis, vni, 1);
    if (!slot)
        return -ENOMEM;
    if (!*slot)
        t->vnis.count++;
    VR_STORE_REL(slot, (uint32_t)vrf + 1);
    return 0;
}

VR_EXPORT int vni_del(struct nh_table *t, uint32_t vni)
{
    if (vni > VNI_MAX)
        return -ERANGE;
    uint32_t *slot = idmap_slot(&t->vnis, vni, 0);
    if (!slot || !*slot)
        return -ENOENT;
    VR_STORE_RLX(slot, 0);
    t->vnis.count--;
    return 0;
}

VR_EXPORT uint32_t label_list(const struct nh_table *t, uint32_t *cursor, uint32_t *labels,
                              uint32_t *nhs, uint32_t cap)
{
    return idmap_list(&t->labels, cursor, labels, nhs, NULL, cap);
}

VR_EXPORT uint32_t vni_list(const struct nh_table *t, uint32_t *cursor, uint32_t *vnis,
                            uint16_t *vrfs, uint32_t cap)
{
    return idmap_list(&t->vnis, cursor, vnis, NULL, vrfs, cap);
}
