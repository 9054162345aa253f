# Cython declarations for ext/nexthop.h (vif, next-hop, label and VNI tables;
# see the header for the thread-safety contract).
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from rcu cimport rcu_domain

cdef extern from "nexthop.h" nogil:
    enum: VIF_MAX
    enum: VIF_NONE
    enum: VIF_MAX_PREFIXES
    enum: NH_ECMP_MAX
    enum: NH_HDR_MAX
    enum: LABEL_MIN
    enum: IDMAP_PAGE
    uint32_t NH_NONE
    uint32_t NH_MAX_CAPACITY
    uint32_t NH_DEFAULT_CAPACITY
    uint32_t LABEL_MAX
    uint32_t VNI_MAX

    enum: VIF_VIRTUAL
    enum: VIF_FABRIC
    enum: VIF_HOST
    enum: VIF_F_POLICY
    enum: VIF_F_ADMIN_DOWN
    enum: NH_DISCARD
    enum: NH_RECEIVE
    enum: NH_INTERFACE
    enum: NH_TUNNEL
    enum: NH_ECMP
    enum: NH_VRF
    enum: NH_ENC_VXLAN
    enum: NH_ENC_MPLSOUDP

    struct vr_prefix:
        uint8_t addr[16]
        uint8_t len
        uint8_t family

    struct vif:
        uint16_t id
        uint8_t kind
        uint8_t flags
        uint16_t vrf
        uint16_t mtu
        uint16_t vlan
        uint8_t mac[6]
        uint8_t has_gw4
        uint8_t has_gw6
        uint8_t gw4[4]
        uint8_t gw6[16]
        uint8_t n_prefixes
        vr_prefix prefixes[8]

    struct nh_spec:
        uint32_t id
        uint8_t type
        uint8_t encap
        uint8_t family
        uint8_t ttl
        uint16_t vif
        uint16_t vrf
        uint8_t dmac[6]
        uint8_t smac[6]
        uint8_t inner_dmac[6]
        uint32_t label
        uint8_t src[16]
        uint8_t dst[16]
        uint32_t n_members
        uint32_t members[64]

    struct nh:
        nh_spec s
        uint8_t hdr[96]
        uint8_t hdr_len
        uint8_t l3_off
        uint32_t ip_csum_base
        uint32_t udp_csum_base
        uint32_t n_live
        uint32_t live[64]

    struct nh_table:
        pass

    int nh_table_create(rcu_domain *rcu, uint32_t capacity, nh_table **out)
    void nh_table_destroy(nh_table *t)
    uint32_t nh_capacity(const nh_table *t)
    size_t nh_table_memory(const nh_table *t)

    int vif_set(nh_table *t, const vif *v, const char **why)
    int vif_del(nh_table *t, uint16_t id)
    int nh_set(nh_table *t, const nh_spec *s, const char **why)
    int nh_del(nh_table *t, uint32_t id)
    int label_set(nh_table *t, uint32_t label, uint32_t nh)
    int label_del(nh_table *t, uint32_t label)
    int vni_set(nh_table *t, uint32_t vni, uint16_t vrf)
    int vni_del(nh_table *t, uint32_t vni)
    uint32_t nh_refs(const nh_table *t, uint32_t id)
    uint32_t vif_refs(const nh_table *t, uint16_t id)
    uint32_t vif_list(const nh_table *t, uint32_t *cursor, uint16_t *ids, uint32_t cap)
    uint32_t nh_list(const nh_table *t, uint32_t *cursor, uint32_t *ids, uint32_t cap)
    uint32_t label_list(const nh_table *t, uint32_t *cursor, uint32_t *labels, uint32_t *nhs,
                        uint32_t cap)
    uint32_t vni_list(const nh_table *t, uint32_t *cursor, uint32_t *vnis, uint16_t *vrfs,
                      uint32_t cap)

    const vif *vif_get(const nh_table *t, uint32_t id)
    const nh *nh_get(const nh_table *t, uint32_t id)
    uint32_t label_lookup(const nh_table *t, uint32_t label)
    int vni_lookup(const nh_table *t, uint32_t vni)
