"""The same checks as ``netra-nb run``, directly in one Python process: no papermill, no kernels, no report.

``python -m bench.direct PARAMS_FILE RUN_DIR [--concurrent]`` prints one JSON line: the import time and
each phase's time. ``--concurrent`` runs the phases at the same time on one event loop (the lower
bound for a run: the slowest phase alone).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


def main(argv: list[str]) -> int:
    t0 = time.perf_counter()
    import netra_nb  # noqa: F401 - timed: what a kernel imports
    from netra_nb.checks import PHASE_CHECKS, Context, registry
    from netra_nb.notebook import Phase
    from netra_nb.params import load_params

    registry()  # every phase's checks, the orchestration module's included
    import_s = time.perf_counter() - t0
    params_file, run_dir = argv[0], argv[1]
    phases = ["connectivity", "agent_pipeline", "orchestration"]
    params = load_params(path=params_file)
    times: dict[str, float] = {}
    counts: dict[str, int] = {}
    if "--concurrent" in argv:
        async def one(phase: str) -> None:
            t = time.perf_counter()
            ctx = Context(params, phase=phase, run_dir=run_dir)
            try:
                for name in PHASE_CHECKS[phase]:
                    r = await ctx.run(name)
                    counts[r.status] = counts.get(r.status, 0) + 1
            finally:
                await ctx.aclose()
            times[phase] = round(time.perf_counter() - t, 3)

        async def all_phases() -> None:
            await asyncio.gather(*(one(p) for p in phases))

        asyncio.run(all_phases())
    else:
        for phase in phases:
            t = time.perf_counter()
            for r in Phase(phase, params=params, run_dir=run_dir).run(progress=False):
                counts[r.status] = counts.get(r.status, 0) + 1
            times[phase] = round(time.perf_counter() - t, 3)
    print(json.dumps({"import_s": round(import_s, 3), "phases_s": times, "counts": counts,
                      "total_s": round(time.perf_counter() - t0, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
