"""This run against the previous run of the same environment: newly failing, fixed, slower."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .records import PASSING, Record
from .runfolder import Run, load_run, previous_run
from .narrative import _counts_text
from .text import _code, _md, _num, _secs, _when


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
