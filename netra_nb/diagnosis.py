"""The run's diagnosis over its records and frames (pure): the golden-path verdict and its root causes.

The golden path is the one question the kit answers: did an agent actually start and return a
result? It is "working" only when an agent run delivered ``agent_started`` and
``agent_completed`` with a result, which is what a passing agent-run record means.

A failing run is explained in three layers, each built on the one before:

* :func:`findings` — one :class:`Finding` per failing category (the category table's view);
* :func:`failure_pattern` — what one failing check saw, as a key and a sentence: identical failures
  (the same close 1011 after the welcome, the same HTTP 503 body) share a key, so a report shows
  them once;
* :func:`root_causes` — one :class:`RootCause` per family of related categories (an HTTP 503 and a
  503 on the WebSocket upgrade are one outage), with its patterns, what the evidence shows, the
  next steps chosen from that evidence, and what is only history (``seen_before``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from .categories import SEVERITY, category_info
from .records import PASSING, Record, field_of, parse_time
from .redact import clip
from .text import _num
from .registry import PHASE_ORDER, phase_rank  # noqa: F401 - re-exported: the order of a run

__all__ = ["GoldenPath", "Finding", "Pattern", "PatternGroup", "RootCause", "SessionShape", "golden_path", "findings",
           "failure_pattern", "root_causes", "session_shape", "parse_close", "counts", "is_agent_run",
           "AGENT_RUN_CHECKS", "HONESTY", "PHASE_ORDER", "phase_rank", "end_time"]

#: The checks whose pass means a real agent run delivered the five events and a result.
AGENT_RUN_CHECKS = frozenset({"agent_run", "concurrent_agent_runs"})
#: Categories that say a result cannot be trusted rather than that the platform failed.
HONESTY = ("fake_fast", "no_network_io", "mock_fallback")
_TRIAGE_AGENT = re.compile(r"agent.*(execution|pipeline|run|event)|golden_path", re.I)
#: Categories that one fault produces together: a platform that is not serving answers 503 to HTTP calls
#: and to the WebSocket upgrade alike (failure-examples.md E10).
_FAMILY = {"ws_upgrade_unavailable": "http_unavailable", "ws_upgrade_server_error": "http_server_error",
           "ws_handshake_timeout": "read_timeout"}
_AGENT_FAILURES = ("agent_error", "agent_failed")


_get = field_of


def is_agent_run(r: Record | Mapping[str, Any]) -> bool:
    check = str(_get(r, "check", ""))
    if check in AGENT_RUN_CHECKS:
        return True
    return _get(r, "phase") == "triage" and bool(_TRIAGE_AGENT.search(check))


def _rank(category: str) -> int:
    return SEVERITY.index(category) if category in SEVERITY else len(SEVERITY)


_NEVER = datetime.max.replace(tzinfo=timezone.utc)


def end_time(r: Record | Mapping[str, Any]) -> datetime:
    """When a check ended (its start plus its duration): when its failure was seen. Unknown: last."""
    start = parse_time(_get(r, "started_at"))
    if start is None:
        return _NEVER
    return start + timedelta(seconds=max(_num(_get(r, "duration_s")) or 0.0, 0.0))


def _failing(records: Iterable[Any]) -> list[Any]:
    return [r for r in records if _get(r, "status") in ("fail", "error")]


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s else s


# -- the golden path ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class GoldenPath:
    working: bool
    blocked_by: str | None
    phase: str | None
    #: the verdict with where it was first seen (summary.json's ``verdict``)
    sentence: str
    #: the verdict alone, for a heading
    headline: str = ""
    #: the record the verdict rests on: the passing agent run, or the first failure of the blocking category
    record: Any = None

    def to_summary(self) -> dict[str, Any]:
        return {"working": self.working, "blocked_by": self.blocked_by, "phase": self.phase}


def golden_path(records: Iterable[Record | Mapping[str, Any]]) -> GoldenPath:
    """The verdict: working, or the category that blocks it and the phase where it was first seen
    (the check of that category that ended first)."""
    records = list(records)
    runs = [r for r in records if is_agent_run(r)]
    good = sorted((r for r in runs if _get(r, "status") in PASSING and _get(r, "category") == "ok"
                   and not _get(r, "findings")), key=lambda r: _get(r, "check") != "agent_run")
    if good:
        r = good[0]
        if _get(r, "phase") == "triage":
            # A pytest pass is the suite's claim; triage has no wire evidence of its own.
            head = "The pytest run claims the golden path works"
            return GoldenPath(True, None, None, f"{head}: {_get(r, 'check')} passed with no sign of a mock or a fake "
                              "timing (the kit saw no wire evidence of its own).", head, r)
        head = "The golden path works: a real agent run started and returned a result"
        return GoldenPath(True, None, None, f"{head} ({_get(r, 'check')}).", head, r)
    failing = _failing(records)
    blocking_run = sorted((r for r in runs if r in failing or _get(r, "findings")),
                          key=lambda r: (_rank(_categories_of(r)[0]), end_time(r)))
    if blocking_run:
        category = _categories_of(blocking_run[0])[0]  # a pass with a finding is blocked by the finding
    elif failing:
        category = min((_get(r, "category") for r in failing), key=_rank)
    elif runs:
        category = _get(runs[0], "category") if _get(runs[0], "category") != "ok" else "unknown"
    else:
        head = "The golden path was not exercised"
        return GoldenPath(False, None, None, f"{head}: no agent run was attempted in this run.", head)
    hit = [r for r in records if category in _categories_of(r)] or blocking_run
    first = min(hit, key=end_time) if hit else None
    phase = _get(first, "phase") if first is not None else None
    head = f"The golden path is NOT working: {_lower_first(category_info(category).title)}"
    where = f", first seen in the {phase} phase (check {_get(first, 'check')})" if first is not None else ""
    return GoldenPath(False, category, phase, f"{head}{where}.", head, first)


def counts(records: Iterable[Any]) -> tuple[dict[str, int], dict[str, int]]:
    """(count by status, count by category) as summary.json reports them."""
    records = list(records)
    by_status = Counter(_get(r, "status") for r in records)
    by_category = Counter(_get(r, "category") for r in records)
    return dict(by_status), dict(by_category)


# -- findings: one per category ------------------------------------------------------------------------

@dataclass
class Finding:
    category: str
    title: str
    checks: list[str]
    phases: list[str]
    evidence: list[str]
    causes: tuple[str, ...]
    next_steps: tuple[str, ...]
    blocks_golden_path: bool = False
    records: list[Any] = field(default_factory=list)


def _categories_of(r: Any) -> list[str]:
    """The categories a record counts for: its own when it failed, and its findings (a pass can carry one)."""
    cats = [_get(r, "category")] if _get(r, "status") in ("fail", "error") else []
    return cats + [f for f in (_get(r, "findings") or []) if f not in cats]


def findings(records: Iterable[Record | Mapping[str, Any]]) -> list[Finding]:
    """One finding per failing category, the golden path's blocking category first, then by severity;
    each finding's records in the order they were seen (by end time)."""
    records = list(records)
    gp = golden_path(records)
    groups: dict[str, list[Any]] = {}
    for r in sorted(records, key=end_time):
        for c in _categories_of(r):
            groups.setdefault(c, []).append(r)
    out = []
    for category, rs in groups.items():
        info = category_info(category)
        evidence = []
        for r in rs[:6]:
            text = f"{_get(r, 'phase')}/{_get(r, 'check')}: {_get(r, 'message', '')}"
            detail = (_get(r, "detail") or "").strip()
            if detail:
                text += f" — {clip(detail, 300)}"
            evidence.append(text)
        out.append(Finding(
            category=category, title=info.title, checks=[str(_get(r, "check")) for r in rs],
            phases=sorted({str(_get(r, "phase")) for r in rs}, key=phase_rank), evidence=evidence,
            causes=info.causes, next_steps=info.next_steps, blocks_golden_path=category == gp.blocked_by, records=rs))
    out.sort(key=lambda f: (not f.blocks_golden_path, _rank(f.category)))
    return out


