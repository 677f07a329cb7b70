"""The run report: what ``notebooks/90_run_report.ipynb`` shows, ``summary.md``, and the HTML export.

Everything the report says is computed here, from a run folder, by functions that tests call
directly; the notebook only calls them and displays the result, in this order:

1. :func:`headline_markdown` — the golden-path verdict, the run's facts, what works and what failed;
2. :func:`results_table` / :func:`results_html` — every check, failures first;
3. :func:`chart` / :func:`session_charts` — durations, timeline, WebSocket sessions, failures
   (drawn by :mod:`netra_nb.charts`, saved to ``charts/<name>.png``);
4. :func:`diagnosis_markdown` — per category: the checks it hit, the evidence, causes, next steps;
5. :func:`evidence_markdown` / :func:`evidence_html` — proof of real execution (bytes, timings, ids);
6. :func:`comparison_markdown` — against the previous run of the same environment.

Entry points for the runner: :func:`write_summary_md`, :func:`export_report` and :func:`build_report`. Every reader
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
from .charts import _num, _phase_rank  # one definition of each, shared with the charts
from .categories import category_info
from .diagnosis import Finding, GoldenPath, counts, findings, golden_path, is_agent_run
from .frames import AGENT_EVENTS, normalize, result_of
from .records import PASSING, Record, load_records, read_jsonl
from .redact import redact

__all__ = [
    "Run",
    "load_run",
    "latest_run",
    "headline_markdown",
    "key_facts",
    "components",
    "unfinished_notes",
    "results_table",
    "results_html",
    "chart",
    "CHART_NOTES",
    "session_charts",
    "draw_sessions_ahead",
    "draw_charts_ahead",
    "diagnosis_markdown",
    "golden_path_markdown",
    "recommendations_markdown",
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

HONESTY = ("fake_fast", "no_network_io", "mock_fallback")
# Symbols every common font has (DejaVu, Liberation, the system fonts of Windows and macOS): the report must
# read the same on a machine without an emoji font. The HTML export colours them (see _color_icons).
STATUS_ICON = {"pass": "✔", "degraded": "⚠", "fail": "✘", "error": "✖", "skip": "⊘"}
_ICON_COLORS = {"✔": "#2e7d32", "⚠": "#ef8f00", "✘": "#c62828", "✖": "#6a1b9a", "⊘": "#757575", "‼": "#e65100"}
_STATUS_ORDER = {"fail": 0, "error": 1, "degraded": 2, "skip": 3, "pass": 4}
_PHASE_TITLES = {"connectivity": "Connectivity", "agent_pipeline": "Agent pipeline",
                 "orchestration": "Orchestration", "triage": "Triage (pytest JUnit)"}
# The seed report's component groups, in the platform's words.
_GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("Health and HTTP API", frozenset({"health", "api_health", "service_discovery"})),
    ("Authentication", frozenset({"auth_token"})),
    ("WebSocket connection", frozenset({"websocket_connect", "websocket_ping"})),
    ("Agent discovery and configuration", frozenset({"agent_discovery", "agent_configuration", "agent_status",
                                                     "agent_execute"})),
    ("WebSocket agent run", frozenset({"agent_run"})),
    ("WebSocket error handling", frozenset({"ws_invalid_json", "ws_empty_request"})),
)
_WS_CHECKS = frozenset({"websocket_connect", "websocket_ping", "agent_run", "ws_invalid_json", "ws_empty_request"})
_HTTP_CHECKS = frozenset({"health", "api_health", "service_discovery", "agent_discovery", "agent_configuration",
                          "agent_status", "agent_execute"})


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


def _block(text: Any, limit: int = 1200) -> str:
    """A fenced block quoting evidence verbatim (truncated)."""
    s = str(redact(str(text or ""))).strip().replace("```", "'''")
    if len(s) > limit:
        s = s[:limit] + f" … ({len(s) - limit} more characters)"
    return f"```text\n{s}\n```"


def _secs(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "–"
    return f"{v:.3f} s" if v < 10 else f"{v:.1f} s"


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s else s


def _when(value: Any) -> str:
    t = charts.parse_time(value)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if t else "an unknown time"


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
    def findings(self) -> list[Finding]:
        return findings(self.records)

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
        starts = [r.started_at for r in self.records if charts.parse_time(r.started_at)]
        return self.meta.get("started_at") or self.summary_json.get("started_at") or (min(starts) if starts else None)

    @property
    def finished_at(self) -> str | None:
        return self.meta.get("finished_at")

    @property
    def duration_s(self) -> float | None:
        start, end = charts.parse_time(self.started_at), charts.parse_time(self.finished_at)
        if start and end:
            return (end - start).total_seconds()
        if _num(self.summary_json.get("duration_s")) is not None:
            return _num(self.summary_json.get("duration_s"))
        spans = [(charts.parse_time(r.started_at), _num(r.duration_s) or 0.0) for r in self.records]
        spans = [(t, d) for t, d in spans if t]
        if not spans:
            return None
        first = min([t for t, _ in spans] + ([start] if start else []))
        return max((t - first).total_seconds() + d for t, d in spans)

    @property
    def phases(self) -> list[str]:
        listed = [str(p) for p in (self.meta.get("phases") or [])]
        seen = sorted({r.phase for r in self.records} - set(listed), key=_phase_rank)
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


# -- 1. headline -------------------------------------------------------------------------------

def _counts_text(records: Sequence[Record]) -> str:
    by_status, _ = counts(records)
    parts = [f"{by_status[s]} {s}" for s in ("pass", "degraded", "fail", "error", "skip") if by_status.get(s)]
    noun = "check" if len(records) == 1 else "checks"
    return f"{len(records)} {noun}: " + ", ".join(parts) if records else "no check recorded"


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


def _group_of(r: Record) -> str:
    if r.phase == "orchestration":
        return "Orchestration (several users at once)"
    if r.phase == "triage":
        return "Triage (pytest JUnit)"
    for name, checks in _GROUPS:
        if r.check in checks:
            return name
    return _PHASE_TITLES.get(r.phase, r.phase)


def _item(r: Record, *, why: bool) -> str:
    icon = "‼" if r.findings and r.status in PASSING else STATUS_ICON.get(r.status, "•")
    text = f"{icon} {_code(r.check)}"
    if r.status == "degraded":
        text += f" (slower than its SLA: {_secs(r.duration_s)}" + (f" > {_secs(r.sla_s)}" if r.sla_s else "") + ")"
    elif why and r.status in ("fail", "error"):
        text += f" ({_code(r.category)}: {_md(r.message)})"
    elif why and r.status == "skip":
        text += f" ({_md(r.message)})" if r.message else ""
    if r.findings:
        text += " (" + ", ".join(_code(f) for f in r.findings) + ")"
    return text


def components(records: Sequence[Record]) -> dict[str, list[str]]:
    """``{"working": [...], "failed": [...], "skipped": [...]}``: one Markdown line per component group,
    like the seed report's "Working Components"."""
    out: dict[str, list[str]] = {"working": [], "failed": [], "skipped": []}
    groups: dict[str, list[Record]] = {}
    for r in sorted(records, key=lambda r: (_phase_rank(r.phase), r.started_at or "")):
        groups.setdefault(_group_of(r), []).append(r)
    for name, rs in groups.items():
        ok = [r for r in rs if r.status in PASSING and not r.findings]
        bad = [r for r in rs if r.status in ("fail", "error") or (r.status in PASSING and r.findings)]
        skipped = [r for r in rs if r.status == "skip"]
        if ok:
            out["working"].append(f"**{name}**: " + ", ".join(_item(r, why=False) for r in ok))
        if bad:
            out["failed"].append(f"**{name}**: " + ", ".join(_item(r, why=True) for r in bad))
        if skipped:
            out["skipped"].append(f"**{name}**: " + ", ".join(_item(r, why=True) for r in skipped))
    return out


