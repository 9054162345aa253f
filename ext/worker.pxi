# Thin wrapper over ext/worker.h: the node process (vrouter/node.py) creates
# one Worker per thread, hands it ports, starts and stops it.
cimport worker as cwk
from libc.stdlib cimport calloc


_WK_STAT_FIELDS = ("loops", "busy_loops", "sleeps", "rx_packets", "tx_packets", "tx_no_port",
                   "tx_dropped", "to_host_dropped", "swept", "aged", "busy_ns")


cdef class Worker:
    """A worker thread (C) over one pipeline worker id, a frame pool and its ports."""
    cdef cwk.worker *w
    cdef readonly Pipeline pipeline
    cdef readonly IoPool pool
    cdef readonly int id
    cdef list held            # the ports it may touch: kept alive while it runs

    def __cinit__(self, int id, Pipeline pipeline not None, IoPool pool not None, int cpu=-1):
        cdef FlowTable ft = pipeline.tables[3]
        cdef PolicyTable pt = pipeline.tables[4]
        check_rc(cwk.wk_create(id, pipeline.pl, pipeline.dom.d, ft.t, pt.pt, &pool.p, cpu, &self.w),
                 f"worker {id}")
        self.pipeline = pipeline
        self.pool = pool
        self.id = id
        self.held = []

    def __dealloc__(self):
        if self.w != NULL:
            with nogil:
                cwk.wk_destroy(self.w)
            self.w = NULL

    def set_ports(self, list rx, dict tx, IoPort host=None):
        """rx: ports to poll; tx: {vif: port}; host: where PL_HOST frames go (None: dropped).
        Returns once the worker runs with them."""
        cdef cwk.wk_ports *p = <cwk.wk_ports *>calloc(1, sizeof(cwk.wk_ports))
        cdef IoPort port
        cdef int rc
        if p == NULL:
            raise MemoryError()
        try:
            if len(rx) > cwk.WK_MAX_PORTS:
                raise ValueError(f"rx: at most {cwk.WK_MAX_PORTS} ports per worker")
            for i, port in enumerate(rx):
                if port.pool is not self.pool:
                    raise ValueError(f"rx[{i}]: a port of another worker's pool")
                p.rx[i] = &port.port
            p.nrx = len(rx)
            for vif, port in tx.items():
                if not 0 <= vif < 4096:
                    raise ValueError(f"tx: vif {vif} out of range")
                if port.pool is not self.pool:
                    raise ValueError(f"tx[{vif}]: a port of another worker's pool")
                p.tx[vif] = &port.port
            if host is not None:
                p.host = &host.port
            with nogil:
                rc = cwk.wk_set_ports(self.w, p)
            check_rc(rc, "worker ports")
            self.held = list(rx) + list(tx.values()) + ([host] if host is not None else [])
        finally:
            free(p)

    def start(self):
        check_rc(cwk.wk_start(self.w), f"worker {self.id} start")

    def stop(self):
        with nogil:
            cwk.wk_stop(self.w)

    @property
    def running(self):
        return bool(cwk.wk_running(self.w))

    def stats(self):
        cdef cwk.wk_stats s
        cdef uint64_t *words = <uint64_t *>&s
        cwk.wk_read_stats(self.w, &s)
        return {name: words[i] for i, name in enumerate(_WK_STAT_FIELDS)}

    def capture_set(self, int vif, uint32_t snaplen=65535):
        """Copy frames received on / sent to vif into the capture ring (vif < 0: stop)."""
        check_rc(cwk.wk_capture_set(self.w, vif, snaplen), f"worker {self.id} capture")

    def capture_read(self):
        """Drain the capture ring: ([(ts_ns, vif, "rx"|"tx", wire_len, frame bytes)], dropped)."""
        import struct
        cdef bytearray buf = bytearray(cwk.WK_CAP_RING)
        cdef uint8_t *out = <uint8_t *><char *>buf
        cdef uint64_t dropped = 0
        cdef uint32_t n
        with nogil:
            n = cwk.wk_capture_read(self.w, out, cwk.WK_CAP_RING, &dropped)
        recs = []
        off = 0
        while off < n:
            ts, vif, d, _pad, ln, caplen = struct.unpack_from("<QHBBHH", buf, off)
            off += 16
            recs.append((ts, vif, "tx" if d else "rx", ln, bytes(buf[off:off + caplen])))
            off += caplen
        return recs, dropped
