"""``netra-nb run``: a run folder, the phase notebooks in kernels of their own (in parallel), then the artifacts.

One process drives everything with nbclient (:mod:`netra_nb.engine`): at t=0 it starts a kernel per
phase (forked from a process that imported what they need once, :mod:`netra_nb.zygote`, where it can;
the command starts that process before it even reads the params); each phase kernel runs its notebook,
and once they have their imports two more kernels are forked for the tail: the report's and one for
the artifacts (:mod:`netra_nb.artifacts`). The phases' rows are printed as each check appends its line
to ``results.jsonl``; the report kernel draws the charts whose data is final while the phases still
run; when the phases end it executes the report and exports the HTML while the artifacts kernel writes
the Parquet files, JUnit, ``summary.md`` and the history. This process imports none of pandas,
matplotlib or nbconvert. The kernels are separate processes: the run's deadline (``timeouts.run``) and Ctrl-C kill
them without losing a row. The first Ctrl-C stops the phases, marks them ``interrupted`` in
``run.json`` and still writes the report from the rows they wrote; a second one stops at once.
:func:`finalize_run` turns a run folder, even a partial one, into the same artifacts.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .checks import registry, short_id
from .diagnosis import counts, golden_path
from .engine import (Kernel, KernelStartError, execute, kill_kernels, kill_tree, kill_trees, notebooks_dir,
                     read_notebook, run_notebook)
from .params import ConfigError, Params, check_name
from .records import Record, parse_time, read_frames, read_records, utc_now
from .redact import clip, redact, scrub_tree
from .registry import NOTEBOOKS, PHASE_NOTEBOOKS
from .runfolder import folder_name, read_run_json
from .zygote import PHASE_MODULES, REPORT_MODULES, Zygote

__all__ = ["PHASE_NOTEBOOKS", "REPORT_NOTEBOOK", "RunResult", "Progress", "new_run_dir", "run_phases", "run_notebook",
           "finalize_run", "exit_code", "notebooks_dir", "write_run_json", "read_run_json", "kill_tree",
           "EXIT_INTERRUPTED"]

REPORT_NOTEBOOK = NOTEBOOKS["report"]
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_KIT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
KERNEL_LOG = "kernels.log"
#: Run in each kernel as soon as it answers, while the others start: what its notebook imports first.
PHASE_WARMUP = "import netra_nb, pandas, matplotlib.pyplot"
REPORT_WARMUP = "from IPython.display import HTML, Markdown, display\nfrom netra_nb import report"
ARTIFACTS_WARMUP = "from netra_nb import artifacts"
#: Seconds the report notebook may take (a fleet of thousands of sessions needs well under a minute).
REPORT_TIMEOUT_S = 300.0
#: How often the rows the kernels append to ``results.jsonl`` are looked for (and printed).
ROW_POLL_S = 0.1


def _phase_checks(phase: str) -> set[str]:
    """The checks a phase runs (every phase's, the orchestration module's included)."""
    return {name for name, spec in registry().items() if spec.phase == phase}


def new_run_dir(out: Path, env: str) -> tuple[Path, str]:
    """A new run folder ``out/<env>/<UTC time>-<short id>``, always inside ``out`` (ConfigError otherwise)."""
    check_name(env, "environment")
    run_id = short_id()
    root = out.resolve()
    run_dir = (root / env / folder_name(datetime.now(timezone.utc), run_id)).resolve()
    if not run_dir.is_relative_to(root):  # checked after resolving: a symbolic link may lead out
        raise ConfigError(f"the run folder would be {run_dir}, outside the outputs root {root} "
                          f"({root / env} leads elsewhere); a run folder always stays inside --out")
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir, run_id


def write_run_json(run_dir: Path, data: dict[str, Any]) -> None:
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, run_dir / "run.json")


@dataclass
class RunResult:
    run_dir: Path
    exit_code: int
    summary: dict[str, Any]
    interrupted: bool = False


# -- progress ------------------------------------------------------------------------------------

@dataclass
class Progress:
    """What the CLI prints while a run goes: each check as it ends, and what happens between.
    ``quiet`` prints nothing here (the CLI's final lines remain)."""

    quiet: bool = False

    def say(self, text: str) -> None:
        if not self.quiet:
            print(redact(text), flush=True)

    def row(self, row: dict[str, Any]) -> None:
        """One line per check, as pytest and k6 print them: status, phase, check, duration, and for
        anything but a pass or a skip, the category and the message."""
        status = str(row.get("status", "?"))
        tail = "" if status in ("pass", "skip") else f"  {row.get('category') or ''}: {row.get('message') or ''}"
        try:
            duration = f"{float(row.get('duration_s') or 0.0):7.2f} s"
        except (TypeError, ValueError):
            duration = "      ? s"
        self.say(f"  {status.upper():<8} {row.get('phase', '?'):<15} {row.get('check', '?'):<24} {duration}{tail}"[:200])


class RowTail:
    """The whole lines appended to a JSON-lines file since the last look (a torn last line waits)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""

    def new_rows(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return []
        self.offset += len(data)
        *lines, self.rest = (self.rest + data).split(b"\n")
        rows = []
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                rows.append(obj)
        return rows


# -- the run -------------------------------------------------------------------------------------

@dataclass
class _Stop:
    """Why the phases were stopped early (None: they were not), and when."""

    reason: str | None = None  # "deadline" | "interrupted"
    at: float | None = None  # time.monotonic() of the stop
    kernels_killed_s: float = 0.0  # from the stop until the phases' kernels were dead
    signals: int = 0


def _stopped_result(nb: str, reason: str, started: float, during: bool) -> dict[str, Any]:
    if reason == "deadline":
        error = {"cell": None, "ename": "RunDeadline",
                 "evalue": "the run's deadline (timeouts.run) passed; the phase was stopped"}
        return {"path": nb, "status": "failed", "duration_s": round(time.monotonic() - started, 3), "error": error}
    evalue = "stopped by Ctrl-C (SIGINT)" + ("" if during else " before it started")
    return {"path": nb, "status": "interrupted", "duration_s": round(time.monotonic() - started, 3),
            "error": {"cell": None, "ename": "Interrupted", "evalue": evalue}}


def _set_cluster(params_file: Path, cluster: str) -> None:
    import yaml
    data = yaml.safe_load(params_file.read_text()) or {}
    orch = data.get("orchestration") if isinstance(data.get("orchestration"), dict) else {}
    data["orchestration"] = {**orch, "cluster": cluster}
    params_file.write_text(f"# the params file as used, with `--cluster {cluster}` (orchestration.cluster)\n"
                           + yaml.safe_dump(data, sort_keys=False))


def run_phases(params: Params, params_file: Path, out: Path, *, phases: list[str] | None = None, jobs: int = 3,
               env_name: str | None = None, extra_run_info: dict[str, Any] | None = None,
               report: bool = True, progress: Progress | None = None, cluster: str | None = None,
               zygote: Zygote | None = None) -> RunResult:
    """Make the run folder, execute the phase notebooks, finalize; returns the run folder and exit code.

    ``zygote``: one the caller started (:func:`netra_nb.zygote.start_for_run`) before it read the params, which the run
    takes over (and closes); without it the run starts its own.

    Exit code 130 when Ctrl-C stopped the run (the report is still written from the rows, unless a
    second Ctrl-C came: then this process exits at once, with 130)."""
    phases = phases or list(PHASE_NOTEBOOKS)
    env_name = env_name or params.name
    progress = progress or Progress()
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
    if cluster:  # --cluster: the params as used say where the fleet ran (the notebook reads them from here)
        _set_cluster(params_file, cluster)
        info["cluster"] = cluster
    write_run_json(run_dir, info)
    progress.say(f"run {run_id}: {', '.join(phases)} against {env_name} ({params.base_url}) → {run_dir}")
    stop = _Stop()
    summary = asyncio.run(_run(run_dir, info, params, params_file, phases, jobs, report, progress, stop, zygote))
    interrupted = stop.reason == "interrupted"
    code = EXIT_INTERRUPTED if interrupted else exit_code(run_dir, summary)
    return RunResult(run_dir, code, summary, interrupted)


async def _run(run_dir: Path, info: dict[str, Any], params: Params, params_file: Path, phases: list[str], jobs: int,
               report: bool, progress: Progress, stop: _Stop, zygote: Zygote | None) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    log = run_dir / KERNEL_LOG
    started = time.monotonic()
    deadline = started + params.timeout_run
    progress.say(f"starting {len(phases)} kernels ({', '.join(phases)}), then the "
                 f"{'report and artifacts kernels' if report else 'artifacts kernel'}")
    # One process imports what every kernel needs and forks them (netra_nb.zygote; None: they are spawned).
    if zygote is not None:
        zygote.log_to(log)
    else:
        zygote = Zygote.start(cwd=run_dir, log=log, modules=PHASE_MODULES)
    kernel_tasks = {p: asyncio.ensure_future(Kernel.start(p, cwd=run_dir, log=log, zygote=zygote)) for p in phases}
    # The notebooks are read (nbformat's import) while the kernels start.
    notebooks = loop.run_in_executor(None, lambda: {p: read_notebook(notebooks_dir() / PHASE_NOTEBOOKS[p], {
        "env": info["env"], "run_dir": str(run_dir), "params_file": str(params_file)}) for p in phases})
    warmed = {p: asyncio.Event() for p in phases}
    phases_warm = asyncio.ensure_future(asyncio.gather(*(e.wait() for e in warmed.values())))

    # The kernels of the tail (the report's, and the one that writes Parquet, JUnit, summary.md and the
    # history) are forked right after the phase kernels (the zygote imports what they need meanwhile), and do
    # their own imports once the phase kernels have theirs: the phases are on the critical path, the tail is
    # not, but a platform that refuses everything at once ends its checks before a tail kernel started later
    # would be warm (measured: bench/RESULTS.md). This process imports none of what they use.
    tail_starts = {label: asyncio.ensure_future(Kernel.start(label, cwd=run_dir, log=log, zygote=zygote,
                                                             modules=REPORT_MODULES))
                   for label in (("report", "artifacts") if report else ("artifacts",))}

    async def after_phase_warmups(label: str, warmup: str) -> Kernel:
        await phases_warm
        kernel = await tail_starts[label]
        await _warm_up(kernel, warmup)
        return kernel

    report_task = asyncio.ensure_future(after_phase_warmups("report", REPORT_WARMUP)) if report else None
    artifacts_task = asyncio.ensure_future(after_phase_warmups("artifacts", ARTIFACTS_WARMUP))
    tail_tasks = [t for t in (report_task, artifacts_task) if t is not None]
    kernels: dict[str, Kernel] = {}
    began: set[str] = set()  # phases whose notebook started
    ended_before_stop: set[str] = set()
    slots = asyncio.Semaphore(max(1, jobs))
    phase_tasks: dict[str, asyncio.Future] = {}

    async def one(phase: str) -> dict[str, Any]:
        nb_name = PHASE_NOTEBOOKS[phase]
        t = time.monotonic()
        try:
            try:
                kernel = await asyncio.shield(kernel_tasks[phase])  # a stop cancels the phase, not the start
            except KernelStartError as exc:
                progress.say(f"  phase {phase}: not run: {clip(str(exc), 300)} (see kernels.log)")
                return {"path": nb_name, "status": "failed", "duration_s": round(time.monotonic() - t, 3),
                        "error": {"cell": None, "ename": "KernelStart", "evalue": clip(str(exc), 500)}}
            kernels[phase] = kernel
            await _warm_up(kernel, PHASE_WARMUP)
        finally:
            warmed[phase].set()
        nb = (await notebooks)[phase]
        async with slots:
            began.add(phase)
            result = (await execute(nb, run_dir / nb_name, kernel)).to_dict()
        if stop.reason is None:  # a phase the stop killed is told below, with what stopped it
            ended_before_stop.add(phase)
            progress.say(f"  phase {phase}: notebook {result['status']} in {result['duration_s']:.1f}s")
        return result

    def stop_phases(reason: str) -> None:
        """Kill the phase kernels now (their rows are on disk) and end the phase tasks."""
        if stop.reason is None:
            stop.reason, stop.at = reason, time.monotonic()
        kill_kernels(t.result() for t in kernel_tasks.values() if _started(t))
        for kt in kernel_tasks.values():
            _kill_when_started(kt)  # those still starting: when they answer
        for task in phase_tasks.values():
            task.cancel()
        stop.kernels_killed_s = time.monotonic() - stop.at

    def on_sigint() -> None:
        stop.signals += 1
        if stop.signals == 1:
            progress.say("interrupted: stopping the phases (Ctrl-C again to stop at once)")
            stop_phases("interrupted")
            return
        # Every process this one started, with its tree: the kernels (those still starting or warming up
        # too, which no task has handed over yet), the zygote and the kernels it forked.
        import psutil
        kill_trees(p.pid for p in psutil.Process().children())
        print("netra-nb: stopped at once; the rows written so far are in the run folder", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(EXIT_INTERRUPTED)

    handles_signal = threading.current_thread() is threading.main_thread()
    if handles_signal:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    tail = RowTail(run_dir / "results.jsonl")
    checks_seen: dict[str, set[str]] = {p: set() for p in phases}
    drawn_ahead: set[str] = set()

    def show_rows() -> None:
        for row in tail.new_rows():
            progress.row(row)
            if row.get("phase") in checks_seen:
                checks_seen[row["phase"]].add(str(row.get("check")))

    try:
        phase_tasks.update({p: asyncio.ensure_future(one(p)) for p in phases})
        pending = set(phase_tasks.values())
        while pending and stop.reason is None:
            done, pending = await asyncio.wait(pending, timeout=min(ROW_POLL_S, max(0.0, deadline - time.monotonic())))
            show_rows()
            if report_task is not None:
                _draw_ahead(report_task, run_dir, checks_seen, drawn_ahead)
            if pending and time.monotonic() >= deadline:
                progress.say(f"the run's deadline ({params.timeout_run:g} s, timeouts.run) passed: stopping the phases")
                stop_phases("deadline")
        results = await asyncio.gather(*phase_tasks.values(), return_exceptions=True)
        show_rows()
        for phase, result in zip(phases, results):
            if stop.reason and phase not in ended_before_stop:
                # A phase whose kernel the stop killed reports a dead kernel: say what really happened.
                result = _stopped_result(PHASE_NOTEBOOKS[phase], stop.reason, started, phase in began)
                progress.say(f"  phase {phase}: {result['error']['evalue']}")
            elif isinstance(result, BaseException):  # the kit's own failure (a notebook it could not read)
                result = {"path": PHASE_NOTEBOOKS[phase], "status": "failed", "duration_s": round(time.monotonic() - started, 3),
                          "error": {"cell": None, "ename": type(result).__name__, "evalue": clip(str(result), 500)}}
                progress.say(f"  phase {phase}: the kit failed: {result['error']['ename']}: {result['error']['evalue']}")
            info["notebooks"][phase] = result
        if stop.reason == "interrupted":
            info["interrupted_at"] = utc_now()
        info["finished_at"] = utc_now()
        write_run_json(run_dir, info)
        kill_kernels(kernels.values())  # idle now (or killed already): nothing to wait for
        if stop.at is not None:
            progress.say(f"the phases' kernels were killed {stop.kernels_killed_s:.2f} s after the "
                         f"{'Ctrl-C' if stop.reason == 'interrupted' else 'deadline'}")
        return await _finalize(run_dir, report_task=report_task, artifacts_task=artifacts_task, progress=progress)
    finally:
        for kt in (*kernel_tasks.values(), *tail_starts.values(), *tail_tasks):
            _kill_when_started(kt)
        if zygote is not None:
            zygote.close()
        if handles_signal:
            loop.remove_signal_handler(signal.SIGINT)


async def _warm_up(kernel: Kernel, code: str) -> None:
    """Import in ``kernel`` what its notebook needs first. A failure here is not reported: the notebook
    imports the same and reports it, with its cell."""
    try:
        await kernel.run(code)
    except Exception:  # noqa: BLE001
        pass


async def _report_kernel(run_dir: Path) -> Kernel:
    """A kernel for the report, with the report's imports done."""
    kernel = await Kernel.start("report", cwd=run_dir, log=run_dir / KERNEL_LOG)
    await _warm_up(kernel, REPORT_WARMUP)
    return kernel


def _started(task: asyncio.Future) -> bool:
    """A kernel start (or the report kernel's task) that ended with a kernel."""
    return task.done() and not task.cancelled() and task.exception() is None and task.result() is not None


def _kill_when_started(task: asyncio.Future) -> None:
    """Kill a kernel now, or as soon as its start ends (cancelling a start could orphan the process)."""
    def kill(t: asyncio.Future) -> None:
        if _started(t):
            t.result().kill()
    if task.done():
        kill(task)
    else:
        task.add_done_callback(kill)


def _draw_ahead(report_task: asyncio.Future, run_dir: Path, checks_seen: dict[str, set[str]], sent: set[str]) -> None:
    """Have the idle report kernel draw the charts whose data is final, while the phases still run: the
    session charts of each phase whose checks have all ended, and (every check ended) the run-wide charts
    first. The report reuses them (``charts.cached_png``); the kernel runs these before the report.

    Measured: the run-wide charts drawn by the (idle) artifacts kernel instead did not end the run sooner:
    the report asked for them before they were on disk and drew them again."""
    if not _started(report_task):
        return
    complete = [p for p, seen in checks_seen.items() if _phase_checks(p) and _phase_checks(p) <= seen]
    calls = []
    if len(complete) == len(checks_seen) and "" not in sent:
        # The run-wide charts first: the last phase's notebook draws its own session charts meanwhile (the
        # files are shared), instead of waiting for this kernel to draw them and then the run-wide ones.
        sent.add("")
        calls.append(f"draw_charts_ahead({str(run_dir)!r})")
    calls += [f"draw_sessions_ahead({str(run_dir)!r}, {p!r})" for p in complete if p not in sent]
    sent.update(complete)
    if calls:
        report_task.result().kc.execute("from netra_nb import report as _report\n"
                                        + "\n".join(f"_report.{c}" for c in calls), silent=True, store_history=False)


# -- exit code -----------------------------------------------------------------------------------

def exit_code(run_dir: Path, summary: dict[str, Any]) -> int:
    """0 every check passed; 1 the platform failed a check (or did not let the run finish in time);
    3 the kit itself failed, or the run did not finish.

    A run that did not finish (a phase notebook crashed, the run was killed or interrupted) exits 3
    whatever its rows say: "every check passed" or "the platform failed" cannot be said of a run
    whose other checks never ran. Only the run deadline stops a run on the platform's account.
    """
    by_status = summary.get("counts", {})
    notebooks = read_run_json(run_dir).get("notebooks", {}).values()
    if any((n.get("error") or {}).get("ename") == "RunDeadline" for n in notebooks):
        return EXIT_FAILED  # the platform did not let the run finish in time
    crashed = any(n.get("status") in ("failed", "interrupted") for n in notebooks)
    if crashed or not sum(by_status.values()) or summary.get("unfinished_phases"):
        return EXIT_KIT
    if by_status.get("fail"):
        return EXIT_FAILED
    if by_status.get("error"):
        kit_only = all(c in ("client_error", "client_lost", "unknown") for c, n in summary.get("categories", {}).items()
                       if c != "ok" and n)
        return EXIT_KIT if kit_only else EXIT_FAILED
    return EXIT_OK


# -- finalize: summary, then the report and the other artifacts side by side -----------------------

def finalize_run(run_dir: str | Path, *, report: bool = True) -> dict[str, Any]:
    """Write summary.json, results.parquet, events.parquet, junit.xml, summary.md, the history entry
    and the report (executed in a kernel of its own); returns the summary.

    Works on a partial folder (a run killed half-way): it uses the rows that were written and
    says in ``summary.json`` (``unfinished_phases``) which phases did not finish.
    """
    run_dir = Path(run_dir)
    if report:
        for old in (run_dir / "charts").glob("*.png"):  # charts are drawn once per build (charts.cached_png)
            old.unlink()

    async def go() -> dict[str, Any]:
        report_task = asyncio.ensure_future(_report_kernel(run_dir)) if report else None
        try:
            return await _finalize(run_dir, report_task=report_task, artifacts_task=None, progress=Progress(quiet=True))
        finally:
            if report_task is not None:
                _kill_when_started(report_task)

    return asyncio.run(go())


def run_summary(run_dir: Path, info: dict[str, Any], records: list[Record]) -> dict[str, Any]:
    """summary.json's content: counts, categories, the golden path, and which phases did not finish."""
    by_status, by_category = counts(records)
    gp = golden_path(records)
    started = info.get("started_at") or (min((r.started_at for r in records), default=utc_now()))
    finished = info.get("finished_at")
    duration = _seconds_between(started, finished) if finished else _records_span(records)
    phases = info.get("phases") or sorted({r.phase for r in records})
    unfinished = [p for p in phases if not _phase_finished(p, info, records)]
    if info.get("env") == "triage" or phases == ["triage"]:
        unfinished = [p for p in unfinished if not any(r.phase == p for r in records)]
    return {
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


async def _finalize(run_dir: Path, *, report_task: asyncio.Future | None, artifacts_task: asyncio.Future | None,
                    progress: Progress) -> dict[str, Any]:
    """summary.json first (the report reads it); then the report executes in its kernel while Parquet, JUnit,
    summary.md and the history are written (in the artifacts kernel when there is one, else here); the report
    kernel exports the HTML last."""
    t0 = time.monotonic()
    info = read_run_json(run_dir)
    records = read_records(run_dir)
    frames = read_frames(run_dir)
    summary = run_summary(run_dir, info, records)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if report_task is not None:
        progress.say("building the report (and Parquet, JUnit, summary.md, history alongside)")
    artifacts = asyncio.ensure_future(_write_artifacts(run_dir, artifacts_task, records, frames, summary))
    problems: list[str] = []
    if report_task is not None:
        problems += await _report(run_dir, report_task)
    more, scrubbed = await artifacts
    problems += more
    if report_task is not None and (run_dir / "report.html").is_file():
        progress.say(f"report written {time.monotonic() - t0:.1f} s after the phases: {run_dir / 'report.html'}")
    # The last net, after every file is written: a secret that reached any file of the folder (a
    # notebook's output, a log) is removed from it. The Parquet files were gone over where they were
    # written (reading them needs pyarrow, which this process does not import), and are unless they changed.
    scrub_tree(run_dir, scrubbed=scrubbed)
    if problems:
        (run_dir / "kit-errors.log").write_text("\n".join(redact(p) for p in problems) + "\n")
        for p in problems:
            print(f"  kit: {redact(p)}", file=sys.stderr, flush=True)
    return summary


async def _write_artifacts(run_dir: Path, artifacts_task: asyncio.Future | None, records: list[Record],
                           frames: list[dict[str, Any]], summary: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """:func:`netra_nb.artifacts.write_artifacts` in the artifacts kernel, which then redacts the Parquet files
    (:func:`netra_nb.redact.scrub_files`), or in a thread of this process when that kernel is not there
    (``netra-nb report``) or did not start; the problems, and the files gone over for secrets."""
    kernel = None
    if artifacts_task is not None:
        try:
            kernel = await artifacts_task
        except KernelStartError:
            kernel = None
    if kernel is None:
        from .artifacts import write_artifacts
        return await asyncio.get_running_loop().run_in_executor(None, write_artifacts, run_dir, records, frames, summary), {}
    try:
        reply = await kernel.run(f"from netra_nb.artifacts import PARQUET_FILES as _files, write_artifacts as _write\n"
                                 f"from netra_nb.redact import scrub_files as _scrub\n"
                                 f"_netra_nb_problems = _write({str(run_dir)!r})\n"
                                 f"_netra_nb_scrubbed = _scrub({str(run_dir)!r}, _files)",
                                 expressions={"problems": "_netra_nb_problems", "scrubbed": "_netra_nb_scrubbed"})
    finally:
        kernel.kill()
    if reply.get("status") != "ok":
        return [f"artifacts: {reply.get('ename')}: {reply.get('evalue')}"], {}
    return _expression_value(reply, "problems") or [], _expression_value(reply, "scrubbed") or {}


def _expression_value(reply: dict[str, Any], name: str) -> Any:
    """The value of a user expression a kernel's reply carries (a Python literal), else None."""
    import ast
    try:
        return ast.literal_eval(reply["user_expressions"][name]["data"]["text/plain"])
    except (KeyError, TypeError, ValueError, SyntaxError):
        return None


async def _report(run_dir: Path, report_task: asyncio.Future) -> list[str]:
    """Execute the report notebook in its (warm) kernel, then export report.html there; the problems, if any."""
    try:
        kernel = await report_task
    except KernelStartError as exc:
        return [f"report: {exc}"]
    try:
        nb = read_notebook(notebooks_dir() / REPORT_NOTEBOOK, {"run_dir": str(run_dir.resolve())})
        result = await execute(nb, run_dir / "report.ipynb", kernel, cell_timeout=REPORT_TIMEOUT_S,
                               save_each_cell=False)
        if result.error is not None:
            e = result.error
            return [f"report: the report notebook raised at cell {e.cell}: {e.ename}: {e.evalue}; see report.ipynb"]
        reply = await kernel.run(f"from netra_nb.export import export_report_file as _export\n"
                                 f"_export({str(run_dir.resolve())!r})", timeout=REPORT_TIMEOUT_S)
    finally:
        kernel.kill()
    if reply.get("status") != "ok":  # report.ipynb is written; say why the HTML is not
        return [f"report.html: {reply.get('ename')}: {reply.get('evalue')}"]
    return []


def _phase_finished(phase: str, info: dict[str, Any], records: list[Record]) -> bool:
    """A phase finished when its notebook ran to the end, or (a killed run) all its checks have rows."""
    done = {r.check for r in records if r.phase == phase}
    if info.get("notebooks", {}).get(phase, {}).get("status") == "ok":
        return bool(done)
    expected = _phase_checks(phase)
    return bool(expected) and expected <= done and info.get("notebooks", {}).get(phase, {}).get("status") != "failed"


def _seconds_between(a: str, b: str) -> float:
    start, end = parse_time(a), parse_time(b)
    return max(0.0, (end - start).total_seconds()) if start and end else 0.0


def _records_span(records: list[Record]) -> float:
    spans = [(t.timestamp(), float(r.duration_s or 0.0)) for r in records if (t := parse_time(r.started_at))]
    if not spans:
        return 0.0
    return max(0.0, max(t + d for t, d in spans) - min(t for t, _ in spans))
