"""Robust parsing: any JSON or bytes in, a valid event name or category out, never an exception."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from netra_nb.categories import CATEGORIES
from netra_nb.diagnosis import findings, golden_path
from netra_nb.frames import EVENT_NAMES, check_order, normalize, result_of
from netra_nb.judge import classify_exception, close_category, judge_agent_run
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
    obs.first_client_message_t = 0.05 if sent else None
    for i, t in enumerate(texts):
        obs.frames.append(WsFrame(0.1 + i / 10, "received", len(t), t, normalize(t)))
    if close:
        obs.close_code, obs.close_reason, obs.closed_by = close
    v = judge_agent_run(obs, request_sent=sent, deadline_reached=close is None, user_id="u", run_id="r")
    assert v.status in STATUSES and v.category in CATEGORIES
    assert (v.status == "pass") == (v.category == "ok")


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
