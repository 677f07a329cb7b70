"""Everything on the wire, recorded into the run folder's ``wire.jsonl`` (the replay serves it back).

:func:`netra_nb.checks.Context.run` opens a :func:`scope` naming the phase and the check; the I/O edges
(:mod:`netra_nb.http`, :mod:`netra_nb.ws`) report what they did to it, and nothing is recorded outside a
scope (a check run without a run folder records nothing). Every text is redacted before it is cut
(:func:`netra_nb.redact.clip`); the run folder's final scrub covers the file too.

One JSON object a line, appended with :func:`netra_nb.records.append_jsonl` (whole lines under a lock, as
``results.jsonl``) as each exchange ends: an HTTP exchange when its answer (or its failure) is in, a
WebSocket session's lines together when the session is closed. Every line has ``t`` (seconds since the
run started, from ``run.json``), ``kind``, ``phase``, ``check`` and ``session``; the kinds are described
in README ("Record, replay and the corpus for an incident review").
"""

from __future__ import annotations

import json
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit

import jwt

from .records import append_jsonl, read_jsonl
from .redact import REDACTED, clip, redact

__all__ = ["WIRE_FILE", "REPLAY_HEADER", "scope", "leave", "record_http", "WireSession", "session_for",
           "token_of", "token_key", "read_wire", "replay_of", "BODY_KEEP", "FRAME_KEEP", "SCHEMA"]

WIRE_FILE = "wire.jsonl"
#: The header a replay server puts on every answer (``netra_nb.replay``): what it replays, as JSON.
REPLAY_HEADER = "x-netra-nb-replay"
SCHEMA = 1
BODY_KEEP = 64 * 1024  # characters of a body kept (redacted first, then cut)
FRAME_KEEP = 64 * 1024  # characters of a frame kept
HEADER_KEEP = 1000
#: headers whose value is a credential whatever it looks like (the bypass key's x-e2e-bypass-key, x-api-key, cookies)
_SENSITIVE_HEADER = re.compile(r"(?i)auth|cookie|key|token|secret|passw|credential|signature")


@dataclass
class Scope:
    run_dir: Path
    phase: str
    check: str
    origin: float
    auth_host: str | None = None  # the auth service's host:port when it is not the backend's (see record_http)
    sessions: int = 0
    said: set[str] = field(default_factory=set)

    def session_id(self, what: str) -> str:
        self.sessions += 1
        return f"{self.phase}/{self.check}/{what}{self.sessions}"

    def row(self, kind: str, session: str, **fields: Any) -> dict[str, Any]:
        return {"t": round(time.time() - self.origin, 6), "kind": kind, "phase": self.phase, "check": self.check,
                "session": session, **fields}

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        try:
            append_jsonl(self.run_dir / WIRE_FILE, rows)
        except OSError:  # the run folder went away: the check's own row still says what happened
            pass


_SCOPE: ContextVar[Scope | None] = ContextVar("netra_nb_wire_scope", default=None)
_ORIGINS: dict[Path, float] = {}


def _origin(run_dir: Path) -> float:
    """The run's start (``run.json``'s ``started_at``), else the first time this process recorded into it."""
    if run_dir not in _ORIGINS:
        origin = time.time()
        try:
            started = json.loads((run_dir / "run.json").read_text()).get("started_at")
            origin = datetime.fromisoformat(str(started).replace("Z", "+00:00")).timestamp()
        except (OSError, ValueError, TypeError, AttributeError):
            pass
        _ORIGINS[run_dir] = origin
    return _ORIGINS[run_dir]


def scope(run_dir: Path | None, phase: str, check: str, params: Any, write_params: bool = False) -> Any:
    """Start recording for one check (``leave`` with the returned token). Without a run folder, nothing is.
    ``write_params``: the first check of a context also records what a replay needs of the params."""
    if run_dir is None:
        return _SCOPE.set(None)
    s = Scope(run_dir, phase, check, _origin(run_dir))
    if params is not None and urlsplit(params.auth_url).netloc != urlsplit(params.base_url).netloc:
        s.auth_host = urlsplit(params.auth_url).netloc
    if write_params:
        s.write([s.row("params", f"{phase}/params", **_params_summary(params))])
    return _SCOPE.set(s)


def leave(token: Any) -> None:
    _SCOPE.reset(token)


