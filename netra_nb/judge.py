"""Judging observations: from what a client saw to a status, a category and the evidence (pure).

Every function here takes plain observation objects (:class:`~netra_nb.http.HttpObservation`,
:class:`~netra_nb.ws.WsObservation`) or plain values and returns a :class:`Verdict`; no I/O, so
the rules are tested without sockets. A check passes only on the contract's evidence.
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Callable

from .frames import AGENT_EVENTS, FAILURE_EVENTS, check_order, result_of
from .redact import clip

__all__ = [
    "Verdict",
    "classify_exception",
    "judge_http",
    "judge_ws_failure",
    "judge_welcome",
    "judge_agent_run",
    "judge_reply",
    "judge_session_end",
    "close_category",
    "status_for_duration",
]


@dataclass(frozen=True)
class Verdict:
    status: str
    category: str
    message: str
    detail: str = ""


def status_for_duration(duration_s: float, sla_s: float | None) -> str:
    return "degraded" if sla_s is not None and duration_s > sla_s else "pass"


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
    obs: Any,
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
        from urllib.parse import urlsplit
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
        if health and obs.status in (502, 503, 504) and isinstance(obs.json, dict) and obs.json.get("status"):
            category = "http_unavailable"
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
    return Verdict(status, "ok", f"{what}: HTTP {obs.status} in {timing}{note}", f"body: {body}")


# -- WebSocket ----------------------------------------------------------------------------------

def close_category(code: int | None, closed_by: str | None, reason: str | None = None) -> str | None:
    """The category a close implies, or None for a close that is not a failure by itself."""
    if code is None:
        return None
    if code == 1006 or (closed_by is None and code not in (1000, 1001)):
        return "ws_abnormal_close"
    if closed_by == "client":
        if code == 1011:
            return "ws_keepalive_timeout"
        if code == 1009:
            return "contract_mismatch"
        if code in (1002, 1007):
            return "contract_mismatch"
        return None
    if code == 1011:
        return "ws_internal_error"
    if code == 1008:
        return "ws_policy_violation"
    if code in (1000, 1001, 1012):
        return "ws_closed_early"
    if code in (1002, 1003, 1007, 1009):
        return "contract_mismatch"
    if code == 1013:
        return "ws_upgrade_unavailable"
    return "unknown"


def _close_text(obs: Any) -> str:
    who = obs.closed_by or "nobody (no close frame)"
    when = ""
    if obs.first_client_message_t is None:
        when = "before the first client message"
    else:
        close_t = next((f.t for f in obs.frames if f.direction == "close"), None)
        if close_t is not None:
            when = f"{close_t - obs.first_client_message_t:.3f}s after the first client message"
    return f"close {obs.close_code} {obs.close_reason or ''!s} by {who}, {when}".replace("  ", " ").strip(", ")


def _frames_text(obs: Any, limit: int = 12) -> str:
    parts = []
    for f in obs.frames[:limit]:
        arrow = "→" if f.direction == "sent" else "←" if f.direction == "received" else "×"
        parts.append(f"{f.t:.3f}s {arrow} {f.norm.raw_type if f.direction != 'close' else f.text}")
    more = f" … (+{len(obs.frames) - limit})" if len(obs.frames) > limit else ""
    return "; ".join(parts) + more


def judge_ws_failure(obs: Any) -> Verdict | None:
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
        return Verdict("fail", category, f"WebSocket upgrade refused: HTTP {code}",
                       f"server rejected WebSocket connection: HTTP {code} after {timing}; body: {clip(obs.upgrade_body, 300)}")
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


def judge_welcome(obs: Any, sla_s: float | None = None) -> Verdict:
    """The session opened and the server welcomed it (any era)."""
    failed = judge_ws_failure(obs)
    if failed:
        return failed
    if obs.welcome is None:
        return judge_session_end(obs, "no welcome (connection_established) frame")
    status = status_for_duration(obs.welcome_s or 0.0, sla_s)
    ident = _welcome_ids(obs)
    return Verdict(status, "ok", f"WebSocket open in {obs.open_s:.3f}s, welcome after {obs.welcome_s:.3f}s{ident}",
                   f"subprotocol={obs.subprotocol}; frames: {_frames_text(obs)}")


def _welcome_ids(obs: Any) -> str:
    data = (obs.welcome.data or {}) if obs.welcome else {}
    cid = data.get("connection_id") if isinstance(data, dict) else None
    return f" (connection {cid})" if cid else ""


def judge_session_end(obs: Any, missing: str) -> Verdict:
    """Why a session that opened did not deliver: a close, an error frame, bad frames, or silence."""
    frames = _frames_text(obs)
    received = obs.received()
    errors = [f for f in received if f.norm.event == "error"]
    close_cat = close_category(obs.close_code, obs.closed_by, obs.close_reason)
    if errors and errors[0].norm.error_code == "AUTH_FAILED" or (close_cat == "ws_policy_violation"):
        return Verdict("fail", "ws_policy_violation",
                       f"{missing}: the server rejected the session after accept ({_close_text(obs)})",
                       f"frames: {frames}")
    if errors and not any(f.norm.event in AGENT_EVENTS for f in received):
        err = errors[0].norm
        closing = f", then {_close_text(obs)}" if obs.close_code else ""
        return Verdict("fail", "ws_error_frame",
                       f"{missing}: the server sent an error frame {err.error_code or ''} {err.message or ''}".strip() + closing,
                       f"frames: {frames}")
    if close_cat:
        label = {"ws_internal_error": "the server closed the WebSocket with 1011 (internal error)",
                 "ws_closed_early": "the server closed the WebSocket normally",
                 "ws_abnormal_close": "the connection dropped without a close frame (1006)",
                 "ws_keepalive_timeout": "the client closed the WebSocket: pings went unanswered",
                 "contract_mismatch": "the connection failed on the protocol"}.get(close_cat, "the WebSocket closed")
        return Verdict("fail", close_cat, f"{missing}: {label} ({_close_text(obs)})", f"frames: {frames}")
    bad = [f for f in received if f.norm.event == "invalid"]
    if bad:
        return Verdict("fail", "contract_mismatch",
                       f"{missing}: {len(bad)} frame(s) were not JSON objects ({bad[0].norm.raw_type})",
                       f"first bad frame: {clip(bad[0].text, 200)}; frames: {frames}")
    return Verdict("fail", "unknown", f"{missing}", f"frames: {frames}")


def _before_the_request(obs: Any, request_sent: bool, unsent: str) -> Verdict | None:
    """The verdict when the session failed before our request went out, else None."""
    failed = judge_ws_failure(obs)
    if failed:
        return failed
    if obs.welcome is None:
        return judge_session_end(obs, "the session never welcomed us")
    if not request_sent:
        return judge_session_end(obs, unsent)
    return None


def judge_agent_run(
    obs: Any,
    *,
    request_sent: bool,
    deadline_reached: bool,
    user_id: str | None = None,
    run_id: str | None = None,
    sla_s: float | None = None,
    timeout_s: float | None = None,
) -> Verdict:
    """The golden path: five agent events from the platform, in order, and a non-empty result."""
    early = _before_the_request(obs, request_sent, "the request could not be sent")
    if early:
        return early
    received = obs.received()
    t_req = obs.request_t if obs.request_t is not None else (obs.first_client_message_t or 0.0)
    agent_frames = [f for f in received if f.norm.event in AGENT_EVENTS + FAILURE_EVENTS]
    seen = [f.norm.event for f in agent_frames]
    frames = _frames_text(obs, 16)

    foreign = [f for f in agent_frames
               if (user_id and f.norm.user_id and f.norm.user_id != user_id)
               or (run_id and f.norm.run_id and f.norm.run_id != run_id)]
    if foreign:
        f = foreign[0].norm
        return Verdict("fail", "cross_user_leak",
                       f"this session received {len(foreign)} event(s) of another user/run "
                       f"(user {f.user_id!r}, run {f.run_id!r}; ours: user {user_id!r}, run {run_id!r})",
                       f"frames: {frames}")
    failures = [f for f in agent_frames if f.norm.event in FAILURE_EVENTS]
    if failures:
        f = failures[0]
        return Verdict("fail", "agent_failed", f"{f.norm.event}: {f.norm.message or 'no message'}",
                       f"after {f.t - t_req:.3f}s; events: {seen}; frames: {frames}")
    problem = check_order(seen)
    if problem:
        return Verdict("fail", "agent_event_order", f"agent events out of order: {problem}", f"events: {seen}; frames: {frames}")
    completed = next((f for f in agent_frames if f.norm.event == "agent_completed"), None)
    missing = [e for e in AGENT_EVENTS if e not in seen]
    bad = [f for f in received if f.norm.event == "invalid"]
    if completed is not None:
        if missing and bad:
            return Verdict("fail", "contract_mismatch",
                           f"{len(bad)} frame(s) that are not JSON objects came in place of {', '.join(missing)}",
                           f"first bad frame: {clip(bad[0].text, 200)}; events: {seen}; frames: {frames}")
        if missing:
            return Verdict("fail", "agent_incomplete", f"agent_completed arrived without {', '.join(missing)}",
                           f"events: {seen}; frames: {frames}")
        result = result_of(completed.norm)
        if result is None:
            return Verdict("fail", "agent_empty_result", "agent_completed arrived without a result",
                           f"agent_completed: {clip(completed.text, 400)}")
        elapsed = completed.t - t_req
        status = status_for_duration(elapsed, sla_s)
        note = f" (slower than the SLA of {sla_s}s)" if status == "degraded" else ""
        return Verdict(status, "ok",
                       f"agent run completed in {elapsed:.3f}s with all five events and a result{note}",
                       f"result: {clip(str(result), 400)}; frames: {frames}")
    # Not completed: why?
    if obs.close_code is not None:
        verdict = judge_session_end(obs, "the agent run did not complete")
        if verdict.category != "unknown":
            return verdict
    if bad:
        return Verdict("fail", "contract_mismatch",
                       f"the agent run did not complete; {len(bad)} frame(s) were not JSON objects ({bad[0].norm.raw_type})",
                       f"first bad frame: {clip(bad[0].text, 200)}; events: {seen}; frames: {frames}")
    errors = [f for f in received if f.norm.event == "error"]
    if errors and not seen:
        return judge_session_end(obs, "the agent run did not start")
    limit = f"{timeout_s:.0f}s" if timeout_s else "the deadline"
    if not seen:
        others = sorted({f.norm.raw_type for f in received if f.t >= t_req})
        return Verdict("fail", "agent_no_events",
                       f"request sent; no agent event within {limit}" + (f" (only {', '.join(others)})" if others else ""),
                       f"frames: {frames}")
    return Verdict("fail", "agent_incomplete",
                   f"agent run stopped after {seen[-1]}; missing {', '.join(missing)} within {limit}",
                   f"events: {seen}; frames: {frames}")


def judge_reply(
    obs: Any,
    *,
    expected: Callable[[Any], bool],
    expectation: str,
    request_sent: bool,
    sla_s: float | None = None,
) -> Verdict:
    """A request/response over the session (ping → pong, invalid JSON → error frame, …)."""
    early = _before_the_request(obs, request_sent, f"could not send the request for {expectation}")
    if early:
        return early
    t_req = obs.request_t if obs.request_t is not None else (obs.first_client_message_t or 0.0)
    replies = [f for f in obs.received() if f.t >= t_req]
    match = next((f for f in replies if expected(f.norm)), None)
    if match is not None:
        elapsed = match.t - t_req
        status = status_for_duration(elapsed, sla_s)
        return Verdict(status, "ok", f"{expectation} in {elapsed:.3f}s", f"reply: {clip(match.text, 300)}")
    if obs.close_code is not None:
        return judge_session_end(obs, f"no {expectation}")
    kinds = sorted({f.norm.raw_type for f in replies})
    return Verdict("fail", "contract_mismatch",
                   f"no {expectation}" + (f"; got only {', '.join(kinds)}" if kinds else "; silence until the deadline"),
                   f"frames: {_frames_text(obs)}")
