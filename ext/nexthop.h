/* Forwarding objects: interfaces (vifs), next hops, MPLS labels and VNIs.
 *
 * These are the tables the pipeline consults after the LPM: a route gives a
 * next-hop id, the next hop says what to do with the packet (drop it, give it
 * to the host, write an Ethernet header and send it out of a vif, or push a
 * tunnel header towards another node), a label or a VNI arriving from the
 * fabric selects a next hop or a VRF.
 *
 * Layout. Vifs and next hops are arrays of pointers to immutable objects,
 * indexed by id (vif 0..VIF_MAX-1, next hop 0..capacity-1). An update builds
 * a new object (with its precomputed rewrite: the Ethernet header of an
 * INTERFACE next hop, the whole outer header of a TUNNEL), publishes it with
 * one atomic pointer store and hands the old one to RCU. Labels (20 bits) and
 * VNIs (24 bits) are two-level maps: a directory of pages of 4096 32-bit
 * slots, a page allocated the first time one of its ids is set and never
 * moved; a slot is written with one atomic store. Memory therefore follows
 * the ids in use, not the id space.
 *
 * References. The table counts who refers to a next hop (labels, ECMP
 * members) and to a vif (INTERFACE and TUNNEL next hops): deleting something
 * still referenced is refused with -EBUSY. Routes are not counted here (the
 * LPM holds plain ids); the control server counts those.
 *
 * Thread-safety contract:
 *   readers (workers, online in the table's RCU domain; Python inside
 *     rcu_read_enter/exit): vif_get, nh_get, label_lookup, vni_lookup.
 *     No locks; an object a reader got stays valid until its next quiescent
 *     state.
 *   writer (one thread at a time, the control thread): everything else.
 *     Every write is all-or-nothing: on error the table is unchanged.
 * Errors are negated errno: -EINVAL (a field is wrong: *why names it),
 * -ERANGE (id out of range), -ENOENT (absent), -EBUSY (still referenced),
 * -ENOMEM.
 */
#ifndef VR_NEXTHOP_H
#define VR_NEXTHOP_H

#include <stddef.h>
#include <stdint.h>

#include "rcu.h"
#include "vr_common.h"

#define VIF_MAX 4096
#define VIF_NONE 0xffffu
#define VIF_MAX_PREFIXES 8          /* allowed source prefixes per vif */
#define NH_NONE 0xffffffffu
#define NH_MAX_CAPACITY (1u << 24)
#define NH_DEFAULT_CAPACITY 65536u
#define NH_ECMP_MAX 64              /* member slots of one ECMP next hop */
#define LABEL_MIN 16                /* 0..15 are reserved (RFC 3032) */
#define LABEL_MAX ((1u << 20) - 1)
#define VNI_MAX ((1u << 24) - 1)
#define NH_HDR_MAX 96               /* longest precomputed rewrite */

enum vif_kind {
    VIF_VIRTUAL = 1,   /* a pod / VM port (TAP, veth) */
    VIF_FABRIC = 2,    /* the node's underlay NIC: tunnels arrive and leave here */
    VIF_HOST = 3,      /* the node's own stack (vhost0 in Tungsten terms) */
};

/* vif flags */
#define VIF_F_POLICY 0x01       /* evaluate policy on a flow miss from / to it */
#define VIF_F_ADMIN_DOWN 0x02   /* frames in or out are dropped (vif_down) */

/* A prefix of the 128-bit space: IPv4 in mapped form (::ffff:a.b.c.d) with
 * len = 96 + IPv4 length, as in struct pol_rule. Host bits must be zero. */
struct vr_prefix {
    uint8_t addr[16];
    uint8_t len;
    uint8_t family;     /* 4 or 6 */
};

