# Cython declarations for ext/flow.h (flow table; see the header for the
# thread-safety contract).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t

cdef extern from "flow.h" nogil:
    enum: FLOW_MAX_WORKERS
    enum: FLOW_BURST
    enum: FLOW_MIN_CAPACITY
    enum: FLOW_MAX_CAPACITY
    enum: FLOW_DEFAULT_CAPACITY
    enum: FLOW_DROP__COUNT
    uint32_t FLOW_NONE

    struct flow_key:
        uint8_t src[16]
        uint8_t dst[16]
        uint16_t sport
        uint16_t dport
        uint16_t vrf
        uint8_t proto
        uint8_t family

    struct flow_entry:
        flow_key key
        uint32_t nh
        uint32_t rule_id
        uint32_t policy_gen
        uint32_t bucket
        uint16_t vif
        uint8_t action
        uint8_t drop_reason
        uint8_t state
        uint8_t tcp
        uint8_t ecmp

    struct flow_times:
        uint64_t packets
        uint64_t bytes
        uint64_t first_seen
        uint64_t last_seen

    struct flow_timeouts:
        uint64_t tcp
        uint64_t tcp_close
        uint64_t udp
        uint64_t icmp
        uint64_t other
        uint64_t drop

    struct flow_result:
        uint32_t index
        uint32_t nh
        uint32_t rule_id
        uint8_t found
        uint8_t action
        uint8_t drop_reason
        uint8_t tcp
        uint8_t ecmp
        uint32_t hash

    struct flow_install:
        uint32_t nh
        uint32_t rev_nh
        uint32_t rule_id
        uint32_t policy_gen
        uint16_t vif
        uint8_t action
        uint8_t drop_reason
        uint8_t ecmp
        uint8_t rev_ecmp

    struct flow_stats:
        uint64_t inserts
        uint64_t removed
        uint64_t aged
        uint64_t exists
        uint64_t vif_quota
        uint64_t vrf_quota
        uint64_t table_full
        uint64_t hits
        uint64_t misses
        uint64_t revalidated
        uint64_t swept
        uint64_t entries

    ctypedef int (*flow_reval_fn)(void *ctx, const flow_key *k, uint16_t vif, uint32_t *rule_id)
    struct flow_revalidator:
        flow_reval_fn fn
        void *ctx
        uint32_t gen

    struct flow_table:
        pass

    const char *flow_drop_name(int reason)
    int flow_create(uint32_t capacity, const flow_timeouts *to, flow_table **out)
    void flow_destroy(flow_table *t)
    void flow_default_timeouts(flow_timeouts *to)
    void flow_set_timeouts(flow_table *t, const flow_timeouts *to)
    void flow_set_default_quota(flow_table *t, uint32_t per_vif, uint32_t per_vrf)
    int flow_set_vif_quota(flow_table *t, uint16_t vif, uint32_t max)
    int flow_set_vrf_quota(flow_table *t, uint16_t vrf, uint32_t max)
    uint32_t flow_capacity(const flow_table *t)
    size_t flow_memory(const flow_table *t)
    uint32_t flow_vif_count(const flow_table *t, uint16_t vif)
    uint32_t flow_vrf_count(const flow_table *t, uint16_t vrf)
    uint64_t flow_hash(const flow_key *k)
    void flow_key_reverse(const flow_key *k, flow_key *rev)
    uint32_t flow_lookup(flow_table *t, const flow_key *k)
    int flow_key_copies(flow_table *t, const flow_key *k)
    void flow_lookup_bulk(flow_table *t, int worker, const flow_key *keys, uint32_t n, flow_result *res)
    int flow_get(flow_table *t, uint32_t idx, flow_entry *e, flow_times *tm)
    void flow_touch_bulk(flow_table *t, const uint32_t *idx, const uint32_t *nbytes,
                         const uint8_t *tcp_flags, uint32_t n, uint64_t now)
    int flow_insert_pair(flow_table *t, int worker, const flow_key *fwd, const flow_key *rev,
                         const flow_install *inst, uint64_t now, int *reason)
    void flow_insert_pairs(flow_table *t, int worker, const flow_key *keys, const flow_install *inst,
                           uint32_t n, uint64_t now, int32_t *out, uint8_t *reason)
    int flow_delete(flow_table *t, int worker, const flow_key *k)
    int flow_delete_index(flow_table *t, int worker, uint32_t idx)
    uint32_t flow_sweep(flow_table *t, int worker, uint64_t now, uint32_t budget,
                        const flow_revalidator *rv, uint32_t *examined)
    void flow_stats_read "flow_stats"(const flow_table *t, flow_stats *out)
    uint32_t flow_dump(flow_table *t, uint32_t *cursor, flow_entry *e, flow_times *tm,
                       uint32_t *idx, uint32_t maxn)
    int flow_pair_expired(flow_table *t, uint32_t pair, uint64_t now)