def _is_ws(r: Record) -> bool:
    return (r.check in _WS_CHECKS or r.ws_open_s is not None or r.ws_close_code is not None
            or r.check.startswith(("ws_", "websocket")) or (r.phase == "orchestration" and bool(r.events_seen)))


def _is_http(r: Record) -> bool:
    """An HTTP API check (authentication is told apart; skipped checks say nothing)."""
    return (not _is_ws(r) and r.phase != "triage" and r.status != "skip" and r.check != "auth_token"
            and (r.check in _HTTP_CHECKS or r.http_status is not None))


def _close_words(r: Record) -> str:
    if r.ws_close_code is None:
        return ""
    who = {"server": "the server", "client": "the client"}.get(r.ws_closed_by or "", "nobody (no close frame)")
    reason = f" {_md('(' + r.ws_close_reason + ')')}" if r.ws_close_reason else ""
    return f"closed by {who} with {r.ws_close_code}{reason}"


def _agent_events(events: Iterable[str]) -> list[str]:
    return [e for e in events if e in AGENT_EVENTS or e in ("agent_error", "agent_failed")]


def _frame_story(run: Run, r: Record, limit: int = 8) -> str:
    """The first frames of a check's session in words: ``0.012 s ← welcome · 0.013 s ✖ close 1011 …``."""
    fs = run.frames_of(r.phase, r.check, 0)
    if not fs:
        return ""
    parts = []
    for f in fs[:limit]:
        t = f"{_num(f.get('t_s')) or 0.0:.3f} s"
        if f.get("direction") == "close" or f.get("event") == "close":
            code, reason, who = charts.parse_close(f, r)
            parts.append(f"{t} × close {code if code is not None else '?'} {reason}".rstrip()
                         + (f" by {who}" if who else ""))
        elif f.get("direction") == "sent":
            parts.append(f"{t} → {f.get('type') or f.get('event')}")
        else:
            ev = f.get("event") or "other"
            parts.append(f"{t} ← {f.get('type') if ev in ('other', 'invalid') else ev}")
    if len(fs) > limit:
        parts.append(f"… (+{len(fs) - limit} frames)")
    return " · ".join(_md(p) for p in parts)


