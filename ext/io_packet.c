/* AF_PACKET ports: a TPACKET_V3 receive ring, sendmmsg() for transmit.
 *
 * Receive. The kernel fills the ring one block at a time (AFP_BLOCK_SIZE
 * bytes, frames packed back to back, each behind a struct tpacket3_hdr) and
 * hands a block to user space (block_status TP_STATUS_USER) when it is full
 * or when AFP_RETIRE_MS have passed since its first frame. rx_burst walks the
 * handed-over blocks in ring order and copies each frame into a pool frame at
 * IO_HEADROOM; a block goes back to the kernel (TP_STATUS_KERNEL) once every
 * frame in it is consumed. The cursor (block, frame index, offset) lives in
 * struct afp, so a burst stops anywhere - max reached, pool empty - and the
 * next call resumes at the same frame.
 *
 * The kernel strips the outer 802.1Q / 802.1ad tag of every received frame
 * into tp_vlan_tci / tp_vlan_tpid (TP_STATUS_VLAN_VALID): the copy puts it
 * back, so the pipeline sees the frame as it was on the wire.
 *
 * Transmit. One sendmmsg() per burst (the kernel copies each frame into an
 * skb, so nothing is outstanding when it returns), PACKET_QDISC_BYPASS (the
 * frame goes straight to the driver), PACKET_IGNORE_OUTGOING (the ring never
 * sees what leaves the device, ours or the host stack's).
 *
 * Readiness. The fd is readable (EPOLLIN) while the most recently handed-over
 * block is still ours; a lone frame becomes visible after at most
 * AFP_RETIRE_MS. The device going down sets the socket's error (EPOLLERR
 * until read with getsockopt(SO_ERROR)); frames flow again when it is up.
 */
#define _GNU_SOURCE   /* sendmmsg */
#include "io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mem.h"

/* 64 x 64 KiB = 4 MiB per port: about 29000 64-byte or 2560 1514-byte frames
 * when they come fast. A block is handed over when full *or* AFP_RETIRE_MS
 * after it opened, so under a trickle each block holds only what arrived in
 * that time: a reader that stalls longer than AFP_BLOCK_NR * AFP_RETIRE_MS
 * (128 ms) loses frames even at a low rate. More, smaller blocks stretch that. */
#define AFP_BLOCK_SIZE (64u << 10)
#define AFP_BLOCK_NR 64u
#define AFP_FRAME_SIZE 2048u          /* V3 packs frames; this only sizes tp_frame_nr */
#define AFP_RETIRE_MS 2u              /* a block with frames is handed over after this at the latest */
#define AFP_TX_BATCH PKT_BURST_MAX    /* frames per sendmmsg() */
#define AFP_ROOM (IO_FRAME_SIZE - IO_HEADROOM)

struct afp {
    uint8_t *ring;
    size_t ring_bytes;
    uint32_t block_size, nblocks;
    uint32_t blk;          /* cursor: block being read */
    uint32_t idx;          /* frames of it consumed */
    uint32_t off;          /* offset of the next frame from the block start */
    uint32_t mtu;
    int ifindex;
    struct mmsghdr msgs[AFP_TX_BATCH];
    struct iovec iov[AFP_TX_BATCH];
};

static int fail(char *err, size_t errlen, int e, const char *fmt, const char *ifname)
{
    if (err && errlen) {
        char what[96];
        snprintf(what, sizeof what, fmt, ifname);
        snprintf(err, errlen, "AF_PACKET %s: %s", what, strerror(e));
    }
    return -e;
}

static inline struct tpacket_block_desc *afp_block(const struct afp *a, uint32_t i)
{
    return (struct tpacket_block_desc *)(a->ring + (size_t)i * a->block_size);
}

/* The kernel's drop count since the last read (it resets on read): called
 * when a block comes flagged TP_STATUS_LOSING, i.e. only while frames are
 * being lost, and at close. */
static void afp_read_drops(struct io_port *port)
{
    struct tpacket_stats_v3 s;
    socklen_t len = sizeof s;
    if (getsockopt(port->fd, SOL_PACKET, PACKET_STATISTICS, &s, &len) == 0)
        port->st.rx_ring_full += s.tp_drops;
}

