"""The triage rules one by one, their order, and the diagnosis of single testcases (pure)."""

from __future__ import annotations

import re

import pytest
from triage_helpers import failing, junit_case

from netra_nb.categories import CODES
from netra_nb.triage import FAST_S, RULES, admissions, diagnose, match_rule, related_evidence

LOG = "DEBUG    websockets.client:protocol.py:599 "  # websockets' debug log, as pytest captures it
# One text per rule, as a pytest failure (or, for a sequence rule, a captured log) would show it; each
# must be decided by exactly that rule.
SAMPLES = {
    "subprotocol": "websockets.exceptions.NegotiationError: no subprotocols supported",
    "handshake_timeout": "TimeoutError: timed out during opening handshake",
    "upgrade_unanswered": "DEBUG    websockets.client:client.py:292 > GET /api/v1/websocket HTTP/1.1\n"
                          "DEBUG    websockets.client:protocol.py:757 > EOF",
    "upgrade_401_403": "websockets.exceptions.InvalidStatus: server rejected WebSocket connection: HTTP 403",
    "upgrade_404": "websockets.exceptions.InvalidStatusCode: server rejected WebSocket connection: HTTP 404",
    "upgrade_502_503_504": "server rejected WebSocket connection: HTTP 503",
    "upgrade_5xx": "websocket._exceptions.WebSocketBadStatusException: Handshake status 500 Internal Server Error",
    "keepalive": "ConnectionClosedError: sent 1011 (internal error) keepalive ping timeout; no close frame received",
    "close_1008": "ConnectionClosedError: received 1008 (policy violation) Authentication failed",
    "error_frame": 'AssertionError: got {"type": "error_message", "error_code": "JSON_PARSE_ERROR"}',
    "close_1011": "ConnectionClosedError: received 1011 (internal error) Internal error; then sent 1011 (internal error)",
    "close_normal": "ConnectionClosedOK: received 1000 (OK) main cleanup; then sent 1000 (OK) main cleanup",
    "close_1006": "ConnectionClosedError: no close frame received or sent",
    "agent_unanswered": LOG + "> TEXT '{\"type\": \"start_agent\", \"payload\": {...}}' [192 bytes]\n"
                        + LOG + "< TEXT '{\"type\":\"heartbeat\",\"timestamp\":1.0}' [51 bytes]\n"
                        + LOG + "> CLOSE 1000 (OK) [2 bytes]",
    "agent_unfinished": LOG + "> TEXT '{\"type\": \"start_agent\", \"payload\": {...}}' [192 bytes]\n"
                        + LOG + "< TEXT '{\"type\":\"agent_started\",\"run_id\":\"run_fdd11ace7...}' [90 bytes]\n"
                        + LOG + "< TEXT '{\"type\":\"tool_executing\",\"run_id\":\"run_fdd11ace...}' [90 bytes]\n"
                        + LOG + "< TEXT '{\"type\":\"heartbeat\",\"timestamp\":1.0}' [51 bytes]\n"
                        + LOG + "> CLOSE 1000 (OK) [2 bytes]",
    "events_out_of_order": LOG + "< TEXT '{\"type\":\"agent_started\",\"run_id\":\"run_fdd11ace7...}' [90 bytes]\n"
                           + LOG + "< TEXT '{\"type\":\"agent_thinking\",\"run_id\":\"run_fdd11ace...}' [90 bytes]\n"
                           + LOG + "< TEXT '{\"type\":\"tool_completed\",\"run_id\":\"run_fdd11ace...}' [90 bytes]\n"
                           + LOG + "< TEXT '{\"type\":\"tool_executing\",\"run_id\":\"run_fdd11ace...}' [90 bytes]",
    "foreign_run": LOG + "> TEXT '{\"type\": \"start_agent\", \"payload\": {...}}' [192 bytes]\n"
                   + LOG + "< TEXT '{\"type\":\"agent_started\",\"run_id\":\"run_68ab9af49...}' [90 bytes]\n"
                   + LOG + "< TEXT '{\"type\":\"agent_started\",\"run_id\":\"run_f1de5c3e2...}' [90 bytes]",
    "dropped_session": "DEBUG    websockets.client:protocol.py:175 = connection is OPEN\n"
                       "DEBUG    websockets.client:protocol.py:574 < EOF",
    "auth_ignored": "[SUCCESS] Created staging JWT for EXISTING user: staging-e2e-user-002\n"
                    '[INFO] WebSocket response received: {"type":"connection_established","data":{"user_id":"demo-use..."}}',
    "health_body": 'AssertionError: {"status":"degraded","checks":{"redis":"Timeout connecting to server"}}',
    "e2e_not_configured": 'AssertionError: Failed to get test token: 503 - {"detail": "E2E authentication not configured"}',
    "agent_failed": 'AssertionError: received agent_error: {"type": "agent_error", "data": {"error_message": "boom"}}',
    "agent_empty_result": "AssertionError: agent_completed arrived without a result",
    "agent_no_events": "AssertionError: Should receive WebSocket events from agent execution",
    "agent_incomplete": "AssertionError: never received agent_completed (saw agent_started, agent_thinking)",
    "no_reply": "AssertionError: No response to ping within 5s",
    "http_502_503_504": "AssertionError: API health check failed: Unexpected status: 503",
    "http_5xx": 'AssertionError: Unexpected status: 500, body: {"error":"Internal server error"}',
    "http_401_403": "httpx.HTTPStatusError: Client error '401 Unauthorized' for url 'https://auth/auth/e2e/test-auth'",
    "http_404": "assert 404 == 200",
    "http_4xx": "AssertionError: status_code == 422 for POST /api/agents/execute",
    "dns": "httpx.ConnectError: [Errno -2] Name or service not known",
    "refused": "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 8000)",
    "connect_failed": "httpx.ConnectError: All connection attempts failed",
    "unreachable": "OSError: [Errno 101] Network is unreachable",
    "tls_timeout": "ConnectionAbortedError: SSL handshake is taking longer than 0.5 seconds: aborting the connection",
    "tls": "ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
    "connect_timeout": "httpx.ConnectTimeout: timed out while connecting",
    "health_words": "AssertionError: assert 'unhealthy' == 'healthy'",
    "read_timeout": "httpx.ReadTimeout: The read operation timed out",
    "dropped": "httpx.RemoteProtocolError: Server disconnected without sending a response.",
    "contract": "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
    "config": "RuntimeError: environment variable E2E_OAUTH_SIMULATION_KEY is not set",
    "client": "AttributeError: 'ClientConnection' object has no attribute 'open'",
}