def _welcomed_then_closed(run: Run, r: Record) -> bool:
    """A welcome frame arrived and the next thing that came from the server was the close."""
    fs = [f for f in run.frames_of(r.phase, r.check, 0) if f.get("direction") != "sent"]
    for a, b in zip(fs, fs[1:]):
        if a.get("event") == "welcome" and (b.get("direction") == "close" or b.get("event") == "close"):
            return True
    return False


def key_facts(run: Run) -> list[str]:
    """The incident in a few sentences, from the records: what works, where it breaks, what it means."""
    rs = run.records
    facts: list[str] = []
    gp = run.golden_path
    auth = [r for r in rs if r.check == "auth_token"]
    if auth:
        a = auth[0]
        facts.append("Authentication works: a token was obtained (" + _code("auth_token") + " passed)."
                     if a.status in PASSING else
                     f"Authentication fails: {_code('auth_token')} — {_code(a.category)}: {_md(a.message)}.")
    def bad_(r: Record) -> bool:
        return r.status in ("fail", "error") or bool(r.findings)

    http = [r for r in rs if _is_http(r)]
    if http:
        bad = [r for r in http if bad_(r)]
        if not bad:
            facts.append(f"The HTTP API works: {len(http)} of {len(http)} HTTP checks pass "
                         f"({', '.join(_code(r.check) for r in http[:8])}).")
        else:
            facts.append(f"{len(bad)} of {len(http)} HTTP checks fail or cannot be trusted: " + "; ".join(
                f"{_code(r.check)} {_code(r.category if r.status not in PASSING else ', '.join(r.findings))}"
                for r in bad[:6]) + ".")
    ws = [r for r in rs if _is_ws(r) and r.phase != "triage" and r.status != "skip"]
    if ws:
        bad = [r for r in ws if r.status in ("fail", "error")]
        opened = [r for r in ws if r.ws_open_s is not None]
        if not bad:
            facts.append(f"The WebSocket works: {len(ws)} of {len(ws)} WebSocket checks pass.")
        else:
            cats = {r.category for r in bad}
            first = bad[0]
            text = ""
            if opened:
                text = f"The WebSocket connection opens (upgrade in {_secs(min(r.ws_open_s for r in opened))})"
                if _welcomed_then_closed(run, first):
                    text += ", the server's welcome arrives, and then the connection is "
                else:
                    text += ", and then the connection is "
                closes = [r for r in bad if r.ws_close_code is not None]
                if closes:
                    c = closes[0]
                    text += _close_words(c)
                    if not _agent_events(c.events_seen):
                        text += " before any agent event"
                    text += "."
                else:
                    text = text.replace(", and then the connection is ", ", but ")
                    text += f"{_md(_lower_first(category_info(first.category).title))}."
            else:
                text = f"The WebSocket does not open: {_code(first.category)} — {_md(first.message)}."
            if len(cats) == 1:
                text += (f" Every WebSocket check fails the same way ({len(bad)} of {len(ws)}: {_code(first.category)})."
                         if len(bad) == len(ws) else
                         f" {len(bad)} of {len(ws)} WebSocket checks fail the same way ({_code(first.category)}).")
            else:
                text += f" {len(bad)} of {len(ws)} WebSocket checks fail (" + ", ".join(_code(c) for c in sorted(cats)) + ")."
            facts.append(text)
    runs = [r for r in rs if is_agent_run(r)]
    if gp.working:
        good = next((r for r in runs if r.status in PASSING and not r.findings), None)
        if good is not None:
            facts.append(f"An agent run completed: {_code(good.check)} received "
                         f"{', '.join(_code(e) for e in good.events_seen) or 'its events'} in {_secs(good.duration_s)}"
                         + (f" (first agent event after {_secs(good.first_event_s)})" if good.first_event_s else "") + ".")
            result = agent_result(run.frames, good.check)
            if result:
                facts.append(f"The agent's result: {_md(result)}")
    elif not runs:
        notebooks = run.meta.get("notebooks") or {}
        stopped = [p for p in ("agent_pipeline", "orchestration") if p in run.phases
                   and ((notebooks.get(p) or {}).get("status") in ("failed", "not_run")
                        or not any(r.phase == p for r in rs))]
        if stopped:
            facts.append("No agent run was recorded because " + " and ".join(
                f"phase {_code(p)} did not finish" for p in stopped) + ": the golden path is unknown, not proven broken.")
    else:
        r = runs[0]
        seen = _agent_events(r.events_seen)
        facts.append(f"The agent run ({_code(r.check)}, {_secs(r.duration_s)}) "
                     + (f"saw {', '.join(_code(e) for e in seen)}" if seen else "saw no agent event")
                     + (f"; missing: {', '.join(_code(e) for e in r.events_missing)}" if r.events_missing else "") + ".")
    honest = [(r, c) for r in rs for c in _honesty_codes(r)]
    if honest:
        facts.append("Some results cannot be trusted: " + "; ".join(
            f"{_code(r.check)} {_code(c)}" for r, c in honest[:6]) + " (see *Evidence of real execution*).")
    if not gp.working and gp.blocked_by:
        info = category_info(gp.blocked_by)
        if info.causes:
            facts.append(f"So the fault is most likely: {_md(_lower_first(info.causes[0]))}.")
        if info.next_steps:
            facts.append(f"Next: {_md(_lower_first(info.next_steps[0]))}.")
    return facts


