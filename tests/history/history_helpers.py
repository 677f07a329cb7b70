"""Small generated histories for the history tests: frames by hand, and real run folders."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from netra_nb.records import Record, append_jsonl

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
STATUS = {"P": "pass", "F": "fail", "S": "skip", "D": "degraded", "E": "error"}


def frame(outcomes: dict[str, str], *, env: str = "staging", start: datetime = T0, every: timedelta = timedelta(minutes=5),
          phase: str = "connectivity", durations: dict[str, list[float]] | None = None, sla_s: float | None = 2.0,
          prefix: str = "") -> pd.DataFrame:
    """A history frame from one string per check, one letter per run: P pass, F fail, S skip, D degraded, E error.

    ``frame({"health": "PPFP", "ping": "PFPF"})`` is four runs of two checks. A space leaves the
    check out of that run.
    """
    runs = max(len(s) for s in outcomes.values())
    rows = []
    for i in range(runs):
        started = start + i * every
        key = f"{prefix}{started:%Y%m%dT%H%M%SZ}-{env}{i:04d}"
        for check, letters in outcomes.items():
            if i >= len(letters) or letters[i] == " ":
                continue
            status = STATUS[letters[i]]
            duration = durations[check][i] if durations and check in durations else 0.1 + i / 1000
            rows.append({"run_key": key, "run_id": f"{env}{i:04d}", "env": env, "phase": phase, "check": check,
                         "status": status, "category": "ok" if status in ("pass", "degraded", "skip") else "http_unavailable",
                         "run_started_at": pd.Timestamp(started), "duration_s": duration, "sla_s": sla_s})
    return pd.DataFrame(rows)


def record(run_id: str, env: str, check: str, status: str = "pass", *, started: datetime = T0, phase: str = "connectivity",
           duration_s: float = 0.2, **extra) -> dict:
    return Record(run_id=run_id, env=env, phase=phase, check=check, status=status,
                  category="ok" if status == "pass" else "http_unavailable",
                  started_at=started.isoformat().replace("+00:00", "Z"), duration_s=duration_s,
                  message=f"{check} {status}", sla_s=2.0, **extra).to_dict()


def make_run(base: Path, env: str, started: datetime, checks: dict[str, str], *, run_id: str | None = None,
             base_url: str | None = None, **info) -> Path:
    """A run folder as the runner leaves it: run.json (plus ``info``, e.g. a demo's ``era`` and ``fault``),
    results.jsonl, and the params it used (params.yaml) when ``base_url`` is given."""
    run_id = run_id or f"{started:%H%M%S}{len(checks):02d}"
    run_dir = base / env / f"{started:%Y%m%dT%H%M%SZ}-{run_id}"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({
        "run_id": run_id, "env": env, "started_at": started.isoformat().replace("+00:00", "Z"),
        "finished_at": (started + timedelta(seconds=30)).isoformat().replace("+00:00", "Z"),
        "phases": ["connectivity"], "notebooks": {}, **info}))
    if base_url is not None:
        ws = base_url.replace("http", "ws", 1) + "/ws"
        (run_dir / "params.yaml").write_text(f"name: {env}\nbase_url: {base_url}\nws_url: {ws}\n")
    append_jsonl(run_dir / "results.jsonl",
                 [record(run_id, env, c, STATUS[s], started=started + timedelta(seconds=i)) for i, (c, s) in enumerate(checks.items())])
    return run_dir


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under root with its inode, mtime and content: to prove nothing was rewritten."""
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}
