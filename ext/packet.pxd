# Cython declarations for ext/packet.h (descriptor, parser, checksums; no
# shared state: any thread, one descriptor per thread at a time).
from libc.stdint cimport uint8_t, uint16_t, uint32_t

cdef extern from "packet.h" nogil:
    enum: PKT_HEADROOM
    enum: PKT_BURST_MAX
    enum: PKT_IP6_MAX_EXT
    enum: PKT_DROP__COUNT
    enum: PKT_PARSE_VERIFY_IP4_CSUM
    enum: PKT_F_VLAN
    enum: PKT_F_ARP
    enum: PKT_F_IP4
    enum: PKT_F_IP6
    enum: PKT_F_OTHER
    enum: PKT_F_FRAG
    enum: PKT_F_L4
    enum: PKT_F_CSUM_OK

    struct pkt:
        uint8_t *buf
        uint16_t buf_size
        uint16_t data_off
        uint16_t data_len
        uint16_t vif
        uint8_t src[16]
        uint8_t dst[16]
        uint16_t sport
        uint16_t dport
        uint16_t ethertype
        uint16_t vlan_tci
        uint16_t l4_off
        uint8_t l3_off
        uint8_t flags
        uint8_t proto
        uint8_t ttl
        uint8_t tcp_flags
        uint8_t drop

    uint32_t pkt_parse_burst(pkt *pkts, uint32_t n, unsigned flags)
    uint32_t pkt_csum_add(const void *data, size_t len, uint32_t sum)
    uint16_t pkt_csum_fold(uint32_t sum)
    uint16_t pkt_ip4_csum(const uint8_t *ip, unsigned hlen)
    uint16_t pkt_csum_update16(uint16_t csum, uint16_t old, uint16_t new_)
    uint16_t pkt_csum_update(uint16_t csum, const uint8_t *old, const uint8_t *new_, unsigned len)
    uint32_t pkt_pseudo_sum(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto,
                            uint32_t l4_len)
    uint16_t pkt_l4_csum(const pkt *p)
    int pkt_l4_csum_fill(pkt *p)
    int pkt_ttl_decrement(pkt *p)