# -- what one WebSocket session shows ------------------------------------------------------------------

_CLOSE = re.compile(r"^\s*(\d{3,4})\b\s*(.*)$", re.S)
_CLIENT_REASON = "netra-nb check done"


def parse_close(frame: Mapping[str, Any], record: Record | Mapping[str, Any] | None = None) -> tuple[int | None, str, str | None]:
    """(code, reason, who closed) of a close frame; who is ``server``, ``client`` or None (unknown).

    A frame recorded by this kit carries them (``close_code``, ``close_reason``, ``closed_by``); the text
    is read only for frames of older run folders, which have none."""
    if frame.get("close_code") is not None:
        return int(frame["close_code"]), str(frame.get("close_reason") or "").strip(), frame.get("closed_by") or None
    text = str(frame.get("text") or "")
    m = _CLOSE.match(text)
    code = int(m.group(1)) if m else None
    reason = (m.group(2) if m else text).strip()
    who: str | None = None
    by = re.search(r"\bby (server|client)\b|\((server|client)\)\s*$", reason)
    if by:
        who = by.group(1) or by.group(2)
        reason = reason.replace(by.group(0), "").strip(" ,;")
    elif reason == _CLIENT_REASON:
        who = "client"
    elif code == 1006:
        who = None
    elif record is not None and _get(record, "ws_close_code") == code and _get(record, "ws_closed_by"):
        who = _get(record, "ws_closed_by")
    return code, reason, who


