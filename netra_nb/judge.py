"""Judging observations: from what a client saw to a status, a category and the evidence (pure).

Every function here takes the observation it reads (:class:`~netra_nb.http.HttpObservation`,
:class:`~netra_nb.ws.WsObservation`) or plain values and returns a :class:`Verdict`; no I/O, so
the rules are tested without sockets. The evidence rules, which hold for any implementation of
the contract:

* **Our user** is the one our credentials name (the token's ``sub``, the E2E endpoint's
  ``user.id``): :class:`Identity`. What a welcome says is evidence to compare, whole or shortened
  to its first characters plus ``...``; a session welcomed as somebody else is ``ws_auth_ignored``.
* **Our run** is the one our request started: the run id we sent when the server echoes it, else the
  first ``agent_started`` after our request (:func:`agent_run_view`). Only frames after our request
  count; another run's events are somebody else's.
* A check passes only on the contract's frames, in their documented shapes; a canned or fallback
  answer is ``mock_fallback``, never a pass.
* A message says only what was observed: a close is reported as that close (code, reason, who,
  seconds after our request), a wait only as long as it lasted.
"""

from __future__ import annotations

import errno
import json
import re
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from .frames import AGENT_EVENTS, COMPLETED_OK, FAILURE_EVENTS, KEEPALIVE, Normalized, check_order, is_blank
from .http import HttpObservation
from .redact import clip
from .ws import WsObservation

__all__ = [
    "Verdict",
    "Identity",
    "RunView",
    "agent_run_view",
    "run_finished",
    "classify_exception",
    "judge_http",
    "judge_execute",
    "judge_ws_failure",
    "judge_welcome",
    "judge_identity",
    "judge_agent_run",
    "judge_reply",
    "judge_session_end",
    "close_category",
    "close_label",
    "canned_evidence",
    "status_for_duration",
]

RUN_EVENTS = AGENT_EVENTS + FAILURE_EVENTS
#: Error codes with which a server reports that the agent run itself failed (not the session).
AGENT_ERROR_CODES = frozenset({"AGENT_ERROR", "AGENT_FAILED", "AGENT_EXECUTION_ERROR", "EXECUTION_ERROR",
                               "AGENT_EXECUTION_FAILED"})


@dataclass(frozen=True)
class Verdict:
    status: str
    category: str
    message: str
    detail: str = ""


def status_for_duration(duration_s: float, sla_s: float | None) -> str:
    return "degraded" if sla_s is not None and duration_s > sla_s else "pass"


# -- identity -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Identity:
    """The user ids our credentials name (the token's ``sub``; the E2E endpoint's ``user.id``). Empty when
    the session carries no identity (``auth.method: none``): then nothing can be compared."""

    user_ids: frozenset[str] = frozenset()

    @classmethod
    def of(cls, *ids: str | None) -> "Identity":
        return cls(frozenset(str(i) for i in ids if i))

    def __bool__(self) -> bool:
        return bool(self.user_ids)

    def matches(self, claimed: str | None) -> bool | None:
        """Whether a claimed user id is ours: whole, or shortened to a prefix plus ``...`` (the mid-September
        welcome). None when there is nothing to compare (no identity of ours, no claim, a bare ``...``)."""
        if not self.user_ids or claimed is None:
            return None
        text = str(claimed).strip()
        for ellipsis in ("...", "…"):
            if text.endswith(ellipsis):
                prefix = text[: -len(ellipsis)]
                if not prefix:
                    return None
                return any(uid.startswith(prefix) for uid in self.user_ids)
        return text in self.user_ids

    def text(self) -> str:
        return " / ".join(repr(u) for u in sorted(self.user_ids)) or "none"


def _as_ours(verdict: Verdict, wrong: Verdict | None) -> Verdict:
    """A session that is not ours cannot pass: a verdict that would pass becomes ``ws_auth_ignored``; a failure
    of its own keeps its category and says whose session it was (nothing is hidden behind the other)."""
    if wrong is None:
        return verdict
    if verdict.status in ("pass", "degraded"):
        return Verdict("fail", wrong.category, f"{wrong.message} (otherwise: {verdict.message})", wrong.detail)
    return Verdict(verdict.status, verdict.category, f"{verdict.message} — and {wrong.message}", verdict.detail)


def judge_identity(obs: WsObservation, identity: Identity) -> Verdict | None:
    """``ws_auth_ignored`` when the platform welcomed the session as a user that is not ours (the token was not
    read: a demo user; or not accepted: an anonymous fallback); None when it named ours, or named nobody."""
    for raw_type, claimed in obs.identity_claims():
        if identity.matches(claimed) is False:
            return Verdict("fail", "ws_auth_ignored",
                           f"the session was accepted, but as user {claimed!r} ({raw_type}), not as ours "
                           f"({identity.text()}): the platform did not take our token (never read it, or did not accept it "
                           f"and put a stand-in user in its place)",
                           f"placement={obs.placement}; frames: {_frames_text(obs)}")
    return None


