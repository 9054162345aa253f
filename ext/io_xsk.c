/* AF_XDP back-end, set-up: the pool's UMEM, XDP sockets opened on a device
 * queue (shared UMEM, one fill / completion ring pair each) and closed, frame
 * accounting on close (see io_xsk_priv.h). Control thread. */
#include "io_xsk_priv.h"

int xsk_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int xsk_check_ifname(const char *ifname)
{
    return ifname && *ifname && strlen(ifname) < IO_NAME_MAX;
}

/* Device facts. */

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