@dataclass(frozen=True)
class SessionShape:
    """One session's frames reduced to what tells failures apart (times in seconds since its connection
    attempt started)."""

    welcome: bool
    welcome_t: float | None
    sent: tuple[str, ...]  # the client's messages (their type), in order
    after_request: tuple[str, ...]  # distinct events received after the client's first message
    agent_events: tuple[str, ...]  # distinct agent events received, in order
    close_code: int | None
    close_reason: str
    closed_by: str | None
    close_t: float | None
    error_text: str | None  # the first error frame or agent failure received, verbatim

    @property
    def stage(self) -> str:
        """Where the session was when it ended: ``before_welcome``, ``after_welcome`` (nothing sent yet),
        or ``after_request``."""
        if not self.welcome:
            return "before_welcome"
        return "after_request" if self.sent else "after_welcome"

    @property
    def ended_by_server(self) -> bool:
        return self.close_code is not None and self.closed_by != "client"


def session_shape(frames: Sequence[Mapping[str, Any]], record: Record | Mapping[str, Any] | None = None) -> SessionShape:
    """Reduce one session's frames (sorted by time) to its :class:`SessionShape`."""
    welcome = False
    welcome_t = None
    sent: list[str] = []
    after: list[str] = []
    agent: list[str] = []
    close: tuple[int | None, str, str | None] = (None, "", None)
    close_t = None
    error_text = None
    for f in frames:
        t = _num(f.get("t_s")) or 0.0
        direction, event = f.get("direction"), str(f.get("event") or "")
        if direction == "close" or event == "close":
            if close_t is None:
                close, close_t = parse_close(f, record), t
        elif direction == "sent":
            sent.append(str(f.get("type") or event or "?"))
        else:
            if event == "welcome" and not welcome:
                welcome, welcome_t = True, t
            if sent and event not in after:
                after.append(event)
            if event.startswith(("agent_", "tool_")) and event not in agent:
                agent.append(event)
            if error_text is None and event in ("error", *_AGENT_FAILURES):
                error_text = str(f.get("text") or "")
    return SessionShape(welcome, welcome_t, tuple(sent), tuple(after), tuple(agent), close[0], close[1], close[2], close_t,
                        error_text)


def _sessions_of(frames: Iterable[Mapping[str, Any]], phase: str, check: str) -> dict[int, list[Mapping[str, Any]]]:
    out: dict[int, list[Mapping[str, Any]]] = {}
    for f in frames:
        if f.get("phase") == phase and f.get("check") == check:
            try:
                out.setdefault(int(f.get("session") or 0), []).append(f)
            except (TypeError, ValueError):
                continue
    for fs in out.values():
        fs.sort(key=lambda f: (_num(f.get("t_s")) or 0.0, _num(f.get("seq")) or 0))
    return out