# -- exceptions ---------------------------------------------------------------------------------

def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 8:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _exc_text(exc: BaseException) -> str:
    return clip(f"{type(exc).__name__}: {exc}".strip(), 500)


_DNS_WORDS = re.compile(r"name or service not known|nodename nor servname|temporary failure in name resolution"
                        r"|no address associated")
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH}


def classify_exception(exc: BaseException, stage: str = "") -> tuple[str, str]:
    """Map a network/protocol exception to (category, evidence text). ``stage`` says where it happened."""
    chain = _chain(exc)
    text = " | ".join(_exc_text(e) for e in chain)
    names = {type(e).__name__ for e in chain}
    lowered = text.lower()
    if "too many open files" in lowered or any(getattr(e, "errno", None) in (23, 24) for e in chain):
        return "client_error", text + " (the client ran out of file handles: raise `ulimit -n`)"
    if any(isinstance(e, socket.gaierror) for e in chain) or _DNS_WORDS.search(lowered):
        return "dns_failure", text
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "connection refused" in lowered \
            or "errno 111" in lowered:
        return "connection_refused", text
    if any(getattr(e, "errno", None) in _UNREACHABLE for e in chain) or "no route to host" in lowered \
            or "network is unreachable" in lowered:
        return "connect_timeout", text + " (the network reports the host unreachable: no TCP connection was made)"
    if any(isinstance(e, ssl.SSLError) or "ssl" in type(e).__name__.lower() for e in chain) or "certificate" in lowered:
        return "tls_error", text
    if "NegotiationError" in names or "subprotocol" in lowered:
        return "ws_subprotocol_mismatch", text
    if "PayloadTooBig" in names or "message too big" in lowered or "frame exceeds limit" in lowered:
        return "contract_mismatch", text + " (a frame larger than the client's limit)"
    if "ConnectTimeout" in names or (stage in ("dns", "tcp") and isinstance(exc, TimeoutError)):
        return "connect_timeout", text
    if stage == "upgrade" and (isinstance(exc, TimeoutError) or "timed out" in lowered):
        return "ws_handshake_timeout", text
    if {"ReadTimeout", "PoolTimeout", "WriteTimeout"} & names or isinstance(exc, TimeoutError):
        return "read_timeout", text
    dropped = ("ReadError" in names or "ConnectionResetError" in names or "IncompleteRead" in text
               or "disconnected without" in lowered or "connection closed" in lowered or re.search(r"\beof\b", lowered))
    if dropped:
        if stage in ("upgrade", "welcome", "open"):
            return "ws_abnormal_close", text + " (the connection dropped)"
        return "http_unavailable", text + " (the server closed the connection without an answer)"
    if "InvalidMessage" in names or "InvalidUpgrade" in names or "InvalidHeader" in names \
            or "RemoteProtocolError" in names or "LocalProtocolError" in names or "DecodingError" in names:
        return "contract_mismatch", text + " (the server did not speak the protocol)"
    if "InvalidURI" in names or "UnsupportedProtocol" in names or "InvalidURL" in names:
        return "config_error", text
    if "ConnectError" in names or isinstance(exc, OSError):
        return "connection_refused" if "refused" in lowered else "connect_timeout" if "timed out" in lowered else "unknown", text
    return "client_error", text


# -- HTTP ---------------------------------------------------------------------------------------

def _http_status_category(status: int) -> str:
    if status in (502, 503, 504):
        return "http_unavailable"
    if status >= 500:
        return "http_server_error"
    if status in (401, 403):
        return "http_auth_rejected"
    if status == 404:
        return "http_not_found"
    if status >= 400:
        return "http_client_error"
    return "contract_mismatch"  # 1xx/3xx where the contract promises 2xx


