"""The checks of the staging phases, and the context that runs them and records each result.

A check is an async function ``(ctx) -> Outcome``: it calls the platform through
:mod:`netra_nb.http` / :mod:`netra_nb.ws` and has :mod:`netra_nb.judge` decide. :meth:`Context.run`
wraps every check with its deadline, turns any crash into a result row, and appends the record
(and the check's frames) to the run folder the moment the check ends.
"""

from __future__ import annotations

import asyncio
import re
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import httpx

from . import auth
from .frames import AGENT_EVENTS
from .http import HttpObservation, http_call, new_client
from .judge import Verdict, judge_agent_run, judge_http, judge_reply, judge_session_end, judge_welcome, judge_ws_failure
from .params import ConfigError, Params
from .records import Frame, Record, append_jsonl, utc_now
from .redact import redact, register_secret
from .ws import WsObservation, WsSession

__all__ = ["Context", "Outcome", "CHECKS", "PHASE_CHECKS", "PHASE_TITLES", "GROUPS", "CheckSpec", "registry", "short_id"]


def short_id() -> str:
    return uuid.uuid4().hex[:8]


@dataclass
class Outcome:
    verdict: Verdict
    http: HttpObservation | None = None
    ws: list[WsObservation] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # record fields to set directly
    #: False when another check already recorded these sessions' frames (orchestration's checks
    #: judge one fleet of sessions three ways; its frames go to events.jsonl once)
    frames: bool = True


@dataclass(frozen=True)
class CheckSpec:
    name: str
    phase: str
    title: str
    why: str
    fn: Callable[["Context"], Awaitable[Outcome]]
    kind: str  # "http" | "ws" | "agent": sets the check's deadline
    group: str = ""  # what the check exercises (a key of GROUPS): reports count and group by it


CHECKS: dict[str, CheckSpec] = {}
PHASE_CHECKS: dict[str, list[str]] = {}
#: A phase's name for people, in the order the phases run.
PHASE_TITLES: dict[str, str] = {"connectivity": "Connectivity", "agent_pipeline": "Agent pipeline",
                                "orchestration": "Orchestration"}
#: What a check exercises, named for people; a check's group defaults from its kind.
GROUPS: dict[str, str] = {"auth": "Authentication", "http": "HTTP API", "websocket": "WebSocket",
                          "agent_run": "Agent run", "fleet": "Orchestration fleet"}
_GROUP_OF_KIND = {"http": "http", "ws": "websocket", "agent": "agent_run"}


def check(name: str, phase: str, kind: str, title: str, why: str, *, group: str | None = None):
    group = group or _GROUP_OF_KIND[kind]
    assert group in GROUPS, group

    def register(fn: Callable[["Context"], Awaitable[Outcome]]):
        CHECKS[name] = CheckSpec(name, phase, title, why, fn, kind, group)
        PHASE_CHECKS.setdefault(phase, []).append(name)
        return fn
    return register


def registry() -> dict[str, CheckSpec]:
    """Every check of every phase; the orchestration phase's checks register when its module is imported."""
    from . import orchestration  # noqa: F401 - imported here, not at the top: it imports this module
    return CHECKS


