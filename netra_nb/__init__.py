"""netra-nb: investigation notebooks for the Netra agent platform's staging phases.

The public surface for notebooks and for an engineer in JupyterLab::

    import netra_nb as nb
    nb.check("agent_run", env="staging")          # re-run one check; shows as a table
    phase = nb.Phase("connectivity", env="local")  # a phase's checks, with progress
    phase.run()                                    # shows as the results table
    phase.chart()                                  # the durations, once

Imported in a Jupyter kernel, it sets the secrets ``netra-nb serve`` wrote to ``.netra-nb.env``
(see :mod:`netra_nb.envfile`) that the kernel's environment lacks.
"""

import sys
from importlib import import_module
from typing import Any

# jsonschema (imported by nbformat, so by nbclient and nbconvert) imports ``rfc3987_syntax`` when it is
# installed, and that module builds an Earley parser at import: 0.8-2.7 s of CPU in every process that
# executes or exports a notebook (the runner, the zygote, the report's kernel), for the "iri" string format
# that no notebook schema uses. Marked absent, jsonschema skips that format.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from .envfile import load_in_kernel

#: Each public name and the module it comes from, imported when the name is first used: ``netra-nb``
#: itself imports this package before anything else, and must be able to start its kernels' zygote
#: before it pays for the checks' imports (httpx, websockets, the judges).
_PUBLIC = {
    "CATEGORIES": "categories", "category_info": "categories",
    "CHECKS": "checks", "PHASE_CHECKS": "checks",
    "findings": "diagnosis", "golden_path": "diagnosis",
    "OrchestrationPhase": "orchestration",
    "CheckResult": "notebook", "Phase": "notebook", "check": "notebook", "duration_chart": "notebook",
    "frames_chart": "notebook", "records_frame": "notebook", "run_sync": "notebook",
    "ConfigError": "params", "Params": "params", "load_params": "params",
    "Frame": "records", "Record": "records", "read_records": "records",
}


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'netra_nb' has no attribute {name!r}")
    if module == "checks":
        import_module(".orchestration", __name__)  # it registers the orchestration phase's checks
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


load_in_kernel()

__all__ = sorted(_PUBLIC)
