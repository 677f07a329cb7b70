"""A fleet spread over the workers of a Dask cluster (``netra-nb run ENV --cluster …``).

One process opens every session of a fleet on one event loop; ``bench/RESULTS.md`` shows where that
ends (~2,000 opens/s; the loop saturates near 4,000 users). With ``orchestration.cluster`` set (or
``--cluster``), :func:`netra_nb.orchestration.run_fleet` hands its users to :func:`run_sharded`, which

1. connects to the cluster: ``local[:N]`` starts a :class:`distributed.LocalCluster` of N worker
   processes on this machine (default 2), ``tcp://HOST:PORT`` is the scheduler
   of a cluster started elsewhere (``dask scheduler`` + ``dask worker``, dask-kubernetes, Dask Gateway);
2. splits the users into one shard per worker (round robin) and submits one task per shard, pinned to
   its worker (never moved to another: a session re-run elsewhere would not be the session we timed);
   with ``e2e_endpoint`` each shard first calls the E2E endpoint for its own users, with its share of the
   fleet's calls in flight (the calls' client CPU is spread over the workers; the auth service sees no more
   calls at once than from one process); signed tokens come from the driver;
3. waits until every shard's worker has imported the kit and built its context (each task says so on a
   :class:`distributed.Queue`), then publishes one wall-clock start time on a
   :class:`distributed.Variable`: every shard sleeps until that instant and then opens all its sessions
   in one loop iteration, on its own event loop, with the same session code as one process
   (:func:`netra_nb.checks.agent_run_session`);
4. collects every session's observation, verdict and run id back into this process, where the fleet is
   judged as a whole and written to the one run folder (each frame's ``worker`` column names its worker).

A worker lost mid-fleet (its process killed, its machine gone) takes its sessions' observations with it:
each of those sessions gets a row with the category ``client_lost``, never a silent gap. A scheduler that
cannot be reached is a :class:`~netra_nb.params.ConfigError` (exit 2) from :func:`probe`, which the CLI
calls before anything runs.

Times: each worker measures its sessions on its own ``perf_counter``; a session's start is sent back as
seconds since the agreed wall-clock instant, so the fleet's timeline is as good as the machines' clocks
agree (NTP: milliseconds; each shard reports how late it really started, ``start_late_ms``).

Dask is imported only here, and only when a fleet runs on a cluster: without ``--cluster`` nothing
changes and ``distributed`` (the ``[cluster]`` extra) need not be installed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from .params import ConfigError, Params, cluster_spec

if TYPE_CHECKING:  # pragma: no cover
    from .checks import Context
    from .judge import Verdict
    from .orchestration import LoopLag, UserToken
    from .ws import WsObservation

__all__ = ["ClusterSpec", "parse", "probe", "run_sharded", "Sharded", "cluster_budget", "DEFAULT_LOCAL_WORKERS",
           "LOST_CATEGORY"]

#: ``local`` without a number: two worker processes (this machine's cores, typically, are few).
DEFAULT_LOCAL_WORKERS = 2
#: Seconds to reach a scheduler (the probe, and the fleet's own connection).
CONNECT_TIMEOUT_S = 10.0
#: Seconds for the cluster to start (LocalCluster: spawning N processes) and every shard's worker to
#: import the kit and report ready; added to the fleet's deadline (:func:`cluster_budget`).
START_BUDGET_S = 60.0
#: Seconds between the last shard reporting ready and the common start: time for the start instant to
#: reach every worker (one scheduler round trip each) before it comes.
START_LEAD_S = 0.5
#: How often the driver looks at the shards and at the cluster's workers (a lost worker is seen within this).
POLL_S = 0.25
LOST_CATEGORY = "client_lost"


@dataclass(frozen=True)
class ClusterSpec:
    text: str
    local_workers: int | None  # local[:N]: N worker processes here; None for a scheduler's address
    address: str | None  # tcp://HOST:PORT

    @property
    def local(self) -> bool:
        return self.local_workers is not None


def parse(text: str) -> ClusterSpec:
    """``local``, ``local:N`` or ``tcp://HOST:PORT`` (ConfigError otherwise; see :func:`netra_nb.params.cluster_spec`)."""
    text = cluster_spec(text, "--cluster")
    if not text:
        raise ConfigError("--cluster: no cluster given (local, local:N or tcp://HOST:PORT)")
    if text.startswith("local"):
        n = int(text.split(":", 1)[1]) if ":" in text else DEFAULT_LOCAL_WORKERS
        return ClusterSpec(text, n, None)
    return ClusterSpec(text, None, text)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ConfigError("orchestration.cluster / --cluster needs Dask distributed, the [cluster] extra: "
                          "pip install 'netra-nb[cluster]' (make test installs it)") from None
    return distributed


