# cython: language_level=3, boundscheck=False, wraparound=False
"""vrouter._ext: every C component of the data plane, one thin wrapper each.

Each component's wrapper lives in ext/<component>.pxi and its C declarations
in ext/<component>.pxd; this file only pulls them together so that all C
links into one module (the pipeline calls every table directly).
"""
cimport numpy as cnp
cnp.import_array()
from mem cimport vr_mem_fail_after
from cpython.pycapsule cimport PyCapsule_New


cdef object _capsule(void *p, const char *name):
    """A table's C pointer named by its type: what vrouter._testext (tests and
    benchmarks only, built apart) takes to run its C helpers on our tables."""
    return PyCapsule_New(p, name, NULL)


include "errors.pxi"
include "drop.pxi"
include "rcu.pxi"
include "lpm.pxi"
include "flow.pxi"
include "policy.pxi"
include "packet.pxi"
include "nexthop.pxi"
include "pipeline.pxi"
include "io.pxi"
include "worker.pxi"