def judge_http(
    obs: HttpObservation,
    *,
    expect_status: int = 200,
    validate: Callable[[Any], str | None] | None = None,
    health: bool = False,
    sla_s: float | None = None,
    what: str = "",
) -> Verdict:
    """Judge one HTTP observation against the contract.

    ``validate`` receives the parsed JSON and returns a problem (str) or None. ``health`` enables
    the ``health_degraded`` rule (a status other than ``healthy``).
    """
    if not what:
        what = f"{obs.method} {urlsplit(obs.url).path or '/'}"
    timing = f"{obs.duration_s:.3f}s"
    if obs.exception is not None and obs.status is None:
        if obs.timed_out:
            stage = "" if obs.connect_s is not None or obs.bytes_sent else "tcp"
            category = "read_timeout" if stage == "" else "connect_timeout"
            return Verdict("fail", category, f"{what}: no answer within {obs.duration_s:.1f}s",
                           f"deadline reached after {timing}; connect_s={obs.connect_s}; {_exc_text(obs.exception)}")
        category, text = classify_exception(obs.exception)
        return Verdict("fail", category, f"{what}: {text.split(' | ')[0]}", f"after {timing}: {text}")
    if obs.exception is not None:
        # The head arrived but the body did not finish in time.
        return Verdict("fail", "read_timeout", f"{what}: HTTP {obs.status} but the body never finished",
                       f"after {timing}: {_exc_text(obs.exception)}")
    body = clip(obs.text, 600)
    if obs.status != expect_status:
        category = _http_status_category(obs.status)
        return Verdict("fail", category, f"{what}: HTTP {obs.status} (expected {expect_status})",
                       f"HTTP {obs.status} in {timing}; content-type={obs.headers.get('content-type')}; body: {body}")
    if obs.json is None:
        return Verdict("fail", "contract_mismatch", f"{what}: HTTP {obs.status} but the body is not JSON",
                       f"{obs.json_error}; content-type={obs.headers.get('content-type')}; body: {body}")
    if health:
        state = obs.json.get("status") if isinstance(obs.json, dict) else None
        if state is None:
            return Verdict("fail", "contract_mismatch", f"{what}: no 'status' in the health answer", f"body: {body}")
        if str(state).lower() not in ("healthy", "ok"):
            return Verdict("fail", "health_degraded", f"{what}: status {state!r}, not 'healthy'",
                           f"HTTP {obs.status} in {timing}; body: {body}")
    if validate is not None:
        try:
            problem = validate(obs.json)
        except Exception as exc:  # noqa: BLE001 - a validator crash on odd data is a contract problem
            problem = f"unexpected shape ({type(exc).__name__}: {exc})"
        if problem:
            return Verdict("fail", "contract_mismatch", f"{what}: {problem}", f"HTTP {obs.status}; body: {body}")
    status = status_for_duration(obs.duration_s, sla_s)
    note = f" (slower than the SLA of {sla_s}s)" if status == "degraded" else ""
    return Verdict(status, "ok", f"{what}: HTTP {obs.status}{note}", f"the request took {timing}; body: {body}")


# -- canned answers -----------------------------------------------------------------------------

_CANNED_WORDS = re.compile(r"\b(mock(?:ed)?|fake|simulated|canned|placeholder|stub(?:bed)?|dummy|fallback"
                           r"|degraded mode|recovery mechanism)\b", re.I)
#: An answer that is an error message, whatever status it came with ("Error executing triage agent: …").
_ERROR_TEXT = re.compile(r"^\s*(?:error|exception|failed|failure|traceback)\b|\berror executing\b", re.I)
#: Flags a server sets on an answer that no real agent produced.
_CANNED_FLAGS = (("real_llm_used", False), ("real_llm", False), ("mock", True), ("is_mock", True),
                 ("simulated", True), ("fallback", True), ("is_fallback", True))
#: What is left of a result once our request is taken out: a fixed phrase ("Agent response for: …") is short.
_ECHO_REST = 48


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _flags(obj: Any) -> list[str]:
    found = []
    stack = [obj]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            for key, bad in _CANNED_FLAGS:
                if key in cur and cur[key] is bad:
                    found.append(f"{key}: {json.dumps(bad)}")
            stack.extend(v for v in cur.values() if isinstance(v, (dict, list)))
        elif isinstance(cur, list):
            stack.extend(v for v in cur if isinstance(v, (dict, list)))
    return found


def canned_evidence(result: Any, request: str | None, *, frame: Any = None) -> str | None:
    """Why an answer is a canned or fallback stand-in, or None when nothing says so.

    Three signs, each observable in any implementation: the answer names itself (``Mock …``, ``Fallback …
    recovery``, ``simulated``); the server flags it (``real_llm_used: false``); or it is our own request
    wrapped in a fixed phrase (``Agent response for: <our request>``) — an agent that did work says more.
    """
    text = _text_of(result)
    word = _CANNED_WORDS.search(text)
    if word:
        return f"the answer calls itself {word.group(0)!r}: {clip(text, 160)!r}"
    flags = _flags(frame if frame is not None else result)
    if flags:
        return f"the server flags the answer: {', '.join(dict.fromkeys(flags))}"
    if request and request.strip():
        lowered, req = text.lower(), request.strip().lower()
        if req in lowered:
            rest = re.sub(r"[\W_]+", "", lowered.replace(req, ""))
            if len(rest) <= _ECHO_REST:
                return f"the answer is our request wrapped in a fixed phrase: {clip(text, 160)!r}"
    return None


