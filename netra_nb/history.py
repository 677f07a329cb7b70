"""Run history: every run's records in one dataset under ``outputs/_history/``, and the trends over it.

A series is one environment pointed at one target: ``series`` says what the run talked to (the
params file's ``base_url``, or for ``netra-nb demo`` the reference platform with its era and fault
profiles, whose port changes every run). Every analysis keys on environment *and* series, so a demo
under a fault profile, or a params file named ``local`` pointed elsewhere, is a series of its own and
never makes the healthy series' checks look flaky or failing.

Storage: Parquet, partitioned by environment and date, append-only
-----------------------------------------------------------------

::

    outputs/_history/
      runs/env=<env>/date=<YYYY-MM-DD>/run-<run folder>.parquet   one per run, written once by append_run
      compact/env=<env>/date=<YYYY-MM-DD>/seg-<n>-<hash>.parquet  n uncovered runs of an open day, copied
      compact/env=<env>/date=<YYYY-MM-DD>/day-<n>-<hash>.parquet  all n runs of a closed day, copied
      .lock                                                       serializes writers (flock)

Why Parquet and not DuckDB: pyarrow is already a dependency (the run folder's ``results.parquet``);
files are immutable, so a run killed while appending cannot damage earlier runs and writers need
no database beyond a short ``flock``; any tool (pandas, DuckDB, Spark) reads the dataset; a reader
touches only the columns and the days it needs.

Why ``compact/``: a year of runs every five minutes is ~105,000 runs, and opening 105,000 small
Parquet files costs ~1 ms each (~90 s), slower even than parsing every run's ``results.jsonl``.
So :func:`append_run` also copies, once ``SEGMENT_RUNS`` runs of today are uncovered, those runs
into a segment, and once a day has closed, all its runs into one day file. Nothing is ever
rewritten or deleted: ``runs/`` alone is the complete history (each record exactly once, for any
other reader), ``compact/`` a read-optimized copy. :func:`load_history` reads each day's day file
(or its segments) and only the run files they do not cover: a year is one file per env per day. File names
carry their run counts, so "is this day covered?" is answered by listing two folders.

The analyses are pure functions over the DataFrame that :func:`load_history` returns (one row per
check per run); tests build such frames by hand. The charts take their results and return a
matplotlib Figure.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .records import PASSING, RECORD_KINDS, parse_time, read_jsonl
from .redact import clip
from .registry import NOTEBOOKS

__all__ = [
    "HISTORY_DIR",
    "SEGMENT_RUNS",
    "ANALYSIS_COLUMNS",
    "append_run",
    "compact_history",
    "history_files",
    "load_history",
    "runs_table",
    "outage_runs",
    "duration_trend",
    "flaky_checks",
    "failing_streaks",
    "compare_envs",
    "overview",
    "plot_duration_trend",
    "plot_pass_rate",
    "plot_flaky",
    "plot_env_comparison",
    "history_main",
    "series_of",
    "where",
]

HISTORY_DIR = "_history"
#: Runs of one day gathered into one segment file (32 runs: under three hours at one run every five minutes).
SEGMENT_RUNS = 32
#: Closed days a writer looks back at for run files no segment covers yet (a run finishing after midnight).
LOOKBACK_DAYS = 3
#: The columns the analyses need; :func:`load_history` reads only these unless told otherwise.
ANALYSIS_COLUMNS = ("run_key", "run_id", "env", "series", "phase", "check", "status", "category",
                    "run_started_at", "duration_s", "sla_s")
#: Environments in the order a person expects them side by side; others follow alphabetically.
ENV_ORDER = ("local", "staging", "production")
KEYS = ["env", "series", "phase", "check"]
SERIES = ["env", "series"]
_DETAIL_LIMIT = 4000
_FAILING = ("fail", "error")
_PASSED = {**{s: 1.0 for s in PASSING}, **{s: 0.0 for s in _FAILING}, "skip": float("nan")}


# -- the dataset's schema --------------------------------------------------------------------------

def _schema():
    """The dataset's columns: the run's key, start and series, then every Record field typed by its kind
    (records.RECORD_KINDS, the one schema of a record)."""
    import pyarrow as pa
    ts = pa.timestamp("us", tz="UTC")
    arrow = {"text": pa.string(), "time": ts, "float": pa.float64(), "code": pa.int32(), "count": pa.int64(),
             "list": pa.list_(pa.string())}
    fields = [pa.field("run_key", pa.string()), pa.field("run_started_at", ts), pa.field("series", pa.string())]
    fields += [pa.field(name, arrow[kind]) for name, kind in RECORD_KINDS.items()]
    return pa.schema(fields)


_parse_time = parse_time


_STAMP = re.compile(r"^(\d{8}T\d{6})Z")


def _run_start(info: dict[str, Any], rows: list[dict[str, Any]], run_dir: Path) -> datetime:
    """When the run started: run.json, else its folder's UTC stamp, else its first record."""
    start = _parse_time(info.get("started_at"))
    if start is None and (m := _STAMP.match(run_dir.name)):
        start = datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
    if start is None:
        times = [t for t in (_parse_time(r.get("started_at")) for r in rows) if t is not None]
        start = min(times) if times else datetime.now(timezone.utc)
    return start.astimezone(timezone.utc)


