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

The report is built from modules of one concept each, and this module (what the notebook imports) re-exports
them: :mod:`netra_nb.runfolder` (reading a run folder, the runs around it), :mod:`netra_nb.narrative` (the
headline, the root causes and ``summary.md`` in words), :mod:`netra_nb.tables` (the results and evidence tables),
:mod:`netra_nb.comparison` (against the previous run), :mod:`netra_nb.export` (executing and exporting the
report); the charts' display items and the root causes' session charts are here.

Every duration quoted is a record's ``duration_s``, and the run's is its start to its end. Entry
points for the runner: :func:`write_summary_md`, :func:`export_report` and :func:`build_report`, and for its
report kernel while the phases run, :func:`draw_sessions_ahead` and :func:`draw_charts_ahead`. Every reader
tolerates a partial run folder (no ``run.json`` ``finished_at``, a torn last line, no parquet).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import charts
from .diagnosis import root_causes
from .records import Record
from .text import _code, _names, _plural
# The report's API, one module per concept (re-exported: the notebook and the runner import them from here).
from .comparison import Comparison, compare, comparison_markdown  # noqa: F401
from .export import build_report, export_html, export_report, notebook_path, prepare_export  # noqa: F401
from .narrative import (_cause_head, _cause_tail, diagnosis_markdown, golden_path_markdown,  # noqa: F401
                        headline_markdown, in_short, page_title, summary_markdown, unfinished_notes, write_summary_md)
from .runfolder import Run, latest_run, load_run, previous_run  # noqa: F401
from .tables import (agent_result, evidence_html, evidence_markdown, evidence_table, results_html,  # noqa: F401
                     results_table)

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
