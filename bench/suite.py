"""The test suite's wall time: ``make test``'s command (its pytest-xdist workers included) for this
checkout, and for a ``--baseline`` checkout (its own configuration, the same interpreter), one after the
other, with the load average before and after each."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .kit import loadavg

ROOT = Path(__file__).resolve().parent.parent


def _workers(kit: Path) -> list[str]:
    """``make test``'s pytest-xdist workers in that checkout (none before it had them)."""
    m = re.search(r"^TEST_WORKERS\s*\?=\s*(\d+)", (kit / "Makefile").read_text(), re.M)
    return ["-n", m.group(1)] if m else []


def _suite(kit: Path, label: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *_workers(kit)]
    before = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=kit, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(kit)},
                          timeout=3600)
    wall = time.perf_counter() - t0
    last = next((line for line in reversed(proc.stdout.splitlines()) if line.strip()), "")
    failed = [line.split(" ", 1)[1].split(" - ")[0] for line in proc.stdout.splitlines() if line.startswith("FAILED ")]
    return {"kit": label, "command": " ".join(["python"] + cmd[1:]), "wall_s": round(wall, 1), "exit": proc.returncode,
            "result": last.strip("= "), "failed": failed, "load": [before, loadavg()]}


def run(*, baseline: Path | None = None, say=print) -> dict[str, Any]:
    runs = []
    for kit, label in ((ROOT, "this checkout"), *(((baseline, f"baseline {baseline}"),) if baseline else ())):
        say(f"  pytest in {label} …")
        row = _suite(kit, label)
        say(f"  {label}: {row['wall_s']} s, {row['result']} (load {row['load'][0]} → {row['load'][1]})"
            + "".join(f"\n    failed: {t}" for t in row["failed"]))
        runs.append(row)
    return {"runs": runs}