class Context:
    """What checks share within one phase: params, one HTTP client, the token, the run folder."""

    def __init__(self, params: Params, *, phase: str = "adhoc", run_dir: str | Path | None = None,
                 run_id: str | None = None) -> None:
        self.params = params
        self.phase = phase
        self.run_dir = Path(run_dir) if run_dir else None
        self.run_id = run_id or short_id()
        self.client: httpx.AsyncClient | None = None
        self.token: str | None = None
        self.user_id: str | None = None
        self._token_outcome: Outcome | None = None
        self._probe_cache: dict[str, str] = {}
        self._probe_lock = asyncio.Lock()
        self._tokenless: WsObservation | None = None
        self.records: list[Record] = []
        self.frames: list[Frame] = []

    # -- shared resources -----------------------------------------------------------------
    async def http(self) -> httpx.AsyncClient:
        if self.client is None:
            self.client = new_client(self.params.timeout_http)
        return self.client

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def ensure_token(self) -> Outcome | None:
        """Obtain the token once per context; returns the E2E endpoint's outcome (None when no call was made)."""
        if self.token is not None or self._token_outcome is not None:
            return self._token_outcome
        a = self.params.auth
        if a.method == "none":
            return None
        if a.method == "local_jwt":
            info = auth.local_token(self.params)
            self.token, self.user_id = info.token, info.user_id
            return None
        if a.method == "token":
            self.token = auth.secret_from_env(a.token_env, purpose="a ready-made token")
            self.user_id = auth.token_subject(self.token)
            return None
        url, headers, body = auth.e2e_request(self.params)
        obs = await http_call(await self.http(), "POST", url, timeout=self.params.timeout_http,
                              json_body=body, headers=headers)

        def validate(data: Any) -> str | None:
            if not isinstance(data, dict) or not isinstance(data.get("access_token"), str) or not data["access_token"]:
                return "no access_token in the answer"
            return None

        verdict = judge_http(obs, validate=validate, sla_s=self.params.sla_http, what="E2E token endpoint")
        if verdict.status in ("pass", "degraded"):
            self.token = obs.json["access_token"]
            register_secret(self.token)
            register_secret(obs.json.get("refresh_token"))
            user = obs.json.get("user") if isinstance(obs.json.get("user"), dict) else {}
            self.user_id = str(user.get("id") or auth.token_subject(self.token) or "") or None
        self._token_outcome = Outcome(verdict, http=obs)
        return self._token_outcome

    # -- running ---------------------------------------------------------------------------
    def deadline_for(self, spec: CheckSpec) -> float:
        p = self.params
        if spec.kind == "http":
            return p.timeout_http + 2
        if spec.kind == "ws":
            return p.timeout_http + p.timeout_ws_open + 10 + 5
        return p.timeout_http + p.timeout_ws_open * 2 + p.timeout_agent_run + 15

    async def run(self, name: str) -> Record:
        """Run one check under its deadline; always returns (and records) a result row."""
        spec = CHECKS[name]
        started_at = utc_now()
        t0 = time.perf_counter()
        deadline = self.deadline_for(spec)
        try:
            async with asyncio.timeout(deadline):
                outcome = await spec.fn(self)
        except TimeoutError:
            outcome = Outcome(Verdict("error", "unknown", f"the check did not finish within its deadline of {deadline:.0f}s",
                                      "the check's own timeouts should have ended it first; this is a kit defect"))
        except ConfigError as exc:
            outcome = Outcome(Verdict("error", "config_error", str(exc), ""))
        except Exception as exc:  # noqa: BLE001 - the kit must yield a row whatever happens
            tb = redact("".join(traceback.format_exception(exc))[-2000:])
            outcome = Outcome(Verdict("error", "client_error", f"the check crashed: {type(exc).__name__}: {redact(str(exc))[:200]}", tb))
        duration = time.perf_counter() - t0
        record = self._record(spec, outcome, started_at, duration)
        frames = self._frames(spec, outcome) if outcome.frames else []
        self.records.append(record)
        self.frames.extend(frames)
        if self.run_dir is not None:
            if frames:
                append_jsonl(self.run_dir / "events.jsonl", (f.to_dict() for f in frames))
            append_jsonl(self.run_dir / "results.jsonl", [record.to_dict()])
        return record

    def _record(self, spec: CheckSpec, o: Outcome, started_at: str, duration: float) -> Record:
        v = o.verdict
        fields: dict[str, Any] = {}
        bytes_sent = bytes_received = 0
        if o.http is not None:
            h = o.http
            fields.update(http_status=h.status, connect_s=h.connect_s, tls_s=h.tls_s, ttfb_s=h.ttfb_s,
                          target=redact(f"{h.method} {h.url}"))
            bytes_sent += h.bytes_sent
            bytes_received += h.bytes_received
        for w in o.ws:
            bytes_sent += w.bytes_sent
            bytes_received += w.bytes_received
        if o.ws:
            w = o.ws[-1]
            seen = w.events()
            agent_seen = [e for e in dict.fromkeys(seen) if e in AGENT_EVENTS or e in ("agent_error", "agent_failed")]
            welcome = (w.welcome.data or {}) if w.welcome else {}
            first_event = next((f.t for f in w.frames if f.direction == "received" and f.norm.event in AGENT_EVENTS), None)
            fields.update(
                http_status=w.upgrade_status if o.http is None else fields.get("http_status"),
                ws_close_code=w.close_code, ws_close_reason=redact(w.close_reason), ws_closed_by=w.closed_by,
                connect_s=w.connect_s, ws_open_s=w.open_s, target=w.url,
                first_event_s=(first_event - (w.request_t if w.request_t is not None else (w.first_client_message_t or 0.0)))
                if first_event is not None else None,
                events_seen=agent_seen if spec.kind == "agent" else list(dict.fromkeys(seen)),
                events_missing=[e for e in AGENT_EVENTS if e not in seen] if spec.kind == "agent" else [],
                connection_id=str(welcome.get("connection_id")) if isinstance(welcome, dict) and welcome.get("connection_id") else None,
            )
            run_ids = [f.norm.run_id for f in w.frames if f.direction == "received" and f.norm.event in AGENT_EVENTS and f.norm.run_id]
            if run_ids:
                fields["server_run_id"] = run_ids[0]
        fields.update(o.extra)
        status = v.status
        category = v.category
        message = v.message
        if status in ("pass", "degraded") and bytes_received == 0:
            # Honesty rule: nothing on the wire, no pass.
            status, category = "error", "no_network_io"
            message = f"{message} — but no byte was received, so this cannot count as a pass"
        return Record(
            run_id=self.run_id, env=self.params.name, phase=self.phase, check=spec.name,
            status=status, category=category, started_at=started_at, duration_s=round(duration, 6),
            message=redact(message), detail=redact(v.detail), bytes_sent=bytes_sent, bytes_received=bytes_received,
            timeout_s=self.deadline_for(spec),
            sla_s=self.params.sla_agent_run if spec.kind == "agent" else self.params.sla_http,
            **fields,
        )

    def _frames(self, spec: CheckSpec, o: Outcome) -> list[Frame]:
        out = []
        for session, w in enumerate(o.ws):
            for seq, f in enumerate(w.frames):
                out.append(Frame(
                    run_id=self.run_id, phase=self.phase, check=spec.name, seq=seq, t_s=round(f.t, 6),
                    direction=f.direction, type=f.norm.raw_type, event=f.norm.event if f.direction != "close" else "close",
                    size=f.size, run=f.norm.run_id, user_id=f.norm.user_id, text=f.text[:1000], session=session,
                ))
        return out

    # -- helpers for checks ----------------------------------------------------------------
    async def get(self, path: str, **kw: Any) -> HttpObservation:
        return await http_call(await self.http(), "GET", self.params.base_url + path,
                               timeout=self.params.timeout_http, **kw)

    def session(self, token: str | None | object = ..., *, url: str | None = None, **kw: Any) -> WsSession:
        p = self.params
        kw.setdefault("open_timeout", p.timeout_ws_open)
        return WsSession(url or p.ws_url, self.token if token is ... else token, p.auth.placement, **kw)

    @property
    def probe_timeout(self) -> float:
        return min(5.0, self.params.timeout_ws_open)

    async def token_or_outcome(self) -> Outcome | None:
        """Make sure a token exists; an Outcome to return when it could not be obtained.

        Without a token the WebSocket check cannot run as such, but the upgrade is still tried
        once without one: a 5xx, a timeout or a refused connection there is the more fundamental
        failure and is reported instead of the token's.
        """
        got = await self.ensure_token()
        if self.params.auth.method == "none" or self.token is not None:
            return None
        v = got.verdict if got else Verdict("error", "config_error", "no token", "")
        if self._tokenless is None:
            s = self.session(None, open_timeout=self.probe_timeout)
            await s.open()
            await s.close()
            self._tokenless = s.obs
        failure = judge_ws_failure(self._tokenless)
        if failure is not None and failure.category not in ("ws_upgrade_auth_rejected", "ws_route_missing"):
            return Outcome(Verdict("fail", failure.category,
                                   f"{failure.message} (tried without a token: the token endpoint failed too)",
                                   f"{failure.detail}; token: {v.message}"), ws=[self._tokenless])
        return Outcome(Verdict(v.status if v.status not in ("pass", "degraded") else "error", v.category,
                               f"no token, so no WebSocket check: {v.message}", v.detail),
                       http=got.http if got else None)

    async def explain_rejection(self, obs: WsObservation, verdict: Verdict) -> Verdict:
        """Differential probes for a 401/403 on the upgrade: route missing, or credentials?

        Retry without a token and with a deliberately wrong one, and GET the same path over HTTP.
        The evidence points at credentials when the server tells the tokens apart (different
        answers) or says so in its refusal (an authentication message). It points at a missing
        WebSocket route when every attempt gets the same bare refusal while an HTTP GET on the
        path succeeds: a path that exists only as an HTTP route (netra-contract.md, failure table).
        """
        if verdict.category != "ws_upgrade_auth_rejected":
            return verdict
        async with self._probe_lock:  # a fleet of sessions probes once
            return await self._explain_rejection(obs, verdict)

    async def _explain_rejection(self, obs: WsObservation, verdict: Verdict) -> Verdict:
        url = obs.url
        if url not in self._probe_cache:
            attempts = [("our token", obs)]
            for label, token in (("no token", None),
                                 ("a wrong token", auth.wrong_token(self.user_id or "e2e-probe", self.params.auth.email))):
                s = self.session(token, open_timeout=min(5.0, self.params.timeout_ws_open))
                await s.open()
                await s.close()
                attempts.append((label, s.obs))
            parts = urlsplit(self.params.ws_url)
            http_url = urlunsplit(("https" if parts.scheme == "wss" else "http", parts.netloc, parts.path or "/", "", ""))
            g = await http_call(await self.http(), "GET", http_url, timeout=min(5.0, self.params.timeout_http))
            answers = [(o.upgrade_status if o.upgrade_status is not None else
                        ("opened" if o.opened else type(o.exception).__name__), o.upgrade_body.strip()) for _, o in attempts]
            findings = [f"upgrade with {label} → {status}" + (f" {body[:80]!r}" if body else " (empty body)")
                        for (label, _), (status, body) in zip(attempts, answers)]
            findings.append(f"HTTP GET {parts.path or '/'} → {g.status if g.status is not None else type(g.exception).__name__}"
                            + (f" ({g.headers.get('content-type', '')}) {redact(g.text[:120])}" if g.status else ""))
            says_auth = any(_AUTH_WORDS.search(body) for _, body in answers)
            tokens_told_apart = len(set(answers)) > 1
            get_ok = g.status is not None and 200 <= g.status < 300
            if says_auth or tokens_told_apart:
                category = "ws_upgrade_auth_rejected"
                findings.append("the server " + ("names authentication in its refusal" if says_auth
                                                 else "answers different tokens differently") + ": a WebSocket route reads the token")
            elif get_ok:
                category = "ws_route_missing"
                findings.append("the same bare refusal whatever the token, while GET succeeds: the path has only an HTTP route")
            else:
                category = "ws_upgrade_auth_rejected"
            self._probe_cache[url] = category + "|" + "; ".join(findings)
        category, findings_text = self._probe_cache[url].split("|", 1)
        if category == "ws_route_missing":
            message = (f"WebSocket upgrade refused (HTTP {obs.upgrade_status}) whatever the token, while an HTTP GET on "
                       f"the path succeeds: no WebSocket route serves it")
        else:
            message = f"WebSocket upgrade refused (HTTP {obs.upgrade_status}) for our token: the credentials are rejected"
        return Verdict("fail", category, message, f"{verdict.detail}; probes: {findings_text}")


