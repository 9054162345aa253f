# Thin wrapper over ext/packet.h. Descriptor arrays are numpy arrays of
# vrouter.packet.PKT_DTYPE whose buffer pointers the facade (vrouter/packet.py)
# sets into a backing store it keeps alive; this layer checks what protects
# memory (record size, contiguity, alignment, each frame inside its buffer)
# and releases the GIL around every loop.
cimport packet as cp
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.stdint cimport uintptr_t


def pkt_struct_size():
    return sizeof(cp.pkt)


def pkt_constants():
    return {"headroom": cp.PKT_HEADROOM, "burst_max": cp.PKT_BURST_MAX,
            "ip6_max_ext": cp.PKT_IP6_MAX_EXT, "verify_ip4_csum": cp.PKT_PARSE_VERIFY_IP4_CSUM,
            "flags": {"vlan": cp.PKT_F_VLAN, "arp": cp.PKT_F_ARP, "ip4": cp.PKT_F_IP4,
                      "ip6": cp.PKT_F_IP6, "other": cp.PKT_F_OTHER, "fragment": cp.PKT_F_FRAG,
                      "l4": cp.PKT_F_L4, "ip4_csum_ok": cp.PKT_F_CSUM_OK}}


cdef cp.pkt *_pkts(object arr, bint check_frames) except NULL:
    cdef cnp.ndarray a = arr
    cdef cp.pkt *p
    cdef Py_ssize_t i
    if not a.flags.c_contiguous or a.dtype.itemsize != sizeof(cp.pkt) or a.ndim != 1:
        raise TypeError(f"descriptors: expected a C-contiguous 1-d array of {sizeof(cp.pkt)}-byte records")
    p = <cp.pkt *>cnp.PyArray_DATA(a)
    if a.shape[0] and <uintptr_t>p % 64:
        raise ValueError("descriptors: array must be 64-byte aligned (use vrouter.packet.Burst)")
    if check_frames:
        for i in range(a.shape[0]):
            if p[i].buf == NULL or <uint32_t>p[i].data_off + p[i].data_len > p[i].buf_size:
                raise ValueError(f"descriptor {i}: frame outside its buffer")
    return p


def pkt_parse(descs, unsigned flags, uint32_t burst=64, uint32_t repeat=1):
    """Parse every descriptor in place, `burst` per C call, GIL released. Returns how many parsed
    (in the last pass). repeat > 1 parses the array again (benchmarks: one Python call)."""
    cdef cp.pkt *p = _pkts(descs, True)
    cdef uint32_t n = len(descs), i, r, ok = 0
    if burst == 0 or repeat == 0:
        raise ValueError("burst and repeat must be > 0")
    with nogil:
        for r in range(repeat):
            ok = 0
            i = 0
            while i < n:
                ok += cp.pkt_parse_burst(p + i, min(burst, n - i), flags)
                i += burst
    return ok


def pkt_parse_exact(list frames, descs, uint32_t headroom, unsigned flags, uint16_t vif=0):
    """Parse frames each copied into its own malloc'd buffer of exactly headroom + len bytes (the
    frame at the end), so that under ASan any read past a frame hits a redzone. descs receives the
    metadata; its buffer pointers are cleared (the buffers are freed before returning)."""
    cdef cp.pkt *p = _pkts(descs, False)
    cdef Py_ssize_t n = len(frames), i
    cdef const unsigned char[:] mv
    if len(descs) != n:
        raise ValueError("descs: length differs from frames")
    for i in range(n):
        if len(frames[i]) + headroom > 65535:
            raise ValueError(f"frame {i}: longer than a descriptor holds")
    try:
        for i in range(n):
            mv = frames[i]
            p[i].buf = <uint8_t *>malloc(headroom + mv.shape[0] if headroom + mv.shape[0] else 1)
            if p[i].buf == NULL:
                raise MemoryError()
            if mv.shape[0]:
                memcpy(p[i].buf + headroom, &mv[0], mv.shape[0])
            p[i].buf_size = headroom + mv.shape[0]
            p[i].data_off = headroom
            p[i].data_len = mv.shape[0]
            p[i].vif = vif
        with nogil:
            cp.pkt_parse_burst(p, <uint32_t>n, flags)
    finally:
        for i in range(n):
            free(p[i].buf)
            p[i].buf = NULL
            p[i].buf_size = 0


def pkt_l4_csum(descs, cnp.ndarray[uint16_t, ndim=1, mode="c"] out):
    """out[i] = the L4 checksum of parsed descriptor i (0 = correct); only where PKT_F_L4 and not
    a fragment (the caller selects: other entries are left alone)."""
    cdef cp.pkt *p = _pkts(descs, True)
    cdef Py_ssize_t n = len(descs), i
    if out.shape[0] != n:
        raise ValueError("out: length differs from descs")
    with nogil:
        for i in range(n):
            if p[i].drop == 0 and (p[i].flags & cp.PKT_F_L4) and not (p[i].flags & cp.PKT_F_FRAG):
                out[i] = cp.pkt_l4_csum(&p[i])


def pkt_l4_csum_fill(descs, cnp.ndarray[int32_t, ndim=1, mode="c"] rc):
    cdef cp.pkt *p = _pkts(descs, True)
    cdef Py_ssize_t n = len(descs), i
    if rc.shape[0] != n:
        raise ValueError("rc: length differs from descs")
    with nogil:
        for i in range(n):
            rc[i] = cp.pkt_l4_csum_fill(&p[i])


def pkt_ttl_decrement(descs, cnp.ndarray[int32_t, ndim=1, mode="c"] rc):
    cdef cp.pkt *p = _pkts(descs, True)
    cdef Py_ssize_t n = len(descs), i
    if rc.shape[0] != n:
        raise ValueError("rc: length differs from descs")
    with nogil:
        for i in range(n):
            rc[i] = cp.pkt_ttl_decrement(&p[i])


def pkt_csum_add(const unsigned char[:] data, uint32_t sum=0):
    """One's-complement sum of data's big-endian words added to sum (not folded, not complemented)."""
    if data.shape[0] == 0:
        return cp.pkt_csum_add(NULL, 0, sum)
    return cp.pkt_csum_add(&data[0], data.shape[0], sum)


def pkt_csum_fold(uint32_t sum):
    return cp.pkt_csum_fold(sum)


def pkt_ip4_csum(const unsigned char[:] hdr):
    if hdr.shape[0] < 20 or hdr.shape[0] % 4:
        raise ValueError("IPv4 header: 20..60 bytes, a multiple of 4")
    return cp.pkt_ip4_csum(&hdr[0], hdr.shape[0])


def pkt_csum_update16(uint16_t csum, uint16_t old, uint16_t new):
    return cp.pkt_csum_update16(csum, old, new)


def pkt_csum_update(uint16_t csum, const unsigned char[:] old, const unsigned char[:] new):
    if old.shape[0] != new.shape[0] or old.shape[0] % 2 or old.shape[0] == 0 or old.shape[0] > 64:
        raise ValueError("old/new: same even length, 2..64 bytes")
    return cp.pkt_csum_update(csum, &old[0], &new[0], old.shape[0])


def pkt_pseudo_sum(int family, const unsigned char[:] src, const unsigned char[:] dst,
                   uint8_t proto, uint32_t l4_len):
    cdef Py_ssize_t alen = 16 if family == 6 else 4
    if family not in (4, 6) or src.shape[0] != alen or dst.shape[0] != alen:
        raise ValueError("family 4 or 6 with 4- or 16-byte addresses")
    return cp.pkt_pseudo_sum(family, &src[0], &dst[0], proto, l4_len)
