# One place that maps C error codes (negated errno) to Python exceptions.
from libc.errno cimport EINVAL, ERANGE, ENOMEM, ENOENT, EBUSY, EEXIST, ENOSPC


class TableError(Exception):
    """Base class of errors raised by the C tables."""


cdef int check_rc(int rc, str what) except -1:
    if rc >= 0:
        return rc
    if rc == -EINVAL:
        raise ValueError(f"{what}: invalid argument")
    if rc == -ERANGE:
        raise ValueError(f"{what}: value out of range")
    if rc == -ENOMEM:
        raise MemoryError(f"{what}: out of memory (table unchanged)")
    if rc == -ENOENT:
        raise KeyError(what)
    if rc == -EBUSY:
        raise TableError(f"{what}: busy")
    if rc == -EEXIST:
        raise TableError(f"{what}: already exists")
    if rc == -ENOSPC:
        raise TableError(f"{what}: table full")
    raise TableError(f"{what}: error {-rc}")


def mem_fail_after(long n):
    """Test hook: make the n-th writer-side allocation from now fail (-1: off)."""
    vr_mem_fail_after(n)