_AUTH_WORDS = re.compile(r"(?i)auth|token|jwt|credential|unauthori[sz]ed|forbidden.*(user|key)|signature|expired|secret")


# -- connectivity ----------------------------------------------------------------------------

def _require_keys(*keys: str) -> Callable[[Any], str | None]:
    def validate(data: Any) -> str | None:
        if not isinstance(data, dict):
            return f"expected a JSON object, got {type(data).__name__}"
        missing = [k for k in keys if k not in data]
        return f"missing keys {missing}" if missing else None
    return validate


@check("health", "connectivity", "http", "Backend health",
       "GET /health answers 200 with status 'healthy': the backend started and serves.")
async def check_health(ctx: Context) -> Outcome:
    obs = await ctx.get("/health")
    return Outcome(judge_http(obs, health=True, validate=_require_keys("status"), sla_s=ctx.params.sla_http), http=obs)


@check("api_health", "connectivity", "http", "API health with dependencies",
       "GET /api/health answers 200 'healthy'; 'degraded' means Redis or the database is down.")
async def check_api_health(ctx: Context) -> Outcome:
    obs = await ctx.get("/api/health")
    return Outcome(judge_http(obs, health=True, sla_s=ctx.params.sla_http), http=obs)


@check("service_discovery", "connectivity", "http", "Service discovery",
       "GET /api/discovery/services lists backend, frontend and auth with their URLs.")
