"""The checks of the staging phases, and the context that runs them and records each result.

A check is an async function ``(ctx) -> Outcome``: it calls the platform through
:mod:`netra_nb.http` / :mod:`netra_nb.ws` and has :mod:`netra_nb.judge` decide. :meth:`Context.run`
wraps every check with its deadline — the sum of the budgets of the stages it can enter (token,
open, welcome, request, probes, close) — turns any crash into a result row, judges what was
observed when the deadline cuts a check short, and appends the record (and the check's frames)
to the run folder the moment the check ends.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import traceback
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import httpx

from . import auth, wire
from .frames import AGENT_EVENTS, FAILURE_EVENTS, Normalized
from .http import IN_FLIGHT, HttpObservation, http_call, new_client
from .judge import (Identity, Verdict, agent_run_view, close_category, judge_agent_run, judge_execute, judge_http,
                    judge_reply, judge_session_end, judge_welcome, judge_ws_failure, run_finished)
from .params import ConfigError, Params, env_names
from .records import Frame, Record, append_jsonl, utc_now
from .registry import GROUP_OF_KIND, GROUPS, PHASES, RUN_PHASES  # noqa: F401 - GROUPS re-exported
from .redact import clip, redact, redact_obj, register_secret, register_secret_vars
from .ws import WsObservation, WsSession

__all__ = ["Context", "Outcome", "Source", "CHECKS", "PHASE_CHECKS", "PHASE_TITLES", "GROUPS", "CheckSpec", "registry", "group_of",
           "short_id", "STAGES", "agent_request", "agent_run_session", "WS_PATHS"]

#: The platform's WebSocket paths (netra-contract.md): where a session may be served.
WS_PATHS = ("/ws", "/api/v1/websocket")
#: Seconds added to every check's deadline for its own bookkeeping (closing, recording).
DEADLINE_MARGIN = 2.0


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


#: The stages a check can enter, each with its budget from the params (seconds). A check's deadline is the sum
#: of its stages' budgets: it can never be cut off by a stage it was allowed to enter.
STAGES: dict[str, Callable[[Params], float]] = {
    "http": lambda p: p.timeout_http,
    "token": lambda p: p.timeout_http,
    "auth_health": lambda p: min(5.0, p.timeout_http),  # is the auth service up, when its token endpoint fails?
    "tokenless": lambda p: min(5.0, p.timeout_ws_open),  # the upgrade tried once without a token
    "open": lambda p: p.timeout_ws_open,
    "welcome": lambda p: p.timeout_ws_open,
    "linger": lambda p: 1.0,
    "reply": lambda p: p.timeout_ws_open,
    "agent": lambda p: p.timeout_agent_run,
    "probe": lambda p: min(5.0, p.timeout_ws_open),  # the protocol ping on a silent session
    "rejection_probes": lambda p: max(min(5.0, p.timeout_ws_open), min(5.0, p.timeout_http)),
    "close": lambda p: 4.0,
}
_WS_STAGES = ("token", "auth_health", "tokenless", "open", "welcome", "rejection_probes", "close")


@dataclass(frozen=True)
class Source:
    """Work that several checks judge, each its own way (the orchestration fleet: one run, three records).

    A context runs it once, when the first of its checks runs, and hands its result to every one of them;
    a check whose deadline passes does not cancel it for the others. ``budget`` is its deadline, and so
    that of each check judging it."""

    key: str
    run: Callable[["Context"], Awaitable[Any]]
    budget: Callable[[Params], float]


@dataclass(frozen=True)
class CheckSpec:
    name: str
    phase: str
    title: str
    why: str
    #: ``async (ctx) -> Outcome``; for a check of a ``source``, the pure judge ``(its result, params) -> Outcome``
    fn: Callable[..., Any]
    kind: str  # "http" | "ws" | "agent"
    stages: tuple[str, ...] = ("http",)
    #: a deadline computed from the params for checks whose work is not a sum of fixed stages (the fleet)
    budget: Callable[[Params], float] | None = None
    group: str = ""  # what the check exercises (a key of GROUPS): reports count and group by it
    source: Source | None = None  # the shared work this check judges (its result is the judge's argument)


CHECKS: dict[str, CheckSpec] = {}
PHASE_CHECKS: dict[str, list[str]] = {}
#: A run's phases named for people, in the order they run (from :mod:`netra_nb.registry`).
PHASE_TITLES: dict[str, str] = {k: PHASES[k].title for k in RUN_PHASES}


def check(name: str, phase: str, kind: str, title: str, why: str, *, stages: tuple[str, ...] = ("http",),
          budget: Callable[[Params], float] | None = None, group: str | None = None, source: Source | None = None):
    """Register a check. With ``source`` the function is a pure judge of the source's result,
    ``(result, params) -> Outcome``, and the check's deadline is the source's budget."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"check {name}: unknown stages {unknown}")
    group = group or GROUP_OF_KIND[kind]
    if group not in GROUPS:
        raise ValueError(f"check {name}: unknown group {group!r}")

    if source is not None and budget is None:
        budget = source.budget

    def register(fn: Callable[..., Any]):
        CHECKS[name] = CheckSpec(name, phase, title, why, fn, kind, stages, budget, group, source)
        PHASE_CHECKS.setdefault(phase, []).append(name)
        return fn
    return register


