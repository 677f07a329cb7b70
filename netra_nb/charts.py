"""The report's charts (matplotlib, no pyplot state): each function takes plain data and returns a
:class:`~matplotlib.figure.Figure`, or ``None`` when there is nothing to draw.

* :func:`durations_chart` — every check's wall time, coloured by status, its SLA marked (and its
  deadline, when the deadline stopped it); a log axis when fast and slow checks sit side by side;
* :func:`timeline_chart` — every check as a bar on the run's time axis, phases as lanes;
* :func:`session_chart` — one WebSocket session's frames on a time axis, the close marked;
* :func:`failures_chart` — failing checks by category.

:func:`passing_session_patterns` groups the sessions that worked by what they look like, so a
report draws each pattern once; :func:`save` writes a figure to ``charts/<name>.png``. Figures are
built with :class:`~matplotlib.figure.Figure` directly, so nothing is shown twice in a notebook and
nothing leaks between calls. Every label is placed inside its axes: the axis widens to fit it.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

# Figures are drawn on their own Agg canvas (new_figure): importing this module leaves pyplot's backend alone.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from .categories import category_info
from .diagnosis import findings, parse_close
from .records import PASSING, Record, field_of, parse_time
from .registry import STATUS_COLORS, phase_rank
from .text import _num

__all__ = [
    "STATUS_COLORS",
    "SessionKey",
    "durations_chart",
    "timeline_chart",
    "session_chart",
    "session_count",
    "passing_session_patterns",
    "failures_chart",
    "save",
    "safe_name",
    "new_figure",
    "cached_png",
    "session_png",
    "parse_time",
    "parse_close",
]

_AREA_COLORS = {
    "network": "#37474f", "http": "#1565c0", "ws_upgrade": "#00838f", "ws_session": "#c62828",
    "agent": "#ad1457", "honesty": "#ef6c00", "kit": "#6d4c41", "ok": "#2e7d32",
}
_MAX_ROWS = 60  # beyond this a per-check chart stops being readable
_BAD_EVENTS = ("error", "agent_error", "agent_failed", "invalid")


def new_figure(width: float, height: float) -> Figure:
    """A figure outside pyplot (a notebook shows it once, as the value it is) with a canvas that can measure
    text, which placing labels needs."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


_get = field_of


def save(fig: Figure | None, run_dir: str | Path, name: str, *, dpi: int = 110) -> Path | None:
    """Write ``fig`` to ``run_dir/charts/<name>.png`` (None for no figure); return the path.

    The file appears whole or not at all (written beside, then renamed): another process may be
    looking for it (:func:`session_png`)."""
    if fig is None:
        return None
    folder = Path(run_dir) / "charts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_name(name)}.png"
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    os.replace(tmp, path)
    return path


def cached_png(run_dir: str | Path, name: str, draw: Callable[[], Figure | None]) -> Path | None:
    """``charts/<name>.png``: drawn by ``draw`` the first time it is asked for in a run folder, read from
    the file after. For charts of data that no longer changes (a check that has ended, a run whose checks
    have all ended): whoever draws one first (the report kernel, ahead of the report, while the phase
    notebooks still run) draws it for everyone. ``netra-nb report`` clears ``charts/`` first."""
    path = Path(run_dir) / "charts" / f"{safe_name(name)}.png"
    if path.is_file():
        return path
    return save(draw(), run_dir, name)


def session_png(run_dir: str | Path, key: "SessionKey", frames: Sequence[Mapping[str, Any]],
                record: Record | Mapping[str, Any] | None, *, sessions_of_check: int = 1) -> Path | None:
    """One session's :func:`session_chart` as ``charts/<key.name>.png`` (see :func:`cached_png`)."""
    return cached_png(run_dir, key.name, lambda: session_chart(key, frames, record, sessions_of_check=sessions_of_check))


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "chart"


def _ordered(records: Iterable[Any]) -> list[Any]:
    return sorted(records, key=lambda r: (phase_rank(_get(r, "phase")), str(_get(r, "started_at") or "")))


def _status_legend(statuses: Iterable[str]) -> list[Any]:
    statuses = set(statuses)
    present = [s for s in STATUS_COLORS if s in statuses]
    return [Patch(color=STATUS_COLORS[s], label=s) for s in present]


