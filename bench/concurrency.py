"""Concurrency: one fleet of N users at once against the reference platform in its own process.

For each N: sessions per second (completed runs / the fleet's wall time, every session started in
the same instant), latency percentiles as the orchestration checks measure them, lost events (every
session must get exactly its five), and who was busy: the platform's CPU time against the wall
time (it serves on one event loop, so ~100% of a core is its ceiling), the client's CPU time and
event-loop lag, and how late the first event came relative to the delay the platform injects.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from netra_nb import orchestration as orch
from netra_nb.checks import Context
from netra_nb.params import parse_params
from netra_nb.refserver.config import DEFAULT_OFFSETS

from .refplatform import Platform


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 1)


def listen_drops() -> int:
    """The kernel's count of connections dropped because a listener's accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for head, values in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            row = dict(zip(head.split()[1:], values.split()[1:]))
            return int(row.get("ListenOverflows", 0))
    return 0


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all processes, all cores), from /proc/stat."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


async def _fleet(platform: Platform, n: int, **overrides: Any) -> tuple[orch.Fleet, float, float, int]:
    """(fleet, the platform's CPU seconds, CPU seconds of every other process on the machine,
    connections the platform's full accept queue dropped)."""
    params = parse_params(platform.params(**overrides), source="<bench>")
    ctx = Context(params, phase=orch.PHASE)
    try:
        tokens = await orch.user_tokens(ctx, n)  # not part of the sessions' time or CPU
        cpu0, busy0, drops0 = platform.cpu_s(), machine_busy_s(), listen_drops()
        fleet = await orch.run_fleet(ctx, n, tokens=tokens)
        server_cpu, busy, drops = platform.cpu_s() - cpu0, machine_busy_s() - busy0, listen_drops() - drops0
    finally:
        await ctx.aclose()
    return fleet, server_cpu, max(0.0, busy - server_cpu - fleet.cpu_s), drops


def _request_frame(obs):
    """The frame that started the agent run (sent at ``request_t``; in the October era a handshake ack precedes
    it). orchestration no longer has this helper since the one judgement of an agent run (386799f)."""
    sent = [f for f in obs.frames if f.direction == "sent"]
    if obs.request_t is not None:
        at = next((f for f in sent if f.t == obs.request_t), None)
        if at is not None:
            return at
    return next((f for f in sent if f.norm.raw_type in ("start_agent", "user_message", "execute_agent", "message",
                                                        "chat_message")), sent[-1] if sent else None)


def fleet_figures(fleet: orch.Fleet, server_cpu: float, offsets: tuple[float, ...], other_cpu: float = 0.0) -> dict[str, Any]:
    """The numbers of one fleet, every one from the sessions' observations (offsets only to subtract)."""
    s = fleet.sessions
    lat = fleet.latency()
    first_late = [x.first_event_s - offsets[0] for x in s if x.first_event_s is not None]
    done_late = [x.completion_s - offsets[-1] for x in s if x.completion_s is not None]
    # Where the lateness of the first event arose, on the one clock that client and platform share
    # here: the platform's own timestamp on the event splits it into request transit + platform
    # queueing (before it) and transit + client queueing (after it).
    platform_part, client_part = [], []
    for x in s:
        if x.obs is None or x.first_event_s is None:
            continue
        req = _request_frame(x.obs)
        first = next(f for f in x.obs.frames if f.direction == "received" and f.norm.event in orch._RUN_EVENTS)
        sent_ts = _server_ts(first.text)
        if req is None or sent_ts is None:
            continue
        platform_part.append(sent_ts - (x.obs.started_wall + req.t) - offsets[0])
        client_part.append(x.obs.started_wall + first.t - sent_ts)
    grace = []
    opened = [x.start_s + x.open_s for x in s if x.open_s is not None]
    for x in s:
        if x.obs is None or x.obs.welcome_s is None:
            continue
        req = _request_frame(x.obs)
        if req is not None:
            grace.append(req.t - x.obs.welcome_s)
    return {
        "users": fleet.users,
        "completed": len(fleet.completed),
        # a session whose request went out must get exactly its five events; one that never opened
        # (a handshake timeout) is a failure, counted in categories, not a lost event
        "lost_event_sessions": sum(1 for x in s if x.obs is not None and _request_frame(x.obs) is not None
                                   and x.events != 5),
        "foreign_events": sum(len(x.foreign) for x in s),
        "categories": dict(fleet.categories()),
        "wall_s": round(fleet.wall_s, 3),
        "sessions_per_s": round(len(fleet.completed) / fleet.wall_s, 1) if fleet.wall_s else None,
        "peak_open": fleet.peak_concurrency(),
        "opens_per_s": round(len(opened) / max(opened), 1) if opened else None,
        "open_ms": {k: _ms(v) for k, v in lat["open"].items()},
        "first_event_ms": {k: _ms(v) for k, v in lat["first_event"].items()},
        "completion_ms": {k: _ms(v) for k, v in lat["completion"].items()},
        "first_event_late_ms": {k: _ms(v) for k, v in orch.percentiles(first_late, (50, 99)).items()},
        "completion_late_ms": {k: _ms(v) for k, v in orch.percentiles(done_late, (50, 99)).items()},
        "first_event_late_platform_ms": {k: _ms(v) for k, v in orch.percentiles(platform_part, (50, 99)).items()},
        "first_event_late_client_ms": {k: _ms(v) for k, v in orch.percentiles(client_part, (50, 99)).items()},
        "welcome_to_request_ms": _ms(orch.percentile(grace, 50)),
        "server_cpu_s": round(server_cpu, 2),
        "server_core_pct": round(100 * server_cpu / fleet.wall_s) if fleet.wall_s else None,
        "client_cpu_s": round(fleet.cpu_s, 2),
        "client_core_pct": round(100 * fleet.cpu_s / fleet.wall_s) if fleet.wall_s else None,
        "other_processes_core_pct": round(100 * other_cpu / fleet.wall_s) if fleet.wall_s else None,
        "loop_lag_ms": {"p99": fleet.loop_lag.p99_ms, "max": fleet.loop_lag.max_ms},
        "tokens_s": round(fleet.tokens_s, 2),
    }