def probe(text: str, timeout: float = CONNECT_TIMEOUT_S) -> str:
    """Before anything runs: is the cluster usable? For a scheduler's address, connect to it (ConfigError,
    exit 2, naming the address when it cannot be reached) and say how many workers it has; for ``local``,
    only that Dask is installed."""
    spec = parse(text)
    distributed = _import_distributed()
    if spec.local:
        return f"a local Dask cluster of {spec.local_workers} worker processes"
    try:
        with _quiet(), distributed.Client(spec.address, timeout=timeout, set_as_default=False) as client:
            workers = len(client.ncores())
    except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
        raise ConfigError(f"--cluster {spec.address}: the Dask scheduler cannot be reached within {timeout:g}s "
                          f"({type(exc).__name__}: {str(exc)[:200]}); start one with `dask scheduler` and "
                          f"`dask worker {spec.address}`, or use --cluster local:N") from None
    return f"the Dask scheduler at {spec.address} ({workers} worker(s) connected now)"


def cluster_budget(params: Params) -> float:
    """Seconds a fleet on a cluster needs beyond its sessions: the cluster's start, the shards' readiness."""
    return START_BUDGET_S + CONNECT_TIMEOUT_S if params.cluster else 0.0


class _quiet:
    """Dask logs every worker it starts and every connection it loses at INFO/WARNING: a lost worker is
    reported in the fleet's rows, not as log noise in the notebook's output."""

    NAMES = ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker",
             "distributed.core", "distributed.comm", "distributed.client", "distributed.batched")

    def __enter__(self):
        self.saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in self.NAMES]
        for logger, _ in self.saved:
            logger.setLevel(logging.CRITICAL)
        return self

    def __exit__(self, *exc: Any) -> None:
        for logger, level in self.saved:
            logger.setLevel(level)


# -- one shard, on its worker ---------------------------------------------------------------------

@dataclass
class _ShardUser:
    index: int
    user_id: str | None
    token: str | None
    identity: Any


@dataclass
class _Shard:
    number: int
    params: Params
    users: list[_ShardUser]
    ready_queue: str
    start_variable: str
    wait_s: float  # how long to wait for the start instant before giving up
    fetch_tokens: bool = False  # e2e_endpoint: the shard calls the E2E endpoint for its users before it is ready
    token_concurrency: int = 1  # its share of the fleet's E2E calls in flight (the auth service sees no more)


@dataclass
class ShardResult:
    number: int
    worker: str
    pid: int
    host: str
    sessions: list[tuple[int, "WsObservation", "Verdict", str]]  # (user index, obs, verdict, run id sent)
    cpu_s: float  # the worker process's CPU time while its sessions ran
    lags: list[float]  # its event loop's timer lateness samples (seconds)
    wall_s: float
    start_late_ms: float  # how long after the agreed instant its sessions began opening (its own clock)
    tokens: list["UserToken"] | None = None  # fetch_tokens: every user's token, or why there is none
    tokens_s: float = 0.0


