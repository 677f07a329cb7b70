"""A run folder: its name, reading it, and finding the runs around it.

A run folder is ``<out>/<env>/<UTC stamp>-<id>/`` (:func:`folder_name`; :func:`folder_time` reads the
stamp back: the one place the name is written and parsed). :func:`load_run` reads a folder tolerantly
into a :class:`Run` (records, frames, ``run.json``, ``summary.json``) whose root causes and golden path
come from :mod:`netra_nb.diagnosis`; :func:`latest_run` and :func:`previous_run` find the runs around it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

from .diagnosis import GoldenPath, PatternGroup, RootCause, golden_path, root_causes
from .records import Record, load_records, parse_time, read_jsonl
from .registry import notebooks_dir, phase_rank
from .text import _num


__all__ = ["folder_name", "folder_time", "stamp", "Run", "load_run", "latest_run", "previous_run", "read_run_json"]


# -- the run folder's name ----------------------------------------------------------------------

_STAMP = re.compile(r"^(\d{8}T\d{6})Z?")


def stamp(t: datetime) -> str:
    """A UTC time as the kit stamps names: ``20261206T215501Z`` (sorts as it orders)."""
    return f"{t.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"


def folder_name(started: datetime, run_id: str) -> str:
    """A run folder's name, ``<UTC stamp>-<run id>``: the name orders an environment's runs."""
    return f"{stamp(started)}-{run_id}"


def folder_time(name: str) -> datetime | None:
    """When the run of a folder named by :func:`folder_name` started (to the second); None for another name."""
    m = _STAMP.match(name)
    return datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc) if m else None


# -- the run folder ----------------------------------------------------------------------------

@dataclass
class Run:
    """One run folder, read tolerantly: ``meta`` is ``run.json`` (or ``{}``), ``records`` the readable
    lines of ``results.jsonl``, ``frames`` those of ``events.jsonl``."""

    dir: Path
    meta: dict[str, Any]
    records: list[Record]
    frames: list[dict[str, Any]]
    summary_json: dict[str, Any] = field(default_factory=dict)
    unreadable_lines: int = 0
    meta_problem: str | None = None

    @cached_property
    def golden_path(self) -> GoldenPath:
        return golden_path(self.records)

    @cached_property
    def root_causes(self) -> list[RootCause]:
        return root_causes(self.records, self.frames)

    @cached_property
    def cause_of(self) -> dict[int, tuple[int, PatternGroup]]:
        """``id(record)`` → (its root cause's number, from 1; its pattern group), for every failing record."""
        out: dict[int, tuple[int, PatternGroup]] = {}
        for k, cause in enumerate(self.root_causes, 1):
            for g in cause.groups:
                for r in g.records:
                    out.setdefault(id(r), (k, g))  # a failure with a finding too belongs to its failure's cause
        return out

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.summary_json.get("run_id")
                   or (self.records[0].run_id if self.records else self.dir.name))

    @property
    def env(self) -> str:
        return str(self.meta.get("env") or self.summary_json.get("env")
                   or (self.records[0].env if self.records else self.dir.parent.name or "unknown"))

    @property
    def started_at(self) -> str | None:
        starts = [r.started_at for r in self.records if parse_time(r.started_at)]
        return self.meta.get("started_at") or self.summary_json.get("started_at") or (min(starts) if starts else None)

    @property
    def finished_at(self) -> str | None:
        return self.meta.get("finished_at")

    @property
    def duration_s(self) -> float | None:
        """The run's own duration: from its start to its end (``run.json``), else ``summary.json``'s, else
        from its first check's start to its last check's end."""
        start, end = parse_time(self.started_at), parse_time(self.finished_at)
        if start and end:
            return (end - start).total_seconds()
        if _num(self.summary_json.get("duration_s")) is not None:
            return _num(self.summary_json.get("duration_s"))
        spans = [(parse_time(r.started_at), _num(r.duration_s) or 0.0) for r in self.records]
        spans = [(t, d) for t, d in spans if t]
        if not spans:
            return None
        first = min([t for t, _ in spans] + ([start] if start else []))
        return max((t - first).total_seconds() + d for t, d in spans)

    @property
    def phases(self) -> list[str]:
        listed = [str(p) for p in (self.meta.get("phases") or [])]
        seen = sorted({r.phase for r in self.records} - set(listed), key=phase_rank)
        return listed + seen

    def frames_of(self, phase: str, check: str, session: int | None = 0) -> list[dict[str, Any]]:
        fs = [f for f in self.frames if f.get("phase") == phase and f.get("check") == check
              and (session is None or int(f.get("session") or 0) == session)]
        return sorted(fs, key=lambda f: (_num(f.get("t_s")) or 0.0, _num(f.get("seq")) or 0))


