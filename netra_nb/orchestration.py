"""Phase 02, orchestration: many users at once, each with its own token and its own agent run.

One *fleet* is driven per phase: ``users`` sessions started together, one per user, each on its
own WebSocket with its own token, each running one agent run (:func:`netra_nb.checks.agent_run_session`).
The fleet is judged three ways, one record each:

========================  ===================================================================
``concurrent_agent_runs``  every run completed with the five events and a result; otherwise it
                           fails with the dominant category among the sessions (counts per
                           category in ``detail``)
``user_isolation``         no session received an agent event whose ``user_id`` or ``run_id`` is
                           not its own, and no two users' tokens were welcomed as one identity
                           (``cross_user_leak`` otherwise)
``latency_percentiles``    p50/p95/p99 of WebSocket open, first agent event and completion, as
                           measured on the wire; ``degraded`` when the p95 passes the SLA
========================  ===================================================================

Every number comes from the sessions' own observations (frame arrival times, bytes on the
wire); nothing is computed from a configured delay. Tokens, by ``auth.method``:

* ``e2e_endpoint``: one call to the auth service's E2E endpoint per user, with a distinct email
  (``e2e-nb-user-<i>@<domain of auth.email>``);
* ``local_jwt``: one token signed per user (subject ``e2e-nb-user-<i>``);
* ``token``: the one ready-made token is all there is, so every session is the same user and
  isolation can only be judged between runs (the records say so);
* ``none``: no token.

The fleet's per-session table is :func:`sessions_frame`; its charts :func:`latency_chart` and
:func:`completions_chart`. :class:`OrchestrationPhase` is the notebook's handle (a
:class:`~netra_nb.notebook.Phase` that keeps the fleet for the table and the charts).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence


from . import auth
from .checks import STAGES, Context, Outcome, Source, agent_run_session, check
from .frames import AGENT_EVENTS, FAILURE_EVENTS
from .http import HttpObservation
from .judge import Identity, Verdict, agent_run_view, judge_identity
from .notebook import Phase
from .params import ConfigError, Params
from .records import PASSING, utc_now
from .redact import JWT_PATTERN, clip, register_secret
from .ws import WsFrame, WsObservation

__all__ = [
    "PHASE", "FLEET", "SLA_PERCENTILE", "UserToken", "SessionRun", "Fleet", "LoopLag", "user_tokens", "run_fleet",
    "fleet_for", "fleet_budget", "percentile", "percentiles", "peak_concurrency", "sessions_frame", "latency_chart",
    "completions_chart", "OrchestrationPhase", "SESSION_COLUMNS",
]

PHASE = "orchestration"
#: The latency percentile held against the SLA (sla.http for the open, sla.agent_run for completion).
SLA_PERCENTILE = 95
#: Token calls to the E2E endpoint in flight at once (staging's auth service is one small service).
TOKEN_CONCURRENCY = 32
_RUN_EVENTS = AGENT_EVENTS + FAILURE_EVENTS
# A JWT: the redactor's generic pattern removes it from any text without an exact registration.
_JWT = JWT_PATTERN


# -- tokens -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UserToken:
    """One user's credentials, or why they could not be had (``verdict``)."""

    index: int
    user_id: str | None
    token: str | None
    email: str | None = None
    verdict: Verdict | None = None  # set when no token was obtained
    http: HttpObservation | None = None  # the E2E call, for e2e_endpoint
    identity: Identity = Identity()  # every id the credentials name (the token's sub, the E2E user.id)


def _user_email(params: Params, i: int) -> str:
    domain = params.auth.email.split("@", 1)[1] if "@" in params.auth.email else "test.netrasystems.ai"
    return f"e2e-nb-user-{i}@{domain}"


def _register_token(token: str | None) -> None:
    # A JWT is removed by the redactor's generic pattern (tests/orchestration checks it); exact
    # registration of hundreds of per-user JWTs would only make every redact() call slower.
    if token and not _JWT.fullmatch(token):
        register_secret(token)


