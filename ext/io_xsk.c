/* AF_XDP back-end: XDP sockets over the worker's frame pool (the UMEM).
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

/* ---- error text ---- */

static int xsk_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int xsk_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ---- device registry (control thread; the mutex makes stray concurrent calls safe) ---- */

struct xsk_dev {
    char ifname[IO_NAME_MAX];
    int ifindex;
    int mode;                      /* IO_XSK_MODE_NATIVE / IO_XSK_MODE_SKB */
    int map_fd;
    struct xdp_program *prog;
};

static struct xsk_dev xsk_devs[XSK_MAX_DEVS];
static pthread_mutex_t xsk_lock = PTHREAD_MUTEX_INITIALIZER;

static struct xsk_dev *xsk_dev_find(const char *ifname)
{
    for (int i = 0; i < XSK_MAX_DEVS; i++)
        if (xsk_devs[i].prog && strcmp(xsk_devs[i].ifname, ifname) == 0)
            return &xsk_devs[i];
    return NULL;
}

/* libxdp / libbpf messages while attaching: kept (the tail of the verifier
 * log ends an error message) instead of printed. Under xsk_lock. */
static char xsk_log[512];
static size_t xsk_log_len;

static void xsk_log_add(const char *fmt, va_list ap)
{
    char line[256];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n <= 0)
        return;
    size_t len = strlen(line);
    if (len >= sizeof xsk_log) {
        memcpy(xsk_log, line + len - (sizeof xsk_log - 1), sizeof xsk_log - 1);
        xsk_log_len = sizeof xsk_log - 1;
    } else {
        if (xsk_log_len + len >= sizeof xsk_log) {   /* keep the tail */
            size_t drop = xsk_log_len + len - (sizeof xsk_log - 1);
            memmove(xsk_log, xsk_log + drop, xsk_log_len - drop);
            xsk_log_len -= drop;
        }
        memcpy(xsk_log + xsk_log_len, line, len);
        xsk_log_len += len;
    }
    xsk_log[xsk_log_len] = 0;
}

static int xsk_log_xdp(enum libxdp_print_level level, const char *fmt, va_list ap)
{
    if (level == LIBXDP_WARN)
        xsk_log_add(fmt, ap);
    return 0;
}

static int xsk_log_bpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    if (level == LIBBPF_WARN)
        xsk_log_add(fmt, ap);
    return 0;
}

/* The last line of the captured log, trimmed (a verifier rejection ends with its reason). */
static const char *xsk_log_tail(void)
{
    while (xsk_log_len && (xsk_log[xsk_log_len - 1] == '\n' || xsk_log[xsk_log_len - 1] == ' '))
        xsk_log[--xsk_log_len] = 0;
    char *nl = strrchr(xsk_log, '\n');
    return nl ? nl + 1 : xsk_log;
}

static const char *xsk_mode_name(int mode)
{
    return mode == IO_XSK_MODE_SKB ? "skb" : "native";
}

static int xsk_check_ifname(const char *ifname)
{
    return ifname && *ifname && strlen(ifname) < IO_NAME_MAX;
}

/* Open the object and attach it in one mode: 0 or a negative errno, with
 * *final set when trying the other mode is pointless (the object is
 * unusable, or someone else's program holds the device). */
