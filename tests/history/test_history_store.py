"""The history dataset on disk: append_run, compaction and load_history over real run folders."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from history_helpers import T0, make_run, record, snapshot

from netra_nb import history as h
from netra_nb import history_store
from netra_nb.records import append_jsonl

CHECKS = {"health": "P", "api_health": "P", "websocket_connect": "F"}


@pytest.fixture
def small_segments(monkeypatch):
    monkeypatch.setattr(history_store, "SEGMENT_RUNS", 3)  # read where it is used: the store


def runs_of(df: pd.DataFrame) -> list[str]:
    return sorted(df["run_key"].astype(str).unique())


def test_append_adds_one_file_per_run_partitioned_by_env_and_date(tmp_path):
    run = make_run(tmp_path / "outputs", "staging", T0, CHECKS)
    h.append_run(run, tmp_path / "outputs")
    files = list((tmp_path / "outputs" / "_history").rglob("*.parquet"))
    assert [f.relative_to(tmp_path / "outputs" / "_history").as_posix() for f in files] == [
        f"runs/env=staging/date=2026-11-02/run-{run.name}.parquet"]
    df = h.load_history(tmp_path / "outputs", columns=None)
    assert len(df) == 3 and runs_of(df) == [run.name]
    first = df[df["check"] == "websocket_connect"].iloc[0]
    assert first["status"] == "fail" and first["category"] == "http_unavailable" and first["sla_s"] == 2.0
    assert df["run_started_at"].iloc[0] == pd.Timestamp(T0) and str(df["run_started_at"].dt.tz) == "UTC"


def test_append_is_idempotent_for_the_same_run(tmp_path):
    out = tmp_path / "outputs"
    run = make_run(out, "staging", T0, CHECKS)
    h.append_run(run, out)
    before = snapshot(out / "_history")
    h.append_run(run, out)
    assert snapshot(out / "_history") == before
    assert len(h.load_history(out)) == 3


def test_append_never_rewrites_existing_files_even_while_compacting(tmp_path, small_segments):
    out = tmp_path / "outputs"
    seen: dict = {}
    for i in range(8):  # two segments, then a closed day's day file, then more
        day = T0 + timedelta(hours=5 * i)
        h.append_run(make_run(out, "staging", day, CHECKS, run_id=f"r{i}"), out)
        now = snapshot(out / "_history")
        for name, state in seen.items():
            assert now[name] == state, f"{name} changed"
        seen = now
    df = h.load_history(out)
    assert len(df) == 8 * 3 and len(runs_of(df)) == 8
    assert not df.duplicated(["run_key", "check"]).any()


def test_segments_cover_uncovered_runs_of_an_open_day(tmp_path, small_segments):
    out = tmp_path / "outputs"
    for i in range(7):
        h.append_run(make_run(out, "staging", T0 + timedelta(minutes=5 * i), CHECKS, run_id=f"r{i}"), out)
    compact = sorted(p.name for p in (out / "_history" / "compact" / "env=staging" / "date=2026-11-02").iterdir())
    assert len(compact) == 2 and all(n.startswith("seg-3-") for n in compact)
    files = h.history_files(out)
    assert sum("/compact/" in f for f in files) == 2 and sum("/runs/" in f for f in files) == 1  # the 7th run
    df = h.load_history(out)
    assert len(df) == 21 and len(runs_of(df)) == 7


def test_a_closed_day_gets_a_day_file_that_replaces_its_segments_and_a_late_run_a_new_one(tmp_path, small_segments):
    out = tmp_path / "outputs"
    for i in range(4):
        h.append_run(make_run(out, "staging", T0 + timedelta(minutes=5 * i), CHECKS, run_id=f"r{i}"), out)
    h.append_run(make_run(out, "staging", T0 + timedelta(days=1), CHECKS, run_id="next"), out)
    day_dir = out / "_history" / "compact" / "env=staging" / "date=2026-11-02"
    assert sorted(p.name.split("-")[0] + p.name.split("-")[1] for p in day_dir.iterdir()) == ["day4", "seg3"]
    files = h.history_files(out)
    assert [f.rsplit("/", 1)[1].split("-")[0] for f in files] == ["day", "run"]  # day file, then the new day's run
    before = snapshot(out / "_history")
    late = make_run(out, "staging", T0 + timedelta(hours=3), CHECKS, run_id="late")  # finished after midnight
    h.append_run(late, out)
    after = snapshot(out / "_history")
    assert all(after[k] == v for k, v in before.items())
    assert sorted(p.name.split("-")[0] + p.name.split("-")[1] for p in day_dir.iterdir()) == ["day4", "day5", "seg3"]
    df = h.load_history(out)
    assert len(runs_of(df)) == 6 and len(df) == 18 and not df.duplicated(["run_key", "check"]).any()


def test_compact_history_writes_day_files_for_old_days_beyond_the_lookback(tmp_path, small_segments):
    out = tmp_path / "outputs"
    for i in range(2):
        h.append_run(make_run(out, "staging", T0 + timedelta(minutes=i), CHECKS, run_id=f"old{i}"), out)
    h.append_run(make_run(out, "staging", T0 + timedelta(days=10), CHECKS, run_id="new"), out)
    assert not (out / "_history" / "compact" / "env=staging" / "date=2026-11-02").exists()
    written = h.compact_history(out)
    assert [p.name.split("-")[:2] for p in written] == [["day", "2"], ["day", "1"]]
    assert h.compact_history(out) == []  # nothing left to do
    assert len(h.load_history(out)) == 9


def test_load_filters_by_env_and_time_window_and_reads_only_wanted_columns(tmp_path):
    out = tmp_path / "outputs"
    for env in ("staging", "production"):
        for d in range(3):
            h.append_run(make_run(out, env, T0 + timedelta(days=d), CHECKS, run_id=f"{env[:4]}{d}"), out)
    assert set(h.load_history(out)["env"].astype(str)) == {"staging", "production"}
    only = h.load_history(out, env="production")
    assert set(only["env"].astype(str)) == {"production"} and len(only) == 9
    window = h.load_history(out, since=T0 + timedelta(days=1), until=T0 + timedelta(days=1, hours=1))
    assert len(window) == 6 and set(window["run_started_at"]) == {pd.Timestamp(T0 + timedelta(days=1))}
    some = h.load_history(out, columns=["check", "status"])
    assert set(some.columns) == {"check", "status", "run_key", "env", "run_started_at"}
    assert isinstance(some["check"].dtype, pd.CategoricalDtype)
    assert h.load_history(out, days=1).empty  # T0 is long ago
    with pytest.raises(KeyError):
        h.load_history(out, columns=["no_such_column"])


def test_every_record_field_survives_the_round_trip(tmp_path):
    out = tmp_path / "outputs"
    run = out / "staging" / "20261102T080000Z-abc"
    run.mkdir(parents=True)
    full = record("abc", "staging", "agent_run", "fail", phase="agent_pipeline", http_status=200, ws_close_code=1011,
                  ws_close_reason="Internal error", ws_closed_by="server", events_seen=["connection_established"],
                  events_missing=["agent_started"], bytes_sent=120, bytes_received=900, findings=["mock_fallback"],
                  detail="x" * 10_000)
    append_jsonl(run / "results.jsonl", [full])
    h.append_run(run, out)  # no run.json: the folder's stamp gives the start
    r = h.load_history(out, columns=None).iloc[0]
    assert r["ws_close_code"] == 1011 and r["http_status"] == 200 and r["ws_closed_by"] == "server"
    assert list(r["events_missing"]) == ["agent_started"] and list(r["findings"]) == ["mock_fallback"]
    assert r["bytes_received"] == 900 and len(r["detail"]) == 4000
    assert r["run_started_at"] == pd.Timestamp(datetime(2026, 11, 2, 8, tzinfo=timezone.utc))


def test_odd_records_are_stored_not_refused(tmp_path):
    out = tmp_path / "outputs"
    run = out / "staging" / "20261102T080000Z-odd"
    run.mkdir(parents=True)
    (run / "results.jsonl").write_text("\n".join([
        json.dumps({"run_id": "odd", "env": "staging", "phase": "p", "check": "c", "status": "pass", "category": "ok",
                    "started_at": "not a time", "duration_s": None, "message": 42, "http_status": "503",
                    "ws_close_code": "n/a", "events_seen": "agent_started", "new_field_from_the_future": {"a": 1}}),
        '{"torn line',
    ]) + "\n")
    h.append_run(run, out)
    r = h.load_history(out, columns=None).iloc[0]
    assert r["http_status"] == 503 and pd.isna(r["ws_close_code"]) and r["message"] == "42"
    assert list(r["events_seen"]) == ["agent_started"] and pd.isna(r["started_at"])


def test_a_run_without_records_adds_nothing(tmp_path):
    out = tmp_path / "outputs"
    run = out / "staging" / "20261102T080000Z-empty"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": "empty", "env": "staging", "started_at": "2026-11-02T08:00:00Z"}))
    h.append_run(run, out)
    assert not (out / "_history").exists()
    assert h.load_history(out).empty


def test_concurrent_appends_keep_every_run_exactly_once(tmp_path, small_segments):
    out = tmp_path / "outputs"
    runs = [make_run(out, env, T0 + timedelta(minutes=i), CHECKS, run_id=f"{env[:4]}{i}")
            for env in ("staging", "production") for i in range(9)]
    errors = []

    def append(batch):
        try:
            for r in batch:
                h.append_run(r, out)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(runs[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    df = h.load_history(out)
    assert len(df) == 18 * 3 and not df.duplicated(["run_key", "check"]).any()


def test_today_gets_segments_never_a_day_file_that_every_later_run_would_rewrite(tmp_path, small_segments):
    out = tmp_path / "outputs"
    # Noon of today (UTC): all ten runs fall on today whatever time the test runs.
    now = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)
    for i in range(4):
        h.append_run(make_run(out, "staging", now - timedelta(seconds=10 * i), CHECKS, run_id=f"t{i}"), out)
    h.compact_history(out, include_today=True)
    for i in range(4, 10):
        h.append_run(make_run(out, "staging", now - timedelta(seconds=10 * i), CHECKS, run_id=f"t{i}"), out)
    compact = list((out / "_history" / "compact").rglob("*.parquet"))
    assert compact and not any(p.name.startswith("day-") for p in compact)
    assert len(runs_of(h.load_history(out))) == 10


def test_a_run_is_stored_with_the_series_it_talked_to(tmp_path):
    out = tmp_path / "outputs"
    demo = make_run(out, "demo", T0, {"health": "P"}, era="mid", fault="ws_1011_after_welcome")
    local = make_run(out, "local", T0, {"health": "P"}, base_url="http://localhost:8000")
    elsewhere = make_run(out, "local", T0 + timedelta(minutes=1), {"health": "F"}, base_url="http://10.0.0.7:8000")
    bare = make_run(out, "staging", T0, {"health": "P"})
    for run in (demo, local, elsewhere, bare):
        h.append_run(run, out)
    df = h.load_history(out)
    got = {(str(r.env), str(r.series)) for r in df.itertuples()}
    assert got == {("demo", "reference platform (mid era, faults: ws_1011_after_welcome)"), ("local", "http://localhost:8000"),
                   ("local", "http://10.0.0.7:8000"), ("staging", "")}
    # A params file named local but pointed elsewhere is another series: local's own check is not failing.
    streaks = h.failing_streaks(df)
    assert streaks[["env", "series", "check"]].values.tolist() == [["local", "http://10.0.0.7:8000", "health"]]
    assert h.series_of(local, {}) == "http://localhost:8000"
    assert h.series_of(demo, {"era": "early", "fault": None}) == "reference platform (early era, faults: none)"
