"""No record lost, no secret leaked: killed runs, raising notebooks, the run deadline, a full scan."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from kit_helpers import ROOT, write_params
from netra_nb.records import RECORD_FIELDS
from netra_nb.runner import kill_tree

pytestmark = pytest.mark.notebook
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")


def start_cli(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "netra_nb.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                            start_new_session=True)


def wait_for_rows(run_root: Path, n: int, timeout: float = 90) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in run_root.glob("*/*/results.jsonl"):
            if len(f.read_text().splitlines()) >= n:
                return f.parent
        time.sleep(0.05)
    raise AssertionError("the run never wrote its rows")


def test_sigkill_half_way_keeps_every_completed_row(tmp_path, platform):
    srv = platform(agent_event_offsets=(0.5, 1.0, 1.5, 2.0, 2.5))
    f = write_params(tmp_path / "p.yaml", srv)
    proc = start_cli("run", "test", "--params", str(f), "--out", str(tmp_path / "out"))
    run_dir = wait_for_rows(tmp_path / "out", 5)
    kill_tree(proc.pid)  # the runner and the kernels, at once
    proc.wait(10)
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line is valid JSON
    assert len(rows) >= 5 and all(set(RECORD_FIELDS) <= set(r) for r in rows)
    assert not (run_dir / "summary.json").exists()

    rebuilt = subprocess.run([sys.executable, "-m", "netra_nb.cli", "report", str(run_dir)], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode == 3, rebuilt.stderr  # healthy rows, but the run did not finish: never 0
    assert "phases that did not finish" in rebuilt.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["unfinished_phases"] and summary["complete"] is False
    assert sum(summary["counts"].values()) == len(rows)
    assert len(pd.read_parquet(run_dir / "results.parquet")) == len(rows)
    assert (run_dir / "junit.xml").is_file()


def test_a_phase_notebook_that_raises_keeps_its_executed_notebook(tmp_path, platform, monkeypatch):
    import nbformat
    from netra_nb import runner
    from netra_nb.params import load_params

    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    nb = nbformat.read(ROOT / "notebooks" / "00_connectivity.ipynb", as_version=4)
    nb.cells.insert(4, nbformat.v4.new_code_cell("raise RuntimeError('a bug in the kit')"))
    nbformat.write(nb, nbdir / "00_connectivity.ipynb")
    monkeypatch.setattr(runner, "notebooks_dir", lambda: nbdir)
    srv = platform()
    f = write_params(tmp_path / "p.yaml", srv)
    result = runner.run_phases(load_params(path=f), f, tmp_path / "out", phases=["connectivity"], report=False)
    info = json.loads((result.run_dir / "run.json").read_text())
    error = info["notebooks"]["connectivity"]["error"]
    assert info["notebooks"]["connectivity"]["status"] == "failed"
    # code cell 4 of the executed notebook (the runner injects a parameters cell after ours)
    assert error["ename"] == "RuntimeError" and error["cell"] == 4
    executed = json.loads((result.run_dir / "00_connectivity.ipynb").read_text())
    assert any(o.get("output_type") == "error" for c in executed["cells"] for o in c.get("outputs", []))
    assert result.summary["unfinished_phases"] == ["connectivity"]
    assert result.exit_code == 3


def time_to_rows(args: list[str], run_root: Path, checks: set[str]) -> float:
    """Seconds from the start of ``netra-nb run`` until ``checks`` all have rows, on this machine now
    (interpreter, kernels, imports: a busy machine takes several times longer); the run is then killed."""
    t0 = time.monotonic()
    proc = start_cli(*args)
    try:
        deadline = t0 + 600
        while time.monotonic() < deadline:
            rows = [json.loads(line) for f in run_root.glob("*/*/results.jsonl") for line in f.read_text().splitlines()
                    if line.endswith("}")]
            if checks <= {r["check"] for r in rows}:
                return time.monotonic() - t0
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        raise AssertionError(f"no rows for {checks} in 600 s")
    finally:
        kill_tree(proc.pid)
        proc.wait(10)


def test_the_run_deadline_stops_phases_and_keeps_rows(tmp_path, platform):
    srv = platform(agent_event_offsets=(0.5, 1.0, 1.5, 2.0, 600.0))  # the agent run never ends in time
    first = {"agent_discovery", "agent_configuration"}
    f = write_params(tmp_path / "p.yaml", srv, timeouts={"run": 600, "agent_run": 1200})
    # The deadline comes after the first rows whatever the machine's load: measured, then doubled.
    measured = time_to_rows(["run", "test", "--params", str(f), "--out", str(tmp_path / "calibration"),
                             "--phase", "agent_pipeline"], tmp_path / "calibration", first)
    run_s = round(2 * measured + 2, 1)
    f = write_params(tmp_path / "p.yaml", srv, timeouts={"run": run_s, "agent_run": 1200})
    proc = subprocess.run([sys.executable, "-m", "netra_nb.cli", "run", "test", "--params", str(f), "--out",
                           str(tmp_path / "out"), "--phase", "agent_pipeline"], cwd=ROOT, capture_output=True,
                          text=True, timeout=run_s + 300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    info = json.loads((run_dir / "run.json").read_text())
    assert info["notebooks"]["agent_pipeline"]["error"]["ename"] == "RunDeadline"
    assert f"the run's deadline ({run_s:g} s, timeouts.run) passed" in proc.stdout
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert {r["check"] for r in rows} >= first and "agent_run" not in {r["check"] for r in rows}
    assert json.loads((run_dir / "summary.json").read_text())["unfinished_phases"] == ["agent_pipeline"]


def scan(folder: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        blobs = [path.read_bytes()]
        if path.suffix == ".parquet":
            blobs.append(pd.read_parquet(path).to_csv().encode())
        for blob in blobs:
            for needle in needles:
                if needle in blob:
                    hits.append(f"{path.name}: {needle[:12]!r}")
            if JWT.search(blob):
                hits.append(f"{path.name}: a JWT")
    return hits


def test_the_scanner_finds_planted_secrets(tmp_path):
    """The scanner itself can fail: a planted key and token are found, in plain files and in Parquet."""
    needles = [b"demo-key-" + os.urandom(8).hex().encode()]
    (tmp_path / "log.txt").write_bytes(b"key=" + needles[0])
    pd.DataFrame({"t": ["Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.sig"]}).to_parquet(tmp_path / "x.parquet")
    assert {hit.split(":")[0] for hit in scan(tmp_path, needles)} == {"log.txt", "x.parquet"}


def test_no_secret_reaches_any_artifact_of_a_demo(tmp_path):
    key, secret = "demo-key-" + os.urandom(8).hex(), "demo-secret-" + os.urandom(16).hex()
    demo = subprocess.run([sys.executable, "-m", "netra_nb.cli", "demo", "--out", str(tmp_path / "out")], cwd=ROOT,
                          capture_output=True, timeout=300,
                          env={**os.environ, "NETRA_DEMO_E2E_KEY": key, "NETRA_DEMO_JWT_SECRET": secret})
    assert demo.returncode == 0, demo.stderr
    run_dir = Path(demo.stdout.decode().strip().splitlines()[-1])
    needles = [key.encode(), secret.encode()]
    assert scan(run_dir, needles) == []
    assert not any(n in demo.stdout + demo.stderr for n in needles) and not JWT.search(demo.stdout + demo.stderr)


@pytest.mark.parametrize("placement", ["query", "subprotocol"])
def test_no_secret_reaches_any_artifact_with_the_token_in_the(placement, tmp_path, platform):
    """The riskiest placements: the token in the query string, and in (echoed) subprotocols."""
    f = write_params(tmp_path / f"{placement}.yaml", platform(), auth={"placement": placement})
    proc = subprocess.run([sys.executable, "-m", "netra_nb.cli", "run", "test", "--params", str(f), "--out",
                           str(tmp_path / placement)], cwd=ROOT, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.decode().strip().splitlines()[-1])
    assert scan(run_dir, [os.environ["NETRA_TEST_E2E_KEY"].encode(), os.environ["NETRA_TEST_JWT_SECRET"].encode()]) == []
