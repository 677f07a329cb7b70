"""The charts: drawn from plain records and frames, saved as PNG, skipped with a note when empty."""

from __future__ import annotations

from netra_nb import charts, report
from netra_nb.records import read_frames, read_records

PNG = b"\x89PNG\r\n\x1a\n"


def test_each_chart_of_e1_is_saved_as_png(fresh_runs):
    run_dir = fresh_runs["e1"]
    records = read_records(run_dir)
    for name, fig in [("durations", charts.durations_chart(records)),
                      ("timeline", charts.timeline_chart(records, "2025-09-09T18:32:00.000Z")),
                      ("failures_by_category", charts.failures_chart(records))]:
        path = charts.save(fig, run_dir, name)
        assert path == run_dir / "charts" / f"{name}.png"
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name


def test_nothing_to_draw_gives_none_and_a_note(runs, tmp_path):
    assert charts.failures_chart(read_records(runs["healthy"])) is None
    assert charts.durations_chart([]) is None and charts.timeline_chart([]) is None
    assert charts.save(None, tmp_path, "x") is None and not (tmp_path / "charts").exists()
    run = report.load_run(runs["healthy"])
    run.dir = tmp_path  # draw into a scratch folder, not the shared run
    note = report.chart(run, "failures_by_category")
    assert "No check failed" in note.data
    assert not (tmp_path / "charts" / "failures_by_category.png").exists()


def test_parse_close_knows_who_closed():
    rec = {"ws_close_code": 1011, "ws_closed_by": "server"}
    assert charts.parse_close({"text": "1011 Internal error"}, rec) == (1011, "Internal error", "server")
    assert charts.parse_close({"text": "1000 netra-nb check done"}) == (1000, "netra-nb check done", "client")
    assert charts.parse_close({"text": "1006 connection dropped without a close frame"})[2] is None
    assert charts.parse_close({"text": "1008 AUTH_FAILED by server"}) == (1008, "AUTH_FAILED", "server")
    assert charts.parse_close({"text": ""}) == (None, "", None)


def test_pick_sessions_draws_a_few_of_many(runs):
    picked = charts.pick_sessions(read_frames(runs["e1"]), read_records(runs["e1"]))
    keys = [k for k, _ in picked]
    orchestration = [k.session for k in keys if k.check == "concurrent_agent_runs"]
    assert len(orchestration) == 3 and 0 in orchestration and 39 in orchestration  # first abnormal, longest
    # Failing checks' sessions come first, in the run's order.
    assert [k.check for k in keys[:3]] == ["websocket_connect", "websocket_ping", "agent_run"]
    assert charts.session_count(read_frames(runs["e1"]))[("orchestration", "concurrent_agent_runs")] == 40


def test_session_chart_marks_the_close(runs, tmp_path):
    frames = [f for f in read_frames(runs["e1"]) if f["check"] == "agent_run"]
    record = next(r for r in read_records(runs["e1"]) if r.check == "agent_run")
    key = charts.SessionKey("agent_pipeline", "agent_run", 0)
    fig = charts.session_chart(key, frames, record)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.startswith("close 1011 Internal error (by server) at 0.141 s") for t in texts), texts
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["← welcome", "→ start_agent", "close"]
    assert charts.save(fig, tmp_path, key.name).name == "session_agent_pipeline_agent_run_0.png"
    assert charts.session_chart(key, [], record) is None


def test_many_checks_are_limited_to_a_readable_chart():
    recs = [{"phase": "triage", "check": f"test_{i:03d}", "status": "fail" if i % 10 == 0 else "pass",
             "started_at": "2025-09-09T18:32:00Z", "duration_s": i / 100} for i in range(150)]
    fig = charts.durations_chart(recs)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 60
    assert all(f"triage · test_{i:03d}" in labels for i in range(0, 150, 10))  # every failure kept
    assert "60 of 150" in fig.axes[0].get_title(loc="left")
