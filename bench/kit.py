"""Kit overhead: ``netra-nb run`` (papermill, one kernel per phase, the report) against the same checks
run directly in one Python process, and the parallel runner (``--jobs 3``) against one notebook after
the other (``--jobs 1``). Plus the kit's own fixed costs inside the checks: the per-check bookkeeping,
the October-handshake grace after every welcome and the linger in ``websocket_connect``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from netra_nb import orchestration as orch
from netra_nb.checks import Context
from netra_nb.http import http_call
from netra_nb.params import parse_params

from .refplatform import Platform

ROOT = Path(__file__).resolve().parent.parent


def _iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _netra_nb_run(params_file: Path, out: Path, jobs: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "netra_nb.cli", "run", "local", "--params", str(params_file),
                           "--out", str(out), "--jobs", str(jobs)], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)
    wall = time.perf_counter() - t0
    run_dir = Path(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None
    info = json.loads((run_dir / "run.json").read_text()) if run_dir and (run_dir / "run.json").is_file() else {}
    summary = json.loads((run_dir / "summary.json").read_text()) if run_dir and (run_dir / "summary.json").is_file() else {}
    notebooks = {p: n.get("duration_s") for p, n in info.get("notebooks", {}).items()}
    phases_wall = _iso(info["finished_at"]) - _iso(info["started_at"]) if info.get("finished_at") else None
    return {"wall_s": round(wall, 2), "exit": proc.returncode, "notebooks_s": notebooks,
            "phases_wall_s": round(phases_wall, 2) if phases_wall else None,
            "after_phases_s": round(wall - phases_wall, 2) if phases_wall else None,  # start-up, finalize, report
            "counts": summary.get("counts"), "report": bool(run_dir and (run_dir / "report.html").is_file()),
            "stderr": proc.stderr[-500:] if proc.returncode not in (0, 1) else ""}


def _direct(params_file: Path, run_dir: Path, concurrent: bool) -> dict[str, Any]:
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "bench.direct", str(params_file), str(run_dir)] + (["--concurrent"] if concurrent else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    wall = time.perf_counter() - t0
    data = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {"error": proc.stderr[-500:]}
    return {"wall_s": round(wall, 2), **data}


async def _bookkeeping(params, n: int) -> dict[str, Any]:
    """Per-check cost of Context.run (deadline, record, redaction, results.jsonl) over a bare HTTP call
    (medians of interleaved calls)."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(params, phase="connectivity", run_dir=tmp)
        try:
            client = await ctx.http()
            await http_call(client, "GET", params.base_url + "/health", timeout=5)
            bares, checks = [], []
            for _ in range(n):  # interleaved, so that drift on a shared machine hits both alike
                t = time.perf_counter()
                await http_call(client, "GET", params.base_url + "/health", timeout=5)
                bares.append(time.perf_counter() - t)
                t = time.perf_counter()
                await ctx.run("health")
                checks.append(time.perf_counter() - t)
            bare, wrapped = orch.percentile(bares, 50), orch.percentile(checks, 50)
            ws = [await ctx.run(name) for name in ("websocket_connect", "websocket_ping") for _ in range(3)]
        finally:
            await ctx.aclose()
    by = {}
    for r in ws:
        by.setdefault(r.check, []).append(r.duration_s)
    return {"http_call_ms": round(bare * 1000, 3), "check_ms": round(wrapped * 1000, 3),
            "overhead_ms": round((wrapped - bare) * 1000, 3),
            "websocket_connect_s": round(orch.percentile(by["websocket_connect"], 50), 3),
            "websocket_ping_s": round(orch.percentile(by["websocket_ping"], 50), 3)}


