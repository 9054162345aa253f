/* TAP queues: /dev/net/tun, IFF_TAP | IFF_NO_PI, one read() / write() per
 * frame (the TAP character device has no batch receive; see io.h).
 *
 * A frame is read straight into a pool frame at IO_HEADROOM, so the pipeline
 * works on it in place and an AF_XDP port of the same worker sends it without
 * a copy. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static uint32_t tap_rx(struct io_port *port, struct io_pool *pool, struct pkt *pkts, uint32_t max)
{
    uint32_t n = 0;
    while (n < max) {
        uint8_t *f = io_pool_get(pool);
        if (VR_UNLIKELY(!f)) {
            port->st.rx_no_buffer++;
            break;
        }
        ssize_t r = read(port->fd, f + IO_HEADROOM, IO_FRAME_SIZE - IO_HEADROOM);
        if (r <= 0) {
            io_pool_put(pool, f);
            break;   /* EAGAIN: drained (errors: the device went away; the caller sees rx stop) */
        }
        io_pkt_init(&pkts[n++], f, IO_HEADROOM, (uint16_t)r, port->vif);
        port->st.rx_packets++;
        port->st.rx_bytes += (uint64_t)r;
    }
    return n;
}

static uint32_t tap_tx(struct io_port *port, struct io_pool *pool, struct pkt *const *pkts, uint32_t n)
{
    uint32_t sent = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct pkt *p = pkts[i];
        ssize_t w = write(port->fd, pkt_data(p), p->data_len);
        if (w == (ssize_t)p->data_len) {
            sent++;
            port->st.tx_packets++;
            port->st.tx_bytes += p->data_len;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
            port->st.tx_full++;
        } else {
            port->st.tx_errors++;   /* EIO: the device is down (no carrier, or gone) */
        }
        io_pool_put(pool, p->buf);
    }
    return sent;
}

static void tap_poll_tx(struct io_port *port, struct io_pool *pool)
{
    (void)port;
    (void)pool;   /* write() copies: nothing outstanding */
}

static void tap_close(struct io_port *port, struct io_pool *pool)
{
    (void)pool;
    if (port->fd >= 0)
        close(port->fd);
    port->fd = -1;
}

static const struct io_ops tap_ops = {tap_rx, tap_tx, tap_poll_tx, tap_close};

VR_EXPORT int io_tap_open(struct io_port *port, const char *ifname, int multi, uint16_t queue, uint16_t vif)
{
    memset(port, 0, sizeof *port);
    port->fd = -1;
    if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ)
        return -EINVAL;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (multi ? IFF_MULTI_QUEUE : 0);
    memcpy(ifr.ifr_name, ifname, strlen(ifname));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    port->ops = &tap_ops;
    port->kind = IO_TAP;
    port->fd = fd;
    port->vif = vif;
    port->queue = queue;
    memcpy(port->ifname, ifname, strlen(ifname) + 1);
    return 0;
}