def test_every_rule_has_a_sample_and_categories_are_codes():
    assert set(SAMPLES) == {r.name for r in RULES}
    assert len({r.name for r in RULES}) == len(RULES)
    assert all(r.category in CODES for r in RULES)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_each_rule_decides_its_sample(rule):
    if rule.sequence:  # found by reading a log in order, never by a pattern alone
        assert rule.pattern.search(SAMPLES[rule.name]) and match_rule(SAMPLES[rule.name]) is None
        admitted = admissions(SAMPLES[rule.name])
        assert (admitted.rule, admitted.category) == (rule.name, rule.category)
        return
    found = match_rule(SAMPLES[rule.name])
    assert found is not None
    assert (found[0].name, found[1]) == (rule.name, rule.category)


@pytest.mark.parametrize("text, category", [
    # the brief's examples
    ("ConnectionClosedError: received 1011 (internal error) Internal error", "ws_internal_error"),
    ("server rejected WebSocket connection: HTTP 503", "ws_upgrade_unavailable"),
    ("server rejected WebSocket connection: HTTP 403", "ws_upgrade_auth_rejected"),
    ("NegotiationError: no subprotocols supported", "ws_subprotocol_mismatch"),
    ("received 1000 (OK) main cleanup", "ws_closed_early"),
    ("timed out during opening handshake", "ws_handshake_timeout"),
    ("Unexpected status: 500", "http_server_error"),
    ("Unexpected status: 503", "http_unavailable"),
    ('{"status":"degraded"}', "health_degraded"),
    ("TimeoutError: timed out waiting for agent events after 30s", "agent_no_events"),
    ("Should receive WebSocket events", "agent_no_events"),
    # order: where two rules could apply, the more telling one wins
    ("sent 1011 (internal error) keepalive ping timeout; no close frame received", "ws_keepalive_timeout"),
    ('Unexpected status: 500, body: {"error":"could not connect to server: Connection refused"}', "http_server_error"),
    ('{"status":"degraded","checks":{"redis":{"error":"Timeout connecting to server"}}}', "health_degraded"),
    ('Unexpected status: 503, body: {"status":"unhealthy","message":"Startup in progress"}', "http_unavailable"),
    ("fixture 'staging_client' not found", "client_error"),
    ('{"type":"error","message":"Internal server error"}', "ws_error_frame"),
    ("msg = await asyncio.wait_for(ws.recv(), timeout=3)\nE   TimeoutError", "agent_no_events"),
    ("timed out waiting for response from /api/mcp/servers", "read_timeout"),
    ("async with websockets.connect(WS_URL, subprotocols=[f'jwt.{token}']) as ws:\n"
     "E   websockets.exceptions.InvalidStatus: server rejected WebSocket connection: HTTP 403", "ws_upgrade_auth_rejected"),
    ("AssertionError: Missing events: {'agent_started', 'agent_thinking', 'agent_completed'}", "agent_no_events"),
    ("received 1001 (going away)", "ws_closed_early"),
    ("websocket-client: Handshake status 404 Not Found", "ws_route_missing"),
    ("HTTPStatusError: Server error '502 Bad Gateway' for url", "http_unavailable"),
])
def test_categories_from_failure_texts(text, category):
    assert match_rule(text)[1] == category


def test_nothing_matches_plain_assertions():
    assert match_rule("AssertionError: assert 3 == 4") is None
    assert match_rule("") is None


# -- 403: credentials or a missing route ---------------------------------------------------------------

REFUSED = "websockets.exceptions.InvalidStatus: server rejected WebSocket connection: HTTP 403"