def registry() -> dict[str, CheckSpec]:
    """Every check of every phase; the orchestration phase's checks register when its module is imported."""
    from . import orchestration  # noqa: F401 - imported here, not at the top: it imports this module
    return CHECKS


def group_of(phase: str, check: str) -> str:
    """The group of a record's check ("" for a check no phase of the registry declares: a triage testcase)."""
    spec = registry().get(check)
    return spec.group if spec is not None and spec.phase == phase else ""


#: The observations made by the check running in this task, for judging what it saw when its deadline cuts it.
_LIVE: ContextVar[list[Any] | None] = ContextVar("netra_nb_live_observations", default=None)


def _live(obs: Any) -> Any:
    bucket = _LIVE.get()
    if bucket is not None:
        bucket.append(obs)
    return obs


_UNOFFERED = re.compile(r"not configured|not enabled|disabled|not available|not allowed|not supported|production",
                        re.I)


class Context:
    """What checks share within one phase: params, one HTTP client, our credentials, the run folder."""

    def __init__(self, params: Params, *, phase: str = "adhoc", run_dir: str | Path | None = None,
                 run_id: str | None = None, progress: Callable[[str], None] | None = None) -> None:
        self.params = params
        # Params built in code skip parse_params: register their variables' values here too, so an
        # echoing server cannot put one (used by this run or not) into a record.
        register_secret_vars(env_names(params))
        self.phase = phase
        self.run_dir = Path(run_dir) if run_dir else None
        self.run_id = run_id or short_id()
        self.progress = progress  # where long checks (the fleet) say how they are doing
        self.client: httpx.AsyncClient | None = None
        self.token: str | None = None
        self.identity = Identity()
        self._token_outcome: Outcome | None = None
        self._probe_cache: dict[str, tuple[str, str, str]] = {}
        self._probe_lock = asyncio.Lock()
        self._tokenless: WsObservation | None = None
        #: work shared by several checks of this context (the orchestration fleet), run once
        self.shared: dict[str, asyncio.Task[Any]] = {}
        self.records: list[Record] = []
        self.frames: list[Frame] = []
        self._wire_params = False  # the params' summary goes to wire.jsonl once per context

    @property
    def user_id(self) -> str | None:
        """Our user id (the token's subject, else the E2E endpoint's user.id)."""
        return min(self.identity.user_ids, default=None)

    # -- shared resources -----------------------------------------------------------------
    async def http(self) -> httpx.AsyncClient:
        if self.client is None:
            self.client = new_client(self.params.timeout_http)
        return self.client

    async def aclose(self) -> None:
        for task in self.shared.values():
            if not task.done():
                task.cancel()
        if self.shared:
            await asyncio.gather(*self.shared.values(), return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def provide(self, key: str, value: Any) -> None:
        """Hand the context the result of shared work done elsewhere (a fleet run on other machines, or built
        by hand): the checks that ask for ``key`` judge it instead of running it."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(value)
        self.shared[key] = future  # type: ignore[assignment]

    def once(self, key: str, make: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
        """The result of ``make()``, run once per context however many checks ask; a check whose deadline
        passes does not cancel it for the others."""
        task = self.shared.get(key)
        if task is None:
            task = self.shared[key] = asyncio.get_running_loop().create_task(make())
        return asyncio.shield(task)

    def source(self, source: Source) -> Awaitable[Any]:
        """The result of ``source``, run once per context (or the value :meth:`provide` gave for its key)."""
        return self.once(source.key, lambda: source.run(self))

    async def token_call(self, email: str | None = None, what: str = "E2E token endpoint") -> tuple[Verdict, HttpObservation, dict[str, Any]]:
        """One call to the auth service's E2E endpoint: (verdict, observation, its JSON when it passed).

        A refusal is told apart from an auth service that does not offer the method here: when the endpoint
        answers 404/501/503, or 403 saying so, while the service's own ``/health`` answers 2xx, it is
        ``auth_unavailable`` (the method is not offered), not an outage.
        """
        p = self.params
        url, headers, body = auth.e2e_request(p, email=email)
        obs = _live(await http_call(await self.http(), "POST", url, timeout=p.timeout_http, json_body=body,
                                    headers=headers))

        def validate(data: Any) -> str | None:
            if not isinstance(data, dict) or not isinstance(data.get("access_token"), str) or not data["access_token"]:
                return "no access_token in the answer"
            return None

        verdict = judge_http(obs, validate=validate, sla_s=p.sla_http, what=what)
        if obs.status in (403, 404, 501, 503):
            said = _UNOFFERED.search(obs.text or "")
            if obs.status != 403 or said:
                health = await http_call(await self.http(), "GET", f"{p.auth_url}/health",
                                         timeout=STAGES["auth_health"](p))
                up = health.status is not None and 200 <= health.status < 300
                if up or (said and obs.status != 503):
                    body_text = clip(obs.text.strip(), 200)
                    verdict = Verdict(
                        "fail", "auth_unavailable",
                        f"{what}: HTTP {obs.status} {body_text!r} while the auth service's /health answers "
                        f"{health.status if health.status is not None else 'nothing'}: this environment does not offer "
                        f"the E2E method", f"{verdict.detail}; auth /health: HTTP {health.status} {clip(health.text, 200)}")
        return verdict, obs, (obs.json if verdict.status in ("pass", "degraded") else {})

    async def ensure_token(self) -> Outcome | None:
        """Obtain the token once per context; returns the E2E endpoint's outcome (None when no call was made)."""
        if self.token is not None or self._token_outcome is not None:
            return self._token_outcome
        a = self.params.auth
        if a.method == "none":
            return None
        if a.method == "local_jwt":
            info = auth.local_token(self.params)
            self.token, self.identity = info.token, Identity.of(info.user_id)
            return None
        if a.method == "token":
            self.token = auth.secret_from_env(a.token_env, purpose="a ready-made token")
            self.identity = Identity.of(auth.token_subject(self.token))
            return None
        verdict, obs, data = await self.token_call()
        if data:
            self.token = data["access_token"]
            register_secret(self.token)
            register_secret(data.get("refresh_token"))
            user = data.get("user") if isinstance(data.get("user"), dict) else {}
            self.identity = Identity.of(auth.token_subject(self.token), user.get("id"))
        self._token_outcome = Outcome(verdict, http=obs)
        return self._token_outcome

    # -- running ---------------------------------------------------------------------------
    def deadline_for(self, spec: CheckSpec) -> float:
        """The sum of the budgets of the stages the check can enter, plus a margin for its bookkeeping."""
        if spec.budget is not None:
            return spec.budget(self.params) + DEADLINE_MARGIN
        return sum(STAGES[s](self.params) for s in spec.stages) + DEADLINE_MARGIN

    async def run(self, name: str) -> Record:
        """Run one check under its deadline; always returns (and records) a result row."""
        spec = registry()[name]  # the orchestration module's checks too, whoever imported what
        started_at = utc_now()
        t0 = time.perf_counter()
        deadline = self.deadline_for(spec)
        live: list[Any] = []
        scope, flight = _LIVE.set(live), IN_FLIGHT.set(live)
        recording = wire.scope(self.run_dir, self.phase, name, self.params, write_params=not self._wire_params)
        self._wire_params = True
        try:
            async with asyncio.timeout(deadline):
                if spec.source is not None:
                    outcome = spec.fn(await self.source(spec.source), self.params)
                else:
                    outcome = await spec.fn(self)
        except TimeoutError:
            outcome = await self._cut_short(spec, deadline, live)
        except ConfigError as exc:
            outcome = Outcome(Verdict("error", "config_error", str(exc), ""))
        except Exception as exc:  # noqa: BLE001 - the kit must yield a row whatever happens
            tb = clip("".join(traceback.format_exception(exc)), 2000, tail=True)
            outcome = Outcome(Verdict("error", "client_error", f"the check crashed: {type(exc).__name__}: {clip(str(exc), 200)}", tb))
        finally:
            wire.leave(recording)
            _LIVE.reset(scope)
            IN_FLIGHT.reset(flight)
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

    async def _cut_short(self, spec: CheckSpec, deadline: float, live: list[Any]) -> Outcome:
        """The check's deadline passed: judge what it had observed (the HTTP answer it saw, the session it had),
        and say that the deadline ended it."""
        cut = f"the check's deadline of {deadline:.0f}s (the sum of its stages' budgets) passed"
        sessions = [o for o in live if isinstance(o, WsSession)]
        for o in live:
            if isinstance(o, HttpObservation) and o.status is None and o.exception is None:
                # A request still waiting when the deadline came: no answer within the time it waited.
                o.timed_out, o.exception = True, TimeoutError(cut)
        answered = [o for o in live if isinstance(o, HttpObservation) and (o.status is not None or o.exception)]
        if sessions:
            s = sessions[-1]
            try:
                async with asyncio.timeout(2):
                    await s.close()
            except (TimeoutError, Exception):  # noqa: BLE001 - the session is evidence, closed or not
                pass
            obs = s.obs
            failed = judge_ws_failure(obs) if obs.exception is not None or obs.opened else None
            v = failed or judge_session_end(obs, f"{cut} at stage {obs.stage}")
            if v.category != "ws_no_reply":
                return Outcome(Verdict(v.status, v.category, f"{v.message} ({cut})", v.detail), ws=[obs])
            return Outcome(Verdict("error", "unknown", f"{cut} at stage {obs.stage} with nothing judged yet",
                                   f"a kit defect: each stage has its own timeout; {v.detail}"), ws=[obs])
        if answered:
            h = answered[-1]
            v = judge_http(h, sla_s=self.params.sla_http)
            status = v.status if v.status not in ("pass", "degraded") else "error"
            category = v.category if v.category != "ok" else "unknown"
            return Outcome(Verdict(status, category, f"{v.message}; then {cut}", v.detail), http=h)
        return Outcome(Verdict("error", "unknown", f"{cut} before anything was observed",
                               "a kit defect: each stage has its own timeout"))

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
            seen = [f.norm.event for f in w.after_request()] if w.request_t is not None else w.events()
            run_events = set(AGENT_EVENTS) | set(FAILURE_EVENTS)
            agent_seen = [e for e in dict.fromkeys(seen) if e in run_events]
            welcome = (w.welcome.data or {}) if w.welcome else {}
            first_event = next((f.t for f in w.after_request() if f.norm.event in AGENT_EVENTS), None)
            fields.update(
                http_status=w.upgrade_status if o.http is None else fields.get("http_status"),
                ws_close_code=w.close_code, ws_close_reason=redact(w.close_reason), ws_closed_by=w.closed_by,
                connect_s=w.connect_s, ws_open_s=w.open_s, target=w.url,
                first_event_s=(first_event - w.request_t) if first_event is not None else None,
                events_seen=agent_seen if spec.kind == "agent" else list(dict.fromkeys(w.events())),
                events_missing=[e for e in AGENT_EVENTS if e not in seen] if spec.kind == "agent" else [],
                connection_id=str(welcome.get("connection_id")) if isinstance(welcome, dict) and welcome.get("connection_id") else None,
            )
            run_ids = [f.norm.run_id for f in w.after_request() if f.norm.event in AGENT_EVENTS and f.norm.run_id]
            if run_ids:
                fields["server_run_id"] = run_ids[0]
        fields.update(redact_obj(o.extra))  # a phase's own fields (the fleet's close reason) are evidence too
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
                close = f.direction == "close"
                out.append(Frame(
                    run_id=self.run_id, phase=self.phase, check=spec.name, seq=seq, t_s=round(f.t, 6),
                    direction=f.direction, type=f.norm.raw_type, event=f.norm.event if not close else "close",
                    size=f.size, run=f.norm.run_id, user_id=f.norm.user_id, text=clip(f.text, 1000), session=session,
                    close_code=w.close_code if close else None,
                    close_reason=clip(redact(w.close_reason), 1000) if close and w.close_reason is not None else None,
                    closed_by=w.closed_by if close else None,
                    worker=w.worker,
                ))
        return out

    # -- helpers for checks ----------------------------------------------------------------
    async def get(self, path: str, **kw: Any) -> HttpObservation:
        return _live(await http_call(await self.http(), "GET", self.params.base_url + path,
                                     timeout=self.params.timeout_http, **kw))

    def session(self, token: str | None | object = ..., *, url: str | None = None, **kw: Any) -> WsSession:
        p = self.params
        kw.setdefault("open_timeout", p.timeout_ws_open)
        return _live(WsSession(url or p.ws_url, self.token if token is ... else token, p.auth.placement, **kw))

    @property
    def probe_timeout(self) -> float:
        return STAGES["probe"](self.params)

    async def token_or_outcome(self) -> Outcome | None:
        """Make sure a token exists; an Outcome to return when it could not be obtained.

        Without a token the WebSocket check cannot run as such. The upgrade is still tried once without
        one: a 5xx, a timeout or a refused connection there is the more fundamental failure and is reported
        (as that attempt, without a token); otherwise the record says the check was not attempted and why.
        """
        got = await self.ensure_token()
        if self.params.auth.method == "none" or self.token is not None:
            return None
        v = got.verdict if got else Verdict("error", "config_error", "no token", "")
        if self._tokenless is None:
            s = self.session(None, open_timeout=STAGES["tokenless"](self.params))
            await s.open()
            await s.close()
            self._tokenless = s.obs
        failure = judge_ws_failure(self._tokenless)
        if failure is not None and failure.category not in ("ws_upgrade_auth_rejected", "ws_route_missing"):
            return Outcome(Verdict("fail", failure.category,
                                   f"{failure.message} (the upgrade tried without a token; no token could be "
                                   f"obtained: {v.category})",
                                   f"{failure.detail}; token: {v.message}"), ws=[self._tokenless])
        return Outcome(Verdict(v.status if v.status not in ("pass", "degraded") else "error", v.category,
                               f"not attempted: no token, so no session as our user ({v.message})", v.detail),
                       http=got.http if got else None)

    async def explain_rejection(self, obs: WsObservation, verdict: Verdict, token: str | None | object = ...) -> Verdict:
        """Differential probes for a 401/403 on the upgrade: route missing, or credentials?

        With our token at the platform's other WebSocket paths, without a token and with a deliberately wrong one
        at ours, our token at a path that certainly has no route, and an HTTP GET on ours. A route reads the
        token when the server tells the tokens apart or names authentication in its refusal, or when our path
        answers differently from a path with no route; the route is missing when another path opens a session
        with the same token (the record names it), or when an HTTP GET on the path succeeds (an HTTP-only route).
        When the probes cannot tell, the record says so.

        ``token`` is the token the refused session carried (default: the context's own). A fleet's user passes its
        own: the fleet's context holds no token, and a probe without one proves nothing about "the same token"
        (the real beta-14 opens a tokenless session at /ws as an anonymous relaxed_ user).
        """
        if verdict.category != "ws_upgrade_auth_rejected":
            return verdict
        async with self._probe_lock:  # a fleet of sessions probes once
            if obs.url not in self._probe_cache:
                self._probe_cache[obs.url] = await self._probe_rejection(obs, self.token if token is ... else token)
        category, message, findings = self._probe_cache[obs.url]
        return Verdict("fail", category, message.format(status=obs.upgrade_status),
                       f"{verdict.detail}; probes: {findings}")

    async def _probe_rejection(self, obs: WsObservation, ours_token: str | None) -> tuple[str, str, str]:
        p = self.params
        limit = STAGES["rejection_probes"](p)
        parts = urlsplit(p.ws_url)
        ours = parts.path or "/"
        others = [path for path in WS_PATHS if path != ours.rstrip("/")]
        bogus = f"/netra-nb-no-such-route-{secrets.token_hex(4)}"

        def at(path: str) -> str:
            return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))

        async def attempt(token: str | None | object, path: str | None = None) -> WsObservation:
            s = WsSession(at(path) if path else p.ws_url, ours_token if token is ... else token, p.auth.placement,
                          open_timeout=limit)
            await s.open()
            await s.close()
            return s.obs

        wrong = auth.wrong_token(self.user_id or "e2e-probe", p.auth.email)
        http_url = urlunsplit(("https" if parts.scheme == "wss" else "http", parts.netloc, ours, "", ""))
        probes = await asyncio.gather(attempt(None), attempt(wrong), attempt(..., bogus),
                                      *(attempt(..., path) for path in others),
                                      http_call(await self.http(), "GET", http_url, timeout=limit))
        none_obs, wrong_obs, bogus_obs = probes[:3]
        other_obs = dict(zip(others, probes[3:-1]))
        g: HttpObservation = probes[-1]

        def answer(o: WsObservation) -> tuple[Any, str]:
            return (o.upgrade_status if o.upgrade_status is not None else
                    ("opened" if o.opened else type(o.exception).__name__), o.upgrade_body.strip())

        def said(label: str, o: WsObservation) -> str:
            if o.opened:
                return f"upgrade {label} → {o.upgrade_status}: a session opened"
            status, body = answer(o)
            return f"upgrade {label} → {status}" + (f" {clip(body, 80)!r}" if body else " (empty body)")

        ours_answers = [answer(obs), answer(none_obs), answer(wrong_obs)]
        findings = [said(f"at {ours} with our token", obs), said("with no token", none_obs),
                    said("with a wrong token", wrong_obs), said(f"at {bogus} (no route there) with our token", bogus_obs)]
        findings += [said(f"at {path} with our token", o) for path, o in other_obs.items()]
        findings.append(f"HTTP GET {ours} → {g.status if g.status is not None else type(g.exception).__name__}"
                        + (f" ({g.headers.get('content-type', '')}) {clip(g.text, 120)!r}" if g.status else ""))
        opened_at = [path for path, o in other_obs.items() if o.opened]
        says_auth = any(_AUTH_WORDS.search(body) for _, body in ours_answers)
        told_apart = len(set(ours_answers)) > 1
        like_no_route = answer(obs) == answer(bogus_obs)
        get_ok = g.status is not None and 200 <= g.status < 300
        if opened_at:
            return ("ws_route_missing",
                    f"WebSocket upgrade refused (HTTP {{status}}) at {ours}, while the same token opens a session at "
                    f"{opened_at[0]}: no WebSocket route serves {ours}; point ws_url at {opened_at[0]}",
                    "; ".join(findings))
        if says_auth or told_apart:
            why = "names authentication in its refusal" if says_auth else "answers different tokens differently"
            return ("ws_upgrade_auth_rejected",
                    f"WebSocket upgrade refused (HTTP {{status}}) for our token: the server {why}, so a route reads "
                    f"the token and rejects ours", "; ".join(findings))
        if get_ok:
            return ("ws_route_missing",
                    f"WebSocket upgrade refused (HTTP {{status}}) whatever the token, while an HTTP GET on {ours} "
                    f"succeeds: the path has only an HTTP route, no WebSocket route", "; ".join(findings))
        if not like_no_route:
            return ("ws_upgrade_auth_rejected",
                    f"WebSocket upgrade refused (HTTP {{status}}) whatever the token, and differently from a path "
                    f"with no route: a route is at {ours} and refuses our credentials", "; ".join(findings))
        tried = ", ".join([ours, *others])
        return ("ws_upgrade_auth_rejected",
                f"WebSocket upgrade refused (HTTP {{status}}) with the same bare answer for our token, no token and a "
                f"wrong one, as at a path with no route, and no other WebSocket path ({tried}) opened: the evidence "
                f"cannot tell a missing route from rejected credentials", "; ".join(findings))


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

    verdict = judge_http(obs, validate=validate, sla_s=ctx.params.sla_http)
    if verdict.category == "ok" and obs.json.get("available") is False:
        # The real backend (zen beta-12..17) answers 200 with its built-in defaults when it found no discovery
        # information, and says so: "available": false (its log: "No service discovery files found, returning
        # fallback configuration"). Those URLs are the code's defaults (localhost:3000...), not this platform's.
        verdict = Verdict("fail", "mock_fallback",
                          "GET /api/discovery/services answered its fallback defaults: 'available': false (the "
                          "platform found no discovery information; the services listed are built-in defaults)",
                          f"HTTP {obs.status} in {obs.duration_s:.3f}s; body: {clip(obs.text, 1200)}")
    return Outcome(verdict, http=obs)


