"""A WebSocket session with the platform on the websockets asyncio client (the I/O edge).

:class:`WsSession` opens the connection itself in steps (DNS, TCP, then the WebSocket upgrade
over that socket) so that a failure says where it happened and the TCP connect time is
measured; it places the token where the params say, reads the welcome of any era (answering
the October handshake), and records every frame with its time. Nothing here judges: the
observation goes to :mod:`netra_nb.judge`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit, urlunsplit, parse_qsl

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from . import wire
from .frames import Normalized, normalize
from .redact import clip, redact

__all__ = ["WsFrame", "WsObservation", "WsSession", "place_token", "MAX_FRAME"]

MAX_FRAME = 1 << 20  # the client's frame size limit (websockets' default): larger frames close 1009
TEXT_KEEP = 2000  # characters of each frame kept as evidence


#: After an ``authentication_success`` frame, how long a proper welcome may still take to follow.
AUTH_WELCOME_GRACE = 0.5
#: After a first frame of no known shape, how long a known welcome may still take to follow.
UNKNOWN_WELCOME_GRACE = 1.0
#: Before our request goes out, frames that arrive within this long of each other are read first.
DRAIN_WAIT = 0.002
DRAIN_MAX = 0.25  # a server that never stops talking does not hold the request back longer
#: After an error frame, how long the server's own close may take to arrive before we close.
ERROR_CLOSE_GRACE = 1.0


@dataclass
class WsFrame:
    t: float  # seconds since the session started
    direction: str  # "sent" | "received"
    size: int
    text: str  # redacted, then truncated to TEXT_KEEP characters
    norm: Normalized


@dataclass
class WsObservation:
    url: str  # redacted
    placement: str
    started: float = 0.0  # perf_counter at start
    started_wall: float = 0.0
    duration_s: float = 0.0
    stage: str = "init"  # dns | tcp | upgrade | welcome | open | closed
    exception: BaseException | None = None
    timed_out_stage: str | None = None
    dns_s: float | None = None
    connect_s: float | None = None
    open_s: float | None = None  # from start to the upgrade's 101
    welcome_s: float | None = None
    first_event_s: float | None = None
    upgrade_status: int | None = None
    upgrade_body: str = ""
    upgrade_headers: dict[str, str] = field(default_factory=dict)
    subprotocol: str | None = None
    frames: list[WsFrame] = field(default_factory=list)
    welcome: Normalized | None = None
    close_code: int | None = None
    close_reason: str | None = None
    closed_by: str | None = None  # server | client | None (no close frame: 1006)
    first_client_message_t: float | None = None
    request_t: float | None = None  # when the request under test went out (not a handshake ack)
    bytes_sent: int = 0  # counted on the socket: the upgrade, every frame, control frames, the close
    bytes_received: int = 0
    worker: str | None = None  # the Dask worker that ran the session (a fleet on a cluster); None: this process

    @property
    def close_t(self) -> float | None:
        """When the close (or the drop) was seen, seconds since the session started."""
        return next((f.t for f in self.frames if f.direction == "close"), None)

    @property
    def opened(self) -> bool:
        return self.open_s is not None

    def received(self) -> list[WsFrame]:
        return [f for f in self.frames if f.direction == "received"]

    def events(self) -> list[str]:
        return [f.norm.event for f in self.frames if f.direction == "received"]

    def after_request(self) -> list[WsFrame]:
        """The frames received after our request went out: the only ones that can answer it."""
        if self.request_t is None:
            return []
        return [f for f in self.frames if f.direction == "received" and f.t >= self.request_t]

    def identity_claims(self) -> list[tuple[str, str]]:
        """(frame type, user id) of every frame that said whose session this is: the welcome, an authentication
        frame, an ack (the real platform's acks name the session's user in full)."""
        return [(f.norm.raw_type, f.norm.user_id) for f in self.frames
                if f.direction == "received" and f.norm.event in ("welcome", "auth_success", "ack") and f.norm.user_id]


def place_token(url: str, token: str | None, placement: str) -> tuple[str, dict[str, str], list[str]]:
    """Where the token goes: (url, extra headers, subprotocols)."""
    if not token:
        return url, {}, []
    if placement == "header":
        return url, {"Authorization": f"Bearer {token}"}, []
    if placement == "subprotocol":
        # Through the library's subprotocols argument, never a raw header (the server echoes it).
        return url, {}, [f"jwt.{token}"]
    if placement == "query":
        parts = urlsplit(url)
        query = parse_qsl(parts.query) + [("token", token)]
        return urlunsplit(parts._replace(query=urlencode(query))), {}, []
    raise ValueError(f"unknown token placement {placement!r}")


class _Counting(asyncio.Transport):
    """The socket's transport, counting every byte the connection writes (upgrade request, frames, closes)."""

    def __init__(self, transport: asyncio.Transport, conn: "_CountingConnection") -> None:
        super().__init__()
        self._t, self._conn = transport, conn

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._conn.bytes_out += len(data)
        self._t.write(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._t, name)

    def is_closing(self) -> bool:
        return self._t.is_closing()

    def close(self) -> None:
        self._t.close()

    def abort(self) -> None:
        self._t.abort()

    def write_eof(self) -> None:
        self._t.write_eof()

    def can_write_eof(self) -> bool:
        return self._t.can_write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._t.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._t.pause_reading()

    def resume_reading(self) -> None:
        self._t.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._t.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._t.get_write_buffer_size()


