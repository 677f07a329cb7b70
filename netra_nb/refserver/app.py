"""The HTTP side of the reference platform (backend and auth service on one server) and the ASGI
application that ties it to the WebSocket endpoint."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from .config import ServerConfig
from .session import PROTOCOL_SCOPE_KEY, deny, websocket_endpoint
from .tokens import ACCESS_TTL, DEFAULT_PERMISSIONS, mint_access_token, mint_refresh_token, user_id_for

__all__ = ["AppState", "build_app", "WS_PATHS"]

WS_PATHS = ("/ws", "/api/v1/websocket")
_STARTUP_503 = {"status": "unhealthy", "message": "Startup in progress"}


def _iso() -> str:
    return datetime.now(timezone.utc).isoformat()


class AppState:
    """Per-server state shared by the handlers (never global: several servers may share a process)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.fault_set = frozenset(config.faults)
        self.started = time.monotonic()
        #: set by RefServer.stop(): hanging handlers give up
        self.stopping = False
        #: WebSocket sessions open now (reported by /api/health, measured, not a constant)
        self.active_sessions = 0
        #: requests held by a fault's delay right now (so a test can stop the server while one waits)
        self.delayed = 0

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake early when the server stops (so stop() never waits on a fault's delay)."""
        end = time.monotonic() + seconds
        self.delayed += 1
        try:
            while not self.stopping and time.monotonic() < end:
                await asyncio.sleep(min(0.25, end - time.monotonic()))
        finally:
            self.delayed -= 1


# ------------------------------------------------------------------------------------ helpers


def _state(request: Request) -> AppState:
    return request.app.state.netra


def _urls(request: Request) -> tuple[str, str]:
    """(http base, ws base) as the client reached this server."""
    base = f"{request.url.scheme}://{request.url.netloc}"
    ws = ("wss" if request.url.scheme == "https" else "ws") + f"://{request.url.netloc}"
    return base, ws


async def _hang(request: Request, state: AppState) -> None:
    """Read the request and never answer: return once the client left or the server stops."""
    while not state.stopping:
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.25)


# ------------------------------------------------------------------------------------ backend


async def health(request: Request) -> Response:
    state = _state(request)
    if "http_health_hang" in state.fault_set:
        await _hang(request, state)
        return JSONResponse(_STARTUP_503, 503)
    if "http_split_health" in state.fault_set:
        return JSONResponse({**_STARTUP_503, "service": "netra-ai-platform", "timestamp": time.time()}, 503)
    return JSONResponse(
        {"status": "healthy", "service": "netra-ai-platform", "version": "1.0.0", "timestamp": time.time()}
    )


async def api_health(request: Request) -> Response:
    state = _state(request)
    def dependency() -> dict[str, Any]:
        return {"status": "healthy", "connected": True, "error": None}

    checks: dict[str, Any] = {
        "postgresql": dependency(),
        "redis": dependency(),
        "websocket": {"status": "healthy", "active_connections": state.active_sessions},
    }
    status = "healthy"
    if "http_degraded" in state.fault_set:
        status = "degraded"
        checks["redis"] = {
            "status": "unhealthy",
            "connected": False,
            "error": "Error 111 connecting to redis:6379. Connection refused.",
        }
    return JSONResponse(
        {
            "status": status,
            "timestamp": _iso(),
            "uptime_seconds": round(time.monotonic() - state.started, 3),
            "checks": checks,
            "version": "1.0.0",
            "environment": "staging",
        }
    )


async def discovery(request: Request) -> Response:
    base, ws = _urls(request)
    services = {
        "backend": {"url": base, "api_url": f"{base}/api", "ws_url": f"{ws}/ws", "status": "healthy"},
        "frontend": {"url": base, "api_url": f"{base}/api", "ws_url": f"{ws}/ws", "status": "healthy"},
        "auth": {"url": base, "api_url": f"{base}/auth", "ws_url": f"{ws}/ws", "status": "healthy"},
    }
    return JSONResponse({"services": services, "timestamp": _iso(), "available": True})


async def mcp_servers(request: Request) -> Response:
    if "http_mcp_500" in _state(request).fault_set:
        return JSONResponse({"error": "Internal server error"}, 500)
    return JSONResponse(
        {
            "data": [
                {
                    "name": "netra-mcp",
                    "status": "connected",
                    "version": "1.0.0",
                    "capabilities": {"tools": True, "resources": True, "prompts": True},
                    "description": "Netra MCP server: agent tools, resources and prompts",
                }
            ],
            "status": "success",
        }
    )


