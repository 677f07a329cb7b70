"""A run folder's files for machines and for CI, written from its rows once the phases have ended:
``results.parquet``, ``events.parquet``, ``junit.xml``, ``summary.md`` and the history entry.

``netra-nb run`` has a kernel forked from its zygote write them (pandas and pyarrow are imported there
already) while the report kernel executes the report; ``netra-nb report`` writes them in its own process.
One file failing never loses the others: :func:`write_artifacts` returns what failed, as text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from .records import FRAME_KINDS, RECORD_KINDS, Record, read_frames, read_records
from .runfolder import read_run_json

__all__ = ["write_artifacts", "to_parquet", "PARQUET_FILES"]

#: The Parquet files of a run folder (redacted where they are written: :func:`netra_nb.redact.scrub_files`).
PARQUET_FILES = ("results.parquet", "events.parquet")


def write_artifacts(run_dir: str | Path, records: Sequence[Record] | None = None,
                    frames: Sequence[dict[str, Any]] | None = None, summary: dict[str, Any] | None = None) -> list[str]:
    """Parquet, JUnit, summary.md and the history entry of ``run_dir`` (rows, frames and ``summary.json`` read
    from the folder when not given); the problems, one line each (empty: every file was written)."""
    run_dir = Path(run_dir)
    records = list(records) if records is not None else read_records(run_dir)
    frames = list(frames) if frames is not None else read_frames(run_dir)
    if summary is None:
        summary = json.loads((run_dir / "summary.json").read_text())
    problems = []
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("results.parquet", lambda: to_parquet([r.to_dict() for r in records], RECORD_KINDS, run_dir / "results.parquet")),
        ("events.parquet", lambda: to_parquet(list(frames), FRAME_KINDS, run_dir / "events.parquet")),
        ("junit.xml", lambda: _write_junit(run_dir, records)),
        ("summary.md", lambda: _write_summary_md(run_dir, records, summary, frames)),
        ("history", lambda: _append_history(run_dir, summary)),
    ]
    for name, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - one artifact failing must not lose the others
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    return problems


def to_parquet(rows: list[dict[str, Any]], kinds: dict[str, str], path: Path) -> None:
    """Rows typed by their fields' kinds (records.RECORD_KINDS / FRAME_KINDS: the one schema of a record)."""
    import pandas as pd
    df = pd.DataFrame(rows, columns=list(kinds))
    for col, kind in kinds.items():
        if kind == "list":
            df[col] = df[col].map(lambda v: list(v) if isinstance(v, (list, tuple)) else [])
        elif kind == "code":
            df[col] = pd.array(df[col], dtype="Int64")
        elif kind == "count":
            df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype("int64")
    if "worker" in df:  # frames: a string column, null unless the fleet ran on a Dask cluster
        df["worker"] = df["worker"].astype("string")
    df.to_parquet(path, index=False)


def _write_junit(run_dir: Path, records: Sequence[Record]) -> None:
    from .junit import write_junit
    write_junit(run_dir, list(records))


def _write_summary_md(run_dir: Path, records: Sequence[Record], summary: dict[str, Any], frames: Sequence[dict[str, Any]]) -> None:
    from .narrative import write_summary_md
    write_summary_md(run_dir, records, summary, frames)


def _append_history(run_dir: Path, summary: dict[str, Any]) -> None:
    from .history import append_run
    if summary.get("env") != "triage":  # the history compares environments; a pytest triage is not one
        append_run(run_dir, Path(read_run_json(run_dir).get("outputs_root") or run_dir.parent.parent))
