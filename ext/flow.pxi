# Thin wrapper over ext/flow.h. Input validation (dtypes, families, ranges)
# lives in vrouter/flow.py; this layer only checks what protects memory
# (itemsize, length, contiguity) and releases the GIL around every loop.
cimport flow as cf
import numpy as np
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t
from libc.string cimport memset
cimport rcu as crcu


def flow_struct_sizes():
    """C sizes of the structs the numpy dtypes in vrouter.flow mirror."""
    return {"key": sizeof(cf.flow_key), "entry": sizeof(cf.flow_entry),
            "times": sizeof(cf.flow_times), "result": sizeof(cf.flow_result),
            "install": sizeof(cf.flow_install)}


def flow_drop_names():
    return [cf.flow_drop_name(i).decode() for i in range(cf.FLOW_DROP__COUNT)]


cdef inline char *_buf(object arr, Py_ssize_t itemsize, str what, Py_ssize_t n=-1) except NULL:
    cdef cnp.ndarray a = arr
    if not a.flags.c_contiguous or a.dtype.itemsize != itemsize:
        raise TypeError(f"{what}: expected a C-contiguous array of {itemsize}-byte records")
    if n >= 0 and a.shape[0] != n:
        raise ValueError(f"{what}: expected {n} records, got {a.shape[0]}")
    return <char *>cnp.PyArray_DATA(a)


