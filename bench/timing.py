"""Timing accuracy: what the kit records against the delays the reference platform injects on purpose.

The platform (its own process) delays the agent events by fixed offsets from the request and every
HTTP answer by a fixed latency. The kit's ``first_event_s`` and completion should then exceed the
first and last offset, and an HTTP check's ``duration_s`` the latency, by a few milliseconds of
transit and scheduling; the error is that excess. Measured with one session (or request) at a time
and with 100 at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from netra_nb import orchestration as orch
from netra_nb.checks import Context
from netra_nb.params import parse_params

from .refplatform import Platform

OFFSETS = (0.2, 0.4, 0.6, 0.8, 1.0)
HTTP_LATENCY = 0.1


def _err(values: list[float], target: float) -> dict[str, Any]:
    errs = [(v - target) * 1000 for v in values]
    p = orch.percentiles(errs, (50, 99))
    return {"n": len(errs), "p50_ms": round(p["p50"], 2) if p["p50"] is not None else None,
            "p99_ms": round(p["p99"], 2) if p["p99"] is not None else None,
            "min_ms": round(min(errs), 2) if errs else None}


async def _agent(params, sequential: int, at_once: int) -> dict[str, Any]:
    ctx = Context(params, phase=orch.PHASE)
    try:
        tokens = await orch.user_tokens(ctx, max(1, at_once))
        one = []
        for _ in range(sequential):
            one.extend((await orch.run_fleet(ctx, 1, tokens=tokens[:1])).sessions)
        many = (await orch.run_fleet(ctx, at_once, tokens=tokens)).sessions
    finally:
        await ctx.aclose()
    out = {}
    for label, sessions in (("1", one), (str(at_once), many)):
        out[label] = {
            "first_event": _err([s.first_event_s for s in sessions if s.first_event_s is not None], OFFSETS[0]),
            "completion": _err([s.completion_s for s in sessions if s.completion_s is not None], OFFSETS[-1]),
            "failed": sum(1 for s in sessions if not s.completed),
        }
    return out


async def _http(params, sequential: int, at_once: int) -> dict[str, Any]:
    ctx = Context(params, phase="connectivity")
    try:
        await ctx.run("health")  # the connection pool warm, as in a phase (its first check pays the connect)
        one = [await ctx.run("health") for _ in range(sequential)]
        many = await asyncio.gather(*(ctx.run("health") for _ in range(at_once)))
    finally:
        await ctx.aclose()
    return {label: {"duration": _err([r.duration_s for r in rs if r.status == "pass"], HTTP_LATENCY),
                    "ttfb": _err([r.ttfb_s for r in rs if r.ttfb_s is not None], HTTP_LATENCY),
                    "failed": sum(1 for r in rs if r.status != "pass")}
            for label, rs in (("1", one), (str(at_once), list(many)))}


def run(*, sequential: int = 20, at_once: int = 100, say=print) -> dict[str, Any]:
    with Platform(offsets=OFFSETS, http_latency=HTTP_LATENCY) as platform:
        params = parse_params(platform.params(), source="<bench>")
        agent = asyncio.run(_agent(params, sequential, at_once))
        http = asyncio.run(_http(params, sequential, at_once))
    result = {"offsets_s": OFFSETS, "http_latency_s": HTTP_LATENCY, "agent": agent, "http": http}
    for label in ("1", str(at_once)):
        a, h = agent[label], http[label]
        say(f"  {label:>3} at once: first event error p50/p99 {a['first_event']['p50_ms']}/{a['first_event']['p99_ms']} ms, "
            f"completion {a['completion']['p50_ms']}/{a['completion']['p99_ms']} ms (n={a['completion']['n']}); "
            f"HTTP check duration {h['duration']['p50_ms']}/{h['duration']['p99_ms']} ms, "
            f"ttfb {h['ttfb']['p50_ms']}/{h['ttfb']['p99_ms']} ms (n={h['duration']['n']})")
    return result
