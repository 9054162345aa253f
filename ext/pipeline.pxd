# Cython declarations for ext/pipeline.h (see its thread-safety contract).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from packet cimport pkt

cdef extern from "pipeline.h" nogil:
    enum: PL_MAX_WORKERS
    enum: PL_BURST
    enum: PL_DROP__COUNT
    enum: PL_REPLY__COUNT
    enum: PL_TRACE_MAX
    enum: PL_F_VERIFY_IP4_CSUM
    enum: PL_FORWARD
    enum: PL_REPLY
    enum: PL_HOST
    enum: PL_DROP

    struct pipeline:
        pass

    struct pl_result:
        uint16_t out_vif
        uint8_t verdict
        uint8_t reason

    struct pl_vif_stats:
        uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes, drops

    struct pl_vrf_stats:
        uint64_t packets, bytes

    struct pl_stats:
        uint64_t packets
        uint64_t forwarded, replies, to_host, dropped
        uint64_t flow_hits, flow_misses, flow_installs
        uint64_t encap_vxlan, encap_mpls, decap_vxlan, decap_mpls
        uint64_t drops[1]
        uint64_t reply[1]

    const char *pl_reply_name(int kind)
    int pl_create(void *nt, void *l4, void *l6, void *ft, void *pt, int nworkers, unsigned flags,
                  pipeline **out)
    void pl_destroy(pipeline *pl)
    int pl_workers(const pipeline *pl)
    void pl_stats_clear(pipeline *pl)
    uint32_t pl_process(pipeline *pl, int worker, pkt *pkts, uint32_t n, pl_result *res, uint64_t now)
    size_t pl_trace(pipeline *pl, pkt *p, pl_result *res, uint64_t now, char *buf, size_t cap)
    void pl_read_stats(const pipeline *pl, pl_stats *out)
    void pl_read_vif_stats(const pipeline *pl, uint16_t vif, pl_vif_stats *out)
    void pl_read_vrf_stats(const pipeline *pl, uint16_t vrf, pl_vrf_stats *out)
    uint32_t pl_flows_revalidate(pipeline *pl, int vrf, uint32_t *examined)
