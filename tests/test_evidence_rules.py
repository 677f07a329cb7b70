"""The evidence rules, each against a small server of our own that behaves one way (tests/contract_servers.py).

These servers are not the reference platform: each varies a shape the contract allows (netra-contract.md,
"Variations a client meets") or misbehaves the way a real server did (the real backend's captured frames), so
the rules are held to the contract and not to one implementation.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from contract_servers import (FIVE, Answer, HttpStub, WsStub, event, golden, read_request, request_run_id,
                              welcome)
from netra_nb.checks import Context
from netra_nb.params import parse_params

#: every wait of these params (seconds): a check that has to wait waits this long
T = 1.5
ME = "e2e-e2e-netra-nb"  # the sub of the locally signed token: "e2e-" + auth.email's local part
REQUEST = "Analyze test data for pipeline validation"
WS_CHECKS = ("websocket_connect", "websocket_ping", "agent_run", "ws_invalid_json", "ws_empty_request")


def params(ws_url: str, base_url: str = "http://127.0.0.1:9", *, method: str = "local_jwt", placement: str = "header",
           auth_url: str | None = None, **timeouts):
    return parse_params({
        "name": "rules", "base_url": base_url, "ws_url": ws_url, "auth_url": auth_url or base_url, "allow_test_auth": True,
        "auth": {"method": method, "secret_env": "NETRA_TEST_JWT_SECRET", "key_env": "NETRA_TEST_E2E_KEY",
                 "placement": placement},
        "timeouts": {"http": T, "ws_open": T, "agent_run": T, **timeouts},
        "agent": {"request": REQUEST},
        "orchestration": {"users": 3},
    })


def run(p, *names, phase="rules"):
    async def go():
        ctx = Context(p, phase=phase)
        try:
            return {n: await ctx.run(n) for n in names}
        finally:
            await ctx.aclose()
    return asyncio.run(go())


async def healthy(ws, me, *, shorten=True, gap=0.02):
    """A platform that does everything right, in the mid-September shape (the welcome shortens the id)."""
    await ws.send(json.dumps(welcome(me, shorten=shorten)))
    while True:
        msg = await read_request(ws)
        if msg is None:
            await ws.send(json.dumps({"type": "error_message", "error_code": "JSON_PARSE_ERROR",
                                      "error_message": "Invalid JSON format", "timestamp": time.time()}))
            continue
        payload = msg.get("payload") or {}
        if not (payload.get("user_request") or payload.get("content") or "").strip():
            await ws.send(json.dumps({"type": "error", "message": "Please enter a message"}))
            continue
        await golden(ws, request_run_id(msg), me, gap=gap)


def verdicts(records):
    return {n: (r.status, r.category) for n, r in records.items()}


# -- identity ------------------------------------------------------------------------------------

def test_a_welcome_that_shortens_our_id_is_ours():
    with WsStub(healthy) as srv:
        rs = run(params(srv.ws_url), *WS_CHECKS)
    assert all(r.status == "pass" for r in rs.values()), verdicts(rs)


def test_a_session_welcomed_as_the_demo_user_is_not_ours():
    async def demo(ws, me):
        await healthy(ws, "demo-user-001")  # DEMO_MODE: the token is never read
    with WsStub(demo) as srv:
        rs = run(params(srv.ws_url), *WS_CHECKS)
    assert {n: c for n, (s, c) in verdicts(rs).items()} == {n: "ws_auth_ignored" for n in WS_CHECKS}
    assert "'demo-use...'" in rs["websocket_connect"].message and ME in rs["websocket_connect"].message


def test_a_query_token_that_is_never_read_gives_an_anonymous_session():
    async def header_only(ws, me):
        reads = ws.request.headers.get("Authorization")
        await healthy(ws, me if reads else "relaxed_63c5dd40")
    with WsStub(header_only) as srv:
        assert run(params(srv.ws_url), "websocket_connect")["websocket_connect"].status == "pass"
        r = run(params(srv.ws_url, placement="query"), "websocket_connect", "agent_run")
    assert {c for _, c in verdicts(r).values()} == {"ws_auth_ignored"}
    assert "relaxed_" in r["agent_run"].message


def test_an_ack_that_names_another_user_settles_an_ambiguous_welcome():
    async def ack_names_demo(ws, me):
        await ws.send(json.dumps(welcome(None)))  # no id in the welcome
        await read_request(ws)
        await ws.send(json.dumps({"type": "ack", "received_type": "start_agent", "user_id": "demo-user-001",
                                  "status": "acknowledged", "timestamp": time.time()}))
        await asyncio.sleep(30)
    with WsStub(ack_names_demo) as srv:
        r = run(params(srv.ws_url), "agent_run")["agent_run"]
    assert r.category == "agent_no_events" and "demo-user-001" in r.message  # its own failure, and whose session


def test_our_run_running_as_another_user_is_not_a_pass():
    async def runs_as_demo(ws, me):
        await ws.send(json.dumps(welcome(None)))
        msg = await read_request(ws)
        await golden(ws, request_run_id(msg), "demo-user-001")
        await asyncio.sleep(30)
    with WsStub(runs_as_demo) as srv:
        r = run(params(srv.ws_url), "agent_run")["agent_run"]
    assert (r.status, r.category) == ("fail", "ws_auth_ignored")


# -- our run, after our request --------------------------------------------------------------------

def test_events_sent_before_our_request_do_not_count():
    async def replays(ws, me):
        await ws.send(json.dumps(welcome(me)))
        await golden(ws, "run_canned", me, gap=0)  # the five events, unprompted, right after the welcome
        await read_request(ws)
        await ws.send(json.dumps({"type": "ack", "received_type": "start_agent", "status": "acknowledged"}))
        await asyncio.sleep(30)
    with WsStub(replays) as srv:
        r = run(params(srv.ws_url), "agent_run")["agent_run"]
    assert (r.status, r.category) == ("fail", "agent_no_events"), r.message
    assert "5 agent event(s) before our request, not counted" in r.detail
    assert r.events_seen == []


def test_a_leaked_completion_does_not_end_our_run():
    async def leaks_first(ws, me):
        await ws.send(json.dumps(welcome(me)))
        msg = await read_request(ws)
        await ws.send(json.dumps(event("agent_started", request_run_id(msg), me)))
        await ws.send(json.dumps(event("agent_completed", "run_other", "e2e-other", status="completed",
                                       result={"summary": "someone else's"})))
        await golden(ws, request_run_id(msg), me)
        await asyncio.sleep(30)
    with WsStub(leaks_first) as srv:
        r = run(params(srv.ws_url), "agent_run")["agent_run"]
    assert r.category == "cross_user_leak"
    assert r.events_seen == list(FIVE)  # it read on to our own completion


@pytest.mark.parametrize("completed, category", [
    ({"status": "failed", "result": {"summary": "x"}}, "agent_failed"),
    ({"status": "completed", "result": "   "}, "agent_empty_result"),
    ({"status": "completed", "result": {"summary": ""}}, "agent_empty_result"),
])
def test_agent_completed_that_is_not_a_result(completed, category):
    async def finishes(ws, me):
        await ws.send(json.dumps(welcome(me)))
        msg = await read_request(ws)
        for kind in FIVE[:-1]:
            await ws.send(json.dumps(event(kind, request_run_id(msg), me)))
        await ws.send(json.dumps(event("agent_completed", request_run_id(msg), me, **completed)))
        await asyncio.sleep(30)
    with WsStub(finishes) as srv:
        r = run(params(srv.ws_url), "agent_run")["agent_run"]
    assert (r.status, r.category) == ("fail", category), r.message


@pytest.mark.parametrize("where", ["top level", "final_response"])
def test_a_result_outside_data_is_read(where):
    async def flat(ws, me):
        await ws.send(json.dumps(welcome(me)))
        msg = await read_request(ws)
        run_id = request_run_id(msg)
        for kind in FIVE[:-1]:
            await ws.send(json.dumps({"type": kind, "event": kind, "run_id": run_id, "user_id": me,
                                      "timestamp": time.time()}))
        key = "result" if where == "top level" else "final_response"
        await ws.send(json.dumps({"type": "agent_completed", "event": "agent_completed", "run_id": run_id,
                                  "user_id": me, "timestamp": time.time(),
                                  key: "The nightly load drops 2% of rows at the join: the key types differ."}))
        await asyncio.sleep(30)
    with WsStub(flat) as srv:
        r = run(params(srv.ws_url), "agent_run")["agent_run"]
    assert r.status == "pass", r.message


@pytest.mark.parametrize("shape", ["fallback handler", "echo handler", "flagged"])
def test_a_canned_agent_run_is_mock_fallback(shape):
    async def canned(ws, me):
        await ws.send(json.dumps(welcome(me)))
        msg = await read_request(ws)
        run_id = request_run_id(msg)
        if shape == "fallback handler":  # the real FallbackAgentHandler's five events
            for kind in FIVE[:-1]:
                await ws.send(json.dumps({"type": kind, "event": kind, "agent_name": "ChatAgent", "run_id": run_id,
                                          "user_id": me, "tool_name": "response_generator", "timestamp": time.time()}))
                await asyncio.sleep(0.1)
            await ws.send(json.dumps({"type": "agent_completed", "event": "agent_completed", "agent_name": "ChatAgent",
                                      "run_id": run_id, "user_id": me, "timestamp": time.time(),
                                      "final_response": f"Agent processed your message: '{REQUEST}'"}))
        elif shape == "echo handler":  # beta-14's AgentRequestHandler
            await golden(ws, run_id, me, result=f"Agent response for: {REQUEST}")
        else:
            await golden(ws, run_id, me, result={"summary": "Looks fine"}, real_llm_used=False)
        await asyncio.sleep(30)
    with WsStub(canned) as srv:
        r = run(params(srv.ws_url), "agent_run")["agent_run"]
    assert (r.status, r.category) == ("fail", "mock_fallback"), r.message


# -- closes, errors, silence -------------------------------------------------------------------------

@pytest.mark.parametrize("code, reason, category", [
    (4001, "Authentication failed", "ws_policy_violation"),
    (4000, "session expired by load shedding", "ws_closed_early"),
    (1002, "Invalid session state", "contract_mismatch"),
    (1011, "main mode error", "ws_internal_error"),
])
def test_a_close_after_the_request_is_reported_as_that_close(code, reason, category):
    async def closes(ws, me):
        await ws.send(json.dumps(welcome(me)))
        await read_request(ws)
        await asyncio.sleep(0.2)
        await ws.close(code, reason)
    with WsStub(closes) as srv:
        r = run(params(srv.ws_url, agent_run=30), "agent_run")["agent_run"]
    assert (r.status, r.category) == ("fail", category), r.message
    assert (r.ws_close_code, r.ws_close_reason, r.ws_closed_by) == (code, reason, "server")
    assert f"close {code}" in r.message and "after the first client message (our request)" in r.message
    assert "within" not in r.message and "30" not in r.message  # no wait is claimed
    assert r.duration_s < 30  # and none happened


def test_any_error_frame_does_not_pass_the_error_handling_checks():
    async def generic(ws, me):
        await ws.send(json.dumps(welcome(me)))
        while True:
            await read_request(ws)
            await ws.send(json.dumps({"type": "error_message", "error_code": "INTERNAL_ERROR",
                                      "error_message": "agent service unavailable", "timestamp": time.time()}))
    with WsStub(generic) as srv:
        rs = run(params(srv.ws_url), "ws_invalid_json", "ws_empty_request")
    for r in rs.values():
        assert (r.status, r.category) == ("fail", "contract_mismatch"), r.message
        assert "INTERNAL_ERROR" in r.message and "agent service unavailable" in r.message


def test_a_server_that_swallows_every_message():
    async def swallows(ws, me):  # beta-14 with demo mode off
        await ws.send(json.dumps(welcome(me)))
        async for message in ws:
            try:
                json.loads(message)
            except ValueError:
                await ws.send(json.dumps({"type": "error_message", "error_code": "JSON_PARSE_ERROR",
                                          "error_message": "Invalid JSON format", "timestamp": time.time()}))
    with WsStub(swallows) as srv:
        rs = run(params(srv.ws_url), *WS_CHECKS)
    assert verdicts(rs) == {"websocket_connect": ("pass", "ok"), "websocket_ping": ("fail", "ws_no_reply"),
                            "agent_run": ("fail", "agent_no_events"), "ws_invalid_json": ("pass", "ok"),
                            "ws_empty_request": ("fail", "ws_no_reply")}
    assert "the session stayed open" in rs["websocket_ping"].message
    assert "(nothing at all)" in rs["agent_run"].message


def test_the_beta17_error_frame_then_1011_is_recorded_with_its_close_and_exception():
    async def recursion(ws, me):
        await asyncio.sleep(0.3)
        await ws.send(json.dumps({"type": "error_message", "data": {
            "error_code": "CONNECTION_ERROR", "error_message": "Connection error in main mode",
            "details": {"error_type": "RecursionError", "mode": "main"}, "timestamp": "2025-09-20T10:00:00Z"},
            "timestamp": time.time(), "server_id": None, "correlation_id": None}))
        await ws.close(1011, "main mode error")
    with WsStub(recursion) as srv:
        rs = run(params(srv.ws_url), *WS_CHECKS)
    for r in rs.values():
        assert (r.status, r.category) == ("fail", "ws_error_frame"), r.message
        assert (r.ws_close_code, r.ws_close_reason, r.ws_closed_by) == (1011, "main mode error", "server")
        assert "CONNECTION_ERROR" in r.message and "RecursionError" in r.message and "1011" in r.message


def test_an_open_session_that_never_welcomes_still_gets_our_request():
    async def mute(ws, me):
        msg = await read_request(ws)
        await golden(ws, request_run_id(msg), me)
        await asyncio.sleep(30)
    with WsStub(mute) as srv:
        rs = run(params(srv.ws_url), "websocket_connect", "agent_run")
    assert rs["websocket_connect"].category == "ws_handshake_timeout"
    assert "opened" in rs["websocket_connect"].message and "no welcome" in rs["websocket_connect"].message
    assert rs["agent_run"].status == "pass"


@pytest.mark.parametrize("greeting", [
    {"type": "connect", "data": {"mode": "main", "connection_id": "main_1", "golden_path_events": list(FIVE)}},
    {"type": "authentication_success", "event": "auth_success", "user_id": ME},
    {"type": "system_message", "data": {"event": "connection_established", "connection_ready": True, "user_id": ME}},
])
def test_every_welcome_of_the_platform_is_recognised(greeting):
    async def greets(ws, me):
        await ws.send(json.dumps(greeting))
        while True:
            msg = await read_request(ws)
            await golden(ws, request_run_id(msg), me)
    with WsStub(greets) as srv:
        rs = run(params(srv.ws_url), "websocket_connect", "agent_run")
    assert all(r.status == "pass" for r in rs.values()), verdicts(rs)


def test_keepalives_interleaved_everywhere_change_nothing():
    async def chatty(ws, me):
        async def beat():
            while True:
                await ws.send(json.dumps({"type": "heartbeat", "data": {"connection_id": "main_1"},
                                          "timestamp": time.time()}))
                await asyncio.sleep(0.05)
        task = asyncio.create_task(beat())
        try:
            await healthy(ws, me)
        finally:
            task.cancel()
    with WsStub(chatty) as srv:
        rs = run(params(srv.ws_url), *WS_CHECKS)
    assert all(r.status == "pass" for r in rs.values()), verdicts(rs)


# -- routes and credentials ----------------------------------------------------------------------------

def test_a_path_without_a_route_is_named_with_the_path_that_works():
    with WsStub(healthy, serve_paths=("/ws",)) as srv:
        r = run(params(f"ws://127.0.0.1:{srv.port}/api/nows"), "websocket_connect")["websocket_connect"]
    assert (r.status, r.category) == ("fail", "ws_route_missing"), r.message
    assert "opens a session at /ws" in r.message and "point ws_url at /ws" in r.message


def test_when_nothing_can_tell_a_route_from_credentials_the_record_says_so():
    with WsStub(healthy, serve_paths=()) as srv:  # every upgrade: a bare 403, every GET: 404
        r = run(params(srv.ws_url), "websocket_connect")["websocket_connect"]
    assert r.category == "ws_upgrade_auth_rejected"
    assert "cannot tell a missing route from rejected credentials" in r.message


def test_a_path_that_refuses_differently_from_no_route_has_a_route():
    with WsStub(healthy, refuse={"/ws": (401, b"")}, serve_paths=()) as srv:
        r = run(params(srv.ws_url), "websocket_connect")["websocket_connect"]
    assert r.category == "ws_upgrade_auth_rejected" and "differently from a path with no route" in r.message


def test_an_http_only_route_is_route_missing():
    with WsStub(healthy, serve_paths=(), get={"/ws": (200, b'{"service":"websocket"}')}) as srv:
        r = run(params(srv.ws_url), "websocket_connect")["websocket_connect"]
    assert r.category == "ws_route_missing" and "only an HTTP route" in r.message


# -- tokens and HTTP answers -----------------------------------------------------------------------------

def test_an_e2e_endpoint_that_is_not_configured_is_auth_unavailable():
    routes = {("POST", "/auth/e2e/test-auth"): Answer(503, {"detail": "E2E authentication not configured"}),
              ("GET", "/health"): Answer(200, {"status": "healthy", "service": "auth-service"})}
    with HttpStub(routes) as auth_srv, WsStub(healthy) as srv:
        p = params(srv.ws_url, auth_srv.http_url, method="e2e_endpoint")
        rs = run(p, "auth_token", "websocket_connect", "agent_run", "agent_execute")
    assert {n: c for n, (s, c) in verdicts(rs).items()} == {n: "auth_unavailable" for n in rs}
    assert "E2E authentication not configured" in rs["auth_token"].message
    for name in ("websocket_connect", "agent_run", "agent_execute"):
        assert rs[name].message.startswith("not attempted: no token"), rs[name].message
        assert "upgrade" not in rs[name].message  # no upgrade was attempted with a token: none is claimed


def test_a_token_endpoint_that_is_down_with_its_service_is_an_outage():
    routes = {("POST", "/auth/e2e/test-auth"): Answer(503, {"status": "unhealthy", "message": "Startup in progress"}),
              ("GET", "/health"): Answer(503, {"status": "unhealthy"})}
    with HttpStub(routes) as auth_srv:
        r = run(params("ws://127.0.0.1:9/ws", auth_srv.http_url, method="e2e_endpoint"), "auth_token")["auth_token"]
    assert r.category == "http_unavailable"


def test_slow_failures_are_judged_not_cut_off():
    """A 503 after 1.2 s from the token endpoint and from its health: the check's deadline is the sum of the
    stages it enters, so the row carries the 503 it saw (not 'the check did not finish')."""
    slow = Answer(503, {"detail": "upstream connect error"}, delay=1.2)
    with HttpStub({("POST", "/auth/e2e/test-auth"): slow, ("GET", "/health"): slow,
                   ("POST", "/api/agents/execute"): slow}) as srv:
        r = run(params("ws://127.0.0.1:9/ws", srv.http_url, method="e2e_endpoint"), "agent_execute")["agent_execute"]
    assert (r.status, r.category, r.http_status) == ("fail", "http_unavailable", 503), r.message
    assert r.bytes_received > 0 and r.bytes_sent > 0


@pytest.mark.parametrize("answer, category", [
    ({"status": "success", "agent": "triage", "response": f"Mock triage agent response for: {REQUEST}",
      "execution_time": 0.0}, "mock_fallback"),
    ({"status": "success", "agent": "triage", "response": "Fallback triage agent response: Successfully processed "
      f"'{REQUEST}' using recovery mechanism", "execution_time": 0.0}, "mock_fallback"),
    ({"status": "success", "agent": "triage", "response": "Error executing triage agent: WebSocket manager not "
      "available for user test-user", "execution_time": 0.011}, "agent_failed"),
    ({"status": "success", "agent": "triage", "response": "Three slow joins; index events(created_at).",
      "execution_time": 0.0}, "mock_fallback"),
    ({"status": "service_unavailable", "agent": "triage", "response": "Degraded mode triage response",
      "execution_time": 0.01}, "http_unavailable"),
    ({"status": "success", "agent": "triage", "response": "Three slow joins; index events(created_at).",
      "execution_time": 0.84}, "ok"),
])
def test_the_execute_endpoint_passes_only_on_the_agents_own_answer(answer, category):
    with HttpStub({("POST", "/api/agents/execute"): Answer(200, answer)}) as srv:
        r = run(params("ws://127.0.0.1:9/ws", srv.http_url), "agent_execute")["agent_execute"]
    assert r.category == category, r.message


#: beta-14/17's answer when no discovery file exists (their log: "No service discovery files found, returning
#: fallback configuration"): the code's defaults, and "available": false
FALLBACK_SERVICES = {"services": {
    "backend": {"port": 8000, "url": "http://localhost:8000", "api_url": "http://localhost:8000",
                "ws_url": "ws://localhost:8000/ws", "timestamp": "2026-12-06T21:14:41.035473", "cors_metadata": None},
    "frontend": {"port": 3000, "url": "http://localhost:3000", "api_url": None, "ws_url": None,
                 "timestamp": "2026-12-06T21:14:41.035473", "cors_metadata": None},
    "auth": {"port": 8081, "url": "http://localhost:8081", "api_url": "http://localhost:8081", "ws_url": None,
             "timestamp": "2026-12-06T21:14:41.035473", "cors_metadata": None}},
    "timestamp": "2026-12-06T21:14:41.035599", "available": False}


@pytest.mark.parametrize("available, verdict", [
    (False, ("fail", "mock_fallback")),   # the platform says the list is its fallback defaults
    (True, ("pass", "ok")),
    (None, ("pass", "ok")),                # a shape without the flag is judged on its services alone
])
def test_service_discovery_does_not_pass_on_the_platforms_fallback_defaults(available, verdict):
    answer = dict(FALLBACK_SERVICES)
    if available is None:
        del answer["available"]
    else:
        answer["available"] = available
    with HttpStub({("GET", "/api/discovery/services"): Answer(200, answer)}) as srv:
        r = run(params("ws://127.0.0.1:9/ws", srv.http_url, http=10), "service_discovery")["service_discovery"]
    # a loaded machine may make the answer slower than the SLA: degraded is the same verdict for this rule
    assert (r.status.replace("degraded", "pass"), r.category) == verdict, r.message
    if available is False:
        assert "'available': false" in r.message and '"available":false' in r.detail.replace(" ", "")


# -- what is counted ---------------------------------------------------------------------------------------

def test_http_bytes_are_the_bytes_on_the_wire():
    body = json.dumps({"status": "healthy", "pad": "x" * 5000}).encode()
    with HttpStub({("GET", "/health"): Answer(200, body)}) as srv:
        r = run(params("ws://127.0.0.1:9/ws", srv.http_url), "health")["health"]
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    assert r.bytes_received == len(head) + len(body)
    assert r.bytes_sent > len("GET /health HTTP/1.1\r\n")


def test_websocket_bytes_include_every_frame_received():
    big = "y" * 20000

    async def wordy(ws, me):
        await ws.send(json.dumps(welcome(me)))
        await ws.recv()  # the ping
        await ws.send(json.dumps({"type": "pong", "pad": big}))
        await asyncio.sleep(30)
    with WsStub(wordy) as srv:
        r = run(params(srv.ws_url), "websocket_ping")["websocket_ping"]
    assert r.status == "pass" and r.bytes_received > 20000 + len(json.dumps(welcome(ME))) + 129  # + the 101


# -- fleets ----------------------------------------------------------------------------------------------

def test_a_fleet_runs_once_for_its_three_checks_and_percentiles_do_not_hide_failures():
    sessions: list[str] = []

    async def one_in_three(ws, me):
        sessions.append(me)
        await ws.send(json.dumps(welcome(me)))
        msg = await read_request(ws)
        if me.endswith("-0"):
            await golden(ws, request_run_id(msg), me)
        await asyncio.sleep(30)
    with WsStub(one_in_three) as srv:
        rs = run(params(srv.ws_url), "concurrent_agent_runs", "user_isolation", "latency_percentiles",
                 phase="orchestration")
    assert len(sessions) == 3  # one fleet, judged three ways
    assert rs["concurrent_agent_runs"].category == "agent_no_events"
    lat = rs["latency_percentiles"]
    assert (lat.status, lat.category) == ("fail", "agent_no_events")
    assert "1 of 3 runs would describe only the survivors" in lat.message


def test_fleet_sessions_judge_their_own_run_and_report_leaks_under_isolation():
    async def leaky(ws, me):
        await ws.send(json.dumps(welcome(me)))
        msg = await read_request(ws)
        await ws.send(json.dumps(event("agent_thinking", "run_of_someone", "e2e-stranger")))
        await golden(ws, request_run_id(msg), me)
        await asyncio.sleep(30)
    with WsStub(leaky) as srv:
        rs = run(params(srv.ws_url), "concurrent_agent_runs", "user_isolation", phase="orchestration")
    assert rs["concurrent_agent_runs"].status == "pass", rs["concurrent_agent_runs"].message
    assert (rs["user_isolation"].status, rs["user_isolation"].category) == ("fail", "cross_user_leak")


def test_a_fleets_route_probes_carry_the_users_own_token():
    # beta-14 with a ws_url that has no route: 403 whatever the token; /ws opens, and opens even a tokenless
    # session (as an anonymous user). A probe of "the same token" at /ws must carry the user's token: this
    # /ws refuses a tokenless upgrade, so a probe without one could not find the path that works.
    with WsStub(healthy, serve_paths=("/ws",), tokenless=(403, b"")) as srv:
        rs = run(params(f"ws://127.0.0.1:{srv.port}/api/nows"), "concurrent_agent_runs", phase="orchestration")
    r = rs["concurrent_agent_runs"]
    assert (r.status, r.category) == ("fail", "ws_route_missing"), r.message
    assert "opens a session at /ws" in r.message and "point ws_url at /ws" in r.message


def test_a_fleet_of_demo_users_fails_isolation_as_auth_ignored():
    async def demo(ws, me):
        await healthy(ws, "demo-user-001")
    with WsStub(demo) as srv:
        rs = run(params(srv.ws_url), "concurrent_agent_runs", "user_isolation", phase="orchestration")
    assert {c for _, c in verdicts(rs).values()} == {"ws_auth_ignored"}


# -- every variation of netra-contract.md's "Variations a client meets" ------------------------------------

def _variation_server(before_welcome=(), after_request=None, error_reply=None):
    async def session(ws, me):
        for frame in before_welcome:
            await ws.send(json.dumps(frame(me) if callable(frame) else frame))
        while True:
            msg = await read_request(ws)
            if after_request is not None:
                await after_request(ws, me, msg)
            else:
                await golden(ws, request_run_id(msg), me)
    return session


def test_variation_authentication_success_before_the_welcome():
    auth = lambda me: {"type": "authentication_success", "event": "auth_success", "user_id": me}  # noqa: E731
    with WsStub(_variation_server([auth, welcome])) as srv:
        rs = run(params(srv.ws_url), "websocket_connect", "agent_run")
    assert all(r.status == "pass" for r in rs.values()), verdicts(rs)


def test_variation_authentication_error_is_a_policy_failure():
    async def refuses(ws, me):
        await ws.send(json.dumps({"type": "authentication_error", "event": "auth_failed", "error": "Token expired",
                                  "error_code": "TOKEN_EXPIRED"}))
        await ws.close(1008, "Authentication failed")
    with WsStub(refuses) as srv:
        r = run(params(srv.ws_url), "websocket_connect")["websocket_connect"]
    assert r.category == "ws_policy_violation" and "TOKEN_EXPIRED" in r.message


@pytest.mark.parametrize("frame", [
    {"type": "error_message", "error_code": "CONNECTION_ERROR", "error_message": "main mode failed", "details": {}},
    {"type": "error_message", "data": {"error_code": "CONNECTION_ERROR", "error_message": "main mode failed"}},
    {"type": "error", "message": "main mode failed"},
])
def test_variation_error_frames_flat_nested_and_old(frame):
    async def fails(ws, me):
        await ws.send(json.dumps(frame))
        await ws.close(1011, "Internal error")
    with WsStub(fails) as srv:
        r = run(params(srv.ws_url), "agent_run")["agent_run"]
    assert r.category == "ws_error_frame" and "main mode failed" in r.message and r.ws_close_code == 1011


def test_variation_old_auth_error_code_is_a_policy_failure():
    async def fails(ws, me):
        await ws.send(json.dumps({"type": "error", "error_code": "AUTH_ERROR", "message": "bad token"}))
        await ws.close(1008, "auth")
    with WsStub(fails) as srv:
        r = run(params(srv.ws_url), "websocket_connect")["websocket_connect"]
    assert r.category == "ws_policy_violation"


def test_variation_early_era_server_pings_get_json_pongs_and_change_nothing():
    pongs = []

    async def early(ws, me):
        await ws.send(json.dumps({"type": "handshake_validation", "timestamp": time.time()}))
        await ws.send(json.dumps({"type": "system_message", "timestamp": time.time(), "data": {
            "event": "connection_established", "connection_ready": True, "user_id": me}}))
        await ws.send(json.dumps({"type": "ping", "timestamp": time.time()}))
        async for message in ws:
            data = json.loads(message)
            if data.get("type") == "pong":
                pongs.append(data)
                continue
            run_id = request_run_id(data)
            for kind in FIVE:
                await ws.send(json.dumps({"type": kind, "event": kind, "run_id": run_id, "user_id": me,
                                          "timestamp": time.time(), **({"result": "2 slow joins found"}
                                                                       if kind == "agent_completed" else {})}))
                await ws.send(json.dumps({"type": "ping", "timestamp": time.time()}))
    with WsStub(early) as srv:
        r = run(params(srv.ws_url), "agent_run")["agent_run"]
    assert r.status == "pass", r.message
    assert pongs  # the kit answered the server's JSON pings


def test_variation_other_event_types_and_agent_death():
    async def progress(ws, me, msg):
        run_id = request_run_id(msg)
        await ws.send(json.dumps(event("agent_started", run_id, me)))
        await ws.send(json.dumps({"type": "progress_update", "run_id": run_id, "data": {"percent": 40}}))
        await ws.send(json.dumps({"type": "agent_death", "run_id": run_id, "user_id": me,
                                  "data": {"error_message": "worker killed: out of memory"}}))

    async def wrapped(ws, me, msg):
        run_id = request_run_id(msg)
        for kind in FIVE[:-1]:
            await ws.send(json.dumps(event(kind, run_id, me)))
        await ws.send(json.dumps({"type": "agent_response_complete", "timestamp": time.time(), "data": {
            "event": "agent_completed", "run_id": run_id, "user_id": me, "status": "success",
            "result": {"summary": "the 02:00 batch doubles write latency"}}}))

    with WsStub(_variation_server([welcome], after_request=progress)) as srv:
        r = run(params(srv.ws_url), "agent_run")["agent_run"]
    assert r.category == "agent_failed" and "out of memory" in r.message
    with WsStub(_variation_server([welcome], after_request=wrapped)) as srv:
        r = run(params(srv.ws_url), "agent_run")["agent_run"]
    assert r.status == "pass", r.message


def test_variation_a_client_heartbeat_gets_heartbeat_ack_and_it_is_not_a_reply():
    async def acks(ws, me):
        await ws.send(json.dumps(welcome(me)))
        async for message in ws:
            await ws.send(json.dumps({"type": "heartbeat_ack", "timestamp": time.time()}))
    with WsStub(acks) as srv:
        r = run(params(srv.ws_url), "websocket_ping")["websocket_ping"]
    assert r.category == "ws_no_reply" and "heartbeat_ack" in r.message


# -- a check cut short by its deadline ----------------------------------------------------------------

@pytest.fixture
def overrunning_check():
    """A check that overruns its one stage after an HTTP call (a kit defect the deadline must contain)."""
    from netra_nb.checks import CHECKS, PHASE_CHECKS, Outcome, check

    @check("overruns_after_http", "test-only", "http", "test", "test", stages=("http",))
    async def overruns(ctx):
        await ctx.get("/health")
        await asyncio.sleep(60)
        return Outcome(None)  # never reached

    yield "overruns_after_http"
    CHECKS.pop("overruns_after_http")
    PHASE_CHECKS.pop("test-only")


def test_a_check_cut_short_is_judged_on_what_it_saw(overrunning_check):
    with HttpStub({("GET", "/health"): Answer(503, {"status": "unhealthy", "message": "Startup in progress"})}) as srv:
        r = run(params("ws://127.0.0.1:9/ws", srv.http_url, http=0.5), overrunning_check)[overrunning_check]
    assert (r.status, r.category, r.http_status) == ("fail", "http_unavailable", 503)
    assert "then the check's deadline of" in r.message and r.bytes_received > 0


@pytest.fixture
def check_cut_while_waiting():
    """A check that starts its request late in its one stage, so its deadline comes while the request waits."""
    from netra_nb.checks import CHECKS, DEADLINE_MARGIN, PHASE_CHECKS, Outcome, check

    @check("cut_while_waiting", "test-only", "http", "test", "test", stages=("http",))
    async def late(ctx):
        await asyncio.sleep(DEADLINE_MARGIN + ctx.params.timeout_http * 0.6)
        obs = await ctx.get("/health")
        return Outcome(None, http=obs)  # never reached: the deadline comes first

    yield "cut_while_waiting"
    CHECKS.pop("cut_while_waiting")
    PHASE_CHECKS.pop("test-only")


def test_a_request_waiting_when_the_deadline_comes_is_a_read_timeout(check_cut_while_waiting):
    """On a loaded machine the check's deadline can pass before the request's own timeout fires: the row is the
    request that got no answer (read_timeout, the bytes it sent), never 'error/unknown, nothing observed'."""
    with HttpStub({("GET", "/health"): Answer(200, {"status": "healthy"}, delay=30)}) as srv:
        r = run(params("ws://127.0.0.1:9/ws", srv.http_url, http=1.0), check_cut_while_waiting)[check_cut_while_waiting]
    assert (r.status, r.category, r.http_status) == ("fail", "read_timeout", None)
    assert "no answer within" in r.message and "then the check's deadline of" in r.message
    assert r.bytes_sent > 0 and r.bytes_received == 0
