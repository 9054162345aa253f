"""The socket side of tests/e2e/test_io_packet.py, run inside the node's namespace:

    ip netns exec NODE_NS python3 io_packet_script.py SCENARIO --peer PEER_NS --node-if vn --peer-if vp

An AF_PACKET socket binds to a device of the namespace it was created in, so
the port is opened here; the peer's sockets are created after switching this
(single-threaded) process into the peer's namespace with setns(2) - a socket
keeps its namespace when the process moves on. Each scenario prints one JSON
object on stdout; the test asserts on it. Everything is bounded in count and
time.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

from vrouter._ext import IoPool, IoPort

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6

NODE_MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000002")
NODE_IP = "10.9.0.1"
PEER_IP = "10.9.0.2"

_libc = ctypes.CDLL(None, use_errno=True)


class netns:
    """Switch this thread into /run/netns/NAME for the block (back to where it was after)."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {self.name}")
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc):
        try:
            if _libc.setns(self.home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(self.home)


# ---- frames -------------------------------------------------------------------------------------

def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(a: str) -> bytes:
    return socket.inet_aton(a)


def udp4(src: str, dst: str, sport: int, dport: int, payload: bytes, ident: int = 1) -> bytes:
    """An IPv4 + UDP packet with both checksums."""
    ulen = 8 + len(payload)
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, ulen)
    u = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    uc = csum(pseudo + u) or 0xFFFF
    u = u[:6] + struct.pack("!H", uc) + u[8:]
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, ident, 0x4000, 64, 17, 0, ip4(src), ip4(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + u


def eth(dst: bytes, src: bytes, ethertype: int, payload: bytes, tags=()) -> bytes:
    """tags: (tpid, tci) pairs, outermost first."""
    t = b"".join(struct.pack("!HH", tpid, tci) for tpid, tci in tags)
    return dst + src + t + struct.pack("!H", ethertype) + payload


def udp_frame(dst_mac, src_mac, src_ip, dst_ip, sport, dport, payload, tags=(), ident=1) -> bytes:
    return eth(dst_mac, src_mac, 0x0800, udp4(src_ip, dst_ip, sport, dport, payload, ident), tags)


def seq_frame(seq: int, size: int, dport: int = 5002) -> bytes:
    """A UDP frame to the node of exactly size bytes (>= 46) carrying seq."""
    pad = size - 14 - 20 - 8 - 4
    payload = struct.pack("!I", seq) + bytes((seq + i) & 0xFF for i in range(pad))
    return udp_frame(NODE_MAC, PEER_MAC, PEER_IP, NODE_IP, 4002, dport, payload, ident=seq & 0xFFFF)


def frame_seq(f: bytes) -> int:
    return struct.unpack("!I", f[42:46])[0]


# ---- peer-side sockets --------------------------------------------------------------------------

def sniffer(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((ifname, ETH_P_ALL))
    s.setblocking(False)
    sniff_read(s, 0)   # anything queued from other devices before bind
    return s


def sniff_read(s: socket.socket, wait: float) -> list[tuple[int, bytes]]:
    """(pkttype, frame as on the wire) for every frame seen within wait seconds of quiet."""
    out = []
    while True:
        r, _, _ = select.select([s], [], [], wait)
        if not r:
            return out
        while True:
            try:
                data, anc, _flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(32))
            except BlockingIOError:
                break
            for level, typ, cdata in anc:
                if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cdata) >= 20:
                    status, _l, _s, _m, _n, tci, tpid = struct.unpack("IIIHHHH", cdata[:20])
                    if status & TP_STATUS_VLAN_VALID:
                        tpid = tpid if (status & TP_STATUS_VLAN_TPID_VALID) and tpid else 0x8100
                        data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
            out.append((addr[2], data))


def raw_sender(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)   # protocol 0: receives nothing
    s.bind((ifname, 0))
    return s


def send_paced(s: socket.socket, frames, every: int = 25, pause: float = 0.001) -> None:
    """Bounded rate: a short pause every `every` frames (the veth's backlog never overflows)."""
    for i, f in enumerate(frames):
        s.send(f)
        if i % every == every - 1:
            time.sleep(pause)


# ---- node-side helpers --------------------------------------------------------------------------

