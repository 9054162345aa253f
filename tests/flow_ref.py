"""Reference model of the flow table: a dict of pairs, written from the
contract in ext/flow.h (not from the C code), used by the property tests."""
from dataclasses import dataclass

TCP_SYN, TCP_EST, TCP_FIN, TCP_RST = 1, 2, 4, 8


def key_tuple(rec):
    """numpy KEY_DTYPE record -> hashable tuple."""
    return (bytes(rec["src"]), bytes(rec["dst"]), int(rec["sport"]), int(rec["dport"]),
            int(rec["vrf"]), int(rec["proto"]), int(rec["family"]))


def reverse(k):
    src, dst, sport, dport, vrf, proto, fam = k
    if proto == 1:
        return (dst, src, sport, {8: 0, 0: 8}.get(dport, dport), vrf, proto, fam)
    if proto == 58:
        return (dst, src, sport, {128: 129, 129: 128}.get(dport, dport), vrf, proto, fam)
    return (dst, src, dport, sport, vrf, proto, fam)


@dataclass
class Pair:
    fwd: tuple
    rev: tuple
    slot: int            # pair slot in the C table (forward index // 2)
    nh: int
    rev_nh: int
    vif: int
    action: int
    rule_id: int
    gen: int
    last: list           # [forward, reverse] last seen
    tcp: list            # [forward, reverse] TCP state bits
    drop_reason: int = 0


class FlowModel:
    def __init__(self, capacity, timeouts_ns, quota_vif=0, quota_vrf=0):
        self.npairs = capacity // 2
        self.to = dict(zip(("tcp", "tcp_close", "udp", "icmp", "other", "drop"), timeouts_ns))
        self.default_quota = {"vif": quota_vif, "vrf": quota_vrf}
        self.quota = {"vif": {}, "vrf": {}}
        self.pairs = {}      # forward key -> Pair
        self.index = {}      # any key -> (Pair, is_reverse)
        self.cursor = 0

    def limit(self, kind, ident):
        return self.quota[kind].get(ident, self.default_quota[kind])

    def count(self, kind, ident):
        if kind == "vif":
            return sum(1 for p in self.pairs.values() if p.vif == ident)
        return sum(1 for p in self.pairs.values() if p.fwd[4] == ident)

    def refusal(self, fwd, vif):
        """The outcome name if an insert of fwd would be refused, else None."""
        rev = reverse(fwd)
        if fwd == rev:
            return "bad_key"
        if fwd in self.index or rev in self.index:
            return "flow_exists"
        lim = self.limit("vif", vif)
        if lim and self.count("vif", vif) >= lim:
            return "vif_quota"
        lim = self.limit("vrf", fwd[4])
        if lim and self.count("vrf", fwd[4]) >= lim:
            return "vrf_quota"
        if len(self.pairs) >= self.npairs:
            return "table_full"
        return None

    def insert(self, fwd, slot, nh, rev_nh, vif, action, rule_id, gen, now):
        p = Pair(fwd, reverse(fwd), slot, nh, rev_nh, vif, action, rule_id, gen, [now, now], [0, 0],
                 1 if action else 0)
        self.pairs[fwd] = p
        self.index[p.fwd] = (p, False)
        self.index[p.rev] = (p, True)
        return p

    def remove(self, p):
        del self.pairs[p.fwd]
        del self.index[p.fwd]
        del self.index[p.rev]

    def lookup(self, k):
        return self.index.get(k)

    def touch(self, k, flags, now):
        p, is_rev = self.index[k]
        i = int(is_rev)
        p.last[i] = now
        if k[5] != 6:
            return
        st = p.tcp[i]
        pair = p.tcp[0] | p.tcp[1]
        if flags & 0x02:
            st |= TCP_SYN
        if flags & 0x10 and not flags & 0x02 and pair & TCP_SYN:
            st |= TCP_EST
        if flags & 0x01:
            st |= TCP_FIN
        if flags & 0x04:
            st |= TCP_RST
        p.tcp[i] = st

    def timeout(self, p):
        proto = p.fwd[5]
        if p.action == 1:
            return self.to["drop"]
        if proto == 6:
            return self.to["tcp_close"] if (p.tcp[0] | p.tcp[1]) & (TCP_FIN | TCP_RST) else self.to["tcp"]
        if proto == 17:
            return self.to["udp"]
        if proto in (1, 58):
            return self.to["icmp"]
        return self.to["other"]

    def expired(self, p, now):
        last = max(p.last)
        return now >= last and now - last >= self.timeout(p)

    def sweep(self, now, budget):
        budget = min(budget, self.npairs)
        slots = {(self.cursor + i) % self.npairs for i in range(budget)}
        self.cursor += budget
        gone = [p for p in self.pairs.values() if p.slot in slots and self.expired(p, now)]
        for p in gone:
            self.remove(p)
        return len(gone)
