"""Small implementations of the platform's contract, written for one behaviour each (not the reference platform).

The kit is judged against servers nobody here wrote; these stand-ins vary the shapes the contract allows and
misbehave the ways real servers did, each in a few lines a test can read:

* :class:`WsStub` — a real WebSocket server (the websockets library's) whose session is an async function the
  test writes (``async def session(ws, me): ...``, ``me`` being the user id the client's token names); it can
  refuse the upgrade per path (``refuse={"/ws": (403, b"")}``) and answer plain HTTP GETs per path.
* :class:`HttpStub` — a raw HTTP/1.1 server with a route table ``{(method, path): Answer(...)}``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from hostile import _LoopThread

FIVE = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")


def token_sub(token: str | None) -> str | None:
    """The ``sub`` of a JWT, unverified (a stub that reads the token reads it this way)."""
    if not token or token.count(".") != 2:
        return None
    part = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, TypeError):
        return None
    return str(claims.get("sub")) if isinstance(claims, dict) and claims.get("sub") else None


def request_token(ws: ServerConnection) -> str | None:
    """The token a client sent: the Authorization header, a ``jwt.`` subprotocol or the ``?token=`` query."""
    return token_of(ws.request)


def token_of(request: Any) -> str | None:
    """:func:`request_token` of an opening handshake request (before the accept)."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    for proto in request.headers.get_all("Sec-WebSocket-Protocol"):
        for item in proto.split(","):
            item = item.strip()
            if item.startswith("jwt."):
                return item[4:]
    query = parse_qs(urlsplit(request.path).query)
    return (query.get("token") or [None])[0]


def event(kind: str, run: str | None, user: str | None, **data: Any) -> dict[str, Any]:
    """An agent event in the mid-September shape (ISO timestamp, payload under ``data``)."""
    frame: dict[str, Any] = {"type": kind, "run_id": run, "user_id": user, "agent_name": "triage",
                             "timestamp": "2025-09-15T10:00:00+00:00", "data": data}
    if kind in ("tool_executing", "tool_completed"):
        frame["tool_name"] = "data_analyzer"
    return frame


def welcome(user: str | None, *, shorten: bool = True) -> dict[str, Any]:
    """The mid-September welcome: the user id shortened to its first 8 characters plus ``...``."""
    shown = (user[:8] + "...") if (user and shorten) else user
    return {"type": "connection_established", "timestamp": time.time(), "server_id": None, "correlation_id": None,
            "data": {"mode": "main", "user_id": shown, "connection_id": "main_stub", "golden_path_events": list(FIVE),
                     "features": {"agents": True}}}


def request_run_id(message: Any) -> str | None:
    """The run id the client put in its request (top level or under payload)."""
    if not isinstance(message, dict):
        return None
    payload = message.get("payload") if isinstance(message.get("payload"), dict) else {}
    return payload.get("run_id") or message.get("run_id")


async def golden(ws: ServerConnection, run: str | None, user: str | None, *, gap: float = 0.02,
                 result: Any = None, **completed: Any) -> None:
    """The five events of one run, ``gap`` seconds apart; ``agent_completed`` with ``result`` (default: a real
    looking analysis) and any other ``data`` fields given."""
    for kind in FIVE:
        await asyncio.sleep(gap)
        if kind == "agent_completed":
            data = {"status": "completed", "execution_time_ms": 120.0, **completed}
            data["result"] = result if result is not None else {
                "summary": "3 anomalies in the nightly load; the 02:00 batch doubles the write latency",
                "recommendations": ["Move the batch to 04:00", "Add an index on events(created_at)"]}
            await ws.send(json.dumps(event(kind, run, user, **data)))
        else:
            await ws.send(json.dumps(event(kind, run, user)))


Session = Callable[[ServerConnection, "str | None"], Awaitable[None]]


