"""The incident told in words, from a run's diagnosis: the headline and *In short*, one section per
root cause, and ``summary.md`` (the same story for a terminal or a CI log).

What failed and why is decided by :mod:`netra_nb.diagnosis`; this module only tells it: each failure
once, pointed at its root cause, with the evidence and next steps the diagnosis found."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from .checks import group_of
from .diagnosis import PatternGroup, RootCause, counts, end_time, is_agent_run
from .records import PASSING, Record
from .redact import redact
from .registry import GROUPS, PHASE_TITLES, STATUS_ICON, phase_rank
from .runfolder import Run, load_run
from .tables import agent_result, evidence_markdown
from .text import _code, _lower_first, _md, _names, _plural, _prose, _secs, _when

_FAILING = ("fail", "error")


def _counts_text(records: Sequence[Record]) -> str:
    by_status, _ = counts(records)
    parts = [f"{by_status[s]} {s}" for s in ("pass", "degraded", "fail", "error", "skip") if by_status.get(s)]
    return f"{_plural(len(records), 'check')}: " + ", ".join(parts) if records else "no check recorded"


# -- 1. headline ---------------------------------------------------------------------------------

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
        groups.setdefault(group_of(r.phase, r.check) or r.phase, []).append(r)
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


def replay_note(run: Run) -> str | None:
    """When the server said it was a replay (``netra-nb serve --replay``), of which recorded run: a line."""
    from .wire import replay_of
    info = replay_of(run.dir)
    if not info:
        return None
    return (f"**↻ A replay.** Every answer came from the recording of run {_code(info.get('run') or '?')} "
            f"(environment **{_md(info.get('env') or '?')}**, started {_when(info.get('started_at'))}), "
            f"served back by `netra-nb serve --replay`, as the server said on each answer: the verdicts are "
            f"the recorded platform's, not the platform's today.")


def _overview(run: Run) -> list[str]:
    """What did not finish, then "In short" (Markdown lines)."""
    note = replay_note(run)
    lines: list[str] = [note, ""] if note else []
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
    shown = next((r for r in bare if group_of(r.phase, r.check) != "fleet"), bare[0] if bare else None)
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
