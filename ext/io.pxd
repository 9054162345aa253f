# Cython declarations for ext/io.h (frame pools and I/O ports; one thread per
# port and pool at a time).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stddef cimport size_t
from packet cimport pkt

cdef extern from "io.h" nogil:
    enum: IO_FRAME_SIZE
    enum: IO_HEADROOM
    enum: IO_BURST
    enum: IO_POOL_MAX_FRAMES
    enum: IO_TAP
    enum: IO_XSK
    enum: IO_PACKET
    enum: IO_XSK_MODE_NATIVE
    enum: IO_XSK_MODE_SKB
    enum: IO_XSK_MIN_FRAMES

    struct io_pool:
        uint8_t *base
        uint32_t nframes
        uint32_t nfree

    struct io_port_stats:
        uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes
        uint64_t rx_no_buffer, tx_full, tx_errors, tx_too_big, wakeups
        uint64_t rx_dropped, rx_ring_full

    struct io_ops:
        pass

    struct io_port:
        const io_ops *ops
        int kind
        int fd
        uint16_t vif
        uint16_t queue
        char ifname[16]
        io_port_stats st

    int io_pool_init(io_pool *p, uint32_t nframes)
    void io_pool_fini(io_pool *p)
    uint8_t *io_pool_get(io_pool *p)
    void io_pool_put(io_pool *p, uint8_t *buf)
    void io_pkt_init(pkt *pk, uint8_t *frame, uint16_t off, uint16_t len, uint16_t vif)
    int io_tap_open(io_port *port, const char *ifname, int multi, uint16_t queue, uint16_t vif)
    int io_packet_open(io_port *port, const char *ifname, uint16_t vif, char *err, size_t errlen)

    struct io_xsk_kstats:
        uint64_t rx_dropped, rx_invalid_descs, tx_invalid_descs
        uint64_t rx_ring_full, rx_fill_ring_empty_descs, tx_ring_empty_descs

    int io_xsk_attach(const char *ifname, const char *xdp_obj, int skb_mode, char *err, size_t errlen)
    int io_xsk_detach(const char *ifname)
    int io_xsk_mode(const char *ifname)
    int io_xsk_open(io_port *port, io_pool *pool, const char *ifname, uint16_t queue, uint16_t vif,
                    int skb_mode, char *err, size_t errlen)
    int io_xsk_kernel_stats(const io_port *port, io_xsk_kstats *out)
    void io_poll_tx(io_port *port, io_pool *pool)
    uint32_t io_rx_burst(io_port *port, io_pool *pool, pkt *pkts, uint32_t max)
    uint32_t io_tx_burst(io_port *port, io_pool *pool, pkt *const *pkts, uint32_t n)
    void io_close(io_port *port, io_pool *pool)