def _abnormal(shape: SessionShape) -> bool:
    return shape.ended_by_server or shape.error_text is not None or (bool(shape.sent) and not shape.agent_events)


# -- failure patterns ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pattern:
    """What a failing check saw: records with equal keys failed the same way; ``text`` says how."""

    key: tuple[Any, ...]
    text: str
    session: int | None = None  # the session the text describes (None: no frames)
    shape: SessionShape | None = None


_BODY = re.compile(r"\bbody: (.*?)(?:; (?:token|probes):|$)", re.S)
_PROBES = re.compile(r"\bprobes: (.*)$", re.S)
_CLOSE_WORDS = {1000: "normally", 1001: "going away", 1008: "for a policy violation", 1011: "with an internal error",
                1012: "for a restart"}


def _body(r: Any) -> str:
    m = _BODY.search(str(_get(r, "detail") or ""))
    return m.group(1).strip() if m else ""


def shorten(text: str, limit: int = 160) -> str:
    """``text`` whole, or cut at ``limit`` when that saves a good part of it (never a few characters)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit + 40 else text[:limit].rstrip() + " …"


def _host(r: Any) -> str | None:
    target = str(_get(r, "target") or "").split(" ")[-1]
    parts = urlsplit(target) if "://" in target else None
    return parts.netloc if parts and parts.netloc else None


def _code(text: Any) -> str:
    return "`" + _plain(text) + "`"


def _plain(text: Any) -> str:
    """Text from the platform made safe to embed in a sentence whose code spans are marked with backticks."""
    return " ".join(str(text).replace("`", "'").split())


def _close_text(shape: SessionShape) -> str:
    """How a session ended, in words: who closed, with which code and reason, at which stage."""
    if shape.close_code == 1006 or (shape.close_code is not None and shape.closed_by is None):
        head = f"the connection dropped without a close frame ({shape.close_code})"
    else:
        who = {"server": "the server", "client": "the client"}.get(shape.closed_by or "", "the connection")
        reason = f" ({_plain(shape.close_reason)})" if shape.close_reason else ""
        head = f"{who} closed the WebSocket with {shape.close_code}{reason}"
    if shape.stage == "before_welcome":
        return f"{head} before any welcome"
    if shape.stage == "after_welcome":
        soon = "right after" if shape.close_t is not None and shape.close_t - (shape.welcome_t or 0.0) < 1.0 else "after"
        return f"{head} {soon} the welcome, before any client message"
    if shape.agent_events:
        return f"after the request, agent events up to {_code(shape.agent_events[-1])} arrived, then {head}"
    return f"the welcome arrived and the client sent its first message, then {head}"


_STAGE_SAID = re.compile(r"\b(?<!or )(before|after) the first client message\b(?! is unknown)")


def _stage_said(record: Any) -> str:
    """What a record's detail says of when the close came ("before/after the first client message"); ""
    when it does not say, or says it is unknown (a JUnit file has no frames)."""
    m = _STAGE_SAID.search(str(_get(record, "detail") or ""))
    return m.group(0) if m else ""


def failure_pattern(record: Record | Mapping[str, Any], frames: Sequence[Mapping[str, Any]] = ()) -> Pattern:
    """How ``record`` failed, from its evidence: its frames when it has any (the first abnormal session
    of a check with many), else its HTTP status, body and target. Pure; ``frames`` may hold the whole
    run's frames."""
    category = str(_get(record, "category"))
    sessions = _sessions_of(frames, str(_get(record, "phase")), str(_get(record, "check")))
    shapes = {i: session_shape(fs, record) for i, fs in sorted(sessions.items())}
    pick = next((i for i, s in shapes.items() if _abnormal(s)), next(iter(shapes), None))
    shape = shapes.get(pick) if pick is not None else None
    status = _get(record, "http_status")
    status = status if status not in (None, 101) else None
    area = category_info(category).area
    if shape is not None and shape.close_code is not None and not (shape.closed_by == "client" and shape.close_code == 1000):
        key = (category, shape.close_code, shape.closed_by, shape.close_reason, shape.stage, shape.agent_events[-1:])
        return Pattern(key, _close_text(shape), pick, shape)
    if shape is not None and area == "agent":
        key = (category, shape.agent_events, shape.after_request)
        if category == "agent_no_events":
            kinds = " and ".join(_code(e) for e in shape.after_request if e != "other")
            text = (f"the request ({_code(shape.sent[0])}) was sent; then " + (f"only {kinds} frames" if kinds else
                    "nothing") + " until the check stopped waiting, and no agent event"
                    if shape.sent else "no request was sent")
        elif shape.error_text:
            text = f"the agent reported a failure: {_code(shorten(shape.error_text, 200))}"
        elif shape.agent_events:
            text = f"agent events up to {_code(shape.agent_events[-1])} arrived, then no more"
        else:
            text = _plain(_get(record, "message") or category_info(category).title)
        return Pattern(key, text, pick, shape)
    code = _get(record, "ws_close_code")
    if shape is None and code is not None:
        # No frames (events.jsonl lost): the record's own close fields and what its detail says of the stage.
        stage = _stage_said(record)
        who = {"server": "the server", "client": "the client"}.get(str(_get(record, "ws_closed_by")), "the connection")
        reason = _get(record, "ws_close_reason")
        text = f"{who} closed the WebSocket with {code}" + (f" ({_plain(reason)})" if reason else "") + (f", {stage}" if stage else "")
        return Pattern((category, code, _get(record, "ws_closed_by"), reason, stage), text)
    body = _body(record)
    if status is not None:
        upgrade = area == "ws_upgrade" or category in ("ws_route_missing", "ws_upgrade_auth_rejected")
        what = "the WebSocket upgrade answered HTTP" if upgrade else "HTTP"
        return Pattern((category, status, body[:80]), f"{what} {status}" + (f" {_code(shorten(body, 120))}" if body else ""))
    host = _host(record)
    if area == "network" and category != "read_timeout":
        words = {"connection_refused": "the connection was refused", "dns_failure": "the host name does not resolve",
                 "connect_timeout": "the connection did not complete in time", "tls_error": "the TLS handshake failed"}
        return Pattern((category,), words.get(category, category_info(category).title) + (f" at {host}" if host else ""))
    return Pattern((category, str(_get(record, "message") or "")), _plain(_get(record, "message") or category_info(category).title))


