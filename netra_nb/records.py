"""The result record (one per check) and the run folder's append-only logs.

The record's fields are fixed by ``design.md``; a few extra evidence fields follow them
(readers ignore what they do not know). Records are written to ``results.jsonl`` one line per
check, appended and flushed the moment the check ends, so a run killed half-way keeps every
completed check. WebSocket frames go to ``events.jsonl`` the same way.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = [
    "Record",
    "Frame",
    "STATUSES",
    "PASSING",
    "RECORD_FIELDS",
    "FRAME_FIELDS",
    "RECORD_KINDS",
    "FRAME_KINDS",
    "field_kinds",
    "append_jsonl",
    "read_jsonl",
    "load_records",
    "read_records",
    "read_frames",
    "utc_now",
    "parse_time",
    "field_of",
]

#: A record's ``status``. ``degraded`` passed but was slower than its SLA.
STATUSES = ("pass", "fail", "error", "skip", "degraded")
#: Statuses that count as "the platform did the thing".
PASSING = frozenset({"pass", "degraded"})


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (``Z``, an offset, or naive = UTC) as an aware datetime; None when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def field_of(r: "Record | dict[str, Any]", key: str, default: Any = None) -> Any:
    """A field of a Record or of a record dict (readers get either)."""
    return getattr(r, key, default) if isinstance(r, Record) else r.get(key, default)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Record:
    """One check's verdict and the evidence behind it (the schema of design.md)."""

    run_id: str
    env: str
    phase: str
    check: str
    status: str
    category: str
    started_at: str = field(metadata={"kind": "time"})  # ISO 8601, UTC
    duration_s: float
    message: str
    detail: str = ""
    http_status: int | None = None
    ws_close_code: int | None = None
    ws_close_reason: str | None = None
    ws_closed_by: str | None = None
    connect_s: float | None = None
    ws_open_s: float | None = None
    first_event_s: float | None = None
    ttfb_s: float | None = None
    events_seen: list[str] = field(default_factory=list)
    events_missing: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    bytes_received: int = 0
    # -- extra evidence (beyond design.md's fixed fields) --
    target: str | None = None  # the URL the check called (token query strings redacted)
    tls_s: float | None = None
    timeout_s: float | None = None  # the check's deadline
    sla_s: float | None = None  # slower than this (but within the deadline) is `degraded`
    connection_id: str | None = None  # server-provided identifiers
    server_run_id: str | None = None
    findings: list[str] = field(default_factory=list)  # e.g. ["no_network_io"], from triage

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")

    @property
    def passed(self) -> bool:
        return self.status in PASSING

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copy is slow for the many rows of a large run.
        return {name: getattr(self, name) for name in RECORD_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Record":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(Record))

#: The kinds of value a field holds, from its annotation (``metadata["kind"]`` when the annotation cannot say):
#: the typed tables (``results.parquet``, ``events.parquet``, the history's Arrow schema) derive their types
#: from these.
KINDS = {
    "text": "a string (None allowed)",
    "time": "an ISO 8601 time, typed as a UTC timestamp",
    "float": "a float (None allowed)",
    "code": "a small integer that may be missing (an HTTP status, a close code): nullable 32-bit",
    "count": "a count, never missing (0): 64-bit",
    "list": "a list of strings",
}


def field_kinds(cls: type) -> dict[str, str]:
    """Each field of a record dataclass and its kind (a key of :data:`KINDS`), read from its annotation."""
    out = {}
    for f in dataclasses.fields(cls):
        ann = str(f.type).replace(" ", "")
        kind = f.metadata.get("kind") or {
            "list[str]": "list", "int|None": "code", "int": "count", "float": "float", "float|None": "float",
        }.get(ann, "text")
        if kind not in KINDS:
            raise ValueError(f"{cls.__name__}.{f.name}: unknown kind {kind!r}")
        out[f.name] = kind
    return out


RECORD_KINDS = field_kinds(Record)


@dataclass(frozen=True)
class Frame:
    """One WebSocket frame sent or received during a check (a row of ``events.parquet``)."""

    run_id: str
    phase: str
    check: str
    seq: int  # order within the check
    t_s: float  # seconds since the check's connection attempt started
    direction: str  # "sent" | "received" | "close"
    type: str  # the raw ``type`` (or a marker such as "<binary>", "<non-json>", "close")
    event: str  # the normalized event name (see netra_nb.frames)
    size: int  # bytes of payload
    run: str | None = None  # the run_id the frame names, if any
    user_id: str | None = None
    text: str = ""  # the payload (truncated, secrets redacted)
    session: int = 0  # which session of the check (orchestration has many)
    worker: str | None = None  # the Dask worker whose session it was (--cluster); None: the phase's own process
    # -- a close (direction "close"): what the observation knew, so no reader parses ``text`` for it --
    close_code: int | None = None
    close_reason: str | None = None
    closed_by: str | None = None  # "server" | "client" | None (no close frame: nobody closed)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FRAME_FIELDS}


FRAME_FIELDS = tuple(f.name for f in dataclasses.fields(Frame))
FRAME_KINDS = field_kinds(Frame)


def append_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    """Append rows to a JSON-lines file in one write under an exclusive lock.

    Several kernels (one per phase) append to the same file at once; the lock and the single
    ``os.write`` of whole lines keep every line intact, and the data is in the file (the page
    cache) when this returns, so a SIGKILL afterwards loses nothing.
    """
    data = "".join(json.dumps(r, default=str, ensure_ascii=False) + "\n" for r in rows).encode()
    if not data:
        return
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)  # closing releases the lock


def _jsonl_objects(path: str | os.PathLike[str]) -> Iterator[dict[str, Any] | None]:
    """Each non-empty line of a JSON-lines file as a JSON object, or None when it is not one (torn)."""
    p = Path(path)
    if not p.exists():
        return
    with p.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                yield None
                continue
            yield obj if isinstance(obj, dict) else None


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield each valid JSON object of a JSON-lines file; a torn last line is skipped."""
    return (obj for obj in _jsonl_objects(path) if obj is not None)


def load_records(path: str | os.PathLike[str]) -> tuple[list[Record], int]:
    """The readable records of a ``results.jsonl`` and how many non-empty lines were not records
    (torn, or JSON of another shape)."""
    out, bad = [], 0
    for obj in _jsonl_objects(path):
        try:
            out.append(Record.from_dict(obj))  # type: ignore[arg-type]
        except (ValueError, TypeError, AttributeError):
            bad += 1
    return out, bad


def read_records(run_dir: str | os.PathLike[str]) -> list[Record]:
    """The readable records of a run folder (lines that are not records are left out)."""
    return load_records(Path(run_dir) / "results.jsonl")[0]


def read_frames(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    return list(read_jsonl(Path(run_dir) / "events.jsonl"))
