"""Ctrl-C, as a terminal sends it: SIGINT to the foreground process group of a real `netra-nb run`
(the kernels run in sessions of their own, so the signal reaches only the runner).

The platform's agent takes ten minutes, so the agent runs of phases 01 and 02 are in flight when the
signal comes: a run that did not stop them could not end without their rows."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from kit_helpers import ROOT, write_params
from netra_nb.checks import PHASE_CHECKS
from netra_nb.engine import is_kernel_process

pytestmark = pytest.mark.notebook
AGENT_S = 600.0  # the agent's last event: far beyond any wait below


class Run:
    """A `netra-nb run` in a process group of its own, its stdout read line by line as it comes."""

    def __init__(self, params: Path, out: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "netra_nb.cli", "run", "test", "--params", str(params),
                                      "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def finish(self, timeout: float) -> tuple[str, str]:
        err = self.proc.stderr.read()
        self.proc.wait(timeout)
        self.reader.join(timeout)
        return "".join(self.lines), err


def wait_until(predicate, what: str, run: Run, timeout: float = 240):
    """Poll ``predicate`` until it returns something true; fail with the run's output if the run ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if run.proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {''.join(run.lines)}{run.proc.stderr.read()}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def rows_of(run_root: Path) -> tuple[Path | None, list[dict]]:
    for f in run_root.glob("*/*/results.jsonl"):
        return f.parent, [json.loads(line) for line in f.read_text().splitlines() if line.endswith("}")]
    return None, []


def agent_runs_in_flight(run_root: Path):
    """The run folder once phase 00 is done and phase 01 has sent its agent request (its HTTP checks, which
    come first, all have rows)."""
    run_dir, rows = rows_of(run_root)
    done = {(r["phase"], r["check"]) for r in rows}
    needed = {("connectivity", c) for c in PHASE_CHECKS["connectivity"]} | {
        ("agent_pipeline", c) for c in ("agent_discovery", "agent_configuration", "agent_status", "agent_execute")}
    return run_dir if needed <= done else None




def kernels_of(run: Run) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(run.proc.pid).children(recursive=True) if is_kernel_process(p, run.proc.pid)]
    except psutil.Error:
        return []


def test_first_ctrl_c_stops_the_phases_keeps_every_row_and_writes_the_report(tmp_path, platform):
    srv = platform(agent_event_offsets=(0.05, 0.1, 0.15, 0.2, AGENT_S))
    params = write_params(tmp_path / "p.yaml", srv, timeouts={"agent_run": AGENT_S * 2, "run": AGENT_S * 3})
    run = Run(params, tmp_path / "out")
    run_dir = wait_until(lambda: agent_runs_in_flight(tmp_path / "out"), "the agent runs started", run)
    wait_until(lambda: run.said("phase connectivity: notebook ok"), "phase 00's notebook ended", run)
    # Three phases, then the report's kernel and the artifacts kernel (forked once the phases have their imports).
    kernels = wait_until(lambda: k if len(k := kernels_of(run)) == 5 else None, "the five kernels", run)
    _, before = rows_of(tmp_path / "out")
    os.killpg(run.proc.pid, signal.SIGINT)
    out, err = run.finish(240)
    assert run.proc.returncode == 130, out + err
    assert not [k for k in kernels if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]

    _, after = rows_of(tmp_path / "out")
    assert after[:len(before)] == before  # every row written before the signal, unchanged
    assert not any(r["check"] in ("agent_run", "concurrent_agent_runs") for r in after)  # stopped, not finished
    info = json.loads((run_dir / "run.json").read_text())
    assert info["notebooks"]["connectivity"]["status"] == "ok"
    for phase in ("agent_pipeline", "orchestration"):
        assert info["notebooks"][phase]["status"] == "interrupted"
        assert info["notebooks"][phase]["error"]["ename"] == "Interrupted"
    assert info["interrupted_at"] and info["finished_at"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["unfinished_phases"] == ["agent_pipeline", "orchestration"]
    assert sum(summary["counts"].values()) == len(after)
    page = (run_dir / "report.html").read_text()
    for phase in ("agent_pipeline", "orchestration"):
        assert f"Phase <code>{phase}</code> did not finish: the run was interrupted (Ctrl-C)" in page
    assert "interrupted: stopping the phases" in out and "the phases' kernels were killed" in out
    assert out.index("the phases' kernels were killed") < out.index("building the report")
    assert out.strip().splitlines()[-1] == str(run_dir)

    rebuilt = subprocess.run([sys.executable, "-m", "netra_nb.cli", "report", str(run_dir)], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode == 3, rebuilt.stdout + rebuilt.stderr  # a partial run never exits 0 (nor 1)
    assert "phases that did not finish: agent_pipeline, orchestration" in rebuilt.stdout


def test_a_second_ctrl_c_stops_at_once(tmp_path, platform):
    srv = platform(agent_event_offsets=(0.05, 0.1, 0.15, 0.2, AGENT_S))
    params = write_params(tmp_path / "p.yaml", srv, timeouts={"agent_run": AGENT_S * 2, "run": AGENT_S * 3})
    run = Run(params, tmp_path / "out")
    run_dir = wait_until(lambda: agent_runs_in_flight(tmp_path / "out"), "the agent runs started", run)
    kernels = kernels_of(run)
    os.killpg(run.proc.pid, signal.SIGINT)
    wait_until(lambda: run.said("interrupted: stopping the phases"), "the first Ctrl-C was taken", run)
    os.killpg(run.proc.pid, signal.SIGINT)
    out, err = run.finish(240)
    assert run.proc.returncode == 130, out + err
    assert "stopped at once" in err
    assert not [k for k in kernels if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
    assert not any(r["check"] in ("agent_run", "concurrent_agent_runs") for r in rows_of(tmp_path / "out")[1])
    assert (run_dir / "results.jsonl").is_file()