cdef class FlowTable:
    """C flow table; see ext/flow.h. Use vrouter.flow.FlowTable instead."""
    cdef cf.flow_table *t
    cdef readonly uint32_t capacity

    def __cinit__(self, uint32_t capacity, tuple timeouts):
        cdef cf.flow_timeouts to
        to.tcp, to.tcp_close, to.udp, to.icmp, to.other, to.drop = timeouts
        check_rc(cf.flow_create(capacity, &to, &self.t), "flow table create")
        self.capacity = cf.flow_capacity(self.t)

    def _capsule(self):
        """The C object, for the test / benchmark helper module (vrouter._testext);
        the caller keeps self alive while it uses it."""
        return _capsule(<void *>self.t, b"vrouter.flow_table")

    def __dealloc__(self):
        if self.t != NULL:
            cf.flow_destroy(self.t)
            self.t = NULL

    def set_timeouts(self, tuple timeouts):
        cdef cf.flow_timeouts to
        to.tcp, to.tcp_close, to.udp, to.icmp, to.other, to.drop = timeouts
        cf.flow_set_timeouts(self.t, &to)

    def set_default_quota(self, uint32_t per_vif, uint32_t per_vrf):
        cf.flow_set_default_quota(self.t, per_vif, per_vrf)

    def set_vif_quota(self, uint16_t vif, uint32_t maxn):
        cf.flow_set_vif_quota(self.t, vif, maxn)

    def set_vrf_quota(self, uint16_t vrf, uint32_t maxn):
        cf.flow_set_vrf_quota(self.t, vrf, maxn)

    def vif_count(self, uint16_t vif):
        return cf.flow_vif_count(self.t, vif)

    def vrf_count(self, uint16_t vrf):
        return cf.flow_vrf_count(self.t, vrf)

    @property
    def memory(self):
        return cf.flow_memory(self.t)

    def lookup_bulk(self, keys, results, int worker=0):
        cdef uint32_t n = len(keys)
        cdef cf.flow_key *k = <cf.flow_key *>_buf(keys, sizeof(cf.flow_key), "keys")
        cdef cf.flow_result *r = <cf.flow_result *>_buf(results, sizeof(cf.flow_result), "results", n)
        with nogil:
            cf.flow_lookup_bulk(self.t, worker, k, n, r)

    def key_copies(self, key):
        """Test hook: how many entries hold this key (1 when present, never more)."""
        cdef cf.flow_key *k = <cf.flow_key *>_buf(key, sizeof(cf.flow_key), "key", 1)
        return cf.flow_key_copies(self.t, k)

    def lookup_scalar(self, keys, cnp.ndarray[uint32_t, ndim=1, mode="c"] out):
        cdef uint32_t n = len(keys), i
        cdef cf.flow_key *k = <cf.flow_key *>_buf(keys, sizeof(cf.flow_key), "keys")
        if out.shape[0] != n:
            raise ValueError("out: length differs from keys")
        with nogil:
            for i in range(n):
                out[i] = cf.flow_lookup(self.t, &k[i])

    def reverse_keys(self, keys, out):
        cdef uint32_t n = len(keys), i
        cdef cf.flow_key *k = <cf.flow_key *>_buf(keys, sizeof(cf.flow_key), "keys")
        cdef cf.flow_key *o = <cf.flow_key *>_buf(out, sizeof(cf.flow_key), "out", n)
        for i in range(n):
            cf.flow_key_reverse(&k[i], &o[i])

    def insert_pairs(self, keys, installs, uint64_t now, cnp.ndarray[int32_t, ndim=1, mode="c"] out,
                     cnp.ndarray[uint8_t, ndim=1, mode="c"] reason, int worker=0):
        cdef uint32_t n = len(keys)
        cdef cf.flow_key *k = <cf.flow_key *>_buf(keys, sizeof(cf.flow_key), "keys")
        cdef cf.flow_install *ins = <cf.flow_install *>_buf(installs, sizeof(cf.flow_install), "installs", n)
        if out.shape[0] != n or reason.shape[0] != n:
            raise ValueError("out/reason: length differs from keys")
        with nogil:
            cf.flow_insert_pairs(self.t, worker, k, ins, n, now, &out[0] if n else NULL,
                                 &reason[0] if n else NULL)

    def insert_pair(self, fwd_rev, install, uint64_t now, int worker=0):
        """fwd_rev: 2 keys (forward, explicit reverse). Returns (rc, reason)."""
        cdef cf.flow_key *k = <cf.flow_key *>_buf(fwd_rev, sizeof(cf.flow_key), "keys", 2)
        cdef cf.flow_install *ins = <cf.flow_install *>_buf(install, sizeof(cf.flow_install), "install", 1)
        cdef int reason = 0, rc
        rc = cf.flow_insert_pair(self.t, worker, &k[0], &k[1], ins, now, &reason)
        return rc, reason

    def delete(self, key, int worker=0):
        cdef cf.flow_key *k = <cf.flow_key *>_buf(key, sizeof(cf.flow_key), "key", 1)
        return cf.flow_delete(self.t, worker, k)

    def delete_index(self, uint32_t idx, int worker=0):
        return cf.flow_delete_index(self.t, worker, idx)

    def touch(self, cnp.ndarray[uint32_t, ndim=1, mode="c"] idx,
              cnp.ndarray[uint32_t, ndim=1, mode="c"] nbytes,
              cnp.ndarray[uint8_t, ndim=1, mode="c"] tcp_flags, uint64_t now):
        cdef uint32_t n = idx.shape[0]
        if nbytes.shape[0] != n or tcp_flags.shape[0] != n:
            raise ValueError("touch: arrays differ in length")
        if n == 0:
            return
        with nogil:
            cf.flow_touch_bulk(self.t, &idx[0], &nbytes[0], &tcp_flags[0], n, now)

    def sweep(self, uint64_t now, uint32_t budget, PolicyTable policy=None, int worker=0):
        cdef cf.flow_revalidator rv
        cdef cf.flow_revalidator *prv = NULL
        cdef uint32_t examined = 0, removed
        cdef int slot = -1
        if policy is not None:
            rv.fn = cpol.pol_flow_reval
            rv.ctx = <void *>policy.pt
            slot = crcu.rcu_read_enter(policy.dom.d)
            rv.gen = cpol.pol_generation(policy.pt)
            prv = &rv
        try:
            with nogil:
                removed = cf.flow_sweep(self.t, worker, now, budget, prv, &examined)
        finally:
            if slot >= 0:
                crcu.rcu_read_exit(policy.dom.d, slot)
        return removed, examined

    def pair_expired(self, uint32_t pair, uint64_t now):
        if pair >= self.capacity // 2:
            raise ValueError("pair index out of range")
        return bool(cf.flow_pair_expired(self.t, pair, now))

    def stats(self):
        cdef cf.flow_stats s
        cf.flow_stats_read(self.t, &s)
        return s

    def get(self, uint32_t idx, entry, times):
        cdef cf.flow_entry *e = <cf.flow_entry *>_buf(entry, sizeof(cf.flow_entry), "entry", 1)
        cdef cf.flow_times *tm = <cf.flow_times *>_buf(times, sizeof(cf.flow_times), "times", 1)
        return cf.flow_get(self.t, idx, e, tm)

    def dump(self, uint32_t cursor, entries, times, cnp.ndarray[uint32_t, ndim=1, mode="c"] idx):
        """Fill up to len(entries) active entries from pair `cursor`; returns (n, next cursor)."""
        cdef uint32_t m = len(entries), n
        cdef cf.flow_entry *e = <cf.flow_entry *>_buf(entries, sizeof(cf.flow_entry), "entries")
        cdef cf.flow_times *tm = <cf.flow_times *>_buf(times, sizeof(cf.flow_times), "times", m)
        if idx.shape[0] != m or m < 2:
            raise ValueError("dump: need equal buffers of at least 2 records")
        with nogil:
            n = cf.flow_dump(self.t, &cursor, e, tm, &idx[0], m)
        return n, cursor


def flow_hashes(keys):
    """The C hash of each key (tests use it to build colliding key sets)."""
    cdef uint32_t n = len(keys), i
    cdef cf.flow_key *k = <cf.flow_key *>_buf(keys, sizeof(cf.flow_key), "keys")
    cdef cnp.ndarray[uint64_t, ndim=1] out = np.empty(n, np.uint64)
    for i in range(n):
        out[i] = cf.flow_hash(&k[i])
    return out
