"""Reference policy evaluator: a plain first-match scan over the normalised
rules with Python's ipaddress, written from the documented semantics."""
import ipaddress

from vrouter.policy import ACTIONS, PROTO_ANY, RULE_DEFAULT, RULE_NONE, normalise_rule


def key_fields(rec):
    """numpy KEY_DTYPE record -> (family, src ip, dst ip, proto, sport, dport, vrf)."""
    fam = int(rec["family"])
    s, d = bytes(rec["src"]), bytes(rec["dst"])
    if fam == 4:
        src, dst = ipaddress.IPv4Address(s[12:]), ipaddress.IPv4Address(d[12:])
    else:
        src, dst = ipaddress.IPv6Address(s), ipaddress.IPv6Address(d)
    return fam, src, dst, int(rec["proto"]), int(rec["sport"]), int(rec["dport"]), int(rec["vrf"])


class ListRef:
    def __init__(self, rules, default="pass"):
        self.rules = [normalise_rule(r, i) for i, r in enumerate(rules)]
        self.default = ACTIONS[default]

    def eval(self, rec, direction):
        fam, src, dst, proto, sport, dport, _ = key_fields(rec)
        for r in self.rules:
            if not r["dir"] & direction:
                continue
            fams = {n.version for n in (r["src"], r["dst"]) if n is not None}
            if fams and fam not in fams:
                continue
            if r["proto"] != PROTO_ANY and r["proto"] != proto:
                continue
            if not (r["sport"][0] <= sport <= r["sport"][1] and r["dport"][0] <= dport <= r["dport"][1]):
                continue
            if r["src"] is not None and src not in r["src"]:
                continue
            if r["dst"] is not None and dst not in r["dst"]:
                continue
            return r["action"], r["id"]
        return self.default, RULE_DEFAULT


class PolicyRef:
    """Security group of the vif first (a deny ends it), then the VRF policy."""

    def __init__(self):
        self.vrf, self.vif = {}, {}

    def eval(self, rec, vif=None, direction=1):
        vrf = int(rec["vrf"])
        sg = self.vif.get(vif) if vif is not None else None
        if sg is not None:
            a, rid = sg.eval(rec, direction)
            if a == 1:
                return a, rid
        if vrf in self.vrf:
            return self.vrf[vrf].eval(rec, direction)
        if sg is not None:
            return a, rid
        return 0, RULE_NONE