async def mcp_config(request: Request) -> Response:
    base, ws = _urls(request)
    return JSONResponse(
        {
            "claude": {"command": "netra-mcp", "args": ["--transport", "stdio"], "env": {}},
            "cursor": {"command": "netra-mcp", "args": ["--transport", "stdio"]},
            "mcp": {"version": "1.0.0", "transports": ["stdio", "http", "websocket"]},
            "http": {"url": f"{base}/api/mcp", "auth": "bearer"},
            "websocket": {"url": f"{ws}/ws", "auth": ["header", "subprotocol", "query"]},
        }
    )


_AGENTS = (
    ("supervisor_agent", "supervisor"),
    ("triage_agent", "triage"),
    ("data_agent", "data"),
    ("optimization_agent", "optimization"),
    ("reporting_agent", "reporting"),
)


async def agents_status(request: Request) -> Response:
    now = _iso()
    return JSONResponse(
        [
            {"name": name, "type": kind, "status": "available", "health": "healthy", "active_runs": 0, "last_activity": now}
            for name, kind in _AGENTS
        ]
    )


def _validation_error(loc: str, msg: str, kind: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["body", loc], "msg": msg, "type": kind}]}, 422)


async def agents_execute(request: Request) -> Response:
    started = time.perf_counter()
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        return JSONResponse({"detail": [{"loc": ["body"], "msg": "Invalid JSON body", "type": "value_error.jsondecode"}]}, 422)
    if not isinstance(body, dict):
        return _validation_error("__root__", "body must be an object", "type_error.dict")
    for key in ("type", "message"):
        if key not in body:
            return _validation_error(key, "field required", "value_error.missing")
        if not isinstance(body[key], str):
            return _validation_error(key, "str type expected", "type_error.str")
    if not body["type"].strip():
        return _validation_error("type", "ensure this value has at least 1 characters", "value_error.any_str.min_length")
    agent = body["type"].strip()
    message = body["message"]
    state = _state(request)
    if "http_execute_canned" in state.fault_set:
        return JSONResponse(canned_execute_answer(agent, message))
    # The healthy platform does the work it reports: the agent runs (its first step's worth of time
    # on this simulated platform) and execution_time is measured around it.
    await state.sleep(state.config.agent_event_offsets[0])
    words = len(message.split())
    return JSONResponse(
        {
            "status": "success",
            "agent": agent,
            "response": (
                f"{agent}: analysed the request ({words} word{'s' if words != 1 else ''}): 128 records scanned, "
                "2 anomalies found; recommended: cache the hot query, batch the nightly writes"
            ),
            "execution_time": round(time.perf_counter() - started, 6),
            "circuit_breaker_state": "CLOSED",
            "error": None,
        }
    )


def canned_execute_answer(agent: str, message: str) -> dict:
    """What the real backend's /api/agents/execute answered on every tag (beta-12/14/17): a canned
    "Mock" text in 0.0 s for test-like messages, a "Fallback ... recovery mechanism" text otherwise."""
    if message.startswith("Test") or message.startswith("WebSocket") or "test" in message.lower():
        response = f"Mock {agent} agent response for: {message}"
    else:
        response = f"Fallback {agent} agent response: Successfully processed '{message}' using recovery mechanism"
    return {
        "status": "success",
        "agent": agent,
        "response": response,
        "execution_time": 0.0,
        "circuit_breaker_state": "CLOSED",
        "error": None,
    }


async def websocket_info(request: Request) -> Response:
    """The plain HTTP GET on /api/v1/websocket: 200 JSON describing the WebSocket service, in the shape
    the real backend (beta-14) answered.  (GET /ws has no HTTP route, as on the real backend: 404.)"""
    return JSONResponse(
        {
            "data": {
                "service": "websocket_ssot",
                "status": "operational",
                "modes": ["main", "factory", "isolated", "legacy"],
                "endpoints": {"websocket": "/ws", "health": "/ws/health", "config": "/ws/config"},
                "ssot_compliance": True,
            },
            "timestamp": _iso(),
        }
    )


# ------------------------------------------------------------------------------------ auth service


