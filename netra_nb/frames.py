"""Normalization of the platform's WebSocket frames across its eras (pure, no I/O).

Every era names the same things differently (``netra-contract.md``, "Eras"):

* mid September: ``{"type": "agent_started", "run_id": …, "data": {…}}``;
* early September: flat events ``{"event": "agent_started", "timestamp": <float>, …}`` and the welcome
  as ``{"type": "system_message", "data": {"event": "connection_established"}}``;
* October: some events wrapped, ``{"type": "system_message" | "agent_progress",
  "data": {"event": "agent_started", …}}``, plus a handshake (``handshake_response`` …).

:func:`normalize` maps any frame (text, bytes, or parsed JSON of any shape) to one
:class:`Normalized` with an event name from :data:`EVENT_NAMES`; it never raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AGENT_EVENTS",
    "FAILURE_EVENTS",
    "EVENT_NAMES",
    "Normalized",
    "normalize",
    "parse",
    "check_order",
    "result_of",
    "is_blank",
    "KEEPALIVE",
    "COMPLETED_OK",
]

#: The five critical agent events, in the contract's order.
AGENT_EVENTS: tuple[str, ...] = (
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
)
FAILURE_EVENTS: tuple[str, ...] = ("agent_error", "agent_failed")
#: Frames a server sends on its own to keep a session alive: never a reply to anything we sent.
KEEPALIVE: frozenset[str] = frozenset({"heartbeat", "heartbeat_ack", "ping"})
#: ``agent_completed`` statuses that mean the run succeeded (any other stated status is a failure).
COMPLETED_OK: frozenset[str] = frozenset({"completed", "complete", "success", "succeeded", "successful", "done", "ok"})
#: Where an era puts the agent's result in ``agent_completed`` (the fallback handler: ``final_response``).
RESULT_KEYS: tuple[str, ...] = ("result", "results", "response", "final_response", "final_report", "output",
                                "answer", "content")

#: Every normalized event name.
EVENT_NAMES: frozenset[str] = frozenset(
    AGENT_EVENTS
    + FAILURE_EVENTS
    + (
        "welcome",  # connection_established in any era (beta-12: "connect")
        "auth_success",  # the unified-auth path's authentication_success, before or instead of the welcome
        "heartbeat_ack",
        "handshake_validation",
        "handshake_response",
        "handshake_complete",
        "ping",
        "pong",
        "heartbeat",
        "ack",
        "error",  # error / error_message frames
        "other",  # valid JSON object of a type we do not know
        "invalid",  # not JSON, binary, or JSON that is not an object
    )
)

_ALIASES = {
    "connection_established": "welcome",
    "connected": "welcome",
    "connect": "welcome",  # the build tagged beta-12
    "welcome": "welcome",
    "authentication_success": "auth_success",
    "auth_success": "auth_success",
    "authentication_error": "error",
    "auth_failed": "error",
    "error_message": "error",
    "error": "error",
    "agent_death": "agent_failed",
    "agent_complete": "agent_completed",
    "agent_finished": "agent_completed",
    "tool_started": "tool_executing",
    "tool_executed": "tool_completed",
    "tool_result": "tool_completed",
    "agent_thought": "agent_thinking",
}
_DIRECT = EVENT_NAMES - {"other", "invalid", "welcome", "error", "auth_success"}
# Types that wrap an inner event under data.event / payload.event.
_WRAPPERS = {"system_message", "agent_progress", "agent_update", "agent_event", "event", "agent_message"}


@dataclass(frozen=True)
class Normalized:
    event: str  # one of EVENT_NAMES
    raw_type: str  # what the frame called itself ("<binary>", "<non-json>" when it could not)
    run_id: str | None = None
    user_id: str | None = None
    data: dict[str, Any] | None = None  # the event's payload, wherever the era put it
    error_code: str | None = None
    message: str | None = None
    status: str | None = None  # agent_completed: the run's stated status (data.status or top level)
    result: Any = None  # agent_completed: the result, wherever the era put it (None when absent or blank)
    agent_name: str | None = None
    tool_name: str | None = None


def parse(payload: str | bytes | Any) -> tuple[Any, str | None]:
    """Parse a frame payload; returns ``(obj, problem)`` where problem names why it is not JSON."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return None, "<binary>"
    if not isinstance(payload, str):
        return payload, None
    try:
        return json.loads(payload), None
    except (ValueError, RecursionError):
        return None, "<non-json>"