@pytest.mark.parametrize("output, category", [
    ("Connecting to wss://api.x/api/v1/websocket\nGET https://api.x/api/v1/websocket -> 200 {\"service\":\"websocket\"}",
     "ws_route_missing"),
    ('Connecting to wss://api.x/api/v1/websocket\nHTTP Request: GET https://api.x/api/v1/websocket "HTTP/1.1 200 OK"',
     "ws_route_missing"),
    ("Connecting to wss://api.x/ws\nGET https://api.x/health -> 200", "ws_upgrade_auth_rejected"),  # another path
    ("Connecting to wss://api.x/api/v1/websocket\nGET https://api.x/api/v1/websocket -> 404", "ws_upgrade_auth_rejected"),
    ("GET /api/v1/websocket answered 200", "ws_route_missing"),  # no WebSocket URL, a path that looks like one
    ("", "ws_upgrade_auth_rejected"),
])
def test_403_on_upgrade_is_a_missing_route_only_when_a_get_on_that_path_answered_200(output, category):
    d = diagnose(failing(REFUSED, stdout=output))
    assert (d.status, d.category, d.http_status) == ("fail", category, 403)
    if category == "ws_route_missing":
        assert "GET on the same path answered 200" in d.detail


def test_another_testcases_get_200_is_context_never_the_category():
    probe = junit_case("test_probe", stdout="GET https://api.x/api/v1/websocket -> 200 {\"service\":\"websocket\"}")
    upgrade = failing(REFUSED, name="test_upgrade", stdout="Connecting to wss://api.x/api/v1/websocket")
    alone = diagnose(upgrade)
    related = related_evidence([probe, upgrade])
    with_context = diagnose(upgrade, related)
    assert alone.category == with_context.category == "ws_upgrade_auth_rejected"
    assert (alone.status, alone.rule) == (with_context.status, with_context.rule)
    assert "test_probe" not in alone.detail
    assert "context only" in with_context.detail and "test_probe" in with_context.detail
    assert "cannot tell a missing route from refused credentials" in with_context.detail


def test_no_testcase_changes_another_ones_category():
    """Each testcase of a run triaged alone and triaged with every other one gets the same category."""
    cases = [
        junit_case("test_probe", stdout="GET https://api.x/api/v1/websocket -> 200"),
        failing(REFUSED, name="test_upgrade"),
        failing("AssertionError: assert False", name="test_quality"),
        junit_case("test_connect", stdout="[INFO] Attempting WebSocket connection to: wss://api.x/api/v1/websocket"),
        failing("AssertionError: Test too fast (0.039s)", name="test_fast",
                stdout="received 1011 (internal error) Internal error; then sent 1011 (internal error) Internal error"),
        failing("AssertionError: assert 0 > 0", name="test_events",
                stdout="[ERROR] Unexpected WebSocket connection error: no close frame received or sent"),
        junit_case("test_token", stdout="[SUCCESS] Created staging JWT for EXISTING user: staging-e2e-user-002"),
        junit_case("test_welcome", stdout='[INFO] received: {"type":"connection_established","data":{"user_id":"demo-use..."}}'),
        junit_case("test_health", stdout='HTTP Request: GET http://a:8000/health "HTTP/1.1 200 OK"'),
        junit_case("test_auth", stdout='HTTP Request: POST http://a:8000/auth/e2e/test-auth "HTTP/1.1 503 Service Unavailable"'),
    ]
    related = related_evidence(cases)
    together = [(d.status, d.category) for d in (diagnose(c, related) for c in cases)]
    alone = [(d.status, d.category) for d in (diagnose(c) for c in cases)]
    assert together == alone
    assert together == [("pass", "ok"), ("fail", "ws_upgrade_auth_rejected"), ("fail", "unknown"), ("pass", "ok"),
                        ("fail", "ws_internal_error"), ("fail", "ws_abnormal_close"), ("pass", "ok"), ("pass", "ok"),
                        ("pass", "ok"), ("fail", "http_unavailable")]


# -- evidence fields ----------------------------------------------------------------------------------------

def test_close_code_reason_and_side_are_parsed():
    d = diagnose(failing("ConnectionClosedError: received 1011 (internal error) Internal error; then sent 1011 (internal error) Internal error"))
    assert (d.ws_close_code, d.ws_close_reason, d.ws_closed_by) == (1011, "Internal error", "server")
    assert "before or after the first client message is unknown" in d.detail
    d = diagnose(failing("ConnectionClosedError: sent 1011 (internal error) keepalive ping timeout; no close frame received"))
    assert (d.category, d.ws_close_code, d.ws_closed_by) == ("ws_keepalive_timeout", 1011, "client")


def test_http_status_comes_from_the_failure_before_the_output():
    d = diagnose(failing("AssertionError: Unexpected status: 500", stdout='HTTP Request: GET https://a/health "HTTP/1.1 200 OK"'))
    assert d.http_status == 500 and d.category == "http_server_error"
    assert diagnose(junit_case(stdout="GET https://a/health -> 200")).http_status == 200