def series_of(run_dir: Path, info: dict[str, Any]) -> str:
    """What a run talked to: ``reference platform (<era> era, faults: <profiles>)`` for ``netra-nb demo``
    (``run.json`` has ``era``; the port differs every run), else the ``base_url`` of the params file the
    run used (its copy ``params.yaml``), with the WebSocket URL when it is not ``<base>/ws``; "" when
    the folder says neither."""
    if info.get("era") is not None or info.get("fault") is not None:
        return f"reference platform ({info.get('era') or 'mid'} era, faults: {info.get('fault') or 'none'})"
    try:
        import yaml
        data = yaml.safe_load((run_dir / "params.yaml").read_text())
    except (OSError, ValueError, ImportError):
        return ""
    if not isinstance(data, dict) or not isinstance(data.get("base_url"), str):
        return ""
    base = data["base_url"].rstrip("/")
    ws = str(data.get("ws_url") or "")
    usual = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/ws"
    return base if not ws or ws == usual else f"{base} (ws {ws})"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:120] or "run"


def _cell(name: str, value: Any, arrow_type: Any) -> Any:
    import pyarrow as pa
    if value is None:
        return [] if pa.types.is_list(arrow_type) else None
    if pa.types.is_timestamp(arrow_type):
        return _parse_time(value)
    if pa.types.is_list(arrow_type):
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        if number != number:  # NaN
            return None
        return int(number) if pa.types.is_integer(arrow_type) else number
    if not isinstance(value, str):
        value = json.dumps(value, default=str)
    return clip(value, _DETAIL_LIMIT) if name == "detail" else value


def _run_table(rows: list[dict[str, Any]], run_key: str, started: datetime, run_id: str, env: str, series: str):
    import pyarrow as pa
    schema = _schema()
    base = {"run_key": run_key, "run_started_at": started, "series": series}
    columns: dict[str, list[Any]] = {}
    for f in schema:
        if f.name in base:
            columns[f.name] = [base[f.name]] * len(rows)
        elif f.name == "run_id":
            columns[f.name] = [str(r.get("run_id") or run_id) for r in rows]
        elif f.name == "env":
            columns[f.name] = [str(r.get("env") or env) for r in rows]
        else:
            columns[f.name] = [_cell(f.name, r.get(f.name), f.type) for r in rows]
    return pa.table(columns, schema=schema)


# -- writing -----------------------------------------------------------------------------------------

@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_once(table: Any, path: Path) -> bool:
    """Write a Parquet file under a temporary name and move it into place; never replaces a file."""
    import pyarrow.parquet as pq
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
    return True


