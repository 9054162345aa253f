"""Field checkers: the one place where addresses, prefixes, MACs, ids, VNIs, labels, ports and names
are checked, for every input path (the control protocol, node.yaml, the agent's intent, the table
facades, CLI arguments).

A checker is ``check(path, value, ...) -> normalised value``. ``path`` names the field the way the
caller's user sees it ("b.rules[2].dport", "vifs[1].ip", "spec.cidr", "vif 4 gw6"); a refusal raises
``FieldError(path, msg)``, a ValueError whose ``str()`` is "path: msg", or ``FieldTypeError`` (also a
TypeError) when the value has the wrong type altogether. Callers wrap it in their own error type
(ProtocolError "invalid", ConfigError, IntentError) keeping ``path`` and ``msg``.

The ranges of the datapath's ids live here too (``VRF_MAX`` ...), so the protocol, the node
configuration and the tables cannot disagree about them.

``load_yaml`` is the strict YAML reader both node.yaml and the intent use: a key given twice in one
mapping is refused (PyYAML keeps the last one silently), naming the line.
"""
from __future__ import annotations

import functools
import ipaddress
import re

__all__ = ["FieldError", "FieldTypeError", "show", "is_int", "integer", "boolean", "string", "choice", "mac",
           "mac_bytes", "unicast_problem", "address", "network", "interface", "ports", "proto", "ifname",
           "netns_name", "load_yaml", "VRF_MAX", "VIF_MAX", "NH_MAX", "LABEL_MIN", "LABEL_MAX", "VNI_MAX",
           "PORT_MAX", "PROTOCOLS"]

VRF_MAX = 65535
VIF_MAX = 4095
NH_MAX = (1 << 24) - 1
LABEL_MIN, LABEL_MAX = 16, (1 << 20) - 1     # 0..15 are reserved (RFC 3032)
VNI_MAX = (1 << 24) - 1
PORT_MAX = 65535
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "icmp6": 58, "ipv6-icmp": 58, "sctp": 132}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class FieldError(ValueError):
    """A field's value refused: ``path`` (where), ``msg`` (why)."""

    def __init__(self, path: str | None, msg: str):
        self.path, self.msg = path, msg
        super().__init__(f"{path}: {msg}" if path else msg)


class FieldTypeError(FieldError, TypeError):
    """The value is not even of the right type."""


def show(v) -> str:
    """A short description of a value for messages (never the whole of a big or deep one)."""
    if isinstance(v, (str, bytes, bytearray)):
        return repr(v[:40]) + ("..." if len(v) > 40 else "")
    if isinstance(v, (list, tuple, dict)):
        return f"a {type(v).__name__} of {len(v)}"
    if v is None or isinstance(v, (bool, int, float)):
        return repr(v)
    if is_int(v):
        return repr(int(v))
    return f"a {type(v).__name__}"


