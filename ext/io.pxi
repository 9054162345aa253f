# Thin wrapper over ext/io.h for tests and tools: a frame pool and ports
# that move bytes frames (the node's workers use the C API directly).
cimport io as cio
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
import os


cdef double _mono() nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


_XSK_MODES = {cio.IO_XSK_MODE_NATIVE: "native", cio.IO_XSK_MODE_SKB: "skb"}


def xsk_attach(str ifname, obj_path, bint skb_mode=False):
    """Attach the tunnel-steering XDP program to ifname (native XDP unless
    skb_mode; generic SKB mode when native fails). obj_path: the BPF object
    (the caller's: vrouter/bpf/xdp_tunnel.o as setup.py builds it). Returns
    the mode: "native" or "skb"."""
    cdef char err[512]
    cdef bytes name = ifname.encode()
    cdef bytes path = os.fsencode(obj_path)
    err[0] = 0
    rc = cio.io_xsk_attach(name, path, skb_mode, err, sizeof(err))
    if rc < 0:
        raise OSError(-rc, (<bytes>err).decode(errors="replace") or f"{ifname}: {os.strerror(-rc)}")
    return xsk_mode(ifname)


def xsk_detach(str ifname):
    """Detach the program xsk_attach put on ifname: True, or False when none was attached."""
    return cio.io_xsk_detach(ifname.encode()) == 0


def xsk_min_frames():
    """The smallest pool an XDP socket accepts."""
    return cio.IO_XSK_MIN_FRAMES


def xsk_mode(str ifname):
    """"native" / "skb" while this process has the program attached to ifname, else None."""
    return _XSK_MODES.get(cio.io_xsk_mode(ifname.encode()))


cdef class IoPool:
    """A worker's frame pool (ext/io.h)."""
    cdef cio.io_pool p
    cdef readonly list ports
    cdef list held

    def __cinit__(self, uint32_t nframes=4096):
        check_rc(cio.io_pool_init(&self.p, nframes), "frame pool")
        self.ports = []
        self.held = []

    def hold(self, uint32_t n):
        """Take up to n frames out of the pool (tests: an almost empty pool); returns how many."""
        cdef uint8_t *f
        cdef uint32_t i
        for i in range(n):
            f = cio.io_pool_get(&self.p)
            if f == NULL:
                return i
            self.held.append(<uintptr_t>f)
        return n

    def release(self):
        """Give back every frame taken by hold()."""
        cdef uintptr_t a
        for a in self.held:
            cio.io_pool_put(&self.p, <uint8_t *>a)
        self.held = []

    def __dealloc__(self):
        cio.io_pool_fini(&self.p)

    @property
    def free(self):
        return self.p.nfree

    @property
    def nframes(self):
        return self.p.nframes


