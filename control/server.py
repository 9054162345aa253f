"""The control channel's server: a ZeroMQ ROUTER socket inside the vrouter.

``Server`` is the channel itself, for any op table on control.protocol's envelope: the socket, its
thread, the bounded backlog, typed error answers, and replies a handler may hold back (``Held``: the
cluster agent's long poll, control/node/channel.py). ``ControlServer`` is the vrouter's: sessions,
generations and snapshots over the node's ``Backend``.

One thread owns the socket and is the single writer of the node's tables: it
decodes a request (control.protocol validates the envelope and the body's
schema), hands it to the backend the node gave it (``Backend``: the only way
into the node's tables; nothing here imports the vrouter), and answers ok or
an error naming the field. A message is applied whole or not at all: the
backend checks references before it changes anything.

Transport
- ``ipc://path`` (default): the socket file is made readable by root only
  (mode 0600) right after bind.
- ``tcp://``: only with CurveZMQ: the server's secret key and a directory of
  allowed client public keys (zmq.auth's certificate files; ``python -m
  control.keys`` makes them); an unknown key never reaches the handler.
- ZMTP heartbeats (interval 1 s, timeout 5 s) notice dead peers.
- Bounded backlog: the thread drains the socket into a queue of at most
  ``backlog`` requests and answers ``busy`` to anything beyond it, so a flood
  gets a clear answer and never grows memory or stalls the datapath (which
  never waits on this thread).

Refusals
- Every refused request is counted (``counters``: ``errors`` and ``error_<code>``, busy answers as
  ``busy`` and ``error_busy``; the node exports them as vrouter_control_requests_total{result} and
  vrouter_control_errors_total{code}).
- Their log lines are rate-limited per error code (RefusalLog): the first REFUSAL_LOG_BURST (10) of a
  code in REFUSAL_LOG_INTERVAL (10 s) get a line each ("control refused" code=, op=, field=, error=),
  the rest one summary line when the interval ends ("control: suppressed K refusals" code=...). So a
  flood of bad requests costs the log a few lines per code and interval.
- An ``internal`` answer is a bug: its line carries the traceback (of the backend's exception, or of a
  schema validator's), rate-limited like the others.

Sync (the agent's restart must not reset the datapath)
- ``hello`` returns this process's instance id (a new one after a vrouter
  restart: the agent re-pushes) and the last completed snapshot generation.
- ``snapshot_begin(g)`` ... objects ... ``snapshot_end(g)``: everything the
  agent pushes in between is applied in place (updates, never delete+add)
  and marked with g; at the end, objects of older generations are swept by
  the backend. An agent that dies mid-snapshot leaves the tables as they
  were plus what it pushed; nothing is swept until a snapshot completes.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
import uuid

import zmq

from control import protocol as P

log = logging.getLogger("vrouter.control")

HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 5000
REFUSAL_LOG_BURST = 10          # refusals of one error code logged one by one per interval ...
REFUSAL_LOG_INTERVAL = 10.0     # ... of this many seconds; the rest are counted and summed up in one line


class RefusalLog:
    """Rate limit for the log lines of refused requests, per error code, so that a flood of bad requests
    cannot flood the log: in each ``interval`` (seconds, from the first refusal of that code) the first
    ``burst`` refusals are logged one by one and the others only counted; when the interval is over, one
    line "control: suppressed K refusals" (code=..., interval=...) sums them up. The server's counters
    count every refusal whatever this logs. Used by the server's thread only (no lock)."""

    def __init__(self, logger: logging.Logger, burst: int = REFUSAL_LOG_BURST,
                 interval: float = REFUSAL_LOG_INTERVAL, clock=time.monotonic):
        self.log, self.burst, self.interval, self.clock = logger, burst, interval, clock
        self._windows: dict[str, list] = {}     # code -> [start, logged, suppressed]; codes are few

    def allow(self, code: str) -> bool:
        """True when this refusal of ``code`` gets its own line."""
        now = self.clock()
        w = self._windows.get(code)
        if w is None or now - w[0] >= self.interval:
            if w is not None:
                self._summary(code, w)
            w = self._windows[code] = [now, 0, 0]
        if w[1] < self.burst:
            w[1] += 1
            return True
        w[2] += 1
        return False

    def tick(self) -> None:
        """The summaries of the intervals that are over (the server's loop calls it)."""
        now = self.clock()
        for code in [c for c, w in self._windows.items() if now - w[0] >= self.interval]:
            self._summary(code, self._windows.pop(code))

    def flush(self) -> None:
        """Every pending summary now (at stop)."""
        for code in list(self._windows):
            self._summary(code, self._windows.pop(code))

    def _summary(self, code: str, w: list) -> None:
        if w[2]:
            self.log.warning(f"control: suppressed {w[2]} refusals",
                             extra={"fields": {"code": code, "logged": w[1], "interval": f"{self.interval:g}s"}})