def headline_markdown(run: Run) -> str:
    """The report's first screen: the verdict as a heading, the run's facts, the story, components."""
    gp = run.golden_path
    icon = "✔" if gp.working else "✘"
    lines = [f"# {icon} {_md(gp.sentence)}", ""]
    facts = [f"Environment **{_md(run.env)}**", f"run {_code(run.run_id)}", f"started {_when(run.started_at)}"]
    if run.duration_s is not None:
        facts.append(f"took {_secs(run.duration_s)}")
    facts.append(f"**{_counts_text(run.records)}**")
    lines += [" · ".join(facts), ""]
    lines += overview_lines(run, skipped=True)
    return "\n".join(lines)


def overview_lines(run: Run, *, skipped: bool) -> list[str]:
    """What did not finish, the key facts, and the seed report's working/failed lists (Markdown lines)."""
    lines: list[str] = []
    notes = unfinished_notes(run)
    if notes:
        lines += ["**⚠ Not everything finished:**", ""] + [f"- {n}" for n in notes] + [""]
    facts = key_facts(run)
    if facts:
        lines += ["**In short:**", ""] + [f"- {f}" for f in facts] + [""]
    comp = components(run.records)
    lines += ["### Working components", ""] + ([f"- {c}" for c in comp["working"]] or ["- none"]) + [""]
    lines += ["### Failed", ""] + ([f"- {c}" for c in comp["failed"]] or ["- nothing failed"]) + [""]
    if skipped and comp["skipped"]:
        lines += ["### Skipped", ""] + [f"- {c}" for c in comp["skipped"]] + [""]
    return lines


# -- 2. results --------------------------------------------------------------------------------

def agent_result(frames: Sequence[dict[str, Any]], check: str, limit: int = 300) -> str | None:
    """The result an agent run's ``agent_completed`` frame carried, as a short text (None if absent)."""
    for f in frames:
        if f.get("check") == check and f.get("event") == "agent_completed" and f.get("direction") == "received":
            text = str(f.get("text") or "")
            value = result_of(normalize(text))
            if value is None:
                return redact(text[:limit]) or None  # truncated evidence: show it as it is
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            return redact(shown)[:limit]
    return None


def _honesty_codes(r: Record) -> list[str]:
    """The honesty categories a record carries (its category and its findings), each once."""
    return [c for c in dict.fromkeys([r.category, *r.findings]) if c in HONESTY]


def results_table(run: Run | Sequence[Record]) -> pd.DataFrame:
    """Every check: phase, check, status, category, duration, message (and honesty findings) — failures
    first, then passes flagged by a finding, then by phase."""
    records = run.records if isinstance(run, Run) else list(run)
    rows = sorted(records, key=lambda r: (min(_STATUS_ORDER.get(r.status, 5), 1.5) if r.findings else _STATUS_ORDER.get(r.status, 5),
                                          _phase_rank(r.phase), r.started_at or ""))
    return pd.DataFrame(
        [{"phase": r.phase, "check": r.check, "status": r.status, "category": r.category,
          "duration_s": _num(r.duration_s), "message": str(redact(r.message or "")),
          "findings": ", ".join(r.findings)} for r in rows],
        columns=["phase", "check", "status", "category", "duration_s", "message", "findings"])


