"""The metrics endpoint (vrouter.metrics.MetricsServer) in process, over the real collector on in-memory
tables, against hostile and ordinary clients:

- 300 idle connections (what any local user can open) do not delay a scrape, and the server closes
  them itself: the oldest beyond its limit at once, the others when their read timeout runs out;
- a client trickling its request a byte at a time is cut at the same deadline (the timeout counts from
  the accept, not between bytes), and one that never reads its answer at the write timeout;
- GET and HEAD of /metrics, /healthz, /readyz, 404, 405, 400 and 431 answer as HTTP should, and the
  connections the server drops are counted in vrouter_metrics_connections_dropped_total{reason}."""
import logging
import selectors
import socket
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from vrouter import metrics as M
from vrouter.config import parse
from vrouter.node import CheckNode


class FakeWorker:
    running = True

    def stats(self):
        return {"rx_packets": 1, "tx_packets": 2, "busy_ns": 3}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(**kw):
    n = CheckNode(parse({"node": {"name": "t", "control": "off", "metrics": "off"}}))
    n.check()
    n.workers, n.ready = [FakeWorker()], True
    m = n.metrics = M.MetricsServer(n, f"127.0.0.1:{free_port()}", **kw)
    m.start()
    return n, m


@pytest.fixture
def endpoint():
    n, m = serve(read_timeout=2.0, write_timeout=2.0)
    yield n, m
    m.stop()


def get(m, path, timeout=3.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{m.port}{path}", timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def raw(m, data: bytes, timeout=3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", m.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def settled(m, within=2.0) -> bool:
    """True once the server holds no connection (a client's close reaches it a moment later)."""
    deadline = time.monotonic() + within
    while m.conns and time.monotonic() < deadline:
        time.sleep(0.02)
    return not m.conns


def open_idle(port, n, within=10.0):
    """n TCP connections that send nothing; returns them once all are established (bounded in time)."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_WRITE)
        socks.append(s)
    pending, deadline = set(socks), time.monotonic() + within
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(0.2):
            sel.unregister(key.fileobj)
            pending.discard(key.fileobj)
    sel.close()
    assert not pending, f"{len(pending)} of {n} connections not established in {within} s"
    return socks


def closed_by_server(s) -> bool:
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_idle_connections_delay_no_scrape_and_are_closed_by_the_server():
    n, m = serve()              # the product's timeouts and limit
    socks = open_idle(m.port, 300)
    try:
        t0 = time.monotonic()
        status, _, body = get(m, "/metrics", timeout=5)
        took = time.monotonic() - t0
        assert status == 200 and b"vrouter_packets_total" in body and took < 2.0, took
        # beyond the limit the oldest went at once; the rest go when their read timeout runs out
        time.sleep(0.3)
        assert sum(closed_by_server(s) for s in socks) >= 300 - M.MAX_CONNECTIONS
        deadline = time.monotonic() + M.READ_TIMEOUT + 3
        left = list(socks)
        while left and time.monotonic() < deadline:
            left = [s for s in left if not closed_by_server(s)]
            time.sleep(0.2)
        assert not left, f"{len(left)} idle connections still open {M.READ_TIMEOUT + 3} s later"
        assert len(m.conns) == 0
        assert m.counters["evicted"] >= 300 - M.MAX_CONNECTIONS and \
            m.counters["evicted"] + m.counters["timeout"] == 300, m.counters
        fams = {f.name: f for f in text_string_to_metric_families(get(m, "/metrics")[2].decode())}
        dropped = {s.labels["reason"]: s.value for s in fams["vrouter_metrics_connections_dropped"].samples}
        assert dropped == {"timeout": m.counters["timeout"], "evicted": m.counters["evicted"], "bad_request": 0}
    finally:
        for s in socks:
            s.close()
        m.stop()


def test_a_trickled_request_is_cut_at_the_read_deadline(endpoint):
    _, m = endpoint
    s = socket.create_connection(("127.0.0.1", m.port), timeout=5)
    try:
        t0 = time.monotonic()
        closed = False
        for ch in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            try:
                s.send(bytes([ch]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            s.settimeout(0.25)
            try:
                if s.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
        took = time.monotonic() - t0
        assert closed and 1.9 < took < 3.5, (closed, took)
        assert m.counters["timeout"] == 1
    finally:
        s.close()


class Big:
    def collect(self):
        f = GaugeMetricFamily("test_big", "Many samples.", labels=["k"])
        for i in range(30_000):
            f.add_metric([f"{i:0200d}"], i)
        yield f


def test_a_client_that_never_reads_its_answer_is_cut_at_the_write_deadline(endpoint):
    n, m = endpoint
    m.registry.register(Big())                     # an answer larger than the sockets' buffers
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", m.port))
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        deadline = time.monotonic() + 10            # the big scrape takes a second or so
        while time.monotonic() < deadline and [c.state for c in list(m.conns.values())] != ["write"]:
            time.sleep(0.05)
        assert [c.state for c in list(m.conns.values())] == ["write"]
        status, _, _ = get(m, "/healthz")           # served meanwhile
        assert status == 200
        deadline = time.monotonic() + 4
        while m.conns and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not m.conns and m.counters["timeout"] == 1
    finally:
        s.close()


def test_http_answers(endpoint):
    n, m = endpoint
    status, h, body = get(m, "/metrics")
    assert status == 200 and h["Content-Type"].startswith("text/plain") and int(h["Content-Length"]) == len(body)
    assert h["Connection"] == "close" and h["Server"] == "vrouter-metrics"
    assert {f.name for f in text_string_to_metric_families(body.decode())} >= {"vrouter_packets", "vrouter_drops"}
    assert get(m, "/healthz")[:3:2] == (200, b"ok\n")
    assert get(m, "/readyz?verbose")[:3:2] == (200, b"ready\n")
    n.ready = False
    assert get(m, "/readyz")[:3:2] == (503, b"not ready\n")
    n.workers[0].running = False
    assert get(m, "/healthz")[0] == 503
    assert get(m, "/nope")[0] == 404
    head = raw(m, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert b"Content-Length: " in head and b"vrouter_packets" not in head
    r = raw(m, b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    assert r.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD\r\n" in r
    assert raw(m, b"hello\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(m, b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 9000).startswith(b"HTTP/1.1 431 ")
    assert raw(m, b"GET /healthz HTTP/1.1\n\n").startswith(b"HTTP/1.1 503 ")     # bare newlines are fine
    assert m.counters["bad_request"] == 3 and m.counters["timeout"] == 0
    assert settled(m)


def test_stop_closes_every_connection_and_the_port():
    n, m = serve()
    socks = open_idle(m.port, 10)
    try:
        time.sleep(0.2)
        port = m.port
        m.stop()
        for s in socks:
            s.setblocking(True)
            s.settimeout(2)
            assert closed_by_server(s)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        m.stop()                                    # twice is fine
    finally:
        for s in socks:
            s.close()


def test_a_bug_while_answering_loses_the_connection_not_the_endpoint(endpoint, caplog):
    n, m = endpoint
    n.workers = None                                # /healthz now raises (TypeError)
    with caplog.at_level(logging.ERROR, logger="vrouter.metrics"):
        assert raw(m, b"GET /healthz HTTP/1.1\r\n\r\n") == b""
    assert "metrics: request failed" in caplog.text and "TypeError" in caplog.text
    assert get(m, "/readyz")[0] == 200 and settled(m)
