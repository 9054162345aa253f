# Cython declarations for ext/worker.h (control-thread calls only).
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from io cimport io_port, io_pool

cdef extern from "worker.h" nogil:
    enum: WK_MAX_PORTS

    struct worker:
        pass

    struct wk_stats:
        uint64_t loops, busy_loops, sleeps, rx_packets, tx_packets, tx_no_port, tx_dropped
        uint64_t to_host_dropped, swept, aged, busy_ns

    struct wk_ports:
        io_port *rx[512]
        uint32_t nrx
        io_port *tx[4096]
        io_port *host

    int wk_create(int id, void *pl, void *rcu, void *ft, void *pt, io_pool *pool, int cpu, worker **out)
    int wk_start(worker *w)
    int wk_set_ports(worker *w, const wk_ports *ports)
    void wk_stop(worker *w)
    void wk_destroy(worker *w)
    void wk_read_stats(const worker *w, wk_stats *out)
    int wk_running(const worker *w)
    enum: WK_CAP_RING
    int wk_capture_set(worker *w, int vif, uint32_t snaplen)
    uint32_t wk_capture_read(worker *w, uint8_t *out, uint32_t cap, uint64_t *dropped)
