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


def test_passing_sessions_are_drawn_once_per_pattern(runs):
    groups = charts.passing_session_patterns(read_frames(runs["healthy"]), read_records(runs["healthy"]))
    assert [[k.check for k in keys] for keys, _ in groups] == [["websocket_connect"], ["websocket_ping"], ["agent_run"]]
    frames = [f for f in read_frames(runs["e1"]) if f["check"] == "concurrent_agent_runs"]
    for f in frames:
        f["check"] = "user_isolation"  # a passing check's 40 identical sessions are one pattern
    [(keys, _)] = charts.passing_session_patterns(frames, read_records(runs["e1"]))
    assert len(keys) == 40
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
    assert all(f"test_{i:03d}" in labels for i in range(0, 150, 10))  # every failure kept; one phase: no prefix
    assert "60 of 150" in fig.axes[0].get_title(loc="left")


def _marks(ax, marker):
    return [line for line in ax.lines if line.get_marker() == marker]


def _inside(fig, ax, text) -> bool:
    box, axes = text.get_window_extent(fig.canvas.get_renderer()), ax.get_window_extent(fig.canvas.get_renderer())
    return axes.x0 <= box.x0 and box.x1 <= axes.x1


def test_durations_mark_a_deadline_only_where_it_stopped_a_check():
    recs = [{"phase": "p", "check": "ok", "status": "pass", "duration_s": 0.5, "sla_s": 1.0, "timeout_s": 50.0},
            {"phase": "p", "check": "slow", "status": "fail", "duration_s": 7.0, "sla_s": 1.0, "timeout_s": 7.0},
            {"phase": "p", "check": "fast_fail", "status": "fail", "duration_s": 0.01, "sla_s": 1.0, "timeout_s": 7.0}]
    ax = charts.durations_chart(recs[:1]).axes[0]
    assert _marks(ax, "x") == []  # an all-green run has no deadline marks
    ax = charts.durations_chart(recs).axes[0]
    [deadline] = _marks(ax, "x")
    assert list(deadline.get_xdata()) == [7.0] and list(deadline.get_ydata()) == [1]
    assert len(_marks(ax, "|")) == 3


def test_value_labels_clear_the_sla_tick_and_stay_inside_the_axes():
    recs = [{"phase": "p", "check": f"c{i}", "status": "pass", "duration_s": d, "sla_s": 1.0}
            for i, d in enumerate((0.9, 0.95, 0.004, 0.5, 2.4, 0.98))]
    fig = charts.durations_chart(recs)
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    sla_px = ax.transData.transform((1.0, 0))[0]
    labels = [t for t in ax.texts if t.get_text().endswith(" s")]
    assert len(labels) == 6
    for t in labels:
        box = t.get_window_extent(renderer)
        assert not box.x0 - 2 <= sla_px <= box.x1 + 2, t.get_text()
        assert _inside(fig, ax, t), t.get_text()
    assert ax.get_xscale() == "log"  # 4 ms and 2.4 s side by side


def test_category_labels_stay_inside_the_axes():
    recs = [{"phase": "p", "check": f"a_very_long_check_name_{i}", "status": "fail", "category": "ws_internal_error",
             "started_at": "2025-09-09T18:32:00Z"} for i in range(9)]
    recs.append({"phase": "p", "check": "x", "status": "fail", "category": "http_unavailable", "started_at": "2025-09-09T18:32:00Z"})
    fig = charts.failures_chart(recs)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts][0] == "a_very_long_check_name_0, a_very_long_check_name_1 and 7 more"
    assert all(_inside(fig, ax, t) for t in ax.texts)


def test_an_error_frame_a_passing_check_asked_for_is_not_red():
    frames = [{"t_s": 0.01, "direction": "received", "type": "connection_established", "event": "welcome"},
              {"t_s": 0.02, "direction": "sent", "type": "<non-json>", "event": "invalid"},
              {"t_s": 0.03, "direction": "received", "type": "error_message", "event": "error"}]
    key = charts.SessionKey("agent_pipeline", "ws_invalid_json", 0)
    for status, color in (("pass", "#2e7d32"), ("fail", "#c62828")):
        ax = charts.session_chart(key, frames, {"status": status, "duration_s": 0.05}).axes[0]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["← welcome", "→ invalid JSON", "← error"]
        assert _marks(ax, "o")[-1].get_color() == color
