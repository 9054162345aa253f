# Cython declarations for ext/drop.h (drop reasons, declared in ext/drop.def).
cdef extern from "drop.h" nogil:
    enum: PKT_DROP__COUNT
    enum: PL_DROP__COUNT
    const char *vr_drop_name(int reason)
