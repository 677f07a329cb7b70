"""One process vs a Dask LocalCluster (``--cluster local:2``), and how fast tokens come (issue 17).

For each way of running the fleet, fleets of growing size, a fresh reference platform (its own process)
for each, until a fleet loses something or its open p99 passes ``sla.http``: the largest fleet with
nothing lost and the open p99 under the SLA is that way's limit on this machine. Each row: sessions/s,
client CPU per session (one process: the phase's process; a cluster: its workers' processes, plus the
driver's own CPU — the scheduler of a LocalCluster runs there), the loop lag, how late each shard began
after the agreed instant.

Tokens: the time to get 10,000 tokens by local signing (``auth.method local_jwt``) and from the
reference platform's E2E endpoint (``e2e_endpoint``, ``TOKEN_CONCURRENCY`` calls in flight).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from netra_nb import orchestration as orch
from netra_nb.checks import Context
from netra_nb.params import parse_params
from netra_nb.refserver.config import DEFAULT_OFFSETS

from .concurrency import fleet_figures, listen_drops, machine_busy_s
from .refplatform import Platform

MODES = ("", "local:2")  # one process; two worker processes


def _load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


async def _fleet(platform: Platform, n: int, cluster: str, sla_http: float) -> dict[str, Any]:
    # Signed tokens: the fleets measure the sessions; the E2E endpoint's rate is measured apart (tokens_bench).
    params = parse_params(platform.params(
        auth={**platform.params()["auth"], "method": "local_jwt"},
        timeouts={"http": 10, "ws_open": 10, "agent_run": 30, "run": 900},
        orchestration={"users": n, "cluster": cluster}, sla={"http": sla_http, "agent_run": 15.0}), source="<bench>")
    ctx = Context(params, phase=orch.PHASE)
    try:
        tokens = await orch.user_tokens(ctx, n)  # not part of the sessions' time or CPU
        load0 = _load()
        cpu0, busy0, drops0, me0 = platform.cpu_s(), machine_busy_s(), listen_drops(), time.process_time()
        t0 = time.perf_counter()
        fleet = await orch.run_fleet(ctx, n, tokens=tokens)
        total_s = time.perf_counter() - t0
        driver_cpu = time.process_time() - me0 if cluster else 0.0
        server_cpu, busy, drops = platform.cpu_s() - cpu0, machine_busy_s() - busy0, listen_drops() - drops0
    finally:
        await ctx.aclose()
    fig = fleet_figures(fleet, server_cpu, DEFAULT_OFFSETS, max(0.0, busy - server_cpu - fleet.cpu_s - driver_cpu))
    client_cpu = fleet.cpu_s + driver_cpu
    fig.update({
        "mode": cluster or "one process", "accept_queue_drops": drops,
        "driver_cpu_s": round(driver_cpu, 2), "workers_cpu_s": round(fleet.cpu_s, 2) if cluster else None,
        "client_cpu_ms_per_session": round(1000 * client_cpu / n, 2),
        "total_s": round(total_s, 1),  # a cluster: its start and the shards' readiness too
        "shards": fleet.shards, "load": [load0, _load()],
        "open_p99_under_sla": (fig["open_ms"]["p99"] or 1e9) <= sla_http * 1000,
    })
    fig["nothing_lost"] = fig["completed"] == n and fig["lost_event_sessions"] == 0 and fig["foreign_events"] == 0
    return fig


def run(sizes: list[int], *, sla_http: float = 2.0, tokens: bool = True, say=print) -> dict[str, Any]:
    """Each mode's fleets, smallest first, until one loses something (a fleet over the SLA does not stop the
    growth: on a busy machine the SLA may fail at every size while nothing is lost)."""
    rows: list[dict[str, Any]] = []
    largest: dict[str, int | None] = {}
    largest_lossless: dict[str, int | None] = {}
    for cluster in MODES:
        mode = cluster or "one process"
        largest[mode] = largest_lossless[mode] = None
        for n in sizes:
            with Platform() as platform:
                fig = asyncio.run(_fleet(platform, n, cluster, sla_http))
            rows.append(fig)
            say(line(fig))
            if not fig["nothing_lost"]:
                break
            largest_lossless[mode] = n
            if fig["open_p99_under_sla"] and largest[mode] == (sizes[sizes.index(n) - 1] if sizes.index(n) else None):
                largest[mode] = n
    return {"sla_http_s": sla_http, "sizes": sizes, "rows": rows, "largest_ok": largest,
            "largest_nothing_lost": largest_lossless, "tokens": tokens_bench() if tokens else None}


def tokens_bench(n: int = 10_000, say=print) -> dict[str, Any]:
    """Seconds to get ``n`` tokens: signed here, and from the platform's E2E endpoint."""
    out: dict[str, Any] = {"users": n}
    with Platform() as platform:
        for method in ("local_jwt", "e2e_endpoint"):
            data = platform.params(auth={**platform.params()["auth"], "method": method})
            params = parse_params(data, source="<bench>")

            async def go():
                ctx = Context(params, phase=orch.PHASE)
                try:
                    cpu0, t0 = time.process_time(), time.perf_counter()
                    got = await orch.user_tokens(ctx, n)
                    return got, time.perf_counter() - t0, time.process_time() - cpu0
                finally:
                    await ctx.aclose()

            load0 = _load()
            got, wall, cpu = asyncio.run(go())
            ok = sum(1 for u in got if u.token)
            out[method] = {"tokens": ok, "wall_s": round(wall, 2), "per_s": round(ok / wall) if wall else None,
                           "client_cpu_s": round(cpu, 2), "load": [load0, _load()]}
            say(f"  {n} tokens by {method}: {ok} in {wall:.2f}s ({out[method]['per_s']}/s), client CPU {cpu:.2f}s, "
                f"load {load0} → {_load()}")
    out["concurrency"] = orch.TOKEN_CONCURRENCY
    return out