def _limit_rows(records: list[Any]) -> tuple[list[Any], int]:
    """At most _MAX_ROWS records: every failure first, then the slowest."""
    if len(records) <= _MAX_ROWS:
        return records, len(records)
    failing = [r for r in records if _get(r, "status") in ("fail", "error")]
    rest = sorted((r for r in records if r not in failing), key=lambda r: -(_num(_get(r, "duration_s")) or 0))
    keep = set(map(id, (failing + rest)[:_MAX_ROWS]))
    return [r for r in records if id(r) in keep], len(records)


def _fit_labels(fig: Figure, ax: Any, labels: Sequence[tuple[Any, float, Sequence[float]]], *, log: bool,
                left: float) -> None:
    """Place each text label just right of its anchor (data x), past any marker it would cover, and widen
    the x axis until every label ends inside the axes. ``labels``: (text, anchor x, marker xs)."""
    renderer = fig.canvas.get_renderer()
    pad = 4.0  # pixels between a bar or a marker and its label
    for _ in range(4):
        box = ax.get_window_extent(renderer)
        lo, hi = ax.get_xlim()
        need = hi
        for text, anchor, markers in labels:
            x = max(anchor, left) if log else anchor
            start = ax.transData.transform((x, 0))[0] + pad
            width = text.get_window_extent(renderer).width
            for m in sorted(markers):
                mx = ax.transData.transform((m, 0))[0]
                if start - 2 * pad <= mx <= start + width + 2 * pad:
                    x, start = m, mx + 2 * pad  # the label goes past the marker, never under it
            text.set_x(ax.transData.inverted().transform((start, 0))[0])
            # The largest x limit that still leaves room for the label right of x: solved on the axis' scale.
            room = max(box.width - width - 3 * pad, box.width * 0.2) / box.width
            if log:
                need = max(need, lo * (max(x, lo) / lo) ** (1 / room))
            else:
                need = max(need, lo + (x - lo) / room)
        if need <= hi * (1 + 1e-9):
            return
        ax.set_xlim(lo, need)


# -- durations -------------------------------------------------------------------------------

def _stopped_by_deadline(r: Any) -> bool:
    """A failing check whose duration reached its deadline (``timeout_s``): the deadline ended it."""
    d, limit = _num(_get(r, "duration_s")), _num(_get(r, "timeout_s"))
    return bool(limit) and d is not None and _get(r, "status") in ("fail", "error") and d >= 0.95 * limit