static void afp_read_mtu(struct io_port *port, struct afp *a)
{
    /* by index, on the port's own socket: its namespace, whatever the calling thread's */
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_ifindex = a->ifindex;
    if (ioctl(port->fd, SIOCGIFNAME, &ifr) < 0)
        return;
    if (ioctl(port->fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0)
        a->mtu = (uint32_t)ifr.ifr_mtu;
}

static uint32_t afp_rx(struct io_port *port, struct io_pool *pool, struct pkt *pkts, uint32_t max)
{
    struct afp *a = port->priv;
    uint32_t n = 0;
    while (n < max) {
        struct tpacket_block_desc *bd = afp_block(a, a->blk);
        uint32_t status = __atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE);
        if (!(status & TP_STATUS_USER))
            break;
        uint32_t num = bd->hdr.bh1.num_pkts;
        if (a->idx == 0) {
            a->off = bd->hdr.bh1.offset_to_first_pkt;
            if (VR_UNLIKELY(status & TP_STATUS_LOSING))
                afp_read_drops(port);
        }
        while (a->idx < num && n < max) {
            if (VR_UNLIKELY(a->off > a->block_size - sizeof(struct tpacket3_hdr))) {
                port->st.rx_dropped += num - a->idx;   /* never seen: a malformed block */
                a->idx = num;
                break;
            }
            const struct tpacket3_hdr *h = (const struct tpacket3_hdr *)((const uint8_t *)bd + a->off);
            uint32_t snap = h->tp_snaplen;
            uint32_t tag = (h->tp_status & TP_STATUS_VLAN_VALID) ? 4u : 0u;
            if (VR_UNLIKELY(snap < h->tp_len || snap < ETH_HLEN || snap + tag > AFP_ROOM ||
                            (size_t)h->tp_mac + snap > a->block_size - a->off)) {
                port->st.rx_dropped++;   /* truncated, runt, or longer than a pool frame holds */
            } else {
                uint8_t *f = io_pool_get(pool);
                if (VR_UNLIKELY(!f)) {
                    port->st.rx_no_buffer++;
                    return n;   /* the cursor stays on this frame */
                }
                const uint8_t *src = (const uint8_t *)h + h->tp_mac;
                uint8_t *d = f + IO_HEADROOM;
                if (tag) {
                    uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) && h->hv1.tp_vlan_tpid
                                        ? h->hv1.tp_vlan_tpid
                                        : ETH_P_8021Q;
                    memcpy(d, src, 2 * ETH_ALEN);
                    vr_put16(d + 12, tpid);
                    vr_put16(d + 14, (uint16_t)h->hv1.tp_vlan_tci);
                    memcpy(d + 16, src + 2 * ETH_ALEN, snap - 2 * ETH_ALEN);
                } else {
                    memcpy(d, src, snap);
                }
                io_pkt_init(&pkts[n++], f, IO_HEADROOM, (uint16_t)(snap + tag), port->vif);
                port->st.rx_packets++;
                port->st.rx_bytes += snap + tag;
            }
            a->idx++;
            a->off += h->tp_next_offset;
        }
        if (a->idx < num)
            break;   /* max reached mid-block */
        __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        a->blk = a->blk + 1 == a->nblocks ? 0 : a->blk + 1;
        a->idx = 0;
    }
    return n;
}

/* The longest frame the kernel takes: MTU + Ethernet header, + 4 when the
 * frame carries an 802.1Q tag (packet_snd's rule). */
static inline uint32_t afp_max_len(const struct afp *a, const uint8_t *frame)
{
    return a->mtu + ETH_HLEN + (vr_get16(frame + 12) == ETH_P_8021Q ? 4u : 0u);
}

static uint32_t afp_tx(struct io_port *port, struct io_pool *pool, struct pkt *const *pkts, uint32_t n)
{
    struct afp *a = port->priv;
    uint32_t sent = 0;
    int mtu_checked = 0, failed = 0;
    for (uint32_t base = 0; base < n; base += AFP_TX_BATCH) {
        uint32_t cnt = n - base < AFP_TX_BATCH ? n - base : AFP_TX_BATCH;
        uint32_t m = 0;
        for (uint32_t i = 0; i < cnt; i++) {
            const struct pkt *p = pkts[base + i];
            uint8_t *d = pkt_data(p);
            if (VR_UNLIKELY(p->data_len < ETH_HLEN)) {
                port->st.tx_errors++;
                continue;
            }
            if (VR_UNLIKELY(p->data_len > afp_max_len(a, d))) {
                if (!mtu_checked) {   /* the MTU may have grown since: look once per burst */
                    mtu_checked = 1;
                    afp_read_mtu(port, a);
                }
                if (p->data_len > afp_max_len(a, d)) {
                    port->st.tx_too_big++;
                    continue;
                }
            }
            a->iov[m].iov_base = d;
            a->iov[m].iov_len = p->data_len;
            a->msgs[m].msg_hdr = (struct msghdr){.msg_iov = &a->iov[m], .msg_iovlen = 1};
            m++;
        }
        uint32_t i = 0;
        while (i < m) {
            int r = sendmmsg(port->fd, &a->msgs[i], m - i, MSG_DONTWAIT);
            port->st.wakeups++;
            if (VR_LIKELY(r > 0)) {
                for (uint32_t k = i; k < i + (uint32_t)r; k++)
                    port->st.tx_bytes += a->iov[k].iov_len;
                port->st.tx_packets += (uint32_t)r;
                sent += (uint32_t)r;
                i += (uint32_t)r;
                continue;   /* a short count: the next call reports what stopped it */
            }
            int e = r < 0 ? errno : EAGAIN;
            failed = 1;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
                port->st.tx_full += m - i;   /* the device queue is full: the rest waits no better */
                break;
            }
            if (e == EMSGSIZE) {             /* the MTU shrank */
                port->st.tx_too_big++;
                afp_read_mtu(port, a);
                i++;
            } else if (e == EINVAL) {        /* this frame's header */
                port->st.tx_errors++;
                i++;
            } else {                          /* ENETDOWN, ENXIO, ...: the device, for every frame */
                port->st.tx_errors += m - i;
                break;
            }
        }
        for (uint32_t k = 0; k < cnt; k++)
            io_pool_put(pool, pkts[base + k]->buf);
    }
    if (VR_UNLIKELY(failed)) {
        /* a partial sendmmsg() may park its error in the socket (EPOLLERR): clear it */
        int e;
        socklen_t len = sizeof e;
        getsockopt(port->fd, SOL_SOCKET, SO_ERROR, &e, &len);
    }
    return sent;
}