def _params_summary(p: Any) -> dict[str, Any]:
    """What a replay needs of the params (no secret, no variable's value): URLs' paths, auth method and placement,
    timeouts, the agent request, the fleet's size, SLAs."""
    def path(url: str) -> str:
        return urlsplit(url).path
    return {"env": p.name, "base_path": path(p.base_url), "ws_path": path(p.ws_url), "auth_path": path(p.auth_url),
            "auth": {"method": p.auth.method, "placement": p.auth.placement, "email": p.auth.email},
            "timeouts": {"http": p.timeout_http, "ws_open": p.timeout_ws_open, "agent_run": p.timeout_agent_run,
                         "run": p.timeout_run},
            "agent": {"message_type": p.message_type, "request": p.agent_request, "agent_type": p.agent_type},
            "orchestration": {"users": p.users}, "sla": {"http": p.sla_http, "agent_run": p.sla_agent_run}}


def _headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for k, v in items:
        k = str(k).lower()
        if _SENSITIVE_HEADER.search(k) and k not in ("sec-websocket-key", "sec-websocket-accept"):
            scheme = str(v).split(" ", 1)[0]
            out[k] = f"{scheme} {REDACTED}" if scheme.lower() in ("bearer", "basic", "token", "digest") else REDACTED
        else:
            out[k] = clip(str(v), HEADER_KEEP)
    return out


def _target(url: str) -> tuple[str, str]:
    parts = urlsplit(redact(url))
    return parts.path or "/", parts.query


def _mint_hints(data: Any) -> dict[str, dict[str, Any]]:
    """For a token in a JSON answer, the claims a replay needs to hand out a stand-in (who, not the secret)."""
    out: dict[str, dict[str, Any]] = {}
    if isinstance(data, dict):
        for key in ("access_token", "refresh_token", "token"):
            value = data.get(key)
            if isinstance(value, str) and value:
                try:
                    claims = jwt.decode(value, options={"verify_signature": False})
                except jwt.PyJWTError:
                    continue
                out[key] = {k: claims[k] for k in ("sub", "email", "user_id", "permissions", "type") if k in claims}
                if isinstance(claims.get("exp"), (int, float)) and isinstance(claims.get("iat"), (int, float)):
                    out[key]["ttl"] = int(claims["exp"] - claims["iat"])
    return out


def record_http(obs: Any, *, headers: Mapping[str, str] | None, json_body: Any, content: bytes | None) -> None:
    """One HTTP exchange (an :class:`netra_nb.http.HttpObservation`), when a check is being recorded."""
    s = _SCOPE.get()
    if s is None:
        return
    path, query = _target(obs.url)
    # the auth service on a host of its own (a dev stack's :8081): its /health is not the backend's
    service = "auth" if s.auth_host and urlsplit(obs.url).netloc == s.auth_host else "backend"
    if json_body is not None:
        req_body = clip(json.dumps(json_body), BODY_KEEP)
    elif content:
        req_body = clip(content.decode("utf-8", "replace"), BODY_KEEP)
    else:
        req_body = ""
    body = obs.text if obs.status is not None else ""
    row = s.row("http", s.session_id("h"), service=service, method=obs.method, path=path, query=query,
                req_headers=_headers(headers or {}), req_body=req_body, status=obs.status,
                headers=_headers(obs.headers), body=clip(body, BODY_KEEP), body_size=len(obs.body),
                body_truncated=len(body) > BODY_KEEP, duration_s=round(obs.duration_s, 6), ttfb_s=obs.ttfb_s,
                connect_s=obs.connect_s, tls_s=obs.tls_s, timed_out=obs.timed_out,
                error=(f"{type(obs.exception).__name__}: {clip(str(obs.exception), 300)}"
                       if obs.exception is not None else None),
                mint=_mint_hints(obs.json))
    s.write([row])


# -- tokens, as both sides see them ------------------------------------------------------------

