"""Record a run in-process into a run folder (wire.jsonl included), replay it, compare check for check."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from kit_helpers import KEY_ENV, SECRET_ENV
from netra_nb.checks import PHASE_CHECKS, Context, registry
from netra_nb.params import parse_params
from netra_nb.records import Record
from netra_nb.replay import ReplayServer

PHASES = ("connectivity", "agent_pipeline", "orchestration")
#: Failures that happen before a server sees the request: a replay (a listening server) cannot make them again.
BEFORE_THE_SERVER = {"dns_failure", "connection_refused", "connect_timeout"}


def run_checks(params, run_dir: Path | None, phases=PHASES, run_id: str = "rec") -> list[Record]:
    """The phases' checks, in-process, the phases at once (as the runner's kernels run them)."""
    registry()

    async def phase(name: str) -> list[Record]:
        ctx = Context(params, phase=name, run_id=run_id, run_dir=run_dir)
        try:
            return [await ctx.run(n) for n in PHASE_CHECKS[name]]
        finally:
            await ctx.aclose()

    async def every() -> list[list[Record]]:
        return await asyncio.gather(*(phase(p) for p in phases))

    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    return [r for rows in asyncio.run(every()) for r in rows]


def replay_params(srv: ReplayServer):
    return parse_params(srv.recording.params_dict(srv, key_env=KEY_ENV, secret_env=SECRET_ENV), source="<replay>")


def recorded_verdicts(run_dir: Path) -> dict[tuple[str, str], tuple[str, str]]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]
    return {(r["phase"], r["check"]): (r["status"], r["category"]) for r in rows}


def replay_and_compare(recorded: Path, out: Path | None = None, *, sla_tolerant: bool = False) -> list[str]:
    """Replay a recorded run folder (or corpus entry) with its own params; the differences, one line each.

    ``sla_tolerant``: a check recorded ``pass`` may replay ``degraded`` and the reverse (category ``ok`` both):
    the replay reproduces the recorded delays, and this machine's load adds to them."""
    expected = recorded_verdicts(recorded)
    phases = tuple(p for p in PHASES if any(ph == p for ph, _ in expected))
    with ReplayServer(recorded) as srv:
        got = {(r.phase, r.check): r for r in run_checks(replay_params(srv), out, phases, run_id="replay")}
    problems = []
    for key, (status, category) in sorted(expected.items()):
        r = got.get(key)
        if r is None:
            problems.append(f"{key}: no row in the replay")
        elif category in BEFORE_THE_SERVER:
            if r.status in ("pass", "degraded"):
                problems.append(f"{key}: recorded {status} {category}, replayed as a {r.status}")
        elif sla_tolerant and {r.status, status} <= {"pass", "degraded"} and r.category == category == "ok":
            continue
        elif (r.status, r.category) != (status, category):
            problems.append(f"{key}: recorded {status} {category}, replayed {r.status} {r.category}: "
                            f"{r.message[:200]}")
    return problems