class Backend:
    """What the server needs from the node. Each method validates references before changing
    anything and raises P.ProtocolError(code, field, msg) to refuse; returns a reply body."""

    def node_name(self) -> str: ...
    def limits(self) -> dict: ...                      # hello's "limits" ({"nexthops": n}); optional
    def apply(self, op: str, body: dict, generation: int | None) -> dict: ...
    def begin(self, generation: int) -> None: ...      # a snapshot starts (an unfinished one is abandoned)
    def sweep(self, generation: int) -> dict: ...


class Held:
    """A reply the handler holds back: ``ready(final)`` gives the reply body once there is one (None:
    not yet); it is asked again whenever the server is notified (``Server.notify``) and at least every
    100 ms, and once more with ``final=True`` at ``deadline`` (time.monotonic()), when it must answer."""

    def __init__(self, ready, deadline: float):
        self.ready, self.deadline = ready, deadline


class Server:
    """A ROUTER socket answering requests of the op table ``ops`` (control.protocol's envelope and
    codec) with ``handler(request) -> reply body | Held``; a P.ProtocolError it raises is the answer."""

    def __init__(self, endpoint: str, handler, *, ops: dict | None = None, curve_secret: bytes | None = None,
                 curve_public: bytes | None = None, allowed_keys_dir: str | None = None, backlog: int = 1024,
                 context: zmq.Context | None = None, name: str = "control",
                 refusal_log_burst: int = REFUSAL_LOG_BURST, refusal_log_interval: float = REFUSAL_LOG_INTERVAL):
        if endpoint.startswith("tcp://") and not (curve_secret and curve_public and allowed_keys_dir):
            raise ValueError(f"{name}: a tcp:// endpoint needs CurveZMQ keys (server key pair and the "
                             "directory of allowed client public keys)")
        self.endpoint = endpoint
        self.handler = handler
        self.ops = ops
        self.name = name
        self.backlog = backlog
        self.instance = str(uuid.uuid4())
        self.ctx = context or zmq.Context.instance()
        self.curve = (curve_secret, curve_public, allowed_keys_dir)
        self.counters = collections.Counter()
        self.refusal_log = RefusalLog(log, refusal_log_burst, refusal_log_interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._auth = None
        self.sock: zmq.Socket | None = None
        self._held: list[tuple[bytes, int, Held]] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def notify(self) -> None:
        """Have the held replies asked again now (from any thread)."""
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass          # a wake-up is pending already (or the server is closed)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Bind and start the thread; a failure (address in use, bad key, ...) leaves nothing open."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        s = self.sock = self.ctx.socket(zmq.ROUTER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        s.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        s.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        s.setsockopt(zmq.HEARTBEAT_TTL, HEARTBEAT_TIMEOUT_MS)
        s.setsockopt(zmq.MAXMSGSIZE, P.MAX_MESSAGE)
        s.setsockopt(zmq.RCVHWM, self.backlog)
        secret, public, keys_dir = self.curve
        if self.endpoint.startswith("tcp://"):
            from zmq.auth.thread import ThreadAuthenticator
            self._auth = ThreadAuthenticator(self.ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=keys_dir)
            s.curve_server = True
            s.curve_secretkey = secret
            s.curve_publickey = public
        if self.endpoint.startswith("ipc://"):
            path = self.endpoint[len("ipc://"):]
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            if os.path.exists(path):
                os.unlink(path)   # a stale socket file of a previous run
            old = os.umask(0o077)
            try:
                s.bind(self.endpoint)
            finally:
                os.umask(old)
            os.chmod(path, 0o600)
        else:
            s.bind(self.endpoint)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        log.info(f"{self.name} listening", extra={"fields": {"endpoint": self.endpoint, "instance": self.instance}})

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self.refusal_log.flush()       # what the last interval suppressed
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self.endpoint.startswith("ipc://"):
            try:
                os.unlink(self.endpoint[len("ipc://"):])
            except OSError:
                pass
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        queue: collections.deque = collections.deque()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        while not self._stop.is_set():
            if not queue:
                events = dict(poller.poll(100))
                if self._wake_r in events:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                if self._held:
                    self._answer_held()
                if self.sock not in events:
                    continue
            # drain what arrived; beyond the backlog answer busy at once
            while True:
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    break
                if len(queue) >= self.backlog:
                    self.counters["busy"] += 1
                    self.counters[f"error_{P.BUSY}"] += 1
                    self._send(frames[0], P.encode_error(_seq_of(frames[-1]), P.BUSY, None,
                                                         f"control queue full ({self.backlog}); retry later"))
                    continue
                queue.append(frames)
            if queue:
                frames = queue.popleft()
                self._handle(frames)
            self.refusal_log.tick()

    def _send(self, ident: bytes, payload: bytes) -> None:
        try:
            self.sock.send_multipart([ident, payload], zmq.NOBLOCK)
        except zmq.ZMQError:
            self.counters["reply_lost"] += 1   # the peer went away

    def _handle(self, frames: list) -> None:
        ident, payload = frames[0], frames[-1]
        if len(frames) != 2:
            self._refuse(ident, P.ProtocolError(P.BAD_MESSAGE, None, f"expected one frame, got {len(frames) - 1}",
                                                seq=0))
            return
        seq = 0
        op = None
        try:
            req = P.decode_request(payload, self.ops)
            seq, op = req.sequence, req.op
            body = self.handler(req)
            if isinstance(body, Held):
                if len(self._held) >= self.backlog:
                    raise P.ProtocolError(P.BUSY, None, f"{len(self._held)} replies held; retry later")
                self._held.append((ident, seq, body))
                self._answer_held()
                return
            self.counters["ok"] += 1
            self._send(ident, P.encode_reply(seq, body))
        except P.ProtocolError as e:
            if seq:
                e.seq = seq
            self._refuse(ident, e, op)
        except Exception as e:  # noqa: BLE001 - a bug must answer, not kill the channel
            err = P.ProtocolError(P.INTERNAL, None, f"{type(e).__name__}: {e}", seq=seq)
            err.__cause__ = e
            self._refuse(ident, err, op)

    def _refuse(self, ident: bytes, e: P.ProtocolError, op: str | None = None) -> None:
        """Answer a refusal: every one is counted (``errors`` and ``error_<code>``: the metrics'
        vrouter_control_requests_total{result="error"} and vrouter_control_errors_total{code}), the
        log gets a line for the first few of each code per interval (RefusalLog). An ``internal`` one
        is a bug: its line carries the traceback."""
        self.counters["errors"] += 1
        self.counters[f"error_{e.code}"] += 1
        if self.refusal_log.allow(e.code):
            fields = {"code": e.code, "op": op or "-", "field": e.field or "-", "error": e.msg[:200]}
            if e.code == P.INTERNAL:
                cause = e.__cause__ or e
                log.error(f"{self.name}: internal error", exc_info=(type(cause), cause, cause.__traceback__),
                          extra={"fields": fields})
            else:
                log.info("control refused", extra={"fields": fields})
        self._send(ident, P.encode_error(e.seq, e.code, e.field, e.msg))

    def _answer_held(self) -> None:
        now, keep = time.monotonic(), []
        for ident, seq, h in self._held:
            try:
                body = h.ready(now >= h.deadline)
                if body is None and now >= h.deadline:
                    raise RuntimeError("a held reply gave nothing at its deadline")
            except P.ProtocolError as e:
                e.seq = seq
                self._refuse(ident, e)
                continue
            except Exception as e:  # noqa: BLE001 - a bug must answer, not kill the channel
                err = P.ProtocolError(P.INTERNAL, None, f"{type(e).__name__}: {e}", seq=seq)
                err.__cause__ = e
                self._refuse(ident, err)
                continue
            if body is None:
                keep.append((ident, seq, h))
            else:
                self.counters["ok"] += 1
                self._send(ident, P.encode_reply(seq, body))
        self._held = keep


class ControlServer(Server):
    """The vrouter's control server: hello, sessions and their generations, snapshots; every other op
    goes to the node's ``Backend``."""

    def __init__(self, endpoint: str, backend: Backend, **kw):
        super().__init__(endpoint, self._dispatch, **kw)
        self.backend = backend
        self.sessions: dict[str, int] = {}       # session -> its generation
        self.snapshot: int | None = None         # generation of the snapshot in progress
        self.completed = 0                       # last completed snapshot generation

    def _dispatch(self, req) -> dict:
        op, b = req.op, req.body
        known = self.sessions.get(req.session)
        if known is not None and req.generation < known:
            raise P.ProtocolError(P.STALE, "g", f"generation {req.generation} is older than the session's {known}")
        if op == "hello":
            self.sessions[b["session"]] = b["generation"]
            log.info("control session", extra={"fields": {"agent": b["agent"], "session": b["session"],
                                                          "generation": b["generation"]}})
            return {"instance": self.instance, "version": P.VERSION, "generation": self.completed,
                    "node": self.backend.node_name(), "limits": dict(getattr(self.backend, "limits", dict)())}
        if op == "ping":
            return {"t": time.time(), "instance": self.instance}
        if op == "snapshot_begin":
            self.snapshot = b["generation"]
            self.backend.begin(self.snapshot)
            log.info("snapshot begin", extra={"fields": {"generation": self.snapshot}})
            return {}
        if op == "snapshot_end":
            if self.snapshot != b["generation"]:
                raise P.ProtocolError(P.INVALID, "b.generation",
                                      f"no snapshot {b['generation']} in progress (current: {self.snapshot})")
            swept = self.backend.sweep(self.snapshot)
            self.completed, self.snapshot = b["generation"], None
            log.info("snapshot end", extra={"fields": {"generation": self.completed, **swept}})
            return {"swept": swept}
        if op == "stats":
            out = self.backend.apply(op, b, None)
            out["control"] = dict(self.counters)
            return out
        return self.backend.apply(op, b, self.snapshot)


def _seq_of(payload: bytes) -> int:
    """The sequence number of a request we could not decode, if it can be read at all."""
    try:
        import msgpack
        d = msgpack.unpackb(payload, raw=False, max_bin_len=1 << 20, max_str_len=1 << 16,
                            max_array_len=1 << 16, max_map_len=64)
        q = d.get("q") if isinstance(d, dict) else None
        return q if isinstance(q, int) and 0 <= q < 1 << 63 else 0
    except Exception:  # noqa: BLE001 - junk has no sequence number
        return 0