def token_of(headers: Mapping[str, str] | Iterable[tuple[str, str]], subprotocols: Sequence[str],
             query: str) -> str | None:
    """The token an upgrade carries: ``Authorization: Bearer``, a ``jwt.`` subprotocol, or ``?token=``."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    for k, v in items:
        if str(k).lower() == "authorization" and str(v).lower().startswith("bearer "):
            return str(v)[7:].strip()
    for sp in subprotocols or ():
        if sp.startswith("jwt."):
            return sp[4:]
    for k, v in parse_qsl(query or ""):
        if k == "token":
            return v
    return None


def token_key(token: str | None) -> str:
    """Whose token, without its secret: ``none``, ``jwt:<sub>`` (``:probe`` for the kit's short-lived wrong token,
    :func:`netra_nb.auth.wrong_token`) or ``opaque``. The replay matches sessions on it."""
    if not token:
        return "none"
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return "opaque"
    sub = claims.get("sub") or claims.get("user_id")
    exp, iat = claims.get("exp"), claims.get("iat")
    probe = isinstance(exp, (int, float)) and isinstance(iat, (int, float)) and exp - iat <= 120
    return f"jwt:{sub}" + (":probe" if probe else "")


# -- WebSocket sessions ------------------------------------------------------------------------

class WireSession:
    """The lines of one WebSocket session, written together when it is closed."""

    def __init__(self, s: Scope, session: Any) -> None:
        self.scope = s
        self.id = s.session_id("ws")
        self.rows: list[dict[str, Any]] = []
        parts = urlsplit(session.url)
        self.token_key = token_key(token_of(session.headers, session.subprotocols, parts.query))
        self.written = False

    def upgrade(self, session: Any) -> None:
        obs = session.obs
        path, query = _target(session.url)
        response = getattr(getattr(session, "_counter", None), "response", None)
        status = obs.upgrade_status if obs.upgrade_status is not None else (
            response.status_code if response is not None else None)
        headers = obs.upgrade_headers or (_headers(response.headers.raw_items()) if response is not None else {})
        upgrade_s = None
        if obs.open_s is not None:
            upgrade_s = obs.open_s - (obs.dns_s or 0) - (obs.connect_s or 0)
        elif status is not None:
            upgrade_s = obs.duration_s - (obs.dns_s or 0) - (obs.connect_s or 0)
        self.rows.append(self.scope.row(
            "ws_upgrade", self.id, path=path, query=query, caller=self.token_key,
            offered=[redact(p) for p in session.subprotocols], status=status,
            subprotocol=redact(headers.get("sec-websocket-protocol")) if status == 101 else None,
            headers=_headers(headers), body=clip(obs.upgrade_body, BODY_KEEP), stage=obs.stage,
            timed_out=obs.timed_out_stage is not None,
            error=(f"{type(obs.exception).__name__}: {clip(str(obs.exception), 300)}"
                   if obs.exception is not None else None),
            dns_s=obs.dns_s, connect_s=obs.connect_s, open_s=obs.open_s,
            upgrade_s=round(upgrade_s, 6) if upgrade_s is not None else None, duration_s=round(obs.duration_s, 6)))

    def frame(self, direction: str, at_s: float, payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            row = self.scope.row("ws_frame", self.id, dir=direction, at_s=round(at_s, 6), size=len(payload),
                                 binary=True, text=None)
        else:
            row = self.scope.row("ws_frame", self.id, dir=direction, at_s=round(at_s, 6),
                                 size=len(payload.encode()), binary=False, text=clip(payload, FRAME_KEEP),
                                 truncated=len(payload) > FRAME_KEEP)
        self.rows.append(row)

    def ping(self, at_s: float, rtt_s: float | None) -> None:
        """A protocol-level ping of the client and whether the pong came back."""
        self.rows.append(self.scope.row("ws_ping", self.id, at_s=round(at_s, 6), pong=rtt_s is not None,
                                        rtt_s=round(rtt_s, 6) if rtt_s is not None else None))

    def end(self, session: Any) -> None:
        """The close (who, code, reason, when) and the session's end; writes the session's lines."""
        if self.written:
            return
        obs = session.obs
        if obs.opened:
            code, reason, by, at = obs.close_code, obs.close_reason, obs.closed_by, obs.close_t
            conn = session.conn
            if code is None and conn is not None:
                sent, rcvd = conn.protocol.close_sent, conn.protocol.close_rcvd
                if sent is not None:  # our normal end of a check
                    code, reason, by = sent.code, sent.reason, "client"
                elif rcvd is not None:
                    code, reason, by = rcvd.code, rcvd.reason, "server"
                at = obs.duration_s or (time.perf_counter() - obs.started)
            self.rows.append(self.scope.row("ws_close", self.id, code=code, reason=redact(reason), by=by,
                                            at_s=round(at, 6) if at is not None else None,
                                            duration_s=round(obs.duration_s, 6)))
        self.written = True
        self.scope.write(self.rows)


def session_for(session: Any) -> WireSession | None:
    s = _SCOPE.get()
    return WireSession(s, session) if s is not None else None


# -- reading -----------------------------------------------------------------------------------

def read_wire(path: Path) -> list[dict[str, Any]]:
    """The lines of a wire file, in file order (a line cut by a kill is skipped)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return list(read_jsonl(path))


def replay_of(run_dir: Path) -> dict[str, Any] | None:
    """What a run talked to, when the server said it was a replay (its ``x-netra-nb-replay`` header): the original
    run's name, environment and start. None when no answer said so."""
    path = Path(run_dir) / WIRE_FILE
    if not path.is_file():
        return None
    for row in read_wire(path):
        value = (row.get("headers") or {}).get(REPLAY_HEADER)
        if value:
            try:
                info = json.loads(value)
            except ValueError:
                continue
            if isinstance(info, dict):
                return info
    return None