def is_int(v) -> bool:
    """An integer (numpy's included), not a bool."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    t = type(v)
    return t.__module__ == "numpy" and hasattr(v, "dtype") and v.dtype.kind in "iu"


def integer(path, v, lo: int, hi: int) -> int:
    if not is_int(v):
        raise FieldTypeError(path, f"must be an integer {lo}..{hi}, got {show(v)}")
    if not lo <= v <= hi:
        raise FieldError(path, f"must be {lo}..{hi}, got {int(v)}")
    return int(v)


def boolean(path, v) -> bool:
    if not isinstance(v, bool) and not (type(v).__module__ == "numpy" and type(v).__name__ == "bool_"):
        raise FieldTypeError(path, f"must be true or false, got {show(v)}")
    return bool(v)


def string(path, v, lo: int = 1, hi: int = 255, pattern: re.Pattern | str | None = None,
           what: str = "a string") -> str:
    if not isinstance(v, str):
        raise FieldTypeError(path, f"must be {what}, got {show(v)}")
    if not lo <= len(v) <= hi:
        raise FieldError(path, f"must be {lo}..{hi} characters, got {len(v)}")
    if pattern is not None:
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        if not rx.fullmatch(v):
            raise FieldError(path, f"must be {what}, got {show(v)}")
    return v


def choice(path, v, choices):
    """One of ``choices`` (strings or ints); returns it."""
    if not isinstance(v, (str, int)) or isinstance(v, bool) or v not in choices:
        raise FieldError(path, f"must be one of {', '.join(map(str, choices))}, got {show(v)}")
    return v


# ------------------------------------------------------------------ link layer

_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


def mac_bytes(path, v, *, unicast: bool = True) -> bytes:
    """'02:00:00:00:00:01' (or 6 bytes) -> 6 bytes; never all-zero; with unicast, not a group (multicast /
    broadcast) address."""
    if isinstance(v, (bytes, bytearray)):
        b = bytes(v)
        if len(b) != 6:
            raise FieldError(path, f"a MAC is 6 bytes, got {len(b)}")
    elif isinstance(v, str):
        if not _MAC.fullmatch(v):
            raise FieldError(path, f"must be a MAC like '02:00:00:00:00:01', got {show(v)}")
        b = bytes.fromhex(v.replace(":", ""))
    else:
        raise FieldTypeError(path, f"must be a MAC like '02:00:00:00:00:01', got {show(v)}")
    if b == bytes(6):
        raise FieldError(path, "the all-zero MAC is not an address")
    if unicast and b[0] & 1:
        raise FieldError(path, f"{mac_text(b)} is a group (multicast) address")
    return b


def mac_text(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def mac(path, v, *, unicast: bool = True) -> str:
    """A MAC written 'xx:xx:xx:xx:xx:xx' -> that, lower case."""
    if not isinstance(v, str):
        raise FieldTypeError(path, f"must be a MAC like '02:00:00:00:00:01', got {show(v)}")
    return mac_text(mac_bytes(path, v, unicast=unicast))


_IFNAME = re.compile(r"[A-Za-z0-9_.\-]{1,15}")


def ifname(path, v) -> str:
    """A Linux interface name: 1..15 of [A-Za-z0-9_.-], not '.' or '..'."""
    s = string(path, v, 1, 15, _IFNAME, "an interface name ([A-Za-z0-9_.-], 1..15)")
    if s in (".", ".."):
        raise FieldError(path, f"must be an interface name ([A-Za-z0-9_.-], 1..15), got {show(s)}")
    return s


def netns_name(path, v) -> str:
    """A network namespace name (a file name under /run/netns)."""
    s = string(path, v, 1, 255, r"[^/\x00]+", "a namespace name")
    if s in (".", ".."):
        raise FieldError(path, f"must be a namespace name, got {show(s)}")
    return s


# ------------------------------------------------------------------ IP

def unicast_problem(a: IPAddress) -> str | None:
    """Why an address cannot be a unicast host address, or None. IPv4: not 0/8, 127/8, 224/4
    (multicast), 240/4 (reserved, broadcast); IPv6: not ::, ::1, ff00::/8, nor IPv4-mapped."""
    if a.version == 4:
        first = a.packed[0]
        return ("is in 0.0.0.0/8" if first == 0 else "is a loopback address" if first == 127 else
                "is reserved / broadcast" if first >= 240 else "is a multicast address" if first >= 224 else None)
    if a.ipv4_mapped is not None:
        return "is IPv4-mapped; give the IPv4 address"
    if a.is_multicast:
        return "is a multicast address"
    if a.is_unspecified or a.is_loopback:
        return "is not a unicast address"
    return None


def _text(path, v, what: str, slash: bool) -> str:
    if not isinstance(v, str):
        raise FieldTypeError(path, f"must be {what}, got {show(v)}")
    if len(v) > 64 or "%" in v or ("/" in v) != slash:
        raise FieldError(path, f"must be {what}, got {show(v)}")
    return v


def _parse_ip(path, v, kinds, parse, what: str, slash: bool, bad):
    """``v`` if it is already one of ``kinds``, else the string parsed (``bad(text, error)`` says why not)."""
    if isinstance(v, kinds):
        return v
    s = _text(path, v, what, slash)
    try:
        return parse(s)
    except ValueError as e:
        raise FieldError(path, bad(s, e)) from None


def _no_mapped(path, a: IPAddress, given) -> None:
    if a.version == 6 and a.ipv4_mapped is not None:
        raise FieldError(path, f"{given} is IPv4-mapped; give the IPv4 form")


def address(path, v, version: int | None = None, *, unicast: bool = False) -> IPAddress:
    """An IPv4/IPv6 address (a string without prefix length or scope, or an ip_address); IPv4-mapped
    IPv6 refused; with ``unicast``, only a unicast host address."""
    a = _parse_ip(path, v, (ipaddress.IPv4Address, ipaddress.IPv6Address), ipaddress.ip_address,
                  "an IP address", False, lambda s, e: f"not an IP address: {show(s)}")
    _no_mapped(path, a, a)
    if version is not None and a.version != version:
        raise FieldError(path, f"must be an IPv{version} address, got {a}")
    if unicast and (why := unicast_problem(a)):
        raise FieldError(path, f"{a} {why}")
    return a


@functools.lru_cache(maxsize=1 << 16)
def _parse_network(s: str) -> IPNetwork:
    """ip_network(s, strict) of a string, remembered: a rule list or a node's state names the same
    prefixes many times (a refusal raises ValueError each time; only results are kept)."""
    return ipaddress.ip_network(s, strict=True)


def network(path, v, version: int | None = None) -> IPNetwork:
    """A CIDR prefix (string or ip_network) with its host bits zero: '10.1.2.0/24' is one, '10.1.2.3/24'
    is refused, never normalised."""
    net = _parse_ip(path, v, (ipaddress.IPv4Network, ipaddress.IPv6Network), _parse_network,
                    "a CIDR prefix like '10.0.0.0/8'", True, lambda s, e: f"invalid prefix {s!r} ({e})")
    _no_mapped(path, net.network_address, net)
    if version is not None and net.version != version:
        raise FieldError(path, f"must be an IPv{version} prefix, got {net}")
    return net


def interface(path, v, version: int | None = None, *, unicast: bool = True):
    """An address with its subnet's prefix length, '10.1.0.2/24' -> ip_interface; the length is required."""
    i = _parse_ip(path, v, (ipaddress.IPv4Interface, ipaddress.IPv6Interface), ipaddress.ip_interface,
                  "an address/prefix length like '10.1.0.2/24'", True,
                  lambda s, e: f"invalid address/prefix length {s!r} ({e})")
    _no_mapped(path, i.ip, i)
    if version is not None and i.version != version:
        raise FieldError(path, f"must be an IPv{version} address/length, got {i}")
    if unicast and (why := unicast_problem(i.ip)):
        raise FieldError(path, f"{i.ip} {why}")
    return i


