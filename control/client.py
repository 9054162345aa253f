"""The control channel's client (used by the agent and the operator tools).

    with Client("ipc:///run/vrouter/control.sock") as c:
        c.hello("agent-1")                       # {"instance": ..., "generation": ...}
        c.call("vrf_add", {"vrf": 1})
        c.add_routes(1, ["10.2.0.0/16", ...], [100, ...])   # columnar batches of 10,000
        for item in c.dump("nh"): ...

``AsyncClient`` is the same over asyncio (``await c.call(...)``).

Errors are typed: ``ControlError`` and one subclass per error code of
control.protocol (``InvalidError`` names the field in ``.field``,
``NotFoundError``, ``InUseError``, ``BusyError``, ...), ``Timeout`` when no
answer came after the retries. A request is retried with the same sequence
number after a timeout, and after a ``busy`` answer with a growing pause.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid

import zmq
import zmq.asyncio

from control import protocol as P


class ControlError(Exception):
    code = "error"

    def __init__(self, msg: str, field: str | None = None, code: str | None = None):
        super().__init__(f"{field}: {msg}" if field else msg)
        self.field = field
        self.msg = msg
        if code:
            self.code = code


class Timeout(ControlError):
    code = "timeout"


def _error_class(code: str):
    name = "".join(p.title() for p in code.split("_")) + "Error"
    return type(name, (ControlError,), {"code": code})


ERRORS: dict[str, type] = {}
for _code in ("bad_message", "unsupported_version", "unknown_op", "invalid", "not_found", "in_use", "exists",
              "busy", "too_large", "stale", "internal"):
    ERRORS[_code] = _error_class(_code)
InvalidError, NotFoundError, InUseError, BusyError = (ERRORS[c] for c in ("invalid", "not_found", "in_use",
                                                                           "busy"))
StaleError, UnknownOpError = ERRORS["stale"], ERRORS["unknown_op"]


def raise_for(err) -> None:
    cls = ERRORS.get(err.code, ControlError)
    raise cls(err.msg, err.field, err.code)


def _socket(ctx, endpoint: str, curve: dict | None):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.HEARTBEAT_IVL, 1000)
    s.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
    s.setsockopt(zmq.HEARTBEAT_TTL, 5000)
    if curve:
        s.curve_publickey = curve["public"]
        s.curve_secretkey = curve["secret"]
        s.curve_serverkey = curve["server"]
    s.connect(endpoint)
    return s


def load_curve(keys_dir: str, name: str = "client") -> dict:
    """Client keys from a directory made by python -m control.keys: its own pair and the server's public key."""
    import zmq.auth
    pub, sec = zmq.auth.load_certificate(os.path.join(keys_dir, f"{name}.key_secret"))
    server, _ = zmq.auth.load_certificate(os.path.join(keys_dir, "server.key"))
    return {"public": pub, "secret": sec, "server": server}


class _Base:
    def __init__(self, endpoint: str, *, session: str | None = None, generation: int = 0, timeout: float = 5.0,
                 retries: int = 2, curve: dict | None = None, ops: dict | None = None):
        self.endpoint = endpoint
        self.ops = ops                  # another channel's op table (control/node/channel.py); None: the vrouter's
        self.session = session or uuid.uuid4().hex[:16]
        self.generation = generation
        self.timeout = timeout
        self.retries = retries
        self.curve = curve
        self._seq = itertools.count(1)

    def _request(self, op, body):
        """(seq, payload); a body the schema refuses raises the same typed error the vrouter would."""
        seq = next(self._seq)
        try:
            return seq, P.encode_request(op, body or {}, session=self.session, generation=self.generation,
                                         sequence=seq, ops=self.ops)
        except P.ProtocolError as e:
            raise_for(e)

    @staticmethod
    def _route_batches(vrf, prefixes, nhs, batch):
        import ipaddress
        nets = [ipaddress.ip_network(p) if not isinstance(p, (ipaddress.IPv4Network, ipaddress.IPv6Network))
                else p for p in prefixes]
        for fam in (4, 6):
            idx = [i for i, n in enumerate(nets) if n.version == fam]
            for k in range(0, len(idx), batch):
                part = idx[k:k + batch]
                body = P.pack_routes(fam, [nets[i] for i in part], None if nhs is None else [nhs[i] for i in part])
                body["vrf"] = vrf
                yield body