def judge_execute(obs: HttpObservation, request: str, sla_s: float | None = None) -> Verdict:
    """``POST /api/agents/execute``: 200 with ``status``, ``agent``, ``response``; the response must be the
    agent's (not a canned or degraded-mode stand-in) and must have taken measurable time."""
    unavailable = ("service_unavailable", "unavailable", "circuit_breaker_open", "degraded")

    def validate(data: Any) -> str | None:
        if not isinstance(data, dict):
            return f"expected a JSON object, got {type(data).__name__}"
        missing = [k for k in ("status", "agent", "response") if k not in data]
        if missing and not (str(data.get("status", "")).lower() in unavailable):
            return f"missing keys {missing}"
        return None

    verdict = judge_http(obs, validate=validate, sla_s=sla_s, what="POST /api/agents/execute")
    if verdict.category != "ok":
        return verdict
    data = obs.json
    body = clip(obs.text, 600)
    state = str(data.get("status", "")).lower()
    if state in unavailable:
        return Verdict("fail", "http_unavailable",
                       f"POST /api/agents/execute: HTTP {obs.status} but status {data.get('status')!r}: "
                       f"the agent service is not serving", f"body: {body}")
    if state in ("error", "failed", "failure"):
        return Verdict("fail", "agent_failed", f"POST /api/agents/execute: status {data.get('status')!r}",
                       f"body: {body}")
    if is_blank(data.get("response")):
        return Verdict("fail", "agent_empty_result", "POST /api/agents/execute: HTTP 200 with an empty response",
                       f"body: {body}")
    said = _ERROR_TEXT.search(_text_of(data.get("response")))
    if said or not is_blank(data.get("error")):
        what = f"response {clip(_text_of(data.get('response')), 160)!r}" if said else f"error {clip(data.get('error'), 160)!r}"
        return Verdict("fail", "agent_failed",
                       f"POST /api/agents/execute: status {data.get('status')!r} but the {what}: the agent did not run",
                       f"body: {body}")
    why = canned_evidence(data.get("response"), request, frame=data)
    elapsed = data.get("execution_time")
    if why is None and isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool) and elapsed < 0.001:
        why = f"execution_time {elapsed!r}: the server measured no work"
    if why:
        return Verdict("fail", "mock_fallback", f"POST /api/agents/execute answered a canned stand-in: {why}",
                       f"HTTP {obs.status} in {obs.duration_s:.3f}s; body: {body}")
    return verdict


# -- WebSocket: closes --------------------------------------------------------------------------

_AUTH_REASON = re.compile(r"auth|token|unauthori[sz]ed|forbidden|credential|jwt|permission", re.I)
_CLOSE_NAMES = {1000: "normal closure", 1001: "going away", 1002: "protocol error", 1003: "unsupported data",
                1005: "no status code", 1006: "abnormal closure", 1007: "invalid data", 1008: "policy violation",
                1009: "message too big", 1010: "mandatory extension", 1011: "internal error", 1012: "service restart",
                1013: "try again later", 1014: "bad gateway", 1015: "TLS handshake"}


def close_label(code: int | None) -> str:
    """A close code with what it means: ``1011 (internal error)``, ``4001 (an application close code)``."""
    if code is None:
        return "no close"
    if code in _CLOSE_NAMES:
        return f"{code} ({_CLOSE_NAMES[code]})"
    if 4000 <= code <= 4999:
        return f"{code} (an application close code)"
    if 3000 <= code <= 3999:
        return f"{code} (a registered library/framework close code)"
    return f"{code} (not a standard close code)"


def close_category(code: int | None, closed_by: str | None, reason: str | None = None) -> str | None:
    """The category a close implies, or None for a close that is not a failure by itself (our own normal close).
    Every other code maps to a category: a close is never ``unknown``."""
    if code is None:
        return None
    if code == 1006 or (closed_by is None and code not in (1000, 1001)):
        return "ws_abnormal_close"
    if closed_by == "client":
        if code == 1011:
            return "ws_keepalive_timeout"
        if code in (1002, 1007, 1009):
            return "contract_mismatch"
        return None
    if code == 1011:
        return "ws_internal_error"
    if code in (1008, 3000, 3003):
        return "ws_policy_violation"
    if code in (1002, 1003, 1007, 1009, 1010):
        return "contract_mismatch"
    if code in (1013, 1014):
        return "ws_upgrade_unavailable"
    if code == 1015:
        return "tls_error"
    if 4000 <= code <= 4999 and reason and _AUTH_REASON.search(reason):
        return "ws_policy_violation"
    return "ws_closed_early"  # 1000/1001/1005/1012, application codes and the rest: the server ended the session


_CLOSE_TEXT = {"ws_internal_error": "the server closed the WebSocket on an internal error",
               "ws_closed_early": "the server closed the WebSocket",
               "ws_policy_violation": "the server closed the WebSocket on a policy or authentication ground",
               "ws_abnormal_close": "the connection dropped without a close frame (1006)",
               "ws_keepalive_timeout": "the client closed the WebSocket: pings went unanswered",
               "ws_upgrade_unavailable": "the server closed the WebSocket: it is overloaded or restarting",
               "tls_error": "the connection closed on a TLS failure",
               "contract_mismatch": "the connection closed on a protocol error"}


def _close_text(obs: WsObservation) -> str:
    """``close 4001 (an application close code) 'Authentication failed' by server, 0.200s after the first client
    message (our request)``: who closed, with what, and when relative to what we sent."""
    who = obs.closed_by or "nobody (no close frame)"
    close_t, first, req = obs.close_t, obs.first_client_message_t, obs.request_t
    if close_t is None:
        when = ""
    elif first is None or close_t < first:
        when = "before the first client message"
    else:
        when = f"{close_t - first:.3f}s after the first client message"
        if req is not None and abs(req - first) < 1e-9:
            when += " (our request)"
        elif req is not None and close_t >= req:
            when += f", {close_t - req:.3f}s after our request"
    reason = f" {obs.close_reason!r}" if obs.close_reason else ""
    return f"close {close_label(obs.close_code)}{reason} by {who}" + (f", {when}" if when else "")


