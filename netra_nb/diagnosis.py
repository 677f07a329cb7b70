"""The run's diagnosis over its records (pure): the golden-path verdict and one finding per category.

The golden path is the one question the kit answers: did an agent actually start and return a
result? It is "working" only when an agent run delivered ``agent_started`` and
``agent_completed`` with a result, which is what a passing agent-run record means.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .categories import SEVERITY, category_info
from .records import PASSING, Record, field_of
from .redact import clip

__all__ = ["GoldenPath", "Finding", "golden_path", "findings", "counts", "is_agent_run", "AGENT_RUN_CHECKS",
           "PHASE_ORDER", "phase_rank"]

#: The checks whose pass means a real agent run delivered the five events and a result.
AGENT_RUN_CHECKS = frozenset({"agent_run", "concurrent_agent_runs"})
PHASE_ORDER = ("connectivity", "agent_pipeline", "orchestration", "triage")
_TRIAGE_AGENT = re.compile(r"agent.*(execution|pipeline|run|event)|golden_path", re.I)


_get = field_of


def is_agent_run(r: Record | Mapping[str, Any]) -> bool:
    check = str(_get(r, "check", ""))
    if check in AGENT_RUN_CHECKS:
        return True
    return _get(r, "phase") == "triage" and bool(_TRIAGE_AGENT.search(check))


@dataclass(frozen=True)
class GoldenPath:
    working: bool
    blocked_by: str | None
    phase: str | None
    sentence: str
    evidence: str = ""

    def to_summary(self) -> dict[str, Any]:
        return {"working": self.working, "blocked_by": self.blocked_by, "phase": self.phase}


@dataclass
class Finding:
    category: str
    title: str
    checks: list[str]
    phases: list[str]
    evidence: list[str]
    causes: tuple[str, ...]
    next_steps: tuple[str, ...]
    blocks_golden_path: bool = False
    records: list[Any] = field(default_factory=list)


def _rank(category: str) -> int:
    return SEVERITY.index(category) if category in SEVERITY else len(SEVERITY)


def phase_rank(phase: str | None) -> int:
    """Where a phase stands in the run's order (unknown phases last)."""
    return PHASE_ORDER.index(phase) if phase in PHASE_ORDER else len(PHASE_ORDER)


def _failing(records: Iterable[Any]) -> list[Any]:
    return [r for r in records if _get(r, "status") in ("fail", "error")]


def golden_path(records: Iterable[Record | Mapping[str, Any]]) -> GoldenPath:
    """The verdict: working, or the category that blocks it and the phase where it first shows."""
    records = list(records)
    runs = [r for r in records if is_agent_run(r)]
    good = sorted((r for r in runs if _get(r, "status") in PASSING and _get(r, "category") == "ok"
                   and not _get(r, "findings")), key=lambda r: _get(r, "check") != "agent_run")
    if good:
        r = good[0]
        if _get(r, "phase") == "triage":
            # A pytest pass is the suite's claim; triage has no wire evidence of its own.
            return GoldenPath(True, None, None,
                              f"The pytest run claims the golden path works: {_get(r, 'check')} passed with no sign "
                              f"of a mock or a fake timing (the kit saw no wire evidence of its own).",
                              _get(r, "detail", "") or "")
        return GoldenPath(True, None, None,
                          f"The golden path works: a real agent run started and returned a result "
                          f"({_get(r, 'message', '')}).", _get(r, "detail", "") or "")
    failing = _failing(records)
    blocking_run = sorted((r for r in runs if r in failing or _get(r, "findings")),
                          key=lambda r: (_rank(_get(r, "category")), _get(r, "started_at") or ""))
    if blocking_run:
        category = _get(blocking_run[0], "category")
    elif failing:
        category = min((_get(r, "category") for r in failing), key=_rank)
    elif runs:
        category = _get(runs[0], "category") if _get(runs[0], "category") != "ok" else "unknown"
    else:
        return GoldenPath(False, None, None,
                          "The golden path was not exercised: no agent run was attempted in this run.")
    # The phase where that category first shows.
    hit = [r for r in failing if _get(r, "category") == category] or blocking_run
    first = min(hit, key=lambda r: (phase_rank(_get(r, "phase")), _get(r, "started_at") or "")) if hit else None
    phase = _get(first, "phase") if first is not None else None
    info = category_info(category)
    where = f", first seen in the {phase} phase (check {_get(first, 'check')})" if first is not None else ""
    sentence = f"The golden path is NOT working: {info.title[0].lower() + info.title[1:]}{where}."
    evidence = _get(blocking_run[0], "message", "") if blocking_run else (_get(first, "message", "") if first else "")
    return GoldenPath(False, category, phase, sentence, evidence)


def counts(records: Iterable[Any]) -> tuple[dict[str, int], dict[str, int]]:
    """(count by status, count by category) as summary.json reports them."""
    records = list(records)
    by_status = Counter(_get(r, "status") for r in records)
    by_category = Counter(_get(r, "category") for r in records)
    return dict(by_status), dict(by_category)


def findings(records: Iterable[Record | Mapping[str, Any]]) -> list[Finding]:
    """One finding per failing category, the golden path's blocking category first, then by severity."""
    records = list(records)
    gp = golden_path(records)
    groups: dict[str, list[Any]] = {}
    for r in records:
        cats = []
        if _get(r, "status") in ("fail", "error"):
            cats.append(_get(r, "category"))
        cats.extend(f for f in (_get(r, "findings") or []) if f not in cats)
        for c in cats:
            groups.setdefault(c, []).append(r)
    out = []
    for category, rs in groups.items():
        info = category_info(category)
        evidence = []
        for r in rs[:6]:
            text = f"{_get(r, 'phase')}/{_get(r, 'check')}: {_get(r, 'message', '')}"
            detail = (_get(r, "detail") or "").strip()
            if detail:
                text += f" — {clip(detail, 300)}"
            evidence.append(text)
        out.append(Finding(
            category=category,
            title=info.title,
            checks=[str(_get(r, "check")) for r in rs],
            phases=sorted({str(_get(r, "phase")) for r in rs}, key=phase_rank),
            evidence=evidence,
            causes=info.causes,
            next_steps=info.next_steps,
            blocks_golden_path=category == gp.blocked_by,
            records=rs,
        ))
    out.sort(key=lambda f: (not f.blocks_golden_path, _rank(f.category)))
    return out
