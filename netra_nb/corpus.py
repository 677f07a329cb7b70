"""``netra-nb corpus add RUN_DIR NAME``: a recorded run becomes a regression test under ``tests/corpus/NAME``.

An entry holds what a replay needs and what it must conclude, nothing secret:

* ``wire.jsonl``: the run's wire recording (already redacted; redacted again on the way);
* ``results.jsonl``: one row per check with its phase, status, category and message: the expected verdicts;
* ``run.json``: which run it was (folder name, environment, start, run id, fault profile and era if a demo, and
  the ``--note`` given: what the platform was).

``tests/test_corpus.py`` replays every entry and asserts each check's recorded status and category.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .params import ConfigError, check_name
from .redact import redact, redact_obj, scrub_tree
from .replay import load_recording
from .wire import WIRE_FILE, read_wire

__all__ = ["corpus_add", "EXPECTED_FIELDS"]

EXPECTED_FIELDS = ("phase", "check", "status", "category", "message")


def _results(path: Path) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such file: the run's verdicts are needed (is this a run folder?)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{path}:{n}: not a JSON line ({exc})") from None
        if not isinstance(row, dict) or any(k not in row for k in EXPECTED_FIELDS[:4]):
            raise ConfigError(f"{path}:{n}: a result row needs {', '.join(EXPECTED_FIELDS[:4])}")
        rows.append({k: redact(row.get(k)) for k in EXPECTED_FIELDS})
    if not rows:
        raise ConfigError(f"{path}: no result row")
    return rows


def corpus_add(run_dir: Path, name: str, root: Path, note: str | None = None) -> Path:
    """Copy ``run_dir``'s recording and verdicts to ``root/name``; the entry's path. ConfigError (exit 2) naming
    the path for a folder that is not a recorded run, a bad name or an entry that exists already."""
    check_name(name, "corpus entry name")
    run_dir = Path(run_dir)
    recording = load_recording(run_dir)  # a folder with a usable wire.jsonl, or ConfigError naming it
    results = _results(run_dir / "results.jsonl")
    entry = Path(root) / name
    if entry.exists():
        raise ConfigError(f"{entry}: the corpus already has an entry of that name (remove it, or pick another)")
    try:
        run = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        run = {}
    tmp = Path(root) / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        rows = [redact_obj(r) for r in read_wire(run_dir / WIRE_FILE)]
        (tmp / WIRE_FILE).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        (tmp / "results.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
        info = {"run": run.get("run") or run_dir.name, "env": run.get("env") or recording.info.get("env"),
                "started_at": run.get("started_at"), "run_id": run.get("run_id"),
                "fault": run.get("fault"), "era": run.get("era"), "note": note}
        (tmp / "run.json").write_text(json.dumps(redact_obj(info), indent=1) + "\n")
        scrub_tree(tmp)
        load_recording(tmp)
        tmp.rename(entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entry