static int xsk_attach_mode(const char *obj, int ifindex, int mode, struct xdp_program **out, char *why, size_t whylen,
                           int *final)
{
    struct xdp_program *prog = xdp_program__open_file(obj, "xdp", NULL);
    long e = libxdp_get_error(prog);
    if (e) {
        snprintf(why, whylen, "cannot open %s: %s", obj, strerror((int)-e));
        *final = 1;
        return (int)e;
    }
    struct bpf_object *bo = xdp_program__bpf_obj(prog);
    if (!bo || !bpf_object__find_map_by_name(bo, "xsks_map")) {
        xdp_program__close(prog);
        snprintf(why, whylen, "%s has no map named xsks_map", obj);
        *final = 1;
        return -ENOENT;
    }
    xsk_log_len = 0;
    xsk_log[0] = 0;
    int rc = xdp_program__attach(prog, ifindex, mode == IO_XSK_MODE_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE, 0);
    if (rc == -EBUSY || rc == -EEXIST) {
        /* A program is on the device already (libxdp: EBUSY when it is not
         * its dispatcher). One of ours left by a process that died is
         * removed; anything else is someone else's. */
        struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);
        if (!libxdp_get_error(mp) && mp) {
            struct xdp_program *main = xdp_multiprog__main_prog(mp);
            const char *name = main ? xdp_program__name(main) : NULL;
            if (xdp_multiprog__is_legacy(mp) && name && strcmp(name, xdp_program__name(prog)) == 0 &&
                xdp_multiprog__detach(mp) == 0)
                rc = xdp_program__attach(prog, ifindex, mode == IO_XSK_MODE_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE, 0);
            else if (name) {
                snprintf(why, whylen, "another XDP program (%s) is attached", name);
                *final = 1;
                rc = -EEXIST;
            }
            xdp_multiprog__close(mp);
        }
    }
    if (rc) {
        if (!*why) {
            const char *tail = xsk_log_tail();
            snprintf(why, whylen, "%s%s%s", strerror(-rc), *tail ? " - " : "", tail);
        }
        xdp_program__close(prog);
        return rc;
    }
    *out = prog;
    return 0;
}

VR_EXPORT int io_xsk_attach(const char *ifname, const char *xdp_obj, int skb_mode, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!xsk_check_ifname(ifname))
        return xsk_fail(err, errlen, -EINVAL, "ifname %s: invalid device name", ifname ? ifname : "(null)");
    if (!xdp_obj || !*xdp_obj)
        return xsk_fail(err, errlen, -EINVAL, "ifname %s: no XDP object file given", ifname);
    if (access(xdp_obj, R_OK) != 0) {
        int e = errno;
        return xsk_fail(err, errlen, -e, "ifname %s: XDP object %s: %s", ifname, xdp_obj, strerror(e));
    }
    int ifindex = (int)if_nametoindex(ifname);
    if (!ifindex)
        return xsk_fail(err, errlen, -ENODEV, "ifname %s: no such device", ifname);

    pthread_mutex_lock(&xsk_lock);
    int rc;
    struct xsk_dev *d = xsk_dev_find(ifname);
    if (d && d->ifindex == ifindex) {
        rc = xsk_fail(err, errlen, -EEXIST, "ifname %s: XDP program already attached (%s mode); detach first",
                      ifname, xsk_mode_name(d->mode));
        goto out;
    }
    if (d) {   /* the device was deleted and recreated: the kernel dropped the program with it */
        xdp_program__close(d->prog);
        memset(d, 0, sizeof *d);
    }
    for (d = NULL, rc = 0; rc < XSK_MAX_DEVS; rc++)
        if (!xsk_devs[rc].prog) {
            d = &xsk_devs[rc];
            break;
        }
    if (!d) {
        rc = xsk_fail(err, errlen, -ENOSPC, "ifname %s: XDP programs attached to %d devices already", ifname,
                      XSK_MAX_DEVS);
        goto out;
    }

    libxdp_print_fn_t old_xdp = libxdp_set_print(xsk_log_xdp);
    libbpf_print_fn_t old_bpf = libbpf_set_print(xsk_log_bpf);
    struct xdp_program *prog = NULL;
    char why_native[200] = "", why_skb[200] = "";
    int mode = IO_XSK_MODE_NATIVE, final = 0;
    rc = -EOPNOTSUPP;
    if (!skb_mode)
        rc = xsk_attach_mode(xdp_obj, ifindex, IO_XSK_MODE_NATIVE, &prog, why_native, sizeof why_native, &final);
    if (rc && !final) {
        mode = IO_XSK_MODE_SKB;
        rc = xsk_attach_mode(xdp_obj, ifindex, IO_XSK_MODE_SKB, &prog, why_skb, sizeof why_skb, &final);
    }
    libbpf_set_print(old_bpf);
    libxdp_set_print(old_xdp);
    if (rc) {
        if (skb_mode)
            xsk_fail(err, errlen, rc, "ifname %s: XDP program attach failed (skb mode): %s", ifname, why_skb);
        else if (*why_skb)
            xsk_fail(err, errlen, rc, "ifname %s: XDP program attach failed: native: %s; skb: %s", ifname,
                     why_native, why_skb);
        else
            xsk_fail(err, errlen, rc, "ifname %s: XDP program attach failed: %s", ifname, why_native);
        goto out;
    }
    struct bpf_map *map = bpf_object__find_map_by_name(xdp_program__bpf_obj(prog), "xsks_map");
    int map_fd = map ? bpf_map__fd(map) : -1;
    if (map_fd < 0) {
        xdp_program__detach(prog, ifindex, mode == IO_XSK_MODE_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE, 0);
        xdp_program__close(prog);
        rc = xsk_fail(err, errlen, -ENOENT, "ifname %s: xsks_map not loaded", ifname);
        goto out;
    }
    memcpy(d->ifname, ifname, strlen(ifname) + 1);
    d->ifindex = ifindex;
    d->mode = mode;
    d->map_fd = map_fd;
    d->prog = prog;
    rc = 0;
