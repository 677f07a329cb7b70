"""What the notebooks (and an engineer in JupyterLab) call: run a phase, re-run one check, show it.

Jupyter's kernel already runs an event loop, so the synchronous helpers here run their coroutine
on a fresh loop in a worker thread when one is running; in a plain script they use asyncio.run.
The charts are the report's (:mod:`netra_nb.charts`): figures outside pyplot, so a cell that
returns one shows it once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
from pathlib import Path
from typing import Any, Coroutine, Iterable, TypeVar

from .checks import CHECKS, PHASE_CHECKS, Context, registry
from .params import Params, load_params
from .records import Record
from .redact import clip
from .registry import STATUS_MARK, STATUS_ORDER

__all__ = ["run_sync", "Phase", "Results", "check", "CheckResult", "records_frame", "duration_chart", "frames_chart"]

T = TypeVar("T")
_STATUS_MARK = STATUS_MARK


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
        """The check's (first) WebSocket session on a time axis; None for a check without frames."""
        return frames_chart([f for f in self.frames if f.session == 0], record=self.record)

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
    if name not in registry():  # every phase's checks, the orchestration module's included
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
        registry()  # every phase's checks, the orchestration module's included
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

    def run(self, only: Iterable[str] | None = None, *, progress: bool = True) -> "Results":
        """Run the phase's checks in order; a line per check as it ends (``progress``). The records it
        returns show as the results table when they are a cell's value."""
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
                        print(clip(f"  {_STATUS_MARK.get(r.status, r.status)} {n:<22} {r.duration_s:7.3f}s  "
                                   f"{r.category if r.category != 'ok' else ''} {r.message}", 300), flush=True)
            finally:
                await ctx.aclose()
            self.frames.extend(ctx.frames)
            self._finish(ctx)
            return out

        self.records = Results(run_sync(go()))
        return self.records

    # Hooks for phases that keep more than records (orchestration keeps its fleet).
    def _header(self, n: int) -> str:
        return f"{self.phase}: {n} checks against {self.params.name} ({self.params.base_url})"

    def _prepare(self, ctx: Context, progress: bool) -> None:
        pass

    def _finish(self, ctx: Context) -> None:
        pass

    def table(self):
        """The results table of the last :meth:`run` (failures first)."""
        return records_frame(self.records)

    def chart(self):
        """Each check's duration (a log axis when fast and slow checks sit side by side); None before a run."""
        return duration_chart(self.records, title=f"{self.phase}: duration of each check")

    def frames_chart(self, check_name: str):
        """The frames of one of this phase's WebSocket checks on a time axis (its first session); None when it has
        none.

        With a run folder: the report's chart of that session, drawn once to
        ``charts/session_<phase>_<check>_0.png`` (the report shows the same file), as an ``Image``.
        Without: a figure (closed from pyplot, so that a notebook shows it once, as a value)."""
        frames = [f for f in self.frames if f.check == check_name and f.session == 0]
        record = next((r for r in self.records if r.check == check_name), None)
        if self.run_dir is None:
            fig = frames_chart(frames, record=record)
            if fig is not None:
                import matplotlib.pyplot as plt
                plt.close(fig)
            return fig
        from IPython.display import Image

        from . import charts
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
    df = df.assign(_o=df["status"].map(STATUS_ORDER)).sort_values(["_o", "phase"], kind="stable").drop(columns="_o")
    return df[cols].reset_index(drop=True)


class Results(list):
    """The records of a phase run; a notebook shows them as the results table."""

    def _repr_html_(self) -> str:
        return records_frame(self).to_html(index=False)


def _shown(fig: Any) -> Any:
    """``fig`` as a cell's value shows once: it is outside pyplot (no second draw when the cell ends), and
    IPython gets a PNG formatter for figures (it has one only once pyplot or %matplotlib ran)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return fig
    ip = get_ipython()
    if ip is not None and fig is not None:
        from IPython.core.pylabtools import print_figure
        from matplotlib.figure import Figure
        ip.display_formatter.formatters["image/png"].for_type(Figure, lambda f: print_figure(f, "png", bbox_inches="tight"))
    return fig


def duration_chart(records: Iterable[Record], title: str = "Duration of each check"):
    """The report's durations chart (:func:`netra_nb.charts.durations_chart`) of ``records``."""
    from . import charts
    return _shown(charts.durations_chart(list(records), title=title))


def frames_chart(frames: Iterable[Any], title: str | None = None, *, record: Record | None = None):
    """One session's frames on a time axis (the report's :func:`netra_nb.charts.session_chart`): the request
    the client sent labelled with its type, the close with its code and who closed; None without frames."""
    from . import charts
    rows = [f.to_dict() if hasattr(f, "to_dict") else dict(f) for f in frames]
    if not rows:
        return None
    key = charts.SessionKey(str(rows[0].get("phase", "")), str(rows[0].get("check", "")), int(rows[0].get("session") or 0))
    fig = charts.session_chart(key, sorted(rows, key=lambda f: (f.get("t_s") or 0.0, f.get("seq") or 0)), record)
    if fig is not None and title:
        fig.axes[0].set_title(title, loc="left", fontsize=10)
    return _shown(fig)
