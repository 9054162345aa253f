"""The AF_XDP side of tests/e2e/test_io_xsk.py, run inside the socket's namespace:

    ip netns exec XNS python3 xsk_agent.py SCENARIO 'JSON-ARGS'

prints one JSON object (the scenario's observations) as its last stdout line.
An XDP socket binds to a device of its caller's namespace, hence a process of
its own; the peer namespace's sockets are made here too, by entering the peer
namespace for a moment (setns of this thread), so that one process drives
both ends in a fixed order. Every wait is bounded by a deadline.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import socket
import subprocess
import sys
import time

CLONE_NEWNET = 0x40000000
# the XDP program xsk_attach loads: the one setup.py builds beside the package
BPF_OBJ = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "vrouter", "bpf", "xdp_tunnel.o")
SO_RCVBUFFORCE = 33   # <asm-generic/socket.h>; Python's socket module lacks it
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def netns(name: str):
    """This thread in namespace `name` for the block (sockets made there stay there)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
        yield
    finally:
        if _libc.setns(home, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
        os.close(target)
        os.close(home)


def udp(family=socket.AF_INET, bind=None, rcvbuf=1 << 22):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)   # root: past net.core.rmem_max
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)   # v4 and v6 sockets on one port
    if bind:
        s.bind(bind)
    s.setblocking(False)
    return s


def drain(sock) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(65535))
        except BlockingIOError:
            return out


def xdp_info(dev: str) -> dict | None:
    info = json.loads(subprocess.run(["ip", "-j", "link", "show", dev], capture_output=True, text=True,
                                     check=True, timeout=10).stdout)[0]
    return info.get("xdp")


def rx_until(port, want: int, seconds: float) -> list[bytes]:
    frames: list[bytes] = []
    deadline = time.monotonic() + seconds
    while len(frames) < want and time.monotonic() < deadline:
        got = port.rx(64)
        frames += got
        if not got:
            time.sleep(0.001)
    return frames


