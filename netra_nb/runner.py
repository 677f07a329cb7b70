"""``netra-nb run``: a run folder, the phase notebooks under papermill (in parallel), then the artifacts.

Each phase notebook executes in its own process (``python -m netra_nb._execute``), so kernels
start in parallel, papermill's process-wide state never crosses phases, and the run's deadline
can stop a phase without losing the rows it already wrote. :func:`finalize_run` turns a run
folder, even a partial one, into the Parquet files, ``summary.json``, ``junit.xml``,
``summary.md`` and the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .checks import PHASE_CHECKS, short_id
from .diagnosis import counts, golden_path
from .params import ConfigError, Params, check_name
from .records import FRAME_FIELDS, RECORD_FIELDS, Record, parse_time, read_frames, read_records, utc_now
from .redact import clip, redact, scrub_tree

__all__ = ["PHASE_NOTEBOOKS", "REPORT_NOTEBOOK", "RunResult", "new_run_dir", "run_phases", "run_notebook", "finalize_run",
           "exit_code", "notebooks_dir", "write_run_json", "read_run_json"]

PHASE_NOTEBOOKS: dict[str, str] = {
    "connectivity": "00_connectivity.ipynb",
    "agent_pipeline": "01_agent_pipeline.ipynb",
    "orchestration": "02_orchestration.ipynb",
}
REPORT_NOTEBOOK = "90_run_report.ipynb"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_KIT = 0, 1, 2, 3


def notebooks_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "notebooks"


def new_run_dir(out: Path, env: str) -> tuple[Path, str]:
    """A new run folder ``out/<env>/<UTC time>-<short id>``, always inside ``out`` (ConfigError otherwise)."""
    check_name(env, "environment")
    run_id = short_id()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    root = out.resolve()
    run_dir = (root / env / f"{stamp}-{run_id}").resolve()
    if not run_dir.is_relative_to(root):  # checked after resolving: a symbolic link may lead out
        raise ConfigError(f"the run folder would be {run_dir}, outside the outputs root {root} "
                          f"({root / env} leads elsewhere); a run folder always stays inside --out")
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir, run_id


def write_run_json(run_dir: Path, data: dict[str, Any]) -> None:
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, run_dir / "run.json")


def read_run_json(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}


@dataclass
class RunResult:
    run_dir: Path
    exit_code: int
    summary: dict[str, Any]


def _execute_cmd(nb_in: Path, nb_out: Path, parameters: dict[str, Any], cell_timeout: float) -> list[str]:
    return [sys.executable, "-m", "netra_nb._execute", str(nb_in), str(nb_out), json.dumps(parameters),
            str(int(cell_timeout))]


def run_notebook(nb_in: Path, nb_out: Path, parameters: dict[str, Any], deadline: float,
                 log: Path) -> dict[str, Any]:
    """Execute one notebook in a child process before ``deadline`` (time.monotonic)."""
    started = time.monotonic()
    with log.open("ab") as fh:
        proc = subprocess.Popen(_execute_cmd(nb_in, nb_out, parameters, max(10, deadline - started)),
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            return {"path": nb_out.name, "status": "failed", "duration_s": round(time.monotonic() - started, 3),
                    "error": {"cell": None, "ename": "RunDeadline",
                              "evalue": "the run's deadline (timeouts.run) passed; the phase was stopped"}}
    info: dict[str, Any] = {"path": nb_out.name, "status": "ok" if code == 0 else "failed",
                            "duration_s": round(time.monotonic() - started, 3), "error": None}
    if code != 0:
        info["error"] = _notebook_error(nb_out) or {"cell": None, "ename": "ExecutionFailed",
                                                    "evalue": f"papermill exited {code}; see {log.name}"}
    return info


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants.

    Kernels run in sessions of their own (jupyter_client starts them so), so a process-group
    kill would leave them running and writing rows after the run was finalized.
    """
    import signal
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    todo, tree = [pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_tree(proc: subprocess.Popen) -> None:
    kill_tree(proc.pid)
    proc.wait()


def _notebook_error(path: Path) -> dict[str, Any] | None:
    """The first cell that raised in an executed notebook (papermill leaves the error in its output)."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    index = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        index += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return {"cell": index, "ename": out.get("ename"), "evalue": clip(str(out.get("evalue", "")), 500)}
    return None


def run_phases(params: Params, params_file: Path, out: Path, *, phases: list[str] | None = None, jobs: int = 3,
               env_name: str | None = None, extra_run_info: dict[str, Any] | None = None,
               report: bool = True) -> RunResult:
    """Make the run folder, execute the phase notebooks, finalize; returns the run folder and exit code."""
    phases = phases or list(PHASE_NOTEBOOKS)
    env_name = env_name or params.name
    run_dir, run_id = new_run_dir(out, env_name)
    info: dict[str, Any] = {
        "run_id": run_id, "env": env_name, "started_at": utc_now(), "params_source": str(params_file),
        "phases": phases, "notebooks": {p: {"path": PHASE_NOTEBOOKS[p], "status": "not_run", "error": None} for p in phases},
        "outputs_root": str(out.resolve()), **(extra_run_info or {}),
    }
    # The params as used, beside the results (they hold no secrets: only variable names).
    import shutil
    shutil.copyfile(params_file, run_dir / "params.yaml")
    params_file = run_dir / "params.yaml"
    write_run_json(run_dir, info)
    print(f"run {run_id}: {', '.join(phases)} against {env_name} ({params.base_url}) → {run_dir}", flush=True)
    deadline = time.monotonic() + params.timeout_run
    log = run_dir / "papermill.log"

    def one(phase: str) -> tuple[str, dict[str, Any]]:
        nb = PHASE_NOTEBOOKS[phase]
        parameters = {"env": env_name, "run_dir": str(run_dir), "params_file": str(params_file)}
        result = run_notebook(notebooks_dir() / nb, run_dir / nb, parameters, deadline, log)
        print(f"  phase {phase}: notebook {result['status']} in {result['duration_s']:.1f}s", flush=True)
        return phase, result

    with ThreadPoolExecutor(max(1, min(jobs, len(phases)))) as pool:
        for phase, result in pool.map(one, phases):
            info["notebooks"][phase] = result
    info["finished_at"] = utc_now()
    write_run_json(run_dir, info)
    summary = finalize_run(run_dir, report=report)
    return RunResult(run_dir, exit_code(run_dir, summary), summary)


def exit_code(run_dir: Path, summary: dict[str, Any]) -> int:
    """0 every check passed; 1 the platform failed a check; 3 the kit itself failed.

    A run that did not finish (a phase notebook crashed, or the run was killed) never exits 0:
    "every check passed" cannot be said of checks that never ran.
    """
    by_status = summary.get("counts", {})
    if by_status.get("fail"):
        return EXIT_FAILED
    notebooks = read_run_json(run_dir).get("notebooks", {}).values()
    if any((n.get("error") or {}).get("ename") == "RunDeadline" for n in notebooks):
        return EXIT_FAILED  # the platform did not let the run finish in time
    crashed = any(n.get("status") == "failed" for n in notebooks)
    if crashed or not sum(by_status.values()) or summary.get("unfinished_phases"):
        return EXIT_KIT
    if by_status.get("error"):
        kit_only = all(c in ("client_error", "unknown") for c, n in summary.get("categories", {}).items()
                       if c != "ok" and n)
        return EXIT_KIT if kit_only else EXIT_FAILED
    return EXIT_OK


def _to_parquet(rows: list[dict[str, Any]], columns: tuple[str, ...], path: Path) -> None:
    import pandas as pd
    df = pd.DataFrame(rows, columns=list(columns))
    for col in ("events_seen", "events_missing", "findings"):
        if col in df:
            df[col] = df[col].map(lambda v: list(v) if isinstance(v, (list, tuple)) else [])
    for col in ("http_status", "ws_close_code"):
        if col in df:
            df[col] = pd.array(df[col], dtype="Int64")
    for col in ("bytes_sent", "bytes_received", "seq", "size", "session"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype("int64")
    df.to_parquet(path, index=False)


def finalize_run(run_dir: str | Path, *, report: bool = True) -> dict[str, Any]:
    """Write results.parquet, events.parquet, summary.json, junit.xml, summary.md and the report, then
    pass :func:`netra_nb.redact.scrub_tree` over the whole folder.

    Works on a partial folder (a run killed half-way): it uses the rows that were written and
    says in ``summary.json`` (``unfinished_phases``) which phases did not finish.
    """
    run_dir = Path(run_dir)
    info = read_run_json(run_dir)
    records = read_records(run_dir)
    frames = read_frames(run_dir)
    _to_parquet([r.to_dict() for r in records], RECORD_FIELDS, run_dir / "results.parquet")
    _to_parquet(frames, FRAME_FIELDS, run_dir / "events.parquet")
    by_status, by_category = counts(records)
    gp = golden_path(records)
    started = info.get("started_at") or (min((r.started_at for r in records), default=utc_now()))
    finished = info.get("finished_at")
    duration = _seconds_between(started, finished) if finished else _records_span(records)
    phases = info.get("phases") or sorted({r.phase for r in records})
    unfinished = [p for p in phases if not _phase_finished(p, info, records)]
    if info.get("env") == "triage" or phases == ["triage"]:
        unfinished = [p for p in unfinished if not any(r.phase == p for r in records)]
    summary = {
        "run_id": info.get("run_id") or (records[0].run_id if records else run_dir.name),
        "env": info.get("env") or (records[0].env if records else "unknown"),
        "started_at": started,
        "duration_s": round(duration, 3),
        "counts": by_status,
        "categories": {c: n for c, n in by_category.items()},
        "golden_path": gp.to_summary(),
        "verdict": gp.sentence,
        "unfinished_phases": unfinished,
        "complete": not unfinished and bool(finished),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    _artifacts(run_dir, records, frames, summary, report=report)
    # The last net, after every file is written: a secret that reached any file of the folder (a
    # notebook's output, a log) is removed from it.
    scrub_tree(run_dir)
    return summary


def _phase_finished(phase: str, info: dict[str, Any], records: list[Record]) -> bool:
    """A phase finished when its notebook ran to the end, or (a killed run) all its checks have rows."""
    done = {r.check for r in records if r.phase == phase}
    if info.get("notebooks", {}).get(phase, {}).get("status") == "ok":
        return bool(done)
    expected = set(PHASE_CHECKS.get(phase, []))
    return bool(expected) and expected <= done and info.get("notebooks", {}).get(phase, {}).get("status") != "failed"


def _artifacts(run_dir: Path, records: list[Record], frames: list[dict[str, Any]], summary: dict[str, Any], *,
               report: bool) -> None:
    problems = []
    try:
        from .junit import write_junit
        write_junit(run_dir, records)
    except Exception as exc:  # noqa: BLE001 - one artifact failing must not lose the others
        problems.append(f"junit.xml: {type(exc).__name__}: {exc}")
    try:
        from .report import write_summary_md
        write_summary_md(run_dir, records, summary, frames)
    except Exception as exc:  # noqa: BLE001
        problems.append(f"summary.md: {type(exc).__name__}: {exc}")
    if report:
        try:
            from .report import build_report
            if build_report(run_dir) is None:
                problems.append("report: the report notebook raised; see report.ipynb")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"report: {type(exc).__name__}: {exc}")
    try:
        from .history import append_run
        info = read_run_json(run_dir)
        if summary.get("env") != "triage":  # the history compares environments; a pytest triage is not one
            append_run(run_dir, Path(info.get("outputs_root") or run_dir.parent.parent))
    except Exception as exc:  # noqa: BLE001
        problems.append(f"history: {type(exc).__name__}: {exc}")
    if problems:
        (run_dir / "kit-errors.log").write_text("\n".join(redact(p) for p in problems) + "\n")
        for p in problems:
            print(f"  kit: {redact(p)}", file=sys.stderr, flush=True)


def _seconds_between(a: str, b: str) -> float:
    start, end = parse_time(a), parse_time(b)
    return max(0.0, (end - start).total_seconds()) if start and end else 0.0


def _records_span(records: list[Record]) -> float:
    spans = [(t.timestamp(), float(r.duration_s or 0.0)) for r in records if (t := parse_time(r.started_at))]
    if not spans:
        return 0.0
    return max(0.0, max(t + d for t, d in spans) - min(t for t, _ in spans))
