"""Write the phase notebooks 00 and 01 (stored without outputs). Run: python tools/make_phase_notebooks.py"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent.parent / "notebooks"


def params_cell(extra: str = "") -> nbformat.NotebookNode:
    cell = new_code_cell(
        "# Parameters (papermill overrides them). Secrets are never parameters: they come from the\n"
        "# environment variables that params/<env>.yaml names.\n"
        'env = "local"        # params/<env>.yaml\n'
        'run_dir = ""         # the run folder; empty: nothing is written (exploring by hand)\n'
        'params_file = ""     # a params file to use instead of params/<env>.yaml\n' + extra)
    cell.metadata["tags"] = ["parameters"]
    return cell


def phase_notebook(phase: str, title: str, intro: str, dig: str, ws_checks: list[str]) -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(f"# {title}\n\n{intro}"),
        params_cell(),
        new_code_cell(
            "import netra_nb as nb\n\n"
            f'phase = nb.Phase("{phase}", env=env, run_dir=run_dir or None, params_file=params_file or None)\n'
            'print(f"environment {phase.params.name}: {phase.params.base_url} (token: {phase.params.auth.method}, '
            '{phase.params.auth.placement})")\n'
            "phase.plan()"),
        new_markdown_cell(
            "## Running the checks\n\nEach line appears as its check ends, and its record is already in "
            "`results.jsonl`: a run stopped here keeps what it has. Every check has a deadline from the "
            "params file's `timeouts`, so none can hang this notebook."),
        new_code_cell("records = phase.run()"),
        new_markdown_cell(
            "## Results\n\nOne row per check, failures first. A check passes only on the contract's evidence "
            "(the status and the body's keys, or the frames); `bytes_received` shows it touched the network."),
        new_code_cell("phase.table()"),
        new_markdown_cell("## Durations\n\nEach check's wall time, coloured by status; the dashed mark is its SLA "
                          "(slower than that, but within the deadline, is `degraded`)."),
        new_code_cell("phase.chart();"),
        new_markdown_cell("## The WebSocket sessions\n\nEvery frame sent (▲) and received (●), on the session's "
                          "time axis; a close (✕) is labelled with its code and reason."),
        new_code_cell("for name in " + repr(ws_checks) + ":\n"
                      "    if any(r.check == name for r in records):\n"
                      "        phase.frames_chart(name)"),
        new_markdown_cell(f"## Digging deeper by hand\n\n{dig}"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


NOTEBOOKS = {
    "00_connectivity.ipynb": phase_notebook(
        "connectivity", "Phase 00 — Connectivity",
        "Does the platform answer at all, and does its WebSocket let us in?\n\n"
        "| check | what it establishes |\n|---|---|\n"
        "| `health` | `GET /health` is 200 `healthy`: the backend started |\n"
        "| `api_health` | `GET /api/health` is 200 `healthy`; `degraded` means Redis or the database is down |\n"
        "| `service_discovery` | `GET /api/discovery/services` lists backend and auth |\n"
        "| `auth_token` | the auth service's E2E endpoint gives a token (E2E method only) |\n"
        "| `websocket_connect` | the WebSocket accepts the token and sends its welcome |\n"
        "| `websocket_ping` | a JSON ping gets a pong: the session's message loop is alive |\n\n"
        "When the WebSocket upgrade is refused with 401/403, the kit runs differential probes (no token, a "
        "wrong token, an HTTP GET on the same path) to tell a missing route from rejected credentials.",
        "Re-run one check against any environment, and look at its frames:\n\n"
        "```python\nresult = nb.check(\"websocket_connect\", env=\"staging\")\nresult          # the record as a table\n"
        "result.chart()  # its frames on a time axis\n```",
        ["websocket_connect", "websocket_ping"]),
    "01_agent_pipeline.ipynb": phase_notebook(
        "agent_pipeline", "Phase 01 — Agent pipeline",
        "**Does an agent actually start and return results?** This phase answers the golden-path question "
        "with a real agent run over the WebSocket, and checks the HTTP endpoints that discover and configure "
        "agents.\n\n"
        "| check | what it establishes |\n|---|---|\n"
        "| `agent_discovery` | `GET /api/mcp/servers` lists the agent servers |\n"
        "| `agent_configuration` | `GET /api/mcp/config` has the client configurations |\n"
        "| `agent_status` | `GET /api/agents/status` lists the agents |\n"
        "| `agent_execute` | `POST /api/agents/execute` answers status, agent and response |\n"
        "| `agent_run` | a start request yields the five events (`agent_started` → `agent_thinking` → "
        "`tool_executing` → `tool_completed` → `agent_completed`) and a non-empty result |\n"
        "| `ws_invalid_json` | invalid JSON gets an `error_message` frame, not silence |\n"
        "| `ws_empty_request` | an empty request gets `Please enter a message` |\n\n"
        "The agent run passes only on the platform's own frames: nothing is replayed or mocked, and a run "
        "that stays silent, closes, errors or leaks another user's events fails with its category.",
        "Re-run the agent run alone and look at its frames:\n\n"
        "```python\nrun = nb.check(\"agent_run\", env=\"staging\")\nrun\nrun.chart()\n```",
        ["agent_run", "ws_invalid_json", "ws_empty_request"]),
}

if __name__ == "__main__":
    for name, nb in NOTEBOOKS.items():
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)
