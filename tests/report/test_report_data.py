"""The report's content, computed without a kernel: reading run folders, tables, evidence, comparison."""

from __future__ import annotations

import json
from datetime import timedelta

from report_runs import T0, RunBuilder, build_e1, build_healthy

from netra_nb import report


def test_load_run_tolerates_a_partial_folder(runs):
    run = report.load_run(runs["partial"])
    assert [r.check for r in run.records] == ["health", "api_health", "agent_discovery"]
    assert run.unreadable_lines == 1
    assert run.finished_at is None and run.duration_s is not None
    assert run.phases == ["connectivity", "agent_pipeline", "orchestration"]
    notes = report.unfinished_notes(run)
    assert any("failed at cell 7" in n and "KeyError" in n for n in notes)
    assert any("`orchestration` was not run" in n for n in notes)


def test_load_run_of_an_empty_folder(tmp_path):
    folder = tmp_path / "outputs" / "staging" / "20260101T000000Z-empty"  # no sibling runs to compare with
    folder.mkdir(parents=True)
    run = report.load_run(folder)
    assert run.records == [] and run.frames == [] and run.meta == {}
    assert "run.json is missing" in " ".join(report.unfinished_notes(run))
    headline = report.headline_markdown(run)
    assert headline.startswith("# ✘ The golden path was not exercised")
    assert report.results_table(run).empty
    assert "There is no earlier run" in report.comparison_markdown(run)


def test_a_phase_listed_without_records_is_named(tmp_path):
    b = RunBuilder(tmp_path, "staging", T0, "dddd4444")
    b.record("connectivity", "health", "pass", "ok", 0.0, 0.05, "/health: HTTP 200")
    run = report.load_run(b.write(phases=["connectivity", "agent_pipeline"],
                                  notebooks={"connectivity": {"path": "00_connectivity.ipynb", "status": "ok"}}))
    assert "Phase `agent_pipeline` did not finish: it recorded no result." in report.unfinished_notes(run)
    assert "Phase `agent_pipeline` did not finish" in report.headline_markdown(run)


def test_headline_of_e1(runs):
    text = report.headline_markdown(report.load_run(runs["e1"]))
    first = text.splitlines()[0]
    assert first.startswith("# ✘ The golden path is NOT working: the server closed the WebSocket with 1011")
    assert "Environment **staging**" in text and "13 checks: 7 pass, 5 fail, 1 skip" in text
    assert "**Health and HTTP API**: ✔ `health`, ✔ `api_health`, ✔ `service_discovery`" in text
    assert "**WebSocket agent run**: ✘ `agent_run` (`ws_internal_error`: ConnectionClosedError" in text
    assert "the server's welcome arrives, and then the connection is closed by the server with 1011" in text


def test_results_table_puts_failures_first(runs):
    df = report.results_table(report.load_run(runs["e1"]))
    assert list(df.columns[:6]) == ["phase", "check", "status", "category", "duration_s", "message"]
    statuses = list(df["status"])
    assert statuses[:5] == ["fail"] * 5 and statuses[5] == "skip" and set(statuses[6:]) == {"pass"}
    assert list(df["check"][:3]) == ["websocket_connect", "websocket_ping", "agent_run"]
    html = report.results_html(report.load_run(runs["e1"]))
    assert "<table" in html and "ws_internal_error" in html and "9.070" in html


def test_diagnosis_quotes_evidence_causes_and_steps(runs):
    run = report.load_run(runs["e1"])
    text = report.diagnosis_markdown(run)
    assert text.startswith("### 1. ✘ `ws_internal_error` — The server closed the WebSocket with 1011")
    assert "**This blocks the golden path.**" in text
    assert "0.021s after the first client message" in text  # the record's detail, quoted
    assert "frames: 0.100 s ← welcome · 0.120 s → start_agent · 0.141 s × close 1011 Internal error by server" in text
    assert "A server-side exception in the WebSocket message handling" in text
    assert "Look at the server logs around the close time" in text


def test_diagnosis_of_a_healthy_run(runs):
    assert report.diagnosis_markdown(report.load_run(runs["healthy"])).startswith("Nothing failed")