def durations_chart(records: Sequence[Record | Mapping[str, Any]], *, title: str = "Duration of each check") -> Figure | None:
    """Each check's duration as a bar coloured by status, its value beside it, its SLA (|) marked, and a ✕ at
    its deadline when the deadline stopped it. A log axis when the slowest is 50× the fastest."""
    records = [r for r in _ordered(records) if _num(_get(r, "duration_s")) is not None]
    if not records:
        return None
    records, total = _limit_rows(records)
    durations = [max(_num(_get(r, "duration_s")) or 0.0, 0.0) for r in records]
    slas = [_num(_get(r, "sla_s")) for r in records]
    deadlines = [_num(_get(r, "timeout_s")) if _stopped_by_deadline(r) else None for r in records]
    positive = [d for d in durations + slas + deadlines if d and d > 0]
    log = bool(positive) and max(positive) / max(min(positive), 1e-3) > 50
    # On a log axis bars start at the power of ten below the fastest check (a 0 s check shows as empty).
    floor = 10 ** math.floor(math.log10(max(min(positive), 1e-3))) if log else 0.0
    phases = {_get(r, "phase") for r in records}

    n = len(records)
    fig = new_figure(10, 1.4 + 0.32 * n)
    ax = fig.subplots()
    ys = list(range(n))
    colors = [STATUS_COLORS.get(str(_get(r, "status")), "#607d8b") for r in records]
    ax.barh(ys, [max(d, floor) - floor for d in durations], left=floor, color=colors, height=0.65, zorder=2)
    labels = []
    for y, d, sla, deadline in zip(ys, durations, slas, deadlines):
        if sla:
            ax.plot([sla], [y], marker="|", markersize=14, markeredgewidth=2.2, color="black", zorder=5)
        if deadline:
            ax.plot([deadline], [y], marker="x", markersize=8, markeredgewidth=2, color="#b71c1c", zorder=5)
        text = ax.text(d, y, f"{d:.3f} s" if d < 1 else f"{d:.2f} s", va="center", fontsize=8, color="#333333", zorder=4,
                       in_layout=False)  # placed inside the axes after the layout, not around it
        labels.append((text, d, [m for m in (sla, deadline) if m]))
    ax.set_yticks(ys, [f"{_get(r, 'phase')} · {_get(r, 'check')}" if len(phases) > 1 else str(_get(r, "check"))
                       for r in records], fontsize=9)
    ax.invert_yaxis()
    xmax = max(positive) if positive else 1.0
    if log:
        ax.set_xscale("log")
        ax.set_xlim(floor, xmax * 1.5)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("seconds (log scale)")
    else:
        ax.set_xlim(0, xmax * 1.05)
        ax.set_xlabel("seconds")
    ax.grid(axis="x", color="#dddddd", zorder=0)
    ax.set_axisbelow(True)
    shown = "" if total == n else f" ({n} of {total} checks: every failure, then the slowest)"
    ax.set_title(f"{title}{shown}", loc="left", fontsize=11)
    handles = _status_legend(_get(r, "status") for r in records)
    if any(slas):
        handles.append(Line2D([], [], marker="|", markersize=12, markeredgewidth=2.2, color="black", ls="", label="SLA"))
    if any(deadlines):
        handles.append(Line2D([], [], marker="x", markersize=8, markeredgewidth=2, color="#b71c1c", ls="",
                              label="deadline reached"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    _fit_labels(fig, ax, labels, log=log, left=floor)
    return fig


# -- timeline --------------------------------------------------------------------------------

def timeline_chart(records: Sequence[Record | Mapping[str, Any]], run_started_at: str | None = None) -> Figure | None:
    """Every check as a bar on one time axis (seconds since the run started), grouped in phase lanes."""
    timed = [(r, parse_time(_get(r, "started_at"))) for r in records]
    timed = [(r, t) for r, t in timed if t is not None]
    if not timed:
        return None
    origin = parse_time(run_started_at) or min(t for _, t in timed)
    origin = min([origin] + [t for _, t in timed])
    items = sorted(((r, (t - origin).total_seconds(), max(_num(_get(r, "duration_s")) or 0.0, 0.0)) for r, t in timed),
                   key=lambda x: (phase_rank(_get(x[0], "phase")), str(_get(x[0], "phase")), x[1]))
    if len(items) > _MAX_ROWS:
        kept, _ = _limit_rows([r for r, _, _ in items])
        keep = set(map(id, kept))
        total = len(items)
        items = [x for x in items if id(x[0]) in keep]
    else:
        total = len(items)
    end = max(s + d for _, s, d in items) or 1.0
    first = min(s for _, s, _ in items)
    # Kernels take seconds to start: when the checks begin late, the axis starts just before the first one.
    left = first - (end - first) * 0.03 if first > (end - first) * 0.2 else 0.0
    span = (end - left) or 1.0
    n = len(items)
    fig = new_figure(10, 1.6 + 0.3 * n)
    ax = fig.subplots()
    slowest = max(items, key=lambda x: x[2])
    lanes: dict[str, list[int]] = {}
    for y, (r, start, dur) in enumerate(items):
        lanes.setdefault(str(_get(r, "phase")), []).append(y)
        color = STATUS_COLORS.get(str(_get(r, "status")), "#607d8b")
        width = max(dur, span * 0.004)  # a zero-length check still shows as a sliver
        edge = "black" if r is slowest[0] else "none"
        ax.barh(y, width, left=start, color=color, height=0.7, edgecolor=edge, linewidth=1.2, zorder=2)
    for i, (phase, ys) in enumerate(lanes.items()):
        if i % 2 == 0:
            ax.axhspan(min(ys) - 0.5, max(ys) + 0.5, color="#f1f3f6", zorder=0)
        ax.text(1.005, (min(ys) + max(ys)) / 2, phase, transform=ax.get_yaxis_transform(), va="center",
                ha="left", fontsize=9, fontweight="bold", color="#37474f")
    r, start, dur = slowest
    label = f"slowest: {_get(r, 'check')} ({dur:.2f} s)"
    if start + dur > left + span * 0.55 and dur > span * 0.3:  # a long bar near the end: write inside it
        ax.text(start + dur - span * 0.01, items.index(slowest), label, ha="right", va="center", fontsize=8,
                fontweight="bold", color="white", zorder=5)
    elif start + dur < left + span * 0.7:  # room on the right of the bar
        ax.annotate(label, xy=(start + dur, items.index(slowest)), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=8, fontweight="bold", zorder=5)
    else:  # on its left, so the label does not run into the phase names
        ax.annotate(label, xy=(start, items.index(slowest)), xytext=(-6, 0), textcoords="offset points",
                    ha="right", va="center", fontsize=8, fontweight="bold", zorder=5)
    ax.set_yticks(range(n), [str(_get(r, "check")) for r, _, _ in items], fontsize=8)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(left, end + span * 0.22)
    ax.set_xlabel("seconds since the run started"
                  + (f" (the first check began {first:.1f} s in, after its kernel started)" if left > 0 else ""))
    ax.grid(axis="x", color="#dddddd", zorder=0)
    ax.set_axisbelow(True)
    shown = "" if total == n else f" ({n} of {total} checks)"
    ax.set_title(f"Timeline of the run, phases as lanes{shown}", loc="left", fontsize=11)
    ax.legend(handles=_status_legend(_get(r, "status") for r, _, _ in items), loc="lower right",
              bbox_to_anchor=(1.0, 1.0), ncol=5, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


# -- WebSocket sessions ----------------------------------------------------------------------

@dataclass(frozen=True)
class SessionKey:
    phase: str
    check: str
    session: int

    @property
    def name(self) -> str:
        return safe_name(f"session_{self.phase}_{self.check}_{self.session}")


def _sessions(frames: Iterable[Mapping[str, Any]]) -> dict[SessionKey, list[Mapping[str, Any]]]:
    out: dict[SessionKey, list[Mapping[str, Any]]] = {}
    for f in frames:
        try:
            key = SessionKey(str(f.get("phase") or ""), str(f.get("check") or ""), int(f.get("session") or 0))
        except (TypeError, ValueError):
            continue
        out.setdefault(key, []).append(f)
    for fs in out.values():
        fs.sort(key=lambda f: (_num(f.get("t_s")) or 0.0, _num(f.get("seq")) or 0))
    return out


def session_count(frames: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """How many sessions each (phase, check) has in the frames."""
    out: dict[tuple[str, str], int] = {}
    for key in _sessions(frames):
        out[(key.phase, key.check)] = out.get((key.phase, key.check), 0) + 1
    return out


def _row_label(f: Mapping[str, Any]) -> str:
    """A frame's row: ``close``, ``→ <type the client sent>`` or ``← <event received>``."""
    direction = f.get("direction")
    if direction == "close" or f.get("event") == "close":
        return "close"
    if direction == "sent":
        sent = str(f.get("type") or f.get("event") or "?")
        return "→ invalid JSON" if sent.startswith("<non") else f"→ {sent}"
    event = str(f.get("event") or "other")
    if event in ("other", "invalid"):
        return f"← {f.get('type') or event}"
    return f"← {event}"


def passing_session_patterns(frames: Iterable[Mapping[str, Any]], records: Sequence[Record | Mapping[str, Any]]
                             ) -> list[tuple[list[SessionKey], list[Mapping[str, Any]]]]:
    """The sessions of passing checks grouped by what they look like (their rows in order and their close):
    per pattern, every session that has it (in the run's order) and the first one's frames."""
    passing = {(str(_get(r, "phase")), str(_get(r, "check"))): i for i, r in enumerate(_ordered(records))
               if _get(r, "status") in PASSING}
    groups: dict[tuple[Any, ...], tuple[list[SessionKey], list[Mapping[str, Any]]]] = {}
    for key, fs in sorted(_sessions(frames).items(), key=lambda kv: (passing.get((kv[0].phase, kv[0].check), 1 << 30),
                                                                    kv[0].session)):
        if (key.phase, key.check) not in passing:
            continue
        rows = tuple(dict.fromkeys(_row_label(f) for f in fs))
        closes = tuple(parse_close(f)[:2] for f in fs if f.get("direction") == "close")
        keys, _ = groups.setdefault(rows + closes, ([], fs))
        keys.append(key)
    return list(groups.values())


def session_chart(key: SessionKey, frames: Sequence[Mapping[str, Any]],
                  record: Record | Mapping[str, Any] | None = None, *, sessions_of_check: int = 1) -> Figure | None:
    """One session's frames on a time axis: one row per event type, sent (▶) vs received (●), the close (✖)
    annotated with its code, reason and who closed; the end of the check dotted. Error frames are red
    only when the check failed: an error frame a passing check asked for is the answer it expected."""
    if not frames:
        return None
    rows: list[str] = []
    for f in frames:
        label = _row_label(f)
        if label not in rows:
            rows.append(label)
    if "close" in rows:  # the close belongs at the bottom, where the eye ends
        rows.remove("close")
        rows.append("close")
    times = [_num(f.get("t_s")) or 0.0 for f in frames]
    duration = _num(_get(record, "duration_s")) if record is not None and sessions_of_check == 1 else None
    end = max(times + ([duration] if duration else [])) or 1.0
    failed = record is not None and _get(record, "status") in ("fail", "error")

    fig = new_figure(10, 1.25 + 0.36 * len(rows))
    ax = fig.subplots()
    close_note = None
    kinds: set[str] = set()
    for f, t in zip(frames, times):
        y = rows.index(_row_label(f))
        direction = f.get("direction")
        if direction == "sent":
            kinds.add("sent")
            ax.plot(t, y, marker=">", markersize=9, color="#1565c0", ls="", zorder=3)
        elif direction == "close" or f.get("event") == "close":
            code, reason, who = parse_close(f, record)
            normal = code in (1000, 1001) and who == "client"
            kinds.add("close")
            color = "#757575" if normal else "#c62828"
            ax.plot(t, y, marker="X", markersize=12, color=color, ls="", zorder=4)
            close_note = (t, y, f"close {code if code is not None else '?'}"
                                + (f" {reason}" if reason else "") + f" (by {who or 'nobody: no close frame'})"
                                + f" at {t:.3f} s", color)
        else:
            bad = failed and f.get("event") in _BAD_EVENTS
            kinds.add("error frame" if bad else "received")
            ax.plot(t, y, marker="o", markersize=8, color="#c62828" if bad else "#2e7d32", ls="", zorder=3)
    if close_note:
        t, y, text, color = close_note
        right = t > end * 0.6
        ax.annotate(text, xy=(t, y), xytext=(-10 if right else 10, 0), textcoords="offset points",
                    ha="right" if right else "left", va="center", fontsize=9, fontweight="bold", color=color)
    if duration:
        ax.axvline(duration, color="#9e9e9e", ls=":", lw=1.2, zorder=1)
        ax.text(duration, -0.6, "check ended ", fontsize=7, color="#616161", va="bottom", ha="right")
    ax.set_yticks(range(len(rows)), rows, fontsize=9)
    ax.set_ylim(len(rows) - 0.5, -0.9)
    ax.set_xlim(-end * 0.02, end * 1.08)
    ax.set_xlabel("seconds since the connection attempt started")
    ax.grid(axis="x", color="#e0e0e0", zorder=0)
    ax.set_axisbelow(True)
    status = f" — {_get(record, 'status')}" + (f" ({_get(record, 'category')})" if _get(record, "category") not in (None, "ok") else "") \
        if record is not None else ""
    of = f", session {key.session + 1} of {sessions_of_check}" if sessions_of_check > 1 else ""
    ax.set_title(f"{key.phase} · {key.check}{of}{status}", loc="left", fontsize=10)
    handles = [h for h in (Line2D([], [], marker=">", color="#1565c0", ls="", label="sent"),
                           Line2D([], [], marker="o", color="#2e7d32", ls="", label="received"),
                           Line2D([], [], marker="o", color="#c62828", ls="", label="error frame"),
                           Line2D([], [], marker="X", color="#c62828", markersize=9, ls="", label="close"))
               if h.get_label() in kinds]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


# -- failures --------------------------------------------------------------------------------

def failures_chart(records: Sequence[Record | Mapping[str, Any]]) -> Figure | None:
    """Failing checks (fail/error) by category, plus the honesty findings; None when nothing failed."""
    groups = {str(f.category or "unknown"): f.checks for f in findings(records)}
    if not groups:
        return None
    cats = sorted(groups, key=lambda c: (-len(groups[c]), c))
    fig = new_figure(10, 1.4 + 0.45 * len(cats))
    ax = fig.subplots()
    values = [len(groups[c]) for c in cats]
    colors = [_AREA_COLORS.get(category_info(c).area, "#607d8b") for c in cats]
    ax.barh(range(len(cats)), values, color=colors, height=0.6, zorder=2)
    labels = []
    for y, c in enumerate(cats):
        names = list(dict.fromkeys(groups[c]))
        shown = [n for i, n in enumerate(names) if i == 0 or len(", ".join(names[:i + 1])) <= 60]
        text = ", ".join(shown) + (f" and {len(names) - len(shown)} more" if len(shown) < len(names) else "")
        labels.append((ax.text(len(groups[c]), y, text, va="center", fontsize=8, color="#333333", in_layout=False),
                       len(groups[c]), []))
    ax.set_yticks(range(len(cats)), cats, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values) * 1.05)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("checks")
    ax.grid(axis="x", color="#dddddd", zorder=0)
    ax.set_axisbelow(True)
    ax.set_title("Failures by category (bars: how many checks; text: which)", loc="left", fontsize=11)
    fig.tight_layout()
    _fit_labels(fig, ax, labels, log=False, left=0.0)
    return fig
