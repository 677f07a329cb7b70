"""The one place for the kit's fixed facts: its phases, its groups of checks, its notebooks, and how a
status looks.

Pure data, imported by everything above it (checks, runner, diagnosis, charts, report, notebooks); it
imports nothing of the kit. The checks themselves are declared where their code is, with
:func:`netra_nb.checks.check` (name, phase, kind, group, title, why): the decorator refuses a group
this module does not name.

========================  ==============================================================================
fact                      derived from it
========================  ==============================================================================
:data:`PHASES`            ``runner.PHASE_NOTEBOOKS`` (which notebook runs a phase), ``checks.PHASE_TITLES``,
                          ``diagnosis.PHASE_ORDER`` / ``phase_rank`` (the order of a run and of its report)
:data:`GROUPS`            ``checks.GROUPS`` (a check's group), the report's *In short* lines and their order
:data:`NOTEBOOKS`         the report's, history's and triage's notebook files (:func:`notebooks_dir`)
:data:`STATUSES`          the charts' colours, the report's icons and row colours, the notebooks' marks,
                          the order of a results table (failures first)
========================  ==============================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Phase", "PHASES", "RUN_PHASES", "PHASE_NOTEBOOKS", "PHASE_TITLES", "PHASE_ORDER", "phase_rank",
           "GROUPS", "GROUP_OF_KIND", "NOTEBOOKS", "notebooks_dir", "Status", "STATUSES", "STATUS_ORDER", "STATUS_COLORS",
           "STATUS_ICON", "STATUS_MARK", "ROW_COLORS", "ICON_COLORS", "FLAGGED_ICON"]


@dataclass(frozen=True)
class Phase:
    key: str
    title: str  # for people
    notebook: str | None  # the notebook under notebooks/ that runs it (None: a run does not execute it)


#: Every phase, in the order a run executes and a report tells them. ``triage`` holds the records of a
#: pytest JUnit report (``netra-nb triage``); a run does not execute it.
PHASES: dict[str, Phase] = {p.key: p for p in (
    Phase("connectivity", "Connectivity", "00_connectivity.ipynb"),
    Phase("agent_pipeline", "Agent pipeline", "01_agent_pipeline.ipynb"),
    Phase("orchestration", "Orchestration", "02_orchestration.ipynb"),
    Phase("triage", "Triage (pytest JUnit)", None),
)}
#: The phases a run executes (``netra-nb run --phase``), each with its notebook.
PHASE_NOTEBOOKS: dict[str, str] = {k: p.notebook for k, p in PHASES.items() if p.notebook}
RUN_PHASES: tuple[str, ...] = tuple(PHASE_NOTEBOOKS)
PHASE_TITLES: dict[str, str] = {k: p.title for k, p in PHASES.items()}
PHASE_ORDER: tuple[str, ...] = tuple(PHASES)


def phase_rank(phase: str | None) -> int:
    """Where a phase stands in the run's order (unknown phases last)."""
    return PHASE_ORDER.index(phase) if phase in PHASE_ORDER else len(PHASE_ORDER)


#: What a check exercises, named for people, in the order the report's *In short* tells them (what a
#: request needs first comes first).
GROUPS: dict[str, str] = {"auth": "Authentication", "http": "HTTP API", "websocket": "WebSocket",
                          "agent_run": "Agent run", "fleet": "Orchestration fleet"}
#: A check's group when it names none: from its kind.
GROUP_OF_KIND: dict[str, str] = {"http": "http", "ws": "websocket", "agent": "agent_run"}

#: The notebooks that are not a phase's, under notebooks/.
NOTEBOOKS: dict[str, str] = {"report": "90_run_report.ipynb", "history": "91_history.ipynb",
                             "triage": "92_pytest_triage.ipynb"}


def notebooks_dir() -> Path:
    """Where the notebooks are (``notebooks/`` beside the package): the phases', the report's, history's, triage's."""
    return Path(__file__).resolve().parent.parent / "notebooks"


@dataclass(frozen=True)
class Status:
    key: str
    order: int  # a results table's order: failures first
    color: str  # charts, and the icon in the HTML report
    icon: str  # the report (a symbol every common font has: it reads the same without an emoji font)
    mark: str  # a notebook's progress lines and tables (emoji)
    row: str  # a results table row's background in the report


STATUSES: dict[str, Status] = {s.key: s for s in (
    Status("fail", 0, "#c62828", "✘", "❌", "#fdecea"),
    Status("error", 1, "#6a1b9a", "✖", "⚠️", "#f3e5f5"),
    Status("degraded", 2, "#ef8f00", "⚠", "🐢", "#fff4e0"),
    Status("skip", 3, "#9e9e9e", "⊘", "⏭️", "#f5f5f5"),
    Status("pass", 4, "#2e7d32", "✔", "✅", "#ffffff"),
)}
STATUS_ORDER: dict[str, int] = {k: s.order for k, s in STATUSES.items()}
#: In the order of a chart's legend: pass first.
STATUS_COLORS: dict[str, str] = {k: STATUSES[k].color for k in ("pass", "degraded", "fail", "error", "skip")}
STATUS_ICON: dict[str, str] = {k: STATUSES[k].icon for k in ("pass", "degraded", "fail", "error", "skip")}
STATUS_MARK: dict[str, str] = {k: s.mark for k, s in STATUSES.items()}
ROW_COLORS: dict[str, str] = {k: s.row for k, s in STATUSES.items()}
#: A passing check with findings against it (the report's "‼").
FLAGGED_ICON, FLAGGED_COLOR = "‼", "#e65100"
ICON_COLORS: dict[str, str] = {**{s.icon: s.color for s in STATUSES.values()}, FLAGGED_ICON: FLAGGED_COLOR}
