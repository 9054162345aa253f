"""What the control server writes to the node's log, through the node's own log set-up
(vrouter.node.setup_logging, text and JSON) over a real control channel (ZeroMQ ipc, in process, the
real backend):

- an ``internal`` answer (a bug: the backend's, or a schema validator's) logs its traceback;
- refusals are logged at a bounded rate per error code (control.server.RefusalLog), with one summary
  line per interval for the rest, while every one of them is counted: 10,000 bad requests make a few
  dozen lines, and the counters and /metrics say 10,000."""
import io
import json
import logging
import math
import re
import sys
import tempfile
import time

import msgpack
import pytest
import zmq
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from control import client as C
from control import protocol as P
from control import server as S
from vrouter.config import parse
from vrouter.metrics import NodeCollector
from vrouter.node import CheckNode, setup_logging


@pytest.fixture
def node_log(monkeypatch):
    """setup_logging(fmt) writing to a buffer; the 'vrouter' logger is put back as it was after."""
    lg = logging.getLogger("vrouter")
    saved = (lg.handlers[:], lg.level, lg.propagate)
    buf = io.StringIO()

    def setup(fmt):
        monkeypatch.setattr(sys, "stderr", buf)
        setup_logging(fmt)
        return buf
    yield setup
    lg.handlers[:], lg.level, lg.propagate = saved[0], saved[1], saved[2]


@pytest.fixture
def node():
    n = CheckNode(parse({"node": {"name": "t", "control": "off", "metrics": "off"}}))
    n.check()
    srv = n.control = S.ControlServer(f"ipc://{tempfile.mkdtemp(prefix='ctl-')}/c.sock", n.backend)
    srv.start()
    yield n
    srv.stop()


def backend_bug_7731(b, g):
    raise RuntimeError("injected fault 7731")


def validator_bug_4242(body, path="b"):
    raise KeyError("injected fault 4242")


def internal(c, op):
    with pytest.raises(C.ERRORS["internal"]) as e:
        c.call(op)
    return e.value


def test_an_internal_answer_logs_its_traceback_in_text(node, node_log, monkeypatch):
    buf = node_log("text")
    monkeypatch.setattr(node.backend, "op_drop_stats", backend_bug_7731, raising=False)
    monkeypatch.setitem(P.OPS, "capture_read", validator_bug_4242)
    with C.Client(node.control.endpoint, timeout=5, retries=1) as c:
        assert "injected fault 7731" in internal(c, "drop_stats").msg
        # the client checks bodies with the same validators: this request goes out raw
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(node.control.endpoint)
        s.send(_req("capture_read", {}, 5))
        assert s.poll(5000)
        rep = P.decode_reply(s.recv())
        s.close()
        assert rep.error.code == "internal" and "injected fault 4242" in rep.error.msg
        c.call("ping")                                          # still serving
    text = buf.getvalue()
    for op, fn, exc in (("drop_stats", "backend_bug_7731", "RuntimeError: injected fault 7731"),
                        ("-", "validator_bug_4242", "KeyError: 'injected fault 4242'")):   # op: not decoded
        m = re.search(rf"^\S+ error control: internal error code=internal op={op} .*\n((?:    .*\n)+)", text, re.M)
        assert m, text
        tb = m.group(1)
        assert tb.startswith("    Traceback (most recent call last):") and f"in {fn}" in tb and exc in tb, tb
    assert node.control.counters["error_internal"] == 2


def test_an_internal_answer_logs_its_traceback_in_json(node, node_log, monkeypatch):
    buf = node_log("json")
    monkeypatch.setattr(node.backend, "op_drop_stats", backend_bug_7731, raising=False)
    with C.Client(node.control.endpoint, timeout=5, retries=1) as c:
        internal(c, "drop_stats")
    logging.getLogger("vrouter.x").info("mine", extra={"fields": {"msg": "a field", "ts": 1, "k": 2}})
    recs = [json.loads(x) for x in buf.getvalue().splitlines()]      # every record is one JSON line
    (mine,) = [r for r in recs if r["msg"] == "mine"]                # a field never hides the record's keys
    assert (mine["msg_"], mine["ts_"], mine["k"]) == ("a field", 1, 2) and mine["ts"] > 1
    assert recs, buf.getvalue()
    (r,) = [r for r in recs if r["msg"] == "control: internal error"]
    assert r["level"] == "error" and r["op"] == "drop_stats" and r["code"] == "internal"
    assert r["error"] == "RuntimeError: injected fault 7731"
    assert r["exc"].startswith("Traceback (most recent call last):") and "backend_bug_7731" in r["exc"]
    assert r["exc"].rstrip().endswith("RuntimeError: injected fault 7731")


def _req(op, body, q):
    return msgpack.packb({"v": 1, "s": "flood", "g": 0, "q": q, "op": op, "b": body}, use_bin_type=True)


# one bad request of each kind, by the code it must get: the schema, the envelope, the backend's checks
FLOOD = [
    ("bad_message", lambda q: [b"\x00not msgpack"]),
    ("bad_message", lambda q: [b"two", b"frames"]),
    ("unknown_op", lambda q: [_req("nope", {}, q)]),
    ("invalid", lambda q: [_req("vrf_add", {"vrf": 70000}, q)]),
    ("invalid", lambda q: [_req("nh_del", {"id": 70000}, q)]),
    ("not_found", lambda q: [_req("vrf_del", {"vrf": 9}, q)]),
]


