"""Kit overhead: ``netra-nb run`` (a kernel per phase and one for the report, driven by nbclient)
against the same checks run directly in one Python process, in alternating pairs, and optionally a
baseline checkout's ``netra-nb run`` in each pair (``--baseline PATH``: before/after in one
invocation); the time from the last check to ``report.html``; the parallel runner (``--jobs 3``)
against one notebook after the other (``--jobs 1``). Plus the kit's own fixed costs inside the checks:
the per-check bookkeeping, the linger in ``websocket_connect``. Each figure carries the load average
before and after it.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
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


def loadavg() -> str:
    """The 1-, 5- and 15-minute load averages, as /proc/loadavg gives them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _children_cpu_s() -> float:
    """CPU seconds of every waited-for descendant so far (a run's kernels are reaped by the run)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _last_row_end(run_dir: Path) -> float | None:
    """Wall-clock time at which the run's last check ended (its start + its duration)."""
    ends = []
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        try:
            row = json.loads(line)
            ends.append(_iso(row["started_at"]) + float(row["duration_s"]))
        except (ValueError, KeyError, TypeError):
            continue
    return max(ends) if ends else None


def netra_nb_run(params_file: Path, out: Path, jobs: int, kit: Path = ROOT) -> dict[str, Any]:
    """``netra-nb run`` of the kit checked out at ``kit`` (this one, or a baseline such as ``main``), timed."""
    load_before = loadavg()
    cpu0 = _children_cpu_s()
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "netra_nb.cli", "run", "local", "--params", str(params_file),
                           "--out", str(out), "--jobs", str(jobs)], capture_output=True, text=True, cwd=kit,
                          env={**os.environ, "PYTHONPATH": str(kit)}, timeout=900)
    wall = time.time() - t0
    cpu = _children_cpu_s() - cpu0
    run_dir = Path(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None
    info = json.loads((run_dir / "run.json").read_text()) if run_dir and (run_dir / "run.json").is_file() else {}
    summary = json.loads((run_dir / "summary.json").read_text()) if run_dir and (run_dir / "summary.json").is_file() else {}
    notebooks = {p: n.get("duration_s") for p, n in info.get("notebooks", {}).items()}
    phases_wall = _iso(info["finished_at"]) - _iso(info["started_at"]) if info.get("finished_at") else None
    report = run_dir / "report.html" if run_dir else None
    last_row = _last_row_end(run_dir) if run_dir and (run_dir / "results.jsonl").is_file() else None
    first_row = min((_iso(json.loads(line)["started_at"]) for line in (run_dir / "results.jsonl").read_text().splitlines()
                     if line.strip()), default=None) if last_row else None
    return {"wall_s": round(wall, 2), "exit": proc.returncode, "cpu_s": round(cpu, 2), "notebooks_s": notebooks,
            "phases_wall_s": round(phases_wall, 2) if phases_wall else None,
            "after_phases_s": round(wall - phases_wall, 2) if phases_wall else None,  # start-up, finalize, report
            "to_first_check_s": round(first_row - t0, 2) if first_row else None,
            "to_last_check_s": round(last_row - t0, 2) if last_row else None,
            "last_check_to_report_s": round(report.stat().st_mtime - last_row, 2)
            if report and report.is_file() and last_row else None,
            "counts": summary.get("counts"), "report": bool(report and report.is_file()),
            "load": [load_before, loadavg()],
            "stderr": proc.stderr[-500:] if proc.returncode not in (0, 1) else ""}


def direct(params_file: Path, run_dir: Path, concurrent: bool) -> dict[str, Any]:
    """The same checks through ``Phase(...).run()`` in one fresh Python process (``bench/direct.py``), timed."""
    run_dir.mkdir(parents=True, exist_ok=True)
    load_before = loadavg()
    cpu0 = _children_cpu_s()
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "bench.direct", str(params_file), str(run_dir)] + (["--concurrent"] if concurrent else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    wall = time.perf_counter() - t0
    data = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {"error": proc.stderr[-500:]}
    return {"wall_s": round(wall, 2), "cpu_s": round(_children_cpu_s() - cpu0, 2), "load": [load_before, loadavg()],
            **data}


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


def _median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v is not None)
    return statistics.median(values) if values else None


