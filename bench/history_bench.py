"""How fast is the run history on a year of runs every five minutes?  ``python -m bench.history_bench``

Generates a synthetic year (staging every 5 minutes, production hourly: ~114,000 runs, ~1.1 million
records) with a few flaky checks, a few newly failing ones and some outages, written straight into
``netra_nb.history``'s layout in its steady state (a day file per closed day, today's runs in
segments and a tail of run files, every run file and superseded segment present). Then it times the
load and each analysis, one real ``append_run`` on top of the year, and the naive alternatives:

* one ``results.jsonl`` per run folder, every file parsed (what a reader without a history does);
* one Parquet file per run with no segments (timed on a sample, scaled up to the year).

Options: ``--days N`` (default 365), ``--dir PATH`` (default: a new folder under bench/out/), ``--keep``
(leave the generated files), ``--skip-naive``, ``--sample-runs N`` (the per-run Parquet sample).

The run files and segments that compacted files cover are written empty: a reader that opened
one would fail, which proves it only lists them (a real history has real files there, which the
reader also only lists).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from netra_nb import history as h
from netra_nb.records import read_jsonl

# (phase, check, median seconds, SLA seconds, category when it fails)
CHECKS = [
    ("connectivity", "health", 0.12, 2.0, "http_unavailable"),
    ("connectivity", "api_health", 0.15, 2.0, "health_degraded"),
    ("connectivity", "service_discovery", 0.2, 2.0, "http_server_error"),
    ("connectivity", "auth_token", 0.35, 2.0, "http_auth_rejected"),
    ("connectivity", "websocket_connect", 0.6, 2.0, "ws_handshake_timeout"),
    ("connectivity", "websocket_ping", 0.7, 2.0, "ws_closed_early"),
    ("agent_pipeline", "agent_discovery", 0.3, 2.0, "http_server_error"),
    ("agent_pipeline", "agent_configuration", 0.25, 2.0, "contract_mismatch"),
    ("agent_pipeline", "agent_run", 6.0, 15.0, "ws_internal_error"),
    ("orchestration", "concurrent_agent_runs", 9.0, 15.0, "agent_no_events"),
]
ENVS = {"staging": 5, "production": 60}  # minutes between runs
FLAKY = {"websocket_ping": 0.12, "concurrent_agent_runs": 0.25}  # failure probability
NEWLY_FAILING = {("staging", "agent_run"): timedelta(days=2), ("staging", "api_health"): timedelta(hours=6),
                 ("production", "agent_discovery"): timedelta(days=1)}  # failing for this long, until now
OUTAGES = 24  # staging windows of 1–3 hours where everything fails with http_unavailable


def generate(end: datetime, days: int, seed: int = 0) -> pa.Table:
    """The whole history as one Arrow table in the dataset's schema (vectorized: no per-run loop)."""
    rng = np.random.default_rng(seed)
    schema = h._schema()
    n_checks = len(CHECKS)
    parts = []
    end64 = np.datetime64(end.replace(tzinfo=None), "us")
    for env, every in ENVS.items():
        n_runs = days * 24 * 60 // every
        starts = end64 - (n_runs - 1 - np.arange(n_runs)) * np.timedelta64(every, "m")
        stamp = np.char.replace(np.char.replace(np.datetime_as_string(starts, unit="s"), "-", ""), ":", "")
        run_ids = np.char.mod("%08x", rng.integers(0, 2**32, n_runs, dtype=np.int64))
        run_keys = np.char.add(np.char.add(stamp, "Z-"), run_ids)
        rows = n_runs * n_checks
        run_of_row = np.repeat(np.arange(n_runs), n_checks)
        check_of_row = np.tile(np.arange(n_checks), n_runs)
        median = np.array([c[2] for c in CHECKS])[check_of_row]
        sla = np.array([c[3] for c in CHECKS])[check_of_row]
        duration = rng.lognormal(np.log(median), 0.35)
        run_start = starts[run_of_row]
        t_rel = (end64 - run_start) / np.timedelta64(1, "s")
        fail_p = np.full(rows, 0.002)
        for name, p in FLAKY.items():
            fail_p[check_of_row == [c[1] for c in CHECKS].index(name)] = p
        fail = rng.random(rows) < fail_p
        category = np.array([c[4] for c in CHECKS], dtype=object)[check_of_row]
        for (e, name), span in NEWLY_FAILING.items():
            if e == env:
                hit = (check_of_row == [c[1] for c in CHECKS].index(name)) & (t_rel <= span.total_seconds())
                fail |= hit
        if env == "staging":
            outage_starts = rng.uniform(3 * 86400, days * 86400, OUTAGES)
            outage_len = rng.uniform(3600, 3 * 3600, OUTAGES)
            in_outage = np.zeros(rows, dtype=bool)
            for s, length in zip(outage_starts, outage_len):
                in_outage |= (t_rel <= s) & (t_rel > s - length)
            fail |= in_outage
            category = np.where(in_outage, "http_unavailable", category)
        status = np.where(fail, "fail", np.where(duration > sla, "degraded", "pass"))
        category = np.where(fail, category, "ok")
        message = np.where(fail, "check failed: " + category.astype(str), "passed")
        offsets = np.cumsum(np.where(check_of_row == 0, 0.0, np.roll(duration, 1)))
        offsets -= np.repeat(offsets[::n_checks], n_checks)
        started_at = run_start + (offsets * 1e6).astype("timedelta64[us]")
        columns = {
            "run_key": pa.array(run_keys[run_of_row]),
            "run_started_at": pa.array(run_start).cast(pa.timestamp("us", tz="UTC")),
            "run_id": pa.array(run_ids[run_of_row]),
            "env": pa.array(np.full(rows, env)),
            "phase": pa.array(np.array([c[0] for c in CHECKS])[check_of_row]),
            "check": pa.array(np.array([c[1] for c in CHECKS])[check_of_row]),
            "status": pa.array(status),
            "category": pa.array(category.astype(str)),
            "started_at": pa.array(started_at).cast(pa.timestamp("us", tz="UTC")),
            "duration_s": pa.array(duration),
            "message": pa.array(message.astype(str)),
            "detail": pa.array(np.full(rows, "")),
            "sla_s": pa.array(sla),
            "timeout_s": pa.array(sla * 2),
            "bytes_sent": pa.array(np.full(rows, 512, dtype=np.int64)),
            "bytes_received": pa.array(np.full(rows, 2048, dtype=np.int64)),
        }
        arrays = []
        for f in schema:
            if f.name in columns:
                arrays.append(columns[f.name].cast(f.type))
            elif pa.types.is_list(f.type):
                arrays.append(pa.ListArray.from_arrays(pa.array(np.zeros(rows + 1, dtype=np.int32)), pa.array([], pa.string())))
            else:
                arrays.append(pa.nulls(rows, f.type))
        parts.append(pa.Table.from_arrays(arrays, schema=schema))
    return pa.concat_tables(parts)