class Client(_Base):
    """Blocking client: one DEALER socket, one request at a time."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None, **kw):
        super().__init__(endpoint, **kw)
        self.ctx = context or zmq.Context.instance()
        self.sock = _socket(self.ctx, endpoint, self.curve)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _reset(self) -> None:
        # a DEALER with a lost request may later deliver its stale reply: start afresh
        self.sock.close(linger=0)
        self.sock = _socket(self.ctx, self.endpoint, self.curve)

    def _wait(self, seq: int, timeout: float):
        """("ok", body) or ("busy", None) or ("timeout", None); raises the typed error of a refusal."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                return "timeout", None
            rep = P.decode_reply(self.sock.recv())
            if rep.seq != seq:
                continue   # the answer to an earlier, abandoned request
            if rep.ok:
                return "ok", rep.body or {}
            if rep.error.code == P.BUSY:
                return "busy", None
            raise_for(rep.error)

    def call(self, op: str, body: dict | None = None, timeout: float | None = None) -> dict:
        seq, payload = self._request(op, body)
        timeout = self.timeout if timeout is None else timeout
        pause = 0.01
        for attempt in range(self.retries + 1):
            self.sock.send(payload)
            what, got = self._wait(seq, timeout)
            if what == "ok":
                return got
            if what == "busy":
                time.sleep(pause)
                pause = min(pause * 4, 1.0)
            elif attempt < self.retries:
                self._reset()
        if what == "busy":
            raise BusyError(f"{op}: the vrouter stayed busy over {self.retries + 1} tries", None, "busy")
        raise Timeout(f"{op}: no answer from {self.endpoint} in {timeout} s ({self.retries + 1} tries)")

    # -- conveniences ------------------------------------------------------
    def hello(self, agent: str = "client") -> dict:
        return self.call("hello", {"agent": agent, "session": self.session, "generation": self.generation})

    def ping(self) -> float:
        t0 = time.perf_counter()
        self.call("ping")
        return time.perf_counter() - t0

    def add_routes(self, vrf: int, prefixes, nhs, batch: int = 10_000) -> int:
        n = 0
        for body in self._route_batches(vrf, prefixes, nhs, batch):
            n += self.call("route_add", body).get("routes", 0)
        return n

    def del_routes(self, vrf: int, prefixes, batch: int = 10_000) -> int:
        n = 0
        for body in self._route_batches(vrf, prefixes, None, batch):
            n += self.call("route_del", body).get("deleted", 0)
        return n

    def dump(self, table: str, limit: int = 1000, **kw):
        """Every item of a table, page by page."""
        cursor = None
        while True:
            body = {"table": table, "limit": limit, "cursor": cursor, **kw}
            page = self.call("dump", body)
            yield from page.get("items", [])
            cursor = page.get("cursor")
            if cursor is None:
                return


class AsyncClient(_Base):
    """The same over asyncio (zmq.asyncio)."""

    def __init__(self, endpoint: str, context: zmq.asyncio.Context | None = None, **kw):
        super().__init__(endpoint, **kw)
        self.ctx = context or zmq.asyncio.Context.instance()
        self.sock = _socket(self.ctx, endpoint, self.curve)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()

    async def call(self, op: str, body: dict | None = None, timeout: float | None = None) -> dict:
        seq, payload = self._request(op, body)
        timeout = self.timeout if timeout is None else timeout
        pause = 0.01
        for attempt in range(self.retries + 1):
            await self.sock.send(payload)
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    raw = await asyncio.wait_for(self.sock.recv(), left)
                except asyncio.TimeoutError:
                    break
                rep = P.decode_reply(raw)
                if rep.seq != seq:
                    continue
                if rep.ok:
                    return rep.body or {}
                if rep.error.code == P.BUSY and attempt < self.retries:
                    await asyncio.sleep(pause)
                    pause = min(pause * 4, 1.0)
                    break
                raise_for(rep.error)
        raise Timeout(f"{op}: no answer from {self.endpoint} in {timeout} s ({self.retries + 1} tries)")

    async def hello(self, agent: str = "client") -> dict:
        return await self.call("hello", {"agent": agent, "session": self.session, "generation": self.generation})
