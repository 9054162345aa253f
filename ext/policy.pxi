# Thin wrapper over ext/policy.h. Rule validation with field names lives in
# vrouter/policy.py; the C side re-checks every rule (and names its index).
cimport policy as cpol


def pol_struct_sizes():
    return {"rule": sizeof(cpol.pol_rule), "result": sizeof(cpol.pol_result)}


cdef class PolicyTable:
    """Policy lists attached to VRFs and vifs; see ext/policy.h.
    Use vrouter.policy.PolicyTable instead."""
    cdef cpol.pol_table *pt
    cdef readonly RcuDomain dom

    def __cinit__(self, RcuDomain domain=None):
        self.dom = domain if domain is not None else default_domain()
        check_rc(cpol.pol_table_create(self.dom.d, &self.pt), "policy table create")

    def __dealloc__(self):
        if self.pt != NULL:
            cpol.pol_table_destroy(self.pt)
            self.pt = NULL

    def attach(self, int kind, uint16_t ident, rules, int default_action):
        """Compile `rules` (pol_rule records) and publish them for a VRF/vif;
        rules=None detaches. Returns the new generation."""
        cdef cpol.pol_list *l = NULL
        cdef uint32_t bad = 0, n
        cdef cpol.pol_rule *r
        cdef int rc
        if rules is not None:
            n = len(rules)
            r = <cpol.pol_rule *>_buf(rules, sizeof(cpol.pol_rule), "rules")
            with nogil:
                rc = cpol.pol_list_build(r, n, <uint8_t>default_action, &l, &bad)
            if rc == -EINVAL and n:
                raise ValueError(f"rule {bad}: invalid (rejected by the compiler)")
            check_rc(rc, "policy compile")
        check_rc(cpol.pol_attach(self.pt, kind, ident, l), "policy attach")
        crcu.rcu_reclaim(self.dom.d)
        return cpol.pol_generation(self.pt)

    @property
    def generation(self):
        return cpol.pol_generation(self.pt)

    def eval_bulk(self, keys, vifs, int direction, results, bint linear=False):
        cdef uint32_t n = len(keys)
        cdef cf.flow_key *k = <cf.flow_key *>_buf(keys, sizeof(cf.flow_key), "keys")
        cdef cpol.pol_result *res = <cpol.pol_result *>_buf(results, sizeof(cpol.pol_result), "results", n)
        cdef uint16_t *v = NULL
        cdef int slot
        if vifs is not None:
            v = <uint16_t *>_buf(vifs, 2, "vifs", n)
        slot = crcu.rcu_read_enter(self.dom.d)
        with nogil:
            cpol.pol_eval_bulk(self.pt, k, v, direction, n, res, linear)
        crcu.rcu_read_exit(self.dom.d, slot)