@check("auth_token", "connectivity", "http", "A token from the auth service",
       "POST {auth}/auth/e2e/test-auth with the bypass key returns an access token (E2E method only).",
       stages=("token", "auth_health"), group="auth")
async def check_auth_token(ctx: Context) -> Outcome:
    if ctx.params.auth.method != "e2e_endpoint":
        return Outcome(Verdict("skip", "ok", f"auth.method is {ctx.params.auth.method}: no token endpoint to call",
                               "the token's acceptance is established by websocket_connect"))
    got = await ctx.ensure_token()
    assert got is not None
    return got


async def _open_welcomed(ctx: Context, token: str | None | object = ...) -> WsSession:
    s = ctx.session(token)
    await s.open()
    if s.obs.opened:
        await s.welcome(ctx.params.timeout_ws_open)
    return s


def _can_send(s: WsSession) -> bool:
    """The session is open and the server did not refuse it with an error frame. A server that never welcomed
    (or welcomed in a shape we do not know) still gets our request: what follows is evidence."""
    return s.obs.opened and s.obs.close_code is None and not any(f.norm.event == "error" for f in s.obs.received())


@check("websocket_connect", "connectivity", "ws", "WebSocket opens and welcomes",
       "The WebSocket accepts our token and sends its welcome (connection_established, any era), as our user.",
       stages=_WS_STAGES + ("linger",))