async def _events_write(params, n: int) -> dict[str, Any]:
    """The cost of recording a fleet's frames: Frame rows built, one append to events.jsonl."""
    from netra_nb.checks import CHECKS, Outcome
    from netra_nb.judge import Verdict
    from netra_nb.records import append_jsonl
    ctx = Context(params, phase=orch.PHASE)
    try:
        fleet = await orch.run_fleet(ctx, n)
    finally:
        await ctx.aclose()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        frames = ctx._frames(CHECKS["concurrent_agent_runs"], Outcome(Verdict("pass", "ok", "", ""), ws=fleet.observations))
        built = time.perf_counter() - t
        append_jsonl(Path(tmp) / "events.jsonl", (f.to_dict() for f in frames))
        total = time.perf_counter() - t
        size = (Path(tmp) / "events.jsonl").stat().st_size
    return {"sessions": n, "rows": len(frames), "build_ms": round(built * 1000, 1),
            "build_and_write_ms": round(total * 1000, 1), "mb": round(size / 1e6, 2),
            "fleet_wall_s": round(fleet.wall_s, 2)}


def run(*, quick: bool = False, say=print) -> dict[str, Any]:
    out_root = ROOT / "bench" / "out" / "kit"
    out_root.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    with Platform() as platform:
        data = platform.params()
        params_file = out_root / "local.yaml"
        params_file.write_text(yaml.safe_dump(data, sort_keys=False))
        params = parse_params(data, source=str(params_file))
        env_note = os.environ.get("PYTHONDONTWRITEBYTECODE")
        result["pythondontwritebytecode"] = env_note

        say("  netra-nb run local --jobs 3 …")
        result["run_jobs3"] = _netra_nb_run(params_file, out_root / "outputs", 3)
        if not quick:
            say("  netra-nb run local --jobs 1 …")
            result["run_jobs1"] = _netra_nb_run(params_file, out_root / "outputs", 1)
        say("  the same checks directly in one process …")
        result["direct"] = _direct(params_file, out_root / "direct", concurrent=False)
        result["direct_concurrent"] = _direct(params_file, out_root / "direct-concurrent", concurrent=True)
        result["bookkeeping"] = asyncio.run(_bookkeeping(params, 50 if quick else 200))
        result["events_write"] = asyncio.run(_events_write(params, 500 if quick else 1000))
    r3, d, dc = result["run_jobs3"], result["direct"], result["direct_concurrent"]
    lines = [f"  {'netra-nb run --jobs 3':<34} {r3['wall_s']:7.2f} s  (phases {r3['phases_wall_s']} s, "
             f"start-up + finalize + report {r3['after_phases_s']} s; exit {r3['exit']})"]
    if "run_jobs1" in result:
        r1 = result["run_jobs1"]
        lines.append(f"  {'netra-nb run --jobs 1':<34} {r1['wall_s']:7.2f} s  (phases {r1['phases_wall_s']} s, "
                     f"start-up + finalize + report {r1['after_phases_s']} s)")
    lines.append(f"  {'direct, one process, phases in turn':<34} {d['wall_s']:7.2f} s  (import {d.get('import_s')} s, "
                 f"phases {d.get('phases_s')})")
    lines.append(f"  {'direct, one process, phases at once':<34} {dc['wall_s']:7.2f} s  (phases {dc.get('phases_s')})")
    lines.append(f"  ratios: run --jobs 3 / direct = {r3['wall_s'] / d['wall_s']:.2f}×; "
                 + (f"run --jobs 1 / run --jobs 3 = {result['run_jobs1']['wall_s'] / r3['wall_s']:.2f}×; "
                    if "run_jobs1" in result else "")
                 + f"direct in turn / at once = {d['wall_s'] / dc['wall_s']:.2f}×")
    b, e = result["bookkeeping"], result["events_write"]
    lines.append(f"  per check: Context.run {b['check_ms']} ms vs the bare HTTP call {b['http_call_ms']} ms "
                 f"(bookkeeping {b['overhead_ms']} ms); websocket_connect {b['websocket_connect_s']} s, "
                 f"websocket_ping {b['websocket_ping_s']} s on loopback")
    lines.append(f"  events.jsonl for {e['sessions']} sessions: {e['rows']} rows, built in {e['build_ms']} ms, "
                 f"built + written in {e['build_and_write_ms']} ms ({e['mb']} MB)")
    for line in lines:
        say(line)
    result["lines"] = lines
    return result
