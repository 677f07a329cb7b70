"""The report's content, computed without a kernel: reading run folders, tables, evidence, comparison."""

from __future__ import annotations

import json
import tempfile
from datetime import timedelta
from pathlib import Path

from report_runs import T0, RunBuilder, build_e1, build_healthy

from netra_nb import report
from netra_nb.categories import category_info


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
    assert first == "# ✘ The golden path is NOT working: the server closed the WebSocket with 1011 (internal error)"
    assert "Environment **staging**" in text and "13 checks: 7 pass, 5 fail, 1 skip" in text
    assert "first seen 2025-09-09 18:32:01 UTC in `websocket_connect`" in text  # the failure that ended first
    assert "✔ **Authentication**: a token from the auth service (`auth_token`, 0.210 s)." in text
    assert "✔ **HTTP API**: 5 of 5 checks pass." in text  # the registry's HTTP checks; auth is its own line
    assert ("✘ **WebSocket**: 3 of 4 checks fail: `websocket_connect`, `websocket_ping`: the server closed the "
            "WebSocket with 1011 (Internal error) right after the welcome, before any client message (root cause 1)") in text
    assert "`ws_empty_request` skipped." in text
    assert "✘ **Orchestration fleet**: 1 of 2 checks fails the same way (root cause 1)." in text
    # Told once: the first screen names the close stage once and never says "every" for a subset.
    assert text.count("before any client message") == 1


def _records(*specs):
    """Records from (phase, check, status, category[, extra]) tuples, one second apart."""
    b = RunBuilder(Path(tempfile.mkdtemp()), "staging", T0, "gggg7777")
    for i, (phase, check, status, category, *extra) in enumerate(specs):
        b.record(phase, check, status, category, float(i), 0.1, f"{check}: {category}", **(extra[0] if extra else {}))
    return report.load_run(b.write())


HTTP = [("connectivity", c) for c in ("health", "api_health", "service_discovery")] + \
       [("agent_pipeline", c) for c in ("agent_discovery", "agent_configuration", "agent_status", "agent_execute")]


def test_in_short_counts_each_group_from_the_check_registry():
    """The fleet failing with an HTTP status is not an HTTP check; a skipped auth_token does not fail."""
    run = _records(*[(p, c, "pass", "ok", {"http_status": 200}) for p, c in HTTP],
                   ("connectivity", "auth_token", "skip", "ok"),
                   ("orchestration", "concurrent_agent_runs", "fail", "ws_route_missing", {"http_status": 403}))
    lines = report.in_short(run)
    assert "✔ **HTTP API**: 7 of 7 checks pass." in lines
    assert "⊘ **Authentication**: `auth_token` skipped: auth_token: ok." in lines
    fleet = next(line for line in lines if "Orchestration fleet" in line)
    assert fleet.startswith("✘ **Orchestration fleet**: `concurrent_agent_runs` fails: the WebSocket upgrade answered HTTP 403")
    assert not any("Authentication fails" in line or "HTTP checks fail" in line for line in lines)


def test_in_short_names_every_failing_check_of_a_pattern():
    run = _records(*[(p, c, "fail", "connection_refused", {"target": f"GET http://127.0.0.1:9/{c}"}) for p, c in HTTP])
    line = next(line for line in report.in_short(run) if "HTTP API" in line)
    assert line == "✘ **HTTP API**: 7 of 7 checks fail: the connection was refused at 127.0.0.1:9 (root cause 1)."
    [cause] = run.root_causes
    assert [len(g.records) for g in cause.groups] == [7]
    assert cause.observed == ["Every connection to `127.0.0.1:9` was refused: nothing listens there."]


def test_results_table_folds_identical_failures(runs):
    df = report.results_table(report.load_run(runs["e1"]))
    assert list(df.columns[:6]) == ["phase", "check", "status", "category", "duration_s", "message"]
    statuses = list(df["status"])
    assert statuses[:5] == ["fail"] * 5 and statuses[5] == "skip" and set(statuses[6:]) == {"pass"}
    assert list(df["check"][:4]) == ["websocket_connect", "websocket_ping", "concurrent_agent_runs", "agent_run"]
    assert list(df["message"][1:4:2]) == ["the same failure as websocket_connect", "the same failure as concurrent_agent_runs"]
    html = report.results_html(report.load_run(runs["e1"]))
    assert "<table" in html and "ws_internal_error" in html and "9.070" in html


