"""The WebSocket side of the reference platform: the upgrade, the three auth placements, the session
flow of every era, agent runs, and the WebSocket and agent fault profiles.

Performance matters here (500-1000 concurrent sessions on two cores): one task per session, one
heartbeat task per session, one task per agent run; frames are serialized once; nothing is logged
per frame.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from .config import AGENT_EVENTS
from .tokens import TokenError, find_token, validate_token

if TYPE_CHECKING:  # pragma: no cover
    from .app import AppState

__all__ = ["websocket_endpoint", "deny", "PROTOCOL_SCOPE_KEY"]

#: The outermost ASGI wrapper stores uvicorn's per-connection protocol object here; the
#: transport-level faults (1006 drop, ignore pings) need its ``.transport``.
PROTOCOL_SCOPE_KEY = "netra.protocol"

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_GOLDEN = list(AGENT_EVENTS)
_TOOL = "data_analyzer"
_FOREIGN_USER = "e2e-other-user"
#: The user every session belongs to in DEMO_MODE (real beta-12/14/17 with DEMO_MODE at its default).
DEMO_USER = "demo-user-001"
#: ``features`` of the real mid-era welcome (beta-12/14 sent exactly these).
_FEATURES = {
    "full_business_logic": True,
    "golden_path_integration": True,
    "cloud_run_optimized": True,
    "emergency_fallback": True,
    "agent_orchestration": True,
}
#: Client message types the real backend routes to a handler; ws_swallow_all / ws_connect_welcome
#: swallow exactly these (an unknown type still gets its ack, invalid JSON its error frame).
_ROUTED_TYPES = frozenset({
    "ping", "pong", "heartbeat", "heartbeat_ack", "handshake_acknowledged",
    "start_agent", "execute_agent", "user_message", "message", "chat_message",
})


def _iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _hex(n: int = 16) -> str:
    return uuid.uuid4().hex[:n]


def short_user_id(user_id: str) -> str:
    """The user id as the real welcome shows it: its first 8 characters plus ``...``."""
    return user_id[:8] + "..." if user_id else "unknown"


def server_message(msg_type: str, data: dict) -> dict:
    """A frame in the real backend's ``create_server_message`` envelope: the payload under ``data``, a
    float epoch ``timestamp``, ``server_id`` and ``correlation_id`` (null)."""
    return {"type": msg_type, "data": data, "timestamp": time.time(), "server_id": None, "correlation_id": None}


_AGENT_TYPES = frozenset({"start_agent", "execute_agent", "user_message", "message", "chat_message"})


def _error_message(code: str, text: str) -> dict:
    """A flat error frame as the real backend's ``create_error_message`` makes it."""
    return {
        "type": "error_message",
        "error_code": code,
        "error_message": text,
        "details": {},
        "timestamp": time.time(),
        "recovery_suggestions": None,
    }


def _exception_frame() -> dict:
    """The frame beta-17 sent on every connection before closing 1011 (tests/realshapes/beta17_error_frame_1011)."""
    return server_message(
        "error_message",
        {
            "error_code": "CONNECTION_ERROR",
            "error_message": "Connection error in main mode",
            "details": {"error_type": "RecursionError", "mode": "main"},
            "timestamp": _iso(),
        },
    )


# --------------------------------------------------------------------------------------- upgrade


