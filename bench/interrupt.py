"""Ctrl-C: how long a real ``netra-nb run`` takes, after a SIGINT to its process group (what a terminal
sends), to kill its phase kernels, to write ``report.html`` from the rows it has, and to exit (130).

The platform's agent takes ten minutes, so phases 01 and 02 are in their agent runs when the signal
comes (phase 00 has ended); the kernels are found as the run's descendants (spawned or forked by its zygote).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from netra_nb.engine import is_kernel_process

from .kit import loadavg
from .refplatform import Platform

ROOT = Path(__file__).resolve().parent.parent
AGENT_S = 600.0


def _in_flight(out: Path) -> Path | None:
    """The run folder once phase 00 has all its rows and phase 01's HTTP checks are done (its agent run started)."""
    for f in out.glob("*/*/results.jsonl"):
        rows = {(r.get("phase"), r.get("check")) for r in map(json.loads, f.read_text().splitlines()) if r}
        if sum(p == "connectivity" for p, _ in rows) >= 6 and ("agent_pipeline", "agent_execute") in rows:
            return f.parent
    return None




def _kernels(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if is_kernel_process(p, pid)]
    except psutil.Error:
        return []


def _alive(procs: list[psutil.Process]) -> int:
    return sum(1 for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE)


def once(params_file: Path, out: Path) -> dict[str, Any]:
    load_before = loadavg()
    proc = subprocess.Popen([sys.executable, "-m", "netra_nb.cli", "run", "local", "--params", str(params_file),
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    run_dir = None
    while run_dir is None and time.monotonic() < deadline and proc.poll() is None:
        run_dir = _in_flight(out)
        time.sleep(0.02)
    if run_dir is None:
        proc.kill()
        return {"error": "the agent runs never started"}
    time.sleep(0.5)  # phase 00's notebook draws its charts; the others wait on the agent
    kernels = _kernels(proc.pid)
    if len(kernels) != 5:
        proc.kill()
        return {"error": f"expected 5 kernels (3 phases, the report's, the artifacts'), found {len(kernels)}"}
    t0 = time.time()
    os.killpg(proc.pid, signal.SIGINT)
    gone = None
    while proc.poll() is None and time.time() - t0 < 300:
        if gone is None and _alive(kernels) <= 2:  # only the report's and the artifacts' kernels are left
            gone = time.time() - t0
        time.sleep(0.005)
    proc.wait(300)
    exit_s = time.time() - t0
    report = run_dir / "report.html"
    return {"kernels": len(kernels), "sigint_to_phase_kernels_gone_s": round(gone, 3) if gone is not None else None,
            "sigint_to_report_s": round(report.stat().st_mtime - t0, 2) if report.is_file() else None,
            "sigint_to_exit_s": round(exit_s, 2), "exit": proc.returncode,
            "statuses": {p: n["status"] for p, n in json.loads((run_dir / "run.json").read_text())["notebooks"].items()},
            "load": [load_before, loadavg()]}


def run(*, repeats: int = 3, say=print) -> dict[str, Any]:
    out_root = ROOT / "bench" / "out" / "interrupt"
    out_root.mkdir(parents=True, exist_ok=True)
    with Platform(offsets=(0.05, 0.1, 0.15, 0.2, AGENT_S)) as platform:
        params_file = out_root / "local.yaml"
        params_file.write_text(yaml.safe_dump(platform.params(timeouts={"http": 10, "ws_open": 10,
                                                                        "agent_run": AGENT_S * 2, "run": AGENT_S * 3}),
                                              sort_keys=False))
        runs = []
        for i in range(repeats):
            out = out_root / f"outputs-{i}"
            shutil.rmtree(out, ignore_errors=True)  # the run folder found is this run's
            r = once(params_file, out)
            say(f"  {i + 1}/{repeats}: SIGINT → phase kernels gone {r.get('sigint_to_phase_kernels_gone_s')} s, → report.html "
                f"{r.get('sigint_to_report_s')} s, → exit {r.get('sigint_to_exit_s')} s (exit {r.get('exit')}; "
                f"load {r.get('load')})")
            runs.append(r)

    def med(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return round(statistics.median(values), 3) if values else None

    return {"runs": runs, "sigint_to_phase_kernels_gone_s": med("sigint_to_phase_kernels_gone_s"),
            "sigint_to_report_s": med("sigint_to_report_s"), "sigint_to_exit_s": med("sigint_to_exit_s")}
