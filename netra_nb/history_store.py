"""The run history's store: every run's records in one dataset under ``outputs/_history/``.

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

What is analysed over it is :mod:`netra_nb.history_analysis`; its charts :mod:`netra_nb.history_plots`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from .records import RECORD_KINDS, parse_time, read_jsonl
from .redact import clip
from .runfolder import folder_name, folder_time

HISTORY_DIR = "_history"
#: Runs of one day gathered into one segment file (32 runs: under three hours at one run every five minutes).
SEGMENT_RUNS = 32
#: Closed days a writer looks back at for run files no segment covers yet (a run finishing after midnight).
LOOKBACK_DAYS = 3
#: The columns the analyses need; :func:`load_history` reads only these unless told otherwise.
ANALYSIS_COLUMNS = ("run_key", "run_id", "env", "series", "phase", "check", "status", "category",
                    "run_started_at", "duration_s", "sla_s")
_DETAIL_LIMIT = 4000


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


def _run_start(info: dict[str, Any], rows: list[dict[str, Any]], run_dir: Path) -> datetime:
    """When the run started: run.json, else its folder's UTC stamp, else its first record."""
    start = _parse_time(info.get("started_at"))
    if start is None:
        start = folder_time(run_dir.name)
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
    run_key = _safe(run_dir.name if folder_time(run_dir.name) is not None else folder_name(started, run_id))
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
