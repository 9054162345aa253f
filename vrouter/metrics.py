"""Prometheus metrics and health endpoints for the node process.

One small HTTP server (``node.metrics``, default 127.0.0.1:9100; "off": none)
serves, on the same port:

    /metrics   the node's counters in the Prometheus text format, read at scrape
               time by NodeCollector (no background thread, nothing cached)
    /healthz   200 "ok" while every worker thread runs, else 503 naming the stopped one
    /readyz    200 "ready" once Node.start() completed (fabric, vifs, static
               configuration, workers, control), 503 before that and during stop

Node.start() starts it after the workers; Node.stop() stops it last.

The endpoint holds up against idle and slow clients (any local user can connect): one thread serves
every connection from a selector; a connection must send its request within READ_TIMEOUT (5 s) of its
accept and take the answer within WRITE_TIMEOUT (5 s), at most MAX_CONNECTIONS (64) are open at once
(one more closes the oldest), a request head is at most MAX_REQUEST (8 KiB). Connections closed for
those reasons are counted: vrouter_metrics_connections_dropped_total{reason="timeout"|"evicted"|
"bad_request"}.
"""
from __future__ import annotations

import collections
import logging
import selectors
import socket
import threading
import time
from email.utils import formatdate
from http import HTTPStatus

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from vrouter.config import FABRIC_VIF, metrics_address

READ_TIMEOUT = 5.0        # seconds a connection has to send its whole request, from its accept
WRITE_TIMEOUT = 5.0       # seconds it has to take the whole answer
DRAIN_TIMEOUT = 1.0       # after the answer, how long the server waits for the client to close first
MAX_CONNECTIONS = 64      # open at once; one more closes the oldest
MAX_REQUEST = 8192        # bytes of request line and headers
LISTEN_BACKLOG = 128
ACCEPT_BURST = 64         # connections accepted per round of the loop
POLL = 0.2                # seconds: how soon stop() is noticed
ACCEPT_BACKOFF = 0.05     # seconds to wait after accept() failed (out of file descriptors, ...)

log = logging.getLogger("vrouter.metrics")


def _c(name: str, doc: str, labels=()) -> CounterMetricFamily:
    # prometheus_client appends _total to a counter family's samples
    return CounterMetricFamily(name, doc, labels=list(labels))