async def websocket_endpoint(websocket: WebSocket) -> None:
    """Starlette endpoint for ``/ws`` and ``/api/v1/websocket``."""
    state: AppState = websocket.app.state.netra  # type: ignore[attr-defined]
    cfg = state.config
    faults = state.fault_set

    if "ws_500_upgrade" in faults:
        await deny(websocket, JSONResponse({"detail": "Internal Server Error"}, 500))
        return
    if "ws_503_upgrade" in faults:
        await deny(websocket, JSONResponse({"status": "unhealthy", "message": "Service Unavailable"}, 503))
        return
    if "ws_handshake_hang" in faults:
        await _wait_disconnect(websocket, state)
        return

    token, placement, echo = find_token(websocket.headers, websocket.scope.get("subprotocols") or (), websocket.query_params)

    if "ws_error_frame_exception" in faults:
        # beta-17: the connection handler raised (RecursionError) whatever the token.
        await websocket.accept(subprotocol=echo)
        await websocket.send_text(_dumps(_exception_frame()))
        await websocket.close(1011, "main mode error")
        return

    if "ws_auth_failed_1008" in faults:
        # Auth moved behind the accept: the session is refused with a frame and 1008.
        await websocket.accept(subprotocol=echo)
        await websocket.send_text(
            _dumps(
                {
                    "type": "error",
                    "error_code": "AUTH_FAILED",
                    "message": "WebSocket authentication failed: token could not be validated",
                    "timestamp": time.time(),
                }
            )
        )
        await websocket.close(1008, "Authentication failed")
        return

    secret = cfg.jwt_secret + ".rotated" if "ws_403_secret_mismatch" in faults else cfg.jwt_secret
    user_id: str | None = None
    if "ws_token_ignored" in faults:
        user_id = DEMO_USER  # DEMO_MODE: the token is never looked at
    elif "ws_query_token_ignored" in faults:
        # beta-14 with demo mode off: the query is never read, and whatever does not validate falls
        # back to an anonymous "relaxed" user instead of a refusal
        claims = None
        if token is not None and placement != "query":
            try:
                claims = validate_token(token, secret)
            except TokenError:
                claims = None
        user_id = str(claims.get("sub") or claims.get("user_id")) if claims else "relaxed_" + _hex(8)
    elif token is None:
        await _deny_auth(websocket, "no token (send Authorization: Bearer, a jwt.<token> subprotocol or ?token=)")
        return
    else:
        try:
            claims = validate_token(token, secret)
        except TokenError as exc:
            await _deny_auth(websocket, str(exc))
            return
        user_id = str(claims.get("sub") or claims.get("user_id"))

    subprotocol = echo
    if "ws_bad_subprotocol" in faults:
        offered = websocket.scope.get("subprotocols") or ()
        subprotocol = "jwt-auth" if "jwt-auth" not in offered else "netra.v2"

    await websocket.accept(subprotocol=subprotocol)
    state.active_sessions += 1
    try:
        await Session(websocket, state, user_id).run()
    finally:
        state.active_sessions -= 1


async def _deny_auth(websocket: WebSocket, why: str) -> None:
    """Refuse before the accept with HTTP 403, as the real backend does; the JSON body names the
    credentials (a missing route answers a bare 403 instead)."""
    await deny(websocket, JSONResponse({"detail": f"WebSocket authentication failed: {why}"}, status_code=403))


async def deny(websocket: WebSocket, response: Response) -> None:
    """Answer the upgrade with a plain HTTP response (the ASGI "websocket.http.response" extension)."""
    await websocket.send_denial_response(response)
    # uvicorn's websockets-sansio protocol (0.54) sends the response but leaves its
    # handshake_complete flag unset, so it logs "ASGI callable returned without completing
    # handshake." for every denial.  The response is complete: tell it so.
    proto = websocket.scope.get(PROTOCOL_SCOPE_KEY)
    if getattr(proto, "initial_response", None) is not None and hasattr(proto, "handshake_complete"):
        proto.handshake_complete = True


async def _wait_disconnect(websocket: WebSocket, state: "AppState") -> None:
    """Never answer the upgrade; return when the client goes away or the server stops."""
    waiter = asyncio.ensure_future(_until_disconnect(websocket.receive))
    try:
        while not waiter.done() and not state.stopping:
            await asyncio.wait({waiter}, timeout=0.25)
    finally:
        waiter.cancel()
    if not waiter.done() or waiter.cancelled():  # the server stops: answer, so uvicorn logs nothing
        try:
            await deny(websocket, JSONResponse({"status": "unhealthy", "message": "Shutting down"}, 503))
        except Exception:
            pass