static void afp_poll_tx(struct io_port *port, struct io_pool *pool)
{
    (void)port;
    (void)pool;   /* sendmmsg() copies: nothing outstanding */
}

static void afp_close(struct io_port *port, struct io_pool *pool)
{
    (void)pool;
    struct afp *a = port->priv;
    if (port->fd >= 0)
        afp_read_drops(port);
    if (a) {
        if (a->ring)
            munmap(a->ring, a->ring_bytes);
        vr_free(a);
    }
    port->priv = NULL;
    if (port->fd >= 0)
        close(port->fd);
    port->fd = -1;
}

static const struct io_ops afp_ops = {afp_rx, afp_tx, afp_poll_tx, afp_close};

static int setopt(int fd, int level, int name, int val)
{
    return setsockopt(fd, level, name, &val, sizeof val);
}

VR_EXPORT int io_packet_open(struct io_port *port, const char *ifname, uint16_t vif, char *err, size_t errlen)
{
    memset(port, 0, sizeof *port);
    port->fd = -1;
    if (err && errlen)
        err[0] = 0;
    if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ)
        return fail(err, errlen, EINVAL, "interface name '%.40s' (1 to 15 characters)", ifname ? ifname : "");

    /* Protocol 0: the socket receives nothing until bind() names the device
     * (ETH_P_ALL at socket() would queue frames of every device until then). */
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        return fail(err, errlen, e,
                    e == EPERM || e == EACCES ? "socket for %s (needs CAP_NET_RAW)" : "socket for %s", ifname);
    }
    struct afp *a = NULL;
    int e;
    const char *what;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, ifname, strlen(ifname));
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
        e = errno == ENODEV ? ENODEV : errno;
        what = "%s: no such interface in this network namespace";
        goto out;
    }
    int ifindex = ifr.ifr_ifindex;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
        e = errno;
        what = "%s: hardware address";
        goto out;
    }
    if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
        e = EPROTONOSUPPORT;
        what = "%s: not an Ethernet device";
        goto out;
    }
    if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) {
        e = errno;
        what = "%s: MTU";
        goto out;
    }
    a = vr_calloc(1, sizeof *a);
    if (!a) {
        e = ENOMEM;
        what = "%s: port state";
        goto out;
    }
    a->mtu = (uint32_t)ifr.ifr_mtu;
    a->ifindex = ifindex;
    a->block_size = AFP_BLOCK_SIZE;
    a->nblocks = AFP_BLOCK_NR;

    if (setopt(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V3) < 0) {
        e = errno;
        what = "%s: PACKET_VERSION TPACKET_V3";
        goto out;
    }
    if (setopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1) < 0) {
        e = errno;
        what = "%s: PACKET_IGNORE_OUTGOING";
        goto out;
    }
    if (setopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1) < 0) {
        e = errno;
        what = "%s: PACKET_QDISC_BYPASS";
        goto out;
    }
    struct tpacket_req3 req = {
        .tp_block_size = AFP_BLOCK_SIZE,
        .tp_block_nr = AFP_BLOCK_NR,
        .tp_frame_size = AFP_FRAME_SIZE,
        .tp_frame_nr = AFP_BLOCK_SIZE / AFP_FRAME_SIZE * AFP_BLOCK_NR,
        .tp_retire_blk_tov = AFP_RETIRE_MS,
    };
    if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) {
        e = errno;
        what = "%s: PACKET_RX_RING";
        goto out;
    }
    a->ring_bytes = (size_t)AFP_BLOCK_SIZE * AFP_BLOCK_NR;
    void *ring = mmap(NULL, a->ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (ring == MAP_FAILED) {
        e = errno;
        what = "%s: mmap of the receive ring";
        goto out;
    }
    a->ring = ring;
    struct sockaddr_ll sll = {
        .sll_family = AF_PACKET,
        .sll_protocol = htons(ETH_P_ALL),
        .sll_ifindex = ifindex,
    };
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        e = errno;
        what = "%s: bind";
        goto out;
    }
    /* bound while the device is down: the socket carries ENETDOWN; frames
     * flow once it is up, so the open itself is fine */
    int soerr;
    socklen_t slen = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen);

    port->ops = &afp_ops;
    port->kind = IO_PACKET;
    port->fd = fd;
    port->vif = vif;
    port->queue = 0;
    memcpy(port->ifname, ifname, strlen(ifname) + 1);
    port->priv = a;
    return 0;

out:
    if (a) {
        if (a->ring)
            munmap(a->ring, a->ring_bytes);
        vr_free(a);
    }
    close(fd);
    return fail(err, errlen, e, what, ifname);
}
