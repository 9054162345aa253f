/* Worker threads: each polls its own I/O ports, runs bursts through the
 * pipeline, transmits per output vif, ages flows, and reports RCU quiescent
 * states between bursts. No Python, no GIL: a worker is a plain pthread.
 *
 * Shared nothing on the fast path: a worker owns its frame pool, the ports it
 * receives from, and the ports it transmits on (its own queue of every
 * device: TAP queues, its AF_XDP socket), so no port or pool is touched by two
 * threads. The vif -> port map says where a verdict's out_vif goes.
 *
 * Idling. After a burst the worker polls again at once; after WK_SPIN_POLLS
 * empty rounds in a row it goes RCU-offline and sleeps in epoll_wait on its
 * ports' descriptors and a wake-up eventfd (at most WK_IDLE_SLEEP_MS, so the
 * flow sweep keeps running), so an idle vrouter costs next to nothing.
 *
 * Configuration. The control thread changes a worker's ports with
 * wk_set_ports(): the new set is handed over under a mutex, the worker
 * picks it up between bursts and acknowledges; wk_set_ports returns only
 * then, so a port removed from every worker can be closed safely.
 *
 * Thread-safety: wk_create/wk_start/wk_set_ports/wk_stop/wk_destroy and the
 * stats readers: control thread. Everything else runs on the worker.
 */
#ifndef VR_WORKER_H
#define VR_WORKER_H

#include <pthread.h>
#include <stdint.h>

#include "io.h"
#include "nexthop.h"
#include "pipeline.h"
#include "rcu.h"
#include "vr_common.h"

#define WK_MAX_PORTS 512
#define WK_SPIN_POLLS 256         /* empty rounds before sleeping */
#define WK_IDLE_SLEEP_MS 100      /* longest sleep: the flow sweep's period when idle */
#define WK_SWEEP_PERIOD_NS 20000000ull  /* sweep a slice of the flow table every 20 ms */
#define WK_SWEEP_BUDGET 4096      /* pair slots examined per slice */

struct wk_stats {
    uint64_t loops;               /* rounds over the ports */
    uint64_t busy_loops;          /* rounds that received something */
    uint64_t sleeps;              /* epoll_wait calls */
    uint64_t rx_packets, tx_packets;
    uint64_t tx_no_port;          /* verdict for a vif this worker has no port for */
    uint64_t tx_dropped;          /* handed to a port that did not send it */
    uint64_t to_host_dropped;     /* HOST verdict without a host port */
    uint64_t swept, aged;         /* flow pairs examined / removed by the sweep */
    uint64_t busy_ns;             /* time spent on rounds that received something */
};

struct wk_ports {
    struct io_port *rx[WK_MAX_PORTS];   /* polled for frames */
    uint32_t nrx;
    struct io_port *tx[VIF_MAX];        /* out vif -> port (NULL: none) */
    struct io_port *host;               /* PL_HOST verdicts, or NULL (dropped, counted) */
};

struct worker;

/* The pool is the worker's (io_pool_init'ed by the caller, who also opens
 * ports over it); pl worker id = id. cpu < 0: not pinned. */
VR_EXPORT int wk_create(int id, struct pipeline *pl, struct rcu_domain *rcu, struct flow_table *ft,
                        struct pol_table *pt, struct io_pool *pool, int cpu, struct worker **out);
VR_EXPORT int wk_start(struct worker *w);
/* Hand the worker a new port set (copied); waits until it runs with it. */
VR_EXPORT int wk_set_ports(struct worker *w, const struct wk_ports *ports);
VR_EXPORT void wk_stop(struct worker *w);      /* joins the thread */
VR_EXPORT void wk_destroy(struct worker *w);   /* after wk_stop; the ports are the caller's */
VR_EXPORT void wk_read_stats(const struct worker *w, struct wk_stats *out);
VR_EXPORT int wk_running(const struct worker *w);

/* Packet capture (vrouter-ctl capture). While a vif is set, the worker copies
 * every frame it receives on that vif (as received) and every frame it sends
 * to it (as sent) into a single-producer ring of WK_CAP_RING bytes; the
 * control thread drains it. A full ring drops records (counted), never
 * stalls the worker. Records: struct wk_cap_hdr then caplen bytes, 8-aligned. */
#define WK_CAP_RING (4u << 20)
#define WK_CAP_RX 0
#define WK_CAP_TX 1
struct wk_cap_hdr {
    uint64_t ts_ns;       /* CLOCK_REALTIME, for the pcap */
    uint16_t vif;
    uint8_t dir;          /* WK_CAP_RX / WK_CAP_TX */
    uint8_t pad;
    uint16_t len;         /* frame length on the wire */
    uint16_t caplen;      /* bytes kept (<= snaplen) */
};
VR_EXPORT int wk_capture_set(struct worker *w, int vif, uint32_t snaplen);   /* vif < 0: off */
/* Copy out whole records (at most cap bytes); returns bytes copied. Control thread. */
VR_EXPORT uint32_t wk_capture_read(struct worker *w, uint8_t *out, uint32_t cap, uint64_t *dropped);
VR_EXPORT struct io_pool *wk_pool(struct worker *w);

#endif
