"""Client-side helpers for the reference-platform tests: real servers on loopback, plain httpx and
websockets, no mocks.  Test modules import these by name; the fixtures (serve, shared, mid_server)
are in this folder's conftest.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable, Iterable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from netra_nb.refserver import RefServer, ServerConfig
from netra_nb.refserver.tokens import mint_access_token

FAST_OFFSETS = (0.01, 0.02, 0.03, 0.04, 0.05)
FIVE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
EMAIL = "alice@netra.test"
USER_ID = "e2e-alice"


def make_config(**kwargs: Any) -> ServerConfig:
    kwargs.setdefault("agent_event_offsets", FAST_OFFSETS)
    kwargs.setdefault("fault_delay", 0.2)
    kwargs.setdefault("shutdown_timeout", 0.5)
    return ServerConfig(**kwargs)


def token(srv: RefServer, email: str = EMAIL, **kwargs: Any) -> str:
    return mint_access_token(srv.config.jwt_secret, email, **kwargs)


def bearer(srv: RefServer, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(srv, **kwargs)}"}


def run(coro):
    return asyncio.run(coro)


def open_ws(srv: RefServer, *, path: str = "/ws", auth: str = "header", **kwargs: Any):
    """connect() with a valid token in the given placement (header | query | subprotocol | none)."""
    url = srv.base_url.replace("http://", "ws://") + path
    kwargs.setdefault("open_timeout", 3)
    if auth == "header":
        kwargs["additional_headers"] = bearer(srv)
    elif auth == "query":
        url += "?token=" + token(srv)
    elif auth == "subprotocol":
        kwargs["subprotocols"] = ["jwt." + token(srv)]
    return connect(url, **kwargs)


#: Frames a server sends to keep a session alive, whatever the client is waiting for.
KEEPALIVE = frozenset({"heartbeat", "ping", "pong", "heartbeat_ack"})


async def recv_json(ws: ClientConnection, timeout: float = 2.0, *, keep: Iterable[str] = ()) -> dict:
    """The next frame that is not a keepalive frame (heartbeat, ping, pong, heartbeat_ack), parsed; the
    keepalive types named in ``keep`` count as frames.  Keepalive frames may arrive at any moment (every
    0.1 s on some test servers), so "the next frame" must never be one of them by accident.  ``timeout``
    bounds the whole wait, skipped frames included."""
    skip = KEEPALIVE - set(keep)
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), max(0.0, deadline - time.monotonic())))
        if not (isinstance(frame, dict) and frame.get("type") in skip):
            return frame


async def closed(ws: ClientConnection, timeout: float = 2.0) -> ConnectionClosed:
    """Wait, at most ``timeout``, for the server to close the session; keepalive frames may come first,
    any other frame fails the test.  The ConnectionClosed the client raised."""
    deadline = time.monotonic() + timeout
    try:
        frame = await recv_json(ws, max(0.0, deadline - time.monotonic()))
    except ConnectionClosed as exc:
        return exc
    raise AssertionError(f"a frame instead of the close: {frame}")


async def welcome(ws: ClientConnection, era: str = "mid") -> list[dict]:
    """Read the unprompted welcome frames of an era."""
    count = {"early": 2, "mid": 1, "october": 2}[era]
    return [await recv_json(ws) for _ in range(count)]


def short(user_id: str) -> str:
    """The user id as the real mid/october welcome shows it."""
    return user_id[:8] + "..."


def event_name(frame: dict) -> str | None:
    """The agent event a frame carries, across eras (early flat, october wrapped)."""
    if "type" not in frame:
        return frame.get("event")
    if frame["type"] in ("system_message", "agent_progress") and isinstance(frame.get("data"), dict):
        return frame["data"].get("event")
    return frame["type"]


def event_body(frame: dict) -> dict:
    """The dict that holds run_id/user_id for an event frame, across eras."""
    if frame.get("type") in ("system_message", "agent_progress"):
        return frame["data"]
    return frame


async def collect(
    ws: ClientConnection,
    stop: Callable[[Any], bool],
    timeout: float = 3.0,
) -> list[Any]:
    """Frames (parsed JSON, or the raw text when not JSON) until stop(frame) or the timeout."""
    frames: list[Any] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return frames
        try:
            raw = await asyncio.wait_for(ws.recv(), left)
        except asyncio.TimeoutError:
            return frames
        try:
            frame: Any = json.loads(raw)
        except ValueError:
            frame = raw
        frames.append(frame)
        if stop(frame):
            return frames


def is_event(name: str) -> Callable[[Any], bool]:
    return lambda f: isinstance(f, dict) and event_name(f) == name


def agent_events(frames: list[Any]) -> list[str]:
    return [event_name(f) for f in frames if isinstance(f, dict) and event_name(f) in FIVE + ["agent_error"]]