out:
    pthread_mutex_unlock(&xsk_lock);
    return rc;
}

VR_EXPORT int io_xsk_detach(const char *ifname)
{
    if (!xsk_check_ifname(ifname))
        return -ENOENT;
    pthread_mutex_lock(&xsk_lock);
    struct xsk_dev *d = xsk_dev_find(ifname);
    int rc = -ENOENT;
    if (d) {
        /* Only when the device is still the one we attached to (a new device
         * of the same name never had our program). */
        if ((int)if_nametoindex(ifname) == d->ifindex)
            xdp_program__detach(d->prog, d->ifindex, d->mode == IO_XSK_MODE_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE,
                                0);
        xdp_program__close(d->prog);   /* closes xsks_map: its sockets stop receiving */
        memset(d, 0, sizeof *d);
        rc = 0;
    }
    pthread_mutex_unlock(&xsk_lock);
    return rc;
}

VR_EXPORT int io_xsk_mode(const char *ifname)
{
    if (!xsk_check_ifname(ifname))
        return -ENOENT;
    pthread_mutex_lock(&xsk_lock);
    struct xsk_dev *d = xsk_dev_find(ifname);
    int rc = d ? d->mode : -ENOENT;
    pthread_mutex_unlock(&xsk_lock);
    return rc;
}

/* Remove a socket's xsks_map entry (when its device still has our program). */
static void xsk_map_remove(const struct xsk_sock *s)
{
    pthread_mutex_lock(&xsk_lock);
    struct xsk_dev *d = xsk_dev_find(s->ifname);
    if (d && d->ifindex == s->ifindex) {
        uint32_t key = s->queue;
        bpf_map_delete_elem(d->map_fd, &key);
    }
    pthread_mutex_unlock(&xsk_lock);
}

/* ---- device facts ---- */

static int xsk_dev_ioctl(unsigned long req, struct ifreq *ifr)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = ioctl(fd, req, ifr) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Receive queues of ifname (ethtool channels), or 0 when the driver does not say. */
static uint32_t xsk_dev_queues(const char *ifname)
{
    struct ethtool_channels ch = {.cmd = ETHTOOL_GCHANNELS};
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, ifname, strlen(ifname));
    ifr.ifr_data = (void *)&ch;
    if (xsk_dev_ioctl(SIOCETHTOOL, &ifr) < 0)
        return 0;
    return ch.rx_count + ch.combined_count;
}

static int xsk_dev_mtu(const char *ifname)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, ifname, strlen(ifname));
    int rc = xsk_dev_ioctl(SIOCGIFMTU, &ifr);
    return rc < 0 ? rc : ifr.ifr_mtu;
}

/* ---- rings ---- */

static inline uint32_t xsk_frame_of(uint64_t addr)
{
    return (uint32_t)(addr / IO_FRAME_SIZE);
}

/* Frames the kernel finished sending back to the pool. */
static void xsk_reclaim(struct xsk_sock *s, struct io_pool *pool)
{
    uint32_t idx;
    uint32_t n = xsk_ring_cons__peek(&s->comp, XSK_RING, &idx);
    if (!n)
        return;
    uint8_t *own = s->ctx->frame_owner;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t f = xsk_frame_of(*xsk_ring_cons__comp_addr(&s->comp, idx + i));
        own[f] = 0;
        pool->free[pool->nfree++] = f;
    }
    xsk_ring_cons__release(&s->comp, n);
    s->tx_held -= n;
}

