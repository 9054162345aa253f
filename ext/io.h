/* I/O back-ends: one API over TAP devices, AF_XDP sockets and AF_PACKET
 * rings, so that a worker moves bursts between any of them and the pipeline.
 *
 * Buffers. Each worker owns one frame pool (struct io_pool): a region of
 * fixed-size frames (IO_FRAME_SIZE) and a stack of free ones. With AF_XDP
 * the region *is* the UMEM the worker's XDP sockets share, so frames read
 * from a TAP device, encapsulated in place and sent on the fabric socket are
 * never copied in user space. A descriptor (struct pkt, packet.h) points
 * into a frame: buf = frame start, buf_size = IO_FRAME_SIZE, the packet at
 * data_off (IO_HEADROOM on receive, so encapsulation has room in front).
 *
 * Ownership. rx_burst hands the caller n frames of the pool, filled. The
 * caller gives each one back exactly once: to tx_burst (the port owns it from
 * then on and returns it to the pool when the kernel is done with it), or to
 * io_pool_put (dropped, answered to the host, ...). A frame from any port of
 * the worker's pool may go to any port of the same worker.
 *
 * Threads. A port and its pool belong to one worker thread at a time: no
 * call here is thread-safe against another call on the same port or pool.
 * Statistics are plain counters read racily (never torn) by the control thread.
 */
#ifndef VR_IO_H
#define VR_IO_H

#include <stddef.h>
#include <stdint.h>

#include "packet.h"
#include "vr_common.h"

#define IO_FRAME_SIZE 2048u
#define IO_HEADROOM PKT_HEADROOM
#define IO_BURST 64
#define IO_POOL_MAX_FRAMES (1u << 20)
#define IO_NAME_MAX 16

struct io_pool {
    uint8_t *base;          /* frames: base + i * IO_FRAME_SIZE */
    uint32_t nframes;
    uint32_t nfree;
    uint32_t *free;         /* stack of free frame indexes */
    size_t bytes;           /* mapping size (huge-page aligned when possible) */
    void *umem;             /* AF_XDP: the struct xsk_umem registered over base, or NULL */
    void *umem_priv;        /* AF_XDP: fill / completion rings owned by io_xsk.c */
};

/* Pool of nframes frames (mmap'd, MADV_HUGEPAGE): 0 / -EINVAL / -ENOMEM. */
VR_EXPORT int io_pool_init(struct io_pool *p, uint32_t nframes);
VR_EXPORT void io_pool_fini(struct io_pool *p);

static inline uint8_t *io_frame(const struct io_pool *p, uint32_t idx)
{
    return p->base + (size_t)idx * IO_FRAME_SIZE;
}

static inline uint32_t io_frame_index(const struct io_pool *p, const uint8_t *buf)
{
    return (uint32_t)((size_t)(buf - p->base) / IO_FRAME_SIZE);
}

/* A free frame, or NULL when the pool is empty. */
static inline uint8_t *io_pool_get(struct io_pool *p)
{
    return VR_LIKELY(p->nfree) ? io_frame(p, p->free[--p->nfree]) : NULL;
}

static inline void io_pool_put(struct io_pool *p, uint8_t *buf)
{
    p->free[p->nfree++] = io_frame_index(p, buf);
}

/* Set a descriptor over a frame the port just filled: len bytes at off
 * (IO_HEADROOM for TAP and AF_PACKET; AF_XDP puts them where the kernel
 * wrote them, XDP_PACKET_HEADROOM or more into the frame). */
static inline void io_pkt_init(struct pkt *pk, uint8_t *frame, uint16_t off, uint16_t len, uint16_t vif)
{
    pk->buf = frame;
    pk->buf_size = IO_FRAME_SIZE;
    pk->data_off = off;
    pk->data_len = len;
    pk->vif = vif;
}

struct io_port_stats {
    uint64_t rx_packets, rx_bytes;
    uint64_t tx_packets, tx_bytes;
    uint64_t rx_no_buffer;     /* a frame was waiting but the pool was empty */
    uint64_t tx_full;          /* dropped: the kernel's queue / ring was full */
    uint64_t tx_errors;        /* dropped: the kernel refused the frame */
    uint64_t tx_too_big;       /* dropped: longer than the port sends */
    uint64_t wakeups;          /* syscalls made to kick the kernel (AF_XDP, AF_PACKET) */
    uint64_t rx_dropped;       /* received but dropped by the port: truncated, runt, longer than a frame */
    uint64_t rx_ring_full;     /* dropped by the kernel before the port saw them: receive ring full
                                  (AF_PACKET: PACKET_STATISTICS tp_drops, read when a block says
                                  TP_STATUS_LOSING and at close) */
};

enum io_kind { IO_TAP = 1, IO_XSK = 2, IO_PACKET = 3 };

struct io_port;

struct io_ops {
    /* Up to max frames received into pkts (descriptors set, vif = the port's). */
    uint32_t (*rx_burst)(struct io_port *port, struct io_pool *pool, struct pkt *pkts, uint32_t max);
    /* Send n frames; the port owns them from here (every one goes back to the
     * pool, sent or dropped). Returns how many the kernel took. */
    uint32_t (*tx_burst)(struct io_port *port, struct io_pool *pool, struct pkt *const *pkts, uint32_t n);
    /* Reclaim frames the kernel finished sending (AF_XDP completions, ...). */
    void (*poll_tx)(struct io_port *port, struct io_pool *pool);
    void (*close)(struct io_port *port, struct io_pool *pool);
};