def test_the_output_decides_when_the_failure_says_nothing():
    d = diagnose(failing("AssertionError: assert False", stdout="server rejected WebSocket connection: HTTP 503"))
    assert d.category == "ws_upgrade_unavailable" and d.rule == "upgrade_502_503_504"
    assert "names no platform failure; its own output does" in d.detail


def test_unknown_failures_keep_their_raw_evidence():
    d = diagnose(failing("AssertionError: assert 3 == 4", stdout="some output"))
    assert (d.status, d.category) == ("fail", "unknown") and "assert 3 == 4" in d.detail and "some output" in d.detail


def test_an_error_element_is_a_platform_failure_when_the_evidence_says_so_else_an_error():
    setup = junit_case(outcome="error", message='failed on setup with "httpx.ConnectError: [Errno 111] Connection refused"')
    assert (diagnose(setup).status, diagnose(setup).category) == ("fail", "connection_refused")
    teardown = junit_case(outcome="error", message="failed on teardown with \"KeyError: 'x'\"")
    assert (diagnose(teardown).status, diagnose(teardown).category) == ("error", "unknown")


def test_a_skip_stays_a_skip_and_names_what_its_reason_points_at():
    d = diagnose(junit_case(outcome="skipped", message="staging unreachable: Unexpected status: 503", time=0.0))
    assert (d.status, d.category, d.findings) == ("skip", "ok", ())
    assert "http_unavailable" in d.message


def test_detail_is_redacted_and_truncated():
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl"
    d = diagnose(failing(f"AssertionError: Authorization: Bearer {jwt}", stdout="x" * 20_000 + "THE END"))
    assert jwt not in d.detail and jwt not in d.message and "[REDACTED]" in d.detail
    assert len(d.detail) < 4200 and d.detail.rstrip().endswith(".xml") and "characters cut" in d.detail


# -- honesty checks on passes --------------------------------------------------------------------------------

@pytest.mark.parametrize("output", [
    "Using MockWebSocketManager due to connection failure",
    "WARNING: using mock WebSocket for staging tests",
    "No WebSocket events received, falling back to mock WebSocket",
    "fallback to mock agent",
    "MockWebSocket connected",
])
def test_a_pass_with_a_mock_in_its_output_is_a_mock_fallback(output):
    d = diagnose(junit_case("test_real_agent_execution", time=2.7, stdout=output))
    assert (d.status, d.category, d.findings) == ("fail", "mock_fallback", ("mock_fallback",))
    assert "mock" in d.message


def test_a_failure_with_a_mock_keeps_its_category_and_gains_the_finding():
    d = diagnose(failing("AssertionError: Should receive WebSocket events", stderr="using mock WebSocket for staging tests"))
    assert (d.category, d.findings) == ("agent_no_events", ("mock_fallback",))


@pytest.mark.parametrize("name, classname, time, stdout, flagged", [
    ("test_websocket_connection", "tests.e2e.test_ws", 0.0, "", True),
    ("test_001_real_agent_execution", "tests.suite", 0.000, "", True),
    ("test_format_message", "tests.e2e.staging.test_priority1", 0.009, "", False),  # only the module says staging
    ("test_004_report", "tests.e2e.staging.test_real_agent_execution_staging.TestRealAgent", 0.001, "", False),
    ("test_parse", "tests.local.test_parser", 0.001, "GET https://api.staging.netrasystems.ai/health -> 200", True),
    ("TestWebSocket", "tests.local", 0.0, "", True),  # CamelCase words count
    ("test_parse_frame", "tests.local.test_frames", 0.0, "", False),  # a local unit test
    ("test_websocket_frame_parsing", "tests.unit.test_ws_frames", 0.0, "", False),  # unit tests may name the network
    ("test_websocket_connection", "tests.e2e.test_ws", FAST_S, "", False),  # 10 ms is not under 10 ms
    ("test_websocket_connection", "tests.e2e.test_ws", None, "", False),  # no time: nothing to judge
])
def test_fake_fast_flags_fast_passes_that_claim_network_work(name, classname, time, stdout, flagged):
    d = diagnose(junit_case(name, classname=classname, time=time, stdout=stdout))
    if flagged:
        assert (d.status, d.category, d.findings) == ("fail", "fake_fast", ("fake_fast",))
        assert "10 ms" in d.detail
    else:
        assert (d.status, d.category, d.findings) == ("pass", "ok", ())


def test_fast_failures_and_skips_are_not_fake_fast():
    assert diagnose(failing("ConnectionRefusedError: [Errno 111] Connection refused", name="test_api_health", time=0.0)).findings == ()
    assert diagnose(junit_case("test_api_health", outcome="skipped", time=0.0)).findings == ()


def test_both_findings_on_one_pass_put_the_mock_first():
    d = diagnose(junit_case("test_real_agent_execution", time=0.0, stdout="Using MockWebSocketManager"))
    assert d.category == "mock_fallback" and d.findings == ("mock_fallback", "fake_fast")