async def check_ws_connect(ctx: Context) -> Outcome:
    if (no := await ctx.token_or_outcome()) is not None:
        return no
    s = await _open_welcomed(ctx)
    if s.obs.welcome is not None:
        # Stay a moment: a server that closes right after the welcome fails here, not later.
        await s.receive(0.2)
    await s.close()
    verdict = judge_welcome(s.obs, ctx.identity, ctx.params.sla_http, waited_s=ctx.params.timeout_ws_open)
    ended = close_category(s.obs.close_code, s.obs.closed_by, s.obs.close_reason) is not None
    if verdict.status in ("pass", "degraded") and (ended or any(f.norm.event == "error" for f in s.obs.received())):
        verdict = judge_session_end(s.obs, "welcome received, then the session failed")
    return Outcome(await ctx.explain_rejection(s.obs, verdict), ws=[s.obs])


#: The contract's replies, in their documented shapes (netra-contract.md, "WebSocket session" step 4).
_PARSE_ERROR = re.compile(r"json|pars", re.I)
_EMPTY_ERROR = re.compile(r"enter a message|empty|blank|required|missing|no (?:message|content|request)", re.I)


def _error_says(pattern: re.Pattern[str]) -> Callable[[Normalized], bool]:
    def accept(n: Normalized) -> bool:
        return n.event == "error" and bool(pattern.search(f"{n.error_code or ''} {n.message or ''}"))
    return accept