def run(*, quick: bool = False, baseline: Path | None = None, say=print) -> dict[str, Any]:
    """Alternating pairs (three; one with ``quick``) of ``netra-nb run`` and the same checks direct, plus
    the ``baseline`` kit's ``netra-nb run`` in each pair when given; then ``--jobs 1``, the phases at
    once on one loop, and the per-check costs."""
    out_root = ROOT / "bench" / "out" / "kit"
    out_root.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"baseline": str(baseline) if baseline else None}
    pairs = 1 if quick else 3
    with Platform() as platform:
        data = platform.params()
        params_file = out_root / "local.yaml"
        params_file.write_text(yaml.safe_dump(data, sort_keys=False))
        params = parse_params(data, source=str(params_file))
        result["pythondontwritebytecode"] = os.environ.get("PYTHONDONTWRITEBYTECODE")
        runs, directs, base_runs = [], [], []
        for i in range(pairs):
            say(f"  pair {i + 1}/{pairs}: netra-nb run local --jobs 3 …")
            runs.append(netra_nb_run(params_file, out_root / "outputs", 3))
            say(f"  pair {i + 1}/{pairs}: the same checks directly in one process …")
            directs.append(direct(params_file, out_root / "direct", concurrent=False))
            if baseline:
                say(f"  pair {i + 1}/{pairs}: the baseline's netra-nb run ({baseline}) …")
                base_runs.append(netra_nb_run(params_file, out_root / "outputs-baseline", 3, kit=baseline))
        result["pairs"] = [{"run": r, "direct": d, "baseline": base_runs[i] if base_runs else None}
                           for i, (r, d) in enumerate(zip(runs, directs))]
        result["run_jobs3"] = _summarize(runs, directs)
        if base_runs:
            result["baseline_jobs3"] = _summarize(base_runs, directs)
        if not quick:
            say("  netra-nb run local --jobs 1 …")
            result["run_jobs1"] = netra_nb_run(params_file, out_root / "outputs", 1)
        result["direct"] = {"wall_s": _median([d["wall_s"] for d in directs]), "import_s": _median([d.get("import_s") for d in directs]),
                            "phases_s": directs[len(directs) // 2].get("phases_s"), "cpu_s": _median([d["cpu_s"] for d in directs])}
        result["direct_concurrent"] = direct(params_file, out_root / "direct-concurrent", concurrent=True)
        say("  dead targets (a closed port, a host that does not resolve) …")
        result["dead"] = dead_targets(platform.params(), out_root, baseline)
        result["bookkeeping"] = asyncio.run(_bookkeeping(params, 50 if quick else 200))
        result["events_write"] = asyncio.run(_events_write(params, 500 if quick else 1000))
    result["lines"] = lines(result)
    for line in result["lines"]:
        say(line)
    return result


def dead_targets(data: dict[str, Any], out_root: Path, baseline: Path | None) -> dict[str, Any]:
    """``netra-nb run`` against a port where nothing listens and a host that does not resolve (the timeouts
    of the platform's params): how long until the classified rows, and until the report."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    out: dict[str, Any] = {}
    # A host that is not this machine is reached over TLS: the kit refuses test credentials over plain http there.
    for name, host, tls in (("closed_port", f"127.0.0.1:{port}", ""), ("unresolvable_host", "netra-nb-dead-target.invalid", "s")):
        params_file = out_root / f"{name}.yaml"
        params_file.write_text(yaml.safe_dump({**data, "name": "local", "base_url": f"http{tls}://{host}",
                                               "ws_url": f"ws{tls}://{host}/ws", "auth_url": f"http{tls}://{host}"},
                                              sort_keys=False))
        out[name] = {"run": netra_nb_run(params_file, out_root / "outputs-dead", 3)}
        if baseline:
            out[name]["baseline"] = netra_nb_run(params_file, out_root / "outputs-dead-baseline", 3, kit=baseline)
    return out


def _summarize(runs: list[dict[str, Any]], directs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the pairs; the ratio is the median of each pair's run / direct."""
    ratios = [r["wall_s"] / d["wall_s"] for r, d in zip(runs, directs) if d.get("wall_s")]
    mid = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
    return {"wall_s": _median([r["wall_s"] for r in runs]), "ratio": round(_median(ratios), 2) if ratios else None,
            "ratios": [round(x, 2) for x in ratios],
            "cpu_s": _median([r["cpu_s"] for r in runs]),
            "to_first_check_s": _median([r["to_first_check_s"] for r in runs]),
            "last_check_to_report_s": _median([r["last_check_to_report_s"] for r in runs]),
            "phases_wall_s": mid["phases_wall_s"], "after_phases_s": mid["after_phases_s"],
            "notebooks_s": mid["notebooks_s"], "report": all(r["report"] for r in runs),
            "exit": sorted({r["exit"] for r in runs}), "loads": [r["load"] for r in runs]}


def lines(result: dict[str, Any]) -> list[str]:
    """The section as text, for the terminal."""
    r3, d, dc = result["run_jobs3"], result["direct"], result["direct_concurrent"]
    out = [f"  {'netra-nb run --jobs 3':<34} {r3['wall_s']:7.2f} s  (to the first check {r3['to_first_check_s']} s; "
           f"last check → report.html {r3['last_check_to_report_s']} s; CPU {r3['cpu_s']} s; exit {r3['exit']})"]
    if result.get("baseline_jobs3"):
        b = result["baseline_jobs3"]
        out.append(f"  {'baseline netra-nb run --jobs 3':<34} {b['wall_s']:7.2f} s  (to the first check "
                   f"{b['to_first_check_s']} s; last check → report.html {b['last_check_to_report_s']} s; "
                   f"CPU {b['cpu_s']} s; exit {b['exit']})")
    if "run_jobs1" in result:
        r1 = result["run_jobs1"]
        out.append(f"  {'netra-nb run --jobs 1':<34} {r1['wall_s']:7.2f} s  (phases {r1['phases_wall_s']} s, "
                   f"start-up + finalize + report {r1['after_phases_s']} s)")
    out.append(f"  {'direct, one process, phases in turn':<34} {d['wall_s']:7.2f} s  (import {d.get('import_s')} s, "
               f"phases {d.get('phases_s')}; CPU {d.get('cpu_s')} s)")
    out.append(f"  {'direct, one process, phases at once':<34} {dc['wall_s']:7.2f} s  (phases {dc.get('phases_s')})")
    out.append(f"  ratios (median of the pairs' run / direct): run --jobs 3 = {r3['ratio']}× {r3['ratios']}"
               + (f"; baseline = {result['baseline_jobs3']['ratio']}× {result['baseline_jobs3']['ratios']}"
                  if result.get("baseline_jobs3") else "")
               + (f"; run --jobs 1 / run --jobs 3 = {result['run_jobs1']['wall_s'] / r3['wall_s']:.2f}×"
                  if "run_jobs1" in result else "")
               + f"; direct in turn / at once = {d['wall_s'] / dc['wall_s']:.2f}×")
    for name, d in result.get("dead", {}).items():
        for who, r in d.items():
            out.append(f"  {name + ' (' + who + ')':<34} {r['wall_s']:7.2f} s  (every row by {r['to_last_check_s']} s; "
                       f"report.html {r['last_check_to_report_s']} s later; exit {r['exit']})")
    b, e = result["bookkeeping"], result["events_write"]
    out.append(f"  per check: Context.run {b['check_ms']} ms vs the bare HTTP call {b['http_call_ms']} ms "
               f"(bookkeeping {b['overhead_ms']} ms); websocket_connect {b['websocket_connect_s']} s, "
               f"websocket_ping {b['websocket_ping_s']} s on loopback")
    out.append(f"  events.jsonl for {e['sessions']} sessions: {e['rows']} rows, built in {e['build_ms']} ms, "
               f"built + written in {e['build_and_write_ms']} ms ({e['mb']} MB)")
    return out