def _read_rows(run_dir: Path) -> list[dict[str, Any]]:
    rows = list(read_jsonl(run_dir / "results.jsonl"))
    if not rows and (run_dir / "results.parquet").is_file():
        import pyarrow.parquet as pq
        rows = pq.read_table(run_dir / "results.parquet").to_pylist()
    return rows


def append_run(run_dir: Path, outputs_root: Path) -> None:
    """Add one run's records to the history under ``outputs_root/_history``.

    Append only: the run gets one new file, ``runs/env=<env>/date=<day>/run-<run folder>.parquet``;
    a second call for the same run finds that file and does nothing. A run without records adds
    nothing. Then, under a lock, the run's day gets a new segment once ``SEGMENT_RUNS`` of its runs
    are uncovered, and each closed day of the last ``LOOKBACK_DAYS`` gets its day file.
    """
    run_dir, outputs_root = Path(run_dir), Path(outputs_root)
    rows = _read_rows(run_dir)
    if not rows:
        return
    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        info = {}
    run_id = str(info.get("run_id") or rows[0].get("run_id") or run_dir.name)
    env = str(info.get("env") or rows[0].get("env") or "unknown")
    started = _run_start(info, rows, run_dir)
    run_key = _safe(run_dir.name if _STAMP.match(run_dir.name) else f"{started:%Y%m%dT%H%M%SZ}-{run_id}")
    root = outputs_root / HISTORY_DIR
    day = started.date()
    env_dir = f"env={_safe(env)}"
    with _locked(root):
        path = root / "runs" / env_dir / f"date={day.isoformat()}" / f"run-{run_key}.parquet"
        if not _write_once(_run_table(rows, run_key, started, run_id, env, series_of(run_dir, info)), path):
            return
        _compact(root, f"{env_dir}/date={day.isoformat()}", closed=False)
        for back in range(1, LOOKBACK_DAYS + 1):
            _compact(root, f"{env_dir}/date={(day - timedelta(days=back)).isoformat()}", closed=True)


_COMPACT = re.compile(r"^(seg|day)-(\d+)-[0-9a-f]+\.parquet$")


@dataclass
class _Partition:
    """One (env, date) folder pair, by file names only."""

    root: str
    rel: str  # "env=<env>/date=<day>"
    runs: list[str]  # run file names
    segments: list[tuple[int, str]]  # (runs covered, name)
    days: list[tuple[int, str]]

    @property
    def primary(self) -> tuple[list[str], int]:
        """The compacted files to read and how many runs they cover: the largest day file, else every segment.

        Segments are disjoint (written under the lock, each over runs no other covers); a day file
        covers every run its day had when it was written, so it replaces the segments.
        """
        folder = os.path.join(self.root, "compact", self.rel)
        if self.days:
            n, name = max(self.days)
            return [os.path.join(folder, name)], n
        return [os.path.join(folder, name) for _, name in self.segments], sum(n for n, _ in self.segments)

    def uncovered(self) -> list[str]:
        """Paths of the run files the primary files do not cover (opens only their run_key column)."""
        files, n = self.primary
        if n >= len(self.runs):
            return []
        import pyarrow.parquet as pq
        covered: set[str] = set()
        for f in files:
            covered.update(pq.read_table(f, columns=["run_key"]).column("run_key").unique().to_pylist())
        folder = os.path.join(self.root, "runs", self.rel)
        return [os.path.join(folder, r) for r in self.runs if r[4:-8] not in covered]


