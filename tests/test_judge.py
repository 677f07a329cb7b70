"""The judges and the run diagnosis as pure functions over observations and records (no sockets)."""

import json
import socket

import pytest

from netra_nb.categories import CATEGORIES, SEVERITY
from netra_nb.diagnosis import findings, golden_path
from netra_nb.frames import AGENT_EVENTS, normalize
from netra_nb.http import HttpObservation
from netra_nb.judge import Identity, classify_exception, close_category, judge_agent_run, judge_http, judge_welcome
from netra_nb.records import Record
from netra_nb.ws import WsFrame, WsObservation


def http_obs(status=200, body=None, **kw):
    raw = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else (body or b"")
    obs = HttpObservation("GET", "http://h/health", duration_s=0.05, status=status, body=raw, **kw)
    try:
        obs.json = json.loads(raw) if raw else None
    except ValueError:
        obs.json_error = "not json"
    return obs


@pytest.mark.parametrize("status, category", [
    (503, "http_unavailable"), (502, "http_unavailable"), (504, "http_unavailable"), (500, "http_server_error"),
    (401, "http_auth_rejected"), (403, "http_auth_rejected"), (404, "http_not_found"), (418, "http_client_error"),
])
def test_error_statuses_never_pass(status, category):
    v = judge_http(http_obs(status, {"detail": "x"}))
    assert (v.status, v.category) == ("fail", category)


def test_health_must_say_healthy():
    assert judge_http(http_obs(200, {"status": "healthy"}), health=True).status == "pass"
    v = judge_http(http_obs(200, {"status": "degraded"}), health=True)
    assert (v.status, v.category) == ("fail", "health_degraded")


def test_a_2xx_that_breaks_the_contract():
    v = judge_http(http_obs(200, b"<html>maintenance</html>"))
    assert v.category == "contract_mismatch"
    v = judge_http(http_obs(200, {"x": 1}), validate=lambda d: "missing keys ['data']")
    assert v.category == "contract_mismatch"


def test_slow_pass_is_degraded():
    obs = http_obs(200, {"status": "healthy"})
    obs.duration_s = 3.0
    assert judge_http(obs, health=True, sla_s=2.0).status == "degraded"


@pytest.mark.parametrize("exc, stage, category", [
    (socket.gaierror(-2, "Name or service not known"), "dns", "dns_failure"),
    (ConnectionRefusedError(111, "Connection refused"), "tcp", "connection_refused"),
    (TimeoutError(), "tcp", "connect_timeout"),
    (TimeoutError(), "upgrade", "ws_handshake_timeout"),
    (RuntimeError("totally new"), "", "client_error"),
])
def test_exceptions_are_classified(exc, stage, category):
    assert classify_exception(exc, stage)[0] == category


@pytest.mark.parametrize("code, by, category", [
    (1011, "server", "ws_internal_error"), (1008, "server", "ws_policy_violation"), (1000, "server", "ws_closed_early"),
    (1001, "server", "ws_closed_early"), (1012, "server", "ws_closed_early"), (1006, None, "ws_abnormal_close"),
    (1011, "client", "ws_keepalive_timeout"), (1009, "client", "contract_mismatch"), (1000, "client", None),
])
def test_close_codes(code, by, category):
    assert close_category(code, by) == category


def session(frames, close=None, sent_at=0.1):
    obs = WsObservation(url="ws://h/ws", placement="header", open_s=0.01, welcome_s=0.02, duration_s=2.0)
    welcome = {"type": "connection_established", "data": {"user_id": "u1", "connection_id": "main_1"}}
    obs.frames.append(WsFrame(0.02, "received", 10, json.dumps(welcome), normalize(json.dumps(welcome))))
    obs.welcome = obs.frames[0].norm
    obs.frames.append(WsFrame(sent_at, "sent", 10, "{}", normalize('{"type": "start_agent"}')))
    obs.first_client_message_t = obs.request_t = sent_at
    for i, f in enumerate(frames):
        text = f if isinstance(f, str) else json.dumps(f)
        obs.frames.append(WsFrame(sent_at + 0.1 * (i + 1), "received", len(text), text, normalize(text)))
    if close:
        obs.close_code, obs.close_reason, obs.closed_by = close
        obs.frames.append(WsFrame(sent_at + 0.1 * (len(frames) + 1), "close", 0, str(close[0]), normalize("{}")))
    return obs


def event(name, run="r1", user="u1", **data):
    return {"type": name, "run_id": run, "user_id": user, "data": data}


GOOD = [event(e) for e in AGENT_EVENTS[:-1]] + [event("agent_completed", result={"answer": 42})]