def test_an_honest_pass_is_evidence_only():
    d = diagnose(junit_case("test_real_agent_discovery", time=1.067, stdout='HTTP Request: GET https://a/api/mcp/servers "HTTP/1.1 200 OK"'))
    assert (d.status, d.category, d.findings) == ("pass", "ok", ())
    assert "no wire evidence" in d.message and "triage: no wire evidence" in d.detail


# -- redaction comes before any cut --------------------------------------------------------------------------

SECRET = "s3cr3t-Value-" + "Q7x9Kp2Lm4Nz8Rw1Tb6Yc3" * 2


def _pieces(text: str, secret: str = SECRET, size: int = 8) -> list[str]:
    return [secret[i:i + size] for i in range(len(secret) - size + 1) if secret[i:i + size] in text]


@pytest.mark.parametrize("offset", [0, 200, 230, 236, 239, 250])
def test_a_secret_across_every_cut_never_survives_even_in_part(offset):
    from netra_nb.redact import register_secret
    register_secret(SECRET)
    line = "x" * offset + f"Authorization header value {SECRET} rejected with HTTP 503"
    output = "\n".join([f"[EXPECTED] {line} - accepted as a staging limitation",
                        f"GET https://api.x/api/v1/websocket {SECRET} -> 200 " + "y" * 300])
    for case in (failing(line, stdout=output), junit_case("test_pass", stdout=output),
                 junit_case("test_skip", outcome="skipped", message=line)):
        d = diagnose(case, related_evidence([case]))
        for text in (d.message, d.detail, d.target or "", d.ws_close_reason or ""):
            assert not _pieces(text), (case.name, text)
    for text in related_evidence([junit_case(stdout=output)]):
        assert not _pieces(text)


# -- passes whose own output admits a failure -------------------------------------------------------------------

def test_the_admission_patterns_are_lowercase_because_they_read_lowercased_output():
    from netra_nb.triage import _ACCEPTED, _FAILED, ADMISSIONS
    for pattern in [p for _, p in ADMISSIONS] + [_ACCEPTED, _FAILED]:
        assert not re.search(r"[A-Z]", re.sub(r"\\[A-Za-z]", "", pattern.pattern)), pattern.pattern
        assert not pattern.flags & re.IGNORECASE