def test_root_cause_of_e1_is_read_from_the_frames(runs):
    run = report.load_run(runs["e1"])
    [cause] = run.root_causes
    assert cause.categories == ["ws_internal_error"] and cause.blocks_golden_path
    assert [g.checks for g in cause.groups] == [["websocket_connect", "websocket_ping"], ["concurrent_agent_runs", "agent_run"],
                                                ["ws_invalid_json"]]
    # The earliest stage decides: a close before any client message needs no message to happen.
    assert "right after its welcome, before reading anything from the client" in cause.observed[0]
    assert cause.next_steps[0] == "Find the exception in the server's logs between 2025-09-09 18:32:00 and 18:32:11 UTC."
    assert not any("before or after the first client message" in s for s in cause.next_steps)  # the kit knows
    assert cause.seen_before == category_info("ws_internal_error").causes
    text = report.diagnosis_markdown(run)
    assert text.startswith("### ✘ Root cause 1: The server closed the WebSocket with 1011 (internal error) — blocks the golden path")
    assert "**Seen before** (causes of this failure in the platform's history; this run does not show them)" in text
    assert "<details><summary>Which 2 checks</summary>\n<code>websocket_connect</code> (connectivity, 0.520 s)" in text


def test_a_close_after_the_first_message_is_placed_in_the_message_handling(runs):
    b = RunBuilder(Path(tempfile.mkdtemp()), "staging", T0, "hhhh8888")
    for i, (check, sent) in enumerate((("websocket_ping", "ping"), ("agent_run", "start_agent"))):
        b.record("connectivity" if i == 0 else "agent_pipeline", check, "fail", "ws_internal_error", i, 0.2, "1011",
                 ws_close_code=1011, ws_closed_by="server", ws_close_reason="Internal error")
        b.session("connectivity" if i == 0 else "agent_pipeline", check, [
            (0.01, "received", "connection_established", "welcome", "{}"), (0.02, "sent", sent, "other", "{}"),
            (0.03, "close", "close", "close", "1011 Internal error")])
    [cause] = report.load_run(b.write()).root_causes
    assert len(cause.groups) == 1
    assert cause.observed == ["The server closed the session with an internal error (1011 Internal error) when the client's "
                              "first message (`ping`, `start_agent`) arrived, whatever the message: the fault is in the "
                              "handling of client messages."]
    assert cause.next_steps[1] == "Look at the server's handling of `ping`, `start_agent`."


def test_first_seen_follows_time_not_phase_order():
    run = _records(("orchestration", "concurrent_agent_runs", "fail", "ws_internal_error"),
                   ("connectivity", "websocket_connect", "fail", "ws_internal_error"),
                   ("agent_pipeline", "agent_run", "fail", "ws_internal_error"))
    gp = run.golden_path
    assert (gp.phase, gp.record.check) == ("orchestration", "concurrent_agent_runs")
    assert gp.sentence.endswith("first seen in the orchestration phase (check concurrent_agent_runs).")


def test_the_page_title_carries_the_verdict(runs):
    assert report.page_title(report.load_run(runs["e1"])) == ("✘ The golden path is NOT working: the server closed the "
                                                              "WebSocket with 1011 (internal error) — Netra staging run bbbb2222")
    assert report.page_title(report.load_run(runs["healthy"])).startswith("✔ The golden path works")


def test_diagnosis_of_a_healthy_run(runs):
    run = report.load_run(runs["healthy"])
    assert report.diagnosis_markdown(run).startswith("Nothing failed")
    assert run.root_causes == []
    assert "✔ **Agent run**: `agent_run` received `agent_started`" in report.headline_markdown(run)


def test_evidence_flags_mock_fallback_and_zero_byte_passes(runs):
    run = report.load_run(runs["partial"])
    text = report.evidence_markdown(run)
    assert "- ‼ `mock_fallback` — A mock or canned stand-in replaced the platform: `agent_discovery` (root cause 1)." in text
    assert "Defect: `api_health` passed but received 0 bytes from the network" in text
    df = report.evidence_table(run)
    assert {"bytes_sent", "bytes_received", "connect_s", "tls_s", "ws_open_s", "ttfb_s", "first_event_s",
            "duration_s", "connection_id", "server_run_id"} <= set(df.columns)


def test_evidence_of_a_healthy_run_says_so_plainly(runs):
    run = report.load_run(runs["healthy"])
    text = report.evidence_markdown(run)
    # The fleet's two checks judge the same sessions: their bytes count once; no claim about the fastest check.
    sent = sum(r.bytes_sent for r in run.records if r.phase != "orchestration") + 180
    received = sum(r.bytes_received for r in run.records if r.phase != "orchestration") + 14000
    assert f"Every passing check received bytes from the platform ({sent:,} bytes sent and {received:,} received" in text
    assert "fastest" not in text
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
    assert ("`fake_fast` — A check claims network work but finished in under 10 ms: `test_agent_pipeline_execution` "
            "(root cause 1).") in text
    assert "`no_network_io` — A check passed without a byte on the network: `test_orchestration_states` (root cause 2)." in text
    assert run.golden_path.blocked_by == "fake_fast"  # the agent run's pass cannot be trusted
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