/* Stock the fill ring up to fill_target once it fell below half of it. */
static void xsk_refill(struct xsk_sock *s, struct io_port *port, struct io_pool *pool)
{
    if (s->rx_held >= s->fill_target / 2)
        return;
    uint32_t want = s->fill_target - s->rx_held;
    if (want > pool->nfree)
        want = pool->nfree;
    if (!want) {
        if (!s->rx_held)
            port->st.rx_no_buffer++;   /* the kernel has nothing to receive into: it drops */
        return;
    }
    uint32_t idx;
    if (xsk_ring_prod__reserve(&s->fill, want, &idx) != want)
        return;   /* cannot happen: the ring holds at most rx_held <= fill_target < XSK_RING */
    uint8_t *own = s->ctx->frame_owner;
    for (uint32_t i = 0; i < want; i++) {
        uint32_t f = pool->free[--pool->nfree];
        own[f] = s->slot;
        *xsk_ring_prod__fill_addr(&s->fill, idx + i) = (uint64_t)f * IO_FRAME_SIZE;
    }
    xsk_ring_prod__submit(&s->fill, want);
    s->rx_held += want;
}

static inline uint32_t xsk_tx_pending(struct xsk_sock *s)
{
    return s->tx.size - xsk_prod_nb_free(&s->tx, s->tx.size);
}

/* Have the kernel send what the TX ring holds. In copy mode each sendto()
 * moves a batch (32 frames by default) and says EAGAIN while more remain;
 * stop when the ring is empty or a call made no progress (device queue full,
 * device down, zero-copy drivers that send asynchronously): the next
 * poll_tx tries again. */