def _ended(obs: WsObservation) -> bool:
    """The session ended in a way that was not our normal close at the end of the check."""
    return close_category(obs.close_code, obs.closed_by, obs.close_reason) is not None


def _frames_text(obs: WsObservation, limit: int = 12) -> str:
    parts = []
    for f in obs.frames[:limit]:
        arrow = "→" if f.direction == "sent" else "←" if f.direction == "received" else "×"
        parts.append(f"{f.t:.3f}s {arrow} {f.norm.raw_type if f.direction != 'close' else f.text}")
    more = f" … (+{len(obs.frames) - limit})" if len(obs.frames) > limit else ""
    return "; ".join(parts) + more


_EXC_NAME = re.compile(r"\b([A-Z][A-Za-z0-9]*(?:Error|Exception))\b")


def _error_frame_text(frame: Any) -> str:
    """An error frame in words: its code, its message and the exception it names (``RecursionError``)."""
    n = frame.norm
    parts = [p for p in (n.error_code, repr(clip(n.message, 160)) if n.message else None) if p]
    names = [m for m in dict.fromkeys(_EXC_NAME.findall(frame.text)) if m not in (n.error_code or "")]
    if names:
        parts.append(f"(names {', '.join(names[:3])})")
    return " ".join(parts) or n.raw_type


def judge_ws_failure(obs: WsObservation) -> Verdict | None:
    """A verdict for a session that never opened (upgrade failures); None when it opened."""
    if obs.opened:
        return None
    timing = f"{obs.duration_s:.3f}s"
    if obs.upgrade_status is not None and obs.exception is not None:
        code = obs.upgrade_status
        if code in (401, 403):
            category = "ws_upgrade_auth_rejected"
        elif code == 404:
            category = "ws_route_missing"
        elif code in (502, 503, 504):
            category = "ws_upgrade_unavailable"
        elif code >= 500:
            category = "ws_upgrade_server_error"
        elif code in (426, 400, 405):
            category = "ws_route_missing"
        else:
            category = "contract_mismatch"
        body = clip(obs.upgrade_body, 300).strip()
        return Verdict("fail", category, f"WebSocket upgrade refused: HTTP {code}",
                       f"server rejected WebSocket connection: HTTP {code} after {timing}; "
                       f"placement={obs.placement}; body: {body!r}" if body else
                       f"server rejected WebSocket connection: HTTP {code} after {timing}; placement={obs.placement}; "
                       f"empty body")
    exc = obs.exception
    if exc is None:
        return Verdict("error", "client_error", "the WebSocket did not open and no error was recorded", "")
    if obs.timed_out_stage is not None:
        stage = obs.timed_out_stage
        category = "connect_timeout" if stage in ("dns", "tcp") else "ws_handshake_timeout"
        where = {"dns": "resolving the host", "tcp": "the TCP connect", "upgrade": "the opening handshake"}.get(stage, stage)
        return Verdict("fail", category, f"timed out during {where} ({obs.duration_s:.1f}s)",
                       f"stage={stage}; connect_s={obs.connect_s}; {_exc_text(exc)}")
    category, text = classify_exception(exc, obs.stage)
    return Verdict("fail", category, f"WebSocket failed at {obs.stage}: {text.split(' | ')[0]}",
                   f"stage={obs.stage} after {timing}: {text}")


def judge_session_end(obs: WsObservation, missing: str) -> Verdict:
    """Why a session that opened did not deliver: a close, an error frame, frames that are not JSON objects, or
    frames of no known shape. Never claims a wait: that is the caller's, who knows how long it waited."""
    frames = _frames_text(obs)
    received = obs.received()
    errors = [f for f in received if f.norm.event == "error"]
    close_cat = close_category(obs.close_code, obs.closed_by, obs.close_reason)
    closing = f", then {_close_text(obs)}" if close_cat else ""
    if (errors and ((errors[0].norm.error_code or "").upper() in ("AUTH_FAILED", "AUTH_ERROR")
                    or errors[0].norm.raw_type == "authentication_error")) or close_cat == "ws_policy_violation":
        said = f": {_error_frame_text(errors[0])}" if errors else ""
        return Verdict("fail", "ws_policy_violation",
                       f"{missing}: the server rejected the session after accept{said}" +
                       (f" ({_close_text(obs)})" if close_cat else ""), f"frames: {frames}")
    if errors and not any(f.norm.event in AGENT_EVENTS for f in received):
        return Verdict("fail", "ws_error_frame",
                       f"{missing}: the server sent an error frame {_error_frame_text(errors[0])}{closing}",
                       f"first error frame: {clip(errors[0].text, 400)}; frames: {frames}")
    if close_cat:
        label = _CLOSE_TEXT.get(close_cat, "the WebSocket closed")
        return Verdict("fail", close_cat, f"{missing}: {label} ({_close_text(obs)})", f"frames: {frames}")
    bad = [f for f in received if f.norm.event == "invalid"]
    if bad:
        return Verdict("fail", "contract_mismatch",
                       f"{missing}: {len(bad)} frame(s) were not JSON objects ({bad[0].norm.raw_type})",
                       f"first bad frame: {clip(bad[0].text, 200)}; frames: {frames}")
    odd = [f for f in received if f.norm.event == "other"]
    if odd:
        return Verdict("fail", "contract_mismatch",
                       f"{missing}: the server sent frames of no known shape ({odd[0].norm.raw_type})",
                       f"first such frame: {clip(odd[0].text, 300)}; frames: {frames}")
    return Verdict("fail", "ws_no_reply", f"{missing}: the server sent nothing", f"frames: {frames}")


