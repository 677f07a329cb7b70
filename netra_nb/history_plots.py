"""The run history's charts: each takes an analysis' result (:mod:`netra_nb.history_analysis`) and returns a
matplotlib Figure."""

from __future__ import annotations

from typing import Sequence

from .history_analysis import where


# -- charts (each returns a matplotlib Figure) ------------------------------------------------------------

def _check_labels(df):
    """``<series> · <phase>/<check>`` for each row (the series as :func:`where` names it)."""
    return where(df) + " · " + df["phase"].astype(str) + "/" + df["check"].astype(str)


def _pick_checks(trend, checks: Sequence[str] | None, max_checks: int):
    trend = trend.assign(label=_check_labels(trend))
    if checks:
        return trend[trend["check"].astype(str).isin(list(checks))]
    score = trend.assign(over_sla=trend["p95_s"] / trend["sla_s"]).groupby("label").agg(
        over_sla=("over_sla", "max"), pass_rate=("pass_rate", "mean"))
    score = score.fillna({"over_sla": 0.0}).sort_values(["over_sla", "pass_rate"], ascending=[False, True])
    return trend[trend["label"].isin(list(score.index[:max_checks]))]


def plot_duration_trend(trend, *, checks: Sequence[str] | None = None, max_checks: int = 9):
    """Small multiples: each check's p50 (line) and p95 (dashed) over time, its SLA as a red line.

    With more than ``max_checks`` checks, those closest to (or over) their SLA are shown.
    """
    import math
    from matplotlib.figure import Figure
    t = _pick_checks(trend, checks, max_checks)
    labels = list(dict.fromkeys(t.sort_values(["env", "phase", "check"])["label"]))
    if not labels:
        return _empty_figure("no durations in the history")
    cols = min(3, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig = Figure(figsize=(5 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    for ax, label in zip(axes.flat, labels):
        s = t[t["label"] == label]
        ax.plot(s["bucket"], s["p50_s"], color="#1565c0", lw=1.5, label="p50")
        ax.plot(s["bucket"], s["p95_s"], color="#1565c0", lw=1, ls="--", label="p95")
        sla = s["sla_s"].dropna()
        if len(sla):
            ax.axhline(float(sla.max()), color="#c62828", lw=1, ls=":", label=f"SLA {float(sla.max()):g}s")
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("seconds")
        ax.legend(fontsize=7, loc="upper left")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    for ax in list(axes.flat)[len(labels):]:
        ax.set_axis_off()
    fig.suptitle("Duration per check over time (p50, p95; red: SLA)")
    fig.tight_layout()
    return fig


def plot_pass_rate(trend, *, max_checks: int = 40):
    """A heat map: one row per check, one column per period, colour = pass rate (red 0 → green 1)."""
    import numpy as np
    from matplotlib.figure import Figure
    if trend.empty:
        return _empty_figure("no runs in the history")
    t = trend.assign(label=_check_labels(trend))
    grid = t.pivot_table(index="label", columns="bucket", values="pass_rate", aggfunc="mean", observed=True)
    grid = grid.loc[grid.mean(axis=1).sort_values().index[:max_checks]]
    fig = Figure(figsize=(10, 0.3 * len(grid) + 1.6))
    ax = fig.subplots()
    image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="RdYlGn", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(grid)), list(grid.index), fontsize=7)
    ticks = np.linspace(0, len(grid.columns) - 1, num=min(8, len(grid.columns))).astype(int)
    daily = all(c.hour == 0 and c.minute == 0 for c in grid.columns)
    fmt = "%Y-%m-%d" if daily else "%Y-%m-%d %H:%M"
    ax.set_xticks(ticks, [grid.columns[i].strftime(fmt) for i in ticks], rotation=30, fontsize=7, ha="right")
    fig.colorbar(image, ax=ax, label="pass rate")
    ax.set_title("Pass rate per check over time (worst checks on top)")
    fig.tight_layout()
    return fig


def plot_flaky(flaky, *, top: int = 15):
    """Horizontal bars of the flip rate of the most flaky checks."""
    from matplotlib.figure import Figure
    f = flaky[flaky["flips"] > 0].head(top)
    if f.empty:
        return _empty_figure("no check switched between pass and fail")
    labels = _check_labels(flaky).loc[f.index]  # named among all series, not only the flaky ones
    fig = Figure(figsize=(8, 0.35 * len(f) + 1.2))
    ax = fig.subplots()
    ax.barh(labels, f["flip_rate"], color=["#c62828" if x else "#f9a825" for x in f["flaky"]])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("flip rate: pass↔fail switches / (runs − 1)   (red: flaky)")
    ax.set_title("Flaky checks (outage runs left out)")
    fig.tight_layout()
    return fig


def plot_env_comparison(comparison):
    """Grouped bars: each check's p50 duration in each environment."""
    import numpy as np
    from matplotlib.figure import Figure
    if comparison.empty:
        return _empty_figure("no environments to compare")
    envs = [e for e in comparison.columns.get_level_values("env").unique() if e]
    p50 = comparison.xs("p50_s", axis=1, level="metric")[envs].astype(float)
    labels = [f"{p}/{c}" for p, c in p50.index]
    fig = Figure(figsize=(9, 0.45 * len(labels) * max(1, len(envs)) / 2 + 1.5))
    ax = fig.subplots()
    height = 0.8 / max(1, len(envs))
    y = np.arange(len(labels))
    for i, env in enumerate(envs):
        ax.barh(y + i * height, p50[env].fillna(0), height=height, label=env)
    ax.set_yticks(y + height * (len(envs) - 1) / 2, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("duration p50 (seconds)")
    ax.legend()
    ax.set_title("The same checks in each environment")
    fig.tight_layout()
    return fig


def _empty_figure(text: str):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6, 1.2))
    ax = fig.subplots()
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.set_axis_off()
    return fig