async def _request_reply(ctx: Context, message: Any, expected: Callable[[Normalized], bool], expectation: str) -> Outcome:
    if (no := await ctx.token_or_outcome()) is not None:
        return no
    s = await _open_welcomed(ctx)
    sent = False
    if _can_send(s):
        sent = await s.send(message, request=True)
        if sent:
            got = await s.receive_until(lambda f: expected(f.norm), time.perf_counter() + ctx.params.timeout_ws_open)
            if got is None:
                await s.ping_probe(ctx.probe_timeout)
    await s.close()
    verdict = judge_reply(s.obs, expected=expected, expectation=expectation, request_sent=sent,
                          identity=ctx.identity, sla_s=ctx.params.sla_http)
    return Outcome(await ctx.explain_rejection(s.obs, verdict), ws=[s.obs])


_REPLY_STAGES = _WS_STAGES + ("reply", "probe")


@check("websocket_ping", "connectivity", "ws", "WebSocket ping/pong",
       "A JSON ping gets a pong: the session's message loop is alive.", stages=_REPLY_STAGES)
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
       "POST /api/agents/execute runs an agent request over HTTP, as our user, and answers status, agent and the "
       "agent's response (not a canned or fallback stand-in).", stages=("token", "auth_health", "http"))
async def check_agent_execute(ctx: Context) -> Outcome:
    p = ctx.params
    got = await ctx.ensure_token()
    if p.auth.method != "none" and ctx.token is None:
        v = got.verdict if got else Verdict("error", "config_error", "no token", "")
        return Outcome(Verdict(v.status if v.status not in ("pass", "degraded") else "error", v.category,
                               f"not attempted: no token, so no request as our user ({v.message})", v.detail),
                       http=got.http if got else None)
    headers = {"Authorization": f"Bearer {ctx.token}"} if ctx.token else None
    obs = _live(await http_call(await ctx.http(), "POST", p.base_url + "/api/agents/execute",
                                timeout=p.timeout_http, headers=headers,
                                json_body={"type": p.agent_type, "message": p.agent_request}))
    return Outcome(judge_execute(obs, p.agent_request, sla_s=p.sla_http), http=obs)


