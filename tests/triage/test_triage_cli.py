"""`netra-nb triage`: the run folder, exit codes, notebook 92 under papermill, nothing written on bad input."""

from __future__ import annotations

import json

import pytest
from triage_helpers import DATA, write_xml

from netra_nb.records import read_records
from netra_nb.triage import triage_main


def test_malformed_xml_exits_2_names_file_and_line_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "junit.xml"
    bad.write_text('<?xml version="1.0"?>\n<testsuites>\n<testsuite>\n<testcase name="x">\n</testsuites>\n')
    out = tmp_path / "outputs"
    assert triage_main([DATA / "e1_ws_internal_error.xml", bad], out) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5:" in err and "not well-formed XML" in err
    assert not out.exists()


def test_a_billion_laughs_file_exits_2_naming_it_and_writes_nothing(tmp_path, capsys):
    from test_triage_junit import BILLION_LAUGHS
    bad = tmp_path / "laughs.xml"
    bad.write_text(BILLION_LAUGHS)
    out = tmp_path / "outputs"
    assert triage_main([bad], out) == 2
    assert f"{bad}:3: refused:" in capsys.readouterr().err
    assert not out.exists()


def test_no_testcase_is_a_usage_error(tmp_path, capsys):
    empty = tmp_path / "empty.xml"
    empty.write_text("<testsuites/>")
    assert triage_main([empty], tmp_path / "outputs") == 2
    assert "no testcase" in capsys.readouterr().err
    assert triage_main([], tmp_path / "outputs") == 2
    assert not (tmp_path / "outputs").exists()


@pytest.mark.notebook
def test_triage_writes_a_run_folder_and_exits_1_on_failures(tmp_path, capsys):
    out = tmp_path / "outputs"
    files = [DATA / "seed_report_batch1.xml", DATA / "seed_report_batch3.xml"]
    assert triage_main(files, out) == 1
    printed = capsys.readouterr().out.strip().splitlines()
    run_dir = out.resolve() / "triage" / printed[-1].rsplit("/", 1)[1]
    assert printed[-1] == str(run_dir) and run_dir.is_dir()
    assert printed[-2].endswith(f"report: {run_dir / 'report.html'}") and (run_dir / "report.html").exists()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["env"] == "triage" and info["phases"] == ["triage"] and info["run_id"] in run_dir.name
    assert info["notebooks"]["triage"]["status"] == "ok" and info["finished_at"]
    records = read_records(run_dir)
    assert len(records) == 12 and {r.env for r in records} == {"triage"} and {r.run_id for r in records} == {info["run_id"]}
    nb = json.loads((run_dir / "92_pytest_triage.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    shown = json.dumps(nb)
    assert "ws_internal_error" in shown and "mock_fallback" in shown and "image/png" in shown
    # finalize_run's artifacts
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["counts"] == {"pass": 8, "fail": 3, "skip": 1}
    assert (run_dir / "results.parquet").exists() and (run_dir / "junit.xml").exists()


@pytest.mark.notebook
def test_triage_of_honest_passes_exits_0(tmp_path, capsys):
    path = write_xml(tmp_path / "ok.xml", {"name": "test_api_health", "classname": "tests.e2e.T", "time": "0.42",
                                           "out": "GET https://api.staging.netrasystems.ai/api/health -> 200"},
                     {"name": "test_parse_frame", "classname": "tests.unit.test_frames", "time": "0.001"})
    assert triage_main([path], tmp_path / "outputs") == 0
    run_dir = capsys.readouterr().out.strip().splitlines()[-1]
    assert [r.status for r in read_records(run_dir)] == ["pass", "pass"]
