"""The run report: what ``notebooks/90_run_report.ipynb`` shows, ``summary.md``, and the HTML export.

Everything the report says is computed here, from a run folder, by functions that tests call
directly; the notebook only calls them and displays the result, in this order:

1. :func:`headline_markdown` — the golden-path verdict, the run's facts and "In short": one line per
   group of checks (authentication, HTTP API, WebSocket, agent run, fleet: the check registry's
   groups), each failure told once and pointed at its root cause;
2. :func:`root_cause_items` — one section per root cause (:func:`netra_nb.diagnosis.root_causes`):
   identical failures folded into one line with the checks a click away, one session chart per
   distinct pattern, what the evidence shows, the next steps, what was only seen before;
3. the appendix: :func:`results_html` (every check, a repeated failure shown once),
   :func:`appendix_chart_items` (durations, timeline, categories, the sessions that worked),
   :func:`evidence_markdown` / :func:`evidence_html`, :func:`comparison_markdown`.

Every duration quoted is a record's ``duration_s``, and the run's is its start to its end. Entry
points for the runner: :func:`write_summary_md`, :func:`export_report` and :func:`build_report`, and for its
report kernel while the phases run, :func:`draw_sessions_ahead` and :func:`draw_charts_ahead`. Every reader
tolerates a partial run folder (no ``run.json`` ``finished_at``, a torn last line, no parquet).
"""

from __future__ import annotations

import functools
import html
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from . import charts
from .categories import category_info
from .checks import registry
from .diagnosis import (HONESTY, GoldenPath, PatternGroup, RootCause, counts, end_time, golden_path, is_agent_run,
                        root_causes)
from .frames import normalize, result_of
from .records import PASSING, Record, load_records, parse_time, read_jsonl
from .redact import clip, redact, redact_keeping_images
from .registry import (GROUPS, ICON_COLORS, NOTEBOOKS, PHASE_TITLES, ROW_COLORS, STATUS_ICON,
                       STATUS_ORDER, phase_rank)

__all__ = [
    "Run",
    "load_run",
    "latest_run",
    "page_title",
    "headline_markdown",
    "in_short",
    "unfinished_notes",
    "root_cause_items",
    "diagnosis_markdown",
    "golden_path_markdown",
    "results_table",
    "results_html",
    "chart",
    "CHART_NOTES",
    "appendix_chart_items",
    "draw_sessions_ahead",
    "draw_charts_ahead",
    "evidence_table",
    "evidence_html",
    "evidence_markdown",
    "previous_run",
    "Comparison",
    "compare",
    "comparison_markdown",
    "write_summary_md",
    "summary_markdown",
    "build_report",
    "export_report",
    "export_html",
    "prepare_export",
    "notebook_path",
]

# The status icons (netra_nb.registry.STATUS_ICON) are symbols every common font has: the report must read the same
# on a machine without an emoji font. The HTML export colours them (see _color_icons).
_FAILING = ("fail", "error")


# -- markdown helpers --------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|#])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def _md(text: Any) -> str:
    """Free text made inert for Markdown (no emphasis, links or raw HTML), one line, secrets redacted."""
    s = " ".join(str(redact(str(text if text is not None else ""))).split())
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), s)


def _code(text: Any) -> str:
    """An inline code span (identifiers, codes)."""
    s = " ".join(str(redact(str(text if text is not None else ""))).split()).replace("`", "'")
    return f"`{s}`" if s else "``"


def _prose(text: Any) -> str:
    """A sentence from :mod:`netra_nb.diagnosis`: its backtick spans stay code, the rest is made inert."""
    def inert(part: str) -> str:  # keep the spaces around a code span
        lead, trail = part[:1].isspace(), part[-1:].isspace()
        return (" " if lead else "") + _md(part) + (" " if trail and part.strip() else "")

    parts = str(text or "").split("`")
    return "".join(inert(p) if i % 2 == 0 else _code(p) for i, p in enumerate(parts))