async def check_discovery(ctx: Context) -> Outcome:
    obs = await ctx.get("/api/discovery/services")

    def validate(data: Any) -> str | None:
        if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
            return "no 'services' object"
        missing = [s for s in ("backend", "auth") if s not in data["services"]]
        return f"services missing {missing}" if missing else None

    return Outcome(judge_http(obs, validate=validate, sla_s=ctx.params.sla_http), http=obs)


@check("auth_token", "connectivity", "http", "A token from the auth service",
       "POST {auth}/auth/e2e/test-auth with the bypass key returns an access token (E2E method only).", group="auth")
async def check_auth_token(ctx: Context) -> Outcome:
    if ctx.params.auth.method != "e2e_endpoint":
        return Outcome(Verdict("skip", "ok", f"auth.method is {ctx.params.auth.method}: no token endpoint to call",
                               "the token's acceptance is established by websocket_connect"))
    got = await ctx.ensure_token()
    assert got is not None
    return got


async def _open_welcomed(ctx: Context, **kw: Any) -> tuple[WsSession, Verdict | None]:
    s = ctx.session(**kw)
    await s.open()
    if s.obs.opened:
        await s.welcome(ctx.params.timeout_ws_open)
    return s, None


@check("websocket_connect", "connectivity", "ws", "WebSocket opens and welcomes",
       "The WebSocket accepts our token and sends its welcome (connection_established, any era).")