def line(f: dict[str, Any]) -> str:
    fails = {c: k for c, k in f["categories"].items() if c != "ok"}
    late = ", ".join(f"{s['worker']} {s['start_late_ms']:.0f} ms" for s in f["shards"] or [] if not s.get("lost"))
    return (f"  {f['mode']:>11}, {f['users']:>5} users: {f['completed']} completed"
            f"{', failures ' + str(fails) if fails else ''}, {f['lost_event_sessions']} with lost events; "
            f"{f['sessions_per_s']}/s; open p50/p99 {f['open_ms']['p50']}/{f['open_ms']['p99']} ms; client CPU "
            f"{f['client_cpu_ms_per_session']} ms/session (driver {f['driver_cpu_s']} s); loop lag p99 "
            f"{f['loop_lag_ms']['p99']} ms; platform {f['server_core_pct']}% of a core"
            + (f"; shards began {late} after the agreed instant" if late else "")
            + f"; load {f['load'][0]} → {f['load'][1]}")


def markdown(c: dict[str, Any]) -> list[str]:
    out = ["### 3b. One process vs `--cluster local:2` (a fresh platform per fleet)", "",
           f"Largest fleet with nothing lost and the open p99 under sla.http ({c['sla_http_s']} s): "
           + "; ".join(f"{mode}: **{n if n is not None else 'none of ' + str(c['sizes'])}**"
                       for mode, n in c["largest_ok"].items())
           + ("; with nothing lost, whatever the open p99: " + "; ".join(
               f"{mode}: **{n if n is not None else 'none'}**" for mode, n in c["largest_nothing_lost"].items())
              if c.get("largest_nothing_lost") else "") + ".", "",
           "| how | users | completed | sessions with ≠ 5 events | sessions/s | open p50 / p99 ms | completion p99 ms "
           "| client CPU ms / session | driver CPU s | client loop lag p99 ms | shards' start after the instant ms "
           "| platform % core | other processes % core | load before → after |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for f in c["rows"]:
        fails = {k: n for k, n in f["categories"].items() if k != "ok"}
        late = ", ".join(f"{s['start_late_ms']:.0f}" for s in f["shards"] or [] if not s.get("lost")) or "—"
        out.append(f"| {f['mode']} | {f['users']} | {f['completed']}{' ' + str(fails) if fails else ''} | "
                   f"{f['lost_event_sessions']} | {f['sessions_per_s']} | {f['open_ms']['p50']} / {f['open_ms']['p99']} | "
                   f"{f['completion_ms']['p99']} | {f['client_cpu_ms_per_session']} | {f['driver_cpu_s']} | "
                   f"{f['loop_lag_ms']['p99']} | {late} | {f['server_core_pct']} | {f['other_processes_core_pct']} | "
                   f"{f['load'][0]} → {f['load'][1]} |")
    t = c.get("tokens") or {}
    if not t:
        return out + [""]
    out += ["", f"Client CPU of a cluster fleet: its workers' processes while their sessions ran, plus the driver "
                f"(this process, where a LocalCluster's scheduler runs). Tokens for {t['users']} users: "
            + "; ".join(f"{m} {t[m]['tokens']} in {t[m]['wall_s']} s ({t[m]['per_s']}/s, client CPU "
                        f"{t[m]['client_cpu_s']} s, load {t[m]['load'][0]} → {t[m]['load'][1]})"
                        for m in ("local_jwt", "e2e_endpoint"))
            + f" ({t['concurrency']} E2E calls in flight).", ""]
    return out