def judge_welcome(obs: WsObservation, identity: Identity = Identity(), sla_s: float | None = None,
                  waited_s: float | None = None) -> Verdict:
    """The session opened, the server welcomed it (any era), and as our user."""
    failed = judge_ws_failure(obs)
    if failed:
        return failed
    if obs.welcome is None:
        verdict = judge_session_end(obs, "no welcome (connection_established in any era)")
        if verdict.category == "ws_no_reply":
            waited = f" within {waited_s:.1f}s" if waited_s else ""
            return Verdict("fail", "ws_handshake_timeout",
                           f"the WebSocket opened in {obs.open_s:.3f}s but no welcome came{waited}: the session "
                           f"setup did not finish", verdict.detail)
        return verdict
    status = status_for_duration(obs.welcome_s or 0.0, sla_s)
    data = obs.welcome.data if isinstance(obs.welcome.data, dict) else {}
    ident = f" (connection {data['connection_id']})" if data.get("connection_id") else ""
    return _as_ours(Verdict(status, "ok", f"WebSocket open in {obs.open_s:.3f}s, welcome after {obs.welcome_s:.3f}s{ident}",
                            f"subprotocol={obs.subprotocol}; welcome user={obs.welcome.user_id!r}; frames: "
                            f"{_frames_text(obs)}"), judge_identity(obs, identity))


def _before_the_request(obs: WsObservation, request_sent: bool, unsent: str) -> Verdict | None:
    """The verdict when the session failed before our request went out, else None."""
    failed = judge_ws_failure(obs)
    if failed:
        return failed
    if not request_sent:
        return judge_session_end(obs, unsent)
    return None


def _waited(obs: WsObservation) -> float:
    """How long the session was watched after our request: until its close or its end."""
    end = obs.close_t if obs.close_t is not None else obs.duration_s
    return max(0.0, (end or 0.0) - (obs.request_t or 0.0))


def _raw_types(frames: Iterable[Any]) -> str:
    counts: dict[str, int] = {}
    for f in frames:
        counts[f.norm.raw_type] = counts.get(f.norm.raw_type, 0) + 1
    return ", ".join(f"{t} ×{n}" if n > 1 else t for t, n in counts.items())


# -- the agent run ------------------------------------------------------------------------------

@dataclass
class RunView:
    """Which agent frames after our request are our run's, and which are somebody else's."""

    run_id: str | None  # the id our run's events carry (None: the server names no runs)
    how: str  # how it was told: "echoed", "first agent_started after our request", "no run ids"
    ours: list[Any] = field(default_factory=list)
    foreign: list[Any] = field(default_factory=list)  # another run's or another user's events
    before: list[Any] = field(default_factory=list)  # agent frames before our request (they count for nothing)
    other_user: list[Any] = field(default_factory=list)  # our run's events naming a user that is not ours

    @property
    def finished(self) -> bool:
        return any(f.norm.event in ("agent_completed", *FAILURE_EVENTS) for f in self.ours)


def agent_run_view(obs: WsObservation, sent_run_id: str | None, identity: Identity = Identity()) -> RunView:
    """Split the agent frames of a session into our run's and the others' (pure).

    Our run is the one our request started: the id we sent, when the server echoes it; else the id on the first
    ``agent_started`` after our request. A frame naming another run is foreign; without run ids, a frame naming
    another user is foreign when some frames name ours, and our run's own otherwise (the run ran as somebody else).
    """
    received = [f for f in obs.frames if f.direction == "received" and f.norm.event in RUN_EVENTS]
    if obs.request_t is None:
        return RunView(None, "no request", before=received)
    before = [f for f in received if f.t < obs.request_t]
    # A run already under way before our request is not the one our request started.
    stale = {f.norm.run_id for f in before if f.norm.run_id} - {sent_run_id}
    before += [f for f in received if f.t >= obs.request_t and f.norm.run_id in stale]
    after = [f for f in received if f.t >= obs.request_t and f.norm.run_id not in stale]
    if sent_run_id and any(f.norm.run_id == sent_run_id for f in after):
        run_id, how = sent_run_id, "echoed"
    else:
        first = next((f for f in after if f.norm.event == "agent_started" and f.norm.run_id), None) \
            or next((f for f in after if f.norm.run_id), None)
        run_id, how = (first.norm.run_id, "first agent_started after our request") if first else (None, "no run ids")
    view = RunView(run_id, how, before=before)
    mine_by_user = any(identity.matches(f.norm.user_id) for f in after)
    for f in after:
        other_run = run_id is not None and f.norm.run_id is not None and f.norm.run_id != run_id
        other_user = identity.matches(f.norm.user_id) is False
        if other_run or (other_user and run_id is None and mine_by_user):
            view.foreign.append(f)
        else:
            view.ours.append(f)
            if other_user:
                view.other_user.append(f)
    return view


