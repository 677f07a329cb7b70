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

from .categories import CATEGORIES, category_info
from .checks import CHECKS, PHASE_CHECKS
from .diagnosis import findings, golden_path
from .orchestration import OrchestrationPhase  # importing it registers the orchestration checks
from .notebook import CheckResult, Phase, check, duration_chart, frames_chart, records_frame, run_sync
from .params import ConfigError, Params, load_params
from .records import Frame, Record, read_records
from .envfile import load_in_kernel

load_in_kernel()

__all__ = [
    "CATEGORIES", "CHECKS", "PHASE_CHECKS", "CheckResult", "OrchestrationPhase", "ConfigError", "Frame", "Params", "Phase", "Record",
    "category_info", "check", "duration_chart", "findings", "frames_chart", "golden_path", "load_params",
    "read_records", "records_frame", "run_sync",
]
