"""Run history: every run's records in one dataset, and the trends over it.

One module per concept, re-exported here (what ``notebooks/91_history.ipynb`` and ``netra-nb history``
use): :mod:`netra_nb.history_store` (the append-only Parquet dataset: writing, compacting, reading),
:mod:`netra_nb.history_analysis` (runs, trends, flaky checks, streaks, environments side by side: pure),
:mod:`netra_nb.history_plots` (their charts). This module holds the CLI, :func:`history_main`.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from .registry import NOTEBOOKS
from .runfolder import stamp
# The history's API, one module per concept (re-exported: notebook 91 and the tests use `history.X`).
from .history_analysis import (compare_envs, duration_trend, failing_streaks, flaky_checks,  # noqa: F401
                               outage_runs, overview, runs_table, where)
from .history_plots import plot_duration_trend, plot_env_comparison, plot_flaky, plot_pass_rate  # noqa: F401
from .history_store import (ANALYSIS_COLUMNS, HISTORY_DIR, SEGMENT_RUNS, _partition_names,  # noqa: F401
                            append_run, compact_history, history_files, load_history, series_of)

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
    notebook = out.resolve() / HISTORY_DIR / f"report-{stamp(datetime.now(timezone.utc))}.ipynb"
    result = run_notebook(notebooks_dir() / HISTORY_NOTEBOOK, notebook,
                           {"outputs_root": str(out.resolve()), "env": env, "last_n_runs": 100},
                           time.monotonic() + NOTEBOOK_TIMEOUT_S, notebook.parent / "papermill.log")
    error = result.get("error") or {}
    problem = f"{error.get('ename')}: {error.get('evalue')}" if result["status"] != "ok" else None
    if notebook.exists():
        try:
            import nbformat
            from .export import export_html
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
