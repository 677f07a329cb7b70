"""Write tests/triage/data/*.xml: the failures of failure-examples.md (E1–E10) and the seed report's
runs, as a pytest suite reported them (pytest's JUnit layout, its failure messages and short
tracebacks, the captured output). Run: python tests/triage/make_junit_fixtures.py

The expected diagnosis of every testcase is in test_triage_examples.py.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
HOST = "api.staging.netrasystems.ai"
# A made-up token (never a real one): the triage must redact it from every detail.
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzdGFnaW5nLWUyZS11c2VyLTAwMiIsInR5cGUiOiJhY2Nlc3MifQ"
       ".c2lnbmF0dXJlLW5vdC1yZWFs")
SITE = "/usr/local/lib/python3.12/site-packages"


def case(classname: str, name: str, time: str, *, failure: tuple[str, str] | None = None,
         error: tuple[str, str] | None = None, skipped: tuple[str, str] | None = None, out: str = "",
         err: str = "", props: dict[str, str] | None = None) -> ET.Element:
    el = ET.Element("testcase", classname=classname, name=name, time=time)
    if props:
        p = ET.SubElement(el, "properties")
        for k, v in props.items():
            ET.SubElement(p, "property", name=k, value=v)
    for tag, value in (("failure", failure), ("error", error)):
        if value:
            ET.SubElement(el, tag, message=value[0]).text = value[1]
    if skipped:
        ET.SubElement(el, "skipped", type="pytest.skip", message=skipped[0]).text = skipped[1]
    if out:
        ET.SubElement(el, "system-out").text = out
    if err:
        ET.SubElement(el, "system-err").text = err
    return el


def suite(cases: list[ET.Element], timestamp: str, name: str = "pytest") -> ET.Element:
    s = ET.Element("testsuite", name=name, errors=str(sum(c.find("error") is not None for c in cases)),
                   failures=str(sum(c.find("failure") is not None for c in cases)),
                   skipped=str(sum(c.find("skipped") is not None for c in cases)), tests=str(len(cases)),
                   time=f"{sum(float(c.get('time')) for c in cases) + 0.8:.3f}", timestamp=timestamp, hostname="ci-runner-7")
    s.extend(cases)
    return s


def write(name: str, *suites: ET.Element, bare: bool = False) -> None:
    root = suites[0] if bare else ET.Element("testsuites")
    if not bare:
        root.extend(suites)
    ET.indent(root, space="  ")
    DATA.mkdir(exist_ok=True)
    ET.ElementTree(root).write(DATA / name, encoding="utf-8", xml_declaration=True)


def tb(path: str, line: int, func: str, code: str, exc: str, inner: tuple[str, int, str, str] | None = None) -> str:
    lines = [f"{path}:{line}: in {func}", f"    {code}"]
    if inner:
        lines += [f"{inner[0]}:{inner[1]}: in {inner[2]}", f"    {inner[3]}"]
    lines.append(f"E   {exc}")
    return "\n".join(lines)


PIPE = "tests.e2e.staging.test_3_agent_pipeline_staging.TestAgentPipelineStaging"
PIPE_PY = "tests/e2e/staging/test_3_agent_pipeline_staging.py"
WS = "tests.e2e.staging.test_1_websocket_events_staging.TestWebSocketEventsStaging"
WS_PY = "tests/e2e/staging/test_1_websocket_events_staging.py"
HEALTH = "tests.e2e.staging.test_2_health_staging.TestHealthStaging"
ORCH = "tests.e2e.staging.test_4_agent_orchestration_staging.TestAgentOrchestrationStaging"
RECV = (f"{SITE}/websockets/asyncio/connection.py", 322, "recv", "raise self.protocol.close_exc from self.recv_exc")
AUTH_OUT = ("[STAGING AUTH] Creating JWT for staging-e2e-user-002\n"
            "[SUCCESS] STAGING AUTH BYPASS TOKEN CREATED using SSOT method\n"
            f"headers={{'Authorization': 'Bearer {JWT}'}}\n")


def healthy(name: str = "test_health_check", t: str = "0.482") -> ET.Element:
    return case(HEALTH, name, t, out=f'GET https://{HOST}/health -> 200 {{"status":"healthy","service":"netra-ai-platform",'
                                     '"version":"1.0.0","timestamp":1757380820.5548081}')


def mcp(name: str, path: str, t: str) -> ET.Element:
    return case(PIPE, name, t, out=f"{AUTH_OUT}HTTP Request: GET https://{HOST}{path} \"HTTP/1.1 200 OK\"\n"
                                   "Found 1 agent: netra-mcp (connected)")


def e1() -> None:
    close = ("websockets.exceptions.ConnectionClosedError: received 1011 (internal error) Internal error; "
             "then sent 1011 (internal error) Internal error")
    write("e1_ws_internal_error.xml", suite([
        healthy(),
        mcp("test_real_agent_discovery", "/api/mcp/servers", "1.067"),
        mcp("test_real_agent_configuration", "/api/mcp/config", "0.919"),
        case(WS, "test_websocket_connection", "5.231",
             failure=(close, tb(WS_PY, 88, "test_websocket_connection", "welcome = await ws.recv()", close, RECV)),
             out=f"{AUTH_OUT}Connecting to wss://{HOST}/ws\nWebSocket connection established\n"),
        case(PIPE, "test_real_agent_pipeline_execution", "9.071",
             failure=(close, tb(PIPE_PY, 214, "test_real_agent_pipeline_execution",
                                "response = await asyncio.wait_for(ws.recv(), timeout=10)", close, RECV)),
             out=f"{AUTH_OUT}Connecting to wss://{HOST}/ws\nWebSocket connected; sending start_agent "
                 '{"type": "start_agent", "payload": {"user_request": "Analyze test data for pipeline validation"}}\n'
                 "Waiting for agent events (timeout 10s)..."),
    ], "2025-09-09T18:32:04.512345"))


def e2() -> None:
    frames = (f"Connecting to wss://{HOST}/ws\n"
              '<- {"type": "handshake_validation", "timestamp": 1757432101.2}\n'
              '<- {"type": "system_message", "data": {"event": "connection_established", "connection_ready": true}}\n'
              '<- {"type": "ping", "timestamp": 1757432102.0}\n')
    write("e2_agent_no_events.xml", suite([
        healthy(),
        case(WS, "test_websocket_connection", "1.304", out=frames + "welcome received"),
        case(PIPE, "test_real_agent_pipeline_execution", "10.083",
             failure=("TimeoutError", tb(PIPE_PY, 231, "test_real_agent_pipeline_execution",
                                         "msg = await asyncio.wait_for(ws.recv(), timeout=3)", "TimeoutError",
                                         ("/usr/lib/python3.12/asyncio/tasks.py", 520, "wait_for", "return await fut"))),
             out=frames + '-> {"type": "start_agent", "payload": {"user_request": "Analyze test data for pipeline '
                          'validation"}}\nwaiting for agent_started ...'),
    ], "2025-09-10T09:15:31.004211"))


def e3() -> None:
    url = f"wss://{HOST}/api/v1/websocket"
    refused = "websockets.exceptions.InvalidStatus: server rejected WebSocket connection: HTTP 403"
    inner = (f"{SITE}/websockets/asyncio/client.py", 543, "__aenter__", "return await self")
    cls = "tests.e2e.staging.test_websocket_auth_staging.TestWebSocketAuthStaging"
    py = "tests/e2e/staging/test_websocket_auth_staging.py"
    write("e3_ws_route_missing.xml", suite([
        case(cls, "test_websocket_auth_header", "0.517",
             failure=(refused, tb(py, 58, "test_websocket_auth_header",
                                  'async with websockets.connect(WS_URL, additional_headers={"Authorization": f"Bearer {token}"}) as ws:',
                                  refused, inner)),
             out=f"Connecting to {url} (token in the Authorization header)\n"
                 f"HTTP Request: GET https://{HOST}/api/v1/websocket \"HTTP/1.1 200 OK\"\n"
                 '{"service":"websocket","status":"available","endpoint":"/api/v1/websocket"}'),
        case(cls, "test_websocket_auth_subprotocol", "0.498",
             failure=(refused, tb(py, 71, "test_websocket_auth_subprotocol",
                                  'async with websockets.connect(WS_URL, subprotocols=[f"jwt.{token}"]) as ws:', refused, inner)),
             out=f"Connecting to {url} (token as subprotocol jwt.{JWT})"),
        case(cls, "test_websocket_auth_query", "0.503",
             failure=(refused, tb(py, 84, "test_websocket_auth_query",
                                  'async with websockets.connect(f"{WS_URL}?token={token}") as ws:', refused, inner)),
             out=f"Connecting to {url}?token={JWT}"),
        case(cls, "test_websocket_path_answers_http", "0.311",
             out=f'GET https://{HOST}/api/v1/websocket -> 200 {{"service":"websocket","status":"available"}}'),
    ], "2025-09-12T14:03:12.771002"))


def e4() -> None:
    neg = "websockets.exceptions.NegotiationError: no subprotocols supported"
    inner = (f"{SITE}/websockets/client.py", 228, "process_response", 'raise NegotiationError("no subprotocols supported")')
    out = f"headers={{'Sec-WebSocket-Protocol': 'jwt.{JWT}'}}\nConnecting to wss://{HOST}/ws"
    write("e4_subprotocol_mismatch.xml", suite([
        healthy(),
        mcp("test_real_agent_discovery", "/api/mcp/servers", "0.877"),
        case(WS, "test_websocket_connection", "0.611", failure=(neg, tb(WS_PY, 80, "test_websocket_connection",
             "async with websockets.connect(WS_URL, additional_headers=headers) as ws:", neg, inner)), out=out),
        case(PIPE, "test_real_agent_pipeline_execution", "0.634", failure=(neg, tb(PIPE_PY, 198,
             "test_real_agent_pipeline_execution", "async with websockets.connect(WS_URL, additional_headers=headers) as ws:",
             neg, inner)), out=out),
    ], "2025-09-15T11:40:55.120938"))


def e5() -> None:
    ok = "websockets.exceptions.ConnectionClosedOK: received 1000 (OK) main cleanup; then sent 1000 (OK) main cleanup"
    write("e5_closed_early.xml", suite([
        healthy(),
        case(HEALTH, "test_api_health", "0.356", out=f'GET https://{HOST}/api/health -> 200 {{"status":"healthy"}}'),
        mcp("test_real_agent_discovery", "/api/mcp/servers", "0.902"),
        mcp("test_real_agent_configuration", "/api/mcp/config", "0.811"),
        case(WS, "test_websocket_connection", "0.352",
             failure=(ok, tb(WS_PY, 92, "test_websocket_connection", "await ws.send(json.dumps(ping))", ok)),
             out=f"Connecting to wss://{HOST}/ws\nconnected"),
        case(PIPE, "test_real_agent_pipeline_execution", "0.401",
             failure=(ok, tb(PIPE_PY, 205, "test_real_agent_pipeline_execution", "await ws.send(json.dumps(request))", ok)),
             out=f"Connecting to wss://{HOST}/ws\nconnected"),
    ], "2025-09-18T16:22:09.560114"))


def e6() -> None:
    cls = "tests.e2e.staging.test_real_agent_execution_staging.TestRealAgentExecutionStaging"
    write("e6_mock_fallback.xml", suite([
        case(HEALTH, "test_api_health", "6.934",
             failure=("AssertionError: API health check failed: Unexpected status: 503\nassert 503 == 200",
                      tb("tests/e2e/staging/test_2_health_staging.py", 31, "test_api_health",
                         'assert response.status_code == 200, f"API health check failed: Unexpected status: {response.status_code}"',
                         "AssertionError: API health check failed: Unexpected status: 503")),
             out=f"GET https://{HOST}/health -> 503 after 6.93s\nService Unavailable"),
        case(HEALTH, "test_auth_service_health", "3.712",
             failure=("AssertionError: Auth service returned 503: upstream connect error or disconnect/reset before headers",
                      tb("tests/e2e/staging/test_2_health_staging.py", 44, "test_auth_service_health",
                         "assert r.status_code == 200", "AssertionError: Auth service returned 503"))),
        case(cls, "test_real_agent_execution", "2.701",
             out=(f"Attempting WebSocket connection to wss://{HOST}/ws\n"
                  "WARNING: WebSocket connection failed: server rejected WebSocket connection: HTTP 503\n"
                  "Using MockWebSocketManager due to connection failure\n"
                  "Received event: agent_started\nReceived event: agent_thinking\nReceived event: tool_executing\n"
                  "Received event: tool_completed\nReceived event: agent_completed\n"
                  "[SUCCESS] Real agent execution validated: 5 events received")),
    ], "2025-09-22T08:05:41.330871"))


E7_TOPICS = ["websocket_connection", "websocket_authentication", "api_health", "agent_discovery", "agent_execution",
             "message_routing", "thread_management", "user_isolation", "concurrent_users", "rate_limiting",
             "error_handling", "token_refresh", "event_delivery", "session_persistence", "agent_orchestration",
             "tool_execution", "streaming_response", "reconnection", "heartbeat", "message_ordering"]


def e7() -> None:
    suites = []
    for k, (module, cls) in enumerate([("test_priority1_critical", "TestCriticalStaging"),
                                       ("test_priority2_high", "TestHighPriorityStaging")]):
        cases = []
        for i in range(31 if k == 0 else 30):
            n = len(cases) + (0 if k == 0 else 31) + 1
            cases.append(case(f"tests.e2e.staging.{module}.{cls}", f"test_{n:03d}_{E7_TOPICS[n % len(E7_TOPICS)]}_real",
                              "0.00" if n % 3 else "0.000"))
        suites.append(suite(cases, f"2025-09-25T10:0{k}:00.000000", name=module))
    write("e7_fake_fast.xml", *suites)


def e8() -> None:
    body = 'AssertionError: Unexpected status: 500, body: {"error":"Internal server error"}'
    write("e8_http_server_error.xml", suite([
        healthy(t="0.213"),
        case(PIPE, "test_real_agent_discovery", "0.433",
             failure=(body, tb(PIPE_PY, 64, "test_real_agent_discovery",
                               'assert resp.status_code == 200, f"Unexpected status: {resp.status_code}, body: {resp.text}"', body)),
             out=f'HTTP Request: GET https://{HOST}/api/mcp/servers "HTTP/1.1 500 Internal Server Error"'),
        mcp("test_real_agent_configuration", "/api/mcp/config", "0.388"),
    ], "2025-09-26T13:47:20.889120"))


def e9() -> None:
    degraded = ('AssertionError: /api/health is not healthy: {"status":"degraded","timestamp":"2025-09-30T12:01:02Z",'
                '"uptime_seconds":812.4,"checks":{"database":"ok","redis":{"status":"unhealthy",'
                '"error":"Timeout connecting to server"}}}')
    write("e9_health_degraded.xml", suite([
        healthy(t="0.198"),
        case(HEALTH, "test_api_health", "0.305",
             failure=(degraded, tb("tests/e2e/staging/test_2_health_staging.py", 22, "test_api_health",
                                   'assert body["status"] == "healthy", f"/api/health is not healthy: {resp.text}"', degraded))),
        case(WS, "test_websocket_agent_events", "30.021",
             failure=("TimeoutError: timed out waiting for agent events after 30s",
                      tb(WS_PY, 140, "test_websocket_agent_events", "events = await collect_events(ws, timeout=30)",
                         "TimeoutError: timed out waiting for agent events after 30s")),
             out=f"Connecting to wss://{HOST}/ws\nwelcome: connection_established\nsent start_agent"),
        case(WS, "test_websocket_chat_reply", "10.012",
             failure=("asyncio.exceptions.TimeoutError", tb(WS_PY, 171, "test_websocket_chat_reply",
                      "reply = await asyncio.wait_for(ws.recv(), timeout=10)", "asyncio.exceptions.TimeoutError"))),
    ], "2025-09-30T12:01:00.450018"))


def e10() -> None:
    refused = "websockets.exceptions.InvalidStatus: server rejected WebSocket connection: HTTP 503"
    write("e10_unavailable.xml", suite([
        case(HEALTH, "test_health_check", "10.024",
             failure=('AssertionError: Unexpected status: 503, body: {"status":"unhealthy","message":"Startup in progress"}',
                      tb("tests/e2e/staging/test_2_health_staging.py", 12, "test_health_check",
                         "assert resp.status_code == 200", "AssertionError: Unexpected status: 503"))),
        case(WS, "test_websocket_connection", "10.006",
             failure=("TimeoutError: timed out during opening handshake",
                      tb(WS_PY, 80, "test_websocket_connection", "async with websockets.connect(WS_URL, open_timeout=10) as ws:",
                         "TimeoutError: timed out during opening handshake"))),
        case(WS, "test_websocket_reconnect", "0.811",
             failure=(refused, tb(WS_PY, 120, "test_websocket_reconnect", "async with websockets.connect(WS_URL) as ws:",
                                  refused))),
    ], "2025-10-02T07:30:11.102200"))


def seed() -> None:
    """The seed report's runs (seed-report.md): one <testsuites> file, then the third batch as a bare <testsuite>."""
    close = ("websockets.exceptions.ConnectionClosedError: received 1011 (internal error) Internal error; "
             "then sent 1011 (internal error) Internal error")
    local = {"test_orchestration_workflow_states": "0.013", "test_agent_communication_patterns": "0.012",
             "test_orchestration_error_scenarios": "0.011", "test_multi_agent_coordination_metrics": "0.012"}
    write("seed_report_batch1.xml",
          suite([mcp("test_real_agent_discovery", "/api/mcp/servers", "1.067"),
                 mcp("test_real_agent_configuration", "/api/mcp/config", "0.919"),
                 case(PIPE, "test_real_agent_pipeline_execution", "9.070",
                      failure=(close, tb(PIPE_PY, 214, "test_real_agent_pipeline_execution",
                                         "response = await asyncio.wait_for(ws.recv(), timeout=10)", close, RECV)),
                      out=f"{AUTH_OUT}WebSocket connected; sending start_agent")],
                "2025-09-09T18:32:04.000000", name="test_3_agent_pipeline_staging"),
          suite([case(ORCH, "test_basic_functionality", "0.475", out=f"GET https://{HOST}/health -> 200"),
                 case(ORCH, "test_agent_discovery_and_listing", "0.463",
                      out=f"GET https://{HOST}/api/mcp/servers -> 200: netra-mcp connected")]
                + [case(ORCH, n, t, out="Coordination efficiency: 70.0%") for n, t in local.items()],
                "2025-09-09T18:33:10.000000", name="test_4_agent_orchestration_staging"),
          suite([case(WS, "test_websocket_connection", "5.230",
                      failure=(close, tb(WS_PY, 88, "test_websocket_connection", "welcome = await ws.recv()", close, RECV)),
                      out=f"{AUTH_OUT}subprotocols=['jwt.{JWT}']")],
                "2025-09-09T18:34:00.000000", name="test_1_websocket_events_staging"))
    cls = "tests.e2e.staging.test_real_agent_execution_staging.TestRealAgentExecutionStaging"
    py = "tests/e2e/staging/test_real_agent_execution_staging.py"
    msg = "AssertionError: Should receive WebSocket events from agent execution\nassert 0 > 0"
    write("seed_report_batch3.xml", suite([
        case(cls, "test_001_unified_data_agent_real_execution", "1.450",
             failure=(msg, tb(py, 96, "test_001_unified_data_agent_real_execution",
                              'assert len(events) > 0, "Should receive WebSocket events from agent execution"', msg)),
             out=("[SUCCESS] STAGING AUTH BYPASS TOKEN CREATED using SSOT method\n"
                  "No WebSocket events received, falling back to mock WebSocket\n"),
             err="UserWarning: using mock WebSocket for staging tests"),
        case(cls, "test_002_optimization_agent_real_execution", "0.000",
             skipped=("async def functions are not natively supported.",
                      f"{py}:120: async def functions are not natively supported.")),
    ], "2025-09-09T18:35:00.000000", name="test_real_agent_execution_staging"), bare=True)


if __name__ == "__main__":
    for make in (e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, seed):
        make()
    print("\n".join(sorted(p.name for p in DATA.glob("*.xml"))))
