# Python wrapper over ext/rcu.h: a QSBR domain shared by the tables.
cimport rcu


cdef class RcuDomain:
    """A reclamation domain. Tables created with the same domain share the
    readers' quiescent states (workers report once per burst for all)."""
    cdef rcu.rcu_domain *d

    def __cinit__(self):
        self.d = rcu.rcu_create()
        if self.d == NULL:
            raise MemoryError("rcu_create")

    def _capsule(self):
        """The C object, for the test / benchmark helper module (vrouter._testext);
        the caller keeps self alive while it uses it."""
        return _capsule(<void *>self.d, b"vrouter.rcu_domain")

    def __dealloc__(self):
        if self.d != NULL:
            rcu.rcu_destroy(self.d)
            self.d = NULL

    def register(self):
        """Claim a reader slot (offline until online() is called)."""
        return check_rc(rcu.rcu_register(self.d), "rcu register")

    def unregister(self, int slot):
        self._check(slot)
        rcu.rcu_unregister(self.d, slot)

    def online(self, int slot):
        self._check(slot)
        rcu.rcu_online(self.d, slot)

    def offline(self, int slot):
        self._check(slot)
        rcu.rcu_offline(self.d, slot)

    def quiescent(self, int slot):
        self._check(slot)
        rcu.rcu_quiescent(self.d, slot)

    def reclaim(self):
        return rcu.rcu_reclaim(self.d)

    def synchronize(self):
        with nogil:
            rcu.rcu_synchronize(self.d)

    @property
    def pending(self):
        return rcu.rcu_pending(self.d)

    @property
    def epoch(self):
        return rcu.rcu_epoch(self.d)

    @property
    def online_readers(self):
        return rcu.rcu_online_readers(self.d)

    cdef _check(self, int slot):
        if slot < 0 or slot >= rcu.RCU_MAX_READERS:
            raise ValueError(f"reader slot {slot} out of range 0..{rcu.RCU_MAX_READERS - 1}")


_default_domain = None


def default_domain():
    """The process-wide domain used when a table is created without one."""
    global _default_domain
    if _default_domain is None:
        _default_domain = RcuDomain()
    return _default_domain
