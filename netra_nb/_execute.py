"""Child process of the runner: execute one notebook with papermill.

``python -m netra_nb._execute IN OUT PARAMETERS_JSON CELL_TIMEOUT``; exits 0 when every cell ran,
1 when a cell raised (papermill has written OUT with its error banner), 3 when papermill itself failed.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    nb_in, nb_out, parameters, timeout = argv[0], argv[1], json.loads(argv[2]), float(argv[3])
    os.environ.setdefault("MPLBACKEND", "Agg")
    from netra_nb.redact import redact, register_env_secrets

    register_env_secrets()
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    try:
        pm.execute_notebook(nb_in, nb_out, parameters=parameters, kernel_name="python3",
                            execution_timeout=timeout, progress_bar=False, log_output=False,
                            request_save_on_cell_execute=True)
    except PapermillExecutionError as exc:
        print(redact(f"{os.path.basename(nb_in)}: cell {exc.exec_count} raised {exc.ename}: {exc.evalue}"), file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - report and let the runner classify
        print(redact(f"{os.path.basename(nb_in)}: papermill failed: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
