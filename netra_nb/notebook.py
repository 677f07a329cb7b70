"""What the notebooks (and an engineer in JupyterLab) call: run a phase, re-run one check, show it.

Jupyter's kernel already runs an event loop, so the synchronous helpers here run their coroutine
on a fresh loop in a worker thread when one is running; in a plain script they use asyncio.run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
from pathlib import Path
from typing import Any, Coroutine, Iterable, TypeVar

from .checks import CHECKS, PHASE_CHECKS, Context
from .params import Params, load_params
from .records import Record

__all__ = ["run_sync", "Phase", "check", "CheckResult", "records_frame", "duration_chart", "frames_chart"]

T = TypeVar("T")
_STATUS_MARK = {"pass": "✅", "degraded": "🐢", "fail": "❌", "error": "⚠️", "skip": "⏭️"}
STATUS_COLORS = {"pass": "#2e7d32", "degraded": "#f9a825", "fail": "#c62828", "error": "#6a1b9a", "skip": "#9e9e9e"}


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, inside Jupyter or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _params(env: str | None, params_file: str | None, params: Params | None) -> Params:
    if params is not None:
        return params
    return load_params(env, path=params_file or None)


class CheckResult:
    """One check's record and frames, shown as a table (and a frames chart) in Jupyter."""

    def __init__(self, record: Record, frames: list[Any]) -> None:
        self.record = record
        self.frames = frames

    def to_frame(self):
        import pandas as pd
        return pd.DataFrame([self.record.to_dict()]).T.rename(columns={0: self.record.check})

    def chart(self):
        return frames_chart(self.frames, title=f"{self.record.check}: frames")

    def _repr_html_(self) -> str:
        r = self.record
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                       f"{html.escape(str(v))}</td></tr>" for k, v in r.to_dict().items() if v not in (None, [], ""))
        return f"<p><b>{_STATUS_MARK.get(r.status, '')} {html.escape(r.check)}</b>: {html.escape(r.message)}</p><table>{rows}</table>"

    def __repr__(self) -> str:
        return f"<CheckResult {self.record.check} {self.record.status} {self.record.category}: {self.record.message}>"


def check(name: str, env: str | None = "local", *, params_file: str | None = None,
          params: Params | None = None) -> CheckResult:
    """Re-run one check against an environment (no run folder); shows as a table in Jupyter.

    >>> result = check("agent_run", env="staging")   # doctest: +SKIP
    >>> result.chart()                                # the session's frames on a time axis
    """
    if name not in CHECKS:
        raise KeyError(f"unknown check {name!r}; known: {', '.join(CHECKS)}")
    p = _params(env, params_file, params)

    async def go() -> CheckResult:
        ctx = Context(p, phase=CHECKS[name].phase)
        try:
            record = await ctx.run(name)
        finally:
            await ctx.aclose()
        return CheckResult(record, ctx.frames)

    return run_sync(go())


class Phase:
    """A phase notebook's handle: its checks, run in order with progress, recorded in the run folder."""

    def __init__(self, phase: str, env: str | None = "local", run_dir: str | None = None, *,
                 params_file: str | None = None, params: Params | None = None, run_id: str | None = None) -> None:
        if phase not in PHASE_CHECKS:
            raise KeyError(f"unknown phase {phase!r}; known: {', '.join(PHASE_CHECKS)}")
        self.phase = phase
        self.params = _params(env, params_file, params)
        self.run_dir = Path(run_dir) if run_dir else None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id or _run_id_of(self.run_dir)
        self.checks = list(PHASE_CHECKS[phase])
        self.records: list[Record] = []
        self.frames: list[Any] = []

    def plan(self):
        """The checks this phase runs, and why (a table)."""
        import pandas as pd
        return pd.DataFrame([{"check": n, "what": CHECKS[n].title, "why": CHECKS[n].why} for n in self.checks])

    def run(self, only: Iterable[str] | None = None, *, progress: bool = True) -> list[Record]:
        """Run the phase's checks in order; a line per check as it ends (``progress``)."""
        names = [n for n in self.checks if only is None or n in set(only)]
        if progress:
            print(self._header(len(names)), flush=True)

        async def go() -> list[Record]:
            ctx = Context(self.params, phase=self.phase, run_dir=self.run_dir, run_id=self.run_id)
            self._prepare(ctx, progress)
            out = []
            try:
                for n in names:
                    r = await ctx.run(n)
                    out.append(r)
                    if progress:
                        print(f"  {_STATUS_MARK.get(r.status, r.status)} {n:<22} {r.duration_s:7.3f}s  "
                              f"{r.category if r.category != 'ok' else ''} {r.message}"[:300], flush=True)
            finally:
                await ctx.aclose()
            self.frames.extend(ctx.frames)
            self._finish(ctx)
            return out

        self.records = run_sync(go())
        return self.records

    # Hooks for phases that keep more than records (orchestration keeps its fleet).
    def _header(self, n: int) -> str:
        return f"{self.phase}: {n} checks against {self.params.name} ({self.params.base_url})"

    def _prepare(self, ctx: Context, progress: bool) -> None:
        pass

    def _finish(self, ctx: Context) -> None:
        pass

    def table(self):
        return records_frame(self.records)

    def chart(self):
        return duration_chart(self.records, title=f"{self.phase}: duration per check")

    def frames_chart(self, check_name: str):
        """The frames of one of this phase's WebSocket checks on a time axis (its first session).

        With a run folder: the report's chart of that session, drawn once to
        ``charts/session_<phase>_<check>_0.png`` (the report shows the same file), as an ``Image``.
        Without: a figure (closed from pyplot, so that a notebook shows it once, as a value)."""
        frames = [f for f in self.frames if f.check == check_name and f.session == 0]
        if self.run_dir is None:
            import matplotlib.pyplot as plt
            fig = frames_chart(frames, title=f"{check_name}: frames")
            plt.close(fig)
            return fig
        from IPython.display import Image

        from . import charts
        record = next((r for r in self.records if r.check == check_name), None)
        sessions = len({f.session for f in self.frames if f.check == check_name}) or 1
        path = charts.session_png(self.run_dir, charts.SessionKey(self.phase, check_name, 0),
                                  [f.to_dict() for f in frames], record, sessions_of_check=sessions)
        return Image(filename=str(path)) if path is not None else None