def _server_ts(text: str) -> float | None:
    try:
        ts = json.loads(text).get("timestamp")
        return datetime.fromisoformat(ts).timestamp() if isinstance(ts, str) else float(ts)
    except (ValueError, TypeError, AttributeError):
        return None


def run(sizes: list[int], *, repeats: int = 1, say=print) -> list[dict[str, Any]]:
    """One platform process; ``repeats`` fleets per size, smallest first; the median fleet (by
    sessions per second) of each size is kept, with the range of the others."""
    out = []
    with Platform() as platform:
        for n in sizes:
            figs = []
            for _ in range(repeats):
                fleet, server_cpu, other, drops = asyncio.run(_fleet(platform, n))
                figs.append(fleet_figures(fleet, server_cpu, DEFAULT_OFFSETS, other))
                figs[-1]["accept_queue_drops"] = drops
                del fleet
            figs.sort(key=lambda f: f["sessions_per_s"] or 0.0)
            fig = dict(figs[len(figs) // 2])
            fig["repeats"] = repeats
            fig["sessions_per_s_range"] = [figs[0]["sessions_per_s"], figs[-1]["sessions_per_s"]]
            fig["first_event_p99_ms_range"] = sorted(f["first_event_ms"]["p99"] or 0.0 for f in figs)[::max(1, len(figs) - 1)]
            fig["lost_event_sessions_all_repeats"] = sum(f["lost_event_sessions"] for f in figs)
            out.append(fig)
            say(line(fig))
    return out


def find_limit(sizes: list[int], *, say=print, ws_open: float = 10.0) -> list[dict[str, Any]]:
    """Bigger fleets, a fresh platform each, until sessions fail (the point where it breaks)."""
    out = []
    for n in sizes:
        with Platform() as platform:
            t0 = time.perf_counter()
            fleet, server_cpu, other, drops = asyncio.run(_fleet(platform, n, timeouts={
                "http": 10, "ws_open": ws_open, "agent_run": 30, "run": 900}))
            fig = fleet_figures(fleet, server_cpu, DEFAULT_OFFSETS, other)
            fig["accept_queue_drops"] = drops
            fig["ws_open_timeout_s"] = ws_open
            fig["bench_s"] = round(time.perf_counter() - t0, 1)
            out.append(fig)
            say(line(fig))
            if fig["completed"] < n:
                break
    return out


def line(f: dict[str, Any]) -> str:
    fails = {c: k for c, k in f["categories"].items() if c != "ok"}
    return (f"  {f['users']:>5} users: {f['completed']:>5} completed, {f['lost_event_sessions']} with lost events"
            f"{', failures ' + str(fails) if fails else ''}; {f['sessions_per_s']}/s over {f['wall_s']}s; "
            f"first event p50/p99 {f['first_event_ms']['p50']}/{f['first_event_ms']['p99']} ms "
            f"(late by p99 {f['first_event_late_ms']['p99']} ms: platform {f['first_event_late_platform_ms']['p99']}, "
            f"client {f['first_event_late_client_ms']['p99']}); open p99 {f['open_ms']['p99']} ms; "
            f"platform {f['server_core_pct']}% of a core, client {f['client_core_pct']}%, "
            f"client loop lag p99 {f['loop_lag_ms']['p99']} ms, other processes {f['other_processes_core_pct']}%, "
            f"accept-queue drops {f.get('accept_queue_drops')}")
