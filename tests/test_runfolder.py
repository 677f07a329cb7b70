"""runfolder.py: a run folder's name made and read in one place, and the runs around a folder."""

from datetime import datetime, timezone

from netra_nb.records import Record, append_jsonl
from netra_nb.runfolder import folder_name, folder_time, load_run, previous_run, stamp

T = datetime(2026, 12, 6, 21, 55, 1, 734000, tzinfo=timezone.utc)


def test_a_folder_name_is_its_utc_start_then_its_id_and_reads_back():
    assert stamp(T) == "20261206T215501Z"
    assert folder_name(T, "ab12cd34") == "20261206T215501Z-ab12cd34"
    assert folder_time(folder_name(T, "ab12cd34")) == T.replace(microsecond=0)
    assert folder_time("my-run") is None and folder_time("20261206T2155") is None


def _run(root, name, started):
    d = root / "local" / name
    d.mkdir(parents=True)
    append_jsonl(d / "results.jsonl", [Record("r", "local", "connectivity", "health", "pass", "ok", started, 0.1,
                                              "ok", bytes_received=1).to_dict()])
    return d


def test_the_previous_run_is_the_newest_older_folder_with_results(tmp_path):
    old = _run(tmp_path, folder_name(T.replace(hour=20), "a"), "2026-12-06T20:00:00Z")
    _run(tmp_path, folder_name(T.replace(hour=23), "later"), "2026-12-06T23:00:00Z")
    (tmp_path / "local" / folder_name(T.replace(hour=21, minute=0), "empty")).mkdir()  # no results: not a run
    now = _run(tmp_path, folder_name(T, "now"), "2026-12-06T21:55:01Z")
    assert previous_run(now) == old
    assert load_run(now).records[0].check == "health" and previous_run(old) is None
