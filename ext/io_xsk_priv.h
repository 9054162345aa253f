/* AF_XDP back-end, private header: XDP sockets over the worker's frame pool
 * (the UMEM). Three files share it: io_xsk_prog.c (the XDP program: attach,
 * detach, the device registry), io_xsk.c (UMEM and socket set-up, close) and
 * io_xsk_ring.c (the rx / tx burst path).
 *
 * Device side (control thread). io_xsk_attach loads ext/xdp_tunnel.bpf.c's
 * object with libxdp and attaches it to the device (native XDP, else generic
 * SKB mode); a small registry remembers the program per device so that
 * io_xsk_open finds its xsks_map and io_xsk_detach removes it.
 *
 * Pool side. The first XDP socket of a pool registers the pool's region as the
 * UMEM (chunks of IO_FRAME_SIZE, no UMEM headroom: the kernel writes a frame
 * XDP_PACKET_HEADROOM = 256 bytes into its chunk, more than IO_HEADROOM).
 * Every further socket of the pool shares it (xsk_socket__create_shared, its
 * own fill / completion rings: one pair per device queue). Per pool state
 * lives in pool->umem_priv (struct xsk_pool_ctx); pool->umem is libxdp's
 * struct xsk_umem.
 *
 * Frame accounting. frame_owner[i] is 0 while frame i is the pool's or the
 * caller's, else the slot of the socket whose fill or TX ring holds it. That
 * costs one byte store per frame on each path, and lets close return exactly
 * the frames its socket held (whatever the kernel did with them) so that a
 * pool ends with every frame back on its free stack.
 *
 * libxdp detail. The first socket of a UMEM is bound on the UMEM's own file
 * descriptor, which libxdp only closes with the UMEM. Closing that port while
 * other ports of the pool stay open therefore keeps its kernel socket bound
 * (out of xsks_map, so it receives nothing): it becomes a "zombie" whose fill
 * ring frames stay the kernel's until the pool's last port closes, and
 * opening the same device queue on the same pool again revives it.
 */
#ifndef VR_IO_XSK_PRIV_H
#define VR_IO_XSK_PRIV_H

#include "io.h"

#include <errno.h>
#include <linux/ethtool.h>
#include <linux/if_xdp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#define XSK_RING 2048u             /* descriptors in each of fill, completion, RX, TX */
#define XSK_FILL_MAX 1024u         /* frames a socket keeps in its fill ring at most */
#define XSK_MAX_SOCKS 63           /* sockets per pool (frame_owner holds a slot 1..63) */
#define XSK_MAP_ENTRIES 64         /* xsks_map: queues 0..63 */
#define XSK_MAX_DEVS 64            /* devices with an attached program */
#define XSK_KICK_MAX 16            /* sendto() per TX kick (copy mode sends a budget of frames per call) */
#define XSK_TX_BUDGET 256u         /* frames per sendto() in copy mode (kernel default 32) */
#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9    /* Linux 6.17 */
#endif
#define XSK_ETH_HLEN 14
#define XSK_VLAN_HLEN 4

_Static_assert((IO_FRAME_SIZE & (IO_FRAME_SIZE - 1)) == 0, "UMEM chunks are a power of two");
_Static_assert(IO_FRAME_SIZE >= 2048, "the kernel's smallest UMEM chunk is 2048 bytes");

struct xsk_pool_ctx;

struct xsk_sock {
    struct xsk_ring_cons rx;
    struct xsk_ring_prod tx;
    struct xsk_ring_prod fill;
    struct xsk_ring_cons comp;
    struct xsk_socket *xsk;
    struct xsk_pool_ctx *ctx;      /* NULL once the pool was finalised under the port */
    int fd;
    int ifindex;
    uint32_t queue;
    uint32_t fill_target;          /* frames kept in the fill ring (topped up below half) */
    uint32_t rx_held;              /* frames given to the fill ring, not yet received */
    uint32_t tx_held;              /* frames submitted for TX, not yet completed */
    uint32_t max_len;              /* longest frame sent: MTU + Ethernet header (+ 4 if tagged) */
    uint8_t slot;
    uint8_t zombie;
    char ifname[IO_NAME_MAX];
};

struct xsk_pool_ctx {
    struct xsk_sock *socks[XSK_MAX_SOCKS + 1];   /* by slot; [0] unused */
    struct xsk_sock *owner;        /* bound on the UMEM's fd (see the libxdp detail above) */
    uint32_t nlive;                /* open ports */
    uint8_t *frame_owner;          /* per frame: 0 or the slot holding it */
};

/* The device registry (io_xsk_prog.c): the devices our program is attached
 * to. xsk_lock serialises every use of it (control thread; the mutex makes
 * stray concurrent calls safe). */
struct xsk_dev {
    char ifname[IO_NAME_MAX];
    int ifindex;
    int mode;                      /* IO_XSK_MODE_NATIVE / IO_XSK_MODE_SKB */
    int map_fd;
    struct xdp_program *prog;
};

extern pthread_mutex_t xsk_lock;
struct xsk_dev *xsk_dev_find(const char *ifname);   /* under xsk_lock */
void xsk_map_remove(const struct xsk_sock *s);      /* takes xsk_lock */

/* io_xsk.c */
int xsk_fail(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int xsk_check_ifname(const char *ifname);

/* io_xsk_ring.c: the port ops of the burst path, and the ring chores that
 * open and close share with it. */
uint32_t xsk_rx(struct io_port *port, struct io_pool *pool, struct pkt *pkts, uint32_t max);
uint32_t xsk_tx(struct io_port *port, struct io_pool *pool, struct pkt *const *pkts, uint32_t n);
void xsk_poll_tx(struct io_port *port, struct io_pool *pool);
void xsk_reclaim(struct xsk_sock *s, struct io_pool *pool);
void xsk_refill(struct xsk_sock *s, struct io_port *port, struct io_pool *pool);

static inline uint32_t xsk_frame_of(uint64_t addr)
{
    return (uint32_t)(addr / IO_FRAME_SIZE);
}

#endif