def _secs(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "–"
    return f"{v:.3f} s" if v < 10 else f"{v:.1f} s"


def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v == v else None


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s else s


def _when(value: Any) -> str:
    t = value if isinstance(value, datetime) else parse_time(value)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if t and t.year < 9999 else "an unknown time"


def _names(records: Sequence[Record], limit: int = 0) -> str:
    """``a``, ``b``, ``c`` (every name unless ``limit``: then the first ones and how many more)."""
    names = list(dict.fromkeys(r.check for r in records))
    shown = names if not limit or len(names) <= limit + 1 else names[:limit]
    more = f" and {len(names) - len(shown)} more" if len(shown) < len(names) else ""
    return ", ".join(_code(n) for n in shown) + more


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


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
    root = Path(outputs) if outputs is not None else notebook_path().parent.parent / "outputs"
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


# -- 1. headline ---------------------------------------------------------------------------------

def _counts_text(records: Sequence[Record]) -> str:
    by_status, _ = counts(records)
    parts = [f"{by_status[s]} {s}" for s in ("pass", "degraded", "fail", "error", "skip") if by_status.get(s)]
    return f"{_plural(len(records), 'check')}: " + ", ".join(parts) if records else "no check recorded"


def page_title(run: Run) -> str:
    """The HTML page's ``<title>``: the verdict first, so a browser tab or a bookmark says it."""
    gp = run.golden_path
    return str(redact(f"{'✔' if gp.working else '✘'} {gp.headline} — Netra {run.env} run {run.run_id}"))


def unfinished_notes(run: Run) -> list[str]:
    """Sentences naming what did not finish: failed, interrupted or unrun notebooks, phases without
    records, a run that never recorded its end, unreadable lines."""
    notes: list[str] = []
    notebooks = run.meta.get("notebooks") or {}
    covered = set()
    for phase, nb in notebooks.items():
        if not isinstance(nb, Mapping):
            continue
        status = nb.get("status")
        path = nb.get("path") or f"the {phase} notebook"
        if status == "failed":
            err = nb.get("error") or {}
            cell = err.get("cell") if isinstance(err, Mapping) else None
            where = f" at cell {cell}" if cell is not None else ""
            what = f": {err.get('ename') or 'error'}: {err.get('evalue') or ''}".rstrip(": ") if isinstance(err, Mapping) and err else ""
            n = sum(1 for r in run.records if r.phase == phase)
            notes.append(f"Phase {_code(phase)} did not finish: {_code(path)} failed{where}{_md(what)} "
                         f"({n} of its checks recorded before that).")
            covered.add(phase)
        elif status == "interrupted":
            n = sum(1 for r in run.records if r.phase == phase)
            notes.append(f"Phase {_code(phase)} did not finish: the run was interrupted (Ctrl-C) before {_code(path)} "
                         f"ended ({n} of its checks recorded before that).")
            covered.add(phase)
        elif status == "not_run":
            notes.append(f"Phase {_code(phase)} was not run ({_code(path)}).")
            covered.add(phase)
    for phase in run.phases:
        if phase not in covered and not any(r.phase == phase for r in run.records):
            notes.append(f"Phase {_code(phase)} did not finish: it recorded no result.")
    if run.meta_problem:
        notes.append(f"The run's {_md(run.meta_problem)}: the report uses what {_code('results.jsonl')} holds.")
    elif not run.finished_at:
        notes.append(f"The run did not finish ({_code('run.json')} has no {_code('finished_at')}): this report "
                     f"covers the {len(run.records)} checks recorded before it stopped.")
    if run.unreadable_lines:
        notes.append(f"{run.unreadable_lines} unreadable line(s) of {_code('results.jsonl')} were skipped "
                     f"(a line torn when the run was killed).")
    return notes


def _group(r: Record) -> str:
    """The registry's group of a record's check ("" for a check the registry does not know: triage)."""
    spec = registry().get(r.check)
    return spec.group if spec is not None and spec.phase == r.phase else ""


def _flagged(r: Record) -> bool:
    """A failure, or a pass that cannot be trusted (an honesty finding)."""
    return r.status in _FAILING or (r.status in PASSING and bool(r.findings))


def _failure_words(run: Run, head: str, rs: Sequence[Record], told: set[int]) -> str:
    """``head`` ("3 of 4 checks fail") and how ``rs`` (failing records) failed, one clause per pattern: told
    in full the first time, after that as "the same way" with its root cause. ``told`` collects the
    patterns already told."""
    by_group: dict[int, list[Record]] = {}
    order: list[tuple[int, PatternGroup]] = []
    for r in rs:
        k, g = run.cause_of.get(id(r), (0, None))
        if g is None:
            continue
        if id(g) not in by_group:
            order.append((k, g))
        by_group.setdefault(id(g), []).append(r)
    clauses = []
    for k, g in order:
        members = by_group[id(g)]
        who = f"{_names(members, 3)}: " if len(order) > 1 or (len(members) < len(rs)) else ""
        if id(g) in told:
            clauses.append(f"{who}the same way (root cause {k})")
        else:
            told.add(id(g))
            clauses.append(f"{who}{_prose(g.pattern.text)} (root cause {k})")
    if len(clauses) == 1 and clauses[0].startswith("the same way"):
        return f"{head} {clauses[0]}"
    more = f"; and {len(clauses) - 4} more kinds of failure" if len(clauses) > 4 else ""
    return f"{head}: " + "; ".join(clauses[:4]) + more


def _pass_words(run: Run, name: str, ok: Sequence[Record], total: int) -> str:
    """What a group's passing checks show: the agent run's events, result and time; the token; or a count."""
    if name == "agent_run" and len(ok) == 1:
        r = ok[0]
        seen = ", ".join(_code(e) for e in r.events_seen) or "its events"
        text = f"{_code(r.check)} received {seen} and a result in {_secs(r.duration_s)}"
        result = agent_result(run.frames, r.check)
        return text + (f"; the result: {_md(result)}" if result else "")
    if name == "auth" and len(ok) == 1:
        return f"a token from the auth service ({_code(ok[0].check)}, {_secs(ok[0].duration_s)})"
    if total == 1:
        return f"{_code(ok[0].check)} passes"
    return f"{len(ok)} of {total} checks pass"


def in_short(run: Run) -> list[str]:
    """The incident in a few lines: one per group of checks (from the check registry; a check it does not
    know goes under its phase), then what the evidence shows for the first root cause and a line for each
    other one. Every failure is told once; a later line that saw the same says so and names its cause."""
    lines: list[str] = []
    told: set[int] = set()
    groups: dict[str, list[Record]] = {}
    for r in sorted(run.records, key=lambda r: (phase_rank(r.phase), r.started_at or "")):
        groups.setdefault(_group(r) or r.phase, []).append(r)
    names = [g for g in GROUPS if g in groups] + [g for g in groups if g not in GROUPS]
    for name in names:
        rs = groups[name]
        title = GROUPS.get(name) or PHASE_TITLES.get(name, name)
        bad = [r for r in rs if _flagged(r)]
        ok = [r for r in rs if r.status in PASSING and not r.findings]
        skipped = [r for r in rs if r.status == "skip"]
        noun = "testcases" if name == "triage" else "checks"
        if bad:
            icon = "‼" if all(r.status in PASSING for r in bad) else "✘"
            verb = "fails" if len(bad) == 1 else "fail"
            head = (f"{_code(bad[0].check)} {verb}" if len(rs) == 1 else
                    f"{len(bad)} of {len(rs)} {noun} {verb}" + (" or cannot be trusted" if any(r.status in PASSING for r in bad) else ""))
            text = _failure_words(run, head, bad, told)
        elif ok:
            icon = "✔"
            text = _pass_words(run, name, ok, len(rs) - len(skipped))
        else:
            icon = "⊘"
            text = f"{_names(skipped)} skipped" + (f": {_md(skipped[0].message)}" if len(skipped) == 1 and skipped[0].message else "")
            skipped = []
        slow = [r for r in ok if r.status == "degraded"]
        if slow:
            text += "; slower than the SLA: " + ", ".join(
                f"{_code(r.check)} {_secs(r.duration_s)}" + (f" > {_secs(r.sla_s)}" if r.sla_s else "") for r in slow)
        if skipped:
            text += f"; {_names(skipped)} skipped"
        lines.append(f"{icon} **{_md(title)}**: {text}.")
    causes = run.root_causes
    if causes:
        first = causes[0]
        if first.observed:
            lines.append("**What the evidence shows** (root cause 1, next steps below): "
                         + " ".join(_prose(o) for o in first.observed))
        for k, cause in enumerate(causes[1:], 2):
            lines.append(f"**Also** root cause {k}: {_md(cause.title)} ({', '.join(_code(c) for c in cause.categories)}, "
                         f"{_plural(len(cause.records), 'check')}).")
    return lines


def _facts(run: Run) -> str:
    """The run's identity and size on one line: environment, run, start, duration, counts, fault, first seen."""
    facts = [f"Environment **{_md(run.env)}**", f"run {_code(run.run_id)}", f"started {_when(run.started_at)}"]
    if run.duration_s is not None:
        facts.append(f"ran {_secs(run.duration_s)}")
    facts.append(f"**{_counts_text(run.records)}**")
    if run.meta.get("fault"):
        facts.append(f"fault profile {_code(run.meta['fault'])}")
    if run.meta.get("era"):
        facts.append(f"{_md(run.meta['era'])} era")
    gp = run.golden_path
    if gp.record is not None and not gp.working:
        facts.append(f"first seen {_when(end_time(gp.record))} in {_code(gp.record.check)} ({_md(gp.record.phase)})")
    return " · ".join(facts)


def _overview(run: Run) -> list[str]:
    """What did not finish, then "In short" (Markdown lines)."""
    lines: list[str] = []
    notes = unfinished_notes(run)
    if notes:
        lines += ["**⚠ Not everything finished:**", ""] + [f"- {n}" for n in notes] + [""]
    short = in_short(run)
    if short:
        lines += ["**In short**", ""] + [f"- {s}" for s in short] + [""]
    return lines


def headline_markdown(run: Run) -> str:
    """The report's first screen: the verdict as its heading, the run's facts, and "In short"."""
    gp = run.golden_path
    lines = [f"# {'✔' if gp.working else '✘'} {_md(gp.headline)}", "", _facts(run), ""]
    return "\n".join(lines + _overview(run))


def golden_path_markdown(run: Run) -> str:
    """The verdict and the agent runs it rests on, one line each."""
    gp = run.golden_path
    lines = [f"**{_md(gp.sentence)}**", ""]
    for r in (r for r in run.records if is_agent_run(r)):
        k = run.cause_of.get(id(r), (0, None))[0]
        why = f" — root cause {k}" if k else ""
        lines.append(f"- {STATUS_ICON.get(r.status, '')} {_code(r.check)} ({_md(r.phase)}, {_secs(r.duration_s)}): "
                     f"{_md(r.message)}{why}")
    return "\n".join(lines)


# -- 2. root causes ------------------------------------------------------------------------------

def _details(summary: str, body_html: str) -> str:
    """A collapsed ``<details>`` as one HTML block (no blank line inside: Markdown renderers end an HTML
    block there), for Markdown that nbconvert, JupyterLab and GitHub all render. Both parts are HTML."""
    body = re.sub(r"\n\s*\n", "\n", body_html)
    return f"<details><summary>{summary}</summary>\n{body}\n</details>"


def _html(text: Any) -> str:
    return html.escape(str(redact(str(text if text is not None else ""))))


def _checks_list(g: PatternGroup, *, compact: bool) -> str:
    """The checks of a pattern as HTML, each with its phase and duration; a long list as names alone, and
    ``compact`` (summary.md) only its first dozen."""
    if len(g.records) > 12:
        shown = g.records[:12] if compact else g.records
        more = f" and {len(g.records) - 12} more (every one in the report's table)" if len(shown) < len(g.records) else ""
        return ", ".join(f"<code>{_html(r.check)}</code>" for r in shown) + more
    return " · ".join(f"<code>{_html(r.check)}</code> ({_html(r.phase)}, {_secs(r.duration_s)})" for r in g.records)


def _cause_head(run: Run, k: int, cause: RootCause, level: int, *, compact: bool = False) -> str:
    """A root cause's title, what its checks saw (identical failures folded into one line, the checks in a
    ``<details>``), the kit's probes when it ran any, and one check's raw evidence, collapsed (not when
    ``compact``: summary.md, which also names at most a dozen checks per line)."""
    h = "#" * level
    icon = "‼" if cause.honesty else "✘"
    blocks = " — blocks the golden path" if cause.blocks_golden_path else (" — results not to be trusted" if cause.honesty else "")
    first = cause.first
    lines = [f"{h} {icon} Root cause {k}: {_md(cause.title)}{blocks}", "",
             f"{', '.join(_code(c) for c in cause.categories)} · {_plural(len(cause.records), 'check')} · first seen "
             f"{_when(end_time(first))} in {_code(first.check)}", ""]
    for g in cause.groups:
        n = len(g.records)
        lead = f"**{n} checks**" if n > 1 else f"**{_code(g.records[0].check)}** ({_md(g.records[0].phase)}, {_secs(g.records[0].duration_s)})"
        lines += [f"{lead}: {_prose(g.pattern.text)}.", ""]
        if n > 1:
            lines += [_details(f"Which {n} checks", _checks_list(g, compact=compact)), ""]
    if cause.evidence:
        lines += ["**What the kit tried** (to tell a missing route from refused credentials):", ""]
        lines += [f"- {_md(e)}" for e in cause.evidence] + [""]
    # The raw evidence of one check without frames to chart, a single check's rather than a fleet's summary.
    bare = [r for g in cause.groups if g.pattern.shape is None for r in g.records if (r.detail or "").strip()]
    shown = next((r for r in bare if _group(r) != "fleet"), bare[0] if bare else None)
    if not compact and shown is not None and not cause.evidence:
        lines += [_details(f"Raw evidence of <code>{_html(shown.check)}</code>", f"<pre>{_html(shown.detail)}</pre>"), ""]
    return "\n".join(lines)


def _cause_tail(cause: RootCause, *, observed: bool = True) -> str:
    """What the evidence shows (unless ``observed`` is False: "In short" told it), the next steps it points
    to, and what is only history."""
    lines: list[str] = []
    if cause.observed and observed:
        lines += ["**What the evidence shows**: " + " ".join(_prose(o) for o in cause.observed), ""]
    if cause.next_steps:
        lines += ["**Next steps**", ""] + [f"{n}. {_prose(s)}" for n, s in enumerate(cause.next_steps, 1)] + [""]
    if cause.seen_before:
        lines += ["**Seen before** (causes of this failure in the platform's history; this run does not show them): "
                  + "; ".join(_md(_lower_first(c)) for c in cause.seen_before) + ".", ""]
    return "\n".join(lines)


def diagnosis_markdown(run: Run, *, level: int = 3, after_in_short: bool = False, compact: bool = False) -> str:
    """Every root cause as Markdown (without its charts), the golden path's blocking one first.
    ``after_in_short``: the page's "In short" already told what the evidence shows for the first one;
    ``compact``: for summary.md (see :func:`_cause_head`)."""
    if not run.root_causes:
        slow = [r for r in run.records if r.status == "degraded"]
        text = "Nothing failed: there is no root cause to diagnose."
        if slow:
            text += " Slower than their SLA: " + ", ".join(f"{_code(r.check)} ({_secs(r.duration_s)})" for r in slow) + "."
        return text
    return "\n".join(_cause_head(run, k, c, level, compact=compact) + "\n" + _cause_tail(c, observed=not (after_in_short and k == 1))
                     for k, c in enumerate(run.root_causes, 1))


def _session_image(run: Run, record: Record, session: int, name: str, alt: str) -> Any:
    """Draw one session of ``record``, save it to ``charts/<name>.png``; the Image to display (or None)."""
    from IPython.display import Image

    path = _session_png(run, record, session)
    return Image(filename=str(path), metadata={"alt": alt}) if path is not None else None


def _session_png(run: Run, record: Record | None, session: int) -> Path | None:
    """One session's chart as ``charts/session_<phase>_<check>_<n>.png``: drawn once, whoever asks first (a phase
    notebook, the report kernel ahead of the report, or the report)."""
    if record is None:
        return None
    frames = run.frames_of(record.phase, record.check, session)
    total = charts.session_count(run.frames).get((record.phase, record.check), 1)
    key = charts.SessionKey(record.phase, record.check, session)
    return charts.session_png(run.dir, key, frames, record, sessions_of_check=total)


def root_cause_items(run: Run) -> list[Any]:
    """The display objects of the root-cause sections: per cause its heading and patterns (Markdown), the
    session chart that stands for each pattern with frames (saved to ``charts/cause<k>_<n>.png``), then
    what the evidence shows and the next steps. Nothing for a run without a failure."""
    from IPython.display import Markdown

    out: list[Any] = []
    for k, cause in enumerate(run.root_causes, 1):
        out.append(Markdown(_cause_head(run, k, cause, 2)))
        for n, g in enumerate(cause.groups, 1):
            rep = g.representative
            if rep is None:
                continue
            record, session = rep
            others = [r for r in g.records if r is not record]
            alt = f"WebSocket frames of {record.check}'s session on a time axis"
            image = _session_image(run, record, session, f"cause{k}_{n}", alt)
            if image is not None:
                out.append(image)
                if others:
                    who = _names(others) if len(others) <= 3 else f"the other {len(others)} checks"
                    out.append(Markdown(f"*The session of {_code(record.check)}; {who} failed the same way.*"))
        out.append(Markdown(_cause_tail(cause, observed=k > 1)))
    return out


# -- 3. the appendix: results, charts, evidence --------------------------------------------------------

def agent_result(frames: Sequence[dict[str, Any]], check: str, limit: int = 300) -> str | None:
    """The result an agent run's ``agent_completed`` frame carried, as a short text (None if absent)."""
    for f in frames:
        if f.get("check") == check and f.get("event") == "agent_completed" and f.get("direction") == "received":
            text = str(f.get("text") or "")
            value = result_of(normalize(text))
            if value is None:
                return clip(text, limit) or None  # truncated evidence: show it as it is
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            return clip(shown, limit)
    return None


def _honesty_codes(r: Record) -> list[str]:
    """The honesty categories a record carries (its category and its findings), each once."""
    return [c for c in dict.fromkeys([r.category, *r.findings]) if c in HONESTY]


def results_table(run: Run | Sequence[Record]) -> pd.DataFrame:
    """Every check: phase, check, status, category, duration, message (and honesty findings) — failures
    first, grouped by root cause and pattern, then passes flagged by a finding, then by phase. A failure
    identical to the one on an earlier row says so instead of repeating its message."""
    run = run if isinstance(run, Run) else Run(Path.cwd(), {}, list(run), [])

    def order(r: Record) -> tuple[Any, ...]:
        k, g = run.cause_of.get(id(r), (len(run.root_causes) + 1, None))
        status = min(STATUS_ORDER.get(r.status, 5), 1.5) if r.findings else STATUS_ORDER.get(r.status, 5)
        place = (run.root_causes[k - 1].groups.index(g), g.records.index(r)) if g is not None else (0, 0)
        return (status > 1.5, k, place, status, phase_rank(r.phase), r.started_at or "")

    rows, first_of = [], {}
    for r in sorted(run.records, key=order):
        _, g = run.cause_of.get(id(r), (0, None))
        message = str(redact(r.message or ""))
        if g is not None and len(g.records) > 1:
            if id(g) in first_of:
                message = f"the same failure as {first_of[id(g)]}"
            else:
                first_of[id(g)] = r.check
        rows.append({"phase": r.phase, "check": r.check, "status": r.status, "category": r.category,
                     "duration_s": _num(r.duration_s), "message": message, "findings": ", ".join(r.findings)})
    return pd.DataFrame(rows, columns=["phase", "check", "status", "category", "duration_s", "message", "findings"])


_TABLE_CSS = [
    {"selector": "", "props": "border-collapse: collapse; font-size: 12.5px; width: 100%; table-layout: auto;"},
    {"selector": "th", "props": "text-align: left; background: #eceff1; padding: 4px 8px; border-bottom: 2px solid #b0bec5;"},
    {"selector": "td", "props": "text-align: left; padding: 3px 8px; border-bottom: 1px solid #e0e0e0; vertical-align: top;"},
]


def _styled_html(df: pd.DataFrame, status_col: str = "status", formats: Mapping[str, Any] | None = None) -> str:
    if df.empty:
        return "<p><em>No checks recorded.</em></p>"
    shown = df.copy()
    if status_col in shown:
        statuses = list(shown[status_col])
        shown[status_col] = [f"{STATUS_ICON.get(s, '')} {s}" for s in statuses]
    else:
        statuses = ["pass"] * len(shown)
    styler = shown.style.hide(axis="index").set_table_styles(_TABLE_CSS)
    styler = styler.format(formats or {}, na_rep="", escape="html")
    colors = [ROW_COLORS.get(s, "#ffffff") for s in statuses]
    styler = styler.apply(lambda row: [f"background-color: {colors[row.name]}"] * len(row), axis=1)
    return str(redact(styler.to_html()))


def results_html(run: Run | Sequence[Record]) -> str:
    """:func:`results_table` as readable HTML: rows tinted by status, durations in seconds, a finding
    beside the category it changed."""
    df = results_table(run).reset_index(drop=True)
    df["category"] = [c if not f or f == c else f"{c} ‼ {f}" for c, f in zip(df["category"], df["findings"])]
    df = df.drop(columns=["findings"])
    return _styled_html(df, formats={"duration_s": lambda v: "" if v is None or v != v else f"{v:.3f}"})


CHART_NOTES = {
    "durations": "No check recorded a duration: there is nothing to chart.",
    "timeline": "No check recorded a start time: there is no timeline to draw.",
    "failures_by_category": "No check failed: there is nothing to chart by category.",
}
CHART_ALT = {
    "durations": "Duration of each check, coloured by status, with its SLA marked",
    "timeline": "Timeline of the run: every check as a bar on one time axis, phases as lanes",
    "failures_by_category": "Failing checks by category",
}
_CHART_CAPTIONS = {
    "durations": "**How long each check took**: one bar per check, coloured by status; the black tick is its SLA "
                 "(slower than that is *degraded*); a ✕ marks a check stopped by its deadline.",
    "timeline": "**Timeline of the run**: every check from its start to its end; the shaded lanes are the phases, "
                "which run in parallel. The slowest check is outlined.",
    "failures_by_category": "**Failures by category**: how many checks each category hit, and which.",
}


def _figure(run: Run, name: str) -> Any:
    if name == "durations":
        return charts.durations_chart(run.records)
    if name == "timeline":
        return charts.timeline_chart(run.records, run.started_at)
    if name == "failures_by_category":
        return charts.failures_chart(run.records)
    raise ValueError(f"unknown chart {name!r}; known: {sorted(CHART_NOTES)}")


def chart(run: Run, name: str) -> Any:
    """Draw chart ``name``, save it to ``charts/<name>.png`` and return what a notebook displays:
    the PNG (an ``IPython.display.Image``) or a Markdown note saying why there is nothing to draw."""
    from IPython.display import Image, Markdown

    path = charts.cached_png(run.dir, name, lambda: _figure(run, name))
    if path is None:
        return Markdown(f"*{CHART_NOTES[name]}*")
    return Image(filename=str(path), metadata={"alt": CHART_ALT[name]})


def _charts_to_show(run: Run) -> list[str]:
    """The appendix charts that say something: the timeline only for checks the kit timed itself (a JUnit
    file's times are the suite's), the categories only when there are two or more."""
    names = ["durations"]
    if any(r.phase != "triage" for r in run.records):
        names.append("timeline")
    if len({c for cause in run.root_causes for c in cause.categories}) > 1:
        names.append("failures_by_category")
    return names if run.records else []


def appendix_chart_items(run: Run) -> list[Any]:
    """The appendix's charts with their captions, then one chart per distinct pattern of the WebSocket
    sessions that worked; only what there is to draw (a run without records gets a note)."""
    from IPython.display import Markdown

    if not run.records:
        return [Markdown(f"*{CHART_NOTES['durations']}*")]
    out: list[Any] = []
    for name in _charts_to_show(run):
        out += [Markdown(_CHART_CAPTIONS[name]), chart(run, name)]
    worked = charts.passing_session_patterns(run.frames, run.records)
    if worked:
        out.append(Markdown("**The WebSocket sessions that worked**, one per distinct pattern: ▶ sent by the client, "
                            "● received from the server, ✕ a close; the dotted line is where the check ended."))
    for n, (keys, frames) in enumerate(worked, 1):
        key = keys[0]
        record = next((r for r in run.records if (r.phase, r.check) == (key.phase, key.check)), None)
        image = _session_image(run, record, key.session, f"worked_{n}", f"WebSocket frames of {key.check}'s session") \
            if record is not None else None
        if image is not None:
            out.append(image)
            same = list(dict.fromkeys(k.check for k in keys[1:]))
            if same:
                out.append(Markdown(f"*The same pattern: {', '.join(_code(c) for c in same)} "
                                    f"({_plural(len(keys) - 1, 'session')}).*"))
    return out


def draw_sessions_ahead(run_dir: str | Path, phase: str) -> int:
    """Draw, once every check of ``phase`` has ended (its rows and frames are final), the session charts the
    report will show for it: the representative session of each failure pattern and the first session of each
    pattern that worked (``charts/session_<phase>_<check>_<n>.png``, the files the report and the phase
    notebooks share). ``netra-nb run`` has the report's kernel do it while other phases still wait on the
    platform. Returns how many it drew (charts drawn already are not drawn again)."""
    run = load_run(run_dir)
    records = [r for r in run.records if r.phase == phase]
    frames = [f for f in run.frames if f.get("phase") == phase]
    keys = [charts.SessionKey(r.phase, r.check, session)
            for cause in root_causes(records, frames) for g in cause.groups if g.representative is not None
            for r, session in [g.representative]]
    keys += [ks[0] for ks, _ in charts.passing_session_patterns(frames, records)]
    drawn = 0
    by_check = {(r.phase, r.check): r for r in records}
    for key in dict.fromkeys(keys):
        if (run.dir / "charts" / f"{key.name}.png").is_file():
            continue
        drawn += _session_png(run, by_check.get((key.phase, key.check)), key.session) is not None
    return drawn


def draw_charts_ahead(run_dir: str | Path) -> int:
    """Draw the run-wide charts of :func:`chart` once every check of the run has ended (they depend on the
    rows and the run's start only), while the phase notebooks still draw their own. Returns how many."""
    run = load_run(run_dir)
    return sum(charts.cached_png(run.dir, name, lambda name=name: _figure(run, name)) is not None for name in CHART_ALT)


_TIMING = ("connect_s", "tls_s", "ws_open_s", "ttfb_s", "first_event_s", "duration_s")


def evidence_table(run: Run | Sequence[Record]) -> pd.DataFrame:
    """Per check: bytes on the wire, the timing breakdown and the server's identifiers."""
    records = run.records if isinstance(run, Run) else list(run)
    rows = sorted(records, key=lambda r: (phase_rank(r.phase), r.started_at or ""))
    cols = ["phase", "check", "status", "bytes_sent", "bytes_received", *_TIMING, "connection_id", "server_run_id",
            "findings"]
    return pd.DataFrame(
        [{"phase": r.phase, "check": r.check, "status": r.status, "bytes_sent": r.bytes_sent,
          "bytes_received": r.bytes_received, **{k: _num(getattr(r, k)) for k in _TIMING},
          "connection_id": redact(r.connection_id) or "", "server_run_id": redact(r.server_run_id) or "",
          "findings": ", ".join(r.findings)} for r in rows], columns=cols)


_EVIDENCE_HEADERS = {"bytes_sent": "bytes sent", "bytes_received": "bytes received", "connect_s": "connect s",
                     "tls_s": "TLS s", "ws_open_s": "ws open s", "ttfb_s": "first byte s",
                     "first_event_s": "first event s", "duration_s": "total s", "connection_id": "connection id",
                     "server_run_id": "server run id"}


def evidence_html(run: Run | Sequence[Record]) -> str:
    """:func:`evidence_table` as HTML, headers in words so the table wraps to the page."""
    df = evidence_table(run).reset_index(drop=True).rename(columns=_EVIDENCE_HEADERS)
    fmt = {_EVIDENCE_HEADERS[k]: (lambda v: "" if v is None or v != v else f"{v:.3f}") for k in _TIMING}
    fmt.update({_EVIDENCE_HEADERS[k]: (lambda v: f"{int(v):,}") for k in ("bytes_sent", "bytes_received")})
    return '<div style="overflow-x: auto">' + _styled_html(df, formats=fmt) + "</div>"


def _wire_totals(records: Sequence[Record]) -> tuple[int, int]:
    """Bytes sent and received by the run's checks, a fleet's once: its checks judge the same sessions."""
    sent = received = 0
    fleets: dict[str, tuple[int, int]] = {}
    for r in records:
        if _group(r) == "fleet":
            s, v = fleets.get(r.phase, (0, 0))
            fleets[r.phase] = (max(s, r.bytes_sent or 0), max(v, r.bytes_received or 0))
        else:
            sent, received = sent + (r.bytes_sent or 0), received + (r.bytes_received or 0)
    return sent + sum(s for s, _ in fleets.values()), received + sum(v for _, v in fleets.values())


def evidence_markdown(run: Run) -> str:
    """The plain statements: honesty findings, passing checks without bytes, or that none of these
    happened (and, for a triage-only run, that the kit measured nothing itself)."""
    rs = run.records
    lines: list[str] = []
    flagged = [(r, c) for r in rs for c in _honesty_codes(r)]
    for c in dict.fromkeys(c for _, c in flagged):
        hit = [r for r, code in flagged if code == c]
        k = next((k for k, cause in enumerate(run.root_causes, 1) if c in cause.categories), 0)
        lines.append(f"- ‼ {_code(c)} — {_md(category_info(c).title)}: {_names(hit, 3)}" + (f" (root cause {k})." if k else "."))
    measured = [r for r in rs if r.phase != "triage" and r.status != "skip"]
    empty = [r for r in measured if r.status in PASSING and not r.bytes_received]
    if empty:
        lines.append(f"- ‼ **Defect: {_names(empty)} passed but received 0 bytes from the network**: a pass without "
                     "network input proves nothing.")
    if not measured and rs:
        lines.append("- No check of this run was measured on the wire by the kit (only triage records): its "
                     "statements rest on the test suite's own output.")
    elif not lines and measured:
        sent, received = _wire_totals(measured)
        lines.append(f"- ✔ Every passing check received bytes from the platform ({sent:,} bytes sent and {received:,} "
                     "received by the run); none reported a mock or a canned stand-in.")
    ids = [r for r in rs if r.connection_id or r.server_run_id]
    if ids:
        lines.append(f"- Identifiers only the server hands out came back for {_plural(len(ids), 'check')}, e.g. "
                     + "; ".join(f"{_code(r.check)}: " + ", ".join(
                         x for x in (f"connection {_code(r.connection_id)}" if r.connection_id else "",
                                     f"run {_code(r.server_run_id)}" if r.server_run_id else "") if x)
                         for r in ids[:3]) + ".")
    if any(r.phase == "triage" for r in rs):
        lines.append("- Triage records come from JUnit XML, which carries no byte counts: the kit can judge them "
                     "only by their times and texts.")
    return "\n".join(lines)


# -- 6. against the previous run ---------------------------------------------------------------

_STAMP = re.compile(r"^(\d{8}T\d{6})Z?")


def _run_time(path: Path) -> datetime:
    meta, _ = _read_json(path / "run.json")
    t = parse_time(meta.get("started_at"))
    if t:
        return t
    m = _STAMP.match(path.name)
    if m:
        return datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
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
    stamped = sorted((n for n in names if _STAMP.match(n)), reverse=True)
    for name in stamped:
        t = datetime.strptime(_STAMP.match(name).group(1), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
        if (t < this or (t == this and name < run_dir.name)) and (run_dir.parent / name / "results.jsonl").is_file():
            best: tuple[datetime, str] | None = (t, name)
            break
    else:
        best = None
    for name in names:  # unstamped folders: their run time decides
        if _STAMP.match(name) or not (run_dir.parent / name / "results.jsonl").is_file():
            continue
        t = _run_time(run_dir.parent / name)
        if (t < this or (t == this and name < run_dir.name)) and (best is None or (t, name) > best):
            best = (t, name)
    return run_dir.parent / best[1] if best else None


@dataclass
class Comparison:
    previous: Path | None
    previous_run: Run | None = None
    newly_failing: list[tuple[Record, Record]] = field(default_factory=list)  # (before, now)
    fixed: list[tuple[Record, Record]] = field(default_factory=list)
    slower: list[tuple[Record, Record]] = field(default_factory=list)
    still_failing: list[tuple[Record, Record]] = field(default_factory=list)
    new_checks: list[Record] = field(default_factory=list)
    gone_checks: list[Record] = field(default_factory=list)
    ratio: float = 1.5  # "markedly slower": more than ratio× and min_delta_s slower
    min_delta_s: float = 0.2


def _keyed(records: Iterable[Record]) -> dict[tuple[str, str, int], Record]:
    out: dict[tuple[str, str, int], Record] = {}
    seen: dict[tuple[str, str], int] = {}
    for r in records:
        n = seen.get((r.phase, r.check), 0)
        seen[(r.phase, r.check)] = n + 1
        out[(r.phase, r.check, n)] = r
    return out


def compare(run: Run, previous: Path | None = None, *, ratio: float = 1.5, min_delta_s: float = 0.2) -> Comparison:
    """Checks newly failing, fixed, markedly slower (> ``ratio``× and > ``min_delta_s`` slower) than in the
    previous run of the environment (found by :func:`previous_run` unless given)."""
    previous = previous if previous is not None else previous_run(run.dir)
    if previous is None:
        return Comparison(None, ratio=ratio, min_delta_s=min_delta_s)
    prev = load_run(previous)
    out = Comparison(previous, prev, ratio=ratio, min_delta_s=min_delta_s)
    now, before = _keyed(run.records), _keyed(prev.records)
    failing = ("fail", "error")
    for key, r in now.items():
        b = before.get(key)
        if b is None:
            out.new_checks.append(r)
            continue
        if b.status in PASSING and r.status in failing:
            out.newly_failing.append((b, r))
        elif b.status in failing and r.status in PASSING:
            out.fixed.append((b, r))
        elif b.status in failing and r.status in failing:
            out.still_failing.append((b, r))
        d_now, d_before = _num(r.duration_s), _num(b.duration_s)
        if d_now is not None and d_before is not None and d_now > d_before * ratio and d_now - d_before > min_delta_s:
            out.slower.append((b, r))
    out.gone_checks = [b for key, b in before.items() if key not in now]
    return out


def comparison_markdown(run: Run, comparison: Comparison | None = None) -> str:
    c = comparison or compare(run)
    if c.previous is None:
        return (f"There is no earlier run of {_code(run.env)} in {_code(str(run.dir.parent))} to compare with "
                "(no older run folder with a results.jsonl).")
    prev = c.previous_run
    assert prev is not None
    gp = prev.golden_path
    lines = [f"Compared with the previous {_code(run.env)} run {_code(c.previous.name)} "
             f"(started {_when(prev.started_at)}, {_counts_text(prev.records)}; golden path then: "
             f"{'working' if gp.working else 'not working' + (f', blocked by {_code(gp.blocked_by)}' if gp.blocked_by else '')}).",
             ""]

    def section(title: str, pairs: list[tuple[Record, Record]], fmt: Any) -> None:
        lines.append(f"**{title} ({len(pairs)})**" + (":" if pairs else ": none."))
        lines.append("")
        lines.extend(f"- {fmt(b, r)}" for b, r in pairs)
        if pairs:
            lines.append("")

    section("Newly failing", c.newly_failing,
            lambda b, r: f"{_code(r.check)} ({r.phase}): {b.status} → **{r.status}** {_code(r.category)} — {_md(r.message)}")
    section("Fixed", c.fixed,
            lambda b, r: f"{_code(r.check)} ({r.phase}): {b.status} {_code(b.category)} → **{r.status}**")
    section(f"Markedly slower (more than {c.ratio:g}× and {c.min_delta_s:g} s)", c.slower,
            lambda b, r: f"{_code(r.check)} ({r.phase}): {_secs(b.duration_s)} → **{_secs(r.duration_s)}** "
                         f"({(_num(r.duration_s) or 0) / max(_num(b.duration_s) or 0, 1e-9):.1f}×)")
    if c.still_failing:
        changed = [(b, r) for b, r in c.still_failing if b.category != r.category]
        lines.append(f"Still failing: {len(c.still_failing)} check(s)"
                     + (", of which with a different category: " + ", ".join(
                         f"{_code(r.check)} {_code(b.category)} → {_code(r.category)}" for b, r in changed)
                        if changed else ", each with the same category as before") + ".")
        lines.append("")
    if c.new_checks:
        lines.append("Not in the previous run: " + ", ".join(_code(r.check) for r in c.new_checks[:20]) + ".")
    if c.gone_checks:
        lines.append("In the previous run but not in this one: " + ", ".join(_code(r.check) for r in c.gone_checks[:20]) + ".")
    return "\n".join(lines).rstrip() + "\n"


# -- summary.md ----------------------------------------------------------------------------------

def _results_lines(run: Run) -> list[str]:
    """summary.md's results: the failures counted by root cause and pattern (their root cause names them),
    then the skipped and passing checks by name."""
    lines = []
    for k, cause in enumerate(run.root_causes, 1):
        rs = cause.records
        who = _code(rs[0].check) if len(rs) == 1 else _plural(len(rs), "check")
        lines.append(f"- {'‼' if cause.honesty else '✘'} {who} ({', '.join(_code(c) for c in cause.categories)}): "
                     f"root cause {k}")
    skipped = [r for r in run.records if r.status == "skip"]
    if skipped:
        lines.append(f"- ⊘ {len(skipped)} skipped: {_names(skipped)}")
    ok = [r for r in run.records if r.status in PASSING and not r.findings]
    if ok:
        lines.append(f"- ✔ {len(ok)} passed: " + ", ".join(
            f"{_code(r.check)} {_secs(r.duration_s)}" + (" (slower than its SLA)" if r.status == "degraded" else "")
            for r in sorted(ok, key=lambda r: (phase_rank(r.phase), r.started_at or ""))))
    return lines or ["No check recorded a result."]


def summary_markdown(run: Run, summary: Mapping[str, Any] | None = None) -> str:
    """``summary.md``: the report's first screen (verdict, facts, "In short"), its root causes, the results
    named once each, and the evidence of real execution — the seed report's story without its repetition."""
    if summary:
        run.summary_json = {**run.summary_json, **dict(summary)}
    gp = run.golden_path
    lines = [f"# {'✔' if gp.working else '✘'} {_md(gp.headline)}", "", f"Netra run report. {_facts(run)}", ""]
    lines += _overview(run)
    if run.root_causes:
        lines += ["## Root causes", "", diagnosis_markdown(run, level=3, after_in_short=True, compact=True), ""]
    lines += ["## Results", ""] + _results_lines(run) + [""]
    lines += ["## Evidence of real execution", "", evidence_markdown(run), ""]
    return str(redact("\n".join(lines).rstrip() + "\n"))


def write_summary_md(run_dir: str | Path, records: Sequence[Record] | None = None,
                     summary: Mapping[str, Any] | None = None,
                     frames: Sequence[dict[str, Any]] | None = None) -> Path:
    """Write ``run_dir/summary.md`` from ``records`` and ``frames`` (read from the folder when None)
    and the ``summary.json`` dict; return its path."""
    run = load_run(run_dir, frames)
    if records is not None:
        run.records = list(records)
    path = run.dir / "summary.md"
    path.write_text(summary_markdown(run, summary), encoding="utf-8")
    return path


# -- the executed report ---------------------------------------------------------------------------

def notebook_path() -> Path:
    import netra_nb

    return Path(netra_nb.__file__).resolve().parent.parent / "notebooks" / NOTEBOOKS["report"]


# The lab template without the <script src> tags that fetch require.js, MathJax and Mermaid from a CDN:
# the report must open with no network access.
_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<style>
body { max-width: 1200px; margin: 0 auto; }
.jp-RenderedHTMLCommon table { font-size: 12.5px; }
.jp-RenderedHTMLCommon h1 { font-size: 1.9em; line-height: 1.25; }
.jp-RenderedImage img { max-width: 100%; height: auto; }
.jp-RenderedMarkdown .highlight pre { background: #f6f8fa; border-left: 3px solid #b0bec5; padding: 6px 10px;
  white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12px; margin: 2px 0 16px 0; }
</style>{% endblock extra_css %}
"""
_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>.*?</script\s*>", re.I | re.S)
_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>", re.I)
_REMOTE_IMPORT = re.compile(r"<script\b[^>]*>(?:(?!</script).)*?import\(\s*[\"']https?://.*?</script\s*>", re.I | re.S)


def _alt_texts(page: str, nb: Any) -> str:
    """Give each embedded image the alt text its output carries (``metadata.alt``), matched by its data."""
    alts: dict[str, str] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = (out.get("data") or {}).get("image/png")
            meta = out.get("metadata") or {}
            alt = (meta.get("image/png") or {}).get("alt") or meta.get("alt")
            if data and alt:
                alts["".join(data.split())[:200]] = str(alt)
    if not alts:
        return page

    def fix(m: re.Match[str]) -> str:
        tag = m.group(0)
        src = re.search(r'src="data:image/png;base64,([^"]+)"', tag)
        alt = alts.get("".join(src.group(1).split())[:200]) if src else None
        if not alt:
            return tag
        return re.sub(r'\balt="[^"]*"', lambda _: f'alt="{html.escape(alt)}"', tag)

    return re.sub(r"<img\b[^>]*>", fix, page)


def _color_icons(page: str) -> str:
    """Colour the status symbols in the page's text (never inside a tag, the title, a style or a script)."""
    pattern = re.compile("[" + "".join(ICON_COLORS) + "]")
    parts = re.split(r"(<title.*?</title>|<style.*?</style>|<script.*?</script>|<[^>]*>)", page, flags=re.S)
    for i, part in enumerate(parts):
        if i % 2 == 0 and part:
            parts[i] = pattern.sub(lambda m: f'<span style="color:{ICON_COLORS[m.group(0)]};font-weight:bold">'
                                             f"{m.group(0)}</span>", part)
    return "".join(parts)


@functools.lru_cache(maxsize=1)
def _html_exporter() -> Any:
    """The one HTML exporter of this process: building it compiles nbconvert's templates (half a second),
    which later exports reuse."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"netra_offline.html.j2": _OFFLINE_TEMPLATE})])
    exporter.template_file = "netra_offline.html.j2"
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    exporter.exclude_anchor_links = True
    exporter.embed_images = True
    # nbconvert warns about images without alt text and then fills a placeholder; _alt_texts puts ours.
    exporter.log = logging.getLogger("netra_nb.report.nbconvert")
    exporter.log.setLevel(logging.ERROR)
    return exporter


def prepare_export() -> None:
    """Import nbconvert and compile the report page's templates now (the runner calls this while the
    checks run, so that the export after the report costs only the rendering)."""
    import nbformat

    _html_exporter().from_notebook_node(nbformat.v4.new_notebook(), resources={"metadata": {"name": ""}})


def export_html(notebook: Any, html_path: str | Path, *, title: str = "Netra run report") -> Path:
    """Export an executed notebook node to a self-contained, offline HTML page without code cells."""
    import nbformat

    nb = nbformat.from_dict(notebook) if not isinstance(notebook, nbformat.NotebookNode) else notebook
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a copy: the stored report.ipynb keeps everything
    # Cells tagged "hide-in-report" speak to the engineer in JupyterLab, not to the page's reader.
    nb.cells = [c for c in nb.cells if "hide-in-report" not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            # Warnings on stderr belong in report.ipynb, not in the page for the incident review.
            cell["outputs"] = [o for o in cell.get("outputs", [])
                               if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    body, _ = _html_exporter().from_notebook_node(nb, resources={"metadata": {"name": title}})
    body = _alt_texts(body, nb)
    body = _REMOTE_IMPORT.sub("", _REMOTE_LINK.sub("", _REMOTE_SCRIPT.sub("", body)))
    body = _color_icons(redact_keeping_images(body))
    path = Path(html_path)
    path.write_text(body, encoding="utf-8")
    return path


def export_report(run_dir: str | Path, notebook: Any) -> Path:
    """Export the executed report notebook of ``run_dir`` to ``run_dir/report.html``; return its path."""
    run_dir = Path(run_dir)
    return export_html(notebook, run_dir / "report.html", title=page_title(load_run(run_dir)))


def build_report(run_dir: str | Path, *, timeout: float = 300) -> Path | None:
    """Execute the report notebook for ``run_dir`` into ``run_dir/report.ipynb`` (in a kernel of its
    own) and export ``run_dir/report.html``; return the HTML's path.

    ``timeout`` is the limit in seconds for the whole notebook. When the notebook raises or runs out
    of time, ``report.ipynb`` is kept (with the error) and None is returned. (``netra-nb run``
    executes the same notebook in a kernel it started with the phases: :mod:`netra_nb.runner`.)
    """
    import time

    import nbformat

    from .engine import run_notebook

    run_dir = Path(run_dir).resolve()
    out_nb = run_dir / "report.ipynb"
    result = run_notebook(notebook_path(), out_nb, {"run_dir": str(run_dir)}, time.monotonic() + timeout,
                          run_dir / "kernels.log")
    if result["status"] != "ok":
        return None
    return export_report(run_dir, nbformat.read(str(out_nb), as_version=4))