def _picklable(obs: Any) -> None:
    """An exception an observation kept (the judgement of it is already made) must survive the trip back."""
    exc = obs.exception
    if exc is None:
        return
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure to round-trip: keep its type name and text
        obs.exception = RuntimeError(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")


def _worker_label() -> str:
    from distributed import get_worker
    w = get_worker()
    name = w.name
    return str(name) if name is not None and str(name) != w.address else w.address


def run_shard(shard: _Shard) -> ShardResult:
    """The task one worker runs (in one of its threads): get ready, say so, wait for the common start, then
    run every session of the shard on a new event loop, as :func:`netra_nb.orchestration.run_fleet` does."""
    from distributed import Queue, Variable

    from . import checks, orchestration  # noqa: F401 - imported before the start, not during it

    for u in shard.users:  # as in this process: a JWT is redacted by its pattern, anything else by its value
        orchestration._register_token(u.token)
    orchestration._fd_headroom(len(shard.users))
    label = _worker_label()
    # Made here, in the task's thread (they find the worker's client through it), used from the shard's loop.
    ready, start = Queue(shard.ready_queue), Variable(shard.start_variable)
    return asyncio.run(_shard_sessions(shard, ready, start, label))


async def _shard_sessions(shard: _Shard, ready: Any, start: Any, label: str) -> ShardResult:
    from .checks import Context, agent_run_session
    from .orchestration import _Progress, _register_token, user_tokens

    ctx = Context(shard.params, phase="orchestration")
    tokens, tokens_s = None, 0.0
    if shard.fetch_tokens:
        t_tok = time.perf_counter()
        tokens = await user_tokens(ctx, 0, indices=[u.index for u in shard.users],
                                   concurrency=shard.token_concurrency)
        tokens_s = time.perf_counter() - t_tok
        shard.users = [_ShardUser(u.index, u.user_id, u.token, u.identity) for u in tokens if u.verdict is None]
        for u in tokens:
            _register_token(u.token)
            if u.http is not None:
                _picklable(u.http)
    await asyncio.to_thread(ready.put, label)
    start_at = float(await asyncio.to_thread(start.get, timeout=shard.wait_s))
    monitor = _Progress(len(shard.users), None)
    delay = start_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    t0 = time.perf_counter()
    late_ms = (time.time() - start_at) * 1000.0
    # perf_counter at the agreed instant: every session's start is sent back relative to it.
    t_start = t0 - (time.time() - start_at)
    cpu0 = time.process_time()
    watcher = asyncio.get_running_loop().create_task(monitor.run(t0))

    async def one(u: _ShardUser):
        obs, verdict, run_id = await agent_run_session(ctx, u.token, u.identity, own_events_only=True)
        monitor.done += 1
        return u.index, obs, verdict, run_id

    try:
        finished = await asyncio.gather(*(one(u) for u in shard.users))
    finally:
        watcher.cancel()
        await ctx.aclose()
    cpu_s = time.process_time() - cpu0
    wall_s = time.perf_counter() - t0
    for _, obs, _, _ in finished:
        obs.started -= t_start
        obs.worker = label
        _picklable(obs)
    return ShardResult(shard.number, label, os.getpid(), os.uname().nodename, list(finished), cpu_s,
                       list(monitor.lags), wall_s, round(late_ms, 3), tokens, tokens_s)


# -- the driver, in the phase's process ---------------------------------------------------------------

@dataclass
class Sharded:
    """What :func:`run_sharded` hands back to :func:`netra_nb.orchestration.run_fleet`."""

    finished: list[tuple["UserToken", "WsObservation", "Verdict", str]]
    lost: dict[int, "Verdict"]  # user index → the verdict of a session whose worker was lost
    worker_of: dict[int, str]  # user index → the worker its shard was given to
    t0: float  # this process's perf_counter at the agreed start (the sessions' starts are relative to it)
    wall_s: float
    cpu_s: float  # the workers' CPU time while their sessions ran, summed
    loop_lag: "LoopLag"
    shards: list[dict[str, Any]]  # per shard: worker, users, pid, host, cpu_s, wall_s, start_late_ms, lost
    tokens: list["UserToken"] | None = None  # the users' tokens when the shards fetched them (e2e_endpoint)
    tokens_s: float = 0.0  # the slowest shard's token calls


def _shards(users: list[Any], workers: list[str]) -> list[list[Any]]:
    """Round robin: every worker gets a shard of nearly the same size (and the same mix of user indexes)."""
    k = min(len(workers), len(users)) or 1
    return [users[i::k] for i in range(k)]


async def run_sharded(ctx: "Context", tokens: list["UserToken"] | None, *,
                      progress: Callable[[str], None] | None = None, users: int = 0) -> Sharded:
    """Run the sessions of ``tokens`` (users whose tokens were obtained) on the cluster ``ctx.params.cluster``;
    ``tokens=None``: users 0..``users``-1, each shard calling the E2E endpoint for its own users first."""
    from .orchestration import UserToken
    stop = threading.Event()
    fetch = tokens is None
    if fetch:
        tokens = [UserToken(i, None, None) for i in range(users)]
    try:
        return await asyncio.to_thread(_drive, ctx.params, tokens, progress, stop, fetch)
    finally:
        stop.set()  # a deadline that cancels the fleet stops the driver and the cluster too


def _lost_verdict(label: str, why: str, n: int) -> "Verdict":
    from .judge import Verdict
    return Verdict("error", LOST_CATEGORY,
                   f"the client side was lost: Dask worker {label} running this session ({why}) never reported it",
                   f"{n} session(s) of this fleet ran on worker {label}; their observations were on it and are "
                   f"gone, so the platform's side of them is unknown (see the platform's own logs for the same "
                   f"minutes)")


def _drive(params: Params, users: list["UserToken"], say: Callable[[str], None] | None,
           stop: threading.Event, fetch: bool) -> Sharded:
    distributed = _import_distributed()
    from .orchestration import LoopLag, percentile

    say = say or (lambda line: None)
    spec = parse(params.cluster)
    cluster = None
    with _quiet():
        if spec.local:
            # Worker processes of this machine, one thread each (a shard is one event loop); no dashboard
            # port to collide with another run's. The scheduler runs in this process.
            cluster = distributed.LocalCluster(n_workers=spec.local_workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None, silence_logs=logging.CRITICAL)
            address = cluster.scheduler_address
        else:
            address = spec.address
        try:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
            if cluster is not None:
                cluster.close()
            raise ConfigError(f"orchestration.cluster {params.cluster}: the Dask scheduler cannot be reached "
                              f"({type(exc).__name__}: {str(exc)[:200]})") from None
    try:
        with _quiet():
            return _drive_on(client, distributed, params, users, say, stop, spec, LoopLag, percentile, fetch)
    finally:
        with _quiet():
            client.close()
            if cluster is not None:
                cluster.close()


def _drive_on(client, distributed, params, users, say, stop, spec, LoopLag, percentile, fetch) -> Sharded:
    from .orchestration import TOKEN_CONCURRENCY, fleet_budget
    deadline = time.monotonic() + START_BUDGET_S
    want = spec.local_workers or 1
    while len(client.ncores()) < want:
        if time.monotonic() > deadline or stop.is_set():
            raise RuntimeError(f"the Dask cluster {params.cluster} has {len(client.ncores())} worker(s) after "
                               f"{START_BUDGET_S:.0f}s; a fleet needs at least {want}")
        time.sleep(POLL_S)
    workers = sorted(client.ncores())
    shards = _shards(users, workers)
    tag = uuid.uuid4().hex[:10]
    ready_q = distributed.Queue(f"netra-nb-ready-{tag}", client=client)
    start_v = distributed.Variable(f"netra-nb-start-{tag}", client=client)
    wait_s = START_BUDGET_S
    if fetch:  # the shards' token calls come before they are ready
        deadline += fleet_budget(params.with_overrides(cluster="")) - _session_budget(params)
        wait_s += fleet_budget(params.with_overrides(cluster="")) - _session_budget(params)
    futures = {}
    for i, (shard_users, worker) in enumerate(zip(shards, workers)):
        shard = _Shard(i, params, [_ShardUser(u.index, u.user_id, u.token, u.identity) for u in shard_users],
                       ready_q.name, start_v.name, wait_s, fetch, max(1, TOKEN_CONCURRENCY // len(shards)))
        futures[i] = client.submit(run_shard, shard, workers=[worker], allow_other_workers=False, pure=False,
                                   retries=0, key=f"netra-nb-shard-{tag}-{i}")
    say(f"  fleet: {len(users)} users in {len(shards)} shards over {len(workers)} Dask worker(s) of "
        f"{params.cluster} ({', '.join(str(len(s)) for s in shards)} users)")
    # Every shard ready (its worker imported the kit and waits), then one instant for all.
    ready: list[str] = []
    while len(ready) < len(shards):
        if stop.is_set():
            raise RuntimeError("stopped before the shards were ready")
        failed = [i for i, f in futures.items() if f.status in ("error", "cancelled")]
        if failed or time.monotonic() > deadline:
            why = (f"shard {failed[0]}: {futures[failed[0]].exception()!r}" if failed
                   else f"{len(ready)}/{len(shards)} ready after {START_BUDGET_S:.0f}s")
            for f in futures.values():
                f.cancel()
            raise RuntimeError(f"the Dask workers did not get ready: {why}")
        try:
            ready.append(ready_q.get(timeout=POLL_S * 4))
        except TimeoutError:
            continue
    start_at = time.time() + START_LEAD_S
    start_v.set(start_at)
    t0 = time.perf_counter() + (start_at - time.time())
    say(f"  fleet: every shard ready ({', '.join(sorted(ready))}); all open at one instant")
    results: dict[int, ShardResult] = {}
    lost: dict[int, str] = {}  # shard → why
    budget = _session_budget(params) + START_LEAD_S
    end = time.monotonic() + budget
    next_say = time.monotonic() + 5.0
    while len(results) + len(lost) < len(shards):
        if stop.is_set():
            break
        alive = set(client.ncores())
        for i, f in futures.items():
            if i in results or i in lost:
                continue
            if f.status == "finished":
                results[i] = f.result()
            elif f.status in ("error", "cancelled"):
                exc = f.exception() if f.status == "error" else None
                lost[i] = (f"its task ended with {type(exc).__name__}: {str(exc)[:200]}" if exc is not None
                           else "its task was cancelled")
            elif workers[i] not in alive:
                lost[i] = "the worker left the cluster mid-fleet"
                f.cancel()
        if time.monotonic() > end:
            for i, f in futures.items():
                if i not in results and i not in lost:
                    lost[i] = f"no answer within the fleet's session budget of {budget:.0f}s"
                    f.cancel()
            break
        if time.monotonic() >= next_say:
            next_say = time.monotonic() + 5.0
            say(f"  … {time.perf_counter() - t0:5.1f}s: {len(results)}/{len(shards)} shards reported"
                + (f", {len(lost)} lost" if lost else ""))
        time.sleep(POLL_S)
    wall_s = max([r.wall_s for r in results.values()], default=time.perf_counter() - t0)
    if lost:
        wall_s = max(wall_s, time.perf_counter() - t0)
    by_index = {u.index: u for u in users}
    tokens_s = 0.0
    if fetch:  # the tokens the shards got (a lost shard's users keep their placeholder: no token, no verdict)
        for r in results.values():
            by_index.update({u.index: u for u in r.tokens or []})
            tokens_s = max(tokens_s, r.tokens_s)
    finished, lost_verdicts, worker_of = [], {}, {}
    lags: list[float] = []
    summary = []
    for i, shard_users in enumerate(shards):
        r = results.get(i)
        label = r.worker if r is not None else workers[i]
        for u in shard_users:
            worker_of[u.index] = label
        if r is None:
            v = _lost_verdict(workers[i], lost.get(i, "stopped"), len(shard_users))
            for u in shard_users:
                lost_verdicts[u.index] = v
            summary.append({"shard": i, "worker": label, "users": len(shard_users), "lost": lost.get(i, "stopped")})
            continue
        for index, obs, verdict, run_id in r.sessions:
            obs.started += t0
            finished.append((by_index[index], obs, verdict, run_id))
        lags.extend(r.lags)
        summary.append({"shard": i, "worker": r.worker, "users": len(shard_users), "pid": r.pid, "host": r.host,
                        "cpu_s": round(r.cpu_s, 3), "wall_s": round(r.wall_s, 3), "start_late_ms": r.start_late_ms,
                        "lost": None})
    ms = [x * 1000 for x in lags] or [0.0]
    lag = LoopLag(len(lags), round(percentile(ms, 50) or 0.0, 2), round(percentile(ms, 99) or 0.0, 2),
                  round(max(ms), 2))
    cpu_s = sum(r.cpu_s for r in results.values())
    for s in summary:
        if s["lost"]:
            say(f"  fleet: worker {s['worker']} lost ({s['lost']}): its {s['users']} sessions are client_lost")
    tokens = [by_index[u.index] for u in users] if fetch else None
    return Sharded(finished, lost_verdicts, worker_of, t0, wall_s, cpu_s, lag, summary, tokens, tokens_s)


def _session_budget(params: Params) -> float:
    from .checks import STAGES
    return sum(STAGES[s](params) for s in ("open", "welcome", "agent", "probe", "linger", "close",
                                           "rejection_probes"))