def write_layout(table: pa.Table, outputs_root: Path) -> dict[str, int]:
    """Write the table as the history's steady state: a day file per closed day, today's runs in
    segments of SEGMENT_RUNS and a tail of run files. Files a reader must only list are empty."""
    root = outputs_root / h.HISTORY_DIR
    env = table.column("env").to_numpy(zero_copy_only=False)
    starts = table.column("run_started_at").to_numpy()
    day = starts.astype("datetime64[D]")
    keys = table.column("run_key").to_numpy(zero_copy_only=False)
    # rows are grouped by env, then by run in time order; a new run starts where the key changes
    new_run = np.r_[True, keys[1:] != keys[:-1]]
    run_start_rows = np.flatnonzero(new_run)
    run_env, run_day, run_key = env[run_start_rows], day[run_start_rows], keys[run_start_rows]
    bounds = np.r_[run_start_rows, len(keys)]
    last_day = {e: run_day[run_env == e].max() for e in np.unique(run_env)}
    files = {"run files (real)": 0, "run files (placeholders)": 0}
    made_dirs: set[Path] = set()

    def folder(tree: str, e: str, d: np.datetime64) -> Path:
        p = root / tree / f"env={e}" / f"date={d}"
        if p not in made_dirs:
            p.mkdir(parents=True, exist_ok=True)
            made_dirs.add(p)
        return p

    def put(kind: str, e: str, d: np.datetime64, s: int, t: int, placeholder: bool = False) -> None:
        names = [f"run-{k}.parquet" for k in run_key[s:t]]
        digest = hashlib.sha1("\n".join(names).encode()).hexdigest()[:12]
        path = folder("compact", e, d) / f"{kind}-{t - s}-{digest}.parquet"
        if placeholder:
            path.touch()
        else:
            pq.write_table(table.slice(bounds[s], bounds[t] - bounds[s]), path, compression="zstd")
        files[f"{kind} files" + (" (placeholders)" if placeholder else "")] = files.get(
            f"{kind} files" + (" (placeholders)" if placeholder else ""), 0) + 1

    i = 0
    n_runs = len(run_key)
    while i < n_runs:
        e, d = run_env[i], run_day[i]
        j = i
        while j < n_runs and run_env[j] == e and run_day[j] == d:
            j += 1
        # runs i..j-1 are one partition; during the day a segment per SEGMENT_RUNS runs was written
        full = (j - i) // h.SEGMENT_RUNS * h.SEGMENT_RUNS
        closed = d != last_day[e]
        for s in range(i, i + full, h.SEGMENT_RUNS):
            put("seg", e, d, s, s + h.SEGMENT_RUNS, placeholder=closed)  # a closed day's segments are no longer read
        if closed:
            put("day", e, d, i, j)
        for r in range(i, j):
            path = folder("runs", e, d) / f"run-{run_key[r]}.parquet"
            if closed or r < i + full:
                path.touch()
                files["run files (placeholders)"] += 1
            else:
                pq.write_table(table.slice(bounds[r], bounds[r + 1] - bounds[r]), path, compression="zstd")
                files["run files (real)"] += 1
        i = j
    return files