async def e2e_test_auth(request: Request) -> Response:
    state = _state(request)
    key = request.headers.get("x-e2e-bypass-key")
    if not key:
        return JSONResponse({"detail": "E2E bypass key required"}, 401)
    if "auth_e2e_not_configured" in state.fault_set:
        # The auth service in ENVIRONMENT=development: the key is not even compared.
        return JSONResponse({"detail": "E2E authentication not configured"}, 503)
    if "http_e2e_401" in state.fault_set or not hmac.compare_digest(
        key.encode("utf-8", "replace"), state.config.e2e_key.encode("utf-8")
    ):
        return JSONResponse({"detail": "Invalid E2E bypass key"}, 401)
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return JSONResponse({"detail": [{"loc": ["body"], "msg": "Invalid JSON body", "type": "value_error.jsondecode"}]}, 422)
    if not isinstance(body, dict):
        return _validation_error("__root__", "body must be an object", "type_error.dict")
    email = body.get("email") or "e2e-test@staging.netrasystems.ai"
    name = body.get("name") or "E2E Test User"
    permissions = body["permissions"] if "permissions" in body else list(DEFAULT_PERMISSIONS)
    if not isinstance(email, str) or "@" not in email:
        return _validation_error("email", "value is not a valid email address", "value_error.email")
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        return _validation_error("permissions", "value is not a valid list of strings", "type_error.list")
    secret = state.config.jwt_secret
    access = mint_access_token(secret, email, permissions)
    user_id = user_id_for(email)  # the same id as the token's sub
    return JSONResponse(
        {
            "access_token": access,
            "refresh_token": mint_refresh_token(secret, email),
            "token_type": "Bearer",
            "expires_in": ACCESS_TTL,
            "user": {"id": user_id, "email": email, "name": name, "permissions": permissions, "oauth_simulated": True},
        }
    )


# ------------------------------------------------------------------------------------ errors


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return JSONResponse({"detail": "Not Found"}, 404)
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "Internal server error"}, 500)


# ------------------------------------------------------------------------------------ assembly


def build_app(config: ServerConfig) -> tuple[Any, AppState]:
    """The ASGI application for ``config`` and its state."""
    state = AppState(config)
    routes: list[Any] = [
        Route("/health", health, methods=["GET"]),
        Route("/api/health", api_health, methods=["GET"]),
        Route("/api/discovery/services", discovery, methods=["GET"]),
        Route("/api/mcp/servers", mcp_servers, methods=["GET"]),
        Route("/api/mcp/config", mcp_config, methods=["GET"]),
        Route("/api/agents/status", agents_status, methods=["GET"]),
        Route("/api/agents/execute", agents_execute, methods=["POST"]),
        Route("/auth/e2e/test-auth", e2e_test_auth, methods=["POST"]),
    ]
    no_route = "ws_403_no_route" in state.fault_set
    for path in WS_PATHS:
        if no_route or path != "/ws":
            # The real backend answers GET on /api/v1/websocket only; ws_403_no_route adds the same
            # GET route on /ws, the HTTP-only route of failure example E3.
            routes.append(Route(path, websocket_info, methods=["GET"]))
        if not no_route and not (path == "/ws" and "ws_moved" in state.fault_set):
            # Without a WebSocket route Starlette refuses the upgrade with a bare 403 (a close before
            # accept), exactly as the real backend does for any path it does not route (E3, ws_moved).
            routes.append(WebSocketRoute(path, websocket_endpoint))
    starlette = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_exception, Exception: _server_error},
    )
    starlette.state.netra = state

    startup_503 = "http_503_startup" in state.fault_set
    fault_delay = config.fault_delay
    latency = config.http_latency

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            # uvicorn hands each connection's bound receive(); its __self__ is the protocol object
            # that owns the asyncio transport (the 1006 drop and the ignored pings need it).
            scope[PROTOCOL_SCOPE_KEY] = getattr(receive, "__self__", None)
            if startup_503:
                await state.sleep(fault_delay)
                await deny(WebSocket(scope, receive, send), JSONResponse(_STARTUP_503, 503))
                return
        elif kind == "http":
            if startup_503:
                await state.sleep(fault_delay)
                await JSONResponse(_STARTUP_503, 503)(scope, receive, send)
                return
            if latency:
                await asyncio.sleep(latency)
        await starlette(scope, receive, send)

    return app, state