@pytest.mark.parametrize("output, category", [
    ("[EXPECTED] WebSocket authentication rejected (HTTP 403): server rejected WebSocket connection: HTTP 403",
     "ws_upgrade_auth_rejected"),
    ("[WARNING] Connection closed: received 1011 (internal error) Internal error; then sent 1011 (internal error) "
     "Internal error - known issue in staging, accepting", "ws_internal_error"),
    ('[INFO] Received: {"type": "error_message", "error_code": "CONNECTION_ERROR", "error_message": "main mode failed"}',
     "ws_error_frame"),
    ("[WARNING] /api/mcp/servers answered 503 - accepted as a staging limitation", "http_unavailable"),
    ("[PARTIAL PASS] WebSocket authentication working (JWT accepted), but staging server has issues\n"
     "[WARNING] WebSocket server error (HTTP 500): server rejected WebSocket connection: HTTP 500",
     "ws_upgrade_server_error"),
    ("[INFO] No response received within timeout (may be normal)", "ws_no_reply"),
    ("DEBUG    websockets.client:protocol.py:599 < CLOSE 1000 (OK) main cleanup [14 bytes]\n"
     "DEBUG    websockets.client:protocol.py:745 > CLOSE 1000 (OK) main cleanup [14 bytes]", "ws_closed_early"),
    ("DEBUG    websockets.client:protocol.py:175 = connection is OPEN\n"
     "DEBUG    websockets.client:protocol.py:599 < TEXT '{\"type\":\"connection_established\"}' [40 bytes]\n"
     "DEBUG    websockets.client:protocol.py:574 < EOF", "ws_abnormal_close"),
    ("DEBUG    websockets.client:protocol.py:745 > TEXT '{\"type\": \"start_agent\", \"payload\": {...}}' [192 bytes]\n"
     "DEBUG    websockets.client:protocol.py:599 < TEXT '{\"type\":\"heartbeat\",\"timestamp\":1.0}' [51 bytes]\n"
     "DEBUG    websockets.client:protocol.py:745 > CLOSE 1000 (OK) [2 bytes]", "agent_no_events"),
    ("DEBUG    websockets.client:protocol.py:745 > TEXT '{\"id\": \"req_1\", \"type\": \"start_agent\", \"...}' [396 bytes]\n"
     "DEBUG    websockets.client:protocol.py:599 < TEXT '{\"type\":\"ack\",\"received_type\":\"start_agent\"}' [60 bytes]\n"
     "ERROR    tests.e2e.staging.test_real:test_real.py:330 Overall timeout reached: 120s\n"
     "DEBUG    websockets.client:protocol.py:745 > CLOSE 1000 (OK) [2 bytes]", "agent_no_events"),
    ("WARNING  tests.e2e.staging.test_real:test_real.py:352 Missing events: ['agent_started', 'agent_thinking']",
     "agent_no_events"),
    ("DEBUG    websockets.client:protocol.py:745 > TEXT '{\"type\": \"start_agent\", \"payload\": {...}}' [192 bytes]\n"
     "DEBUG    websockets.client:protocol.py:599 < TEXT '{\"type\":\"agent_started\",\"run_id\":\"r...}' [90 bytes]\n"
     "DEBUG    websockets.client:protocol.py:599 < TEXT '{\"type\":\"tool_executing\",\"agent_name\":...}' [90 bytes]\n"
     "DEBUG    websockets.client:protocol.py:599 < TEXT '{\"type\":\"heartbeat\",\"timestamp\":1.0}' [51 bytes]\n"
     "DEBUG    websockets.client:protocol.py:745 > CLOSE 1000 (OK) [2 bytes]", "agent_incomplete"),
    ("DEBUG    websockets.client:connection.py:837 - timed out waiting for keepalive pong", "ws_keepalive_timeout"),
    ("DEBUG    httpcore.http11:_trace.py:87 receive_response_headers.failed exception=ReadTimeout(TimeoutError())",
     "read_timeout"),
    ("[WARNING] Received non-JSON data: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
     "contract_mismatch"),
    (SAMPLES["events_out_of_order"], "agent_event_order"),
    (SAMPLES["foreign_run"], "cross_user_leak"),
    ("WARNING  tests.e2e.staging.test_real:test_real.py:325 Timeout waiting for events after 30.0s", "agent_no_events"),
    ("[WARNING] graceful degradation: the agent did not respond", "unknown"),  # a label, no rule names it
    (SAMPLES["auth_ignored"], "ws_auth_ignored"),
    # no frame shows the wait, but the test says it waited: a request nothing answered, a run that stopped
    (LOG + "> TEXT '{\"type\": \"message\", \"content\": \"Test WebSocket ...}' [123 bytes]\n"
     + LOG + "< TEXT '{\"type\":\"connection_established\",\"data\":{\"mode\"...}' [488 bytes]\n"
     + LOG + "> CLOSE 1000 (OK) [2 bytes]\n[INFO] Received event: connection_established\n"
       "[INFO] No more events received within timeout", "agent_no_events"),
    (LOG + "> TEXT '{\"type\": \"message\", \"content\": \"Test WebSocket ...}' [123 bytes]\n"
     + LOG + "< TEXT '{\"type\":\"agent_started\",\"run_id\":\"run_84f53c13e...}' [297 bytes]\n"
     + LOG + "< TEXT '{\"type\":\"tool_executing\",\"run_id\":\"run_84f53c13...}' [306 bytes]\n"
     + LOG + "> CLOSE 1000 (OK) [2 bytes]\n[INFO] No more events received within timeout", "agent_incomplete"),
    # the events carry the stand-in whole (a Python repr), the token was made for another user
    ("[SSOT AUTH] Session seed: 5986648, Selected user: staging-e2e-user-002\n"
     "INFO     tests.e2e.t:t.py:509 Execution metrics: events_received=[{'type': 'agent_started', 'user_id': "
     "'demo-user-001', 'run_id': 'run_1'}]", "ws_auth_ignored"),
    # the anonymous fallback a ?token= gets, in an ack, quoted inside a structured log record
    ("[SUCCESS] Created staging-compatible JWT token for: staging-e2e-user-001\n"
     '{"severity":"INFO","message":"got {\\"type\\":\\"ack\\",\\"user_id\\":\\"relaxed_3fa9c2d1\\"}"}', "ws_auth_ignored"),
    # the E2E endpoint not serving while its host serves /health: not configured (the body is not logged)
    ('INFO     httpx:_client.py:1025 HTTP Request: GET http://127.0.0.1:8000/health "HTTP/1.1 200 OK"\n'
     "DEBUG    httpcore.http11:_trace.py:87 receive_response_headers.complete return_value=(b'HTTP/1.1', 503, "
     "b'Service Unavailable', [])\n"
     'INFO     httpx:_client.py:1740 HTTP Request: POST http://127.0.0.1:8000/auth/e2e/test-auth '
     '"HTTP/1.1 503 Service Unavailable"\n'
     "[WARNING] SSOT staging auth bypass failed: No valid bypass key found", "auth_unavailable"),
])
def test_a_pass_whose_own_output_admits_a_failure_is_that_failure(output, category):
    d = diagnose(junit_case("test_websocket_connection", time=0.2, stdout=output))
    assert (d.status, d.category) == ("fail", category)
    assert d.message.startswith("passed in 0.200s, but its own output shows the failure")
    assert "the test passed, but its own output shows a failure" in d.detail


