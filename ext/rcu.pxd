# Cython declarations for ext/rcu.h (QSBR reclamation shared by all tables).
from libc.stdint cimport uint64_t

cdef extern from "rcu.h" nogil:
    enum: RCU_MAX_READERS
    struct rcu_domain:
        pass
    rcu_domain *rcu_create()
    void rcu_destroy(rcu_domain *d)
    int rcu_register(rcu_domain *d)
    void rcu_unregister(rcu_domain *d, int id)
    void rcu_online(rcu_domain *d, int id)
    void rcu_offline(rcu_domain *d, int id)
    void rcu_quiescent(rcu_domain *d, int id)
    int rcu_read_enter(rcu_domain *d)
    void rcu_read_exit(rcu_domain *d, int id)
    size_t rcu_reclaim(rcu_domain *d)
    void rcu_synchronize(rcu_domain *d)
    size_t rcu_pending(rcu_domain *d)
    uint64_t rcu_epoch(rcu_domain *d)
    int rcu_online_readers(rcu_domain *d)