async def check_ws_connect(ctx: Context) -> Outcome:
    if (no := await ctx.token_or_outcome()) is not None:
        return no
    s, _ = await _open_welcomed(ctx)
    if s.obs.welcome is not None:
        # Stay a moment: a server that closes right after the welcome fails here, not later.
        await s.receive(0.2)
    await s.close()
    verdict = judge_welcome(s.obs, ctx.params.sla_http)
    if verdict.status in ("pass", "degraded") and s.obs.close_code is not None:
        verdict = judge_session_end(s.obs, "welcome received, then the connection ended")
    return Outcome(await ctx.explain_rejection(s.obs, verdict), ws=[s.obs])


async def _request_reply(ctx: Context, message: Any, expected: Callable[[Any], bool], expectation: str) -> Outcome:
    if (no := await ctx.token_or_outcome()) is not None:
        return no
    s, _ = await _open_welcomed(ctx)
    sent = False
    if s.obs.welcome is not None and s.obs.close_code is None:
        sent = await s.send(message, request=True)
        if sent:
            got = await s.receive_until(lambda f: expected(f.norm), time.perf_counter() + ctx.params.timeout_ws_open)
            if got is None:
                await s.ping_probe(ctx.probe_timeout)
    await s.close()
    verdict = judge_reply(s.obs, expected=expected, expectation=expectation, request_sent=sent, sla_s=ctx.params.sla_http)
    return Outcome(await ctx.explain_rejection(s.obs, verdict), ws=[s.obs])


