# Cython declarations for ext/policy.h (compiled first-match policy lists;
# see the header for the thread-safety contract).
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from flow cimport flow_key
from rcu cimport rcu_domain

cdef extern from "policy.h" nogil:
    enum: POL_MAX_RULES
    enum: POL_PROTO_ANY
    enum: POL_PASS
    enum: POL_DENY
    enum: POL_DIR_IN
    enum: POL_DIR_OUT
    enum: POL_DIR_BOTH
    enum: POL_ATTACH_VRF
    enum: POL_ATTACH_VIF
    uint32_t POL_RULE_NONE
    uint32_t POL_RULE_DEFAULT

    struct pol_rule:
        uint8_t src[16]
        uint8_t dst[16]
        uint8_t src_len
        uint8_t dst_len
        uint8_t family
        uint8_t dir
        uint16_t proto
        uint16_t sport_lo
        uint16_t sport_hi
        uint16_t dport_lo
        uint16_t dport_hi
        uint8_t action
        uint8_t log
        uint32_t id

    struct pol_result:
        uint32_t rule_id
        uint8_t action
        uint8_t log

    struct pol_list:
        pass
    struct pol_table:
        pass

    int pol_list_build(const pol_rule *rules, uint32_t n, uint8_t default_action,
                       pol_list **out, uint32_t *bad_rule)
    void pol_list_free(void *l)
    size_t pol_list_memory(const pol_list *l)
    int pol_table_create(rcu_domain *d, pol_table **out)
    void pol_table_destroy(pol_table *pt)
    int pol_attach(pol_table *pt, int kind, uint16_t id, pol_list *l)
    uint32_t pol_generation(const pol_table *pt)
    int pol_eval(const pol_table *pt, const flow_key *k, uint16_t vif, int dir, pol_result *r)
    void pol_eval_bulk(const pol_table *pt, const flow_key *keys, const uint16_t *vifs, int dir,
                       uint32_t n, pol_result *res, int linear)
    int pol_flow_reval(void *ctx, const flow_key *k, uint16_t vif, uint32_t *rule_id)