def classify(frames: list[bytes]) -> dict:
    """Per received frame: (vlan, l3, ihl, dport, payload)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Dot1Q, Ether
    out = []
    for f in frames:
        e = Ether(f)
        vlan = e[Dot1Q].vlan if Dot1Q in e else None
        if IP in e:
            l3, ihl = "ip4", e[IP].ihl
        elif IPv6 in e:
            l3, ihl = "ip6", None
        else:
            l3, ihl = "other", None
        dport = e[UDP].dport if UDP in e else None
        payload = bytes(e[UDP].payload).decode(errors="replace") if UDP in e else ""
        out.append({"vlan": vlan, "l3": l3, "ihl": ihl, "dport": dport, "payload": payload, "len": len(f)})
    return out


def ping(*args) -> int:
    return subprocess.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", *args], capture_output=True,
                          timeout=20).returncode


# ---- scenarios ----

def datapath(a: dict) -> dict:
    """(a) tunnel UDP reaches the socket, (b) the rest reaches the kernel, (c) frames sent on the socket reach
    the peer, (e) detach, (f) pool accounting; in the attach mode a["mode"]."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.packet import Raw

    from vrouter import _ext

    res: dict = {}
    n = a["n"]
    skb = a["mode"] == "skb"
    pool = _ext.IoPool(4096)
    res["nframes"] = pool.nframes
    res["attach_mode"] = _ext.xsk_attach(a["xif"], BPF_OBJ, skb_mode=skb)
    res["xdp_attached"] = xdp_info(a["xif"])
    port = _ext.IoPort.open_xsk(pool, a["xif"], 0, vif=5, skb_mode=skb)
    res["kind"] = port.kind
    res["free_after_open"] = pool.free

    # kernel sockets of the node (XNS): tunnel ports and an ordinary one
    k4789 = udp(bind=("0.0.0.0", 4789))
    k4789v6 = udp(socket.AF_INET6, bind=("::", 4789))
    k5555 = udp(bind=("0.0.0.0", 5555))
    k5555v6 = udp(socket.AF_INET6, bind=("::", 5555))
    with netns(a["pns"]):
        s4 = udp()
        s4opt = udp()
        s4opt.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b"\x01\x01\x01\x00")   # NOP x3, EOL: IHL 6
        s6 = udp(socket.AF_INET6)
        r = udp(bind=("0.0.0.0", 7777))
        r6 = udp(socket.AF_INET6, bind=("::", 7777))
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))   # ETH_P_ALL
        raw.bind((a["pif"], 0))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        raw.setblocking(False)

    xmac, pmac = a["xmac"], a["pmac"]
    sent = {}
    for i in range(n):
        for key, sock, dst in (("v4-vxlan", s4, (a["x4"], 4789)), ("v4-mpls", s4, (a["x4"], 6635)),
                               ("v6-vxlan", s6, (a["x6"], 4789)), ("v6-mpls", s6, (a["x6"], 6635)),
                               ("v4-opts", s4opt, (a["x4"], 4789)), ("vlan-vxlan", raw, None)):
            payload = f"{key}/{i:04d}"
            if dst is None:   # tagged, straight onto the wire
                sock.send(bytes(Ether(src=pmac, dst=xmac) / Dot1Q(vlan=10) / IP(src=a["p4v"], dst=a["x4v"])
                                / UDP(sport=40000, dport=4789) / Raw(payload.encode())))
            else:
                sock.sendto(payload.encode(), dst)
            sent[payload] = key
            time.sleep(0.0002)   # the veth backlog is small; this is a correctness test
    frames = rx_until(port, len(sent), 10)
    res["rx_expected"] = len(sent)
    res["rx"] = classify(frames)
    res["rx_payload_match"] = sorted(f["payload"] for f in res["rx"]) == sorted(sent)
    # a raw byte check on one frame: what the peer's kernel built, byte for byte after the headers
    res["rx_first_tail"] = frames[0][-len("v4-vxlan/0000"):].decode(errors="replace") if frames else None

    # (b) the kernel path: ARP / ND (already used above), ping both ways, fragments, other ports
    res["ping4_from_node"] = ping(a["p4"])
    res["ping6_from_node"] = ping(a["p6"])
    res["ping4_from_peer"] = subprocess.run(["ip", "netns", "exec", a["pns"], "ping", "-c", "3", "-i", "0.2",
                                             "-W", "2", a["x4"]], capture_output=True, timeout=20).returncode
    for i in range(n):
        s4.sendto(f"k4/{i}".encode(), (a["x4"], 5555))
        s6.sendto(f"k6/{i}".encode(), (a["x6"], 5555))
    s4.sendto(b"F" * 3000, (a["x4"], 4789))   # IPv4 fragments: to the kernel, reassembled there
    s6.sendto(b"G" * 3000, (a["x6"], 4789))   # IPv6: fragment header first: to the kernel too
    deadline = time.monotonic() + 5
    got5555, got5555v6, got4789, got4789v6 = [], [], [], []
    while time.monotonic() < deadline and (len(got5555) < n or len(got5555v6) < n or not got4789 or not got4789v6):
        got5555 += drain(k5555)
        got5555v6 += drain(k5555v6)
        got4789 += drain(k4789)
        got4789v6 += drain(k4789v6)
        time.sleep(0.01)
    res["kernel_5555"] = len(got5555)
    res["kernel_5555v6"] = len(got5555v6)
    res["kernel_4789"] = [len(x) for x in got4789]
    res["kernel_4789v6"] = [len(x) for x in got4789v6]
    res["rx_after_kernel_traffic"] = classify(rx_until(port, 1, 0.5))

    # (c) transmit: crafted frames to the peer (more than one kick's batch of 32), IPv6, VLAN-tagged at the
    # largest size the device takes (caught by the peer's packet socket), and one too big
    drain(raw)
    txf = []
    for i in range(a["ntx"]):
        txf.append(bytes(Ether(src=xmac, dst=pmac) / IP(src=a["x4"], dst=a["p4"]) / UDP(sport=4789, dport=7777)
                         / Raw(f"tx4/{i:04d}".encode())))
    for i in range(8):
        txf.append(bytes(Ether(src=xmac, dst=pmac) / IPv6(src=a["x6"], dst=a["p6"]) / UDP(sport=4789, dport=7777)
                         / Raw(f"tx6/{i:04d}".encode())))
    big_tagged = bytes(Ether(src=xmac, dst=pmac) / Dot1Q(vlan=10) / IP(src=a["x4v"], dst=a["p4v"])
                       / UDP(sport=4789, dport=7777) / Raw(b"T" * (1500 - 28)))
    too_big = bytes(Ether(src=xmac, dst=pmac) / IP(src=a["x4"], dst=a["p4"]) / UDP(sport=4789, dport=7777)
                    / Raw(b"B" * 1600))
    res["big_tagged_len"] = len(big_tagged)
    free_before_tx = pool.free
    accepted = 0
    for i in range(0, len(txf), 64):
        accepted += port.tx(txf[i:i + 64])
    accepted += port.tx([big_tagged, too_big])
    res["tx_offered"] = len(txf) + 2
    res["tx_accepted"] = accepted
    want4, want6 = a["ntx"], 8
    deadline = time.monotonic() + 5
    got_r, got_r6, got_raw = [], [], []
    while time.monotonic() < deadline and (len(got_r) < want4 or len(got_r6) < want6 or
                                           pool.free != free_before_tx or
                                           not any(b"T" * 1472 in x for x in got_raw)):
        port.poll_tx()
        got_r += drain(r)
        got_r6 += drain(r6)
        got_raw += drain(raw)
        time.sleep(0.002)
    res["peer_rx4"] = len(got_r)
    res["peer_rx6"] = len(got_r6)
    res["peer_rx4_ok"] = sorted(x.decode(errors="replace") for x in got_r if x.startswith(b"tx4/")) == \
        [f"tx4/{i:04d}" for i in range(a["ntx"])]
    res["peer_big_tagged"] = [len(x) for x in got_raw if b"T" * 1472 in x]
    res["peer_too_big"] = sum(1 for x in got_raw if b"B" * 1600 in x)
    res["free_before_tx"] = free_before_tx
    res["free_after_completions"] = pool.free
    res["stats"] = port.stats()
    res["kstats"] = port.kernel_stats()

    # (f) close: every frame home; (e) detach: no program left
    port.close()
    res["free_after_close"] = pool.free
    res["detach"] = _ext.xsk_detach(a["xif"])
    res["detach_again"] = _ext.xsk_detach(a["xif"])
    res["xdp_after_detach"] = xdp_info(a["xif"])
    res["mode_after_detach"] = _ext.xsk_mode(a["xif"])
    return res