cdef class IoPort:
    """One queue of one device, bound to a pool. Use the open_* constructors."""
    cdef cio.io_port port
    cdef IoPool pool
    cdef bint is_open

    def __cinit__(self):
        self.port.fd = -1
        self.is_open = False

    def __dealloc__(self):
        if self.is_open:
            cio.io_close(&self.port, &self.pool.p)

    @staticmethod
    def open_tap(IoPool pool, str ifname, uint16_t vif=0, bint multi=False, uint16_t queue=0):
        cdef IoPort port = IoPort()
        cdef bytes name = ifname.encode()
        port.pool = pool
        rc = cio.io_tap_open(&port.port, name, multi, queue, vif)
        if rc < 0:
            raise OSError(-rc, f"TAP {ifname}: {os.strerror(-rc)}")
        port.is_open = True
        return port

    @staticmethod
    def open_packet(IoPool pool, str ifname, uint16_t vif=0):
        """An AF_PACKET port (TPACKET_V3 receive ring, sendmmsg transmit) on ifname, in this
        process's network namespace."""
        cdef IoPort port = IoPort()
        cdef bytes name = ifname.encode()
        cdef char err[256]
        if "\0" in ifname:
            raise ValueError(f"interface name {ifname!r}: contains NUL")
        port.pool = pool
        rc = cio.io_packet_open(&port.port, name, vif, err, sizeof(err))
        if rc < 0:
            raise OSError(-rc, err.decode(errors="replace") or f"AF_PACKET {ifname}: {os.strerror(-rc)}")
        port.is_open = True
        return port

    cdef _check_open(self):
        if not self.is_open:
            raise ValueError("port is closed")

    @staticmethod
    def open_xsk(IoPool pool, str ifname, uint16_t queue=0, uint16_t vif=0, bint skb_mode=False):
        """An XDP socket on queue `queue` of ifname over the pool's frames (the
        UMEM); xsk_attach(ifname) first. skb_mode: bind in copy mode at once."""
        cdef IoPort port = IoPort()
        cdef bytes name = ifname.encode()
        cdef char err[512]
        err[0] = 0
        port.pool = pool
        rc = cio.io_xsk_open(&port.port, &pool.p, name, queue, vif, skb_mode, err, sizeof(err))
        if rc < 0:
            raise OSError(-rc, (<bytes>err).decode(errors="replace") or f"XDP socket {ifname}: {os.strerror(-rc)}")
        port.is_open = True
        return port

    def poll_tx(self):
        """Reclaim frames the kernel finished sending (and kick pending TX)."""
        if self.is_open:
            with nogil:
                cio.io_poll_tx(&self.port, &self.pool.p)

    def kernel_stats(self):
        """The kernel's counters of an XDP socket (XDP_STATISTICS)."""
        cdef cio.io_xsk_kstats k
        rc = cio.io_xsk_kernel_stats(&self.port, &k)
        if rc < 0:
            raise OSError(-rc, f"kernel stats: {os.strerror(-rc)}")
        return {"rx_dropped": k.rx_dropped, "rx_invalid_descs": k.rx_invalid_descs,
                "tx_invalid_descs": k.tx_invalid_descs, "rx_ring_full": k.rx_ring_full,
                "rx_fill_ring_empty_descs": k.rx_fill_ring_empty_descs,
                "tx_ring_empty_descs": k.tx_ring_empty_descs}

    @property
    def fd(self):
        return self.port.fd

    @property
    def kind(self):
        return {cio.IO_TAP: "tap", cio.IO_XSK: "xsk", cio.IO_PACKET: "packet"}[self.port.kind]

    def rx(self, uint32_t max=64):
        """Up to max frames as bytes (their pool frames go back to the pool)."""
        cdef cp.pkt pkts[64]
        cdef uint32_t n, i
        self._check_open()
        if max > 64:
            max = 64
        with nogil:
            n = cio.io_rx_burst(&self.port, &self.pool.p, pkts, max)
        out = [bytes((<char *>pkts[i].buf + pkts[i].data_off)[:pkts[i].data_len]) for i in range(n)]
        for i in range(n):
            cio.io_pool_put(&self.pool.p, pkts[i].buf)
        return out

    def tx(self, list frames):
        """Send frames (bytes), each copied into a pool frame first; returns how many the kernel took."""
        cdef cp.pkt pkts[64]
        cdef cp.pkt *ptrs[64]
        cdef uint32_t n = len(frames), i, sent
        cdef uint8_t *f
        cdef const unsigned char[:] mv
        self._check_open()
        if n > 64:
            raise ValueError("tx: at most 64 frames per call")
        for i in range(n):
            if len(frames[i]) > cio.IO_FRAME_SIZE - cio.IO_HEADROOM:
                raise ValueError(f"frame {i}: longer than {cio.IO_FRAME_SIZE - cio.IO_HEADROOM} bytes")
        for i in range(n):
            f = cio.io_pool_get(&self.pool.p)
            if f == NULL:
                for j in range(i):
                    cio.io_pool_put(&self.pool.p, pkts[j].buf)
                raise MemoryError("frame pool empty")
            mv = frames[i]
            if mv.shape[0]:
                memcpy(f + cio.IO_HEADROOM, &mv[0], mv.shape[0])
            cio.io_pkt_init(&pkts[i], f, cio.IO_HEADROOM, <uint16_t>mv.shape[0], self.port.vif)
            ptrs[i] = &pkts[i]
        with nogil:
            sent = cio.io_tx_burst(&self.port, &self.pool.p, ptrs, n)
        return sent

    def stats(self):
        s = self.port.st
        return {"rx_packets": s.rx_packets, "rx_bytes": s.rx_bytes, "tx_packets": s.tx_packets,
                "tx_bytes": s.tx_bytes, "rx_no_buffer": s.rx_no_buffer, "tx_full": s.tx_full,
                "tx_errors": s.tx_errors, "tx_too_big": s.tx_too_big, "wakeups": s.wakeups,
                "rx_dropped": s.rx_dropped, "rx_ring_full": s.rx_ring_full}

    def rx_count(self, uint64_t total, double timeout=5.0, uint32_t burst=64):
        """Busy-poll rx bursts (frames straight back to the pool) until total frames or timeout
        seconds: {frames, bytes, calls, busy_calls, seconds} (busy_calls returned >= 1 frame)."""
        cdef cp.pkt pkts[64]
        cdef uint64_t frames = 0, nbytes = 0, calls = 0, busy = 0
        cdef uint32_t n, i
        cdef double t0, t1 = 0, deadline
        self._check_open()
        if burst == 0 or burst > 64:
            burst = 64
        with nogil:
            t0 = _mono()
            deadline = t0 + timeout
            while frames < total:
                n = cio.io_rx_burst(&self.port, &self.pool.p, pkts, burst)
                calls += 1
                if n:
                    busy += 1
                    frames += n
                    for i in range(n):
                        nbytes += pkts[i].data_len
                        cio.io_pool_put(&self.pool.p, pkts[i].buf)
                elif (calls & 255) == 0 and _mono() > deadline:
                    break
            t1 = _mono()
        return {"frames": frames, "bytes": nbytes, "calls": calls, "busy_calls": busy, "seconds": t1 - t0}

    def tx_repeat(self, bytes frame, uint64_t count, uint32_t burst=64):
        """Send count copies of frame in bursts of burst: {sent, calls, seconds}."""
        cdef cp.pkt pkts[64]
        cdef cp.pkt *ptrs[64]
        cdef uint64_t done = 0, sent = 0, calls = 0
        cdef uint32_t n, i
        cdef uint8_t *f
        cdef const unsigned char *src = frame
        cdef uint16_t flen = len(frame)
        cdef double t0, t1
        self._check_open()
        if len(frame) > cio.IO_FRAME_SIZE - cio.IO_HEADROOM:
            raise ValueError("frame too long")
        if burst == 0 or burst > 64:
            burst = 64
        with nogil:
            t0 = _mono()
            while done < count:
                n = 0
                while n < burst and done + n < count:
                    f = cio.io_pool_get(&self.pool.p)
                    if f == NULL:
                        break
                    memcpy(f + cio.IO_HEADROOM, src, flen)
                    cio.io_pkt_init(&pkts[n], f, cio.IO_HEADROOM, flen, self.port.vif)
                    ptrs[n] = &pkts[n]
                    n += 1
                if n == 0:
                    break
                sent += cio.io_tx_burst(&self.port, &self.pool.p, ptrs, n)
                calls += 1
                done += n
            t1 = _mono()
        return {"sent": sent, "calls": calls, "seconds": t1 - t0}

    def close(self):
        if self.is_open:
            cio.io_close(&self.port, &self.pool.p)
            self.is_open = False