# -- root causes -----------------------------------------------------------------------------------

@dataclass
class PatternGroup:
    """Failing checks that saw the same thing (one pattern key), in the order they were seen; ``patterns``
    holds each record's own :class:`Pattern` (which session was read), ``pattern`` the first one's."""

    category: str
    pattern: Pattern
    records: list[Any] = field(default_factory=list)
    patterns: list[Pattern] = field(default_factory=list)

    @property
    def checks(self) -> list[str]:
        return list(dict.fromkeys(str(_get(r, "check")) for r in self.records))

    @property
    def representative(self) -> tuple[Any, int] | None:
        """The record and session whose session chart stands for the group: the one with the most frames
        to show, the earliest among equals; None when no record of the group has frames."""
        shown = [(i, p) for i, p in enumerate(self.patterns) if p.shape is not None and p.session is not None]
        if not shown:
            return None
        # The agent run stands for the others when it shows as much: it is the check a reader knows.
        i, p = max(shown, key=lambda ip: (len(ip[1].shape.sent) + len(ip[1].shape.after_request),
                                          _get(self.records[ip[0]], "check") == "agent_run", -ip[0]))
        return self.records[i], int(p.session or 0)


@dataclass
class RootCause:
    """One cause: the failing categories it explains, its patterns, and what to do about it."""

    categories: list[str]
    title: str
    groups: list[PatternGroup]
    blocks_golden_path: bool
    observed: list[str]  # what this run's evidence shows
    next_steps: list[str]  # chosen from that evidence
    seen_before: tuple[str, ...]  # the category's causes in the platform's history: not shown by this run
    evidence: list[str] = field(default_factory=list)  # probe results and the like, quoted

    @property
    def records(self) -> list[Any]:
        return [r for g in self.groups for r in g.records]

    @property
    def honesty(self) -> bool:
        return all(c in HONESTY for c in self.categories)

    @property
    def first(self) -> Any:
        return min(self.records, key=end_time)


