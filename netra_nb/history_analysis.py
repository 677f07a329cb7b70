"""What the run history shows (pure): functions over the DataFrame that
:func:`netra_nb.history_store.load_history` returns (one row per check per run); tests build such frames by
hand. Every analysis keys on environment *and* series (see :mod:`netra_nb.history_store`)."""

from __future__ import annotations

from typing import Iterable

from .records import PASSING

#: Environments in the order a person expects them side by side; others follow alphabetically.
ENV_ORDER = ("local", "staging", "production")
KEYS = ["env", "series", "phase", "check"]
SERIES = ["env", "series"]
_FAILING = ("fail", "error")
_PASSED = {**{s: 1.0 for s in PASSING}, **{s: 0.0 for s in _FAILING}, "skip": float("nan")}


# -- analyses (pure, over the frame) --------------------------------------------------------------------

def _prepare(df):
    """Check the frame, fill ``run_key``/``run_started_at`` when a hand-made frame lacks them, add ``passed``."""
    import numpy as np
    import pandas as pd
    missing = [c for c in ("env", "phase", "check", "status") if c not in df.columns]
    if missing:
        raise KeyError(f"the history frame lacks {missing}")
    df = df.copy(deep=False)
    # A frame made by hand, or history written before series existed: one series per environment.
    if "series" not in df.columns:
        df["series"] = ""
    elif df["series"].isna().any():
        series = df["series"]
        if isinstance(series.dtype, pd.CategoricalDtype) and "" not in series.cat.categories:
            series = series.cat.add_categories([""])  # stays categorical: grouping a year of rows stays cheap
        df["series"] = series.fillna("")
    if "run_key" not in df.columns:
        df["run_key"] = df["run_id"]
    if "run_started_at" not in df.columns:
        df["run_started_at"] = pd.to_datetime(df["started_at"], utc=True, format="ISO8601")
        df["run_started_at"] = df.groupby("run_key", observed=True)["run_started_at"].transform("min")
    elif not isinstance(df["run_started_at"].dtype, pd.DatetimeTZDtype):
        df["run_started_at"] = pd.to_datetime(df["run_started_at"], utc=True, format="ISO8601")
    if "duration_s" not in df.columns:
        df["duration_s"] = np.nan
    if "passed" in df.columns:  # already prepared (e.g. the output of _outcomes)
        return df
    # passed: 1 / 0, and NaN for a skip (neither: left out of rates and flips)
    df["passed"] = df["status"].map(_PASSED).astype(float)
    return df


def _outcomes(df):
    """One row per (env, run, phase, check): several records of a check in one run pass only if all pass."""
    d = df[df["passed"].notna()]
    key = ["env", "series", "run_key", "phase", "check"]
    if d.duplicated(key).any():
        agg = {"passed": "min", "duration_s": "max", "run_started_at": "first", "status": "last"}
        for extra in ("category", "run_id", "sla_s"):
            if extra in d.columns:
                agg[extra] = "last"
        d = d.groupby(key, observed=True, sort=False).agg(agg).reset_index()
    if not d["run_started_at"].is_monotonic_increasing:
        d = d.sort_values("run_started_at", kind="stable")
    return d


def runs_table(df, *, outage_share: float = 0.5, min_checks: int = 3):
    """One row per run: when, how many checks, how many failed, and whether it was an outage.

    An outage run is one where more than ``outage_share`` of its (non-skipped) checks failed at
    once and it had at least ``min_checks`` of them: the platform was down, which says nothing
    about any single check's flakiness.
    """
    return _runs(_outcomes(_prepare(df)), outage_share, min_checks)


def _runs(d, outage_share: float = 0.5, min_checks: int = 3):
    g = d.groupby(["env", "series", "run_key"], observed=True, sort=False)
    runs = g.agg(run_started_at=("run_started_at", "first"), checks=("passed", "size"), passed=("passed", "sum"))
    runs = runs.reset_index()
    runs["failing"] = runs["checks"] - runs["passed"].astype(int)
    runs["failing_share"] = runs["failing"] / runs["checks"]
    runs["outage"] = (runs["failing_share"] > outage_share) & (runs["checks"] >= min_checks)
    return runs.drop(columns="passed").sort_values(["run_started_at", "run_key"], ignore_index=True)


def outage_runs(df, *, outage_share: float = 0.5, min_checks: int = 3):
    """The runs of :func:`runs_table` that were outages."""
    runs = runs_table(df, outage_share=outage_share, min_checks=min_checks)
    return runs[runs["outage"]].reset_index(drop=True)


def _last_runs(runs, n: int | None):
    if n is None:
        return runs
    return runs.groupby(SERIES, observed=True, sort=False).tail(n)