def errors(a: dict) -> dict:
    """Bad input: each an OSError with a message, never a crash."""
    from vrouter import _ext

    res: dict = {}

    def attempt(key, fn):
        try:
            fn()
            res[key] = {"ok": True}
        except OSError as e:
            res[key] = {"ok": False, "errno": errno.errorcode.get(e.errno, e.errno), "msg": e.strerror}

    pool = _ext.IoPool(4096)
    small = _ext.IoPool(64)
    xif = a["xif"]
    attempt("attach_unknown_dev", lambda: _ext.xsk_attach("nosuchdev0", BPF_OBJ))
    attempt("attach_missing_obj", lambda: _ext.xsk_attach(xif, obj_path="/nonexistent/xdp_tunnel.o"))
    attempt("attach_not_bpf", lambda: _ext.xsk_attach(xif, obj_path=a["not_bpf"]))
    attempt("open_before_attach", lambda: _ext.IoPort.open_xsk(pool, xif))
    res["mode_before"] = _ext.xsk_mode(xif)
    attempt("attach", lambda: _ext.xsk_attach(xif, BPF_OBJ, skb_mode=a.get("skb", False)))
    res["mode"] = _ext.xsk_mode(xif)
    attempt("attach_twice", lambda: _ext.xsk_attach(xif, BPF_OBJ))
    attempt("open_unknown_dev", lambda: _ext.IoPort.open_xsk(pool, "nosuchdev0"))
    attempt("open_queue_beyond_dev", lambda: _ext.IoPort.open_xsk(pool, xif, queue=a["queues"]))
    attempt("open_queue_beyond_map", lambda: _ext.IoPort.open_xsk(pool, xif, queue=64))
    attempt("open_small_pool", lambda: _ext.IoPort.open_xsk(small, xif))
    res["free_after_failures"] = pool.free
    ports = []
    attempt("open_last_queue", lambda: ports.append(_ext.IoPort.open_xsk(pool, xif, queue=a["queues"] - 1)))
    attempt("open_same_queue_twice", lambda: ports.append(_ext.IoPort.open_xsk(pool, xif, queue=a["queues"] - 1)))
    for p in ports:
        p.close()
    res["free_after_close"] = pool.free
    res["nframes"] = pool.nframes
    res["detach"] = _ext.xsk_detach(xif)
    res["detach_again"] = _ext.xsk_detach(xif)
    res["detach_unknown"] = _ext.xsk_detach("nosuchdev0")
    # the smallest pool an XDP socket takes; a port dropped without close() is closed by its finaliser
    _ext.xsk_attach(xif, BPF_OBJ)
    tiny = _ext.IoPool(_ext.xsk_min_frames())
    p2 = _ext.IoPort.open_xsk(tiny, xif)
    res["tiny_rx"] = len(p2.rx(8))
    del p2
    res["tiny_free_after_del"] = tiny.free
    res["tiny_nframes"] = tiny.nframes
    _ext.xsk_detach(xif)
    # a process that attached and died without detaching: the next attach replaces its program
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", f"from vrouter import _ext; _ext.xsk_attach({xif!r}, {BPF_OBJ!r}, skb_mode=True)"],
                   check=True, timeout=30, env=env)
    res["leftover"] = (xdp_info(xif) or {}).get("prog", {}).get("name")
    attempt("attach_over_leftover", lambda: _ext.xsk_attach(xif, BPF_OBJ))
    res["mode_over_leftover"] = _ext.xsk_mode(xif)
    _ext.xsk_detach(xif)
    # someone else's program: refused, and left alone
    if a.get("foreign_obj"):
        subprocess.run(["ip", "link", "set", "dev", xif, "xdpgeneric", "obj", a["foreign_obj"], "sec", "xdp"],
                       check=True, timeout=10)
        attempt("attach_over_foreign", lambda: _ext.xsk_attach(xif, BPF_OBJ))
        res["foreign_kept"] = (xdp_info(xif) or {}).get("prog", {}).get("name")
        subprocess.run(["ip", "link", "set", "dev", xif, "xdpgeneric", "off"], check=True, timeout=10)
    res["xdp_after"] = xdp_info(xif)
    return res