def rx_until(port: IoPort, n: int, timeout: float, maxes=(64,)) -> tuple[list[bytes], int]:
    """Receive until n frames or timeout (poll on the fd between empty calls): (frames, rx calls)."""
    got, calls, i = [], 0, 0
    deadline = time.monotonic() + timeout
    while len(got) < n:
        b = port.rx(maxes[i % len(maxes)])
        i += 1
        calls += 1
        got += b
        if not b:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([port.fd], [], [], min(left, 0.05))
    return got, calls


def drain(port: IoPort, quiet: float = 0.05, timeout: float = 5.0) -> list[bytes]:
    """Everything the port receives until quiet seconds pass without a frame."""
    got = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() < deadline:
        b = port.rx(64)
        if b:
            got += b
            last = time.monotonic()
        elif time.monotonic() - last > quiet:
            break
        else:
            select.select([port.fd], [], [], quiet)
    return got


# ---- scenarios ----------------------------------------------------------------------------------

def sc_rx(a) -> dict:
    """Frames from the peer (kernel UDP, raw tagged / untagged) arrive byte-exact."""
    pool = IoPool(512)
    free0 = pool.free
    port = IoPort.open_packet(pool, a.node_if, vif=3)
    with netns(a.peer):
        sn = sniffer(a.peer_if)
        raw = raw_sender(a.peer_if)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((PEER_IP, 4000))
    for payload in (b"a", b"x" * 100, bytes(range(256)) * 5 + b"y" * 192):   # 1, 100, 1472 bytes
        u.sendto(payload, (NODE_IP, 5000))
    kernel = [f for pt, f in sniff_read(sn, 0.05) if pt == PACKET_OUTGOING and f[12:14] == b"\x08\x00"
              and f[23] == 17 and f[36:38] == struct.pack("!H", 5000)]
    U = lambda n, tags=(), dst=NODE_MAC: udp_frame(dst, PEER_MAC, PEER_IP, NODE_IP, 4001, 5001,  # noqa: E731
                                                    bytes(i & 0xFF for i in range(n)), tags)
    raw_frames = [
        U(18),                                              # 60 bytes
        U(100, [(0x8100, 0xA00C)]),                         # 802.1Q, PCP 5, VID 12
        U(30, [(0x8100, 0x0000)]),                          # 802.1Q, TCI 0
        U(40, [(0x88A8, 0x0064), (0x8100, 0x00C8)]),       # QinQ: outer 802.1ad VID 100, inner VID 200
        U(1472),                                            # 1514 bytes, MTU-sized
        U(1472, [(0x8100, 0x0FFE)]),                       # 1518 bytes tagged
        eth(b"\xff" * 6, PEER_MAC, 0x88B5, b"local experimental" + bytes(28)),   # broadcast, not IP
        eth(NODE_MAC, PEER_MAC, 0x88B5, bytes(range(40)), [(0x8100, 0x1005)]),  # tagged, not IP
    ]
    for f in raw_frames:
        raw.send(f)
    expected = kernel + raw_frames
    got, calls = rx_until(port, len(expected), 3.0)
    extra = drain(port, quiet=0.05, timeout=1.0)
    st = port.stats()
    port.close()
    return {"expected": [f.hex() for f in expected], "got": [f.hex() for f in got],
            "extra": [f.hex() for f in extra], "kernel_frames": len(kernel), "calls": calls,
            "stats": st, "free0": free0, "free_end": pool.free}