_ROW_COLORS = {"fail": "#fdecea", "error": "#f3e5f5", "degraded": "#fff4e0", "skip": "#f5f5f5", "pass": "#ffffff"}
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
    colors = [_ROW_COLORS.get(s, "#ffffff") for s in statuses]
    styler = styler.apply(lambda row: [f"background-color: {colors[row.name]}"] * len(row), axis=1)
    return str(redact(styler.to_html()))


def results_html(run: Run | Sequence[Record]) -> str:
    """:func:`results_table` as readable HTML: rows tinted by status, durations in seconds."""
    df = results_table(run).reset_index(drop=True)
    df["message"] = [m if len(m) <= 220 else m[:220] + " …" for m in df["message"]]
    df["category"] = [c if not f else f"{c} ‼ {f}" for c, f in zip(df["category"], df["findings"])]
    df = df.drop(columns=["findings"])
    return _styled_html(df, formats={"duration_s": lambda v: "" if v is None or v != v else f"{v:.3f}"})


# -- 3. charts ---------------------------------------------------------------------------------

CHART_NOTES = {
    "durations": "No check recorded a duration: there is nothing to chart.",
    "timeline": "No check recorded a start time: there is no timeline to draw.",
    "failures_by_category": "No check failed: there is nothing to chart by category.",
    "sessions": "No WebSocket frame was recorded in this run (no events.jsonl, or no WebSocket check ran).",
}


