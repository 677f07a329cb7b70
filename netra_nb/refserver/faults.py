"""Fault profiles of the reference platform.

The README's fault table is generated from FAULTS (tests/refserver/test_fault_table.py compares them);
after changing a profile, regenerate it with
``python -c "from pathlib import Path; from netra_nb.refserver.faults import update_readme; update_readme(Path('README.md'))"``.

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
  route (``ws_403_no_route``, ``ws_moved``, any path the server does not route) is a bare 403 with
  an empty text/plain body whatever the token, as on the real backend.  That body is the evidence
  that points at credentials.  An HTTP GET tells little: the real backend answers 404 on ``/ws``
  even where ``/ws`` serves sessions, 200 on ``/api/v1/websocket``, and 200 on an HTTP-only route
  such as ``ws_403_no_route``'s (failure example E3).
* Identity: the mid/october welcome shows only the first 8 characters of the user id plus
  ``...`` (as the real one does); an ``ack`` (the answer to an unknown message type) names the
  whole id; agent events carry it whole.
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
from pathlib import Path

__all__ = ["Fault", "FAULTS", "CHECKS", "WS_CHECKS", "readme_table", "update_readme"]

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
    """One fault profile: ``name``, ``area`` ("ws" | "agent" | "http" | "auth"), a one-line ``summary`` and
    ``expected``: check name -> category the kit must produce.  ``ref`` names the failure example(s)
    or real-platform capture(s) it reproduces, ``detail`` says what the wire shows.

    ``placement``: when set, ``expected`` holds for a kit whose ``auth.placement`` is this value; with
    any other placement the profile breaks nothing (every check passes).  None: any placement."""

    name: str
    area: str
    summary: str
    expected: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    ref: str = ""
    detail: str = ""
    placement: str | None = None


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
        "the auth service still mints tokens; an HTTP GET on /ws answers 404 as on the healthy platform",
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
    # -- behaviours of the real backend (zen beta-12/14/17 on loopback; tests/realshapes/ holds the frames)
    Fault(
        "ws_connect_welcome",
        "ws",
        "beta-12: the welcome is type 'connect'; every request then dies in the message router, unanswered",
        {
            "websocket_ping": "ws_no_reply",
            "agent_run": "agent_no_events",
            "ws_empty_request": "ws_no_reply",
        },
        "real beta-12",
        'the welcome is {"type":"connect","data":{"mode":"main","user_id":"<first 8>...","connection_id",'
        '"golden_path_events","features",...},"timestamp":<float>,...} (the mid welcome under another type; '
        "here it names our own user; in the october era it precedes the handshake_response, the early era "
        "keeps its own welcome frames).  Then, as on beta-12, every known message type (ping, start_agent, "
        "user_message, the empty request, heartbeat) fails in the router ('function' object has no attribute "
        "'can_handle', only in the server's log): no frame answers it, heartbeats go on.  Invalid JSON still "
        "gets JSON_PARSE_ERROR and an unknown type an ack, so ws_invalid_json passes.  Categories: silence "
        "after a ping or an empty request is ws_no_reply; silence after the agent request is agent_no_events "
        "(the server was alive: heartbeats and protocol pongs); websocket_connect passes once the kit knows "
        "the 'connect' welcome",
    ),
    Fault(
        "ws_token_ignored",
        "ws",
        "DEMO_MODE: the token is never read; every session is demo-user-001",
        _all(WS_CHECKS, "ws_auth_ignored"),
        "real beta-14/12 (DEMO_MODE default)",
        "any token, a wrong token or none: the upgrade is accepted and the welcome names 'demo-use...' (the "
        "first 8 characters of demo-user-001 plus '...'); acks and agent events carry 'demo-user-001'; the "
        "session otherwise works (pong, error frames, the five events)",
    ),
    Fault(
        "ws_query_token_ignored",
        "ws",
        "a ?token= is never read: the session is an anonymous relaxed_<hex> user (header, subprotocol work)",
        _all(WS_CHECKS, "ws_auth_ignored"),
        "real beta-14 (DEMO_MODE=0)",
        "a token in the query (or none, or one that does not validate) gets an accepted session whose welcome "
        "names 'relaxed_...' and whose acks and events carry relaxed_<8 hex>; a valid header or subprotocol "
        "token works as usual.  The expectations hold for auth.placement: query; with header or subprotocol "
        "nothing fails",
        placement="query",
    ),
    Fault(
        "ws_swallow_all",
        "ws",
        "beta-14, demo mode off: every client message is re-typed and swallowed; heartbeats go on",
        {
            "websocket_ping": "ws_no_reply",
            "agent_run": "agent_no_events",
            "ws_empty_request": "ws_no_reply",
        },
        "real beta-14 (DEMO_MODE=0)",
        "the welcome is normal; ping, start_agent, execute_agent, user_message, the empty request and a client "
        "heartbeat get no frame at all (no pong, no ack, no 'Please enter a message', no agent event); only "
        "heartbeats follow; invalid JSON still gets JSON_PARSE_ERROR and an unknown type an ack; protocol-level "
        "pings are answered",
    ),
    Fault(
        "ws_error_frame_exception",
        "ws",
        "beta-17: a nested error_message CONNECTION_ERROR naming RecursionError, then 1011 'main mode error'",
        _all(WS_CHECKS, "ws_error_frame"),
        "real beta-17",
        'accept (whatever the token), then {"type":"error_message","data":{"error_code":"CONNECTION_ERROR",'
        '"error_message":"Connection error in main mode","details":{"error_type":"RecursionError","mode":"main"},'
        '"timestamp":"<ISO>"},"timestamp":<float>,"server_id":null,"correlation_id":null} and close 1011 '
        "'main mode error'; no welcome",
    ),
    Fault(
        "ws_moved",
        "ws",
        "/ws has no WebSocket route (bare 403, GET 404) while /api/v1/websocket serves sessions",
        _all(WS_CHECKS, "ws_route_missing"),
        "real beta-14 (a ws_url with no route)",
        "an upgrade on /ws gets 403 with an empty text/plain body for our token, a wrong token and no token; "
        "GET /ws answers 404 {'detail':'Not Found'} (as on the real backend, where GET /ws is 404 even when /ws "
        "works); /api/v1/websocket accepts the same token and serves a normal session",
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
    Fault(
        "http_execute_canned",
        "http",
        "POST /api/agents/execute answers a canned text ('Mock ... response for:' / 'Fallback ... recovery')",
        {"agent_execute": "mock_fallback"},
        "real beta-12/14/17 (every tag)",
        'a message containing "test" (or starting with "Test" or "WebSocket"): 200 {"status":"success","agent":T,'
        '"response":"Mock T agent response for: <message>","execution_time":0.0,"circuit_breaker_state":"CLOSED",'
        '"error":null}; any other message: the same with "Fallback T agent response: Successfully processed '
        "'<message>' using recovery mechanism\"",
    ),
    # ---------------------------------------------------------------- auth service
    Fault(
        "auth_e2e_not_configured",
        "auth",
        "the auth service runs in development: the E2E endpoint answers 503 'not configured', /health is 200",
        {"auth_token": "auth_unavailable", "agent_execute": "auth_unavailable", **_all(WS_CHECKS, "auth_unavailable")},
        "real auth_service, ENVIRONMENT=development",
        'POST /auth/e2e/test-auth with a bypass key (right or wrong) answers 503 {"detail":"E2E authentication '
        'not configured"}; without a key 401 {"detail":"E2E bypass key required"}; /health answers 200.  The '
        "WebSocket checks and agent_execute get no token (auth method e2e_endpoint), so they are not attempted; a "
        "locally signed token still works on the WebSocket",
    ),
]

FAULTS: dict[str, Fault] = {f.name: f for f in _FAULT_LIST}


README_START = "<!-- faults:start -->"
README_END = "<!-- faults:end -->"


def readme_table() -> str:
    """The README's fault table (between its ``faults:start``/``faults:end`` markers), generated from
    FAULTS: one row per profile; the last column groups the expected checks by category."""
    rows = ["| profile | area | what the platform does | the kit must diagnose |", "|---|---|---|---|"]
    for fault in FAULTS.values():
        groups: dict[str, list[str]] = {}
        for check, category in fault.expected.items():
            groups.setdefault(category, []).append(check)
        diagnose = "; ".join(f"`{category}`: {', '.join(checks)}" for category, checks in groups.items())
        what = fault.summary
        if fault.placement:
            what += f" (expected with `auth.placement: {fault.placement}`; any other placement: nothing fails)"
        rows.append(f"| `{fault.name}` | {fault.area} | {what} | {diagnose} |")
    return "\n".join(rows)


def update_readme(path: Path) -> bool:
    """Rewrite the fault table of the README at ``path``; True when it changed."""
    text = path.read_text()
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{readme_table()}\n{README_END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text