def _names(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if e.name.endswith(".parquet") and not e.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _partition(root: str, rel: str) -> _Partition:
    runs = [n for n in _names(os.path.join(root, "runs", rel)) if n.startswith("run-")]
    segments, days = [], []
    for name in _names(os.path.join(root, "compact", rel)):
        if m := _COMPACT.match(name):
            (segments if m.group(1) == "seg" else days).append((int(m.group(2)), name))
    return _Partition(root, rel, runs, segments, days)


def _compact(root: Path, rel: str, *, closed: bool) -> Path | None:
    """Write one compacted file for a day when it needs one (the caller holds the lock).

    A closed day (or one that already has a day file) gets a new day file covering all its runs
    when any run is uncovered; an open day gets a segment of its uncovered runs once there are
    ``SEGMENT_RUNS`` of them. Deciding needs only the folders' file names.
    """
    import pyarrow.dataset as ds
    part = _partition(str(root), rel)
    files, covered = part.primary
    missing = len(part.runs) - covered
    whole_day = closed or bool(part.days)
    if missing <= 0 or (not whole_day and missing < SEGMENT_RUNS):
        return None
    todo = part.uncovered()
    schema = _schema()
    sources = (files if whole_day else []) + todo
    table = ds.dataset(sources, schema=schema, format="parquet").to_table()
    table = table.sort_by([("run_started_at", "ascending"), ("run_key", "ascending")])
    names = part.runs if whole_day else [os.path.basename(t) for t in todo]
    digest = hashlib.sha1("\n".join(names).encode()).hexdigest()[:12]
    kind = "day" if whole_day else "seg"
    path = root / "compact" / rel / f"{kind}-{len(names)}-{digest}.parquet"
    return path if _write_once(table, path) else None


def compact_history(outputs_root: Path, *, env: str | None = None, include_today: bool = False) -> list[Path]:
    """Write the day file of every closed day that lacks one (maintenance; :func:`append_run` does
    the last ``LOOKBACK_DAYS``). Today's runs still arrive, so today only ever gets segments (with
    ``include_today``): a day file for an open day would be rewritten whole by every later run."""
    root = Path(outputs_root) / HISTORY_DIR
    today = datetime.now(timezone.utc).date()
    written = []
    with _locked(root):
        for rel, day in _partition_names(str(root), env, None, None):
            if day < today or include_today:
                path = _compact(root, rel, closed=day < today)
                if path is not None:
                    written.append(path)
    return written


# -- reading -----------------------------------------------------------------------------------------

def _partition_names(root: str, env: str | None, since: date | None, until: date | None) -> list[tuple[str, date]]:
    """The ("env=<env>/date=<day>", day) pairs present under runs/ or compact/, pruned by env and dates."""
    found: set[tuple[str, date]] = set()
    for tree in ("runs", "compact"):
        for env_dir in _dirs(os.path.join(root, tree), "env="):
            if env is not None and env_dir != f"env={_safe(env)}":
                continue
            for date_dir in _dirs(os.path.join(root, tree, env_dir), "date="):
                try:
                    day = date.fromisoformat(date_dir[5:])
                except ValueError:
                    continue
                if (since is None or day >= since) and (until is None or day <= until):
                    found.add((f"{env_dir}/{date_dir}", day))
    return sorted(found, key=lambda p: (p[1], p[0]))


def _dirs(folder: str, prefix: str) -> list[str]:
    try:
        with os.scandir(folder) as it:
            return [e.name for e in it if e.name.startswith(prefix) and e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def history_files(outputs_root: Path | str, *, env: str | None = None, since: datetime | None = None,
                  until: datetime | None = None) -> list[str]:
    """The files :func:`load_history` reads for this selection: each day's day file (or segments),
    then the run files they do not cover. Partitions are pruned by their folder names."""
    root = os.path.join(os.fspath(outputs_root), HISTORY_DIR)
    d0 = since.astimezone(timezone.utc).date() if since else None
    d1 = until.astimezone(timezone.utc).date() if until else None
    # Each partition is listed before any file in it is read, compacted files before run files: a
    # file a writer adds meanwhile is simply not read, and the runs it copies are read from their
    # own files, so a reader sees every run once.
    primary: list[str] = []
    rest: list[str] = []
    for rel, _ in _partition_names(root, env, d0, d1):
        part = _partition(root, rel)
        primary += part.primary[0]
        rest += part.uncovered()
    return primary + rest


def load_history(
    outputs_root: Path | str,
    *,
    env: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    days: float | None = None,
    columns: Sequence[str] | None = ANALYSIS_COLUMNS,
):
    """The history as a DataFrame: one row per check per run, oldest run first.

    ``env`` (None: all), ``since``/``until`` (UTC datetimes) or ``days`` (the last N days) select
    partitions by their folder names before any file is opened; only ``columns`` are read (None:
    all). Low-cardinality text columns come back as categoricals. An empty history gives an empty
    frame with the requested columns.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if days is not None:
        since = datetime.now(timezone.utc) - timedelta(days=days)
    schema = _schema()
    wanted = list(schema.names) if columns is None else list(dict.fromkeys([*columns, "run_key", "env", "run_started_at"]))
    unknown = [c for c in wanted if c not in schema.names]
    if unknown:
        raise KeyError(f"not history columns: {unknown}")
    files = history_files(outputs_root, env=env, since=since, until=until)
    if files:
        table = ds.dataset(files, schema=schema, format="parquet").to_table(columns=wanted)
    else:
        table = schema.empty_table().select(wanted)
    t = table.column("run_started_at")
    bounds = []
    if since is not None:
        bounds.append(pc.greater_equal(t, pa.scalar(since.astimezone(timezone.utc), t.type)))
    if until is not None:
        bounds.append(pc.less_equal(t, pa.scalar(until.astimezone(timezone.utc), t.type)))
    if bounds:
        table = table.filter(bounds[0] if len(bounds) == 1 else pc.and_(*bounds))
    for i, name in enumerate(table.column_names):
        if name in ("env", "series", "phase", "check", "status", "category", "run_key", "run_id"):
            table = table.set_column(i, name, table.column(name).dictionary_encode())
    df = table.to_pandas()
    # Files come day by day; a stable sort on the start time alone keeps each run's rows together.
    if len(df) and not df["run_started_at"].is_monotonic_increasing:
        df = df.sort_values("run_started_at", kind="stable", ignore_index=True)
    return df


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


# -- the CLI -------------------------------------------------------------------------------------------

HISTORY_NOTEBOOK = NOTEBOOKS["history"]
#: Seconds the history notebook may take (a year of history needs well under a minute).
NOTEBOOK_TIMEOUT_S = 600


def history_main(env: str | None, out: Path) -> int:
    """``netra-nb history``: execute notebook 91 into ``out/_history/report-<UTC>.ipynb`` (+ ``.html``).

    Prints the notebook's path as the last line. 0 on success; 2 when there is no history (for
    ``env``); 3 when the notebook failed (its error is in the executed notebook).
    """
    out = Path(out)
    if not _partition_names(os.path.join(out, HISTORY_DIR), env, None, None):
        where = f" for env {env!r}" if env else ""
        print(f"netra-nb history: no history{where} under {out / HISTORY_DIR}: every finished run adds "
              f"to it (netra-nb run ENV --out {out})", file=sys.stderr)
        return 2
    import time
    from .engine import notebooks_dir, run_notebook
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    notebook = out.resolve() / HISTORY_DIR / f"report-{stamp}.ipynb"
    result = run_notebook(notebooks_dir() / HISTORY_NOTEBOOK, notebook,
                           {"outputs_root": str(out.resolve()), "env": env, "last_n_runs": 100},
                           time.monotonic() + NOTEBOOK_TIMEOUT_S, notebook.parent / "papermill.log")
    error = result.get("error") or {}
    problem = f"{error.get('ename')}: {error.get('evalue')}" if result["status"] != "ok" else None
    if notebook.exists():
        try:
            import nbformat
            from .report import export_html
            print(export_html(nbformat.read(str(notebook), as_version=4), notebook.with_suffix(".html"),
                              title="Netra run history"))
        except Exception as exc:  # noqa: BLE001 - the notebook is the artifact; the HTML is a copy
            print(f"netra-nb history: HTML export failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    if problem:
        print(f"netra-nb history: the history notebook failed: {problem}", file=sys.stderr)
        print(notebook)
        return 3
    print(notebook)
    return 0