async def user_tokens(ctx: Context, users: int, *, indices: Iterable[int] | None = None,
                      concurrency: int = TOKEN_CONCURRENCY) -> list[UserToken]:
    """One token per user (see the module's docstring for each ``auth.method``): users 0..users-1, or the
    users ``indices`` (a shard of a fleet on a cluster, with its part of the ``concurrency``)."""
    p = ctx.params
    method = p.auth.method
    idx = list(indices) if indices is not None else list(range(users))
    if method == "none":
        return [UserToken(i, None, None) for i in idx]
    if method == "token":
        token = auth.secret_from_env(p.auth.token_env, purpose="a ready-made token")
        user_id = auth.token_subject(token)
        return [UserToken(i, user_id, token, identity=Identity.of(user_id)) for i in idx]
    if method == "local_jwt":
        secret = auth.signing_secret(p)
        return [UserToken(i, f"e2e-nb-user-{i}",
                          auth.sign_token(secret, f"e2e-nb-user-{i}", _user_email(p, i), register=False),
                          _user_email(p, i), identity=Identity.of(f"e2e-nb-user-{i}"))
                for i in idx]
    # e2e_endpoint: one call per user, a bounded number in flight.
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(i: int) -> UserToken:
        email = _user_email(p, i)
        async with gate:
            verdict, obs, data = await ctx.token_call(email, what=f"E2E token for user {i}")
        if not data:
            return UserToken(i, None, None, email, verdict, obs)
        token = data["access_token"]
        _register_token(token)
        _register_token(data.get("refresh_token"))
        user = data.get("user") if isinstance(data.get("user"), dict) else {}
        sub = auth.token_subject(token)
        return UserToken(i, sub or (str(user["id"]) if user.get("id") else None), token, email, None, obs,
                         Identity.of(sub, user.get("id")))

    return list(await asyncio.gather(*(one(i) for i in idx)))


# -- one session's evidence (pure) --------------------------------------------------------------

@dataclass
class SessionRun:
    """One user's session in the fleet: its observation and what it showed."""

    user: int
    user_id: str | None  # the identity the token claims
    start_s: float  # when the session began opening, seconds since the fleet started
    obs: WsObservation | None  # None: no token, so no session
    verdict: Verdict  # the agent run judged on this session's own events (foreign ones set aside)
    own_user: str | None = None
    own_run: str | None = None
    foreign: list[WsFrame] = field(default_factory=list)
    open_s: float | None = None  # start of the connection attempt → the upgrade's 101
    first_event_s: float | None = None  # the request sent → the first agent event received
    completion_s: float | None = None  # the request sent → agent_completed received
    events: int = 0  # this session's own agent events received
    seen: list[str] = field(default_factory=list)  # their names, in arrival order
    server_exec_s: float | None = None  # agent_completed.data.execution_time_ms, as the server reports it
    end_s: float | None = None  # when the session ended, seconds since the fleet started
    completed_at_s: float | None = None  # when agent_completed arrived, seconds since the fleet started
    not_ours: Verdict | None = None  # the platform named another user for this session (its token was not read)
    worker: str | None = None  # the Dask worker that ran it (a fleet on a cluster); None: this process

    @property
    def category(self) -> str:
        return "cross_user_leak" if self.foreign else self.verdict.category

    @property
    def completed(self) -> bool:
        return self.verdict.status in PASSING

    def row(self) -> dict[str, Any]:
        return {
            "user": self.user, "user_id": self.user_id, "open_s": self.open_s, "first_event_s": self.first_event_s,
            "completion_s": self.completion_s, "events": self.events, "category": self.category,
            "foreign_events": len(self.foreign), "start_s": self.start_s, "end_s": self.end_s,
            "completed_at_s": self.completed_at_s, "server_exec_s": self.server_exec_s,
            "bytes_received": self.obs.bytes_received if self.obs else 0, "worker": self.worker,
        }


def session_run(user: UserToken, obs: WsObservation | None, raw: Verdict | None, fleet_t0: float,
                sent_run_id: str | None = None) -> SessionRun:
    """Read one finished session (pure): its run, the foreign events, timings and the verdict on its own events
    (judged by :func:`netra_nb.judge.judge_agent_run`, the one judgement of an agent run)."""
    if obs is None:
        return SessionRun(user.index, user.user_id, 0.0, None,
                          user.verdict or Verdict("error", "client_error", "no session was run", ""))
    start_s = obs.started - fleet_t0
    view = agent_run_view(obs, sent_run_id, user.identity)
    claims = [uid for _, uid in obs.identity_claims()]
    own_user = claims[0] if claims else user.user_id
    foreign = view.foreign
    verdict = raw if raw is not None else Verdict("error", "client_error", "the session was not judged", "")
    t_req = obs.request_t
    mine = view.ours
    own_run = view.run_id
    first = mine[0] if mine else None
    done = next((f for f in mine if f.norm.event == "agent_completed"), None)
    server_exec = None
    if done is not None and isinstance(done.norm.data, dict):
        ms = done.norm.data.get("execution_time_ms")
        if isinstance(ms, (int, float)) and not isinstance(ms, bool) and math.isfinite(ms):
            server_exec = ms / 1000.0
    not_ours = judge_identity(obs, user.identity)
    if not_ours is None and view.other_user and len(view.other_user) == len(view.ours):
        not_ours = Verdict("fail", "ws_auth_ignored", f"the run ran as user {view.other_user[0].norm.user_id!r}")
    return SessionRun(
        user.index, user.user_id, start_s, obs, verdict, own_user, own_run, foreign, not_ours=not_ours,
        open_s=obs.open_s,
        first_event_s=(first.t - t_req) if first is not None and t_req is not None else None,
        completion_s=(done.t - t_req) if done is not None and t_req is not None else None,
        events=len(mine),
        seen=[f.norm.event for f in mine],
        server_exec_s=server_exec,
        end_s=start_s + obs.duration_s,
        completed_at_s=(start_s + done.t) if done is not None else None,
    )