def run_finished(obs: WsObservation, sent_run_id: str | None, identity: Identity = Identity()) -> bool:
    """True once our run has ended (``agent_completed``/``agent_error``/``agent_failed`` of our run): a leaked
    foreign completion does not end our reading."""
    return agent_run_view(obs, sent_run_id, identity).finished


def judge_agent_run(
    obs: WsObservation,
    *,
    request_sent: bool,
    identity: Identity = Identity(),
    sent_run_id: str | None = None,
    request: str | None = None,
    sla_s: float | None = None,
    own_events_only: bool = False,
) -> Verdict:
    """The golden path: our request started a run of the platform's agent that delivered the five events in order
    and a result that is not a canned stand-in, in our session, as our user.

    ``own_events_only``: judge completion on our run's events and leave another run's events to the caller (the
    fleet reports them under ``user_isolation``). A session that is not ours (the welcome, an ack or our run's
    events name another user) cannot pass; a failure of its own is still reported as itself.
    """
    early = _before_the_request(obs, request_sent, "our request was not sent")
    if early:
        return _as_ours(early, judge_identity(obs, identity)) if obs.opened else early
    view = agent_run_view(obs, sent_run_id, identity)
    wrong = judge_identity(obs, identity)
    if wrong is None and view.other_user and len(view.other_user) == len(view.ours):
        f = view.other_user[0].norm
        wrong = Verdict("fail", "ws_auth_ignored",
                        f"our request ran as user {f.user_id!r}, not as ours ({identity.text()}): the platform did "
                        f"not take our token (never read it, or did not accept it and put a stand-in user in its place)", f"frames: {_frames_text(obs, 16)}")
    return _as_ours(_judge_run(obs, view, identity, request, sla_s, own_events_only), wrong)