# ------------------------------------------------------------------ L4

def ports(path, v) -> tuple[int, int]:
    """A port, [lo, hi] inclusive, or "any" (0..65535) -> (lo, hi)."""
    if v is None or (isinstance(v, str) and v == "any"):
        return 0, PORT_MAX
    if is_int(v) and 0 <= v <= PORT_MAX:
        return int(v), int(v)
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(is_int(x) and 0 <= x <= PORT_MAX for x in v):
        if v[0] > v[1]:
            raise FieldError(path, f"inverted port range {v[0]}..{v[1]}")
        return int(v[0]), int(v[1])
    raise FieldError(path, f"must be 'any', a port 0..65535 or [lo, hi], got {show(v)}")


def proto(path, v, *, any_ok: bool = False) -> int | None:
    """An IP protocol: a name (tcp, udp, icmp, icmp6, sctp) or 0..255 -> its number; "any" -> None
    where allowed."""
    if isinstance(v, str):
        if any_ok and v == "any":
            return None
        n = PROTOCOLS.get(v.lower())
        if n is None:
            raise FieldError(path, f"unknown protocol name {v!r} (one of {', '.join(PROTOCOLS)} or 0..255"
                                   + (", any" if any_ok else "") + ")")
        return n
    if is_int(v) and 0 <= v <= 255:
        return int(v)
    raise FieldError(path, f"must be a protocol name or 0..255{' or any' if any_ok else ''}, got {show(v)}")


# ------------------------------------------------------------------ YAML

def load_yaml(text, *, multi: bool = False):
    """Parse YAML with libyaml where present, refusing a key given twice in one mapping. ``multi``:
    every document of a ``---`` separated stream (a list). Raises FieldError("line L", "bad YAML: ...")
    (path None when the parser gives no position)."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Strict(base):   # noqa: D401 - a loader class per call keeps the constructor override local
        pass

    def mapping(loader, node, deep=False):
        seen = {}
        for knode, _ in node.value:
            key = loader.construct_object(knode, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a scalar",
                                                        knode.start_mark) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    f"in the mapping at line {node.start_mark.line + 1}", node.start_mark,
                    f"duplicate key {key!r} (first at line {seen[key] + 1})", knode.start_mark)
            seen[key] = knode.start_mark.line
        return base.construct_mapping(loader, node, deep=deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        if multi:
            return list(yaml.load_all(text, Loader=Strict))
        return yaml.load(text, Loader=Strict)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise FieldError(f"line {mark.line + 1}" if mark is not None else None, f"bad YAML: {problem}") from None
