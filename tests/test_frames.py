"""Normalization of every era's frame shapes, and the event-order rule (pure)."""

import json

import pytest

from netra_nb.frames import AGENT_EVENTS, check_order, normalize, result_of


@pytest.mark.parametrize("frame, event", [
    # mid September (reference)
    ({"type": "connection_established", "data": {"mode": "main", "connection_id": "main_1"}}, "welcome"),
    ({"type": "agent_started", "run_id": "r", "user_id": "u", "data": {}}, "agent_started"),
    ({"type": "tool_executing", "tool_name": "t", "run_id": "r"}, "tool_executing"),
    ({"type": "agent_completed", "data": {"status": "completed", "result": {"a": 1}}}, "agent_completed"),
    # early September
    ({"type": "handshake_validation"}, "handshake_validation"),
    ({"type": "system_message", "data": {"event": "connection_established", "connection_ready": True}}, "welcome"),
    ({"event": "agent_thinking", "timestamp": 1757380820.5, "run_id": "r"}, "agent_thinking"),
    # October
    ({"type": "system_message", "data": {"event": "agent_started", "run_id": "r"}}, "agent_started"),
    ({"type": "agent_progress", "data": {"event": "agent_thinking"}}, "agent_thinking"),
    ({"type": "handshake_response", "thread_id": "t", "run_id": "r"}, "handshake_response"),
    ({"type": "handshake_complete"}, "handshake_complete"),
    # other frames
    ({"type": "ping"}, "ping"), ({"type": "pong"}, "pong"), ({"type": "heartbeat"}, "heartbeat"),
    ({"type": "ack", "received_type": "x"}, "ack"),
    ({"type": "error_message", "error_code": "JSON_PARSE_ERROR"}, "error"),
    ({"type": "error", "message": "Please enter a message"}, "error"),
    ({"type": "agent_error", "data": {"error_message": "boom"}}, "agent_error"),
    ({"type": "something_new"}, "other"),
    ({"no_type": 1}, "invalid"),
])
def test_each_era_shape_normalizes(frame, event):
    assert normalize(json.dumps(frame)).event == event


@pytest.mark.parametrize("payload, raw", [
    (b"\x00\x01", "<binary>"), ("not json", "<non-json>"), ("[1, 2]", "<json list>"), ("3", "<json int>"),
    ("", "<non-json>"),
])
def test_non_objects_are_invalid(payload, raw):
    n = normalize(payload)
    assert (n.event, n.raw_type) == ("invalid", raw)


def test_ids_and_errors_are_found_wherever_the_era_puts_them():
    n = normalize(json.dumps({"type": "system_message", "data": {"event": "agent_started", "run_id": "r1", "user_id": "u1"}}))
    assert (n.run_id, n.user_id) == ("r1", "u1")
    e = normalize(json.dumps({"type": "agent_error", "data": {"error_message": "tool exploded"}}))
    assert e.message == "tool exploded"
    err = normalize(json.dumps({"type": "error_message", "error_code": "CONNECTION_ERROR", "message": "main mode failed"}))
    assert (err.error_code, err.message) == ("CONNECTION_ERROR", "main mode failed")


def test_result_is_found_in_data_or_flat():
    assert result_of(normalize(json.dumps({"type": "agent_completed", "data": {"result": {"x": 1}}}))) == {"x": 1}
    assert result_of(normalize(json.dumps({"event": "agent_completed", "result": "done"}))) == "done"
    assert result_of(normalize(json.dumps({"type": "agent_completed", "data": {"result": {}}}))) is None


def test_order_rule_accepts_the_contract_and_repeated_tools():
    assert check_order(list(AGENT_EVENTS)) is None
    assert check_order(["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_thinking",
                        "tool_executing", "tool_completed", "agent_completed"]) is None


@pytest.mark.parametrize("events, problem", [
    (["agent_thinking", "agent_started"], "agent_thinking before agent_started"),
    (["agent_started", "tool_completed", "tool_executing"], "tool_completed before tool_executing"),
    (["agent_started", "agent_completed", "agent_thinking"], "agent_thinking after agent_completed"),
])
def test_order_rule_rejects_violations(events, problem):
    assert check_order(events) == problem