def _judge_run(obs: WsObservation, view: RunView, identity: Identity, request: str | None, sla_s: float | None,
               own_events_only: bool) -> Verdict:
    frames = _frames_text(obs, 16)
    seen = [f.norm.event for f in view.ours]
    waited = _waited(obs)
    if view.foreign and not own_events_only:
        f = view.foreign[0].norm
        return Verdict("fail", "cross_user_leak",
                       f"this session received {len(view.foreign)} event(s) of another user/run "
                       f"(user {f.user_id!r}, run {f.run_id!r}; ours: user {identity.text()}, run {view.run_id!r})",
                       f"our run told by: {view.how}; frames: {frames}")
    failures = [f for f in view.ours if f.norm.event in FAILURE_EVENTS]
    if failures:
        f = failures[0]
        return Verdict("fail", "agent_failed", f"{f.norm.event}: {f.norm.message or 'no message'}",
                       f"{f.t - obs.request_t:.3f}s after our request; events: {seen}; frames: {frames}")
    problem = check_order(seen)
    if problem:
        return Verdict("fail", "agent_event_order", f"agent events out of order: {problem}",
                       f"events: {seen}; frames: {frames}")
    completed = next((f for f in view.ours if f.norm.event == "agent_completed"), None)
    missing = [e for e in AGENT_EVENTS if e not in seen]
    after = obs.after_request()
    bad = [f for f in after if f.norm.event == "invalid"]
    note = f"; {len(view.before)} agent event(s) before our request, not counted" if view.before else ""
    if completed is not None:
        n = completed.norm
        elapsed = completed.t - obs.request_t
        if n.status is not None and n.status.strip().lower() not in COMPLETED_OK:
            return Verdict("fail", "agent_failed",
                           f"agent_completed arrived with status {n.status!r}, not 'completed'",
                           f"agent_completed: {clip(completed.text, 400)}; events: {seen}")
        if missing and bad:
            return Verdict("fail", "contract_mismatch",
                           f"{len(bad)} frame(s) that are not JSON objects came in place of {', '.join(missing)}",
                           f"first bad frame: {clip(bad[0].text, 200)}; events: {seen}; frames: {frames}")
        if missing:
            return Verdict("fail", "agent_incomplete", f"agent_completed arrived without {', '.join(missing)}",
                           f"events: {seen}; frames: {frames}{note}")
        if n.result is None:
            return Verdict("fail", "agent_empty_result", "agent_completed arrived without a result",
                           f"agent_completed: {clip(completed.text, 400)}")
        why = canned_evidence(n.result, request, frame=n.data)
        if why:
            return Verdict("fail", "mock_fallback", f"the agent run returned a canned stand-in: {why}",
                           f"agent_completed {elapsed:.3f}s after our request: {clip(completed.text, 400)}; frames: {frames}")
        status = status_for_duration(elapsed, sla_s)
        sla = f" (slower than the SLA of {sla_s}s)" if status == "degraded" else ""
        return Verdict(status, "ok",
                       f"agent run completed {elapsed:.3f}s after our request, with all five events and a result{sla}",
                       f"result: {clip(_text_of(n.result), 400)}; our run told by: {view.how}; frames: {frames}{note}")
    # Not completed: why?
    errors = [f for f in after if f.norm.event == "error"]
    if errors and not seen:
        err = errors[0]
        closing = f", then {_close_text(obs)}" if _ended(obs) else ""
        category = "agent_failed" if (err.norm.error_code or "").upper() in AGENT_ERROR_CODES else "ws_error_frame"
        if (err.norm.error_code or "").upper() in ("AUTH_FAILED", "AUTH_ERROR") or err.norm.raw_type == "authentication_error":
            return judge_session_end(obs, "the agent run did not start")
        return Verdict("fail", category,
                       f"the agent run did not start: {err.t - obs.request_t:.3f}s after our request the server sent "
                       f"an error frame {_error_frame_text(err)}{closing}",
                       f"first error frame: {clip(err.text, 400)}; frames: {frames}")
    if _ended(obs):
        return judge_session_end(obs, "the agent run did not complete" if seen else "no agent event")
    if bad:
        return Verdict("fail", "contract_mismatch",
                       f"the agent run did not complete; {len(bad)} frame(s) were not JSON objects ({bad[0].norm.raw_type})",
                       f"first bad frame: {clip(bad[0].text, 200)}; events: {seen}; frames: {frames}")
    if not seen:
        others = [f for f in after if f.norm.event not in RUN_EVENTS]
        only = f" (only {_raw_types(others)})" if others else " (nothing at all)"
        foreign = f"; {len(view.foreign)} event(s) of another run" if view.foreign else ""
        return Verdict("fail", "agent_no_events",
                       f"request sent; no agent event of our run in {waited:.1f}s{only}{foreign}",
                       f"frames: {frames}{note}")
    return Verdict("fail", "agent_incomplete",
                   f"agent run stopped after {seen[-1]}; missing {', '.join(missing)} after {waited:.1f}s",
                   f"events: {seen}; frames: {frames}")


def judge_reply(
    obs: WsObservation,
    *,
    expected: Callable[[Normalized], bool],
    expectation: str,
    request_sent: bool,
    identity: Identity = Identity(),
    sla_s: float | None = None,
) -> Verdict:
    """A request/response over the session (ping → pong, invalid JSON → its error frame, …): only the
    contract's reply, in its documented shape, passes. Another reply is ``contract_mismatch`` quoting it;
    silence (keepalives aside) is ``ws_no_reply``. A session that is not ours cannot pass."""
    return _as_ours(_judge_reply(obs, expected, expectation, request_sent, sla_s), judge_identity(obs, identity))


def _judge_reply(obs: WsObservation, expected: Callable[[Normalized], bool], expectation: str, request_sent: bool,
                 sla_s: float | None) -> Verdict:
    early = _before_the_request(obs, request_sent, f"our message was not sent (no {expectation} to wait for)")
    if early:
        return early
    replies = [f for f in obs.after_request() if f.norm.event not in KEEPALIVE]
    match = next((f for f in replies if expected(f.norm)), None)
    if match is not None:
        elapsed = match.t - obs.request_t
        status = status_for_duration(elapsed, sla_s)
        return Verdict(status, "ok", f"{expectation} {elapsed:.3f}s after our message", f"reply: {clip(match.text, 300)}")
    waited = _waited(obs)
    if replies:
        first = replies[0]
        said = _error_frame_text(first) if first.norm.event == "error" else first.norm.raw_type
        closing = f"; then {_close_text(obs)}" if _ended(obs) else ""
        return Verdict("fail", "contract_mismatch",
                       f"no {expectation}: {first.t - obs.request_t:.3f}s after our message the server answered "
                       f"{said} instead{closing}",
                       f"reply: {clip(first.text, 300)}; frames: {_frames_text(obs)}")
    if _ended(obs):
        return judge_session_end(obs, f"no {expectation}")
    keep = [f for f in obs.after_request() if f.norm.event in KEEPALIVE]
    only = f" (only {_raw_types(keep)})" if keep else ""
    return Verdict("fail", "ws_no_reply", f"no {expectation}: no reply in {waited:.1f}s{only}; the session stayed open",
                   f"frames: {_frames_text(obs)}")
