"""Robust parsing: any JSON or bytes in, a valid event name or category out, never an exception."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from netra_nb.categories import CATEGORIES
from netra_nb.diagnosis import findings, golden_path
from netra_nb.frames import AGENT_EVENTS, EVENT_NAMES, check_order, normalize, result_of
from netra_nb.judge import Identity, classify_exception, close_category, judge_agent_run
from netra_nb.records import STATUSES, Record
from netra_nb.ws import WsFrame, WsObservation

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
known = st.sampled_from(sorted(EVENT_NAMES) + ["connection_established", "error_message", "system_message",
                                                "agent_progress", "", "AGENT_STARTED"])
frame_like = st.fixed_dictionaries(
    {"type": st.one_of(known, json_values)},
    optional={"event": st.one_of(known, json_values), "data": st.one_of(json_values, st.dictionaries(
        st.sampled_from(["event", "result", "run_id", "user_id", "error_message"]), st.one_of(known, json_values))),
        "run_id": json_values, "user_id": json_values, "payload": json_values},
)


@given(st.one_of(json_values, frame_like))
def test_any_json_normalizes_to_a_known_event(value):
    n = normalize(json.dumps(value))
    assert n.event in EVENT_NAMES
    result_of(n)


@given(st.binary(max_size=200))
def test_any_bytes_normalize(data):
    assert normalize(data).event == "invalid"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    assert normalize(text).event in EVENT_NAMES


@given(st.lists(st.sampled_from(sorted(EVENT_NAMES)), max_size=20))
def test_order_rule_never_raises(events):
    assert check_order(events) is None or isinstance(check_order(events), str)


@given(st.lists(st.one_of(frame_like.map(json.dumps), st.text(max_size=30)), max_size=12),
       st.one_of(st.none(), st.tuples(st.integers(1000, 4999), st.text(max_size=10),
                                      st.sampled_from(["server", "client", None]))),
       st.booleans())
@settings(max_examples=300)
def test_agent_run_judge_always_gives_a_category(texts, close, sent):
    obs = WsObservation(url="ws://h/ws", placement="header", open_s=0.01, duration_s=1.0)
    obs.welcome = normalize('{"type": "connection_established"}')
    obs.first_client_message_t = obs.request_t = 0.05 if sent else None
    for i, t in enumerate(texts):
        obs.frames.append(WsFrame(0.1 + i / 10, "received", len(t), t, normalize(t)))
    if close:
        obs.close_code, obs.close_reason, obs.closed_by = close
        obs.frames.append(WsFrame(0.1 + len(texts) / 10, "close", 0, str(close[0]), normalize("{}")))
    v = judge_agent_run(obs, request_sent=sent, identity=Identity.of("u"), sent_run_id="r")
    assert v.status in STATUSES and v.category in CATEGORIES
    assert (v.status == "pass") == (v.category == "ok")
    if close is not None and close[2] == "server" and v.status != "pass":
        assert v.category != "unknown"  # a close is reported as that close, never as "unknown"


# -- runs the contract allows, in every shape: a healthy one passes, each defect is named ----------------------

USER = "e2e-staging-user-42"
REQUEST = "Analyze test data for pipeline validation"


def _agent_frame(kind, shape, run, user, result, status="completed"):
    data = {}
    if kind == "agent_completed":
        data = {"status": status, "result": result, "execution_time_ms": 812.0}
    if shape == "mid":
        return {"type": kind, "run_id": run, "user_id": user, "timestamp": "2025-09-15T10:00:00Z", "data": data}
    if shape == "early":
        return {"type": kind, "event": kind, "run_id": run, "user_id": user, "timestamp": 1757930400.5, **data}
    if shape == "october" and kind in ("agent_started", "agent_thinking"):
        wrapper = "system_message" if kind == "agent_started" else "agent_progress"
        return {"type": wrapper, "timestamp": 1757930400.5,
                "data": {"event": kind, "run_id": run, "user_id": user, "data": data}}
    if shape == "fallback" and kind == "agent_completed":  # the fallback handler's shape: final_response on top
        return {"type": kind, "event": kind, "agent_name": "ChatAgent", "run_id": run, "user_id": user,
                "final_response": result, "status": status, "timestamp": 1757930400.5}
    return {"type": kind, "run_id": run, "user_id": user, "timestamp": "2025-09-15T10:00:00Z", "data": data}


_WELCOMES = {
    "mid": lambda u: {"type": "connection_established", "timestamp": 1.0,
                      "data": {"mode": "main", "user_id": u[:8] + "...", "connection_id": "main_1"}},
    "early": lambda u: {"type": "system_message", "timestamp": 1.0,
                        "data": {"event": "connection_established", "connection_ready": True, "user_id": u}},
    "october": lambda u: {"type": "connection_established", "timestamp": 1.0, "data": {"user_id": u[:8] + "..."}},
    "beta12": lambda u: {"type": "connect", "data": {"mode": "main", "connection_id": "c1",
                                                     "golden_path_events": list(AGENT_EVENTS)}},
    "none": lambda u: {"type": "connection_established", "data": {"connection_id": "c1"}},
}

healthy_runs = st.fixed_dictionaries({
    "welcome": st.sampled_from(sorted(_WELCOMES)),
    "shape": st.sampled_from(["mid", "early", "october", "fallback"]),
    "echo": st.booleans(),  # the server echoes our run id, or assigns its own
    "heartbeats": st.lists(st.integers(0, 6), max_size=4),  # keepalives interleaved before event i
    "tools": st.integers(1, 3),  # tools may repeat
    "result": st.sampled_from([{"summary": "3 anomalies found in the nightly load", "records": 128},
                               "The pipeline drops 2% of rows at the join step; fix the key type.",
                               [{"finding": "late partition"}]]),
    "stale": st.booleans(),  # canned events sent before our request (they must not count)
})


def _observation(run, *, events=None, status="completed", result=None, foreign=False):
    obs = WsObservation(url="ws://h/ws", placement="header", open_s=0.01, duration_s=3.0)
    t = [0.02]

    def add(direction, obj):
        text = obj if isinstance(obj, str) else json.dumps(obj)
        obs.frames.append(WsFrame(t[0], direction, len(text), text, normalize(text)))
        t[0] += 0.05
    add("received", _WELCOMES[run["welcome"]](USER))
    obs.welcome = obs.frames[0].norm
    run_id = "run_ours" if run["echo"] else "srv_run_7"
    if run["stale"]:
        for kind in AGENT_EVENTS:
            add("received", _agent_frame(kind, "mid", "run_stale", USER, {"summary": "canned"}))
    obs.request_t = obs.first_client_message_t = t[0]
    add("sent", {"type": "start_agent", "payload": {"user_request": REQUEST, "run_id": "run_ours"}})
    kinds = events or (["agent_started", "agent_thinking"] + ["tool_executing", "tool_completed"] * run["tools"]
                       + ["agent_completed"])
    for i, kind in enumerate(kinds):
        for _ in range(run["heartbeats"].count(i)):
            add("received", {"type": "heartbeat", "timestamp": 2.0, "data": {"connection_id": "c1"}})
        if foreign and i == 2:
            add("received", _agent_frame("agent_thinking", "mid", "run_other", "e2e-other-user", None))
        add("received", _agent_frame(kind, run["shape"], run_id, USER,
                                     run["result"] if result is None else result, status))
    return obs, "run_ours"


def _judge(run, **kw):
    obs, sent = _observation(run, **kw)
    return judge_agent_run(obs, request_sent=True, identity=Identity.of(USER), sent_run_id=sent, request=REQUEST)


@given(healthy_runs)
@settings(max_examples=300)
def test_every_healthy_run_the_contract_allows_passes(run):
    v = _judge(run)
    assert (v.status, v.category) == ("pass", "ok"), v


@given(healthy_runs, st.sampled_from([
    ("drop", "agent_incomplete"), ("swap", "agent_event_order"), ("failed", "agent_failed"),
    ("blank", "agent_empty_result"), ("canned", "mock_fallback"), ("foreign", "cross_user_leak"),
    ("error_event", "agent_failed"),
]))
@settings(max_examples=300)
def test_each_defect_of_a_healthy_run_is_named(run, defect):
    how, category = defect
    full = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
    kw = {}
    if how == "drop":
        kw["events"] = [e for e in full if e != "agent_thinking"]
    elif how == "swap":
        kw["events"] = ["agent_started", "agent_thinking", "tool_completed", "tool_executing", "agent_completed"]
    elif how == "failed":
        kw["status"] = "failed"
    elif how == "blank":
        kw["result"] = "   "
    elif how == "canned":
        kw["result"] = f"Agent response for: {REQUEST}"
    elif how == "foreign":
        kw["foreign"] = True
    elif how == "error_event":
        kw["events"] = ["agent_started", "agent_error"]
    v = _judge(run, **kw)
    assert (v.status, v.category) == ("fail", category), (how, v)


@given(st.integers(-5, 5000), st.sampled_from(["server", "client", None]))
def test_close_category_is_known_or_none(code, by):
    c = close_category(code, by)
    assert c is None or c in CATEGORIES


@given(st.text(max_size=80), st.sampled_from(["", "dns", "tcp", "upgrade", "welcome", "open"]))
def test_exception_classification_is_total(text, stage):
    for exc in (RuntimeError(text), OSError(text), TimeoutError(text), ValueError(text)):
        assert classify_exception(exc, stage)[0] in CATEGORIES


records = st.builds(
    Record, run_id=st.just("r"), env=st.just("e"),
    phase=st.sampled_from(["connectivity", "agent_pipeline", "orchestration", "triage", "other"]),
    check=st.sampled_from(["agent_run", "health", "concurrent_agent_runs", "test_real_agent_pipeline_execution", "x"]),
    status=st.sampled_from(STATUSES), category=st.sampled_from(sorted(CATEGORIES) + ["not-a-code"]),
    started_at=st.sampled_from(["2026-01-01T00:00:00Z", "", "garbage"]), duration_s=st.floats(0, 100),
    message=st.text(max_size=20), findings=st.lists(st.sampled_from(["fake_fast", "mock_fallback"]), max_size=2),
)


@given(st.lists(records, max_size=12))
def test_diagnosis_is_total(rs):
    gp = golden_path(rs)
    if gp.working:
        assert gp.blocked_by is None and any(r.status in ("pass", "degraded") for r in rs)
    assert gp.sentence
    for f in findings(rs):
        assert f.title and f.checks