static void xsk_kick_tx(struct xsk_sock *s, struct io_port *port)
{
    uint32_t pending = xsk_tx_pending(s);
    for (int i = 0; pending && i < XSK_KICK_MAX; i++) {
        ssize_t r = sendto(s->fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
        port->st.wakeups++;
        if (r < 0 && errno != EAGAIN && errno != EBUSY && errno != ENOBUFS)
            break;   /* ENETDOWN, ENXIO: nothing to do until the device is back */
        uint32_t left = xsk_tx_pending(s);
        if (left >= pending)
            break;
        pending = left;
    }
}

/* ---- port ops ---- */

static uint32_t xsk_rx(struct io_port *port, struct io_pool *pool, struct pkt *pkts, uint32_t max)
{
    struct xsk_sock *s = port->priv;
    if (VR_UNLIKELY(!s || !s->ctx))
        return 0;
    uint32_t idx;
    uint32_t n = xsk_ring_cons__peek(&s->rx, max, &idx);
    if (n) {
        uint8_t *own = s->ctx->frame_owner;
        uint64_t bytes = 0;
        for (uint32_t i = 0; i < n; i++) {
            const struct xdp_desc *d = xsk_ring_cons__rx_desc(&s->rx, idx + i);
            uint64_t frame = d->addr & ~(uint64_t)(IO_FRAME_SIZE - 1);
            own[xsk_frame_of(frame)] = 0;
            io_pkt_init(&pkts[i], pool->base + frame, (uint16_t)(d->addr - frame), (uint16_t)d->len, port->vif);
            bytes += d->len;
        }
        xsk_ring_cons__release(&s->rx, n);
        s->rx_held -= n;
        port->st.rx_packets += n;
        port->st.rx_bytes += bytes;
    }
    xsk_refill(s, port, pool);
    if (VR_UNLIKELY(xsk_ring_prod__needs_wakeup(&s->fill))) {
        /* zero-copy drivers stop when the fill ring ran dry: restart them */
        recvfrom(s->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
        port->st.wakeups++;
    }
    return n;
}

static uint32_t xsk_tx(struct io_port *port, struct io_pool *pool, struct pkt *const *pkts, uint32_t n)
{
    struct xsk_sock *s = port->priv;
    if (VR_UNLIKELY(!s || !s->ctx)) {
        port->st.tx_errors += n;   /* the pool is gone: so are its frames */
        return 0;
    }
    xsk_reclaim(s, pool);
    uint8_t *own = s->ctx->frame_owner;
    const uintptr_t span = (uintptr_t)pool->nframes * IO_FRAME_SIZE;
    uint32_t sent = 0;
    uint64_t bytes = 0;
    int full = 0;
    for (uint32_t i = 0; i < n;) {
        struct pkt *ok[IO_BURST];
        uint32_t nok = 0;
        for (; i < n && nok < IO_BURST; i++) {
            struct pkt *p = pkts[i];
            uintptr_t off = (uintptr_t)p->buf - (uintptr_t)pool->base;
            if (VR_UNLIKELY(off >= span)) {
                port->st.tx_errors++;   /* not a frame of this pool: not ours to return */
                continue;
            }
            if (VR_UNLIKELY(off & (IO_FRAME_SIZE - 1))) {
                port->st.tx_errors++;   /* buf is not a frame's start (io.h) */
                io_pool_put(pool, p->buf);
                continue;
            }
            uint32_t len = p->data_len;
            if (VR_UNLIKELY(len > s->max_len)) {
                const uint8_t *d = pkt_data(p);
                if (!(len <= s->max_len + XSK_VLAN_HLEN && vr_get16(d + 12) == 0x8100)) {
                    port->st.tx_too_big++;
                    io_pool_put(pool, p->buf);
                    continue;
                }
            }
            if (VR_UNLIKELY(!len || (uint32_t)p->data_off + len > IO_FRAME_SIZE)) {
                port->st.tx_errors++;   /* the kernel would drop the descriptor and never complete it */
                io_pool_put(pool, p->buf);
                continue;
            }
            ok[nok++] = p;
        }
        uint32_t room = xsk_prod_nb_free(&s->tx, nok);
        uint32_t k = room < nok ? room : nok;
        uint32_t idx;
        if (k && xsk_ring_prod__reserve(&s->tx, k, &idx) == k) {
            for (uint32_t j = 0; j < k; j++) {
                struct pkt *p = ok[j];
                uintptr_t off = (uintptr_t)p->buf - (uintptr_t)pool->base;
                struct xdp_desc *d = xsk_ring_prod__tx_desc(&s->tx, idx + j);
                d->addr = off + p->data_off;
                d->len = p->data_len;
                d->options = 0;
                own[off / IO_FRAME_SIZE] = s->slot;
                bytes += p->data_len;
            }
            xsk_ring_prod__submit(&s->tx, k);
            s->tx_held += k;
            sent += k;
        } else {
            k = 0;
        }
        for (uint32_t j = k; j < nok; j++) {
            port->st.tx_full++;
            io_pool_put(pool, ok[j]->buf);
            full = 1;
        }
    }
    port->st.tx_packets += sent;
    port->st.tx_bytes += bytes;
    if ((sent || full) && xsk_ring_prod__needs_wakeup(&s->tx))
        xsk_kick_tx(s, port);   /* full: what the ring holds has to move for the next burst to fit */
    return sent;
}

static void xsk_poll_tx(struct io_port *port, struct io_pool *pool)
{
    struct xsk_sock *s = port->priv;
    if (VR_UNLIKELY(!s || !s->ctx))
        return;
    xsk_reclaim(s, pool);
    if (s->tx_held && xsk_ring_prod__needs_wakeup(&s->tx) && xsk_tx_pending(s))
        xsk_kick_tx(s, port);
}

/* Every frame marked with slot (or any slot, when slot is 0) back to the pool. */
static void xsk_return_frames(struct xsk_pool_ctx *ctx, struct io_pool *pool, uint8_t slot)
{
    for (uint32_t f = 0; f < pool->nframes; f++)
        if (ctx->frame_owner[f] && (!slot || ctx->frame_owner[f] == slot)) {
            ctx->frame_owner[f] = 0;
            pool->free[pool->nfree++] = f;
        }
}

static void xsk_pool_teardown(struct io_pool *pool, int give_back)
{
    struct xsk_pool_ctx *ctx = pool->umem_priv;
    for (int i = 1; i <= XSK_MAX_SOCKS; i++) {
        struct xsk_sock *s = ctx->socks[i];
        if (!s)
            continue;
        xsk_socket__delete(s->xsk);
        s->xsk = NULL;
        s->ctx = NULL;
        ctx->socks[i] = NULL;
        if (s->zombie)
            free(s);   /* no port points to it any more */
    }
    xsk_umem__delete(pool->umem);   /* closes the UMEM's fd: the first socket unbinds now */
    if (give_back)
        xsk_return_frames(ctx, pool, 0);
    free(ctx->frame_owner);
    free(ctx);
    pool->umem = NULL;
    pool->umem_priv = NULL;
}

static void xsk_close(struct io_port *port, struct io_pool *pool)
{
    struct xsk_sock *s = port->priv;
    port->priv = NULL;
    port->fd = -1;
    if (!s)
        return;
    struct xsk_pool_ctx *ctx = s->ctx;
    if (!ctx) {   /* io_pool_fini came first and closed the socket */
        free(s);
        return;
    }
    xsk_map_remove(s);
    xsk_reclaim(s, pool);
    uint32_t idx;
    uint32_t n = xsk_ring_cons__peek(&s->rx, XSK_RING, &idx);   /* received, never read */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t f = xsk_frame_of(xsk_ring_cons__rx_desc(&s->rx, idx + i)->addr);
        ctx->frame_owner[f] = 0;
        pool->free[pool->nfree++] = f;
    }
    xsk_ring_cons__release(&s->rx, n);
    s->rx_held -= n;
    ctx->nlive--;
    if (ctx->nlive == 0) {
        xsk_pool_teardown(pool, 1);
        free(s);
        return;
    }
    if (s == ctx->owner) {
        s->zombie = 1;   /* stays bound until the UMEM goes (see the libxdp detail above) */
        return;
    }
    xsk_socket__delete(s->xsk);
    ctx->socks[s->slot] = NULL;
    xsk_return_frames(ctx, pool, s->slot);
    free(s);
}

static const struct io_ops xsk_ops = {xsk_rx, xsk_tx, xsk_poll_tx, xsk_close};

VR_EXPORT void io_xsk_pool_release(struct io_pool *pool)
{
    if (pool->umem_priv)
        xsk_pool_teardown(pool, 0);   /* ports still open now only count errors; closing them frees them */
}

/* ---- open ---- */

static struct xsk_pool_ctx *xsk_pool_ctx(struct io_pool *pool)
{
    if (pool->umem_priv)
        return pool->umem_priv;
    struct xsk_pool_ctx *ctx = calloc(1, sizeof *ctx);
    uint8_t *own = calloc(pool->nframes, 1);
    if (!ctx || !own) {
        free(ctx);
        free(own);
        return NULL;
    }
    ctx->frame_owner = own;
    pool->umem_priv = ctx;
    return ctx;
}

/* Drop the pool context again when an open failed before any socket existed. */
static void xsk_pool_ctx_unused(struct io_pool *pool)
{
    struct xsk_pool_ctx *ctx = pool->umem_priv;
    if (ctx && !ctx->owner) {
        free(ctx->frame_owner);
        free(ctx);
        pool->umem_priv = NULL;
    }
}

static int xsk_create(struct xsk_sock *s, struct io_pool *pool, const char *ifname, uint16_t queue, int copy)
{
    int made_umem = 0;
    if (!pool->umem) {
        struct xsk_umem_config ucfg = {
            .fill_size = XSK_RING,
            .comp_size = XSK_RING,
            .frame_size = IO_FRAME_SIZE,
            .frame_headroom = 0,
            .flags = 0,
        };
        struct xsk_umem *umem;
        int rc = xsk_umem__create(&umem, pool->base, (uint64_t)pool->nframes * IO_FRAME_SIZE, &s->fill, &s->comp,
                                  &ucfg);
        if (rc)
            return rc;
        pool->umem = umem;
        made_umem = 1;
    }
    struct xsk_socket_config cfg = {
        .rx_size = XSK_RING,
        .tx_size = XSK_RING,
        .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
        .xdp_flags = 0,
        .bind_flags = (uint16_t)(XDP_USE_NEED_WAKEUP | (copy ? XDP_COPY : 0)),
    };
    int rc = xsk_socket__create_shared(&s->xsk, ifname, queue, pool->umem, &s->rx, &s->tx, &s->fill, &s->comp, &cfg);
    if (rc && made_umem) {
        xsk_umem__delete(pool->umem);
        pool->umem = NULL;
    }
    return rc;
}

VR_EXPORT int io_xsk_open(struct io_port *port, struct io_pool *pool, const char *ifname, uint16_t queue,
                          uint16_t vif, int skb_mode, char *err, size_t errlen)
{
    memset(port, 0, sizeof *port);
    port->fd = -1;
    if (err && errlen)
        err[0] = 0;
    if (!xsk_check_ifname(ifname))
        return xsk_fail(err, errlen, -EINVAL, "ifname %s: invalid device name", ifname ? ifname : "(null)");
    if (!pool || !pool->base)
        return xsk_fail(err, errlen, -EINVAL, "%s queue %u: no frame pool", ifname, queue);
    if (pool->nframes < IO_XSK_MIN_FRAMES)
        return xsk_fail(err, errlen, -ENOBUFS,
                        "%s queue %u: frame pool too small (%u frames; an XDP socket needs at least %u)", ifname,
                        queue, pool->nframes, IO_XSK_MIN_FRAMES);
    int ifindex = (int)if_nametoindex(ifname);
    if (!ifindex)
        return xsk_fail(err, errlen, -ENODEV, "ifname %s: no such device", ifname);
    if (queue >= XSK_MAP_ENTRIES)
        return xsk_fail(err, errlen, -EINVAL, "%s queue %u: beyond the %d queues xsks_map covers", ifname, queue,
                        XSK_MAP_ENTRIES);
    uint32_t nq = xsk_dev_queues(ifname);
    if (nq && queue >= nq)
        return xsk_fail(err, errlen, -EINVAL, "%s queue %u: the device has %u receive queue%s", ifname, queue, nq,
                        nq == 1 ? "" : "s");
    int mtu = xsk_dev_mtu(ifname);
    if (mtu < 0)
        return xsk_fail(err, errlen, mtu, "ifname %s: cannot read the MTU: %s", ifname, strerror(-mtu));

    pthread_mutex_lock(&xsk_lock);
    struct xsk_dev *dev = xsk_dev_find(ifname);
    int attached = dev && dev->ifindex == ifindex;
    int map_fd = attached ? dev->map_fd : -1;
    int dev_skb = attached && dev->mode == IO_XSK_MODE_SKB;
    int rc = 0;
    if (!attached) {
        rc = xsk_fail(err, errlen, -ENOENT, "ifname %s: no XDP program attached (io_xsk_attach first)", ifname);
        goto out;
    }

    struct xsk_pool_ctx *ctx = xsk_pool_ctx(pool);
    if (!ctx) {
        rc = xsk_fail(err, errlen, -ENOMEM, "%s queue %u: out of memory", ifname, queue);
        goto out;
    }
    struct xsk_sock *s = NULL;
    int slot = 0;
    for (int i = 1; i <= XSK_MAX_SOCKS; i++) {
        struct xsk_sock *o = ctx->socks[i];
        if (!o) {
            if (!slot)
                slot = i;
        } else if (o->ifindex == ifindex && o->queue == queue) {
            if (!o->zombie) {
                rc = xsk_fail(err, errlen, -EBUSY, "%s queue %u: already open on this pool", ifname, queue);
                goto out;
            }
            s = o;   /* reopening the first socket: revive it */
        }
    }
    if (s) {
        s->zombie = 0;
        rc = bpf_map_update_elem(map_fd, &(uint32_t){queue}, &s->fd, 0);
        if (rc) {
            rc = -errno;
            s->zombie = 1;
            rc = xsk_fail(err, errlen, rc, "%s queue %u: xsks_map update failed: %s", ifname, queue, strerror(-rc));
            goto out;
        }
    } else {
        if (!slot) {
            rc = xsk_fail(err, errlen, -ENOSPC, "%s queue %u: %d XDP sockets on this pool already", ifname, queue,
                          XSK_MAX_SOCKS);
            goto out;
        }
        s = calloc(1, sizeof *s);
        if (!s) {
            xsk_pool_ctx_unused(pool);
            rc = xsk_fail(err, errlen, -ENOMEM, "%s queue %u: out of memory", ifname, queue);
            goto out;
        }
        /* Default bind flags first (zero-copy where the driver has it, the
         * kernel falls back to copy), then copy mode explicitly; generic (SKB)
         * XDP never has zero-copy. Sockets sharing a UMEM inherit the mode. */
        int copy = skb_mode || dev_skb;
        rc = xsk_create(s, pool, ifname, queue, copy);
        if (rc && !copy && pool->umem == NULL && rc != -EBUSY && rc != -ENODEV)
            rc = xsk_create(s, pool, ifname, queue, 1);
        if (rc) {
            free(s);
            xsk_pool_ctx_unused(pool);
            if (rc == -EBUSY)
                rc = xsk_fail(err, errlen, rc, "%s queue %u: XDP socket bind failed: %s (the queue has an XDP socket "
                              "already)", ifname, queue, strerror(-rc));
            else
                rc = xsk_fail(err, errlen, rc, "%s queue %u: XDP socket bind failed: %s", ifname, queue,
                              strerror(-rc));
            goto out;
        }
        s->fd = xsk_socket__fd(s->xsk);
        /* Copy mode sends at most 32 frames per sendto() unless told more
         * (Linux >= 6.17; older kernels say ENOPROTOOPT and the kick loops). */
        uint32_t budget = XSK_TX_BUDGET;
        (void)setsockopt(s->fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof budget);
        s->ctx = ctx;
        s->ifindex = ifindex;
        s->queue = queue;
        s->slot = (uint8_t)slot;
        memcpy(s->ifname, ifname, strlen(ifname) + 1);
        if (xsk_socket__update_xskmap(s->xsk, map_fd)) {
            rc = -errno;
            xsk_fail(err, errlen, rc, "%s queue %u: xsks_map update failed: %s", ifname, queue, strerror(-rc));
            xsk_socket__delete(s->xsk);
            if (!ctx->owner) {
                xsk_umem__delete(pool->umem);
                pool->umem = NULL;
            }
            free(s);
            xsk_pool_ctx_unused(pool);
            goto out;
        }
        if (!ctx->owner)
            ctx->owner = s;
        ctx->socks[slot] = s;
        uint32_t target = pool->nframes / 4;
        s->fill_target = target < IO_BURST ? IO_BURST : target > XSK_FILL_MAX ? XSK_FILL_MAX : target;
    }
    s->max_len = (uint32_t)mtu + XSK_ETH_HLEN;
    ctx->nlive++;
    port->ops = &xsk_ops;
    port->kind = IO_XSK;
    port->fd = s->fd;
    port->vif = vif;
    port->queue = queue;
    memcpy(port->ifname, ifname, strlen(ifname) + 1);
    port->priv = s;
    xsk_refill(s, port, pool);
    rc = 0;
out:
    pthread_mutex_unlock(&xsk_lock);
    return rc;
}

VR_EXPORT int io_xsk_kernel_stats(const struct io_port *port, struct io_xsk_kstats *out)
{
    memset(out, 0, sizeof *out);
    if (port->kind != IO_XSK || !port->priv || port->fd < 0)
        return -EINVAL;
    struct xdp_statistics st;
    memset(&st, 0, sizeof st);
    socklen_t len = sizeof st;
    if (getsockopt(port->fd, SOL_XDP, XDP_STATISTICS, &st, &len) < 0)
        return -errno;
    out->rx_dropped = st.rx_dropped;
    out->rx_invalid_descs = st.rx_invalid_descs;
    out->tx_invalid_descs = st.tx_invalid_descs;
    out->rx_ring_full = st.rx_ring_full;
    out->rx_fill_ring_empty_descs = st.rx_fill_ring_empty_descs;
    out->tx_ring_empty_descs = st.tx_ring_empty_descs;
    return 0;
}