@pytest.mark.parametrize("output", [
    "[INFO] Error frame for invalid JSON: {'type': 'error_message', 'error_code': 'JSON_PARSE_ERROR'}",
    "DEBUG    websockets.client:protocol.py:599 < TEXT '{\"type\":\"error\",\"message\":\"Please enter a message\"}'",
    "DEBUG    websockets.client:protocol.py:599 < TEXT '{\"type\":\"error_message\",\"error_code\":\"JSON_PA...}'",
    "DEBUG    websockets.client:protocol.py:745 > CLOSE 1000 (OK) [2 bytes]\n"
    "DEBUG    websockets.client:protocol.py:599 < CLOSE 1000 (OK) [2 bytes]",  # the echo of our own close
    "[INFO] closed as asked: sent 1000 (OK); then received 1000 (OK)",
    "[FALLBACK] Created staging-compatible JWT token for: staging-e2e-user-001",  # a client-side fallback
    "[WARNING] SSOT staging auth bypass failed: E2E_OAUTH_SIMULATION_KEY not provided",  # the client's config
    "[SUCCESS] This fixes WebSocket 403 authentication failures",  # a boast, not a failure
    "HTTP Request: GET http://127.0.0.1:8000/api/agents/status \"HTTP/1.1 404 Not Found\"",  # a probe
    "DEBUG    websockets.client:client.py:318 < HTTP/1.1 101 Switching Protocols",
    # the reply to an empty request, its middle elided by websockets' log (the frame carries a timestamp)
    "DEBUG    websockets.client:protocol.py:599 < TEXT '{\"type\":\"error\",\"message\":\"Please enter a messa..."
    "mp\":1795994409.8363287}' [82 bytes]",
    # a stand-in user, but nothing in the output says whose the test's credentials were
    '[INFO] WebSocket response received: {"type":"connection_established","data":{"user_id":"demo-use..."}}',
    # the stand-in is the user the test's token was made for
    "[SUCCESS] Created staging JWT for EXISTING user: demo-user-001\n"
    '[INFO] WebSocket response received: {"type":"connection_established","data":{"user_id":"demo-use..."}}',
    # the stand-in is in what the test sent, not in what the platform answered
    "[SUCCESS] Created staging JWT for EXISTING user: staging-e2e-user-002\n"
    "DEBUG    websockets.client:protocol.py:745 > TEXT '{\"type\": \"ping\", \"user_id\": \"demo-user-001\"}' [47 bytes]",
    # welcomed as a user the output does not name, who is no stand-in: nothing tells whose token was sent
    "[SUCCESS] Created staging JWT for EXISTING user: staging-e2e-user-001\n"
    '[INFO] WebSocket response received: {"type":"connection_established","data":{"user_id":"e2e-stag..."}}',
    # a request the test did not wait for: it closed at once
    "DEBUG    websockets.client:protocol.py:745 > TEXT '{\"type\": \"execute_agent\", \"agent\": \"\"}' [51 bytes]\n"
    "DEBUG    websockets.client:protocol.py:745 > CLOSE 1000 (OK) [2 bytes]",
    # the client closed right after the welcome: it did not wait
    "DEBUG    websockets.client:protocol.py:745 > TEXT '{\"id\": \"t_1\", \"type\": \"start_agent\", ...}' [177 bytes]\n"
    "DEBUG    websockets.client:protocol.py:599 < TEXT '{\"type\":\"connection_established\",\"data\":{...}' [267 bytes]\n"
    "DEBUG    websockets.client:protocol.py:745 > CLOSE 1000 (OK) [2 bytes]",
    # an ack of an earlier message is no answer to the request, and no sign that the client waited for it
    "DEBUG    websockets.client:protocol.py:745 > TEXT '{\"type\": \"execute_agent\", \"agent\": \"\"}' [51 bytes]\n"
    "DEBUG    websockets.client:protocol.py:599 < TEXT '{\"type\":\"ack\",\"received_type\":null}' [59 bytes]\n"
    "DEBUG    websockets.client:protocol.py:745 > CLOSE 1000 (OK) [2 bytes]",
    # two sessions of one test, each with its own request and run: neither run is foreign, none out of order
    LOG + "> TEXT '{\"type\": \"start_agent\"}' [24 bytes]\n" + LOG + "> TEXT '{\"type\": \"start_agent\"}' [24 bytes]\n"
    + LOG + "< TEXT '{\"type\":\"agent_started\",\"run_id\":\"run_68ab9af49...}' [90 bytes]\n"
    + LOG + "< TEXT '{\"type\":\"agent_started\",\"run_id\":\"run_f1de5c3e2...}' [90 bytes]\n"
    + LOG + "< TEXT '{\"type\":\"agent_completed\",\"run_id\":\"run_68ab9af...}' [90 bytes]\n"
    + LOG + "< TEXT '{\"type\":\"agent_completed\",\"run_id\":\"run_f1de5c3...}' [90 bytes]",
    # the same words after a finished run: the test waited for more than the run sent, nothing failed
    LOG + "> TEXT '{\"type\": \"message\", \"content\": \"Test WebSocket ...}' [123 bytes]\n"
    + LOG + "< TEXT '{\"type\":\"agent_started\",\"run_id\":\"run_0eb7e9777...}' [297 bytes]\n"
    + LOG + "< TEXT '{\"type\":\"agent_completed\",\"run_id\":\"run_0eb7e97...}' [412 bytes]\n"
    + LOG + "> CLOSE 1000 (OK) [2 bytes]\n[INFO] No more events received within timeout",
    # answered: an agent event came
    "DEBUG    websockets.client:protocol.py:745 > TEXT '{\"type\": \"start_agent\", \"payload\": {...}}' [192 bytes]\n"
    "DEBUG    websockets.client:protocol.py:599 < TEXT '{\"type\":\"heartbeat\",\"timestamp\":1.0}' [51 bytes]\n"
    "DEBUG    websockets.client:protocol.py:599 < TEXT '{\"type\":\"agent_started\",\"run_id\":\"r...}' [90 bytes]\n"
    "DEBUG    websockets.client:protocol.py:745 > CLOSE 1000 (OK) [2 bytes]",
])
def test_output_that_only_looks_alarming_leaves_a_pass_a_pass(output):
    d = diagnose(junit_case("test_websocket_connection", time=0.2, stdout=output))
    assert (d.status, d.category) == ("pass", "ok")


