# Cython declarations for ext/mem.h (allocation fault injection for tests).
cdef extern from "mem.h" nogil:
    void vr_mem_fail_after(long n)
