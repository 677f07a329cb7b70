"""Synthetic run folders for the report tests, built from Record/Frame dicts the way the runner writes them.

* ``healthy``: every check passes; agent_run receives the five events and a result.
* ``e1``: failure example E1 — HTTP, auth, discovery and configuration pass; every WebSocket check is
  closed by the server with 1011 right after the welcome; no agent event.
* ``partial``: a run killed half-way — no ``finished_at``, one notebook failed, one phase without a
  record, a torn last line in ``results.jsonl``.

``healthy`` (older) and ``e1`` share ``outputs/staging/`` so the report can compare them.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from netra_nb.records import Frame, Record, append_jsonl

AGENT_EVENTS = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
SECRET_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJlMmUtc3RhZ2luZyJ9.c2lnbmF0dXJlLXZhbHVl"


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RunBuilder:
    """Accumulates records and frames of one run folder, with consistent run id, env and clock."""

    def __init__(self, root: Path, env: str, started: datetime, run_id: str) -> None:
        self.env, self.run_id, self.started = env, run_id, started
        self.dir = root / env / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{run_id}"
        self.dir.mkdir(parents=True)
        self.records: list[dict[str, Any]] = []
        self.frames: list[dict[str, Any]] = []

    def record(self, phase: str, check: str, status: str, category: str, at: float, duration: float,
               message: str, **kw: Any) -> dict[str, Any]:
        kw.setdefault("bytes_sent", 180)
        kw.setdefault("bytes_received", 420 if status in ("pass", "degraded") else 0)
        r = Record(run_id=self.run_id, env=self.env, phase=phase, check=check, status=status, category=category,
                   started_at=iso(self.started + timedelta(seconds=at)), duration_s=duration, message=message, **kw)
        self.records.append(r.to_dict())
        return r.to_dict()

    def session(self, phase: str, check: str, frames: list[tuple[float, str, str, str, str]], session: int = 0,
                user_id: str | None = None) -> None:
        """frames: (t_s, direction, type, event, text)."""
        for seq, (t, direction, type_, event, text) in enumerate(frames):
            self.frames.append(Frame(run_id=self.run_id, phase=phase, check=check, seq=seq, t_s=t,
                                     direction=direction, type=type_, event=event, size=len(text), text=text,
                                     session=session, user_id=user_id).to_dict())

    def write(self, *, finished: bool = True, phases: list[str] | None = None,
              notebooks: dict[str, Any] | None = None, torn_tail: str | None = None) -> Path:
        append_jsonl(self.dir / "results.jsonl", self.records)
        if self.frames:
            append_jsonl(self.dir / "events.jsonl", self.frames)
        if torn_tail is not None:
            with (self.dir / "results.jsonl").open("a") as fh:
                fh.write(torn_tail)
        phases = phases or ["connectivity", "agent_pipeline", "orchestration"]
        end = max((datetime.fromisoformat(r["started_at"].replace("Z", "+00:00")) + timedelta(seconds=r["duration_s"])
                   for r in self.records), default=self.started)
        meta = {"run_id": self.run_id, "env": self.env, "started_at": iso(self.started),
                "params_source": f"params/{self.env}.yaml", "phases": phases,
                "notebooks": notebooks or {p: {"path": f"{i:02d}_{p}.ipynb", "status": "ok", "error": None}
                                           for i, p in enumerate(phases)},
                "fault": None, "era": None}
        if finished:
            meta["finished_at"] = iso(end + timedelta(seconds=0.4))
        (self.dir / "run.json").write_text(json.dumps(meta, indent=2))
        return self.dir


def _http_checks(b: RunBuilder, *, slow_health: bool = False) -> None:
    b.record("connectivity", "health", "pass", "ok", 0.05, 0.48 if slow_health else 0.061,
             "/health: HTTP 200 in 0.061s", http_status=200, connect_s=0.004, tls_s=0.012, ttfb_s=0.05,
             sla_s=2.0, timeout_s=10.0, target="https://api.staging.netrasystems.ai/health",
             detail='body: {"status":"healthy","service":"netra-ai-platform"}')
    b.record("connectivity", "api_health", "pass", "ok", 0.12, 0.072, "/api/health: HTTP 200 in 0.072s",
             http_status=200, connect_s=0.004, ttfb_s=0.06, sla_s=2.0, timeout_s=10.0)
    b.record("connectivity", "service_discovery", "pass", "ok", 0.2, 0.081, "/api/discovery/services: HTTP 200",
             http_status=200, connect_s=0.005, ttfb_s=0.07, sla_s=2.0, timeout_s=10.0)
    b.record("connectivity", "auth_token", "pass", "ok", 0.3, 0.21, "token from /auth/e2e/test-auth (HTTP 200)",
             http_status=200, connect_s=0.006, ttfb_s=0.2, sla_s=2.0, timeout_s=10.0,
             detail=f"Authorization: Bearer {SECRET_JWT}")
    b.record("agent_pipeline", "agent_discovery", "pass", "ok", 0.06, 1.067, "/api/mcp/servers: 1 server (netra-mcp)",
             http_status=200, connect_s=0.004, ttfb_s=1.05, sla_s=2.0, timeout_s=10.0)
    b.record("agent_pipeline", "agent_configuration", "pass", "ok", 1.2, 0.919, "/api/mcp/config: 5 keys",
             http_status=200, connect_s=0.004, ttfb_s=0.9, sla_s=2.0, timeout_s=10.0)


def build_healthy(root: Path, started: datetime) -> Path:
    b = RunBuilder(root, "staging", started, "aaaa1111")
    _http_checks(b)
    b.record("connectivity", "websocket_connect", "pass", "ok", 0.6, 0.35,
             "WebSocket open in 0.052s, welcome after 0.101s (connection main_1a2b)", connect_s=0.004, ws_open_s=0.052,
             first_event_s=0.101, connection_id="main_1a2b", sla_s=2.0, timeout_s=10.0, events_seen=["welcome"])
    b.session("connectivity", "websocket_connect", [
        (0.101, "received", "connection_established", "welcome", '{"type":"connection_established"}'),
        (0.35, "close", "close", "close", "1000 netra-nb check done")])
    b.record("connectivity", "websocket_ping", "pass", "ok", 1.0, 0.2, "ping answered by pong in 0.004s",
             ws_open_s=0.05, sla_s=2.0, timeout_s=10.0)
    b.session("connectivity", "websocket_ping", [
        (0.1, "received", "connection_established", "welcome", "{}"), (0.11, "sent", "ping", "ping", '{"type":"ping"}'),
        (0.114, "received", "pong", "pong", '{"type":"pong"}'), (0.2, "close", "close", "close", "1000 netra-nb check done")])
    b.record("agent_pipeline", "agent_run", "pass", "ok", 2.2, 3.41,
             "agent run completed: 5 events and a result in 3.41s", ws_open_s=0.05, first_event_s=0.31,
             events_seen=list(AGENT_EVENTS), connection_id="main_9f8e", server_run_id="run_42", sla_s=15.0,
             timeout_s=30.0, bytes_sent=310, bytes_received=2890)
    b.session("agent_pipeline", "agent_run", [
        (0.1, "received", "connection_established", "welcome", "{}"),
        (0.12, "sent", "start_agent", "other", '{"type":"start_agent"}'),
        (0.31, "received", "agent_started", "agent_started", "{}"),
        (0.9, "received", "agent_thinking", "agent_thinking", "{}"),
        (1.6, "received", "tool_executing", "tool_executing", "{}"),
        (2.4, "received", "tool_completed", "tool_completed", "{}"),
        (3.3, "received", "agent_completed", "agent_completed", '{"data":{"result":{"summary":"ok"}}}'),
        (3.41, "close", "close", "close", "1000 netra-nb check done")])
    b.record("agent_pipeline", "ws_invalid_json", "pass", "ok", 5.8, 0.15, "invalid JSON answered by JSON_PARSE_ERROR",
             ws_open_s=0.05)
    b.record("orchestration", "concurrent_agent_runs", "pass", "ok", 0.1, 4.2, "5 of 5 users completed their runs",
             events_seen=list(AGENT_EVENTS), sla_s=15.0, timeout_s=30.0, bytes_received=14000)
    b.record("orchestration", "user_isolation", "pass", "ok", 4.4, 0.9, "no session saw another user's events")
    return b.write()


def build_e1(root: Path, started: datetime) -> Path:
    b = RunBuilder(root, "staging", started, "bbbb2222")
    _http_checks(b, slow_health=True)
    detail_open = "close 1011 Internal error by server, before the first client message; frames: 0.101s ← connection_established; 0.118s × 1011 Internal error"
    b.record("connectivity", "websocket_connect", "fail", "ws_internal_error", 0.6, 0.52,
             "welcome received, then the connection ended: received 1011 (internal error) Internal error",
             detail=detail_open, ws_close_code=1011, ws_close_reason="Internal error", ws_closed_by="server",
             connect_s=0.004, ws_open_s=0.052, first_event_s=0.101, connection_id="main_77aa", sla_s=2.0,
             timeout_s=10.0, bytes_received=310)
    b.session("connectivity", "websocket_connect", [
        (0.101, "received", "connection_established", "welcome", '{"type":"connection_established"}'),
        (0.118, "close", "close", "close", "1011 Internal error")])
    b.record("connectivity", "websocket_ping", "fail", "ws_internal_error", 1.2, 0.31,
             "received 1011 (internal error) Internal error", ws_close_code=1011, ws_close_reason="Internal error",
             ws_closed_by="server", ws_open_s=0.05, detail="close 1011 Internal error by server, before the first client message")
    b.session("connectivity", "websocket_ping", [
        (0.1, "received", "connection_established", "welcome", "{}"), (0.104, "close", "close", "close", "1011 Internal error")])
    b.record("agent_pipeline", "agent_run", "fail", "ws_internal_error", 2.2, 9.07,
             "ConnectionClosedError: received 1011 (internal error) Internal error; no agent event",
             detail="close 1011 Internal error by server, 0.021s after the first client message; frames: 0.100s ← connection_established; 0.120s → start_agent; 0.141s × 1011 Internal error",
             ws_close_code=1011, ws_close_reason="Internal error", ws_closed_by="server", ws_open_s=0.05,
             events_missing=list(AGENT_EVENTS), sla_s=15.0, timeout_s=30.0, bytes_received=305)
    b.session("agent_pipeline", "agent_run", [
        (0.1, "received", "connection_established", "welcome", "{}"),
        (0.12, "sent", "start_agent", "other", '{"type":"start_agent"}'),
        (0.141, "close", "close", "close", "1011 Internal error")])
    b.record("agent_pipeline", "ws_invalid_json", "fail", "ws_internal_error", 11.5, 0.2,
             "received 1011 (internal error) Internal error", ws_close_code=1011, ws_closed_by="server", ws_open_s=0.05)
    b.record("agent_pipeline", "ws_empty_request", "skip", "ok", 11.8, 0.0, "skipped: the session closes before a request")
    b.record("orchestration", "concurrent_agent_runs", "fail", "ws_internal_error", 0.1, 6.0,
             "40 of 40 sessions closed with 1011 before any agent event", ws_close_code=1011, ws_closed_by="server",
             events_missing=list(AGENT_EVENTS), sla_s=15.0, timeout_s=30.0, bytes_received=9000)
    for s in range(40):
        b.session("orchestration", "concurrent_agent_runs", [
            (0.1 + s * 0.01, "received", "connection_established", "welcome", "{}"),
            (0.12 + s * 0.01, "sent", "start_agent", "other", "{}"),
            (0.15 + s * 0.02, "close", "close", "close", "1011 Internal error")], session=s, user_id=f"e2e-u{s}")
    b.record("orchestration", "user_isolation", "pass", "ok", 6.3, 0.9, "no session saw another user's events")
    return b.write()


def build_partial(root: Path, started: datetime) -> Path:
    b = RunBuilder(root, "local", started, "cccc3333")
    b.record("connectivity", "health", "pass", "ok", 0.05, 0.03, "/health: HTTP 200", http_status=200)
    b.record("connectivity", "api_health", "pass", "ok", 0.1, 0.02, "/api/health: HTTP 200", http_status=200,
             bytes_received=0)
    b.record("agent_pipeline", "agent_discovery", "pass", "ok", 0.1, 0.2, "/api/mcp/servers: 1 server",
             findings=["mock_fallback"], detail="Using MockWebSocketManager due to connection failure")
    notebooks = {"connectivity": {"path": "00_connectivity.ipynb", "status": "ok", "error": None},
                 "agent_pipeline": {"path": "01_agent_pipeline.ipynb", "status": "failed",
                                    "error": {"cell": 7, "ename": "KeyError", "evalue": "'agent'"}},
                 "orchestration": {"path": "02_orchestration.ipynb", "status": "not_run", "error": None}}
    return b.write(finished=False, notebooks=notebooks,
                   phases=["connectivity", "agent_pipeline", "orchestration"],
                   torn_tail='{"run_id": "cccc3333", "env": "local", "phase": "connectivity", "check": "websoc')


T0 = datetime(2025, 9, 9, 18, 32, 0, tzinfo=timezone.utc)