def write_jsonl_runs(table: pa.Table, root: Path, limit_runs: int | None = None) -> int:
    """The naive alternative: one run folder with results.jsonl per run (records as the runner writes them)."""
    df = table.select([c for c in table.column_names if c not in ("run_key", "run_started_at")]).to_pandas()
    df["started_at"] = df["started_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lines = df.to_json(orient="records", lines=True).splitlines()
    keys = table.column("run_key").to_numpy(zero_copy_only=False)
    env = table.column("env").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    bounds = np.r_[starts, len(keys)]
    count = len(starts) if limit_runs is None else min(limit_runs, len(starts))
    for i in range(count):
        folder = root / env[starts[i]] / keys[starts[i]]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.jsonl").write_text("\n".join(lines[bounds[i]:bounds[i + 1]]) + "\n")
    return count


def naive_load_jsonl(root: Path) -> pd.DataFrame:
    """Read every run folder's results.jsonl (with the project's reader) into one typed frame."""
    rows = []
    for env_dir in os.scandir(root):
        for run in os.scandir(env_dir.path):
            for rec in read_jsonl(Path(run.path) / "results.jsonl"):
                rec["run_key"] = run.name
                rows.append(rec)
    df = pd.DataFrame(rows)
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True, format="ISO8601")
    df["run_started_at"] = df.groupby("run_key")["started_at"].transform("min")
    return df


def naive_load_run_parquet(root: Path) -> pd.DataFrame:
    import pyarrow.dataset as ds
    paths = [str(p) for p in root.rglob("run-*.parquet")]
    return ds.dataset(paths, schema=h._schema(), format="parquet").to_table(columns=list(h.ANALYSIS_COLUMNS)).to_pandas()