@check("websocket_ping", "connectivity", "ws", "WebSocket ping/pong",
       "A JSON ping gets a pong: the session's message loop is alive.")
async def check_ws_ping(ctx: Context) -> Outcome:
    return await _request_reply(ctx, {"type": "ping"}, lambda n: n.event == "pong", "pong for our ping")


# -- agent pipeline --------------------------------------------------------------------------

@check("agent_discovery", "agent_pipeline", "http", "Agent discovery",
       "GET /api/mcp/servers lists at least one MCP server with its name and status.")
async def check_agent_discovery(ctx: Context) -> Outcome:
    obs = await ctx.get("/api/mcp/servers")

    def validate(data: Any) -> str | None:
        servers = data.get("data") if isinstance(data, dict) else data
        if not isinstance(servers, list) or not servers:
            return "no servers listed"
        if not all(isinstance(s, dict) and s.get("name") for s in servers):
            return "a server without a name"
        return None

    verdict = judge_http(obs, validate=validate, sla_s=ctx.params.sla_http)
    if verdict.category == "ok":
        servers = obs.json.get("data") if isinstance(obs.json, dict) else obs.json
        names = ", ".join(f"{s.get('name')} ({s.get('status', '?')})" for s in servers[:5])
        verdict = Verdict(verdict.status, "ok", f"{len(servers)} agent server(s): {names}", verdict.detail)
    return Outcome(verdict, http=obs)


@check("agent_configuration", "agent_pipeline", "http", "Agent configuration",
       "GET /api/mcp/config returns the client configurations (claude, cursor, mcp, http, websocket).")
async def check_agent_configuration(ctx: Context) -> Outcome:
    obs = await ctx.get("/api/mcp/config")
    return Outcome(judge_http(obs, validate=_require_keys("claude", "cursor", "mcp", "http", "websocket"),
                              sla_s=ctx.params.sla_http), http=obs)


@check("agent_status", "agent_pipeline", "http", "Agent listing and status",
       "GET /api/agents/status returns the list of agents with their status.")
async def check_agent_status(ctx: Context) -> Outcome:
    obs = await ctx.get("/api/agents/status")

    def validate(data: Any) -> str | None:
        items = data.get("agents", data.get("data")) if isinstance(data, dict) else data
        if not isinstance(items, list):
            return f"expected a list of agent status objects, got {type(data).__name__}"
        if not all(isinstance(i, dict) for i in items):
            return "an agent status that is not an object"
        return None

    verdict = judge_http(obs, validate=validate, sla_s=ctx.params.sla_http)
    if verdict.category == "ok":
        items = obs.json.get("agents", obs.json.get("data")) if isinstance(obs.json, dict) else obs.json
        verdict = Verdict(verdict.status, "ok", f"{len(items)} agent(s) listed; {verdict.message}", verdict.detail)
    return Outcome(verdict, http=obs)


@check("agent_execute", "agent_pipeline", "http", "Agent lifecycle/status request",
       "POST /api/agents/execute runs an agent request over HTTP and answers status, agent, response.")
async def check_agent_execute(ctx: Context) -> Outcome:
    await ctx.ensure_token()
    headers = {"Authorization": f"Bearer {ctx.token}"} if ctx.token else None
    obs = await http_call(await ctx.http(), "POST", ctx.params.base_url + "/api/agents/execute",
                          timeout=ctx.params.timeout_http, headers=headers,
                          json_body={"type": ctx.params.agent_type, "message": ctx.params.agent_request})

    def validate(data: Any) -> str | None:
        problem = _require_keys("status", "agent", "response")(data)
        if problem:
            return problem
        if str(data.get("status")).lower() in ("error", "failed"):
            return f"status {data.get('status')!r}"
        return None

    return Outcome(judge_http(obs, validate=validate, sla_s=ctx.params.sla_http), http=obs)


def agent_request(params: Params, run_id: str, thread_id: str) -> dict[str, Any]:
    """The request that starts an agent run, in the shape the params ask for."""
    if params.message_type == "user_message":
        return {"type": "user_message",
                "payload": {"content": params.agent_request, "thread_id": thread_id, "run_id": run_id}}
    return {"type": "start_agent", "thread_id": thread_id,
            "payload": {"user_request": params.agent_request, "agent_type": params.agent_type,
                        "thread_id": thread_id, "run_id": run_id}}