def _window(records: Sequence[Any]) -> str:
    """``between HH:MM:SS and HH:MM:SS UTC``: from the first check's start to the last one's end."""
    starts = [t for t in (parse_time(_get(r, "started_at")) for r in records) if t]
    ends = [end_time(r) for r in records if parse_time(_get(r, "started_at"))]
    if not starts:
        return "at the time of the run"
    a, b = min(starts).astimezone(timezone.utc), max(ends).astimezone(timezone.utc)
    day = a.strftime("%Y-%m-%d")
    if a.replace(microsecond=0) == b.replace(microsecond=0):
        return f"at {day} {a:%H:%M:%S} UTC"
    return f"between {day} {a:%H:%M:%S} and {b:%H:%M:%S} UTC"


def _types(groups: Sequence[PatternGroup]) -> list[str]:
    out: list[str] = []
    for g in groups:
        for p in g.patterns:
            if p.shape is not None and p.shape.sent and p.shape.sent[0] not in out:
                out.append(p.shape.sent[0])
    return out


_STAGES = ("before_welcome", "after_welcome", "after_request")


def _explain_session(cause: RootCause) -> tuple[list[str], list[str]]:
    """A session that ended early: who ended it, when, and what that places the fault in. When sessions
    ended at different stages, the earliest decides: a close before any client message needs none."""
    shapes = [g.pattern.shape for g in cause.groups if g.pattern.shape is not None and g.pattern.shape.close_code is not None]
    when = _window(cause.records)
    if not shapes:
        return _explain_close_without_frames(cause, when)
    shape = min(shapes, key=lambda s: _STAGES.index(s.stage))
    code = shape.close_code
    if code == 1006 or shape.closed_by is None:
        what = "the connection was cut without a close frame"
        look = f"Check for a crash or restart of the server process {when}, and for a proxy between client and server"
    elif shape.closed_by == "client":
        what = f"the client closed the session ({_plain(shape.close_reason)})"
        look = f"Look at what blocked the server {when}: it stopped answering"
    else:
        what = f"the server closed the session {_CLOSE_WORDS.get(code or 0, f'with {code}')} ({code}" \
               + (f" {_plain(shape.close_reason)})" if shape.close_reason else ")")
        look = (f"Find the exception in the server's logs {when}" if code == 1011 else
                f"Find in the server's logs {when} what ended these sessions")
    if shape.error_text:
        what += f", after sending {_code(shorten(shape.error_text, 160))}"
    stage = shape.stage
    if stage == "before_welcome":
        observed = f"{what[0].upper()}{what[1:]} before sending any welcome: the fault is in the session's set-up " \
                   "(accept, authentication, registration), before any message is handled."
        where = "Look at the WebSocket endpoint's accept and authentication code"
    elif stage == "after_welcome":
        soon = "right after" if shape.close_t is not None and shape.close_t - (shape.welcome_t or 0.0) < 1.0 else "after"
        observed = f"{what[0].upper()}{what[1:]} {soon} its welcome, before reading anything from the client: " \
                   "the fault is in what the server runs when a session starts, not in the handling of a request."
        where = "Look at the code that runs right after the welcome is sent (session registration, the start of " \
                "the message loop)"
    else:
        types = _types(cause.groups)
        which = ", ".join(_code(t) for t in types) or "a message"
        if shape.agent_events:
            observed = f"{what[0].upper()}{what[1:]} in the middle of the agent run, after {_code(shape.agent_events[-1])}."
            where = f"Look at what the agent does after {_code(shape.agent_events[-1])}"
        else:
            whatever = ", whatever the message" if len(types) > 1 else ""
            observed = f"{what[0].upper()}{what[1:]} when the client's first message ({which}) arrived{whatever}: " \
                       "the fault is in the handling of client messages."
            where = f"Look at the server's handling of {which}"
    return [observed], [look + ".", where + "."]


