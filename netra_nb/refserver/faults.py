"""Fault profiles of the reference platform.

Each profile makes the embedded platform fail the way the real Netra staging platform failed
(netra-contract.md "How it fails", failure-examples.md E1-E10). ``expected`` maps the kit's check
names to the design.md category the kit must report for that check while the profile is active;
checks not named there must keep working (pass).

Notes for the check authors (how a profile shows itself on the wire):

* "right after the welcome" means in the same breath as the last unprompted welcome frame
  (mid: ``connection_established``; early: ``system_message``; october: ``handshake_response``).
  A ``websocket_connect`` check that holds the session open for a short grace read after the
  welcome sees it; that is why ``websocket_connect`` is listed for those profiles.
* Upgrade refusals: an auth refusal (missing, invalid, expired token; ``ws_403_secret_mismatch``)
  is a 403 whose body is JSON ``{"detail": "WebSocket authentication failed: ..."}``; a missing
  route (``ws_403_no_route``) is a bare 403 with an empty body, while an HTTP GET on the same path
  answers 200 JSON in both cases.  That body is the evidence that points at credentials.
* Precedence used for ``expected``: close 1008 -> ``ws_policy_violation`` (even after an
  ``AUTH_FAILED`` error frame); an ``error``/``error_message`` frame before a 1011 ->
  ``ws_error_frame``; a bare 1011 -> ``ws_internal_error``.
* When a token cannot be obtained (``http_e2e_401``, ``http_503_startup``) the WebSocket checks
  report the token's category, unless the upgrade shows something more fundamental (the 503 of
  ``http_503_startup``).  The maps assume the kit's default auth method, ``e2e_endpoint``.
* ``ws_ignore_pings``: the kit's WebSocket keepalive (ping_interval + ping_timeout) must be
  shorter than its check timeouts for the client's 1011 keepalive close to be what it sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Fault", "FAULTS", "CHECKS", "WS_CHECKS"]

#: The kit's check names, by phase (used to validate the ``expected`` maps).
CHECKS: dict[str, tuple[str, ...]] = {
    "connectivity": (
        "health",
        "api_health",
        "service_discovery",
        "auth_token",
        "websocket_connect",
        "websocket_ping",
    ),
    "agent_pipeline": (
        "agent_discovery",
        "agent_configuration",
        "agent_status",
        "agent_execute",
        "agent_run",
        "ws_invalid_json",
        "ws_empty_request",
    ),
}

#: Every check that opens a WebSocket session.
WS_CHECKS = ("websocket_connect", "websocket_ping", "agent_run", "ws_invalid_json", "ws_empty_request")
#: The WebSocket checks that send something after the welcome.
_WS_AFTER_CONNECT = WS_CHECKS[1:]
_HTTP_CHECKS = (
    "health",
    "api_health",
    "service_discovery",
    "auth_token",
    "agent_discovery",
    "agent_configuration",
    "agent_status",
    "agent_execute",
)


@dataclass(frozen=True)
class Fault:
    """One fault profile: ``name``, ``area`` ("ws" | "agent" | "http"), a one-line ``summary`` and
    ``expected``: check name -> category the kit must produce.  ``ref`` names the failure example(s)
    it reproduces, ``detail`` says what the wire shows."""

    name: str
    area: str
    summary: str
    expected: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    ref: str = ""
    detail: str = ""


def _all(checks: tuple[str, ...], category: str) -> dict[str, str]:
    return {c: category for c in checks}


_FAULT_LIST = [
    # ---------------------------------------------------------------- WebSocket
    Fault(
        "ws_1011_after_welcome",
        "ws",
        "the server closes 1011 'Internal error' right after the welcome",
        _all(WS_CHECKS, "ws_internal_error"),
        "E1",
        "accept, welcome frame(s), then close 1011 'Internal error' at once, before any client message",
    ),
    Fault(
        "ws_1011_on_message",
        "ws",
        "the server closes 1011 'Internal error' on the first client message",
        _all(_WS_AFTER_CONNECT, "ws_internal_error"),
        "E1",
        "welcome as normal; the first client frame (the october handshake_acknowledged excepted) "
        "is answered by close 1011 'Internal error'",
    ),
    Fault(
        "ws_error_frame_1011",
        "ws",
        "an error_message CONNECTION_ERROR frame ('main mode failed') instead of the welcome, then 1011",
        _all(WS_CHECKS, "ws_error_frame"),
        "E1",
        'accept, {"type":"error_message","error_code":"CONNECTION_ERROR","message":"WebSocket '
        'main mode failed: ..."}, close 1011 \'Internal error\'',
    ),
    Fault(
        "ws_close_1000_early",
        "ws",
        "the server closes 1000 'main cleanup' right after the welcome",
        _all(WS_CHECKS, "ws_closed_early"),
        "E5",
        "accept, welcome frame(s), close 1000 'main cleanup' at once",
    ),
    Fault(
        "ws_auth_failed_1008",
        "ws",
        "auth after accept: an AUTH_FAILED error frame, then close 1008",
        _all(WS_CHECKS, "ws_policy_violation"),
        "",
        'accept (whatever the token), {"type":"error","error_code":"AUTH_FAILED",...}, close 1008',
    ),
    Fault(
        "ws_403_secret_mismatch",
        "ws",
        "the backend validates with a different secret: every token gets 403 on the upgrade",
        _all(WS_CHECKS, "ws_upgrade_auth_rejected"),
        "",
        "403 with JSON body {'detail':'WebSocket authentication failed: ...'} on the upgrade; "
        "the auth service still mints tokens and an HTTP GET on the path still answers 200",
    ),
    Fault(
        "ws_403_no_route",
        "ws",
        "no WebSocket route at /ws or /api/v1/websocket: every upgrade gets 403, GET answers 200",
        _all(WS_CHECKS, "ws_route_missing"),
        "E3",
        "bare 403 (empty body) on every upgrade, with or without a token; an HTTP GET on the same "
        "path answers 200 JSON describing the WebSocket service",
    ),
    Fault(
        "ws_500_upgrade",
        "ws",
        "the upgrade answers HTTP 500 (an exception in the handshake code)",
        _all(WS_CHECKS, "ws_upgrade_server_error"),
        "",
        '500 {"detail":"Internal Server Error"} on the upgrade',
    ),
    Fault(
        "ws_503_upgrade",
        "ws",
        "the upgrade answers HTTP 503 (nothing healthy behind the load balancer)",
        _all(WS_CHECKS, "ws_upgrade_unavailable"),
        "E10",
        '503 {"status":"unhealthy","message":"Service Unavailable"} on the upgrade; HTTP endpoints are fine',
    ),
    Fault(
        "ws_handshake_hang",
        "ws",
        "the server accepts the TCP connection and never answers the upgrade",
        _all(WS_CHECKS, "ws_handshake_timeout"),
        "E10",
        "the client's opening handshake times out",
    ),
    Fault(
        "ws_drop_1006",
        "ws",
        "right after the welcome the server drops the TCP connection without a close frame (1006)",
        _all(WS_CHECKS, "ws_abnormal_close"),
        "",
        "the transport is aborted after the welcome: the client sees 1006, no close frame",
    ),
    Fault(
        "ws_bad_subprotocol",
        "ws",
        "the server selects a subprotocol the client did not offer",
        _all(WS_CHECKS, "ws_subprotocol_mismatch"),
        "E4",
        "the 101 carries Sec-WebSocket-Protocol 'jwt-auth' (or 'netra.v2'), which the client never "
        "offered: NegotiationError in the client",
    ),
    Fault(
        "ws_ignore_pings",
        "ws",
        "after the welcome the server stops reading the socket: pings go unanswered, the client closes 1011",
        _all(_WS_AFTER_CONNECT, "ws_keepalive_timeout"),
        "",
        "the transport's reading is paused after the welcome; heartbeat frames still go out; "
        "client messages and pings are never read",
    ),
    # ---------------------------------------------------------------- agent
    Fault(
        "agent_swallowed",
        "agent",
        "the agent request is swallowed: only ack, heartbeat and ping frames follow",
        {"agent_run": "agent_no_events"},
        "E2",
        'an {"type":"ack","received_type":...} answers the request; then only heartbeat/ping frames',
    ),
    Fault(
        "agent_stops_after_tool",
        "agent",
        "the events stop after tool_executing; the connection stays open",
        {"agent_run": "agent_incomplete"},
        "",
        "agent_started, agent_thinking, tool_executing, then nothing but heartbeats",
    ),
    Fault(
        "agent_error",
        "agent",
        "agent_started, then agent_error with data.error_message",
        {"agent_run": "agent_failed"},
        "",
        "agent_error data: error_message 'Agent execution failed: ...', error_type",
    ),
    Fault(
        "agent_no_result",
        "agent",
        "agent_completed arrives with an empty result",
        {"agent_run": "agent_empty_result"},
        "",
        "all five events; agent_completed.data.result is {}",
    ),
    Fault(
        "agent_out_of_order",
        "agent",
        "tool_completed arrives before tool_executing",
        {"agent_run": "agent_event_order"},
        "",
        "agent_started, agent_thinking, tool_completed, tool_executing, agent_completed",
    ),
    Fault(
        "agent_cross_user",
        "agent",
        "the session also receives another user's events (other user_id and run_id)",
        {"agent_run": "cross_user_leak"},
        "",
        "each own event is followed by the same event of a foreign run of user 'e2e-other-user'",
    ),
    Fault(
        "agent_non_json",
        "agent",
        "some agent frames are not JSON (a Python repr, garbage text) instead of events",
        {"agent_run": "contract_mismatch"},
        "E1",
        "agent_thinking is sent as a Python dict repr and tool_completed as garbage text; "
        "agent_started, tool_executing and agent_completed are normal",
    ),
    # ---------------------------------------------------------------- HTTP
    Fault(
        "http_503_startup",
        "http",
        "every endpoint, the upgrade and the auth endpoint answer 503 'Startup in progress' after a delay",
        {**_all(_HTTP_CHECKS, "http_unavailable"), **_all(WS_CHECKS, "ws_upgrade_unavailable")},
        "E6, E10",
        '503 {"status":"unhealthy","message":"Startup in progress"} after fault_delay seconds',
    ),
    Fault(
        "http_split_health",
        "http",
        "/health answers 503 while /api/health answers 200 healthy",
        {"health": "http_unavailable"},
        "",
        '/health 503 {"status":"unhealthy","message":"Startup in progress"}; everything else works',
    ),
    Fault(
        "http_degraded",
        "http",
        "/api/health answers 200 'degraded' with Redis down",
        {"api_health": "health_degraded"},
        "E9",
        '/api/health 200 {"status":"degraded","checks":{"redis":{"status":"unhealthy",...},...}}',
    ),
    Fault(
        "http_mcp_500",
        "http",
        "/api/mcp/servers answers 500 {'error':'Internal server error'}",
        {"agent_discovery": "http_server_error"},
        "E8",
        "the database layer is broken for MCP discovery only; /health stays healthy",
    ),
    Fault(
        "http_health_hang",
        "http",
        "/health never answers",
        {"health": "read_timeout"},
        "E10",
        "the request is read and never answered (until the client gives up)",
    ),
    Fault(
        "http_e2e_401",
        "http",
        "the E2E token endpoint answers 401 'Invalid E2E bypass key' even with the right key",
        {"auth_token": "http_auth_rejected", "agent_execute": "http_auth_rejected",
         **_all(WS_CHECKS, "http_auth_rejected")},
        "",
        "a missing key still gets 'E2E bypass key required'; the WebSocket checks and agent_execute, which get "
        "their token from this endpoint (auth method e2e_endpoint), report the token's category (not attempted: "
        "no request as our user without it); a locally signed token still works on the WebSocket",
    ),
]

FAULTS: dict[str, Fault] = {f.name: f for f in _FAULT_LIST}