def read_run_json(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's ``run.json`` ({} when it is missing or unreadable)."""
    return _read_json(Path(run_dir) / "run.json")[0]


def _read_json(path: Path) -> tuple[dict[str, Any], str | None]:
    if not path.exists():
        return {}, f"{path.name} is missing"
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as exc:
        return {}, f"{path.name} is unreadable ({type(exc).__name__})"
    return (data, None) if isinstance(data, dict) else ({}, f"{path.name} is not a JSON object")


def latest_run(outputs: str | Path | None = None) -> Path | None:
    """The most recent run folder (by its start) under ``outputs/<env>/`` (default: the checkout's
    ``outputs/``) that has a ``results.jsonl``; for opening the report notebook by hand."""
    root = Path(outputs) if outputs is not None else notebooks_dir().parent / "outputs"
    found = [p.parent for p in root.glob("*/*/results.jsonl")]
    return max(found, key=lambda p: (_run_time(p), p.name)) if found else None


def load_run(run_dir: str | Path, frames: Sequence[dict[str, Any]] | None = None) -> Run:
    """Read a run folder; never raises for missing or damaged files. ``frames`` (one row per
    WebSocket frame: thousands for a large fleet), when the caller already read them, are used
    instead of reading ``events.jsonl`` again."""
    run_dir = Path(run_dir).resolve()
    meta, problem = _read_json(run_dir / "run.json")
    summary, _ = _read_json(run_dir / "summary.json")
    records, bad = load_records(run_dir / "results.jsonl")
    frames = list(read_jsonl(run_dir / "events.jsonl")) if frames is None else list(frames)
    return Run(run_dir, meta, records, frames, summary, bad, problem)


# -- 6. against the previous run ---------------------------------------------------------------

def _run_time(path: Path) -> datetime:
    meta, _ = _read_json(path / "run.json")
    t = parse_time(meta.get("started_at"))
    if t:
        return t
    if (t := folder_time(path.name)) is not None:
        return t
    starts = [parse_time(d.get("started_at")) for d in read_jsonl(path / "results.jsonl")]
    starts = [s for s in starts if s]
    if starts:
        return min(starts)
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)


def previous_run(run_dir: str | Path) -> Path | None:
    """The most recent other run folder of the same environment (``run_dir.parent``), older than this one,
    that has a ``results.jsonl``; None when there is none.

    Run folders are named ``<UTC stamp>-<id>``, so the name orders them: the candidates are visited
    newest first and the first older one with results wins, without opening every sibling (a year
    of five-minute runs is 100k folders). Folders without a stamp fall back to their run time.
    """
    run_dir = Path(run_dir).resolve()
    try:
        names = [e.name for e in os.scandir(run_dir.parent) if e.is_dir() and e.name != run_dir.name]
    except OSError:
        return None
    this = _run_time(run_dir)
    stamped = sorted((n for n in names if folder_time(n) is not None), reverse=True)
    for name in stamped:
        t = folder_time(name)
        if (t < this or (t == this and name < run_dir.name)) and (run_dir.parent / name / "results.jsonl").is_file():
            best: tuple[datetime, str] | None = (t, name)
            break
    else:
        best = None
    for name in names:  # unstamped folders: their run time decides
        if folder_time(name) is not None or not (run_dir.parent / name / "results.jsonl").is_file():
            continue
        t = _run_time(run_dir.parent / name)
        if (t < this or (t == this and name < run_dir.name)) and (best is None or (t, name) > best):
            best = (t, name)
    return run_dir.parent / best[1] if best else None