def _explain_close_without_frames(cause: RootCause, when: str) -> tuple[list[str], list[str]]:
    """A close known only from the records' fields (no frames: a JUnit file, or events.jsonl lost): what they
    say of the stage, and that the server's logs must tell the rest."""
    closed = [r for r in cause.records if _get(r, "ws_close_code") is not None]
    if not closed:
        return [], []
    code = _get(closed[0], "ws_close_code")
    stages = {_stage_said(r) for r in closed}
    said = next(iter(stages)) if len(stages) == 1 else ""
    look = (f"Find the exception in the server's logs {when}." if code == 1011 else
            f"Find in the server's logs {when} what ended these sessions.")
    if said:
        return [f"The records say the close came {said}."], [look]
    return ([], [look, "The records do not say whether the close came before or after the first client message "
                       "(no frames were recorded): the server's logs will."])


def _explain_upgrade_refused(cause: RootCause) -> tuple[list[str], list[str]]:
    """The differential probes the kit ran when the upgrade was refused, quoted, and their conclusion."""
    r = cause.groups[0].records[0]
    m = _PROBES.search(str(_get(r, "detail") or ""))
    if not m:
        return [], []
    items = [p.strip() for p in m.group(1).split("; ") if p.strip()]
    probes = [p for p in items if "→" in p]
    conclusion = [p for p in items if "→" not in p]
    cause.evidence = probes
    observed = [f"{conclusion[-1][0].upper()}{conclusion[-1][1:]}."] if conclusion else []
    if "ws_route_missing" in cause.categories:
        path = urlsplit(str(_get(r, "target") or "")).path or "the WebSocket path"
        steps = [f"Check the server's route table for a WebSocket route at {_code(path)}: an HTTP GET route answers there.",
                 "Point ws_url in the params file at the path that has the WebSocket route."]
    else:
        steps = list(category_info("ws_upgrade_auth_rejected").next_steps)
        steps = [s if s.endswith(".") else s + "." for s in steps]
    return observed, steps


def _explain_unavailable(cause: RootCause) -> tuple[list[str], list[str]]:
    """Every 5xx the platform answered, what it said, and which of its doors answered so."""
    rs = cause.records
    statuses = sorted({int(_get(r, "http_status")) for r in rs if _get(r, "http_status") not in (None, 101)})
    bodies = list(dict.fromkeys(b for b in (_body(r) for r in rs) if b))
    kinds = Counter(("WebSocket upgrades" if category_info(_get(r, "category")).area == "ws_upgrade"
                     else "HTTP requests") for r in rs)
    doors = [f"the {door} of {n} check{'s' if n != 1 else ''}" for door, n in kinds.items()]
    said = f" with {_code(shorten(bodies[0], 160))}" if len(bodies) == 1 else ""
    codes = " and ".join(str(s) for s in statuses) or "5xx"
    observed = [f"The platform answered HTTP {codes}{said} ({' and '.join(doors)}): it is not serving."]
    steps = [f"Read the backend's start-up logs and its revision or container status {_window(rs)}.",
             "Run again once GET /health answers 200."]
    return observed, steps


def _explain_network(cause: RootCause) -> tuple[list[str], list[str]]:
    hosts = list(dict.fromkeys(h for h in (_host(r) for r in cause.records) if h))
    where = ", ".join(_code(h) for h in hosts) or "the platform's address"
    category = cause.categories[0]
    observed = {"connection_refused": f"Every connection to {where} was refused: nothing listens there.",
                "dns_failure": f"The host name of {where} does not resolve.",
                "connect_timeout": f"Connections to {where} did not complete in time.",
                "tls_error": f"The TLS handshake with {where} failed."}.get(category)
    steps = {"connection_refused": [f"Check that the platform runs and listens at {where}.",
                                    "If it does, correct the port in the params file's base_url, ws_url and auth_url."],
             "dns_failure": [f"Resolve {where} by hand (dig, nslookup).",
                             "Check base_url, ws_url and auth_url in the params file."]}.get(category)
    if observed is None or steps is None:
        return ([observed] if observed else []), []
    return [observed], steps