def agent_request(params: Params, run_id: str, thread_id: str) -> dict[str, Any]:
    """The request that starts an agent run, in the shape the params ask for."""
    if params.message_type == "user_message":
        return {"type": "user_message",
                "payload": {"content": params.agent_request, "thread_id": thread_id, "run_id": run_id}}
    return {"type": "start_agent", "thread_id": thread_id,
            "payload": {"user_request": params.agent_request, "agent_type": params.agent_type,
                        "thread_id": thread_id, "run_id": run_id}}


_TERMINAL = frozenset({"agent_completed", *FAILURE_EVENTS})
_AGENT_STAGES = _WS_STAGES + ("agent", "probe", "linger")


async def agent_run_session(ctx: Context, token: str | None, identity: Identity, *, linger_s: float = 1.0,
                            own_events_only: bool = False) -> tuple[WsObservation, Verdict, str]:
    """Open a session, start one agent run and read until *our* run ends; judge it (the one judgement of an agent
    run, for ``agent_run`` and every session of a fleet). Returns the observation, the verdict and the run id
    we sent."""
    p = ctx.params
    s = ctx.session(token)
    await s.open()
    sent = False
    run_id = f"run_{uuid.uuid4().hex[:12]}"
    if s.obs.opened:
        await s.welcome(p.timeout_ws_open)
    if _can_send(s):
        sent = await s.send(agent_request(p, run_id, f"thread_{uuid.uuid4().hex[:12]}"), request=True)
    if sent:
        end = time.perf_counter() + p.timeout_agent_run
        done = await s.receive_until(
            lambda f: f.norm.event in _TERMINAL and run_finished(s.obs, run_id, identity), end)
        if done is None and s.obs.close_code is None:
            # Silence: is the server alive (it answers a protocol ping) or stuck?
            await s.ping_probe(STAGES["probe"](p))
        if done is not None and done.norm.event == "agent_completed":
            if not set(AGENT_EVENTS) <= set(s.obs.events()):
                # Stragglers after agent_completed mean the order was broken, not that events were lost.
                linger_end = time.perf_counter() + linger_s
                await s.receive_until(lambda f: set(AGENT_EVENTS) <= set(s.obs.events()), linger_end)
    await s.close()
    verdict = judge_agent_run(s.obs, request_sent=sent, identity=identity, sent_run_id=run_id,
                              request=p.agent_request, sla_s=p.sla_agent_run, own_events_only=own_events_only)
    return s.obs, await ctx.explain_rejection(s.obs, verdict, token), run_id