def test_a_failure_whose_own_text_names_the_test_code_takes_the_failure_its_output_admits():
    d = diagnose(failing("RuntimeError: generator didn't stop after athrow()",
                         stdout="DEBUG    websockets.client:protocol.py:599 < CLOSE 1011 (internal error) Internal error"))
    assert (d.status, d.category) == ("fail", "ws_internal_error")
    assert "the failure itself is the test code's (client_error" in d.detail
    alone = diagnose(failing("RuntimeError: generator didn't stop after athrow()"))
    assert (alone.status, alone.category) == ("error", "client_error")


def test_an_error_frame_in_the_output_of_a_1011_failure_names_what_failed():
    d = diagnose(failing("ConnectionClosedError: received 1011 (internal error) Internal error; then sent 1011",
                         stdout="DEBUG    websockets.client:protocol.py:599 < TEXT "
                                "'{\"type\":\"error_message\",\"error_code\":\"CONNECTIO...mp\":1.0}' [164 bytes]"))
    assert (d.category, d.rule) == ("ws_error_frame", "error_frame")


# -- the E2E endpoint's 503: not configured, or not serving ------------------------------------------------------

HEALTH_200 = 'INFO     httpx:_client.py:1025 HTTP Request: GET http://127.0.0.1:8000/health "HTTP/1.1 200 OK"'
E2E_503 = 'INFO     httpx:_client.py:1740 HTTP Request: POST http://127.0.0.1:8000/auth/e2e/test-auth ' \
          '"HTTP/1.1 503 Service Unavailable"'


@pytest.mark.parametrize("output, category", [
    (f"{HEALTH_200}\n{E2E_503}", "auth_unavailable"),
    (f"{E2E_503}\n{HEALTH_200}", "auth_unavailable"),  # in either order
    # nothing shows the service up: a 503 of the whole service looks the same
    (E2E_503, "http_unavailable"),
    # another host answered: it says nothing of the auth service
    (f"{HEALTH_200.replace('127.0.0.1:8000', 'backend:8000')}\n{E2E_503}", "http_unavailable"),
    # another path of the same host was not serving either
    (f"{HEALTH_200}\n{E2E_503}\n" + 'HTTP Request: GET http://127.0.0.1:8000/api/health "HTTP/1.1 503 Service Unavailable"',
     "http_unavailable"),
    # the E2E endpoint itself answering 200 another time is no sign of the rest of the service
    (f"{E2E_503}\n" + 'HTTP Request: POST http://127.0.0.1:8000/auth/e2e/test-auth "HTTP/1.1 200 OK"', "http_unavailable"),
])
def test_a_503_of_the_e2e_endpoint_is_auth_unavailable_only_while_its_host_serves_another_path(output, category):
    d = diagnose(junit_case("test_health_check", time=1.2, stdout=output))
    assert (d.status, d.category) == ("fail", category)
    assert ("the body that would say so is not in this testcase's evidence" in d.detail) == (category == "auth_unavailable")


def test_the_e2e_endpoints_503_in_the_output_of_a_refused_upgrade_is_shown_beside_it():
    d = diagnose(failing(REFUSED, stdout=f"{HEALTH_200}\n{E2E_503}\n[FALLBACK] Created direct JWT token: e2e-test..."))
    assert (d.category, d.http_status) == ("ws_upgrade_auth_rejected", 403)
    assert "auth service failing a token request" in d.detail and "/auth/e2e/test-auth" in d.detail


def test_a_session_welcomed_as_a_stand_in_names_our_user_and_the_stand_in():
    d = diagnose(junit_case("test_websocket_connection", time=0.2, stdout=SAMPLES["auth_ignored"]))
    assert (d.status, d.category, d.rule) == ("fail", "ws_auth_ignored", "auth_ignored")
    assert "staging-e2e-user-002" in d.detail and "demo-use..." in d.message
    assert "stand-ins for a user it did not authenticate" in d.detail


def test_a_session_failure_of_its_own_comes_before_whose_session_it_was():
    d = diagnose(junit_case("test_websocket_connection", time=0.2, stdout=SAMPLES["auth_ignored"] + "\n"
                            "DEBUG    websockets.client:protocol.py:599 < CLOSE 1011 (internal error) Internal error"))
    assert (d.status, d.category) == ("fail", "ws_internal_error")
    assert "demo-use..." in d.detail  # still shown among the lines the output admits
