# Thin wrappers over ext/lpm4.h and ext/lpm6.h. Parsing and
# friendly validation live in vrouter/lpm.py; errors from C go through
# check_rc. Writer calls keep the GIL (it serialises writers); batch lookups
# release it and run as an ephemeral RCU reader.
cimport lpm4
cimport lpm6
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
import numpy as np

LPM_NO_ROUTE_VALUE = <uint32_t>lpm4.LPM_NO_ROUTE
LPM_MAX_NH_VALUE = <uint32_t>lpm4.LPM_MAX_NH
LPM_MAX_VRF_VALUE = <uint32_t>lpm4.LPM_MAX_VRF
LPM_IMPLS = {
    "auto": lpm4.LPM_IMPL_AUTO,
    "scalar": lpm4.LPM_IMPL_SCALAR,
    "batch": lpm4.LPM_IMPL_BATCH,
    "scalar-portable": lpm4.LPM_IMPL_SCALAR_PORTABLE,
    "batch-portable": lpm4.LPM_IMPL_BATCH_PORTABLE,
}


cdef raise_apply(long rc, size_t bad, str what):
    if rc == -EINVAL or rc == -ERANGE:
        raise ValueError(f"{what}: entry {bad} is invalid (prefix length, host bits, VRF or next hop)")
    check_rc(<int>rc, what)


cdef class Lpm4Table:
    cdef lpm4.lpm4 *t
    cdef readonly RcuDomain domain

    def __cinit__(self, RcuDomain domain not None):
        self.domain = domain
        self.t = lpm4.lpm4_create(domain.d)
        if self.t == NULL:
            raise MemoryError("lpm4_create")

    def _capsule(self):
        """The C object, for the test / benchmark helper module (vrouter._testext);
        the caller keeps self alive while it uses it."""
        return _capsule(<void *>self.t, b"vrouter.lpm4")

    def __dealloc__(self):
        if self.t != NULL:
            lpm4.lpm4_destroy(self.t)

    def insert(self, uint32_t vrf, uint32_t addr, unsigned length, uint32_t nh):
        return check_rc(lpm4.lpm4_insert(self.t, vrf, addr, length, nh), "lpm4 insert")

    def delete(self, uint32_t vrf, uint32_t addr, unsigned length):
        cdef int rc = lpm4.lpm4_delete(self.t, vrf, addr, length)
        if rc == -ENOENT:
            return False
        check_rc(rc, "lpm4 delete")
        return True

    def get(self, uint32_t vrf, uint32_t addr, unsigned length):
        cdef uint32_t nh = 0
        cdef int rc = lpm4.lpm4_get(self.t, vrf, addr, length, &nh)
        if rc == -ENOENT:
            return None
        check_rc(rc, "lpm4 get")
        return nh

    def apply(self, uint32_t vrf, const uint32_t[::1] addrs, const uint8_t[::1] lens,
              const uint32_t[::1] nhs, const uint8_t[::1] dels):
        cdef Py_ssize_t n = addrs.shape[0]
        cdef size_t bad = 0
        if lens.shape[0] != n or (nhs is not None and nhs.shape[0] != n) or \
                (dels is not None and dels.shape[0] != n):
            raise ValueError("batch arrays differ in length")
        cdef const uint32_t *pn = &nhs[0] if nhs is not None and n else NULL
        cdef const uint8_t *pd = &dels[0] if dels is not None and n else NULL
        if n == 0:
            return 0
        cdef long rc = lpm4.lpm4_apply(self.t, vrf, &addrs[0], &lens[0], pn, pd, n, &bad)
        if rc < 0:
            raise_apply(rc, bad, "lpm4 batch")
        return rc

    def lookup(self, uint16_t vrf, uint32_t addr):
        return lpm4.lpm4_lookup(self.t, vrf, addr)

    def lookup_batch(self, uint16_t vrf, const uint32_t[::1] keys, int impl=0):
        cdef size_t n = keys.shape[0]
        out = np.empty(n, dtype=np.uint32)
        cdef uint32_t[::1] o = out
        cdef int slot
        if n:
            with nogil:
                slot = rcu.rcu_read_enter(self.domain.d)
                lpm4.lpm4_lookup_bulk(self.t, vrf, &keys[0], &o[0], n, impl)
                rcu.rcu_read_exit(self.domain.d, slot)
        return out

    def dump(self, uint32_t vrf):
        cdef size_t n = lpm4.lpm4_count(self.t, vrf)
        addrs = np.empty(n, dtype=np.uint32)
        lens = np.empty(n, dtype=np.uint8)
        nhs = np.empty(n, dtype=np.uint32)
        cdef uint32_t[::1] a = addrs
        cdef uint8_t[::1] l = lens
        cdef uint32_t[::1] h = nhs
        if n:
            n = lpm4.lpm4_dump(self.t, vrf, &a[0], &l[0], &h[0], n)
        return addrs[:n], lens[:n], nhs[:n]

    def count(self, uint32_t vrf):
        return lpm4.lpm4_count(self.t, vrf)

    def total(self):
        return lpm4.lpm4_total(self.t)

    def vrfs(self):
        out = np.empty(65536, dtype=np.uint16)
        cdef uint16_t[::1] o = out
        cdef size_t n = lpm4.lpm4_vrfs(self.t, &o[0], 65536)
        return out[:n]

    def bytes_used(self):
        return lpm4.lpm4_bytes(self.t)

    @property
    def generation(self):
        return lpm4.lpm4_generation(self.t)


