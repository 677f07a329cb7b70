"""Every real failure of failure-examples.md (E1–E10) and the seed report, as pytest reported them
(tests/triage/data, made by make_junit_fixtures.py): triage must name the category each example names."""

from __future__ import annotations

import pytest
from triage_helpers import DATA

from netra_nb.diagnosis import findings
from netra_nb.triage import triage_files

PASS = ("pass", "ok", [])
FAKE = ("fail", "fake_fast", ["fake_fast"])

# file → testcase → (status, category, findings); every testcase of every file is listed.
EXPECTED = {
    "e1_ws_internal_error.xml": {
        "test_health_check": PASS, "test_real_agent_discovery": PASS, "test_real_agent_configuration": PASS,
        "test_websocket_connection": ("fail", "ws_internal_error", []),
        "test_real_agent_pipeline_execution": ("fail", "ws_internal_error", []),
    },
    "e2_agent_no_events.xml": {
        "test_health_check": PASS, "test_websocket_connection": PASS,
        "test_real_agent_pipeline_execution": ("fail", "agent_no_events", []),
    },
    "e3_ws_route_missing.xml": {
        "test_websocket_auth_header": ("fail", "ws_route_missing", []),  # its own GET on the path answered 200
        # another test's GET did: context, never the category (their own evidence is a 403, nothing more)
        "test_websocket_auth_subprotocol": ("fail", "ws_upgrade_auth_rejected", []),
        "test_websocket_auth_query": ("fail", "ws_upgrade_auth_rejected", []),
        "test_websocket_path_answers_http": PASS,
    },
    "e4_subprotocol_mismatch.xml": {
        "test_health_check": PASS, "test_real_agent_discovery": PASS,
        "test_websocket_connection": ("fail", "ws_subprotocol_mismatch", []),
        "test_real_agent_pipeline_execution": ("fail", "ws_subprotocol_mismatch", []),
    },
    "e5_closed_early.xml": {
        "test_health_check": PASS, "test_api_health": PASS, "test_real_agent_discovery": PASS,
        "test_real_agent_configuration": PASS,
        "test_websocket_connection": ("fail", "ws_closed_early", []),
        "test_real_agent_pipeline_execution": ("fail", "ws_closed_early", []),
    },
    "e6_mock_fallback.xml": {
        "test_api_health": ("fail", "http_unavailable", []),
        "test_auth_service_health": ("fail", "http_unavailable", []),
        "test_real_agent_execution": ("fail", "mock_fallback", ["mock_fallback"]),
    },
    "e8_http_server_error.xml": {
        "test_health_check": PASS, "test_real_agent_configuration": PASS,
        "test_real_agent_discovery": ("fail", "http_server_error", []),
    },
    "e9_health_degraded.xml": {
        "test_health_check": PASS,
        "test_api_health": ("fail", "health_degraded", []),
        "test_websocket_agent_events": ("fail", "agent_no_events", []),
        "test_websocket_chat_reply": ("fail", "agent_no_events", []),
    },
    "e10_unavailable.xml": {
        "test_health_check": ("fail", "http_unavailable", []),
        "test_websocket_connection": ("fail", "ws_handshake_timeout", []),
        "test_websocket_reconnect": ("fail", "ws_upgrade_unavailable", []),
    },
}


def by_check(files):
    return {r.check: r for r in triage_files([DATA / f for f in files])}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_example_gets_the_category_it_names(name):
    got = {c: (r.status, r.category, r.findings) for c, r in by_check([name]).items()}
    assert got == {c: (s, cat, f) for c, (s, cat, f) in EXPECTED[name].items()}


def test_e1_says_the_close_came_from_the_server_and_when_is_unknown():
    r = by_check(["e1_ws_internal_error.xml"])["test_real_agent_pipeline_execution"]
    assert (r.ws_close_code, r.ws_close_reason, r.ws_closed_by, r.duration_s) == (1011, "Internal error", "server", 9.071)
    assert "before or after the first client message is unknown" in r.detail


def test_e3_names_the_get_that_answered_200_and_shows_the_other_tests_get_as_context():
    got = by_check(["e3_ws_route_missing.xml"])
    own = got["test_websocket_auth_header"]
    assert own.http_status == 403 and "GET on the same path answered 200" in own.detail
    r = got["test_websocket_auth_query"]
    assert r.http_status == 403 and "context only" in r.detail and "test_websocket_path_answers_http" in r.detail
    assert "/api/v1/websocket" in r.detail


def test_e5_close_is_a_normal_close_by_the_server():
    r = by_check(["e5_closed_early.xml"])["test_websocket_connection"]
    assert (r.ws_close_code, r.ws_close_reason, r.ws_closed_by) == (1000, "main cleanup", "server")


def test_e6_the_mock_pass_is_a_finding_and_the_platform_checks_are_unavailable():
    records = list(by_check(["e6_mock_fallback.xml"]).values())
    cats = [f.category for f in findings(records)]
    assert "mock_fallback" in cats and "http_unavailable" in cats
    mock = next(r for r in records if r.check == "test_real_agent_execution")
    assert "MockWebSocketManager" in mock.detail and mock.duration_s == 2.701


def test_e7_sixty_one_tests_at_zero_seconds_are_all_fake_fast():
    records = list(by_check(["e7_fake_fast.xml"]).values())
    assert len(records) == 61
    assert {(r.status, r.category, tuple(r.findings)) for r in records} == {("fail", "fake_fast", ("fake_fast",))}
    assert [f.category for f in findings(records)] == ["fake_fast"]


def test_e8_and_e10_carry_the_http_status():
    assert by_check(["e8_http_server_error.xml"])["test_real_agent_discovery"].http_status == 500
    e10 = by_check(["e10_unavailable.xml"])
    assert e10["test_health_check"].http_status == 503 and e10["test_websocket_reconnect"].http_status == 503


def test_the_seed_reports_runs_from_two_files():
    got = by_check(["seed_report_batch1.xml", "seed_report_batch3.xml"])
    assert len(got) == 12
    assert got["test_websocket_connection"].category == "ws_internal_error"
    assert got["test_real_agent_pipeline_execution"].category == "ws_internal_error"
    blocked = got["test_001_unified_data_agent_real_execution"]
    assert (blocked.status, blocked.category, blocked.findings) == ("fail", "agent_no_events", ["mock_fallback"])
    skipped = got["test_002_optimization_agent_real_execution"]
    assert skipped.status == "skip" and "client_error" in skipped.message
    passes = [r for r in got.values() if r.status == "pass"]
    assert len(passes) == 8 and all(r.category == "ok" and "no wire evidence" in r.detail for r in passes)
    cats = [f.category for f in findings(list(got.values()))]
    assert {"ws_internal_error", "agent_no_events", "mock_fallback"} <= set(cats)


def test_no_token_survives_in_any_record():
    from make_junit_fixtures import JWT
    for f in sorted(DATA.glob("*.xml")):
        for r in triage_files([f]):
            text = " ".join(str(v) for v in r.to_dict().values())
            assert JWT not in text and JWT[:40] not in text, (f.name, r.check)