def test_evidence_flags_mock_fallback_and_zero_byte_passes(runs):
    run = report.load_run(runs["partial"])
    text = report.evidence_markdown(run)
    assert "`agent_discovery`** (agent_pipeline, pass): `mock_fallback`" in text
    assert "Defect: `api_health` passed but received 0 bytes from the network" in text
    df = report.evidence_table(run)
    assert {"bytes_sent", "bytes_received", "connect_s", "tls_s", "ws_open_s", "ttfb_s", "first_event_s",
            "duration_s", "connection_id", "server_run_id"} <= set(df.columns)


def test_evidence_of_a_healthy_run_says_so_plainly(runs):
    run = report.load_run(runs["healthy"])
    text = report.evidence_markdown(run)
    assert "Every passing check exchanged bytes with the platform" in text
    assert "`agent_run`: connection `main_9f8e`, run `run_42`" in text
    assert "0.012" in report.evidence_html(run)  # tls_s of health


def test_fake_fast_in_a_record_is_stated(tmp_path):
    b = RunBuilder(tmp_path, "triage", T0, "eeee5555")
    b.record("triage", "test_agent_pipeline_execution", "pass", "ok", 0.0, 0.0, "passed in 0.00s",
             findings=["fake_fast"], bytes_sent=0, bytes_received=0)
    b.record("triage", "test_orchestration_states", "fail", "no_network_io", 0.0, 0.001, "computed locally",
             bytes_sent=0, bytes_received=0)
    run = report.load_run(b.write(phases=["triage"]))
    text = report.evidence_markdown(run)
    assert "`fake_fast` — A check claims network work but finished in under 10 ms" in text
    assert "`no_network_io` — A check passed without a byte on the network" in text
    assert "Triage records come from JUnit XML" in text
    assert "cannot be trusted" in report.headline_markdown(run)


def test_previous_run_is_the_latest_older_one_with_results(tmp_path):
    root = tmp_path / "outputs"
    older = build_healthy(root, T0 - timedelta(days=2))
    e1 = build_e1(root, T0)
    newer = RunBuilder(root, "staging", T0 + timedelta(days=1), "ffff6666")
    newer.record("connectivity", "health", "pass", "ok", 0, 0.1, "ok")
    newer.write()
    # A newer run and a folder without results.jsonl are not candidates.
    empty = root / "staging" / (T0 - timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ-noresult")
    empty.mkdir()
    (empty / "run.json").write_text(json.dumps({"started_at": "2025-09-09T17:32:00Z"}))
    assert report.previous_run(e1) == older
    assert report.previous_run(older) is None


def test_comparison_finds_newly_failing_and_slower_checks(runs):
    run = report.load_run(runs["e1"])
    c = report.compare(run)
    assert c.previous == runs["healthy"]
    assert {r.check for _, r in c.newly_failing} == {"websocket_connect", "websocket_ping", "agent_run",
                                                     "ws_invalid_json", "concurrent_agent_runs"}
    assert {r.check for _, r in c.slower} == {"health", "agent_run"}  # 0.061 → 0.48 s, 3.41 → 9.07 s
    assert [r.check for r in c.new_checks] == ["ws_empty_request"]
    text = report.comparison_markdown(run, c)
    assert "**Newly failing (5)**" in text and "**Fixed (0)**: none." in text
    assert "`health` (connectivity): 0.061 s → **0.480 s** (7.9×)" in text


def test_comparison_the_other_way_round_finds_fixes(tmp_path):
    root = tmp_path / "outputs"
    build_e1(root, T0 - timedelta(days=1))
    healthy = build_healthy(root, T0)
    c = report.compare(report.load_run(healthy))
    assert {r.check for _, r in c.fixed} >= {"agent_run", "websocket_connect"}
    assert c.newly_failing == [] and c.slower == []


def test_the_agents_result_is_quoted_from_its_agent_completed_frame():
    from netra_nb.report import agent_result
    frames = [
        {"check": "agent_run", "event": "agent_started", "direction": "received", "text": "{}"},
        {"check": "agent_run", "event": "agent_completed", "direction": "received",
         "text": '{"type": "agent_completed", "data": {"status": "completed", "result": {"answer": 42}}}'},
    ]
    assert agent_result(frames, "agent_run") == '{"answer": 42}'
    assert agent_result(frames, "other_check") is None
    assert agent_result(frames[:1], "agent_run") is None