def shared(a: dict) -> dict:
    """Two devices, one pool (one UMEM): both sockets receive; closing the first (the UMEM's owner) keeps the
    second working; reopening the first revives it; everything returns to the pool."""
    from vrouter import _ext

    res: dict = {}
    skb = a["mode"] == "skb"
    pool = _ext.IoPool(2048)
    for dev in a["xifs"]:
        _ext.xsk_attach(dev, BPF_OBJ, skb_mode=skb)
    pa = _ext.IoPort.open_xsk(pool, a["xifs"][0], vif=1)
    pb = _ext.IoPort.open_xsk(pool, a["xifs"][1], vif=2)
    res["free_two_open"] = pool.free
    with netns(a["pns"]):
        s = udp()

    def burst(dst, tag, k):
        for i in range(k):
            s.sendto(f"{tag}/{i}".encode(), (dst, 4789))
            time.sleep(0.0002)

    burst(a["x4s"][0], "a", 20)
    burst(a["x4s"][1], "b", 20)
    res["a1"] = len(rx_until(pa, 20, 5))
    res["b1"] = len(rx_until(pb, 20, 5))
    pa.close()   # the owner: a zombie now
    res["free_after_owner_close"] = pool.free
    burst(a["x4s"][1], "b", 20)
    res["b2"] = len(rx_until(pb, 20, 5))
    pa = _ext.IoPort.open_xsk(pool, a["xifs"][0], vif=1)   # revives the zombie
    burst(a["x4s"][0], "a", 20)
    res["a2"] = len(rx_until(pa, 20, 5))
    # TX on the second socket while the first stays open
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    with netns(a["pns"]):
        r = udp(bind=("0.0.0.0", 7777))
    f = bytes(Ether(src=a["xmacs"][1], dst=a["pmacs"][1]) / IP(src=a["x4s"][1], dst=a["p4s"][1])
              / UDP(sport=4789, dport=7777) / Raw(b"shared"))
    res["b_tx"] = pb.tx([f] * 40)
    got = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(got) < 40:
        pb.poll_tx()
        got += drain(r)
        time.sleep(0.002)
    res["b_tx_peer"] = len(got)
    pb.close()
    pa.close()
    res["free_after_all_closed"] = pool.free
    res["nframes"] = pool.nframes
    for dev in a["xifs"]:
        _ext.xsk_detach(dev)
    res["xdp_after"] = [xdp_info(dev) for dev in a["xifs"]]
    return res