cdef class Lpm6Table:
    cdef lpm6.lpm6 *t
    cdef readonly RcuDomain domain

    def __cinit__(self, RcuDomain domain not None):
        self.domain = domain
        self.t = lpm6.lpm6_create(domain.d)
        if self.t == NULL:
            raise MemoryError("lpm6_create")

    def _capsule(self):
        """The C object, for the test / benchmark helper module (vrouter._testext);
        the caller keeps self alive while it uses it."""
        return _capsule(<void *>self.t, b"vrouter.lpm6")

    def __dealloc__(self):
        if self.t != NULL:
            lpm6.lpm6_destroy(self.t)

    def insert(self, uint32_t vrf, const uint8_t[::1] addr, unsigned length, uint32_t nh):
        _need16(addr)
        return check_rc(lpm6.lpm6_insert(self.t, vrf, &addr[0], length, nh), "lpm6 insert")

    def delete(self, uint32_t vrf, const uint8_t[::1] addr, unsigned length):
        _need16(addr)
        cdef int rc = lpm6.lpm6_delete(self.t, vrf, &addr[0], length)
        if rc == -ENOENT:
            return False
        check_rc(rc, "lpm6 delete")
        return True

    def get(self, uint32_t vrf, const uint8_t[::1] addr, unsigned length):
        _need16(addr)
        cdef uint32_t nh = 0
        cdef int rc = lpm6.lpm6_get(self.t, vrf, &addr[0], length, &nh)
        if rc == -ENOENT:
            return None
        check_rc(rc, "lpm6 get")
        return nh

    def apply(self, uint32_t vrf, const uint8_t[:, ::1] addrs, const uint8_t[::1] lens,
              const uint32_t[::1] nhs, const uint8_t[::1] dels):
        cdef Py_ssize_t n = addrs.shape[0]
        cdef size_t bad = 0
        if addrs.shape[1] != 16:
            raise ValueError("IPv6 keys must be an (N, 16) uint8 array")
        if lens.shape[0] != n or (nhs is not None and nhs.shape[0] != n) or \
                (dels is not None and dels.shape[0] != n):
            raise ValueError("batch arrays differ in length")
        if n == 0:
            return 0
        cdef const uint32_t *pn = &nhs[0] if nhs is not None else NULL
        cdef const uint8_t *pd = &dels[0] if dels is not None else NULL
        cdef long rc = lpm6.lpm6_apply(self.t, vrf, &addrs[0, 0], &lens[0], pn, pd, n, &bad)
        if rc < 0:
            raise_apply(rc, bad, "lpm6 batch")
        return rc

    def lookup(self, uint16_t vrf, const uint8_t[::1] addr):
        _need16(addr)
        return lpm6.lpm6_lookup(self.t, vrf, &addr[0])

    def lookup_batch(self, uint16_t vrf, const uint8_t[:, ::1] keys, int impl=0):
        cdef size_t n = keys.shape[0]
        if keys.shape[1] != 16:
            raise ValueError("IPv6 keys must be an (N, 16) uint8 array")
        out = np.empty(n, dtype=np.uint32)
        cdef uint32_t[::1] o = out
        cdef int slot
        if n:
            with nogil:
                slot = rcu.rcu_read_enter(self.domain.d)
                lpm6.lpm6_lookup_bulk(self.t, vrf, &keys[0, 0], &o[0], n, impl)
                rcu.rcu_read_exit(self.domain.d, slot)
        return out

    def dump(self, uint32_t vrf):
        cdef size_t n = lpm6.lpm6_count(self.t, vrf)
        addrs = np.empty((n, 16), dtype=np.uint8)
        lens = np.empty(n, dtype=np.uint8)
        nhs = np.empty(n, dtype=np.uint32)
        cdef uint8_t[:, ::1] a = addrs
        cdef uint8_t[::1] l = lens
        cdef uint32_t[::1] h = nhs
        if n:
            n = lpm6.lpm6_dump(self.t, vrf, &a[0, 0], &l[0], &h[0], n)
        return addrs[:n], lens[:n], nhs[:n]

    def count(self, uint32_t vrf):
        return lpm6.lpm6_count(self.t, vrf)

    def total(self):
        return lpm6.lpm6_total(self.t)

    def vrfs(self):
        out = np.empty(65536, dtype=np.uint16)
        cdef uint16_t[::1] o = out
        cdef size_t n = lpm6.lpm6_vrfs(self.t, &o[0], 65536)
        return out[:n]

    def bytes_used(self):
        return lpm6.lpm6_bytes(self.t)

    @property
    def generation(self):
        return lpm6.lpm6_generation(self.t)


cdef _need16(const uint8_t[::1] addr):
    if addr.shape[0] != 16:
        raise ValueError("an IPv6 address is 16 bytes")