class WsStub(_LoopThread):
    """A WebSocket server on loopback whose session the test writes.

    ``session(ws, me)`` runs after the accept (``me``: the ``sub`` of the client's token, or None). ``refuse``
    maps a path to ``(status, body)`` answered instead of the upgrade; ``get`` maps a path to ``(status, body)``
    answered to a plain HTTP GET; any other path serves sessions. ``tokenless`` (status, body) is answered to an
    upgrade that carries no token, at any path (a route that needs a token before it accepts).
    """

    def __init__(self, session: Session, *, refuse: dict[str, tuple[int, bytes]] | None = None,
                 get: dict[str, tuple[int, bytes]] | None = None, serve_paths: tuple[str, ...] | None = None,
                 tokenless: tuple[int, bytes] | None = None) -> None:
        super().__init__()
        self.session = session
        self.tokenless = tokenless
        self.refuse = refuse or {}
        self.get = get or {}
        self.serve_paths = serve_paths  # None: every path not refused
        self.seen: list[str] = []  # the paths of every request, in order
        self.handlers: set[asyncio.Task] = set()
        self.connections: list[ServerConnection] = []

    def _process(self, conn: ServerConnection, request: Any) -> Response | None:
        path = urlsplit(request.path).path
        self.seen.append(path)
        upgrade = "websocket" in request.headers.get("Upgrade", "").lower()
        if not upgrade:
            status, body = self.get.get(path, (404, b'{"detail":"Not Found"}'))
            return _response(status, body, "application/json")
        if path in self.refuse:
            status, body = self.refuse[path]
            return _response(status, body, "application/json" if body else None)
        if self.serve_paths is not None and path not in self.serve_paths:
            return _response(403, b"", None)
        if self.tokenless is not None and token_of(request) is None:
            status, body = self.tokenless
            return _response(status, body, "application/json" if body else None)
        return None

    async def _start(self):
        self.server = await serve(self._handle, "127.0.0.1", 0, process_request=self._process, max_size=None,
                                  select_subprotocol=_echo_jwt)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _stop(self):
        for task in self.handlers:  # a session may sleep long after its client left: end it
            task.cancel()
        for conn in self.connections:  # and a client that never closed does not hold the server
            conn.transport.abort()
        self.server.close()
        await asyncio.wait_for(self.server.wait_closed(), 10)

    async def _handle(self, ws: ServerConnection) -> None:
        self.handlers.add(asyncio.current_task())
        self.connections.append(ws)
        try:
            await self.session(ws, token_sub(request_token(ws)))
        except Exception:  # noqa: BLE001 - the client went away; a stub does not care
            pass


def _echo_jwt(conn: ServerConnection, offered: Any) -> Any:
    return next((p for p in offered if p.startswith("jwt.")), None)


def _response(status: int, body: bytes, content_type: str | None) -> Response:
    headers = Headers([("Content-Length", str(len(body)))])
    if content_type:
        headers["Content-Type"] = content_type
    return Response(status, HTTPStatus(status).phrase, headers, body)


async def read_request(ws: ServerConnection) -> Any:
    """The next client message that is not a ping/pong/heartbeat, parsed (None for text that is not JSON)."""
    async for message in ws:
        try:
            data = json.loads(message)
        except (ValueError, TypeError):
            return None
        if isinstance(data, dict) and data.get("type") in ("pong", "heartbeat_ack", "handshake_acknowledged"):
            continue
        if isinstance(data, dict) and data.get("type") == "ping":
            await ws.send(json.dumps({"type": "pong", "timestamp": time.time()}))
            continue
        return data
    return None


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # bytes, str, or JSON-able
    delay: float = 0.0
    content_type: str = "application/json"


class HttpStub(_LoopThread):
    """A raw HTTP/1.1 server on loopback: ``routes`` maps ``(method, path)`` to an :class:`Answer` (or a function of
    the request body returning one); anything else is 404."""

    def __init__(self, routes: dict[tuple[str, str], Answer | Callable[[bytes], Answer]]) -> None:
        super().__init__()
        self.routes = routes
        self.requests: list[tuple[str, str, bytes]] = []

    async def _start(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _stop(self):
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                path = urlsplit(target).path
                self.requests.append((method, path, body))
                route = self.routes.get((method, path), Answer(404, {"detail": "Not Found"}))
                answer = route(body) if callable(route) else route
                if answer.delay:
                    await asyncio.sleep(answer.delay)
                raw = answer.body if isinstance(answer.body, bytes) else (
                    answer.body.encode() if isinstance(answer.body, str) else json.dumps(answer.body).encode())
                writer.write(f"HTTP/1.1 {answer.status} {HTTPStatus(answer.status).phrase}\r\n"
                             f"Content-Type: {answer.content_type}\r\nContent-Length: {len(raw)}\r\n\r\n".encode() + raw)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError, ValueError):
            pass
        finally:
            writer.close()