def _name(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value.strip().lower()
    return None


def _canon(name: str | None) -> str | None:
    if name is None:
        return None
    if name in _DIRECT:
        return name
    return _ALIASES.get(name)


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _field(obj: dict[str, Any], key: str, *nested: Any) -> Any:
    if obj.get(key) is not None:
        return obj[key]
    for inner in nested:
        if isinstance(inner, dict) and inner.get(key) is not None:
            return inner[key]
    return None


def normalize(payload: str | bytes | Any) -> Normalized:
    """Normalize one frame of any era; never raises."""
    try:
        return _normalize(payload)
    except Exception:  # noqa: BLE001 - a normalizer must survive any input
        return Normalized("invalid", "<unparseable>")


def _normalize(payload: str | bytes | Any) -> Normalized:
    obj, problem = parse(payload)
    if problem:
        return Normalized("invalid", problem)
    if not isinstance(obj, dict):
        return Normalized("invalid", f"<json {type(obj).__name__}>")

    raw_type = _name(obj.get("type"))
    data = obj.get("data") if isinstance(obj.get("data"), dict) else None
    payload_ = obj.get("payload") if isinstance(obj.get("payload"), dict) else None
    inner_event = _name((data or {}).get("event")) or _name((payload_ or {}).get("event"))

    event = _canon(raw_type)
    if raw_type in _WRAPPERS or raw_type is None or event is None:
        # The wrapped (October) or flat (early) shapes: the event's name lives elsewhere.
        for candidate in (inner_event, _name(obj.get("event")), _name(obj.get("event_type"))):
            found = _canon(candidate)
            if found:
                event = found
                break
    if event is None:
        # A type we do not know is tolerated ("other"); an object that names no type or event at
        # all is not a frame of the contract in any era.
        named = raw_type is not None or inner_event is not None or _name(obj.get("event")) is not None
        event = "other" if named else "invalid"
    if event == "welcome" and raw_type == "system_message" and (data or {}).get("connection_ready") is False:
        event = "other"

    # Where the era put the payload: data, payload, or the frame itself (early, flat).
    body = data if data is not None else payload_ if payload_ is not None else obj
    run_id = _str(_field(obj, "run_id", data, payload_))
    user_id = _str(_field(obj, "user_id", data, payload_))
    error_code = _str(_field(obj, "error_code", data, payload_)) if event in ("error", *FAILURE_EVENTS) else None
    message = None
    if event in ("error", *FAILURE_EVENTS):
        message = _str(_field(obj, "message", data, payload_)) or _str(_field(obj, "error_message", data, payload_)) \
            or _str(_field(obj, "error", data, payload_))
    status = result = None
    if event == "agent_completed":
        status = _str(_field(obj, "status", data, payload_))
        for source in (data, payload_, obj):
            for key in RESULT_KEYS:
                value = source.get(key) if isinstance(source, dict) else None
                if not is_blank(value):
                    result = value
                    break
            if result is not None:
                break
    agent_name = _str(_field(obj, "agent_name", data, payload_))
    tool_name = _str(_field(obj, "tool_name", data, payload_))
    return Normalized(event, raw_type or "<no type>", run_id, user_id, body, error_code, message, status, result,
                      agent_name, tool_name)


def is_blank(value: Any) -> bool:
    """True for what carries no content: None, a string of whitespace, an empty container (or one of blanks)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, dict):
        return all(is_blank(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(is_blank(v) for v in value)
    return False


def check_order(events: list[str]) -> str | None:
    """Describe the first ordering violation among the agent events, or return None.

    The contract's order is started → thinking → tool_executing → tool_completed → completed, and
    tools may repeat; so thinking and tool calls may cycle, but nothing comes before
    ``agent_started``, a ``tool_completed`` needs a ``tool_executing`` still open, and nothing
    follows ``agent_completed``.
    """
    started = completed = False
    open_tools = 0
    for name in events:
        if name not in AGENT_EVENTS:
            continue
        if completed:
            return f"{name} after agent_completed"
        if name == "agent_started":
            if started:
                return "agent_started twice"
            started = True
            continue
        if not started:
            return f"{name} before agent_started"
        if name == "tool_executing":
            open_tools += 1
        elif name == "tool_completed":
            if open_tools == 0:
                return "tool_completed before tool_executing"
            open_tools -= 1
        elif name == "agent_completed":
            completed = True
    return None


def result_of(completed: Normalized) -> Any:
    """The agent's result in an ``agent_completed`` frame of any era: under ``data`` or at the top level, as
    ``result``, ``final_response`` (the fallback handler) or another of :data:`RESULT_KEYS`; None when absent
    or blank (whitespace, empty containers). A frame read without its type (cut evidence) is searched under
    ``data`` too."""
    if completed.result is not None:
        return completed.result
    body = completed.data if isinstance(completed.data, dict) else {}
    return next((body[k] for k in RESULT_KEYS if not is_blank(body.get(k))), None)