def _explain_agent(cause: RootCause) -> tuple[list[str], list[str]]:
    shape = cause.groups[0].pattern.shape
    if shape is None or not shape.sent:
        return [], []
    request = _code(shape.sent[0])
    when = _window(cause.records)
    if "agent_no_events" in cause.categories:
        alive = [e for e in shape.after_request if e in ("ack", "heartbeat", "ping", "pong")]
        acked = "ack" in shape.after_request
        observed = (f"After the request ({request}) the server "
                    + ("acknowledged it (`ack`) and " if acked else "")
                    + (f"kept the session alive ({', '.join(_code(e) for e in alive if e != 'ack')}) "
                       if [e for e in alive if e != "ack"] else "")
                    + "but sent no agent event: "
                    + ("the request reached the server, and no agent run started for it." if acked else
                       "no agent run started for the request."))
        return [observed], [f"Look at the server's logs {when} for how the {request} request was routed"
                            + (": it was acknowledged, but no agent started." if acked else "."),
                            "Check that the agent orchestrator is registered with the WebSocket handler."]
    if shape.error_text:
        return ([f"The agent reported a failure: {_code(shorten(shape.error_text, 200))}."],
                [f"Look at the agent's logs {when} for that error."])
    if shape.agent_events:
        last = _code(shape.agent_events[-1])
        return [f"The agent run started; its events stopped after {last}."], [f"Look at the agent's logs {when} after {last}."]
    return [], []


def _explain(cause: RootCause) -> tuple[list[str], list[str]]:
    """What this run's evidence shows about ``cause`` and the next steps it points to; the category's
    general next steps when the evidence says nothing more specific."""
    category = cause.categories[0]
    area = category_info(category).area
    if category in ("http_unavailable", "http_server_error"):
        observed, steps = _explain_unavailable(cause)
    elif category in ("ws_route_missing", "ws_upgrade_auth_rejected"):
        observed, steps = _explain_upgrade_refused(cause)
    elif area == "ws_session":
        observed, steps = _explain_session(cause)
    elif area == "network":
        observed, steps = _explain_network(cause)
    elif area == "agent":
        observed, steps = _explain_agent(cause)
    else:
        observed, steps = [], []
    if not steps:
        steps = [s if s.endswith(".") else s + "." for s in category_info(category).next_steps]
    return observed, steps


def _honesty_pattern(record: Any, category: str) -> Pattern:
    """A result not to be trusted: its own message when that is the finding, else the finding's title beside
    the check's own failure (which is told under that failure's cause)."""
    own = _get(record, "category")
    if own == category:
        return Pattern((category, str(_get(record, "message"))), _plain(_get(record, "message") or category_info(category).title))
    text = _lower_first(category_info(category).title)
    if _get(record, "status") in ("fail", "error"):
        text += f"; the check also failed with {_code(own)}"
    return Pattern((category, own), text)


def root_causes(records: Iterable[Record | Mapping[str, Any]], frames: Sequence[Mapping[str, Any]] = ()) -> list[RootCause]:
    """The run's root causes, the one that blocks the golden path first, then by severity.

    Each failing category belongs to one cause; categories one fault produces together (see
    ``_FAMILY``) share it. Within a cause, checks whose :func:`failure_pattern` keys are equal are
    one :class:`PatternGroup`. Honesty findings on passing checks are causes of their own.
    """
    records = list(records)
    gp = golden_path(records)
    by_family: dict[str, dict[str, list[Any]]] = {}
    for f in findings(records):
        by_family.setdefault(_FAMILY.get(f.category, f.category), {})[f.category] = f.records
    out: list[RootCause] = []
    for family, cats in by_family.items():
        categories = sorted(cats, key=_rank)
        groups: dict[tuple[Any, ...], PatternGroup] = {}
        for category in categories:
            for r in cats[category]:
                pattern = failure_pattern(r, frames) if category not in HONESTY else _honesty_pattern(r, category)
                group = groups.setdefault(pattern.key, PatternGroup(category, pattern))
                group.records.append(r)
                group.patterns.append(pattern)
        ordered = sorted(groups.values(), key=lambda g: (_rank(g.category), -len(g.records), end_time(g.records[0])))
        info = category_info(categories[0])
        cause = RootCause(categories, info.title, ordered, gp.blocked_by in categories, [], [], info.causes)
        cause.observed, cause.next_steps = _explain(cause)
        out.append(cause)
    out.sort(key=lambda c: (not c.blocks_golden_path, c.honesty, _rank(c.categories[0])))
    return out