/* What the writer hands over for a vif (also what vif_get returns). */
struct vif {
    uint16_t id;
    uint8_t kind;            /* enum vif_kind */
    uint8_t flags;           /* VIF_F_* */
    uint16_t vrf;            /* VRF of frames received here (virtual and host vifs) */
    uint16_t mtu;            /* IP MTU: 68..65535 (IPv6 traffic needs >= 1280) */
    uint16_t vlan;           /* 802.1Q id on the wire; 0 = untagged */
    uint8_t mac[6];          /* the MAC the vrouter uses on this port: virtual: the
                              * gateway MAC the workload sees; fabric: the NIC's */
    uint8_t has_gw4, has_gw6;
    uint8_t gw4[4];          /* the gateway the pod uses (ARP, echo, ICMP errors' source) */
    uint8_t gw6[16];
    /* Virtual vifs: source prefixes the workload may use; a frame from any
     * other source is dropped (spoofed_source). n_allowed == 0: no check.
     * Fabric vifs: the node's underlay addresses (tunnels are accepted only
     * when addressed to one of them; /32 or /128). */
    uint8_t n_prefixes;
    uint8_t pad[3];
    struct vr_prefix prefixes[VIF_MAX_PREFIXES];
};

enum nh_type {
    NH_DISCARD = 1,     /* drop (discard route) */
    NH_RECEIVE = 2,     /* to the host's own stack */
    NH_INTERFACE = 3,   /* out of a local vif with this Ethernet header */
    NH_TUNNEL = 4,      /* encapsulate towards another node via the fabric vif */
    NH_ECMP = 5,        /* one of several members, chosen per flow */
    NH_VRF = 6,         /* look the packet up again in another VRF */
};
enum nh_encap { NH_ENC_VXLAN = 1, NH_ENC_MPLSOUDP = 2 };

/* What the writer hands over for a next hop. Fields a type does not use are
 * ignored (left zero by convention). */
struct nh_spec {
    uint32_t id;
    uint8_t type;              /* enum nh_type */
    uint8_t encap;             /* TUNNEL: enum nh_encap */
    uint8_t family;            /* TUNNEL: outer IP version 4 or 6 */
    uint8_t ttl;               /* TUNNEL: outer TTL / hop limit; 0 = 64 */
    uint16_t vif;              /* INTERFACE: out vif (any kind); TUNNEL: a fabric vif */
    uint16_t vrf;              /* NH_VRF: the VRF to look up in */
    uint8_t dmac[6];           /* INTERFACE: the workload's MAC; TUNNEL: underlay next-hop MAC */
    uint8_t smac[6];           /* source MAC; all zero = the out vif's MAC (INTERFACE: the router MAC) */
    uint8_t inner_dmac[6];     /* TUNNEL VXLAN: inner destination MAC (the remote's router MAC) */
    uint8_t pad[2];
    uint32_t label;            /* TUNNEL: VNI (VXLAN, 24 bits) or MPLS label (20 bits, >= 16) */
    uint8_t src[16];           /* TUNNEL: outer source / destination (IPv4: first 4 bytes) */
    uint8_t dst[16];
    uint32_t n_members;        /* ECMP: number of slots used, 1..NH_ECMP_MAX */
    uint32_t members[NH_ECMP_MAX]; /* ECMP: member ids; NH_NONE = an empty slot */
};

/* The published next hop: the spec plus what the pipeline needs precomputed. */
struct nh {
    struct nh_spec s;
    /* INTERFACE: the Ethernet header (14, or 18 with the vif's VLAN).
     * TUNNEL: outer Ethernet [+VLAN] + IPv4/IPv6 + UDP + VXLAN/MPLS, ready to
     * copy; the pipeline fills lengths, checksums and the UDP source port. */
    uint8_t hdr[NH_HDR_MAX];
    uint8_t hdr_len;
    uint8_t l3_off;            /* TUNNEL: offset of the outer IP header in hdr */
    uint16_t pad2;
    uint32_t ip_csum_base;     /* TUNNEL IPv4: one's-complement sum of the header with length 0 */
    uint32_t udp_csum_base;    /* TUNNEL IPv6: pseudo-header sum of the addresses and protocol */
    uint32_t n_live;           /* ECMP: members that are not NH_NONE */
    uint32_t live[NH_ECMP_MAX];/* ECMP: slot index of the k-th live member */
};

struct nh_table;

/* Writer. capacity = number of next-hop ids (1..NH_MAX_CAPACITY). */
int nh_table_create(struct rcu_domain *rcu, uint32_t capacity, struct nh_table **out);
void nh_table_destroy(struct nh_table *t);   /* no reader may be online */
uint32_t nh_capacity(const struct nh_table *t);
size_t nh_table_memory(const struct nh_table *t);

