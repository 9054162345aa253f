/* AF_XDP back-end, the burst path: rx (fill ring stocked, RX ring read), tx
 * (TX ring written, completion ring reclaimed, kernel kicked) and poll_tx.
 * Each port is used by one worker thread at a time, as every io_ops. */
#include "io_xsk_priv.h"

/* Frames the kernel finished sending back to the pool. */
void xsk_reclaim(struct xsk_sock *s, struct io_pool *pool)
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
void xsk_refill(struct xsk_sock *s, struct io_port *port, struct io_pool *pool)
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

uint32_t xsk_rx(struct io_port *port, struct io_pool *pool, struct pkt *pkts, uint32_t max)
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

uint32_t xsk_tx(struct io_port *port, struct io_pool *pool, struct pkt *const *pkts, uint32_t n)
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

void xsk_poll_tx(struct io_port *port, struct io_pool *pool)
{
    struct xsk_sock *s = port->priv;
    if (VR_UNLIKELY(!s || !s->ctx))
        return;
    xsk_reclaim(s, pool);
    if (s->tx_held && xsk_ring_prod__needs_wakeup(&s->tx) && xsk_tx_pending(s))
        xsk_kick_tx(s, port);
}