struct io_port {
    const struct io_ops *ops;
    int kind;                  /* enum io_kind */
    int fd;                    /* readable when frames wait (poll / epoll) */
    uint16_t vif;              /* the vif this queue belongs to */
    uint16_t queue;
    char ifname[IO_NAME_MAX];
    struct io_port_stats st;
    void *priv;                /* back-end state */
};

/* ---- TAP (io_tap.c) ----
 * Open queue `queue` of TAP device ifname (created if absent, IFF_TAP |
 * IFF_NO_PI, IFF_MULTI_QUEUE when multi), non-blocking. The device keeps
 * existing while a queue is open; moving it to another namespace keeps the
 * file descriptors working. 0 or a negative errno. */
VR_EXPORT int io_tap_open(struct io_port *port, const char *ifname, int multi, uint16_t queue, uint16_t vif);

/* ---- AF_XDP (io_xsk.c, io_xsk_ring.c, io_xsk_prog.c) ----
 * Bind an XDP socket to queue `queue` of ifname over the pool's UMEM
 * (registered on first use), copy or zero-copy as the driver allows,
 * need_wakeup on. xdp_obj: the BPF object whose program steers only UDP to
 * the tunnel ports to the socket (everything else goes to the kernel stack);
 * it is attached once per device (io_xsk_attach) before the first bind. */
VR_EXPORT int io_xsk_attach(const char *ifname, const char *xdp_obj, int skb_mode, char *err, size_t errlen);
VR_EXPORT int io_xsk_detach(const char *ifname);
VR_EXPORT int io_xsk_open(struct io_port *port, struct io_pool *pool, const char *ifname, uint16_t queue,
                          uint16_t vif, int skb_mode, char *err, size_t errlen);
/* Details (io_xsk_priv.h's head comment has the rest):
 * - attach: native (driver) XDP unless skb_mode, falling back to generic (SKB)
 *   mode; io_xsk_mode tells which one the device got. One program per device
 *   per process (-EEXIST while attached); a leftover of ours from a process that
 *   died is replaced. detach: 0 or -ENOENT; open sockets stay but get nothing.
 * - open: -ENOENT before attach, -ENODEV unknown device, -EINVAL queue beyond
 *   the device's (or xsks_map's 64), -ENOBUFS pool under IO_XSK_MIN_FRAMES,
 *   -EBUSY queue taken. Rings of 2048; the fill ring is kept at
 *   min(nframes / 4, 1024) frames (topped up by rx_burst when below half), so
 *   size a pool for its sockets' fill rings + frames in flight on TX + the
 *   frames the worker holds. Frames arrive 256 bytes into their frame
 *   (XDP_PACKET_HEADROOM), at most 1792 bytes long (copy mode).
 * - worker: port->fd is readable when the RX ring has frames (epoll). Frames
 *   sent come back to the pool only through poll_tx (or the next tx_burst):
 *   call it every loop turn. In copy mode the kernel sends only when kicked
 *   (sendto, counted in st.wakeups; one per burst with Linux >= 6.17, else one
 *   per 32 frames); a device that is down or pushes back keeps frames in the
 *   TX ring, and poll_tx kicks them again. TX frames must be whole frames of
 *   the port's pool (buf = frame start, data_off + data_len <= IO_FRAME_SIZE);
 *   longer than MTU + 14 (+ 4 when 802.1Q-tagged): tx_too_big.
 * - io_pool_fini tears down what io_xsk left on a pool (io_xsk_pool_release):
 *   close the ports first; a port closed after only frees its state. */
#define IO_XSK_MODE_NATIVE 1
#define IO_XSK_MODE_SKB 2
#define IO_XSK_MIN_FRAMES 256u
VR_EXPORT int io_xsk_mode(const char *ifname);   /* IO_XSK_MODE_* or -ENOENT */
VR_EXPORT void io_xsk_pool_release(struct io_pool *pool);

/* The kernel's counters of an XDP socket (XDP_STATISTICS). */
struct io_xsk_kstats {
    uint64_t rx_dropped, rx_invalid_descs, tx_invalid_descs;
    uint64_t rx_ring_full, rx_fill_ring_empty_descs, tx_ring_empty_descs;
};
VR_EXPORT int io_xsk_kernel_stats(const struct io_port *port, struct io_xsk_kstats *out);

/* ---- AF_PACKET (io_packet.c) ----
 * A TPACKET_V3 receive ring on ifname (64 blocks x 64 KiB, a block handed
 * over when full or 2 ms after its first frame; each frame copied once into a
 * pool frame at IO_HEADROOM, a stripped VLAN tag put back), sendmmsg() for
 * transmit (one call per burst, PACKET_QDISC_BYPASS); PACKET_IGNORE_OUTGOING
 * so the node does not see its own frames. Ethernet devices only. 0, or a
 * negative errno with a message in err. */
VR_EXPORT int io_packet_open(struct io_port *port, const char *ifname, uint16_t vif, char *err, size_t errlen);

static inline uint32_t io_rx_burst(struct io_port *port, struct io_pool *pool, struct pkt *pkts, uint32_t max)
{
    return port->ops->rx_burst(port, pool, pkts, max);
}

static inline uint32_t io_tx_burst(struct io_port *port, struct io_pool *pool, struct pkt *const *pkts,
                                   uint32_t n)
{
    return port->ops->tx_burst(port, pool, pkts, n);
}

static inline void io_poll_tx(struct io_port *port, struct io_pool *pool)
{
    port->ops->poll_tx(port, pool);
}

VR_EXPORT void io_close(struct io_port *port, struct io_pool *pool);

#endif
