"""control.server in-process, over a fake backend: the bounded backlog answers busy (and the
client retries), malformed frames are answered, a backend bug answers internal and the channel
lives on, and the blocking and asyncio clients see typed errors."""
import asyncio
import os
import stat
import tempfile
import threading
import time

import pytest
import zmq

from control import client as C
from control import protocol as P
from control.server import ControlServer


class SlowBackend:
    def __init__(self, delay=0.0):
        self.delay = delay
        self.applied = []
        self.began = []
        self.lock = threading.Lock()

    def node_name(self):
        return "fake"

    def apply(self, op, body, generation):
        time.sleep(self.delay)
        if op == "vrf_del" and body["vrf"] == 13:
            raise RuntimeError("a bug in the backend")
        if op == "vrf_del" and body["vrf"] == 14:
            raise P.ProtocolError(P.IN_USE, "b.vrf", "VRF 14 in use by vif 3")
        with self.lock:
            self.applied.append((op, generation))
        return {"op": op}

    def begin(self, generation):
        self.began.append(generation)

    def sweep(self, generation):
        return {"routes": 0}


@pytest.fixture
def server():
    d = tempfile.mkdtemp(prefix="ctl-")
    srv = ControlServer(f"ipc://{d}/c.sock", SlowBackend(), backlog=4)
    srv.start()
    yield srv
    srv.stop()


def test_socket_is_root_only_and_errors_are_typed(server):
    path = server.endpoint[len("ipc://"):]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with C.Client(server.endpoint, timeout=2) as c:
        assert c.hello("t")["node"] == "fake"
        with pytest.raises(C.InUseError) as e:
            c.call("vrf_del", {"vrf": 14})
        assert e.value.field == "b.vrf" and "vif 3" in str(e.value)
        with pytest.raises(C.ERRORS["internal"]):
            c.call("vrf_del", {"vrf": 13})
        assert c.call("vrf_add", {"vrf": 1}) == {"op": "vrf_add"}     # still serving
        with pytest.raises(C.InvalidError) as e:
            c.call("vrf_add", {"vrf": 70000})                           # refused before sending
        assert e.value.field == "b.vrf"


def test_malformed_frames_get_answers(server):
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(server.endpoint)
    try:
        s.send(b"\x00garbage")
        assert P.decode_reply(s.recv()).error.code == P.BAD_MESSAGE
        s.send_multipart([b"a", b"b"])
        rep = P.decode_reply(s.recv())
        assert not rep.ok and "frame" in rep.error.msg
        s.send(P.encode_request("ping", {}, session="s", generation=0, sequence=5)[:-3])
        assert P.decode_reply(s.recv()).error.code == P.BAD_MESSAGE
    finally:
        s.close()


def test_a_full_backlog_answers_busy_and_the_client_retries():
    d = tempfile.mkdtemp(prefix="ctl-")
    backend = SlowBackend(delay=0.02)
    srv = ControlServer(f"ipc://{d}/c.sock", backend, backlog=2)
    srv.start()
    try:
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(srv.endpoint)
        for q in range(1, 31):
            s.send(P.encode_request("vrf_add", {"vrf": q}, session="s", generation=0, sequence=q))
        codes = []
        while len(codes) < 30 and s.poll(3000):
            rep = P.decode_reply(s.recv())
            codes.append("ok" if rep.ok else rep.error.code)
        s.close()
        assert len(codes) == 30 and "busy" in codes and "ok" in codes
        assert srv.counters["busy"] == codes.count("busy")
        # a client that retries on busy gets through
        with C.Client(srv.endpoint, timeout=2, retries=8) as c:
            assert c.call("vrf_add", {"vrf": 99}) == {"op": "vrf_add"}
    finally:
        srv.stop()


def test_sessions_generations_and_snapshots(server):
    with C.Client(server.endpoint, generation=5) as c:
        c.hello("agent")
        c.call("snapshot_begin", {"generation": 5})
        c.call("vrf_add", {"vrf": 2})
        with pytest.raises(C.InvalidError, match="no snapshot 6"):
            c.call("snapshot_end", {"generation": 6})
        assert c.call("snapshot_end", {"generation": 5}) == {"swept": {"routes": 0}}
        assert c.hello("agent")["generation"] == 5
        c.generation = 4
        with pytest.raises(C.StaleError):
            c.call("ping")
    assert server.backend.began == [5] and ("vrf_add", 5) in server.backend.applied


def test_tcp_without_keys_is_refused():
    with pytest.raises(ValueError, match="CurveZMQ"):
        ControlServer("tcp://127.0.0.1:5999", SlowBackend())


def test_asyncio_client(server):
    async def go():
        async with C.AsyncClient(server.endpoint, timeout=2) as c:
            h = await c.hello("async")
            with pytest.raises(C.InUseError):
                await c.call("vrf_del", {"vrf": 14})
            return h
    assert asyncio.run(go())["node"] == "fake"


def test_timeout_when_nobody_listens():
    d = tempfile.mkdtemp(prefix="ctl-")
    with C.Client(f"ipc://{d}/nobody.sock", timeout=0.2, retries=1) as c:
        with pytest.raises(C.Timeout):
            c.ping()
