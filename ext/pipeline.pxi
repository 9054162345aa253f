# Thin wrapper over ext/pipeline.h. Frames travel in descriptor arrays
# (vrouter.packet.PKT_DTYPE, checked by _pkts in packet.pxi); the facade
# vrouter/pipeline.py owns the buffers and names verdicts and reasons.
cimport pipeline as cpl


def pl_reply_names():
    return [cpl.pl_reply_name(i).decode() for i in range(cpl.PL_REPLY__COUNT)]


def pl_constants():
    return {"max_workers": cpl.PL_MAX_WORKERS, "burst": cpl.PL_BURST,
            "verify_ip4_csum": cpl.PL_F_VERIFY_IP4_CSUM, "result_size": sizeof(cpl.pl_result),
            "verdicts": {cpl.PL_FORWARD: "forward", cpl.PL_REPLY: "reply", cpl.PL_HOST: "host",
                         cpl.PL_DROP: "drop"}}


_PL_STAT_FIELDS = ("packets", "forwarded", "replies", "to_host", "dropped", "flow_hits", "flow_misses",
                   "flow_installs", "encap_vxlan", "encap_mpls", "decap_vxlan", "decap_mpls")


cdef class Pipeline:
    """The C pipeline over one node's tables; see ext/pipeline.h.
    Use vrouter.pipeline.Datapath instead."""
    cdef cpl.pipeline *pl
    cdef readonly tuple tables
    cdef RcuDomain dom

    def __cinit__(self, NhTableC nh, Lpm4Table l4, Lpm6Table l6, FlowTable ft, PolicyTable pt,
                  int nworkers, unsigned flags):
        if not (l4.domain is l6.domain is pt.dom is nh.dom):
            raise ValueError("the tables of one pipeline must share one RCU domain")
        self.dom = l4.domain
        check_rc(cpl.pl_create(nh.t, l4.t, l6.t, ft.t, pt.pt, nworkers, flags, &self.pl),
                 "pipeline create")
        self.tables = (nh, l4, l6, ft, pt)

    def _capsule(self):
        """The C object, for the test / benchmark helper module (vrouter._testext);
        the caller keeps self alive while it uses it."""
        return _capsule(<void *>self.pl, b"vrouter.pipeline")

    def __dealloc__(self):
        if self.pl != NULL:
            cpl.pl_destroy(self.pl)
            self.pl = NULL

    @property
    def workers(self):
        return cpl.pl_workers(self.pl)

    def process(self, descs, results, uint64_t now, int worker=0):
        """Run every descriptor through the pipeline (GIL released, as an RCU
        reader). Returns how many frames are to be sent."""
        cdef cp.pkt *p = _pkts(descs, True)
        cdef uint32_t n = len(descs), sent
        cdef cpl.pl_result *res = <cpl.pl_result *>_buf(results, sizeof(cpl.pl_result), "results", n)
        cdef int slot
        if worker < 0 or worker >= cpl.pl_workers(self.pl):
            raise ValueError(f"worker: must be 0..{cpl.pl_workers(self.pl) - 1}, got {worker}")
        slot = crcu.rcu_read_enter(self.dom.d)
        with nogil:
            sent = cpl.pl_process(self.pl, worker, p, n, res, now)
        crcu.rcu_read_exit(self.dom.d, slot)
        return sent

    def trace(self, descs, results, uint64_t now):
        """Trace the single descriptor in descs (dry run); returns the text."""
        cdef cp.pkt *p = _pkts(descs, True)
        cdef cpl.pl_result *res = <cpl.pl_result *>_buf(results, sizeof(cpl.pl_result), "results", 1)
        cdef char *text
        cdef size_t n
        cdef int slot
        if len(descs) != 1:
            raise ValueError("trace: exactly one frame")
        text = <char *>malloc(cpl.PL_TRACE_MAX)
        if text == NULL:
            raise MemoryError()
        try:
            slot = crcu.rcu_read_enter(self.dom.d)
            n = cpl.pl_trace(self.pl, p, res, now, text, cpl.PL_TRACE_MAX)
            crcu.rcu_read_exit(self.dom.d, slot)
            return text[:n].decode("utf-8", "replace")
        finally:
            free(text)

    def stats(self):
        cdef cpl.pl_stats st
        cdef uint64_t *words = <uint64_t *>&st
        cdef int i, nf = len(_PL_STAT_FIELDS)
        cpl.pl_read_stats(self.pl, &st)
        out = {name: words[i] for i, name in enumerate(_PL_STAT_FIELDS)}
        out["drops"] = {cdrop.vr_drop_name(i).decode(): words[nf + i] for i in range(cpl.PL_DROP__COUNT)}
        out["reply"] = {cpl.pl_reply_name(i).decode(): words[nf + cpl.PL_DROP__COUNT + i]
                        for i in range(cpl.PL_REPLY__COUNT)}
        return out

    def vif_stats(self, uint16_t vif):
        cdef cpl.pl_vif_stats s
        cpl.pl_read_vif_stats(self.pl, vif, &s)
        return {"rx_packets": s.rx_packets, "rx_bytes": s.rx_bytes, "tx_packets": s.tx_packets,
                "tx_bytes": s.tx_bytes, "drops": s.drops}

    def vrf_stats(self, uint16_t vrf):
        cdef cpl.pl_vrf_stats s
        cpl.pl_read_vrf_stats(self.pl, vrf, &s)
        return {"packets": s.packets, "bytes": s.bytes}

    def revalidate_flows(self, int vrf=-1):
        """Delete flow pairs whose next hop the routes no longer give (writer thread).
        Returns (deleted pairs, entries examined)."""
        cdef uint32_t examined = 0, deleted
        with nogil:
            deleted = cpl.pl_flows_revalidate(self.pl, vrf, &examined)
        return deleted, examined

    def clear_stats(self):
        cpl.pl_stats_clear(self.pl)