async def agent_run_session(ctx: Context, token: str | None, user_id: str | None, *,
                            linger_s: float = 1.0) -> tuple[WsObservation, Verdict]:
    """Open a session, start one agent run and read until it ends; judge it."""
    p = ctx.params
    s = ctx.session(token)
    await s.open()
    sent = False
    deadline_reached = False
    run_id = f"run_{uuid.uuid4().hex[:12]}"
    if s.obs.opened:
        await s.welcome(p.timeout_ws_open)
    if s.obs.welcome is not None and s.obs.close_code is None:
        sent = await s.send(agent_request(p, run_id, f"thread_{uuid.uuid4().hex[:12]}"), request=True)
    if sent:
        end = time.perf_counter() + p.timeout_agent_run
        done = await s.receive_until(
            lambda f: f.norm.event in ("agent_completed", "agent_error", "agent_failed"), end)
        deadline_reached = done is None and s.obs.close_code is None
        if deadline_reached:
            # Silence: is the server alive (it answers a protocol ping) or stuck?
            await s.ping_probe(ctx.probe_timeout)
        if done is not None and done.norm.event == "agent_completed":
            seen = set(s.obs.events())
            if not set(AGENT_EVENTS) <= seen:
                # Stragglers after agent_completed mean the order was broken, not that events were lost.
                linger_end = time.perf_counter() + linger_s
                await s.receive_until(lambda f: set(AGENT_EVENTS) <= set(s.obs.events()), linger_end)
    await s.close()
    welcome_user = None
    if s.obs.welcome is not None and isinstance(s.obs.welcome.data, dict):
        welcome_user = s.obs.welcome.data.get("user_id")
    ours_user = str(welcome_user) if welcome_user else user_id
    # Servers may assign their own run id: then ours is the one on the first agent_started.
    ours_run = run_id
    echoed = any(f.norm.run_id == run_id for f in s.obs.received())
    if not echoed:
        first = next((f for f in s.obs.received() if f.norm.event == "agent_started" and f.norm.run_id), None)
        ours_run = first.norm.run_id if first else None
    verdict = judge_agent_run(s.obs, request_sent=sent, deadline_reached=deadline_reached, user_id=ours_user,
                              run_id=ours_run, sla_s=p.sla_agent_run, timeout_s=p.timeout_agent_run)
    return s.obs, await ctx.explain_rejection(s.obs, verdict)


@check("agent_run", "agent_pipeline", "agent", "The real agent pipeline run",
       "Over the WebSocket, a start request yields agent_started, agent_thinking, tool_executing, "
       "tool_completed and agent_completed with a non-empty result: the golden path.")
async def check_agent_run(ctx: Context) -> Outcome:
    if (no := await ctx.token_or_outcome()) is not None:
        return no
    obs, verdict = await agent_run_session(ctx, ctx.token, ctx.user_id)
    return Outcome(verdict, ws=[obs])


@check("ws_invalid_json", "agent_pipeline", "ws", "Error handling: invalid JSON",
       "A frame that is not JSON gets an error_message frame (JSON_PARSE_ERROR), not silence or a crash.")
async def check_ws_invalid_json(ctx: Context) -> Outcome:
    return await _request_reply(ctx, "{this is not json", lambda n: n.event == "error",
                                "error frame for invalid JSON")


@check("ws_empty_request", "agent_pipeline", "ws", "Error handling: empty request",
       "An agent request with an empty message gets the error frame 'Please enter a message'.")
async def check_ws_empty_request(ctx: Context) -> Outcome:
    p = ctx.params
    empty = agent_request(p.with_overrides(agent_request=" "), f"run_{uuid.uuid4().hex[:12]}", "thread_empty")
    key = "content" if p.message_type == "user_message" else "user_request"
    empty["payload"][key] = ""
    return await _request_reply(ctx, empty, lambda n: n.event == "error", "error frame for an empty request")