class _CountingConnection(ClientConnection):
    """websockets' client connection with the bytes on the wire counted where they pass (the transport),
    and the moment the server's close frame arrived (it may be read long after)."""

    bytes_in = 0
    bytes_out = 0
    close_rcvd_at: float | None = None  # perf_counter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(_Counting(transport, self))  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        super().data_received(data)
        if self.close_rcvd_at is None and self.protocol.close_rcvd is not None:
            self.close_rcvd_at = time.perf_counter()


class WsSession:
    """One WebSocket session; use as ``async with WsSession(...) as s`` (never raises on failure)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        placement: str = "header",
        *,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        max_size: int = MAX_FRAME,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        self.url, headers, self.subprotocols = place_token(url, token, placement)
        self.headers = {**headers, **(extra_headers or {})}
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_size = max_size
        self.obs = WsObservation(url=redact(self.url), placement=placement)
        self.conn: ClientConnection | None = None
        self._counter: _CountingConnection | None = None  # exists from the upgrade on, even when it is refused
        self._sock: socket.socket | None = None
        self._acked = False
        self.wire = wire.session_for(self)  # what goes on the wire, when a check is recorded (wire.jsonl)

    # -- opening ---------------------------------------------------------------------------
    async def __aenter__(self) -> "WsSession":
        await self.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _now(self) -> float:
        return time.perf_counter() - self.obs.started

    async def open(self) -> bool:
        """DNS, TCP, upgrade; True when the WebSocket is open. Failures land in ``obs``."""
        obs = self.obs
        obs.started = time.perf_counter()
        obs.started_wall = time.time()
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        deadline = obs.started + self.open_timeout
        loop = asyncio.get_running_loop()
        try:
            obs.stage = "dns"
            async with asyncio.timeout(self.open_timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            obs.dns_s = self._now()
            obs.stage = "tcp"
            t_tcp = time.perf_counter()
            last_exc: BaseException | None = None
            for family, type_, proto, _, addr in infos:
                sock = socket.socket(family, type_, proto)
                sock.setblocking(False)
                try:
                    async with asyncio.timeout(max(0.001, deadline - time.perf_counter())):
                        await loop.sock_connect(sock, addr)
                    self._sock = sock
                    break
                except BaseException as exc:  # noqa: BLE001 - try the next address
                    sock.close()
                    last_exc = exc
                    if isinstance(exc, (TimeoutError, asyncio.CancelledError)):
                        raise
            if self._sock is None:
                raise last_exc or OSError(f"no address for {host}")
            obs.connect_s = time.perf_counter() - t_tcp
            obs.stage = "upgrade"
            remaining = max(0.001, deadline - time.perf_counter())

            def counting(*args: Any, **kwargs: Any) -> _CountingConnection:
                self._counter = _CountingConnection(*args, **kwargs)
                return self._counter
            self.conn = await connect(
                self.url,
                sock=self._sock,
                additional_headers=self.headers or None,
                subprotocols=self.subprotocols or None,
                open_timeout=remaining,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                close_timeout=2,
                max_size=self.max_size,
                compression=None,
                create_connection=counting,
            )
            obs.open_s = self._now()
            obs.upgrade_status = self.conn.response.status_code if self.conn.response else 101
            obs.subprotocol = self.conn.subprotocol
            if self.conn.response is not None:
                obs.upgrade_headers = {k.lower(): redact(v) for k, v in self.conn.response.headers.raw_items()}
            obs.stage = "welcome"
            self._count()
            if self.wire:
                self.wire.upgrade(self)
            return True
        except TimeoutError as exc:
            obs.timed_out_stage = obs.stage
            obs.exception = exc
        except InvalidStatus as exc:
            obs.exception = exc
            response = exc.response
            obs.upgrade_status = response.status_code
            obs.upgrade_body = clip(bytes(response.body or b"").decode("utf-8", "replace"), TEXT_KEEP)
            obs.upgrade_headers = {k.lower(): redact(v) for k, v in response.headers.raw_items()}
        except Exception as exc:  # noqa: BLE001 - every failure is evidence
            obs.exception = exc
        self._count()
        obs.duration_s = self._now()
        if self._sock is not None and self.conn is None:
            self._sock.close()
        if self.wire:
            self.wire.upgrade(self)
        return False

    def _count(self) -> None:
        """Bytes on the socket so far (the connection counts them at the transport)."""
        if self._counter is not None:
            self.obs.bytes_sent, self.obs.bytes_received = self._counter.bytes_out, self._counter.bytes_in

    # -- talking ---------------------------------------------------------------------------
    async def send(self, message: Any, *, request: bool = False) -> bool:
        """Send a JSON object (or raw text); False if the connection is gone.

        ``request`` marks the message under test: its time is what agent latencies count from.
        """
        if self.conn is None:
            return False
        if request:
            # Frames already waiting arrived before the request: read them first, so that their times say so.
            drain_end = time.perf_counter() + DRAIN_MAX
            while time.perf_counter() < drain_end and await self.receive(DRAIN_WAIT) is not None:
                pass
            if self.obs.close_code is not None:
                return False
        text = message if isinstance(message, str) else json.dumps(message)
        t = self._now()
        try:
            await self.conn.send(text)
        except ConnectionClosed as exc:
            self._closed(exc)
            return False
        size = len(text.encode())
        self._count()
        self.obs.frames.append(WsFrame(t, "sent", size, clip(text, TEXT_KEEP), normalize(text)))
        if self.wire:
            self.wire.frame("sent", t, text)
        if self.obs.first_client_message_t is None:
            self.obs.first_client_message_t = t
        if request and self.obs.request_t is None:
            self.obs.request_t = t
        return True

    async def receive(self, timeout: float) -> WsFrame | None:
        """The next frame within ``timeout`` seconds; None on timeout or close (see ``obs``)."""
        if self.conn is None or self.obs.close_code is not None:
            return None
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                payload = await self.conn.recv()
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            self._closed(exc)
            return None
        t = self._now()
        if isinstance(payload, bytes):
            size = len(payload)
            text = f"<binary {size} bytes>"
        else:
            size = len(payload.encode())
            text = clip(payload, TEXT_KEEP)
        norm = normalize(payload)
        self._count()
        frame = WsFrame(t, "received", size, text, norm)
        self.obs.frames.append(frame)
        if self.wire:
            self.wire.frame("received", t, payload)
        if norm.event == "ping" and self.conn is not None:
            # Early-era servers ping with JSON frames and expect a JSON pong.
            await self.send({"type": "pong"})
        elif norm.event == "handshake_response" and not self._acked:
            # October: acknowledge the server's handshake whenever it arrives.
            self._acked = True
            body = norm.data if isinstance(norm.data, dict) else {}
            await self.send({"type": "handshake_acknowledged", "thread_id": body.get("thread_id") or _get(payload, "thread_id")})
        return frame

    async def receive_until(self, stop: Callable[[WsFrame], bool], deadline: float) -> WsFrame | None:
        """Read frames until one satisfies ``stop``; None if the deadline (perf_counter) passes or it closes."""
        while True:
            frame = await self.receive(deadline - time.perf_counter())
            if frame is None:
                return None
            if stop(frame):
                return frame

    async def welcome(self, timeout: float, handshake_grace: float = 0.05) -> bool:
        """Read the welcome of any era; answer the October handshake when the server starts one.

        Keepalive frames before the welcome are read past. An ``authentication_success`` frame may come
        before the welcome or instead of it: a welcome is awaited a moment longer, else it stands in.
        A first frame of no known shape shortens the wait (the server may welcome in a shape we do not
        know; the caller goes on and the record quotes the frame). True when a welcome came and the
        session is still open; an open session without a welcome stays usable (``obs.stage == "open"``).
        """
        obs = self.obs
        if self.conn is None:
            return False
        deadline = time.perf_counter() + timeout
        auth: WsFrame | None = None
        while True:
            frame = await self.receive(deadline - time.perf_counter())
            if frame is None:
                break
            event = frame.norm.event
            if event == "welcome":
                obs.welcome, obs.welcome_s = frame.norm, frame.t
                break
            if event == "error":
                break
            if event == "auth_success" and auth is None:
                auth = frame
                deadline = min(deadline, time.perf_counter() + AUTH_WELCOME_GRACE)
            elif event in ("other", "invalid"):
                deadline = min(deadline, time.perf_counter() + UNKNOWN_WELCOME_GRACE)
        if obs.welcome is None and auth is not None:
            obs.welcome, obs.welcome_s = auth.norm, auth.t
        if obs.welcome is not None and obs.close_code is None:
            # October: handshake_response follows the welcome at once (receive() acknowledges it);
            # a short grace lets it arrive, then wait for handshake_complete before the request.
            nxt = await self.receive(min(handshake_grace, deadline - time.perf_counter()))
            if nxt is not None and nxt.norm.event == "handshake_response":
                await self.receive_until(lambda f: f.norm.event == "handshake_complete",
                                         min(deadline, time.perf_counter() + 2))
        if obs.close_code is None:
            obs.stage = "open"
        return obs.welcome is not None and obs.close_code is None

    async def ping_probe(self, timeout: float) -> float | None:
        """A protocol-level ping: the round trip in seconds, or None when no pong came.

        Tells a server that is alive but silent (the pong comes back) from one that stopped
        reading or is blocked: then the client closes with 1011, as websockets' keepalive does
        (the close frame is sent; the socket is dropped without waiting for an answer).
        """
        if self.conn is None or self.obs.close_code is not None:
            return None
        t = time.perf_counter()
        try:
            waiter = await self.conn.ping()
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            if self.wire:
                self.wire.ping(t - self.obs.started, None)
            reason = f"keepalive ping timeout: no pong within {timeout:.1f}s"
            try:
                async with asyncio.timeout(0.5):
                    await self.conn.close(1011, reason)
            except Exception:  # noqa: BLE001 - the frame is written; the server may never answer
                pass
            self.conn.transport.abort()
            self._record_close()
            return None
        except ConnectionClosed:
            self._record_close()
            return None
        finally:
            self._count()
        if self.wire:
            self.wire.ping(t - self.obs.started, time.perf_counter() - t)
        return time.perf_counter() - t

    # -- closing ---------------------------------------------------------------------------
    def _record_close(self) -> None:
        """Record who closed, with which code and reason, and when: from the connection's own state
        (the server's close frame may have arrived while nothing was reading)."""
        obs = self.obs
        if obs.close_code is not None or self.conn is None:
            return
        proto = self.conn.protocol
        rcvd, sent = proto.close_rcvd, proto.close_sent
        t = self._now()
        # The server's close is the one that says something when it came first, or when it crossed our normal
        # close with a code of its own (an error close sent while we were closing).
        crossed = rcvd is not None and sent is not None and sent.code == 1000 and rcvd.code not in (1000, 1001)
        if rcvd is not None and (sent is None or proto.close_rcvd_then_sent or crossed):
            obs.close_code, obs.close_reason, obs.closed_by = rcvd.code, rcvd.reason, "server"
            if self._counter is not None and self._counter.close_rcvd_at is not None:
                t = self._counter.close_rcvd_at - obs.started
        elif sent is not None:
            obs.close_code, obs.close_reason, obs.closed_by = sent.code, sent.reason, "client"
        elif proto.state.name == "CLOSED" or self.conn.transport.is_closing():
            obs.close_code, obs.close_reason, obs.closed_by = 1006, "connection dropped without a close frame", None
        else:
            return
        obs.stage = "closed"
        who = obs.closed_by or "nobody"
        obs.frames.append(WsFrame(t, "close", 0, f"{obs.close_code} {obs.close_reason or ''}".strip() + f" ({who})",
                                  Normalized("other", "close")))
        obs.frames.sort(key=lambda f: f.t)

    def _closed(self, exc: ConnectionClosed) -> None:
        self._record_close()

    async def close(self) -> None:
        """Close from the client side (1000, "netra-nb check done") unless the connection is already ending.

        The close is recorded when it was not ours: the server's (even one that arrived while nothing
        was reading), a drop, or a client close other than this normal end of a check.
        """
        obs = self.obs
        refused = any(f.norm.event == "error" and (obs.request_t is None or f.t < obs.request_t) for f in obs.received())
        if self.conn is not None and obs.close_code is None and refused:
            # An error frame before our request refuses the session, and a server closes right after it: let its
            # close arrive before ours (an error frame that answers our request is a reply, not a refusal).
            try:
                async with asyncio.timeout(ERROR_CLOSE_GRACE):
                    await self.conn.wait_closed()
            except Exception:  # noqa: BLE001 - it did not close: we will
                pass
        if self.conn is not None and obs.close_code is None:
            proto = self.conn.protocol
            if proto.close_rcvd is None and proto.close_sent is None and not self.conn.transport.is_closing():
                try:
                    async with asyncio.timeout(3):
                        await self.conn.close(1000, "netra-nb check done")
                except Exception:  # noqa: BLE001
                    pass
                crossed = proto.close_rcvd is not None and proto.close_rcvd.code not in (1000, 1001)
                ours = proto.close_sent is not None and proto.close_sent.code == 1000 and not proto.close_rcvd_then_sent
                if crossed or not ours:
                    self._record_close()
            else:
                try:
                    async with asyncio.timeout(1):
                        await self.conn.wait_closed()
                except Exception:  # noqa: BLE001
                    pass
                self._record_close()
        self._count()
        if not obs.duration_s:
            obs.duration_s = self._now()
        if self.wire:
            self.wire.end(self)


def _get(text: str, key: str) -> Any:
    try:
        value = json.loads(text)
        return value.get(key) if isinstance(value, dict) else None
    except ValueError:
        return None
