# cython: language_level=3, boundscheck=False, wraparound=False
"""vrouter._testext: C helpers for the tests and benchmarks, apart from the product.

Built on request only (``python3 setup.py build_testext --inplace``; tools/bootstrap.sh
and tools/test.sh do it), never by ``pip install``: the flow table's pthread stress test
(flow_stress.c), the LPM reader thread of the concurrency tests (lpmprobe.c) and the
pipeline benchmark loop (pl_bench.c). Each takes the product's objects (vrouter._ext
FlowTable, Lpm4Table / Lpm6Table, Pipeline) and runs on their C tables, which they hand
over as named capsules; the object is kept referenced for as long as its table is used.
"""
cimport numpy as cnp
cnp.import_array()
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_GetName
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport strcmp
import numpy as np

cimport flow as cf
cimport lpmprobe
cimport packet as cp
cimport pipeline as cpl
cimport rcu as crcu
cimport testext as ct


cdef void *_table(obj, const char *name) except NULL:
    """The C table behind a vrouter._ext object; ValueError if it is not a `name`."""
    return PyCapsule_GetPointer(obj._capsule(), name)


def tsc():
    """The TSC now (0 where there is none)."""
    return ct.pl_tsc()


def flow_stress(table, int nthreads, uint32_t keys_per_thread, uint32_t rounds, uint64_t seed):
    """Run the C pthread stress test (flow_stress.c) on table (a vrouter._ext.FlowTable, empty),
    GIL released. Returns (rc, message): rc 0 = the table matches every thread's records."""
    cdef cf.flow_table *t = <cf.flow_table *>_table(table, b"vrouter.flow_table")
    cdef char msg[256]
    cdef int rc
    msg[0] = 0
    with nogil:
        rc = ct.flow_stress(t, nthreads, keys_per_thread, rounds, seed, msg, sizeof(msg))
    return rc, msg.decode()


cdef class LpmProbe:
    """A C pthread that looks up `keys` in a loop as a registered RCU reader
    (no GIL), recording the generation before/after each round and the
    answers, in a ring of the last `max_rounds` rounds. table: a vrouter._ext
    Lpm4Table (keys: uint32 array) or Lpm6Table (keys: (N, 16) uint8 array)."""
    cdef lpmprobe.lpm_probe *p
    cdef object table
    cdef size_t nkeys
    cdef bint stopped

    def __cinit__(self, table, uint16_t vrf, keys, size_t max_rounds=100000):
        cdef int family
        cdef object cap = table._capsule()
        cdef const char *name = PyCapsule_GetName(cap)
        cdef const void *tp = PyCapsule_GetPointer(cap, name)
        cdef crcu.rcu_domain *d = <crcu.rcu_domain *>_table(table.domain, b"vrouter.rcu_domain")
        cdef const uint32_t[::1] k4
        cdef const uint8_t[:, ::1] k6
        cdef const void *kp
        self.table = table   # keeps the table (and its domain) alive while the thread reads it
        if name != NULL and strcmp(name, b"vrouter.lpm4") == 0:
            family = 4
            k4 = keys
            self.nkeys = k4.shape[0]
            kp = &k4[0]
        elif name != NULL and strcmp(name, b"vrouter.lpm6") == 0:
            family = 6
            k6 = keys
            if k6.shape[1] != 16:
                raise ValueError("IPv6 keys must be an (N, 16) uint8 array")
            self.nkeys = k6.shape[0]
            kp = &k6[0, 0]
        else:
            raise TypeError("table must be an Lpm4Table or Lpm6Table")
        self.p = lpmprobe.lpm_probe_start(family, tp, d, vrf, kp, self.nkeys, max_rounds)
        if self.p == NULL:
            raise MemoryError("lpm_probe_start")

    def stop(self):
        """Join the thread; returns (gen_before, gen_after, answers[rounds, keys])."""
        cdef size_t n
        if self.stopped:
            raise RuntimeError("probe already stopped")
        with nogil:
            n = lpmprobe.lpm_probe_stop(self.p)
        self.stopped = True
        gb = np.empty(n, dtype=np.uint64)
        ga = np.empty(n, dtype=np.uint64)
        ans = np.empty((n, self.nkeys), dtype=np.uint32)
        cdef uint64_t[::1] b = gb
        cdef uint64_t[::1] a = ga
        cdef uint32_t[:, ::1] r = ans
        if n:
            lpmprobe.lpm_probe_copy(self.p, &b[0], &a[0], &r[0, 0])
        return gb, ga, ans

    @property
    def total_rounds(self):
        return lpmprobe.lpm_probe_total_rounds(self.p)

    def __dealloc__(self):
        if self.p != NULL:
            if not self.stopped:
                with nogil:
                    lpmprobe.lpm_probe_stop(self.p)
            lpmprobe.lpm_probe_free(self.p)