def _run_id_of(run_dir: Path | None) -> str:
    if run_dir is not None and (run_dir / "run.json").is_file():
        import json
        try:
            return str(json.loads((run_dir / "run.json").read_text())["run_id"])
        except (ValueError, KeyError):
            pass
    from .checks import short_id
    return short_id()


def records_frame(records: Iterable[Record]):
    """A results table: one row per check, failures first."""
    import pandas as pd
    rows = [r.to_dict() for r in records]
    cols = ["phase", "check", "status", "category", "duration_s", "bytes_received", "message"]
    df = pd.DataFrame(rows, columns=list(rows[0]) if rows else cols)
    if df.empty:
        return df[cols] if set(cols) <= set(df.columns) else pd.DataFrame(columns=cols)
    order = {"fail": 0, "error": 1, "degraded": 2, "skip": 3, "pass": 4}
    df = df.assign(_o=df["status"].map(order)).sort_values(["_o", "phase"], kind="stable").drop(columns="_o")
    return df[cols].reset_index(drop=True)


def duration_chart(records: Iterable[Record], title: str = "duration per check"):
    """Horizontal bars of each check's duration, coloured by status, with its SLA marked."""
    import matplotlib.pyplot as plt
    records = list(records)
    fig, ax = plt.subplots(figsize=(8, 0.4 * max(3, len(records)) + 1))
    names = [r.check for r in records]
    ax.barh(names, [r.duration_s for r in records], color=[STATUS_COLORS.get(r.status, "#999") for r in records])
    for i, r in enumerate(records):
        if r.sla_s:
            ax.plot([r.sla_s, r.sla_s], [i - 0.4, i + 0.4], color="black", lw=1, ls="--")
    ax.invert_yaxis()
    ax.set_xlabel("seconds (dashed: SLA)")
    ax.set_title(title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in STATUS_COLORS.values()]
    ax.legend(handles, list(STATUS_COLORS), loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig


def frames_chart(frames: Iterable[Any], title: str = "frames"):
    """A session's frames on a time axis: one row per event type, sent vs received, the close marked."""
    import matplotlib.pyplot as plt
    rows = [f.to_dict() if hasattr(f, "to_dict") else dict(f) for f in frames]
    fig, ax = plt.subplots(figsize=(8, 3))
    if not rows:
        ax.text(0.5, 0.5, "no frames", ha="center", va="center")
        ax.set_axis_off()
        return fig
    events = list(dict.fromkeys(r["event"] for r in rows))
    y = {e: i for i, e in enumerate(events)}
    for r in rows:
        style = {"sent": ("^", "#1565c0"), "received": ("o", "#2e7d32"), "close": ("X", "#c62828")}[r["direction"]]
        ax.scatter(r["t_s"], y[r["event"]], marker=style[0], color=style[1], s=50)
        if r["direction"] == "close":
            ax.annotate(r.get("text", ""), (r["t_s"], y[r["event"]]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_yticks(range(len(events)), events)
    ax.set_xlabel("seconds since connect (▲ sent, ● received, ✕ close)")
    ax.set_title(title)
    fig.tight_layout()
    return fig