def down(a: dict) -> dict:
    """Sending while the device is down (the frames wait in the TX ring; once it is full the rest count as
    tx_full), then up again (poll_tx sends what waited); then a long run of bursts."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    from vrouter import _ext

    res: dict = {}
    pool = _ext.IoPool(8192)
    _ext.xsk_attach(a["xif"], BPF_OBJ, skb_mode=a["mode"] == "skb")
    port = _ext.IoPort.open_xsk(pool, a["xif"])
    with netns(a["pns"]):
        r = udp(bind=("0.0.0.0", 7777), rcvbuf=1 << 24)
    f = bytes(Ether(src=a["xmac"], dst=a["pmac"]) / IP(src=a["x4"], dst=a["p4"]) / UDP(sport=4789, dport=7777)
              / Raw(b"d" * 18))
    free0 = pool.free

    def settle(seconds=5):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and pool.free != free0:
            port.poll_tx()
            time.sleep(0.002)
        return pool.free

    subprocess.run(["ip", "link", "set", a["xif"], "down"], check=True, timeout=10)
    res["down_offered"] = 40 * 64   # more than the TX ring's 2048
    res["down_accepted"] = sum(port.tx([f] * 64) for _ in range(40))
    res["down_tx_full"] = port.stats()["tx_full"]
    for _ in range(10):
        port.poll_tx()
    res["down_held"] = free0 - pool.free   # the kernel says ENETDOWN and leaves them in the TX ring
    res["down_kicks"] = port.stats()["wakeups"]
    subprocess.run(["ip", "link", "set", a["xif"], "up"], check=True, timeout=10)
    res["up_free_settled"] = settle() == free0   # poll_tx kicks them out once the device is up
    deadline = time.monotonic() + 5
    queued = []
    while time.monotonic() < deadline and len(queued) < res["down_accepted"]:
        queued += drain(r)
        time.sleep(0.01)
    res["down_delivered_after_up"] = len(queued)
    res["down_stats"] = port.stats()
    # a long run of bursts without waiting in between: every frame is either sent or counted as tx_full
    accepted = 0
    for _ in range(60):
        accepted += port.tx([f] * 64)
    res["burst_offered"] = 60 * 64
    res["burst_accepted"] = accepted
    got = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (got < accepted or pool.free != free0):
        port.poll_tx()
        got += len(drain(r))
        time.sleep(0.002)
    res["burst_peer"] = got
    res["burst_free_settled"] = pool.free == free0
    res["stats"] = port.stats()
    port.close()
    res["free_after_close"] = pool.free
    res["nframes"] = pool.nframes
    _ext.xsk_detach(a["xif"])
    return res


def rate(a: dict) -> dict:
    """Rough rates through the Python test wrapper (one call per burst of 64, a copy per frame on TX, a bytes
    object per frame on RX), one thread: TX of 64-byte frames to the peer (its kernel drops them: no socket on
    the port), then RX of frames an XDP socket on the peer's end sends (copy mode both ways)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    from vrouter import _ext

    res: dict = {}
    secs = a["seconds"]
    pool = _ext.IoPool(8192)
    res["mode"] = _ext.xsk_attach(a["xif"], BPF_OBJ, skb_mode=a["mode"] == "skb")
    port = _ext.IoPort.open_xsk(pool, a["xif"])
    f = bytes(Ether(src=a["xmac"], dst=a["pmac"]) / IP(src=a["x4"], dst=a["p4"]) / UDP(sport=4789, dport=9)
              / Raw(b"x" * 18))
    burst = [f] * 64
    t0 = time.perf_counter()
    c0 = time.process_time()
    sent = 0
    while time.perf_counter() - t0 < secs:
        sent += port.tx(burst)
        port.poll_tx()
    dt = time.perf_counter() - t0
    res["tx_pps"] = round(sent / dt)
    res["tx_cpu_share"] = round((time.process_time() - c0) / dt, 2)
    res["tx_stats"] = port.stats()

    gpool = _ext.IoPool(8192)
    with netns(a["pns"]):
        _ext.xsk_attach(a["pif"], BPF_OBJ)
        gen = _ext.IoPort.open_xsk(gpool, a["pif"])
    g = bytes(Ether(src=a["pmac"], dst=a["xmac"]) / IP(src=a["p4"], dst=a["x4"]) / UDP(sport=4789, dport=4789)
              / Raw(b"y" * 18))
    gburst = [g] * 64
    got = 0
    t0 = time.perf_counter()
    gsent = 0
    while time.perf_counter() - t0 < secs:
        gsent += gen.tx(gburst)
        gen.poll_tx()
        while True:
            n = len(port.rx(64))
            got += n
            if n < 64:
                break
    dt = time.perf_counter() - t0
    res["rx_pps"] = round(got / dt)
    res["gen_sent"] = gsent
    res["rx_stats"] = port.stats()
    res["rx_kstats"] = port.kernel_stats()
    gen.close()
    with netns(a["pns"]):
        _ext.xsk_detach(a["pif"])
    port.close()
    _ext.xsk_detach(a["xif"])
    return res


SCENARIOS = {"datapath": datapath, "errors": errors, "shared": shared, "down": down, "rate": rate}

if __name__ == "__main__":
    result = SCENARIOS[sys.argv[1]](json.loads(sys.argv[2]))
    sys.stdout.flush()
    print(json.dumps(result))