cdef char *_records(obj, size_t itemsize, str what, Py_ssize_t n) except NULL:
    cdef cnp.ndarray a = obj
    if not a.flags.c_contiguous or a.dtype.itemsize != itemsize or a.ndim != 1 or a.shape[0] != n:
        raise TypeError(f"{what}: expected a C-contiguous 1-d array of {n} {itemsize}-byte records")
    return <char *>cnp.PyArray_DATA(a)


def pl_bench(pipeline, descs, tmpl, lens, vifs, uint32_t burst, uint32_t iterations, results,
             uint64_t now, int worker=0):
    """pl_bench_loop on pipeline (a vrouter._ext.Pipeline): restore the frames from tmpl
    (n x stride bytes) into the descriptors' buffers and process them, `iterations` times,
    GIL released, as worker `worker`. Returns the TSC cycles spent in pl_process."""
    cdef cpl.pipeline *pl = <cpl.pipeline *>_table(pipeline, b"vrouter.pipeline")
    cdef crcu.rcu_domain *d = <crcu.rcu_domain *>_table(pipeline.tables[1].domain, b"vrouter.rcu_domain")
    cdef Py_ssize_t n = len(descs), i
    cdef cp.pkt *p = <cp.pkt *>_records(descs, sizeof(cp.pkt), "descriptors", n)
    cdef cpl.pl_result *res = <cpl.pl_result *>_records(results, sizeof(cpl.pl_result), "results", n)
    cdef uint16_t *ln = <uint16_t *>_records(lens, 2, "lens", n)
    cdef uint16_t *vf = <uint16_t *>_records(vifs, 2, "vifs", n)
    cdef cnp.ndarray t = tmpl
    cdef uint32_t stride
    cdef uint64_t cycles
    cdef int slot
    if t.ndim != 2 or t.shape[0] != n or t.dtype.itemsize != 1 or not t.flags.c_contiguous:
        raise TypeError("tmpl: expected a C-contiguous (n, stride) uint8 array")
    stride = <uint32_t>t.shape[1]
    if n and <uintptr_t>p % 64:
        raise ValueError("descriptors: array must be 64-byte aligned (use vrouter.packet.Burst)")
    if burst == 0 or burst > cp.PKT_BURST_MAX:
        raise ValueError(f"burst: must be 1..{cp.PKT_BURST_MAX}")
    for i in range(n):
        if p[i].buf == NULL or ln[i] > stride or <uint32_t>cp.PKT_HEADROOM + ln[i] > p[i].buf_size:
            raise ValueError(f"frame {i}: does not fit its template row or buffer")
    if worker < 0 or worker >= cpl.pl_workers(pl):
        raise ValueError(f"worker: must be 0..{cpl.pl_workers(pl) - 1}")
    slot = crcu.rcu_read_enter(d)
    with nogil:
        cycles = ct.pl_bench_loop(pl, worker, p, <uint8_t *>cnp.PyArray_DATA(t), stride, ln, vf,
                                  <uint32_t>n, burst, iterations, res, now)
    crcu.rcu_read_exit(d, slot)
    return cycles