CHART_ALT = {
    "durations": "Duration of each check, coloured by status, with its SLA and timeout marked",
    "timeline": "Timeline of the run: every check as a bar on one time axis, phases as lanes",
    "failures_by_category": "Failing checks by category",
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
    """Draw chart ``name``, save it to ``charts/<name>.png`` and return what the notebook displays:
    the PNG (an ``IPython.display.Image``) or a Markdown note saying why there is nothing to draw."""
    from IPython.display import Image, Markdown

    path = charts.cached_png(run.dir, name, lambda: _figure(run, name))
    if path is None:
        return Markdown(f"*{CHART_NOTES[name]}*")
    return Image(filename=str(path), metadata={"alt": CHART_ALT[name]})


def session_charts(run: Run) -> list[Any]:
    """The display objects for the WebSocket sessions: a note for checks with many sessions, then one PNG
    per drawn session (``charts/session_<phase>_<check>_<n>.png``, drawn here unless
    :func:`draw_sessions_ahead` drew it already)."""
    from IPython.display import Image, Markdown

    picked = charts.pick_sessions(run.frames, run.records)
    if not picked:
        return [Markdown(f"*{CHART_NOTES['sessions']}*")]
    out: list[Any] = []
    n_sessions = charts.session_count(run.frames)
    many = {pc: n for pc, n in n_sessions.items() if n > 3}
    if many:
        out.append(Markdown("Checks with many sessions are shown by a few representative ones (the first abnormal "
                            "session, the longest and a typical one): " + "; ".join(
                                f"{_code(c)} {n} sessions" for (_, c), n in many.items()) + "."))
    by_key = {(r.phase, r.check): r for r in run.records}
    for key, fs in picked:
        total = n_sessions.get((key.phase, key.check), 1)
        path = charts.session_png(run.dir, key, fs, by_key.get((key.phase, key.check)), sessions_of_check=total)
        if path is not None:
            caption = f"{key.phase} · {key.check}: session {key.session + 1} of {total}" if total > 1 else ""
            alt = f"WebSocket frames of {caption or key.name.replace('session_', '').replace('_', ' ')} on a time axis"
            out.append(Image(filename=str(path), metadata={"alt": alt}))
    return out


def draw_sessions_ahead(run_dir: str | Path, phase: str) -> int:
    """Draw the session charts of ``phase`` that :func:`session_charts` will show and its notebook does not
    (the phase notebooks draw the first session of each of their WebSocket checks themselves: the
    sessions of a check with several, the fleet's), once every check of the phase has ended (its rows and
    frames are final) and before the report runs: ``netra-nb run`` has the report's kernel do it while
    other phases still wait on the platform. Returns how many were drawn."""
    run = load_run(run_dir)
    records = [r for r in run.records if r.phase == phase]
    frames = [f for f in run.frames if f.get("phase") == phase]
    n_sessions = charts.session_count(frames)
    by_key = {(r.phase, r.check): r for r in records}
    drawn = 0
    for key, fs in charts.pick_sessions(frames, records):
        total = n_sessions.get((key.phase, key.check), 1)
        if total > 1:
            drawn += charts.session_png(run.dir, key, fs, by_key.get((key.phase, key.check)),
                                        sessions_of_check=total) is not None
    return drawn


def draw_charts_ahead(run_dir: str | Path) -> int:
    """Draw the run-wide charts of :func:`chart` once every check of the run has ended (they depend on the
    rows and the run's start only), while the phase notebooks still draw their own. Returns how many."""
    run = load_run(run_dir)
    return sum(charts.cached_png(run.dir, name, lambda name=name: _figure(run, name)) is not None for name in CHART_ALT)


# -- 4. diagnosis ------------------------------------------------------------------------------

def _evidence_lines(run: Run, f: Finding, limit: int = 4) -> list[str]:
    lines: list[str] = []
    for r in f.records[:limit]:
        head = f"**{_code(f'{r.phase}/{r.check}')}** ({r.status}, {_secs(r.duration_s)}): {_md(r.message)}"
        extra = []
        if r.http_status is not None:
            extra.append(f"upgrade answered HTTP {r.http_status}" if _is_ws(r) else f"HTTP {r.http_status}")
        if r.ws_close_code is not None:
            extra.append(_close_words(r))
        if r.events_seen:
            extra.append("events seen: " + ", ".join(_code(e) for e in r.events_seen))
        if r.events_missing:
            extra.append("missing: " + ", ".join(_code(e) for e in r.events_missing))
        story = _frame_story(run, r)
        if story:
            extra.append(f"frames: {story}")
        lines.append("  \n".join([head] + extra))
        if (r.detail or "").strip():
            lines.append(_block(r.detail, limit=800))
        lines.append("")
    if len(f.records) > limit:
        lines.append(f"*… and {len(f.records) - limit} more: " + ", ".join(_code(r.check) for r in f.records[limit:limit + 12])
                     + ("…" if len(f.records) > limit + 12 else "") + "*")
        lines.append("")
    return lines


def diagnosis_markdown(run: Run, *, level: int = 3) -> str:
    """For each category present, the golden path's blocking one first: title, checks, evidence quoted
    from the records, likely causes, next steps."""
    fs = run.findings
    h = "#" * level
    if not fs:
        slow = [r for r in run.records if r.status == "degraded"]
        text = "Nothing failed: there is no category to diagnose."
        if slow:
            text += " Slower than their SLA: " + ", ".join(f"{_code(r.check)} ({_secs(r.duration_s)})" for r in slow) + "."
        return text
    lines: list[str] = []
    for i, f in enumerate(fs, 1):
        icon = "‼" if f.category in HONESTY else "✘"
        lines += [f"{h} {i}. {icon} {_code(f.category)} — {_md(f.title)}", ""]
        if f.blocks_golden_path:
            lines += ["**This blocks the golden path.**", ""]
        uniq = list(dict.fromkeys(f.checks))
        lines += [f"Hit {len(f.records)} check(s) in {', '.join(_code(p) for p in f.phases)}: "
                  + ", ".join(_code(c) for c in uniq[:20]) + (" …" if len(uniq) > 20 else ""), ""]
        lines += ["**Evidence**", ""] + _evidence_lines(run, f)
        if f.causes:
            lines += ["**Likely causes**", ""] + [f"- {_md(c)}" for c in f.causes] + [""]
        if f.next_steps:
            lines += ["**Next steps**", ""] + [f"{n}. {_md(s)}" for n, s in enumerate(f.next_steps, 1)] + [""]
    return "\n".join(lines)


def golden_path_markdown(run: Run) -> str:
    """What the run means for the golden path: did an agent actually start and return a result?"""
    gp = run.golden_path
    runs = [r for r in run.records if is_agent_run(r)]
    lines = [f"**{_md(gp.sentence)}**", ""]
    for r in runs:
        seen = ", ".join(_code(e) for e in r.events_seen) or "none"
        missing = ", ".join(_code(e) for e in r.events_missing) or "none"
        lines.append(f"- {STATUS_ICON.get(r.status, '')} {_code(r.check)} ({r.phase}, {_secs(r.duration_s)}): "
                     f"{_md(r.message)} — agent events seen: {seen}; missing: {missing}.")
    if runs:
        lines.append("")
    if gp.working:
        lines.append("Users get an agent's answer: the request reaches an agent, its progress events are "
                     "delivered over the WebSocket and the result comes back.")
    elif gp.blocked_by:
        info = category_info(gp.blocked_by)
        lines += [f"Agent execution is **blocked by {_code(gp.blocked_by)}** ({_md(_lower_first(info.title))})"
                  + (f", first seen in the {_code(gp.phase)} phase" if gp.phase else "") + ". "
                  "Users cannot get an agent's answer: without the agent events over the WebSocket there is no "
                  "real-time progress and no result, which is the chat's whole value."]
    else:
        lines.append("No agent run was attempted, so this run says nothing about the golden path.")
    return "\n".join(lines)


def recommendations_markdown(run: Run) -> str:
    """The next steps, most urgent first: P0 for what blocks the golden path, P1 for the rest."""
    lines: list[str] = []
    for f in run.findings:
        prio = "P0" if f.blocks_golden_path else ("P1" if f.category not in HONESTY else "P1 (trust)")
        checks = ", ".join(_code(c) for c in list(dict.fromkeys(f.checks))[:6])
        lines.append(f"- **{prio} — {_md(f.title)}** ({_code(f.category)}; {checks})")
        for s in f.next_steps:
            lines.append(f"  - {_md(s)}")
    slow = [r for r in run.records if r.status == "degraded"]
    for r in slow:
        lines.append(f"- **P2 — {_code(r.check)} is slower than its SLA** ({_secs(r.duration_s)}"
                     + (f" > {_secs(r.sla_s)}" if r.sla_s else "") + "): watch it in the next runs.")
    notes = unfinished_notes(run)
    if any("did not finish" in n or "was not run" in n for n in notes):
        lines.append("- **Re-run the phases that did not finish** once the cause above is fixed; their checks "
                     "have no verdict in this run.")
    if not lines:
        lines.append("- No action needed: every check passed. Keep the run as the baseline for the next comparison.")
    return "\n".join(lines)


# -- 5. evidence of real execution ----------------------------------------------------------------

_TIMING = ("connect_s", "tls_s", "ws_open_s", "ttfb_s", "first_event_s", "duration_s")


def evidence_table(run: Run | Sequence[Record]) -> pd.DataFrame:
    """Per check: bytes on the wire, the timing breakdown and the server's identifiers."""
    records = run.records if isinstance(run, Run) else list(run)
    rows = sorted(records, key=lambda r: (_phase_rank(r.phase), r.started_at or ""))
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


def evidence_markdown(run: Run) -> str:
    """The plain statements: honesty findings, passing checks without bytes, or that none of these
    happened (and, for a triage-only run, that the kit measured nothing itself)."""
    rs = run.records
    lines: list[str] = []
    for r in rs:
        for c in _honesty_codes(r):
            lines.append(f"- ‼ **{_code(r.check)}** ({r.phase}, {r.status}): {_code(c)} — "
                         f"{_md(category_info(c).title)}. {_md(r.message)}")
    measured = [r for r in rs if r.phase != "triage" and r.status != "skip"]
    for r in measured:
        if r.status in PASSING and not r.bytes_received:
            lines.append(f"- ‼ **Defect: {_code(r.check)} passed but received 0 bytes from the network** — "
                         "a pass without network input proves nothing.")
    # A fast pass that exchanged bytes is real (loopback answers in milliseconds); fake_fast is for
    # claims without wire evidence, which triage judges.
    if not lines and not measured:
        lines.append("- No check of this run was measured on the wire by the kit (only triage records): its "
                     "statements rest on the test suite's own output.")
    elif not lines:
        passing = [r for r in measured if r.status in PASSING]
        if passing:
            sent = sum(r.bytes_sent or 0 for r in measured)
            received = sum(r.bytes_received or 0 for r in measured)
            fastest = min(passing, key=lambda r: _num(r.duration_s) or 0.0)
            lines.append(f"- ✔ Every passing check exchanged bytes with the platform ({sent:,} bytes sent and "
                         f"{received:,} received in all); the fastest, {_code(fastest.check)}, took "
                         f"{_secs(fastest.duration_s)} with its bytes on the wire.")
        lines.append("- ✔ No check reported a mock or canned stand-in, and no check passed without bytes received.")
    ids = [r for r in rs if r.connection_id or r.server_run_id]
    if ids:
        lines.append(f"- Server-provided identifiers came back for {len(ids)} check(s), e.g. "
                     + "; ".join(f"{_code(r.check)}: " + ", ".join(
                         x for x in (f"connection {_code(r.connection_id)}" if r.connection_id else "",
                                     f"run {_code(r.server_run_id)}" if r.server_run_id else "") if x)
                         for r in ids[:4]) + ".")
    if any(r.phase == "triage" for r in rs):
        lines.append("- Triage records come from JUnit XML, which carries no byte counts: the kit can judge them "
                     "only by their times and texts (the findings above).")
    return "\n".join(lines)


# -- 6. against the previous run ---------------------------------------------------------------

_STAMP = re.compile(r"^(\d{8}T\d{6})Z?")


def _run_time(path: Path) -> datetime:
    meta, _ = _read_json(path / "run.json")
    t = charts.parse_time(meta.get("started_at"))
    if t:
        return t
    m = _STAMP.match(path.name)
    if m:
        return datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
    starts = [charts.parse_time(d.get("started_at")) for d in read_jsonl(path / "results.jsonl")]
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

def summary_markdown(run: Run, summary: Mapping[str, Any] | None = None) -> str:
    """``summary.md``: the seed report's structure (summary, results, root cause analysis, impact on
    the golden path, recommendations), generated from the records and their diagnosis."""
    summary = dict(summary or {})
    gp = run.golden_path
    env = summary.get("env") or run.env
    run_id = summary.get("run_id") or run.run_id
    duration = _num(summary.get("duration_s"))
    duration = duration if duration is not None else run.duration_s
    state = ("golden path working" if gp.working else "golden path NOT working" if gp.blocked_by
             or any(is_agent_run(r) for r in run.records) else "golden path not exercised")
    lines = [f"# Netra {_md(env)} run {_code(run_id)}: {state}",
             "", "## Summary", "", f"**{'✔' if gp.working else '✘'} {_md(gp.sentence)}**", "",
             f"- **Environment**: {_md(env)}",
             f"- **Started**: {_when(summary.get('started_at') or run.started_at)}"
             + (f", took {_secs(duration)}" if duration is not None else ""),
             f"- **Checks**: {_counts_text(run.records)}"]
    if run.meta.get("fault"):
        lines.append(f"- **Fault profile**: {_code(run.meta.get('fault'))}")
    if run.meta.get("era"):
        lines.append(f"- **Era**: {_code(run.meta.get('era'))}")
    lines.append("")
    lines += overview_lines(run, skipped=False)

    lines += ["## Results", ""]
    by_phase: dict[str, list[Record]] = {}
    for r in sorted(run.records, key=lambda r: (_phase_rank(r.phase), r.started_at or "")):
        by_phase.setdefault(r.phase, []).append(r)
    for phase, rs in by_phase.items():
        lines += [f"### {_md(_PHASE_TITLES.get(phase, phase))} ({_counts_text(rs)})", ""]
        for r in sorted(rs, key=lambda r: _STATUS_ORDER.get(r.status, 5)):
            cat = f" {_code(r.category)}" if r.category != "ok" else ""
            lines.append(f"- {STATUS_ICON.get(r.status, '•')} {_code(r.check)} — {r.status}{cat}, "
                         f"{_secs(r.duration_s)}: {_md(r.message)}")
        lines.append("")
    if not run.records:
        lines += ["No check recorded a result.", ""]

    lines += ["## Root cause analysis", "", diagnosis_markdown(run, level=3), ""]
    lines += ["## Impact on the golden path", "", golden_path_markdown(run), ""]
    lines += ["## Recommendations", "", recommendations_markdown(run), ""]
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
    if summary:
        run.summary_json = dict(summary)
    path = run.dir / "summary.md"
    path.write_text(summary_markdown(run, summary), encoding="utf-8")
    return path


# -- the executed report ---------------------------------------------------------------------------

def notebook_path() -> Path:
    import netra_nb

    return Path(netra_nb.__file__).resolve().parent.parent / "notebooks" / "90_run_report.ipynb"


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
_DATA_URI = re.compile(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=\s]+")


def _redact_html(text: str) -> str:
    """Redact every part of the page but the embedded images (base64 is no secret, and must stay intact)."""
    out, pos = [], 0
    for m in _DATA_URI.finditer(text):
        out.append(redact(text[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(redact(text[pos:]))
    return "".join(out)


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
    """Colour the status symbols in the page's text (never inside a tag, a style or a script)."""
    pattern = re.compile("[" + "".join(_ICON_COLORS) + "]")
    parts = re.split(r"(<style.*?</style>|<script.*?</script>|<[^>]*>)", page, flags=re.S)
    for i, part in enumerate(parts):
        if i % 2 == 0 and part:
            parts[i] = pattern.sub(lambda m: f'<span style="color:{_ICON_COLORS[m.group(0)]};font-weight:bold">'
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
    body = _color_icons(_redact_html(body))
    path = Path(html_path)
    path.write_text(body, encoding="utf-8")
    return path


def export_report(run_dir: str | Path, notebook: Any) -> Path:
    """Export the executed report notebook of ``run_dir`` to ``run_dir/report.html``; return its path."""
    run_dir = Path(run_dir)
    meta, _ = _read_json(run_dir / "run.json")
    title = f"Netra {meta.get('env') or run_dir.parent.name} run {meta.get('run_id') or run_dir.name}: report"
    return export_html(notebook, run_dir / "report.html", title=str(redact(title)))


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
