"""Root causes from plain records and frames: identical failures folded, causes and next steps read from the
evidence (who closed and when, the probes' answers, what the server sent), history labelled as such."""

from __future__ import annotations

from netra_nb.categories import category_info
from netra_nb.diagnosis import failure_pattern, root_causes
from netra_nb.records import Record

BODY = '{"status":"unhealthy","message":"Startup in progress"}'


def rec(check, status, category, *, phase="connectivity", at=0, duration=1.0, **kw):
    kw.setdefault("message", f"{check}: {category}")
    return Record(run_id="r", env="e", phase=phase, check=check, status=status, category=category,
                  started_at=f"2026-01-01T10:00:{at:02d}Z", duration_s=duration, **kw)


def frames(check, rows, phase="agent_pipeline", session=0):
    """rows: (t_s, direction, type, event, text)"""
    return [{"phase": phase, "check": check, "session": session, "seq": i, "t_s": t, "direction": d, "type": ty,
             "event": ev, "text": tx} for i, (t, d, ty, ev, tx) in enumerate(rows)]


def test_a_platform_that_is_not_serving_is_one_cause_on_http_and_on_the_upgrade():
    rs = [rec(c, "fail", "http_unavailable", at=i, http_status=503, detail=f"HTTP 503 in 1.0s; body: {BODY}")
          for i, c in enumerate(("health", "api_health", "auth_token"))]
    rs += [rec(c, "fail", "ws_upgrade_unavailable", at=5 + i, http_status=503,
               detail=f"server rejected WebSocket connection: HTTP 503 after 1.0s; body: {BODY}; token: E2E: HTTP 503")
           for i, c in enumerate(("websocket_connect", "agent_run"))]
    [cause] = root_causes(rs)
    assert cause.categories == ["http_unavailable", "ws_upgrade_unavailable"] and cause.blocks_golden_path
    assert [(g.checks, g.pattern.text) for g in cause.groups] == [
        (["health", "api_health", "auth_token"], f"HTTP 503 `{BODY}`"),
        (["websocket_connect", "agent_run"], f"the WebSocket upgrade answered HTTP 503 `{BODY}`")]
    assert cause.observed == [f"The platform answered HTTP 503 with `{BODY}` (the HTTP requests of 3 checks and the "
                              "WebSocket upgrades of 2 checks): it is not serving."]
    assert cause.next_steps[0] == ("Read the backend's start-up logs and its revision or container status between "
                                   "2026-01-01 10:00:00 and 10:00:07 UTC.")
    assert cause.seen_before == category_info("http_unavailable").causes


def test_the_probes_decide_a_missing_route_and_are_quoted():
    probes = ("probes: upgrade with our token → 403 (empty body); upgrade with no token → 403 (empty body); "
              "HTTP GET /ws → 200 (application/json) {\"service\":\"websocket\"}; the same bare refusal whatever the "
              "token, while GET succeeds: the path has only an HTTP route")
    rs = [rec(c, "fail", "ws_route_missing", at=i, http_status=403, target="ws://h:1/ws",
              detail=f"server rejected WebSocket connection: HTTP 403 after 0.01s; body: ; {probes}")
          for i, c in enumerate(("websocket_connect", "websocket_ping"))]
    [cause] = root_causes(rs)
    [g] = cause.groups
    assert g.pattern.text == "the WebSocket upgrade answered HTTP 403"
    assert cause.evidence == ["upgrade with our token → 403 (empty body)", "upgrade with no token → 403 (empty body)",
                              "HTTP GET /ws → 200 (application/json) {\"service\":\"websocket\"}"]
    assert cause.observed == ["The same bare refusal whatever the token, while GET succeeds: the path has only an HTTP route."]
    assert cause.next_steps[0].startswith("Check the server's route table for a WebSocket route at `/ws`")


def test_a_swallowed_request_is_told_from_its_frames():
    fs = frames("agent_run", [(0.01, "received", "connection_established", "welcome", "{}"),
                              (0.05, "sent", "start_agent", "other", "{}"),
                              (0.06, "received", "ack", "ack", "{}"),
                              (5.06, "received", "heartbeat", "heartbeat", "{}")])
    r = rec("agent_run", "fail", "agent_no_events", phase="agent_pipeline", duration=20.1)
    pattern = failure_pattern(r, fs)
    assert pattern.text == ("the request (`start_agent`) was sent; then only `ack` and `heartbeat` frames until the "
                            "check stopped waiting, and no agent event")
    [cause] = root_causes([r], fs)
    assert cause.observed == ["After the request (`start_agent`) the server acknowledged it (`ack`) and kept the session "
                              "alive (`heartbeat`) but sent no agent event: the request reached the server, and no agent "
                              "run started for it."]
    assert "it was acknowledged, but no agent started" in cause.next_steps[0]


def test_an_agent_failure_quotes_what_the_agent_said():
    fs = frames("agent_run", [(0.01, "received", "connection_established", "welcome", "{}"),
                              (0.05, "sent", "start_agent", "other", "{}"),
                              (0.2, "received", "agent_started", "agent_started", "{}"),
                              (0.3, "received", "agent_error", "agent_error", '{"type":"agent_error","data":{"error_message":"boom"}}')])
    [cause] = root_causes([rec("agent_run", "fail", "agent_failed", phase="agent_pipeline")], fs)
    assert cause.groups[0].pattern.text == ("the agent reported a failure: "
                                            "`{\"type\":\"agent_error\",\"data\":{\"error_message\":\"boom\"}}`")
    assert cause.observed[0].startswith("The agent reported a failure: `{\"type\":\"agent_error\"")


def test_a_close_whose_stage_the_records_do_not_know_claims_none():
    """A JUnit file has no frames; its detail says the stage is unknown: no stage is claimed, the logs will tell."""
    detail = "triage: whether the server closed before or after the first client message is unknown"
    rs = [rec(c, "fail", "ws_internal_error", phase="triage", ws_close_code=1011, ws_closed_by="server",
              ws_close_reason="Internal error", detail=detail) for c in ("test_a", "test_b")]
    [cause] = root_causes(rs)
    assert [g.pattern.text for g in cause.groups] == ["the server closed the WebSocket with 1011 (Internal error)"]
    assert cause.observed == []
    assert cause.next_steps[1].startswith("The records do not say whether the close came before or after")
    assert not any("Note whether" in s for s in cause.next_steps)


def test_a_finding_on_a_failed_check_is_told_beside_its_failure():
    r = rec("test_real_agent_execution", "fail", "agent_no_events", phase="triage", findings=["mock_fallback"],
            message="failed in 1.450s: AssertionError: no events")
    causes = root_causes([r])
    assert [c.categories for c in causes] == [["agent_no_events"], ["mock_fallback"]]
    assert causes[1].honesty and causes[1].groups[0].pattern.text == (
        "a mock or canned stand-in replaced the platform; the check also failed with `agent_no_events`")


def test_text_from_the_platform_cannot_break_the_sentence():
    fs = frames("websocket_connect", [(0.01, "received", "connection_established", "welcome", "{}"),
                                      (0.02, "close", "close", "close", "1011 bad `reason` <b>x</b>")], phase="connectivity")
    r = rec("websocket_connect", "fail", "ws_internal_error", ws_close_code=1011, ws_closed_by="server")
    assert failure_pattern(r, fs).text == ("the server closed the WebSocket with 1011 (bad 'reason' <b>x</b>) right "
                                           "after the welcome, before any client message")