/* Add or replace. Validation names the bad field in *why (a static string).
 * vif_set on an existing vif also rebuilds every next hop that uses it (their
 * precomputed Ethernet header carries its MAC and VLAN); the kind of a vif
 * that next hops use cannot change (-EBUSY). */
int vif_set(struct nh_table *t, const struct vif *v, const char **why);
int vif_del(struct nh_table *t, uint16_t id);
int nh_set(struct nh_table *t, const struct nh_spec *s, const char **why);
int nh_del(struct nh_table *t, uint32_t id);
int label_set(struct nh_table *t, uint32_t label, uint32_t nh);
int label_del(struct nh_table *t, uint32_t label);
int vni_set(struct nh_table *t, uint32_t vni, uint16_t vrf);
int vni_del(struct nh_table *t, uint32_t vni);
/* References held by labels and ECMP members (nh) or by next hops (vif). */
uint32_t nh_refs(const struct nh_table *t, uint32_t id);
uint32_t vif_refs(const struct nh_table *t, uint16_t id);
/* Enumerate ids in use, ascending, starting at *cursor; returns how many
 * were written (<= cap) and advances *cursor past the last one. */
uint32_t vif_list(const struct nh_table *t, uint32_t *cursor, uint16_t *ids, uint32_t cap);
uint32_t nh_list(const struct nh_table *t, uint32_t *cursor, uint32_t *ids, uint32_t cap);
uint32_t label_list(const struct nh_table *t, uint32_t *cursor, uint32_t *labels, uint32_t *nhs,
                    uint32_t cap);
uint32_t vni_list(const struct nh_table *t, uint32_t *cursor, uint32_t *vnis, uint16_t *vrfs,
                  uint32_t cap);

/* Readers. */
static inline const struct vif *vif_get(const struct nh_table *t, uint32_t id);
static inline const struct nh *nh_get(const struct nh_table *t, uint32_t id);
static inline uint32_t label_lookup(const struct nh_table *t, uint32_t label);   /* NH_NONE if unset */
static inline int vni_lookup(const struct nh_table *t, uint32_t vni);            /* VRF or -1 */

/* ---- reader inlines (layout shared with nexthop.c) ---- */
#define IDMAP_PAGE_BITS 12
#define IDMAP_PAGE (1u << IDMAP_PAGE_BITS)

/* id -> 32-bit value; a slot holds value + 1 (0 = unset, so fresh pages are
 * zero pages). dir has (max_id >> IDMAP_PAGE_BITS) + 1 entries. */
struct idmap {
    uint32_t **dir;
    uint32_t max_id;
    uint32_t count;
    uint32_t pages;
};

struct nh_table {
    struct rcu_domain *rcu;
    struct vif **vifs;          /* VIF_MAX */
    struct nh **nhs;            /* capacity */
    uint32_t capacity;
    uint32_t *nh_ref;           /* writer only */
    uint32_t *vif_ref;          /* writer only */
    uint32_t n_vifs, n_nhs;
    struct idmap labels;        /* label -> nh */
    struct idmap vnis;          /* vni -> vrf */
};

static inline uint32_t idmap_get(const struct idmap *m, uint32_t id)
{
    if (VR_UNLIKELY(id > m->max_id))
        return 0;
    const uint32_t *page = VR_LOAD_ACQ(&m->dir[id >> IDMAP_PAGE_BITS]);
    return page ? VR_LOAD_RLX(&page[id & (IDMAP_PAGE - 1)]) : 0;
}

static inline const struct vif *vif_get(const struct nh_table *t, uint32_t id)
{
    return VR_LIKELY(id < VIF_MAX) ? VR_LOAD_ACQ(&t->vifs[id]) : NULL;
}

static inline const struct nh *nh_get(const struct nh_table *t, uint32_t id)
{
    return VR_LIKELY(id < t->capacity) ? VR_LOAD_ACQ(&t->nhs[id]) : NULL;
}

static inline uint32_t label_lookup(const struct nh_table *t, uint32_t label)
{
    return idmap_get(&t->labels, label) - 1;   /* 0 - 1 = NH_NONE */
}

static inline int vni_lookup(const struct nh_table *t, uint32_t vni)
{
    return (int)idmap_get(&t->vnis, vni) - 1;
}

#endif