async def _until_disconnect(receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return


# --------------------------------------------------------------------------------------- session


class Session:
    __slots__ = (
        "ws",
        "state",
        "cfg",
        "faults",
        "era",
        "user_id",
        "connection_id",
        "thread_id",
        "handshake_run_id",
        "loop",
        "last_sent",
        "last_recv",
        "closed",
        "runs",
        "got_message",
        "swallow",
        "messages_processed",
        "agent_requests",
    )

    def __init__(self, ws: WebSocket, state: "AppState", user_id: str) -> None:
        self.ws = ws
        self.state = state
        self.cfg = state.config
        self.faults = state.fault_set
        self.era = self.cfg.era
        self.user_id = user_id
        self.connection_id = ("conn_" if self.era == "early" else "main_") + _hex(8)
        self.thread_id = "thread_" + _hex()
        self.handshake_run_id: str | None = "run_" + _hex() if self.era == "october" else None
        self.loop = asyncio.get_running_loop()
        self.last_sent = self.last_recv = self.loop.time()
        self.closed = False
        self.runs: set[asyncio.Task] = set()
        self.got_message = False
        #: routed message types are dropped unanswered (real beta-14 with demo mode off; beta-12)
        self.swallow = "ws_swallow_all" in self.faults or "ws_connect_welcome" in self.faults
        #: the real heartbeat's stats: client frames received, agent requests among them
        self.messages_processed = 0
        self.agent_requests = 0

    # -- plumbing

    async def send(self, text: str) -> None:
        await self.ws.send_text(text)
        self.last_sent = self.loop.time()

    async def send_obj(self, obj: dict) -> None:
        await self.send(_dumps(obj))

    async def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            try:
                await self.ws.close(code, reason)
            except Exception:  # the client is already gone
                pass

    def _transport(self) -> asyncio.Transport:
        proto = self.ws.scope.get(PROTOCOL_SCOPE_KEY)
        transport = getattr(proto, "transport", None)
        if transport is None:  # pragma: no cover - depends on the server implementation
            raise RuntimeError("the ASGI server does not expose its transport; transport faults need uvicorn")
        return transport

    # -- flow

    async def run(self) -> None:
        heartbeat: asyncio.Task | None = None
        try:
            if "ws_error_frame_1011" in self.faults:
                await self.send_obj(
                    {
                        "type": "error_message",
                        "error_code": "CONNECTION_ERROR",
                        "message": "WebSocket main mode failed: connection setup raised an exception",
                        "timestamp": time.time(),
                    }
                )
                await self.close(1011, "Internal error")
                return

            await self.send_welcome()

            if "ws_1011_after_welcome" in self.faults:
                await self.close(1011, "Internal error")
                return
            if "ws_close_1000_early" in self.faults:
                await self.close(1000, "main cleanup")
                return
            if "ws_drop_1006" in self.faults:
                transport = self._transport()
                for _ in range(100):  # let the welcome leave the write buffer first
                    if transport.get_write_buffer_size() == 0:
                        break
                    await asyncio.sleep(0.01)
                self.closed = True
                transport.abort()
                return

            if self.era == "early":
                await self.send_obj({"type": "ping", "timestamp": time.time()})
            heartbeat = self.loop.create_task(self._heartbeat())

            if "ws_ignore_pings" in self.faults:
                transport = self._transport()
                transport.pause_reading()  # frames, pings and closes from the client are never read
                while not transport.is_closing() and not self.state.stopping and not self.closed:
                    await asyncio.sleep(0.25)
                return

            await self._receive_loop()
        except Exception:
            # The client went away mid-send (WebSocketDisconnect, ClientDisconnected, RuntimeError
            # after a close): nothing to report, the session is over.
            pass
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            for task in list(self.runs):
                task.cancel()

    async def send_welcome(self) -> None:
        """The unprompted welcome frame(s) of the era, in the real shapes: early ones carry the whole user
        id, the mid/october welcome only its first 8 characters plus '...'."""
        if self.era == "early":
            await self.send_obj({"type": "handshake_validation", "timestamp": time.time(), "validation_id": "val_" + _hex(12)})
            await self.send_obj(
                {
                    "type": "system_message",
                    "data": {
                        "event": "connection_established",
                        "connection_ready": True,
                        "user_id": self.user_id,
                        "connection_id": self.connection_id,
                    },
                    "timestamp": time.time(),
                }
            )
            return
        await self.send_obj(
            server_message(
                "connect" if "ws_connect_welcome" in self.faults else "connection_established",
                {
                    "mode": "main",
                    "user_id": short_user_id(self.user_id),
                    "connection_id": self.connection_id,
                    "golden_path_events": _GOLDEN,
                    "features": _FEATURES,
                    "timestamp": _iso(),
                },
            )
        )
        if self.era == "october":
            await self.send_obj(
                {
                    "type": "handshake_response",
                    "thread_id": self.thread_id,
                    "run_id": self.handshake_run_id,
                    "timestamp": time.time(),
                }
            )

    async def _heartbeat(self) -> None:
        interval = self.cfg.heartbeat_interval
        idle_timeout = self.cfg.idle_timeout
        try:
            while not self.closed:
                now = self.loop.time()
                wait = self.last_sent + interval - now
                if idle_timeout is not None:
                    wait = min(wait, self.last_recv + idle_timeout - now)
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                if idle_timeout is not None and now - self.last_recv >= idle_timeout:
                    await self.close(1000, "main cleanup")
                    return
                await self.send_obj(self._keepalive_frame())
        except Exception:  # the client went away (CancelledError, a BaseException, passes through)
            return

    def _keepalive_frame(self) -> dict:
        """What an idle session gets: early servers ping; later ones send the real heartbeat."""
        if self.era == "early":
            return {"type": "ping", "timestamp": time.time()}
        return server_message(
            "heartbeat",
            {
                "connection_id": self.connection_id,
                "timestamp": _iso(),
                "stats": {"messages_processed": self.messages_processed, "agent_events_processed": self.agent_requests},
            },
        )

    async def _receive_loop(self) -> None:
        receive = self.ws.receive
        while not self.closed:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.closed = True
                return
            text = message.get("text")
            if text is None:
                data = message.get("bytes") or b""
                text = data.decode("utf-8", "replace")
            self.last_recv = self.loop.time()
            await self.on_message(text)

    async def on_message(self, text: str) -> None:
        self.messages_processed += 1
        try:
            msg: Any = json.loads(text)
            parse_error: str | None = None
        except ValueError as exc:
            msg, parse_error = None, str(exc)

        mtype = msg.get("type") if isinstance(msg, dict) else None
        if not (self.era == "october" and mtype == "handshake_acknowledged"):
            if "ws_1011_on_message" in self.faults and not self.got_message:
                await self.close(1011, "Internal error")
                return
            self.got_message = True

        if parse_error is not None:
            await self.send_obj(_error_message("JSON_PARSE_ERROR", "Invalid JSON format"))
            return
        if not isinstance(msg, dict):
            await self.send_obj(_error_message("INVALID_MESSAGE_FORMAT", "A message must be a JSON object with a 'type'"))
            return

        if mtype in _AGENT_TYPES:
            self.agent_requests += 1
        if self.swallow and mtype in _ROUTED_TYPES:
            return  # re-typed by the router and dropped: no frame answers it
        if mtype == "ping":
            await self.send_obj({"type": "pong", "timestamp": time.time()})
        elif mtype in ("pong", "heartbeat_ack"):
            pass
        elif mtype == "heartbeat":
            await self.send_obj({"type": "heartbeat_ack", "timestamp": time.time()})
        elif mtype == "handshake_acknowledged" and self.era == "october":
            await self.send_obj({"type": "handshake_complete", "thread_id": self.thread_id, "timestamp": time.time()})
        elif mtype in ("start_agent", "execute_agent"):
            await self.start_run(msg, mtype, ("user_request", "message", "content", "query", "request"))
        elif mtype in ("user_message", "message", "chat_message"):
            await self.start_run(msg, mtype, ("content", "message", "text", "user_request"))
        else:
            await self.send_obj(self._ack(mtype))

    def _ack(self, mtype: Any) -> dict:
        """The real ack: it names the session's user in full (the welcome only shortens it)."""
        return {
            "type": "ack",
            "received_type": mtype,
            "timestamp": time.time(),
            "user_id": self.user_id,
            "status": "acknowledged",
        }

    async def start_run(self, msg: dict, mtype: str, request_keys: tuple[str, ...]) -> None:
        payload = msg.get("payload")
        if not isinstance(payload, dict):
            payload = {}

        def pick(*names: str) -> Any:
            for name in names:
                for source in (payload, msg):
                    value = source.get(name)
                    if value not in (None, ""):
                        return value
            return None

        request = pick(*request_keys)
        if request is not None and not isinstance(request, str):
            request = _dumps(request)
        if not request or not request.strip():
            await self.send_obj({"type": "error", "message": "Please enter a message", "timestamp": time.time()})
            return

        run_id = pick("run_id")
        if not run_id and self.handshake_run_id:
            run_id, self.handshake_run_id = self.handshake_run_id, None  # october: the first run uses it
        run_id = str(run_id or "run_" + _hex())
        thread_id = str(pick("thread_id") or self.thread_id)
        agent_name = str(pick("agent_type", "agent_name", "agent") or "supervisor_agent")

        if "agent_swallowed" in self.faults:
            await self.send_obj(self._ack(mtype))
            return
        task = self.loop.create_task(self._agent_run(run_id, thread_id, agent_name, request))
        self.runs.add(task)
        task.add_done_callback(self.runs.discard)

    # -- agent runs

    def _plan(self) -> list[tuple[float, str]]:
        o = self.cfg.agent_event_offsets
        f = self.faults
        if "agent_error" in f:
            return [(o[0], "agent_started"), (o[1], "agent_error")]
        kinds = list(AGENT_EVENTS)
        if "agent_out_of_order" in f:
            kinds[2], kinds[3] = kinds[3], kinds[2]
        plan = list(zip(o, kinds))
        if "agent_stops_after_tool" in f:
            plan = plan[:3]
        return plan

    async def _agent_run(self, run_id: str, thread_id: str, agent_name: str, request: str) -> None:
        t0 = self.loop.time()
        started = time.time()
        foreign = (
            {"run_id": "run_" + _hex(), "user_id": _FOREIGN_USER, "thread_id": "thread_" + _hex()}
            if "agent_cross_user" in self.faults
            else None
        )
        non_json = "agent_non_json" in self.faults
        try:
            for offset, kind in self._plan():
                delay = t0 + offset - self.loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.closed:
                    return
                event = self._event(kind, run_id, self.user_id, thread_id, agent_name, request, started)
                if non_json and kind == "agent_thinking":
                    await self.send(str(event))  # a Python repr: the "could not serialize" bug
                elif non_json and kind == "tool_completed":
                    await self.send(f"tool_completed: <ToolResult object at 0x7f{_hex(10)}> run={run_id}")
                else:
                    await self.send(_dumps(event))
                if foreign is not None:
                    other = self._event(
                        kind, foreign["run_id"], foreign["user_id"], foreign["thread_id"], agent_name,
                        "Show me the billing data of another account", started,
                    )
                    await self.send(_dumps(other))
        except Exception:  # the client went away (CancelledError, a BaseException, passes through)
            return

    def _event(
        self,
        kind: str,
        run_id: str,
        user_id: str,
        thread_id: str,
        agent_name: str,
        request: str,
        started: float,
    ) -> dict:
        extra: dict[str, Any] = {}
        if kind == "agent_started":
            data: dict[str, Any] = {"status": "started", "message": f"{agent_name} started", "user_request": request}
        elif kind == "agent_thinking":
            data = {"thought": "Analyzing the request and planning the tool calls", "step": 1}
        elif kind == "tool_executing":
            extra["tool_name"] = _TOOL
            data = {"tool_name": _TOOL, "parameters": {"query": request[:200]}}
        elif kind == "tool_completed":
            results = {"status": "success", "records_analyzed": 128, "anomalies": 2}
            extra["tool_name"] = _TOOL
            extra["results"] = results
            data = {"tool_name": _TOOL, "results": results, "duration_ms": 42}
        elif kind == "agent_completed":
            result: dict[str, Any] = (
                {}
                if "agent_no_result" in self.faults
                else {
                    "summary": f"Analysis complete for: {request[:120]}",
                    "recommendations": ["Cache the hot query", "Batch the nightly writes"],
                    "records_analyzed": 128,
                }
            )
            data = {
                "status": "completed",
                "result": result,
                "execution_time_ms": round((time.time() - started) * 1000.0, 1),
            }
        elif kind == "agent_error":
            data = {
                "status": "error",
                "error_message": "Agent execution failed: the orchestrator is not available",
                "error_type": "OrchestratorUnavailable",
            }
        else:  # pragma: no cover
            data = {}

        if self.era == "early":
            flat: dict[str, Any] = {
                "type": kind,
                "event": kind,
                "run_id": run_id,
                "thread_id": thread_id,
                "user_id": user_id,
                "agent_name": agent_name,
                "timestamp": time.time(),
            }
            flat.update(data)
            flat.update(extra)
            return flat

        event: dict[str, Any] = {
            "type": kind,
            "run_id": run_id,
            "thread_id": thread_id,
            "user_id": user_id,
            "agent_name": agent_name,
            "timestamp": _iso(),
        }
        event.update(extra)
        event["data"] = data
        if self.era == "october" and kind in ("agent_started", "agent_thinking"):
            inner = {"event": kind}
            inner.update((k, v) for k, v in event.items() if k != "type")
            return {
                "type": "system_message" if kind == "agent_started" else "agent_progress",
                "data": inner,
                "timestamp": time.time(),
            }
        return event