def test_a_flood_of_bad_requests_is_counted_whole_and_logged_at_a_bounded_rate(node, node_log):
    buf = node_log("text")
    srv = node.control
    n, codes = 10_000, {}
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(srv.endpoint)
    t0 = time.monotonic()
    try:
        sent = answered = 0
        while sent < n:
            for _ in range(min(500, n - sent)):         # in chunks: never beyond the backlog (no busy)
                code, make = FLOOD[sent % len(FLOOD)]
                codes[code] = codes.get(code, 0) + 1
                s.send_multipart(make(sent + 1))
                sent += 1
            while answered < sent and s.poll(5000):
                rep = P.decode_reply(s.recv())
                assert not rep.ok and rep.error.code != "busy"
                answered += 1
        assert answered == n
    finally:
        s.close()
    elapsed = time.monotonic() - t0
    # every refusal counted, per code, and /metrics says so
    assert srv.counters["errors"] == n
    assert {c: srv.counters[f"error_{c}"] for c in codes} == codes
    fams = {f.name: f for f in text_string_to_metric_families(
        generate_latest(_registry(node)).decode())}
    req = {s.labels["result"]: s.value for s in fams["vrouter_control_requests"].samples}
    assert req["error"] == n and req["ok"] == 0
    err = {s.labels["code"]: s.value for s in fams["vrouter_control_errors"].samples}
    assert {c: err[c] for c in codes} == codes and sum(err.values()) == n
    # the log: a few lines per code and interval, and the summaries account for the rest
    srv.stop()                                           # flushes the last interval's summaries
    lines = buf.getvalue().splitlines()
    refused = [x for x in lines if " control refused " in x]
    summaries = [x for x in lines if " control: suppressed " in x]
    windows = math.ceil(elapsed / S.REFUSAL_LOG_INTERVAL) + 1
    assert len(refused) <= len(codes) * S.REFUSAL_LOG_BURST * windows, len(refused)
    assert len(summaries) <= len(codes) * windows
    assert len(lines) < 100, len(lines)
    for code, k in codes.items():
        logged = sum(1 for x in refused if f"code={code} " in x)
        suppressed = sum(int(re.search(r"suppressed (\d+) refusals", x).group(1))
                         for x in summaries if f"code={code} " in x)
        assert logged + suppressed == k, (code, logged, suppressed, k)
        assert logged >= S.REFUSAL_LOG_BURST                # the first ones are all there


def _registry(node):
    from prometheus_client.core import CollectorRegistry
    r = CollectorRegistry(auto_describe=False)
    r.register(NodeCollector(node))
    return r


def test_busy_answers_are_counted_by_code_too():
    backend = type("Slow", (), {"node_name": lambda self: "slow", "begin": lambda self, g: None,
                                "sweep": lambda self, g: {},
                                "apply": lambda self, op, b, g: time.sleep(0.02) or {}})()
    srv = S.ControlServer(f"ipc://{tempfile.mkdtemp(prefix='ctl-')}/c.sock", backend, backlog=2)
    srv.start()
    try:
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(srv.endpoint)
        for q in range(1, 31):
            s.send(_req("vrf_add", {"vrf": q}, q))
        codes = []
        while len(codes) < 30 and s.poll(3000):
            rep = P.decode_reply(s.recv())
            codes.append("ok" if rep.ok else rep.error.code)
        s.close()
        assert codes.count("busy") > 0
        assert srv.counters["busy"] == srv.counters["error_busy"] == codes.count("busy")
    finally:
        srv.stop()


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_refusal_log_windows_per_code():
    logged = []

    class Sink:
        def warning(self, msg, extra):
            logged.append((msg, extra["fields"]["code"], extra["fields"]["logged"]))

    clock = Clock()
    rl = S.RefusalLog(Sink(), burst=3, interval=10.0, clock=clock)
    assert [rl.allow("invalid") for _ in range(5)] == [True] * 3 + [False] * 2
    assert [rl.allow("not_found") for _ in range(4)] == [True] * 3 + [False]
    clock.t += 5
    assert not rl.allow("invalid")
    rl.tick()
    assert logged == []                                     # the interval is not over
    clock.t += 5
    rl.tick()                                               # over: one summary per code, no new refusal needed
    assert sorted(logged) == [("control: suppressed 1 refusals", "not_found", 3),
                              ("control: suppressed 3 refusals", "invalid", 3)]
    logged.clear()
    assert [rl.allow("invalid") for _ in range(4)] == [True] * 3 + [False]    # a new interval
    clock.t += 10
    assert rl.allow("invalid")                              # the next interval starts: the summary first
    assert logged == [("control: suppressed 1 refusals", "invalid", 3)]
    logged.clear()
    rl.flush()
    assert logged == []                                     # nothing suppressed in this one
    assert [rl.allow("invalid") for _ in range(4)] == [True] * 3 + [False]
    rl.flush()
    assert logged == [("control: suppressed 1 refusals", "invalid", 3)]