def _g(name: str, doc: str, labels=()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


class NodeCollector(Collector):
    """Every family is built from the node's live counters at each collect()."""

    def __init__(self, node):
        self.node = node

    def _vif_ids(self) -> list[int]:
        n = self.node
        ids = {v.id for v in n.conf.vifs}
        if n.conf.fabric:
            ids.add(FABRIC_VIF)
        ids.update(int(v) for v in n.dp.nh.vifs())      # vifs the control channel added
        return sorted(ids)

    def collect(self):
        n = self.node
        dp = n.dp
        if dp is None:
            return
        s = dp.stats()

        # -- per vif
        vif_fams = {
            "rx_packets": _c("vrouter_vif_rx_packets", "Frames received on the vif.", ["vif"]),
            "rx_bytes": _c("vrouter_vif_rx_bytes", "Bytes received on the vif.", ["vif"]),
            "tx_packets": _c("vrouter_vif_tx_packets", "Frames sent on the vif.", ["vif"]),
            "tx_bytes": _c("vrouter_vif_tx_bytes", "Bytes sent on the vif.", ["vif"]),
            "drops": _c("vrouter_vif_drops", "Frames received on the vif and dropped.", ["vif"]),
        }
        for vid in self._vif_ids():
            vs = dp.vif_stats(vid)
            for k, fam in vif_fams.items():
                fam.add_metric([str(vid)], vs.get(k, 0))
        yield from vif_fams.values()

        # -- datapath totals
        drops = _c("vrouter_drops", "Frames dropped by the pipeline, per reason.", ["reason"])
        for reason, v in s["drops"].items():
            if reason != "none":
                drops.add_metric([reason], v)
        yield drops
        for key, name, doc in (
                ("packets", "vrouter_packets", "Frames the pipeline processed."),
                ("forwarded", "vrouter_forwarded", "Frames forwarded."),
                ("flow_hits", "vrouter_flow_hits", "Frames that hit an installed flow."),
                ("flow_misses", "vrouter_flow_misses", "Frames that missed the flow table.")):
            f = _c(name, doc)
            f.add_metric([], s.get(key, 0))
            yield f

        # -- flow table
        fs = dp.flows.stats()
        f = _g("vrouter_flow_entries", "Flow entries in use.")
        f.add_metric([], fs["entries"])
        yield f
        f = _g("vrouter_flow_capacity", "Flow entries the table holds (fixed at start).")
        f.add_metric([], fs["capacity"])
        yield f
        f = _c("vrouter_flow_inserts", "Flows installed.")
        f.add_metric([], fs["inserts"])
        yield f
        f = _c("vrouter_flow_evictions", "Flows taken out of the table: aged out plus removed.")
        f.add_metric([], fs["aged"] + fs["removed"])
        yield f

        # -- routes per VRF and family
        routes = _g("vrouter_routes", "Routes in the VRF's table, per address family.", ["vrf", "family"])
        vrfs = set(int(v) for v in dp.lpm4.vrfs()) | set(int(v) for v in dp.lpm6.vrfs())
        vrfs.update(v.vrf for v in n.conf.vifs)
        for vrf in sorted(vrfs):
            routes.add_metric([str(vrf), "4"], dp.lpm4.count(vrf))
            routes.add_metric([str(vrf), "6"], dp.lpm6.count(vrf))
        yield routes

        # -- workers
        rx = _c("vrouter_worker_rx_packets", "Frames the worker received.", ["worker"])
        tx = _c("vrouter_worker_tx_packets", "Frames the worker sent.", ["worker"])
        busy = _c("vrouter_worker_busy_seconds", "Time the worker spent processing frames.", ["worker"])
        for i, w in enumerate(list(n.workers)):
            ws = w.stats()
            rx.add_metric([str(i)], ws["rx_packets"])
            tx.add_metric([str(i)], ws["tx_packets"])
            busy.add_metric([str(i)], ws["busy_ns"] / 1e9)
        yield rx
        yield tx
        yield busy

        # -- control channel
        ctl = getattr(n, "control", None)
        if ctl is not None:
            from control import protocol as P
            counters = dict(ctl.counters)
            f = _g("vrouter_control_sessions", "Agent sessions the control server knows.")
            f.add_metric([], len(ctl.sessions))
            yield f
            f = _c("vrouter_control_requests", "Control requests answered, per result.", ["result"])
            f.add_metric(["ok"], counters.get("ok", 0))
            f.add_metric(["error"], counters.get("errors", 0))
            f.add_metric(["busy"], counters.get("busy", 0))
            yield f
            f = _c("vrouter_control_errors", "Control requests refused, per error code (busy included).",
                   ["code"])
            for code in sorted(P.ERROR_CODES):
                f.add_metric([code], counters.get(f"error_{code}", 0))
            yield f

        # -- this endpoint
        m = getattr(n, "metrics", None)
        if m is not None:
            f = _c("vrouter_metrics_connections_dropped",
                   "Connections to this endpoint the node closed: too slow (timeout), over the limit of open "
                   "connections (evicted, the oldest first), or not a GET/HEAD request (bad_request).", ["reason"])
            for reason in ("timeout", "evicted", "bad_request"):
                f.add_metric([reason], m.counters.get(reason, 0))
            yield f


def _answer(node, registry, path: str) -> tuple[int, str, bytes]:
    """(status, content type, body) for a GET of ``path``."""
    text = "text/plain; charset=utf-8"
    if path == "/metrics":
        try:
            return 200, CONTENT_TYPE_LATEST, generate_latest(registry)
        except Exception as e:  # noqa: BLE001 - answer the scrape, never kill the server
            return 500, text, f"collect failed: {type(e).__name__}: {e}\n".encode()
    if path == "/healthz":
        stopped = [str(getattr(w, "id", i)) for i, w in enumerate(list(node.workers)) if not w.running]
        if not node.workers:
            return 503, text, b"no workers\n"
        if stopped:
            return 503, text, f"worker {', '.join(stopped)} stopped\n".encode()
        return 200, text, b"ok\n"
    if path == "/readyz":
        return (200, text, b"ready\n") if node.ready else (503, text, b"not ready\n")
    return 404, text, b"not found: try /metrics, /healthz or /readyz\n"


def _response(status: int, ctype: str, body: bytes, head_only: bool = False, extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nServer: vrouter-metrics\r\n"
            f"Date: {formatdate(usegmt=True)}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Connection: close\r\n\r\n")
    return head.encode("latin-1") + (b"" if head_only else body)


class _Conn:
    """One client connection: reading its request, writing the answer, then draining until the client
    closes (so that closing never resets an answer the client has not read)."""
    __slots__ = ("sock", "buf", "out", "state", "deadline", "since")

    def __init__(self, sock, now, timeout):
        self.sock, self.buf, self.out, self.state = sock, bytearray(), None, "read"
        self.since, self.deadline = now, now + timeout


class MetricsServer:
    """The HTTP endpoint of one node; start() binds (OSError when it cannot), stop() closes.

    One thread serves every connection from a selector, so an idle or slow client costs a socket and
    a few bytes, never a thread: each connection must send its request (line and headers, at most
    ``MAX_REQUEST`` bytes) within ``read_timeout`` seconds of being accepted and take its answer within
    ``write_timeout``, or it is closed; at most ``max_connections`` are open at once, and one more
    closes the oldest. So a local user holding hundreds of idle connections delays no scrape. Closed
    connections are counted per reason (``counters``: timeout, evicted, bad_request) and exported as
    vrouter_metrics_connections_dropped_total. Answers are HTTP/1.1 with ``Connection: close``."""

    def __init__(self, node, address: str, *, read_timeout: float = READ_TIMEOUT,
                 write_timeout: float = WRITE_TIMEOUT, max_connections: int = MAX_CONNECTIONS):
        self.host, self.port = metrics_address(address)
        self.node = node
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(node))
        self.read_timeout, self.write_timeout = read_timeout, write_timeout
        self.max_connections = max_connections
        self.counters: collections.Counter = collections.Counter()
        self.conns: dict[socket.socket, _Conn] = {}
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sel: selectors.BaseSelector | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def start(self) -> None:
        s = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.host, self.port))
            s.listen(LISTEN_BACKLOG)
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        self.sock, self.port = s, s.getsockname()[1]
        self._sel = selectors.DefaultSelector()
        self._sel.register(s, selectors.EVENT_READ)
        self._stop.clear()
        self.thread = threading.Thread(target=self._run, name="metrics", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.sock is None:
            return
        self._stop.set()
        self.thread.join(timeout=5)
        for c in list(self.conns.values()):
            self._close(c)
        self._sel.close()
        self.sock.close()
        self.sock = self.thread = self._sel = None

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            wait = min([POLL] + [c.deadline - now for c in self.conns.values()])
            for key, ev in self._sel.select(max(wait, 0)):
                if key.fileobj is self.sock:
                    self._accept()
                    continue
                c = self.conns.get(key.fileobj)
                if c is None:
                    continue
                try:
                    if ev & selectors.EVENT_READ:
                        self._read(c)
                    if ev & selectors.EVENT_WRITE and c.sock in self.conns:
                        self._write(c)
                except OSError:                     # reset by the peer, ...
                    self._close(c)
                except Exception:  # noqa: BLE001 - a bug loses this connection, never the endpoint
                    log.exception("metrics: request failed")
                    self._close(c)
            now = time.monotonic()
            for c in [c for c in self.conns.values() if c.deadline <= now]:
                if c.state != "drain":              # draining: the answer is out, the client is slow to close
                    self.counters["timeout"] += 1
                self._close(c)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BURST):
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:                         # EMFILE, ...: try again a little later (not in a busy loop)
                time.sleep(ACCEPT_BACKOFF)
                return
            if len(self.conns) >= self.max_connections:
                self.counters["evicted"] += 1
                self._close(min(self.conns.values(), key=lambda c: c.since))
            sock.setblocking(False)
            c = _Conn(sock, time.monotonic(), self.read_timeout)
            self.conns[sock] = c
            self._sel.register(sock, selectors.EVENT_READ)

    def _read(self, c: _Conn) -> None:
        data = c.sock.recv(4096)
        if not data:
            self._close(c)                          # the client went away (or finished draining)
            return
        if c.state != "read":
            return                                  # more than one request: ignored (Connection: close)
        c.buf += data
        end = c.buf.find(b"\r\n\r\n")
        if end < 0:
            end = c.buf.find(b"\n\n")
        if end < 0:
            if len(c.buf) > MAX_REQUEST:
                self._reply(c, _response(431, "text/plain", b"request header too large\n"), bad=True)
            return
        line = bytes(c.buf[:c.buf.find(b"\n")]).rstrip(b"\r").decode("latin-1")
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._reply(c, _response(400, "text/plain", b"bad request\n"), bad=True)
        elif parts[0] not in ("GET", "HEAD"):
            self._reply(c, _response(405, "text/plain", b"only GET and HEAD\n", extra="Allow: GET, HEAD\r\n"),
                        bad=True)
        else:
            status, ctype, body = _answer(self.node, self.registry, parts[1].split("?", 1)[0])
            self._reply(c, _response(status, ctype, body, head_only=parts[0] == "HEAD"))

    def _reply(self, c: _Conn, data: bytes, bad: bool = False) -> None:
        if bad:
            self.counters["bad_request"] += 1
        c.state, c.out, c.deadline = "write", memoryview(data), time.monotonic() + self.write_timeout
        self._sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        self._write(c)

    def _write(self, c: _Conn) -> None:
        if c.state != "write":
            return
        try:
            n = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            return
        c.out = c.out[n:]
        if not len(c.out):
            c.sock.shutdown(socket.SHUT_WR)
            c.state, c.out, c.deadline = "drain", None, time.monotonic() + DRAIN_TIMEOUT
            self._sel.modify(c.sock, selectors.EVENT_READ)

    def _close(self, c: _Conn) -> None:
        self.conns.pop(c.sock, None)
        try:
            self._sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