def judge(frames, close=None, **kw):
    kw.setdefault("request_sent", True)
    return judge_agent_run(session(frames, close), identity=Identity.of("u1"), sent_run_id="r1", **kw)


def test_the_golden_path_passes_only_with_five_events_and_a_result():
    assert judge(GOOD).status == "pass"
    assert judge(GOOD[:-1] + [event("agent_completed", result={})]).category == "agent_empty_result"


@pytest.mark.parametrize("frames, close, category", [
    ([], None, "agent_no_events"),
    ([{"type": "ack"}, {"type": "heartbeat"}], None, "agent_no_events"),
    (GOOD[:3], None, "agent_incomplete"),
    ([], (1011, "Internal error", "server"), "ws_internal_error"),
    (GOOD[:2], (1000, "main cleanup", "server"), "ws_closed_early"),
    ([{"type": "error", "error_code": "AUTH_FAILED"}], (1008, "auth", "server"), "ws_policy_violation"),
    ([{"type": "error_message", "error_code": "CONNECTION_ERROR"}], (1011, "", "server"), "ws_error_frame"),
    ([event("agent_started"), event("agent_error", error_message="boom")], None, "agent_failed"),
    ([GOOD[0], GOOD[1], GOOD[3], GOOD[2], GOOD[4]], None, "agent_event_order"),
    (GOOD[:2] + [event("agent_thinking", run="r9", user="u9")] + GOOD[2:], None, "cross_user_leak"),
    (["<<garbage>>", "more garbage"], None, "contract_mismatch"),
    ([], (1006, "dropped", None), "ws_abnormal_close"),
    ([], (1011, "keepalive ping timeout", "client"), "ws_keepalive_timeout"),
])
def test_agent_run_failures(frames, close, category):
    v = judge(frames, close)
    assert (v.status, v.category) == ("fail", category), v
    assert v.message and v.detail


def test_1011_evidence_says_before_or_after_the_first_message():
    v = judge([], (1011, "Internal error", "server"))
    assert "after the first client message (our request)" in v.message
    obs = session([], (1011, "Internal error", "server"))
    obs.first_client_message_t = obs.request_t = None
    obs.frames = [f for f in obs.frames if f.direction != "sent"]
    v = judge_agent_run(obs, request_sent=False)
    assert v.category == "ws_internal_error" and "before the first client message" in v.message


def rec(check, status, category, phase="agent_pipeline", started="2026-01-01T00:00:01Z", **kw):
    return Record(run_id="r", env="e", phase=phase, check=check, status=status, category=category,
                  started_at=started, duration_s=0.1, message=f"{check} {category}", **kw)


def test_golden_path_working_only_with_a_passing_agent_run():
    assert golden_path([rec("agent_run", "pass", "ok")]).working
    assert not golden_path([rec("health", "pass", "ok", phase="connectivity")]).working
    gp = golden_path([rec("health", "pass", "ok", phase="connectivity"),
                      rec("websocket_connect", "fail", "ws_internal_error", phase="connectivity"),
                      rec("agent_run", "fail", "ws_internal_error", started="2026-01-01T00:00:05Z")])
    assert (gp.working, gp.blocked_by, gp.phase) == (False, "ws_internal_error", "connectivity")
    assert "1011" in gp.sentence


def test_findings_put_the_blocking_category_first():
    fs = findings([rec("agent_discovery", "fail", "http_server_error"),
                   rec("agent_run", "fail", "agent_no_events"),
                   rec("api_health", "fail", "health_degraded", phase="connectivity")])
    assert fs[0].category == "agent_no_events" and fs[0].blocks_golden_path
    assert all(f.causes and f.next_steps and f.evidence for f in fs)


def test_catalog_is_complete():
    for code, c in CATEGORIES.items():
        assert c.title and (code == "ok" or (c.causes and c.next_steps))
    assert set(SEVERITY) == set(CATEGORIES) - {"ok"}


def test_every_judge_names_the_observation_it_reads():
    import inspect
    import typing

    from netra_nb import judge
    typed = {}
    for name, fn in inspect.getmembers(judge, inspect.isfunction):
        if fn.__module__ == judge.__name__ and "obs" in inspect.signature(fn).parameters:
            typed[name] = typing.get_type_hints(fn)["obs"]
    assert typed["judge_http"] is HttpObservation and typed["judge_execute"] is HttpObservation
    assert {t for n, t in typed.items() if n not in ("judge_http", "judge_execute")} == {WsObservation}
    assert len(typed) >= 10