def timed(label: str, fn, results: dict[str, float]):
    t0 = time.perf_counter()
    value = fn()
    results[label] = time.perf_counter() - t0
    print(f"  {label:<48} {results[label]:8.3f} s", flush=True)
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.history_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--dir", help="where to generate (default: a new folder under bench/out/)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--sample-runs", type=int, default=10_000, help="runs in the per-run-Parquet sample")
    args = ap.parse_args(argv)
    if args.dir:
        base = Path(args.dir).resolve()
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
    else:  # a folder of its own: two benchmarks at once must not delete each other's files
        out_dir = Path(__file__).resolve().parent / "out"
        out_dir.mkdir(parents=True, exist_ok=True)
        base = Path(tempfile.mkdtemp(prefix="history-", dir=out_dir)).resolve()
    outputs = base / "outputs"
    t: dict[str, float] = {}
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    end -= timedelta(minutes=end.minute % 5)

    print(f"generating {args.days} days: " + ", ".join(f"{e} every {m} min" for e, m in ENVS.items()))
    table = timed("generate (vectorized)", lambda: generate(end, args.days), t)
    runs = len(pc.unique(table.column("run_key")))
    print(f"  {runs:,} runs, {table.num_rows:,} records")
    files = timed("write the dataset layout", lambda: write_layout(table, outputs), t)
    print("  " + ", ".join(f"{v:,} {k}" for k, v in files.items()))
    seg_bytes = sum(p.stat().st_size for p in (outputs / h.HISTORY_DIR / "compact").rglob("*.parquet"))
    print(f"  compacted files on disk: {seg_bytes / 1e6:.1f} MB")

    print(f"\nnetra_nb.history on {args.days} days:")
    df = timed("load_history (all envs, analysis columns)", lambda: h.load_history(outputs), t)
    assert len(df) == table.num_rows, (len(df), table.num_rows)
    timed("load_history (staging, last 7 days)", lambda: h.load_history(outputs, env="staging", days=7), t)
    timed("load_history (all columns)", lambda: h.load_history(outputs, columns=None), t)
    timed("runs_table (outages)", lambda: h.runs_table(df), t)
    timed("duration_trend (per day)", lambda: h.duration_trend(df, freq="D"), t)
    timed("duration_trend (per 288 runs)", lambda: h.duration_trend(df, every_n_runs=288), t)
    flaky = timed("flaky_checks (last 100 runs)", lambda: h.flaky_checks(df, last_n_runs=100), t)
    timed("flaky_checks (whole year)", lambda: h.flaky_checks(df, last_n_runs=None), t)
    failing = timed("failing_streaks", lambda: h.failing_streaks(df), t)
    timed("compare_envs (last 20 runs)", lambda: h.compare_envs(df), t)
    analysis = sum(v for k, v in t.items() if k.startswith(("runs_table", "duration_trend (per day)", "flaky_checks (last",
                                                              "failing_streaks", "compare_envs")))
    print(f"  {'load + the notebook analyses':<48} {t['load_history (all envs, analysis columns)'] + analysis:8.3f} s")

    run_dir = base / "run" / f"{end:%Y%m%dT%H%M%SZ}-benchrun"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": "benchrun", "env": "staging",
                                                  "started_at": end.isoformat().replace("+00:00", "Z")}))
    (run_dir / "results.jsonl").write_text("".join(
        json.dumps({"run_id": "benchrun", "env": "staging", "phase": p, "check": c, "status": "pass", "category": "ok",
                    "started_at": end.isoformat(), "duration_s": m, "message": "ok", "sla_s": s}) + "\n"
        for p, c, m, s, _ in CHECKS))
    timed("append_run (one run onto the year)", lambda: h.append_run(run_dir, outputs), t)

    print("\nwhat the history found:")
    print("  flaky:", ", ".join(f"{r.env}/{r.check} ({r.flip_rate:.2f})" for r in flaky[flaky["flaky"]].itertuples()))
    print("  failing now:", ", ".join(f"{r.env}/{r.check} since {r.first_failed_at:%Y-%m-%d %H:%M} (last pass {r.last_passed_at:%Y-%m-%d %H:%M})"
                                      for r in failing.itertuples()))
    print(f"  outage runs: {int(h.runs_table(df)['outage'].sum()):,}")

    if not args.skip_naive:
        print("\nnaive alternatives:")
        naive_root = base / "naive-jsonl"
        n = timed("write one results.jsonl per run (setup)", lambda: write_jsonl_runs(table, naive_root), t)
        ndf = timed("naive: read every run's results.jsonl", lambda: naive_load_jsonl(naive_root), t)
        assert len(ndf) == table.num_rows and n == runs
        sample_root = base / "naive-run-parquet"
        sample = min(args.sample_runs, runs)
        keys = table.column("run_key").to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        bounds = np.r_[starts, len(keys)]
        sample_root.mkdir(parents=True)
        for i in range(sample):
            pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), sample_root / f"run-{keys[starts[i]]}.parquet")
        timed(f"naive: one Parquet file per run ({sample:,} runs)", lambda: naive_load_run_parquet(sample_root), t)
        per_run = t[f"naive: one Parquet file per run ({sample:,} runs)"] * runs / sample
        ours = t["load_history (all envs, analysis columns)"]
        jsonl = t["naive: read every run's results.jsonl"]
        print(f"\n{f'load {args.days} days':<46} {'seconds':>9} {'× ours':>8}")
        print(f"{'netra_nb.history (segments + run files)':<46} {ours:9.2f} {1:8.1f}")
        print(f"{'every run folder results.jsonl':<46} {jsonl:9.2f} {jsonl / ours:8.1f}")
        print(f"{'one Parquet file per run (scaled from sample)':<46} {per_run:9.2f} {per_run / ours:8.1f}")
    if args.keep:
        print(f"\nkept: {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
