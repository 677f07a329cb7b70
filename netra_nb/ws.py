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

from .frames import Normalized, normalize
from .redact import clip, redact

__all__ = ["WsFrame", "WsObservation", "WsSession", "place_token", "MAX_FRAME"]

MAX_FRAME = 1 << 20  # the client's frame size limit (websockets' default): larger frames close 1009
TEXT_KEEP = 2000  # characters of each frame kept as evidence


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
    bytes_sent: int = 0
    bytes_received: int = 0

    @property
    def opened(self) -> bool:
        return self.open_s is not None

    def received(self) -> list[WsFrame]:
        return [f for f in self.frames if f.direction == "received"]

    def events(self) -> list[str]:
        return [f.norm.event for f in self.frames if f.direction == "received"]


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


def _handshake_bytes(path: str, headers: dict[str, str], subprotocols: list[str], host: str) -> int:
    # The upgrade request as the library writes it: request line, Host, Upgrade, Connection,
    # Sec-WebSocket-Key/Version/Extensions, User-Agent, plus ours.
    size = len(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n") + 190
    size += sum(len(k) + len(v) + 4 for k, v in headers.items())
    if subprotocols:
        size += len("Sec-WebSocket-Protocol: \r\n") + len(", ".join(subprotocols))
    return size + 2


def _frame_overhead(size: int, masked: bool) -> int:
    return 2 + (2 if 126 <= size < 65536 else 8 if size >= 65536 else 0) + (4 if masked else 0)


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
        self._sock: socket.socket | None = None
        self._acked = False

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
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            obs.bytes_sent += _handshake_bytes(path, self.headers, self.subprotocols, parts.netloc)
            remaining = max(0.001, deadline - time.perf_counter())
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
            )
            obs.open_s = self._now()
            obs.upgrade_status = self.conn.response.status_code if self.conn.response else 101
            obs.subprotocol = self.conn.subprotocol
            if self.conn.response is not None:
                obs.upgrade_headers = {k.lower(): redact(v) for k, v in self.conn.response.headers.raw_items()}
                obs.bytes_received += 20 + sum(len(k) + len(v) + 4 for k, v in self.conn.response.headers.raw_items())
            obs.stage = "welcome"
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
            obs.bytes_received += 20 + sum(len(k) + len(v) + 4 for k, v in response.headers.raw_items())
            obs.bytes_received += len(response.body or b"")
        except Exception as exc:  # noqa: BLE001 - every failure is evidence
            obs.exception = exc
        obs.duration_s = self._now()
        if self._sock is not None and self.conn is None:
            self._sock.close()
        return False

    # -- talking ---------------------------------------------------------------------------
    async def send(self, message: Any, *, request: bool = False) -> bool:
        """Send a JSON object (or raw text); False if the connection is gone.

        ``request`` marks the message under test: its time is what agent latencies count from.
        """
        if self.conn is None:
            return False
        text = message if isinstance(message, str) else json.dumps(message)
        t = self._now()
        try:
            await self.conn.send(text)
        except ConnectionClosed as exc:
            self._closed(exc)
            return False
        size = len(text.encode())
        self.obs.bytes_sent += size + _frame_overhead(size, masked=True)
        self.obs.frames.append(WsFrame(t, "sent", size, clip(text, TEXT_KEEP), normalize(text)))
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
            norm = normalize(payload)
        else:
            size = len(payload.encode())
            text = clip(payload, TEXT_KEEP)
            norm = normalize(payload)
        self.obs.bytes_received += size + _frame_overhead(size, masked=False)
        frame = WsFrame(t, "received", size, text, norm)
        self.obs.frames.append(frame)
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
        """Read the welcome of any era; answer the October handshake when the server starts one."""
        obs = self.obs
        if self.conn is None:
            return False
        deadline = time.perf_counter() + timeout
        frame = await self.receive_until(lambda f: f.norm.event in ("welcome", "error"), deadline)
        if frame is None or frame.norm.event != "welcome":
            return False
        obs.welcome = frame.norm
        obs.welcome_s = frame.t
        # October: handshake_response follows the welcome at once (receive() acknowledges it);
        # a short grace lets it arrive, then wait for handshake_complete before the request.
        nxt = await self.receive(min(handshake_grace, deadline - time.perf_counter()))
        if nxt is not None and nxt.norm.event == "handshake_response":
            await self.receive_until(lambda f: f.norm.event == "handshake_complete", min(deadline, time.perf_counter() + 2))
        obs.stage = "open"
        return obs.close_code is None

    async def ping_probe(self, timeout: float) -> float | None:
        """A protocol-level ping: the round trip in seconds, or None when no pong came.

        Tells a server that is alive but silent (the pong comes back) from one that stopped
        reading or is blocked: then the client closes with 1011, as a keepalive timeout would.
        """
        if self.conn is None or self.obs.close_code is not None:
            return None
        t = time.perf_counter()
        try:
            waiter = await self.conn.ping()
            self.obs.bytes_sent += 6 + 4
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            obs = self.obs
            obs.close_code, obs.closed_by = 1011, "client"
            obs.close_reason = f"keepalive ping timeout: no pong within {timeout:.1f}s"
            obs.stage = "closed"
            obs.frames.append(WsFrame(self._now(), "close", 0, f"1011 {obs.close_reason} (client)",
                                      Normalized("other", "close")))
            self.conn.transport.abort()
            return None
        except ConnectionClosed as exc:
            self._closed(exc)
            return None
        self.obs.bytes_received += 6
        return time.perf_counter() - t

    # -- closing ---------------------------------------------------------------------------
    def _closed(self, exc: ConnectionClosed) -> None:
        obs = self.obs
        if obs.close_code is not None:
            return
        obs.stage = "closed"
        rcvd, sent = exc.rcvd, exc.sent
        if rcvd is not None and (sent is None or exc.rcvd_then_sent):
            obs.close_code, obs.close_reason, obs.closed_by = rcvd.code, rcvd.reason, "server"
        elif sent is not None:
            obs.close_code, obs.close_reason, obs.closed_by = sent.code, sent.reason, "client"
        else:
            obs.close_code, obs.close_reason, obs.closed_by = 1006, "connection dropped without a close frame", None
        obs.bytes_received += 4 + len(obs.close_reason or "") if rcvd is not None else 0
        obs.frames.append(WsFrame(self._now(), "close", 0, f"{obs.close_code} {obs.close_reason or ''}".strip(),
                                  Normalized("other", "close")))

    async def close(self) -> None:
        """Close from the client side (1000) unless the server already closed."""
        obs = self.obs
        if self.conn is not None and obs.close_code is None:
            try:
                async with asyncio.timeout(3):
                    await self.conn.close(1000, "netra-nb check done")
            except Exception:  # noqa: BLE001
                pass
            if obs.close_code is None:
                obs.bytes_sent += 4 + len("netra-nb check done") + 4
        elif self.conn is not None:
            try:
                async with asyncio.timeout(1):
                    await self.conn.wait_closed()
            except Exception:  # noqa: BLE001
                pass
        if not obs.duration_s:
            obs.duration_s = self._now()


def _get(text: str, key: str) -> Any:
    try:
        value = json.loads(text)
        return value.get(key) if isinstance(value, dict) else None
    except ValueError:
        return None