# -- statistics (pure) --------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def percentiles(values: Iterable[float | None], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float | None]:
    xs = [v for v in values if v is not None]
    return {f"p{q:g}": percentile(xs, q) for q in qs}


def peak_concurrency(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals (start, end) open at one instant."""
    points = []
    for start, end in intervals:
        points.append((start, 1))
        points.append((end, -1))
    peak = cur = 0
    for _, step in sorted(points, key=lambda p: (p[0], p[1])):  # an end before a start at the same instant
        cur += step
        peak = max(peak, cur)
    return peak


@dataclass(frozen=True)
class LoopLag:
    """How late the client's event loop woke up for a periodic timer: when it is high, the client
    (not the platform) adds that much to every time it measures."""

    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    def text(self) -> str:
        return f"client loop lag p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms"


# -- the fleet ----------------------------------------------------------------------------------

@dataclass
class Fleet:
    """Every session of one orchestration run, and how the run went as a whole."""

    users: int
    auth_method: str
    shared_token: bool  # auth.method token/none: the users cannot be told apart by identity
    started_at: str
    sessions: list[SessionRun]
    tokens_s: float  # obtaining the tokens (before any session opened)
    wall_s: float  # first session opening → last session ended
    loop_lag: LoopLag
    cpu_s: float  # this process's CPU time during the sessions
    token_failures: list[UserToken] = field(default_factory=list)
    #: the fleet ran on a Dask cluster (orchestration.cluster): per shard its worker, users, CPU, start lateness
    shards: list[dict[str, Any]] | None = None

    @property
    def observations(self) -> list[WsObservation]:
        return [s.obs for s in self.sessions if s.obs is not None]

    @property
    def completed(self) -> list[SessionRun]:
        return [s for s in self.sessions if s.completed]

    def categories(self) -> Counter:
        return Counter(s.verdict.category for s in self.sessions)

    def peak_concurrency(self) -> int:
        return peak_concurrency((s.start_s, s.end_s) for s in self.sessions if s.obs is not None and s.end_s is not None)

    def latency(self) -> dict[str, dict[str, float | None]]:
        return {"open": percentiles(s.open_s for s in self.sessions),
                "first_event": percentiles(s.first_event_s for s in self.sessions),
                "completion": percentiles(s.completion_s for s in self.sessions)}

    def summary(self) -> dict[str, Any]:
        """The fleet in numbers (for the bench and for a person)."""
        done = self.completed
        return {
            "users": self.users, "completed": len(done), "categories": dict(self.categories()),
            "events_per_session": dict(Counter(s.events for s in self.sessions)),
            "foreign_events": sum(len(s.foreign) for s in self.sessions),
            "tokens_s": round(self.tokens_s, 3), "wall_s": round(self.wall_s, 3),
            "sessions_per_s": round(len(done) / self.wall_s, 1) if self.wall_s > 0 else None,
            "peak_concurrency": self.peak_concurrency(), "latency_s": self.latency(),
            "loop_lag_ms": {"p50": self.loop_lag.p50_ms, "p99": self.loop_lag.p99_ms, "max": self.loop_lag.max_ms},
            "client_cpu_s": round(self.cpu_s, 3),
            **({"shards": self.shards} if self.shards is not None else {}),
        }


class _Progress:
    """Samples the event loop's timer lateness and, when asked, prints the fleet's progress."""

    def __init__(self, total: int, say: Callable[[str], None] | None, period: float = 0.01, every: float = 1.0) -> None:
        self.total, self.say, self.period, self.every = total, say, period, every
        self.lags: list[float] = []
        self.done = 0

    async def run(self, t0: float) -> None:
        loop = asyncio.get_running_loop()
        next_say = t0 + self.every
        while True:
            before = loop.time()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, loop.time() - before - self.period))
            now = time.perf_counter()
            if self.say is not None and now >= next_say:
                next_say = now + self.every
                self.say(f"  … {now - t0:5.1f}s: {self.done}/{self.total} sessions finished")

    def result(self) -> LoopLag:
        ms = [x * 1000 for x in self.lags] or [0.0]
        return LoopLag(len(self.lags), round(percentile(ms, 50) or 0.0, 2), round(percentile(ms, 99) or 0.0, 2),
                       round(max(ms), 2))


def _fd_headroom(sessions: int) -> str | None:
    """Raise this process's soft limit of open files toward the hard one when the fleet needs it
    (one socket per session; the common soft default of 1024 would fail a fleet of 1000)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = sessions + 256  # the kernel, the HTTP pool, files
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(hard, max(need, soft))
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < need:
            return f"only {target} open files allowed (hard limit): a fleet of {sessions} will run out of sockets"
    return None


async def run_fleet(ctx: Context, users: int | None = None, *, progress: Callable[[str], None] | None = None,
                    tokens: list[UserToken] | None = None) -> Fleet:
    """Obtain a token per user (or use ``tokens``), then open every user's session at once and run
    one agent run in each."""
    p = ctx.params
    n = int(users or (len(tokens) if tokens else p.users))
    if n < 1:
        raise ConfigError(f"orchestration.users must be at least 1, not {n}")
    warning = _fd_headroom(n)
    if warning and progress:
        progress(f"  fleet: {warning}")
    how = {"e2e_endpoint": "one E2E call per user", "local_jwt": "one signed per user",
           "token": "ONE shared token for every user", "none": "no token"}[p.auth.method]
    # On a cluster, each worker calls the E2E endpoint for its own shard's users (the calls' client CPU,
    # ~5 ms each, would make one process the bottleneck of ten thousand users); signing stays here (~0.1 ms).
    spread_tokens = bool(p.cluster) and not tokens and p.auth.method == "e2e_endpoint"
    t_tok = time.perf_counter()
    if not spread_tokens:
        tokens = tokens[:n] if tokens else await user_tokens(ctx, n)
        tokens_s = time.perf_counter() - t_tok
        ok = [u for u in tokens if u.verdict is None]
        failed = [u for u in tokens if u.verdict is not None]
        if progress:
            progress(f"  fleet: {n} users, tokens in {tokens_s:.2f}s ({p.auth.method}: {how}"
                     f"{f'; {len(failed)} failed' if failed else ''})")
    started_at = utc_now()
    lost: dict[int, Verdict] = {}
    worker_of: dict[int, str] = {}
    shards = None
    if p.cluster:
        # The sessions spread over a Dask cluster's workers, each shard on its own loop, all at one instant.
        from .cluster import run_sharded
        spread = await run_sharded(ctx, None if spread_tokens else ok, progress=progress, users=n)
        finished, lost, worker_of, shards = spread.finished, spread.lost, spread.worker_of, spread.shards
        if spread_tokens:
            tokens, tokens_s = spread.tokens, spread.tokens_s
            ok = [u for u in tokens if u.verdict is None]
            failed = [u for u in tokens if u.verdict is not None]
            for u in ok:
                _register_token(u.token)
            if progress:
                progress(f"  fleet: {n} users, tokens in {tokens_s:.2f}s on the workers ({p.auth.method}: {how}"
                         f"{f'; {len(failed)} failed' if failed else ''})")
        t0, cpu_s, wall_s, loop_lag = spread.t0, spread.cpu_s, spread.wall_s, spread.loop_lag
    else:
        monitor = _Progress(n, progress)
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        watcher = asyncio.get_running_loop().create_task(monitor.run(t0))

        async def one(u: UserToken) -> tuple[UserToken, WsObservation, Verdict, str]:
            obs, verdict, run_id = await agent_run_session(ctx, u.token, u.identity, own_events_only=True)
            monitor.done += 1
            return u, obs, verdict, run_id

        try:
            # Every session starts in the same loop iteration: the users really are there at once.
            finished = await asyncio.gather(*(one(u) for u in ok))
        finally:
            watcher.cancel()
        cpu_s = time.process_time() - cpu0
        wall_s = time.perf_counter() - t0
        loop_lag = monitor.result()
    by_user = {u.index: (obs, v, run_id) for u, obs, v, run_id in finished}
    sessions = []
    for u in tokens:
        if u.index in lost:  # its worker was lost: a row that says so, never a gap
            sessions.append(SessionRun(u.index, u.user_id, 0.0, None, lost[u.index], worker=worker_of.get(u.index)))
            continue
        obs, verdict, run_id = by_user.get(u.index, (None, None, None))
        sessions.append(session_run(u, obs, verdict, t0, run_id))
        sessions[-1].worker = worker_of.get(u.index)
    if progress:
        progress(f"  fleet: {sum(s.completed for s in sessions)}/{n} completed in {wall_s:.2f}s")
    return Fleet(n, p.auth.method, p.auth.method in ("token", "none"), started_at, sessions, tokens_s, wall_s,
                 loop_lag, cpu_s, failed, shards)


def fleet_budget(params: Params) -> float:
    """The fleet's deadline: its tokens (a bounded number of E2E calls at once), then every session's stages."""
    token_rounds = math.ceil(params.users / TOKEN_CONCURRENCY) if params.auth.method == "e2e_endpoint" else 0
    tokens = token_rounds * (STAGES["token"](params) + STAGES["auth_health"](params))
    session = sum(STAGES[s](params) for s in ("open", "welcome", "agent", "probe", "linger", "close",
                                               "rejection_probes"))
    if params.cluster:  # the cluster's start and its workers' readiness come first
        from .cluster import cluster_budget
        return tokens + session + cluster_budget(params)
    return tokens + session


#: The phase's one piece of work: the fleet, run once per context (``users`` from ``ctx.params.users``) and
#: judged three ways (the checks below are pure judges of it), even when one of them is cut short.
FLEET = Source("fleet", lambda ctx: run_fleet(ctx, progress=ctx.progress), fleet_budget)


async def fleet_for(ctx: Context) -> Fleet:
    """The context's fleet (:data:`FLEET`), run once however many of the three checks ask."""
    return await ctx.source(FLEET)


def _fmt(x: float | None, unit: str = "s") -> str:
    if x is None:
        return "—"
    return f"{x * 1000:.0f} ms" if unit == "ms" else f"{x:.3f}"


def _pcts_text(p: dict[str, float | None], n: int = 3) -> str:
    return "/".join(_fmt(p[k]) for k in ("p50", "p95", "p99", "max")[:n]) + " s"


def _identity_note(fleet: Fleet) -> str:
    if fleet.auth_method == "token":
        return ("one shared token (auth.method token) for every user: sessions are the same identity, so only "
                "their runs can be told apart")
    if fleet.auth_method == "none":
        return "no token (auth.method none): the sessions carry no identity"
    return f"one token per user ({fleet.auth_method})"


def _aggregate_fields(fleet: Fleet, rep: SessionRun | None) -> dict[str, Any]:
    """Record fields for a check over the whole fleet (not, as by default, its last session)."""
    ran = [s for s in fleet.sessions if s.obs is not None]
    seen_any = {e for s in ran for e in s.seen}
    missing = [e for e in AGENT_EVENTS if not ran or any(e not in s.seen for s in ran)]
    robs = rep.obs if rep is not None else None
    return {
        "events_seen": [e for e in _RUN_EVENTS if e in seen_any],
        "events_missing": missing,
        "connect_s": percentile([s.obs.connect_s for s in ran if s.obs.connect_s is not None], 50),
        "ws_open_s": percentile([s.open_s for s in ran if s.open_s is not None], 50),
        "first_event_s": percentile([s.first_event_s for s in ran if s.first_event_s is not None], 50),
        "ws_close_code": robs.close_code if robs else None,
        "ws_close_reason": robs.close_reason if robs else None,
        "ws_closed_by": robs.closed_by if robs else None,
        "http_status": robs.upgrade_status if robs else None,
        "target": robs.url if robs else None,
        "connection_id": None,
        "server_run_id": rep.own_run if rep is not None else None,
    }


def _fleet_evidence(fleet: Fleet) -> str:
    s = fleet.summary()
    rate = f"{s['sessions_per_s']}/s" if s["sessions_per_s"] is not None else "—"
    return (f"{fleet.users} users, {_identity_note(fleet)}; tokens in {fleet.tokens_s:.2f}s; sessions ran "
            f"{fleet.wall_s:.2f}s, peak {s['peak_concurrency']} open at once, {len(fleet.completed)} completed "
            f"({rate}); own agent events per session {s['events_per_session']}; {fleet.loop_lag.text()}; "
            f"client CPU {fleet.cpu_s:.2f}s" + _shards_text(fleet))


#: Sessions that failed on the client's side: they say nothing of the platform.
_KIT_SIDE = frozenset({"client_lost", "client_error"})


def _failed_status(failures: Counter) -> str:
    """``fail`` when some session failed on the platform's account; ``error`` when every failure was the
    client's own (a lost Dask worker, a crash in the kit): the platform was not shown to fail."""
    return "fail" if any(c not in _KIT_SIDE for c in failures) else "error"


def _shards_text(fleet: Fleet) -> str:
    if not fleet.shards:
        return ""
    parts = [f"{sh['worker']}: {sh['users']} users" + (f", LOST ({sh['lost']})" if sh["lost"] else
                                                        f", started {sh['start_late_ms']:.0f} ms after the agreed "
                                                        f"instant, CPU {sh['cpu_s']:.2f}s")
             for sh in fleet.shards]
    return f"; on {len(fleet.shards)} Dask workers ({'; '.join(parts)})"


@check("concurrent_agent_runs", PHASE, "agent", "Many users' agent runs at once",
       "Every user — its own token, its own WebSocket — starts an agent run at the same moment; every run "
       "must deliver the five events and a non-empty result, as a single run does.", source=FLEET, group="fleet")
def check_concurrent_agent_runs(fleet: Fleet, params: Params) -> Outcome:
    n = fleet.users
    cats = fleet.categories()
    failures = Counter({c: k for c, k in cats.items() if c != "ok"})
    evidence = _fleet_evidence(fleet)
    by_cat = "; ".join(f"{c}: {k}" for c, k in cats.most_common())
    http = None
    if not failures:
        slow = sum(1 for s in fleet.sessions if s.verdict.status == "degraded")
        status = "degraded" if slow else "pass"
        note = f"; {slow} slower than the SLA of {params.sla_agent_run}s" if slow else ""
        verdict = Verdict(status, "ok", f"{n}/{n} agent runs completed at once (peak {fleet.peak_concurrency()} "
                          f"sessions open), each with the five events and a result{note}",
                          f"sessions by category: {by_cat}; {evidence}")
        rep = fleet.sessions[0] if fleet.sessions else None
    else:
        dominant, k = failures.most_common(1)[0]
        rep = next(s for s in fleet.sessions if s.verdict.category == dominant)
        examples = []
        for cat, _ in failures.most_common():
            ex = next(s for s in fleet.sessions if s.verdict.category == cat)
            examples.append(f"[{cat}] user {ex.user}: {ex.verdict.message} — {clip(ex.verdict.detail, 300)}")
        verdict = Verdict(_failed_status(failures), dominant,
                          clip(f"{len(fleet.completed)}/{n} agent runs completed; {k} failed with {dominant} "
                               f"(user {rep.user}: {rep.verdict.message})", 400),
                          f"sessions by category: {by_cat}; {evidence}; examples: " + " | ".join(examples))
        if rep.obs is None:
            http = next((u.http for u in fleet.token_failures if u.index == rep.user), None)
    extra = _aggregate_fields(fleet, rep)
    if http is not None:
        extra["http_status"] = http.status
    return Outcome(verdict, http=http, ws=fleet.observations, extra=extra)


@check("user_isolation", PHASE, "agent", "No user sees another user's events",
       "Of all the sessions running at once, none may receive an agent event whose user_id or run_id is not its "
       "own, and no two users' tokens may be welcomed as one identity.", source=FLEET, group="fleet")
def check_user_isolation(fleet: Fleet, params: Params) -> Outcome:
    ran = [s for s in fleet.sessions if s.obs is not None]
    with_events = [s for s in ran if s.events or s.foreign]
    extra = _aggregate_fields(fleet, None)
    note = _identity_note(fleet)
    ignored = [s for s in ran if s.not_ours is not None or s.verdict.category == "ws_auth_ignored"]
    # A session welcomed as another of this fleet's users is that user's session: a leak between users.
    others = {s.user_id: s.user for s in ran if s.user_id}
    crossed = [(s, others[claim]) for s in ignored for _, claim in s.obs.identity_claims()
               if claim in others and others[claim] != s.user]
    if crossed:
        s, other = crossed[0]
        verdict = Verdict("fail", "cross_user_leak",
                          f"{len(crossed)} session(s) were given another of our users' identity: user {s.user}'s "
                          f"token ({s.user_id!r}) was welcomed as user {other} ({fleet.sessions[other].user_id!r})",
                          f"{note}; {_fleet_evidence(fleet)}")
        return Outcome(verdict, ws=fleet.observations, extra=extra, frames=False)
    if ignored:
        rep = ignored[0]
        why = rep.not_ours.message if rep.not_ours is not None else rep.verdict.message
        verdict = Verdict("fail", "ws_auth_ignored",
                          clip(f"{len(ignored)} of {len(ran)} sessions were not their own user's (user {rep.user}: "
                               f"{why}): the platform does not tell these users apart, so isolation between them "
                               f"cannot hold", 400),
                          f"{note}; {_fleet_evidence(fleet)}")
        return Outcome(verdict, ws=fleet.observations, extra=extra, frames=False)
    if not with_events:
        verdict = Verdict("skip", "ok", "no session received an agent event, so isolation cannot be judged "
                          "(see concurrent_agent_runs)", _fleet_evidence(fleet))
        return Outcome(verdict, ws=fleet.observations, extra=extra, frames=False)
    runs = {s.own_run: s.user for s in ran if s.own_run}
    problems = []
    leaking = [s for s in ran if s.foreign]
    for s in leaking:
        f = s.foreign[0].norm
        whose = (f"user {runs[f.run_id]} of this fleet" if f.run_id in runs
                 else "not one of this fleet's users")
        problems.append(f"user {s.user} (ours: user {s.user_id!r}, run {s.own_run!r}) received {len(s.foreign)} "
                        f"foreign event(s), first {f.event} of user {f.user_id!r} run {f.run_id!r} ({whose})")
    if not fleet.shared_token:
        # Distinct tokens welcomed as one identity: the platform mixed up the users themselves. Only whole ids
        # can tell users apart: a welcome that shortens ids ("e2e-nb-u...") says nothing here.
        welcomed: dict[str, set[str]] = {}
        for s in ran:
            if s.own_user and s.user_id and not str(s.own_user).endswith(("...", "…")):
                welcomed.setdefault(s.own_user, set()).add(s.user_id)
        for ident, claimed in welcomed.items():
            if len(claimed) > 1:
                problems.append(f"{len(claimed)} users' tokens ({', '.join(sorted(claimed)[:5])}) were all welcomed "
                                f"as user {ident!r}")
    total = sum(s.events for s in ran)
    if problems:
        foreign_n = sum(len(s.foreign) for s in leaking)
        verdict = Verdict("fail", "cross_user_leak",
                          clip(f"{len(leaking)} of {len(ran)} sessions received {foreign_n} agent event(s) of another "
                               f"user or run: {problems[0]}", 400),
                          f"{note}; " + " | ".join(problems[:20])
                          + (f" | … and {len(problems) - 20} more" if len(problems) > 20 else "")
                          + f"; {_fleet_evidence(fleet)}")
    else:
        distinct = len({s.user_id for s in ran if s.user_id})
        verdict = Verdict("pass", "ok",
                          f"{len(with_events)} sessions at once, {total} agent events: each carried only its own "
                          f"user and run ({distinct} distinct user(s); {note})",
                          _fleet_evidence(fleet))
    return Outcome(verdict, ws=fleet.observations, extra=extra, frames=False)


@check("latency_percentiles", PHASE, "agent", "Latency percentiles under load",
       f"p50/p95/p99 of WebSocket open, first agent event and completion over every session, measured on the "
       f"wire; the p{SLA_PERCENTILE} is held against the SLA (sla.http for the open, sla.agent_run for completion).",
       source=FLEET, group="fleet")
def check_latency_percentiles(fleet: Fleet, params: Params) -> Outcome:
    p = params
    lat = fleet.latency()
    done = fleet.completed
    extra = _aggregate_fields(fleet, None)
    if not any(s.completion_s is not None for s in fleet.sessions):
        verdict = Verdict("skip", "ok", "no agent run completed, so there is no latency to measure "
                          "(see concurrent_agent_runs)", _fleet_evidence(fleet))
        return Outcome(verdict, ws=fleet.observations, extra=extra, frames=False)
    measured = sum(1 for s in fleet.sessions if s.completion_s is not None)
    failed = Counter(s.verdict.category for s in fleet.sessions if not s.completed)
    if failed:
        # Percentiles over the survivors would hide the runs that never finished.
        dominant, k = failed.most_common(1)[0]
        verdict = Verdict(_failed_status(failed), dominant,
                          f"percentiles of {measured} of {fleet.users} runs would describe only the survivors: "
                          f"{sum(failed.values())} run(s) did not complete ({k} {dominant}; see concurrent_agent_runs)",
                          f"open {_pcts_text(lat['open'])}, completion {_pcts_text(lat['completion'])} over the "
                          f"survivors only; {_fleet_evidence(fleet)}")
        return Outcome(verdict, ws=fleet.observations, extra=extra, frames=False)
    key = f"p{SLA_PERCENTILE}"
    slow = []
    if (lat["open"][key] or 0.0) > p.sla_http:
        slow.append(f"open {key} {lat['open'][key]:.3f}s > sla.http {p.sla_http}s")
    if (lat["completion"][key] or 0.0) > p.sla_agent_run:
        slow.append(f"completion {key} {lat['completion'][key]:.3f}s > sla.agent_run {p.sla_agent_run}s")
    message = (f"p50/p95/p99 — open {_pcts_text(lat['open'])}; first event {_pcts_text(lat['first_event'])}; "
               f"completion {_pcts_text(lat['completion'])} ({measured} of {fleet.users} runs)")
    if slow:
        message += " — slower than the SLA: " + "; ".join(slow)
    # What the platform says its runs took, against what the client saw: the difference is transit
    # and client-side waiting, so a platform that is fast while the kit is slow shows here.
    gaps = [s.completion_s - s.server_exec_s for s in done if s.completion_s is not None and s.server_exec_s is not None]
    gap = percentiles(gaps, (50, 99))
    details = [
        "p50/p95/p99/max: " + "; ".join(
            f"{name} {_pcts_text({**lat[name], 'max': percentile([getattr(s, attr) for s in fleet.sessions], 100)}, 4)}"
            for name, attr in (("open", "open_s"), ("first_event", "first_event_s"), ("completion", "completion_s"))),
        f"SLA percentile p{SLA_PERCENTILE}: sla.http {p.sla_http}s (open), sla.agent_run {p.sla_agent_run}s (completion)",
    ]
    if gaps:
        details.append(f"completion seen by the client minus the platform's own execution_time_ms: p50 "
                       f"{_fmt(gap['p50'], 'ms')}, p99 {_fmt(gap['p99'], 'ms')} ({len(gaps)} runs)")
    details.append(_fleet_evidence(fleet))
    verdict = Verdict("degraded" if slow else "pass", "ok", message, "; ".join(details))
    return Outcome(verdict, ws=fleet.observations, extra=extra, frames=False)


# -- the notebook's side: table, charts, phase handle ---------------------------------------------

SESSION_COLUMNS = ["user", "open_s", "first_event_s", "completion_s", "events", "category", "foreign_events",
                   "user_id", "start_s", "end_s", "completed_at_s", "server_exec_s", "bytes_received", "worker"]


def sessions_frame(fleet: Fleet | None):
    """One row per user's session: user, open_s, first_event_s, completion_s, events, category, …
    (empty when no fleet ran, e.g. the token configuration was unusable)."""
    import pandas as pd
    return pd.DataFrame([s.row() for s in fleet.sessions] if fleet is not None else [], columns=SESSION_COLUMNS)


def _frame_of(data: Any):
    return sessions_frame(data) if data is None or isinstance(data, Fleet) else data


_SERIES = (("open_s", "WebSocket open", "#1565c0"), ("first_event_s", "first agent event", "#2e7d32"),
           ("completion_s", "completion", "#6a1b9a"))


def latency_chart(data: Fleet | Any, title: str = "orchestration: latency per session"):
    """Histograms of open, first-event and completion times over the sessions, p50/p95/p99 marked."""
    import matplotlib.pyplot as plt
    df = _frame_of(data)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (col, label, color) in zip(axes, _SERIES):
        values = [v for v in df[col].tolist() if v is not None and v == v] if len(df) else []
        if not values:
            ax.text(0.5, 0.5, "no measurement", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(label)
            continue
        ax.hist(values, bins=min(40, max(5, len(values) // 5)), color=color, alpha=0.8)
        for q, ls in ((50, "-"), (95, "--"), (99, ":")):
            x = percentile(values, q)
            ax.axvline(x, color="black", ls=ls, lw=1, label=f"p{q} {x:.3f}s")
        ax.set_title(f"{label} (n={len(values)})")
        ax.set_xlabel("seconds")
        ax.legend(fontsize="small")
    axes[0].set_ylabel("sessions")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def completions_chart(data: Fleet | Any, title: str = "orchestration: sessions over time"):
    """Cumulative opens and completions against seconds since the fleet started; failures marked."""
    import matplotlib.pyplot as plt
    df = _frame_of(data)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    n = len(df)
    opened = sorted(s + o for s, o in zip(df["start_s"], df["open_s"]) if o is not None and o == o) if n else []
    done = sorted(t for t in df["completed_at_s"] if t is not None and t == t) if n else []
    if opened:
        ax.step(opened, range(1, len(opened) + 1), where="post", color="#1565c0", label=f"opened ({len(opened)})")
    if done:
        ax.step(done, range(1, len(done) + 1), where="post", color="#2e7d32", label=f"completed ({len(done)})")
    failed = df[df["category"] != "ok"] if n else df
    if len(failed):
        ends = [e if e is not None and e == e else 0.0 for e in failed["end_s"]]
        ax.scatter(ends, [0] * len(ends), marker="x", color="#c62828", label=f"failed ({len(failed)})", zorder=3)
    ax.axhline(n, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("seconds since the fleet started")
    ax.set_ylabel("sessions")
    ax.set_title(title)
    if opened or done or len(failed):
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig


class OrchestrationPhase(Phase):
    """The orchestration notebook's handle: a :class:`~netra_nb.notebook.Phase` that keeps the fleet.

    ``users`` (0: the params file's ``orchestration.users``) is how many users run at once.
    """

    def __init__(self, env: str | None = "local", run_dir: str | None = None, *, params_file: str | None = None,
                 params: Params | None = None, users: int = 0, run_id: str | None = None) -> None:
        super().__init__(PHASE, env, run_dir, params_file=params_file, params=params, run_id=run_id)
        if users:
            if int(users) < 1:
                raise ConfigError(f"users must be at least 1, not {users}")
            self.params = self.params.with_overrides(users=int(users))
        self.fleet: Fleet | None = None

    def _header(self, n: int) -> str:
        p = self.params
        return f"{PHASE}: {n} checks over {p.users} users at once against {p.name} ({p.base_url})"

    def _prepare(self, ctx: Context, progress: bool) -> None:
        if progress:  # a line as the sessions finish
            ctx.progress = lambda line: print(line, flush=True)

    def _finish(self, ctx: Context) -> None:
        task = ctx.shared.get(FLEET.key)
        self.fleet = task.result() if task is not None and task.done() and not task.cancelled() \
            and task.exception() is None else None

    def sessions(self, *, worst_first: bool = False):
        """The per-session table of the last run (empty before a run, or when no session could start);
        ``worst_first``: failures first, then the slowest completions."""
        df = sessions_frame(self.fleet)
        if worst_first and len(df):
            df = df.assign(_ok=df["category"].eq("ok")).sort_values(
                ["_ok", "completion_s"], ascending=[True, False], na_position="first", kind="stable").drop(columns="_ok")
        return df

    def latency_chart(self):
        return latency_chart(self.fleet)

    def completions_chart(self):
        return completions_chart(self.fleet)