def _auto_every(d) -> tuple[str | None, int | None]:
    """Per day when the history spans three days or more, else per group of runs (about 20 points)."""
    span = d["run_started_at"].max() - d["run_started_at"].min() if len(d) else None
    if span is not None and span >= _days(3):
        return "D", None
    runs = d.groupby(SERIES, observed=True)["run_key"].nunique().max() if len(d) else 1
    return None, max(1, int(runs) // 20)


def _days(n: float):
    import pandas as pd
    return pd.Timedelta(days=n)


def duration_trend(df, *, freq: str | None = None, every_n_runs: int | None = None):
    """Per check, per period (``freq``, a pandas frequency such as ``"D"``) or per ``every_n_runs`` runs:
    runs, duration p50 and p95 (seconds), pass rate (skips left out) and the SLA.

    With neither given: per day if the history spans three days or more, else per 1/20th of the runs.
    ``bucket`` is the start of the period (or the first run of the group).
    """
    import pandas as pd
    d = _prepare(df)
    d = d[d["passed"].notna()]
    columns = KEYS + ["bucket", "runs", "p50_s", "p95_s", "pass_rate", "sla_s"]
    if d.empty:
        return pd.DataFrame(columns=columns)
    if freq is None and every_n_runs is None:
        freq, every_n_runs = _auto_every(d)
    if every_n_runs is not None:
        order = d.groupby(SERIES, observed=True)["run_started_at"].rank(method="dense").astype(int) - 1
        group = order // every_n_runs
        d = d.assign(_g=group)
        d["bucket"] = d.groupby([*SERIES, "_g"], observed=True)["run_started_at"].transform("min")
        d = d.drop(columns="_g")
    else:
        d = d.assign(bucket=d["run_started_at"].dt.floor(freq))
    keys = KEYS + ["bucket"]
    g = d.groupby(keys, observed=True, sort=True)
    out = g.agg(runs=("passed", "size"), pass_rate=("passed", "mean"))
    q = g["duration_s"].quantile([0.5, 0.95]).unstack()
    out["p50_s"] = q[0.5]
    out["p95_s"] = q[0.95]
    out["sla_s"] = g["sla_s"].max() if "sla_s" in d.columns else float("nan")
    return out.reset_index()[columns]


def flaky_checks(df, *, last_n_runs: int | None = 100, outage_share: float = 0.5, min_checks: int = 3,
                 threshold: float = 0.1):
    """Checks that switch between pass and fail, over the last ``last_n_runs`` runs of each env.

    Outage runs (see :func:`runs_table`) are left out first, then the last N runs are taken. A
    check's ``flips`` are its pass↔fail switches in run order, ``flip_rate`` = flips / (runs - 1)
    (NaN with fewer than two runs). ``flaky`` is ``flip_rate >= threshold`` and at least two flips.
    Sorted by flip rate, most flaky first.
    """
    import numpy as np
    d = _outcomes(_prepare(df))
    runs = _runs(d, outage_share, min_checks)
    keep = _last_runs(runs[~runs["outage"]], last_n_runs)
    d = d.merge(keep[[*SERIES, "run_key"]], on=[*SERIES, "run_key"])
    d = d.sort_values(KEYS + ["run_started_at", "run_key"], kind="stable")
    prev = d.groupby(KEYS, observed=True, sort=False)["passed"].shift()
    d = d.assign(flip=((d["passed"] != prev) & prev.notna()).astype(int))
    g = d.groupby(KEYS, observed=True, sort=False)
    out = g.agg(runs=("passed", "size"), flips=("flip", "sum"), pass_rate=("passed", "mean"),
                last_status=("status", "last"))
    out = out.reset_index()
    out["flip_rate"] = np.where(out["runs"] > 1, out["flips"] / (out["runs"] - 1).clip(lower=1), np.nan)
    out["flaky"] = (out["flip_rate"] >= threshold) & (out["flips"] >= 2)
    out["last_status"] = out["last_status"].astype(str)
    out = out.sort_values(["flip_rate", "flips"], ascending=False, na_position="last", ignore_index=True)
    return out[KEYS + ["runs", "flips", "flip_rate", "pass_rate", "last_status", "flaky"]]


def failing_streaks(df):
    """For each check failing in its env's latest run of it: when the current failing streak began.

    ``first_failed_*`` is the first run of the streak, ``last_passed_*`` the run just before it
    (NaT/None when the check never passed in the loaded history), ``failing_runs`` the streak's
    length. Skips neither break nor extend a streak. Newest streaks first.
    """
    import pandas as pd
    d = _outcomes(_prepare(df))
    cols = KEYS + ["category", "failing_runs", "first_failed_at", "first_failed_run", "last_passed_at",
                   "last_passed_run", "last_status"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    if "run_id" not in d.columns:
        d = d.assign(run_id=d["run_key"])
    if "category" not in d.columns:
        d = d.assign(category="")
    d = d.sort_values(KEYS + ["run_started_at", "run_key"], kind="stable")
    last = d.groupby(KEYS, observed=True, sort=False).tail(1)
    failing = last[last["passed"] == 0][KEYS + ["category", "status"]].rename(columns={"status": "last_status"})
    if failing.empty:
        return pd.DataFrame(columns=cols)
    d = d.merge(failing[KEYS], on=KEYS)
    lp = (d[d["passed"] == 1].groupby(KEYS, observed=True, sort=False).tail(1)
          [KEYS + ["run_started_at", "run_id"]].rename(columns={"run_started_at": "last_passed_at", "run_id": "last_passed_run"}))
    d = d.merge(lp, on=KEYS, how="left")
    streak = d[d["last_passed_at"].isna() | (d["run_started_at"] > d["last_passed_at"])]
    g = streak.groupby(KEYS, observed=True, sort=False)
    first = g.head(1)[KEYS + ["run_started_at", "run_id", "last_passed_at", "last_passed_run"]].rename(
        columns={"run_started_at": "first_failed_at", "run_id": "first_failed_run"})
    first = first.merge(g.size().rename("failing_runs").reset_index(), on=KEYS)
    out = failing.merge(first, on=KEYS)
    for c in ("first_failed_run", "last_passed_run", "category", "last_status"):
        out[c] = out[c].astype(object).where(out[c].notna(), None)
        out[c] = out[c].map(lambda v: None if v is None else str(v))
    out = out.sort_values("first_failed_at", ascending=False, ignore_index=True)
    return out[cols]


def where(df):
    """Each row's series named for people: its environment, and what it talked to when that environment
    has more than one series in ``df``."""
    env, series = df["env"].astype(str), df["series"].astype(str)
    many = series.groupby(env).transform("nunique") > 1
    return env.where(~many, env + " · " + series.where(series != "", "unknown target"))


def _where_order(labels: Iterable[str]) -> list[str]:
    """Series labels in the environments' order (:data:`ENV_ORDER`), then by name."""
    labels = list(dict.fromkeys(str(x) for x in labels))
    envs = _env_order(label.split(" · ")[0] for label in labels)
    return sorted(labels, key=lambda x: (envs.index(x.split(" · ")[0]), x))


def _env_order(envs: Iterable[str]) -> list[str]:
    envs = [str(e) for e in envs]
    return [e for e in ENV_ORDER if e in envs] + sorted(e for e in envs if e not in ENV_ORDER)


def compare_envs(df, *, last_n_runs: int | None = 20):
    """Environments side by side: per check (rows), for each series (column groups, named by :func:`where`)
    its latest status, category, duration p50 and pass rate over the series' last ``last_n_runs`` runs.

    A check a series did not run is NaN there. ``differs`` marks checks whose latest status is not
    the same in every series that ran them.
    """
    import pandas as pd
    d = _outcomes(_prepare(df))
    if d.empty:
        return pd.DataFrame()
    keep = _last_runs(_runs(d), last_n_runs)
    d = d.merge(keep[[*SERIES, "run_key"]], on=[*SERIES, "run_key"])
    if "category" not in d.columns:
        d = d.assign(category="")
    d = d.sort_values(["run_started_at", "run_key"], kind="stable")
    g = d.groupby(KEYS, observed=True, sort=False)
    long = g.agg(status=("status", "last"), category=("category", "last"), p50_s=("duration_s", "median"),
                 pass_rate=("passed", "mean")).reset_index()
    for c in ("env", "status", "category", "phase", "check"):
        long[c] = long[c].astype(str)
    long["where"] = where(long)
    wide = long.pivot(index=["phase", "check"], columns="where", values=["status", "category", "p50_s", "pass_rate"])
    wide = wide.swaplevel(0, 1, axis=1)
    envs = _where_order(long["where"])
    metrics = ["status", "category", "p50_s", "pass_rate"]
    wide = wide.reindex(columns=pd.MultiIndex.from_product([envs, metrics], names=["env", "metric"]))
    statuses = wide.xs("status", axis=1, level="metric")
    wide[("", "differs")] = statuses.nunique(axis=1) > 1  # nunique leaves NaN out
    return wide.sort_index()


def overview(df):
    """Per series (environment and target): runs, checks, records, first and last run, and outage runs."""
    import pandas as pd
    columns = ["env", "series", "runs", "checks", "records", "first_run", "last_run", "outage_runs"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    d = _prepare(df)
    d = d.assign(env=d["env"].astype(str), series=d["series"].astype(str))
    runs = _runs(_outcomes(d))
    g = d.groupby(SERIES)
    out = pd.DataFrame({
        "runs": g["run_key"].nunique(),
        "checks": d.drop_duplicates(KEYS).groupby(SERIES).size(),
        "records": g.size(),
        "first_run": g["run_started_at"].min(),
        "last_run": g["run_started_at"].max(),
        "outage_runs": runs.assign(env=runs["env"].astype(str), series=runs["series"].astype(str)).groupby(SERIES)["outage"].sum(),
    }).reset_index()
    order = _env_order(out["env"])
    return out.sort_values(["env", "series"], key=lambda c: c.map(order.index) if c.name == "env" else c,
                           ignore_index=True)[columns]