def run_fields(obs: WsObservation, sent_run_id: str, identity: Identity) -> dict[str, Any]:
    """Record fields of an agent run, from our run's events only (not another run's, not those before our request)."""
    view = agent_run_view(obs, sent_run_id, identity)
    seen = [f.norm.event for f in view.ours]
    first = next((f.t for f in view.ours if f.norm.event in AGENT_EVENTS), None)
    return {"events_seen": list(dict.fromkeys(seen)), "events_missing": [e for e in AGENT_EVENTS if e not in seen],
            "first_event_s": first - obs.request_t if first is not None and obs.request_t is not None else None,
            "server_run_id": view.run_id}


@check("agent_run", "agent_pipeline", "agent", "The real agent pipeline run",
       "Over the WebSocket, our request starts a run that yields agent_started, agent_thinking, tool_executing, "
       "tool_completed and agent_completed with a result that is not a canned stand-in: the golden path.",
       stages=_AGENT_STAGES)
async def check_agent_run(ctx: Context) -> Outcome:
    if (no := await ctx.token_or_outcome()) is not None:
        return no
    obs, verdict, run_id = await agent_run_session(ctx, ctx.token, ctx.identity)
    return Outcome(verdict, ws=[obs], extra=run_fields(obs, run_id, ctx.identity))


@check("ws_invalid_json", "agent_pipeline", "ws", "Error handling: invalid JSON",
       "A frame that is not JSON gets an error frame about the JSON (JSON_PARSE_ERROR), not silence, not a crash, "
       "not an unrelated error.", stages=_REPLY_STAGES)
async def check_ws_invalid_json(ctx: Context) -> Outcome:
    return await _request_reply(ctx, "{this is not json", _error_says(_PARSE_ERROR),
                                "error frame for invalid JSON")


@check("ws_empty_request", "agent_pipeline", "ws", "Error handling: empty request",
       "An agent request with an empty message gets the error frame 'Please enter a message' (an error about the "
       "empty request, not an unrelated one).", stages=_REPLY_STAGES)
async def check_ws_empty_request(ctx: Context) -> Outcome:
    p = ctx.params
    empty = agent_request(p.with_overrides(agent_request=" "), f"run_{uuid.uuid4().hex[:12]}", "thread_empty")
    key = "content" if p.message_type == "user_message" else "user_request"
    empty["payload"][key] = ""
    return await _request_reply(ctx, empty, _error_says(_EMPTY_ERROR), "error frame for an empty request")