def sc_tx(a) -> dict:
    """Frames sent on the port reach the peer as sent; the port does not receive them back."""
    pool = IoPool(512)
    free0 = pool.free
    port = IoPort.open_packet(pool, a.node_if)
    with netns(a.peer):
        sn = sniffer(a.peer_if)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((PEER_IP, 6000))
        u.setblocking(False)
    payloads = [b"p", bytes(range(200)), bytes(i & 0xFF for i in range(1472))]
    T = lambda p, tags=(), ident=1: udp_frame(PEER_MAC, NODE_MAC, NODE_IP, PEER_IP, 4003, 6000, p,  # noqa: E731
                                             tags, ident)
    good = [T(p, ident=i + 1) for i, p in enumerate(payloads)]
    good += [T(bytes(1472), [(0x8100, 0x2007)]),                       # 1518 bytes, tagged: fits
             eth(b"\xff" * 6, NODE_MAC, 0x88B5, b"hello peer".ljust(46, b"."))]
    too_big = [T(bytes(1473)),                                          # 1515 untagged
               T(bytes(1473), [(0x8100, 0x2007)])]                      # 1519 tagged
    short = [b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a"]             # shorter than an Ethernet header
    burst = good[:2] + too_big[:1] + good[2:4] + short + too_big[1:] + good[4:]
    sent = port.tx(burst)
    seen = [f for pt, f in sniff_read(sn, 0.1) if pt != PACKET_OUTGOING]
    udp = []
    while True:
        try:
            udp.append(u.recv(4096).hex())
        except BlockingIOError:
            break
    own = drain(port, quiet=0.05, timeout=0.5)   # PACKET_IGNORE_OUTGOING: nothing of ours comes back
    # a second burst: every frame too big -> no syscall at all
    sent2 = port.tx(too_big)
    st = port.stats()
    port.close()
    return {"sent": sent, "sent2": sent2, "good": [f.hex() for f in good], "seen": [f.hex() for f in seen],
            "udp": udp, "udp_expected": [p.hex() for p in payloads], "own": len(own), "stats": st,
            "free0": free0, "free_end": pool.free}


def sc_burst(a) -> dict:
    """550 frames of mixed sizes, read by calls of small max between sends: each exactly once, in
    order; an almost empty pool stops a burst and the next call resumes at the same frame."""
    pool = IoPool(256)
    free0 = pool.free
    port = IoPort.open_packet(pool, a.node_if)
    with netns(a.peer):
        raw = raw_sender(a.peer_if)
    sizes = lambda s: 60 + (s * 97) % 1455   # noqa: E731  60 .. 1514 bytes
    frames = [seq_frame(s, sizes(s)) for s in range(550)]
    maxes = (1, 7, 64, 3, 33, 2)
    got, calls = [], 0
    for r in range(5):
        send_paced(raw, frames[r * 100:(r + 1) * 100])
        time.sleep(0.01)   # blocks retire (AFP_RETIRE_MS)
        for k in range(4):
            got += port.rx(maxes[(r + k) % len(maxes)])
            calls += 1
    more, c = rx_until(port, 500 - len(got), 5.0, maxes)
    got += more
    calls += c
    # pool nearly empty: 5 frames left
    send_paced(raw, frames[500:550])
    time.sleep(0.02)
    held = pool.hold(pool.free - 5)
    first = port.rx(64)                    # 5 (rx() puts them back after copying them out)
    nobuf1 = port.stats()["rx_no_buffer"]
    held += pool.hold(5)
    again = port.rx(64)                    # pool empty: stops at once, loses nothing
    nobuf = port.stats()["rx_no_buffer"]
    pool.release()
    rest, c = rx_until(port, 50 - len(first) - len(again), 5.0, maxes)
    tail = first + again + rest
    extra = drain(port, quiet=0.05, timeout=1.0)
    st = port.stats()
    port.close()
    allgot = got + tail
    return {"seqs": [frame_seq(f) for f in allgot], "mismatch": sum(f != frames[frame_seq(f)]
                                                                     for f in allgot if frame_seq(f) < 550),
            "calls": calls, "held": held, "first": len(first), "again": len(again), "nobuf1": nobuf1, "nobuf": nobuf,
            "extra": len(extra), "stats": st, "free0": free0, "free_end": pool.free}


def sc_drops(a) -> dict:
    """Overfill the ring (nobody reading): what the kernel dropped is counted; the rest arrives in order."""
    n = a.count
    pool = IoPool(256)
    port = IoPort.open_packet(pool, a.node_if)
    with netns(a.peer):
        raw = raw_sender(a.peer_if)
    for s in range(n):
        raw.send(seq_frame(s, 1414))
    time.sleep(0.02)
    got = drain(port, quiet=0.1, timeout=10.0)
    st_open = port.stats()
    port.close()
    st = port.stats()
    seqs = [frame_seq(f) for f in got]
    return {"sent": n, "received": len(got), "increasing": all(x < y for x, y in zip(seqs, seqs[1:])),
            "stats_open": st_open, "stats": st, "free_end": pool.free, "nframes": pool.nframes}


def sc_bad(a) -> dict:
    """Bad input gives OSError / ValueError with a clear message, never a crash."""
    pool = IoPool(64)
    out = {}
    for key, name in (("unknown", "nosuchif0"), ("long", "x" * 16), ("empty", ""), ("lo", "lo"),
                      ("nul", "ab\0cd")):
        try:
            IoPort.open_packet(pool, name).close()
            out[key] = None
        except (OSError, ValueError) as e:
            out[key] = [type(e).__name__, getattr(e, "errno", None), str(e)]
    port = IoPort.open_packet(pool, a.node_if)
    port.close()
    port.close()   # twice: harmless
    try:
        port.rx(8)
        out["closed_rx"] = None
    except ValueError as e:
        out["closed_rx"] = str(e)
    # without CAP_NET_RAW
    code = ("from vrouter._ext import IoPool, IoPort\n"
            "try:\n  IoPort.open_packet(IoPool(16), %r)\n  print('opened')\n"
            "except OSError as e:\n  print(e.errno, e)\n") % a.node_if
    r = subprocess.run(["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw", sys.executable,
                        "-c", code], capture_output=True, text=True, timeout=30)
    out["noperm"] = (r.stdout + r.stderr).strip()
    out["free_end"] = pool.free
    out["nframes"] = pool.nframes
    return out


def sc_down(a) -> dict:
    """Open on a down device, send while down, bring it up: no error state left, frames flow."""
    subprocess.run(["ip", "link", "set", a.node_if, "down"], check=True)
    pool = IoPool(64)
    port = IoPort.open_packet(pool, a.node_if)
    p = select.poll()
    p.register(port.fd, select.POLLIN)
    ev_down = p.poll(0)
    sent_down = port.tx([seq_frame(1, 60)])
    ev_after_tx = p.poll(0)
    st_down = port.stats()
    subprocess.run(["ip", "link", "set", a.node_if, "up"], check=True)
    with netns(a.peer):
        raw = raw_sender(a.peer_if)
    deadline = time.monotonic() + 5
    got = []
    while not got and time.monotonic() < deadline:   # the veth carrier takes a moment
        try:
            raw.send(seq_frame(7, 100))
        except OSError:
            pass
        got, _ = rx_until(port, 1, 0.2)
    events = p.poll(0)
    st = port.stats()
    port.close()
    return {"ev_down": ev_down, "ev_after_tx": ev_after_tx, "sent_down": sent_down, "st_down": st_down,
            "got": [frame_seq(f) for f in got], "events_end": events, "stats": st,
            "free_end": pool.free, "nframes": pool.nframes}


def sc_latency(a) -> dict:
    """A lone frame: time from send to the fd turning readable, and to a busy-polling rx seeing it."""
    pool = IoPool(64)
    port = IoPort.open_packet(pool, a.node_if)
    with netns(a.peer):
        raw = raw_sender(a.peer_if)
    f = seq_frame(1, 100)
    wake, busy, lost = [], [], 0
    for i in range(a.count):
        t0 = time.perf_counter()
        raw.send(f)
        r, _, _ = select.select([port.fd], [], [], 0.5)
        t1 = time.perf_counter()
        if not r or not port.rx(8):
            lost += 1
            continue
        wake.append(t1 - t0)
        time.sleep(0.003)
        t0 = time.perf_counter()
        raw.send(f)
        n = 0
        while not n and time.perf_counter() - t0 < 0.5:
            n = len(port.rx(8))
        if n:
            busy.append(time.perf_counter() - t0)
        else:
            lost += 1
        time.sleep(0.003)
    port.close()
    ms = lambda v: [round(x * 1e3, 3) for x in (min(v), statistics.median(v), max(v))] if v else None  # noqa
    return {"wake_ms": ms(wake), "busy_ms": ms(busy), "lost": lost, "free_end": pool.free,
            "nframes": pool.nframes}


def sc_rate(a) -> dict:
    """Throughput: the peer's port transmits (sendmmsg bursts of 64) on one core, the node's port
    receives (busy-polling rx bursts of a.burst) on the other, both from C (no Python per frame)."""
    pool_rx, pool_tx = IoPool(4096), IoPool(4096)
    port = IoPort.open_packet(pool_rx, a.node_if)
    with netns(a.peer):
        gen = IoPort.open_packet(pool_tx, a.peer_if)
    frame = seq_frame(0, a.size)
    res = {}

    def tx():
        os.sched_setaffinity(0, {0})
        res["tx"] = gen.tx_repeat(frame, a.count, 64)

    def rx():
        os.sched_setaffinity(0, {1})
        t0 = time.thread_time()
        res["rx"] = port.rx_count(a.count, timeout=a.seconds, burst=a.burst)
        res["rx_cpu"] = time.thread_time() - t0

    th = [threading.Thread(target=rx), threading.Thread(target=tx)]
    th[0].start()
    time.sleep(0.05)
    th[1].start()
    for t in th:
        t.join()
    time.sleep(0.05)
    rest = port.rx_count(a.count, timeout=0.2, burst=64)["frames"]
    port.close()
    gen.close()
    st, gst = port.stats(), gen.stats()
    r, t = res["rx"], res["tx"]
    return {"size": a.size, "burst": a.burst, "tx": t, "rx": r, "rest": rest, "stats": st, "gen_stats": gst,
            "tx_pps": t["sent"] / t["seconds"] if t["seconds"] else 0,
            "rx_pps": r["frames"] / r["seconds"] if r["seconds"] else 0,
            "frames_per_busy_call": r["frames"] / r["busy_calls"] if r["busy_calls"] else 0,
            "free_rx": pool_rx.free, "free_tx": pool_tx.free}


def sc_mtu(a) -> dict:
    """The port follows MTU changes made after it opened: a grown MTU is looked up again before a
    frame is refused; a shrunk one makes the kernel refuse a frame mid-burst (EMSGSIZE), which is
    counted while the rest of the burst still goes out, and leaves no error state on the socket."""
    def set_mtu(m):
        subprocess.run(["ip", "link", "set", a.node_if, "mtu", str(m)], check=True)
        subprocess.run(["ip", "-n", a.peer, "link", "set", a.peer_if, "mtu", str(m)], check=True)

    pool = IoPool(64)
    port = IoPort.open_packet(pool, a.node_if)
    with netns(a.peer):
        sn = sniffer(a.peer_if)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # no ICMP port unreachable back to us
        u.bind((PEER_IP, 6001))
    T = lambda n, ident: udp_frame(PEER_MAC, NODE_MAC, NODE_IP, PEER_IP, 4004, 6001,  # noqa: E731
                                   bytes(n - 42), ident=ident)
    out = {}
    try:
        set_mtu(1600)
        big = T(1614, 1)                       # MTU 1600 + 14
        out["sent_big"] = port.tx([big])
        out["st_big"] = port.stats()
        set_mtu(1400)
        mixed = [T(100, 2), T(1500, 3), T(200, 4)]   # the middle one: the port still thinks 1600
        out["sent_mixed"] = port.tx(mixed)
        p = select.poll()
        p.register(port.fd, select.POLLIN)
        out["events"] = p.poll(0)
        out["after_shrink"] = port.tx([T(1415, 5)])  # refused before any syscall now
        out["st"] = port.stats()
        seen = [f for pt, f in sniff_read(sn, 0.1) if pt != PACKET_OUTGOING]
        out["seen_ok"] = seen == [big, mixed[0], mixed[2]]
        out["seen"] = len(seen)
        u.close()
    finally:
        set_mtu(1500)
    port.close()
    out["free_end"], out["nframes"] = pool.free, pool.nframes
    return out


def sc_drain(a) -> dict:
    """Receive cost alone: the peer's port fills the node's ring (nobody reading), then the node
    drains it with back-to-back rx bursts of a.burst (C loop, frames straight back to the pool)."""
    pool_rx, pool_tx = IoPool(4096), IoPool(4096)
    port = IoPort.open_packet(pool_rx, a.node_if)
    with netns(a.peer):
        gen = IoPort.open_packet(pool_tx, a.peer_if)
    t = gen.tx_repeat(seq_frame(0, a.size), a.count, 64)
    time.sleep(0.05)   # every block retired
    r = port.rx_count(a.count, timeout=5.0, burst=a.burst)
    port.close()
    gen.close()
    st = port.stats()
    return {"size": a.size, "burst": a.burst, "tx": t, "rx": r, "ring_full": st["rx_ring_full"],
            "drain_pps": r["frames"] / r["seconds"] if r["seconds"] else 0,
            "ns_per_frame": r["seconds"] / r["frames"] * 1e9 if r["frames"] else 0,
            "free_rx": pool_rx.free, "free_tx": pool_tx.free}


SCENARIOS = {"drain": sc_drain, "mtu": sc_mtu, "rx": sc_rx, "tx": sc_tx, "burst": sc_burst, "drops": sc_drops, "bad": sc_bad,
             "down": sc_down, "latency": sc_latency, "rate": sc_rate}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--peer", required=True)
    ap.add_argument("--node-if", default="vn")
    ap.add_argument("--peer-if", default="vp")
    ap.add_argument("--count", type=int, default=4000)
    ap.add_argument("--size", type=int, default=60)
    ap.add_argument("--burst", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    print(json.dumps(SCENARIOS[a.scenario](a)))


if __name__ == "__main__":
    main()
