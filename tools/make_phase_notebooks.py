"""Write the phase notebooks 00, 01 and 02 (stored without outputs). Run: python tools/make_phase_notebooks.py"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from netra_nb.engine import KERNEL_SPEC  # the project's kernel (make installs it; netra-nb run uses its own)

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
            "%matplotlib inline\n"
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
        new_markdown_cell("## Durations\n\nEach check's wall time, coloured by status, the same chart as the run "
                          "report's; the black tick is its SLA (slower than that, but within the deadline, is "
                          "`degraded`). The axis is logarithmic when fast and slow checks sit side by side, so a "
                          "4 ms failure shows next to a 0.5 s pass."),
        new_code_cell("phase.chart()"),
        new_markdown_cell("## The WebSocket sessions\n\nEvery frame on the session's time axis: ▶ sent by the client "
                          "(the request is labelled with its type), ● received from the server, ✕ the close with its "
                          "code, reason and who closed."),
        new_code_cell("for name in " + repr(ws_checks) + ":\n"
                      "    if (figure := phase.frames_chart(name)) is not None:\n"
                      "        display(figure)"),
        new_markdown_cell(f"## Digging deeper by hand\n\n{dig}"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNEL_SPEC)
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



# -- 02 orchestration ---------------------------------------------------------------------------

def orchestration_notebook() -> nbformat.NotebookNode:
    """Phase 02: many users at once. Its handle keeps the fleet of sessions for the table and charts."""
    cells = [
        new_markdown_cell(
            "# Phase 02 — Orchestration\n\n"
            "**Does the platform hold up when many users run agents at the same moment, and does each user see "
            "only their own run?** Every user gets its own token (one E2E call per user with a distinct email, or "
            "one signed token per user; with `auth.method: token` one shared token is all there is, and the "
            "records say so) and its own WebSocket, and all of them start an agent run at once.\n\n"
            "| check | what it establishes |\n|---|---|\n"
            "| `concurrent_agent_runs` | every run delivers the five events and a non-empty result; otherwise it "
            "fails with the dominant category among the sessions, with the count per category in `detail` |\n"
            "| `user_isolation` | no session receives an agent event whose `user_id` or `run_id` is not its own, "
            "and no two users' tokens are welcomed as one identity (`cross_user_leak` otherwise) |\n"
            "| `latency_percentiles` | p50/p95/p99 of the WebSocket open, the first agent event and completion; "
            "`degraded` when the p95 passes the SLA |\n\n"
            "One fleet of sessions is run and judged three ways. Every time is measured on the wire, from the "
            "frames each session received; none is computed from a configured delay. Every session's frames go "
            "to `events.jsonl` (column `session`)."),
        params_cell('users = 0            # users at once; 0: the params file\'s orchestration.users\n'),
        new_code_cell(
            "%matplotlib inline\n"
            "import netra_nb as nb\n"
            "from netra_nb import orchestration as orch\n\n"
            "phase = orch.OrchestrationPhase(env=env, run_dir=run_dir or None, params_file=params_file or None, "
            "users=users)\n"
            'print(f"environment {phase.params.name}: {phase.params.base_url} (token: {phase.params.auth.method}, '
            '{phase.params.auth.placement}); {phase.params.users} users at once")\n'
            "phase.plan()"),
        new_markdown_cell(
            "## Running the fleet\n\nThe tokens come first (not timed as part of the sessions); then every session "
            "opens in the same instant. A progress line appears every second; each check's record is in "
            "`results.jsonl` as soon as it ends, and each check has its deadline from the params file's `timeouts`."),
        new_code_cell("records = phase.run()"),
        new_markdown_cell(
            "## Results\n\nOne row per check. `detail` holds the evidence: sessions per category, own agent "
            "events per session, the peak number of sessions open at once, and how late the client's own event "
            "loop ran (when that is high, the client, not the platform, added to the times)."),
        new_code_cell("phase.table()"),
        new_markdown_cell(
            "## Every session\n\nOne row per user: how long the WebSocket took to open, the time from the request "
            "to the first agent event and to `agent_completed`, how many of its own agent events arrived, and its "
            "category. Failures first, then the slowest; `sessions` holds every row."),
        new_code_cell(
            "sessions = phase.sessions(worst_first=True)\n"
            'display(sessions["category"].value_counts().rename("sessions").to_frame())\n'
            "sessions.head(50)"),
        new_markdown_cell(
            "## Latency distributions\n\nOpen, first agent event and completion over all sessions; solid, dashed "
            "and dotted lines mark p50, p95 and p99."),
        new_code_cell("phase.latency_chart();"),
        new_markdown_cell(
            "## Sessions over time\n\nCumulative opens and completions against seconds since the fleet started; "
            "a crowded platform shows as a long slope instead of a step, a failure as a red ✕ at the time its "
            "session ended."),
        new_code_cell("phase.completions_chart();"),
        new_markdown_cell(
            "## Digging deeper by hand\n\nThe frames of one session (its index in the table), and a bigger or "
            "smaller fleet against any environment:\n\n"
            "```python\nnb.frames_chart([f for f in phase.frames if f.session == 3], title=\"user 3\")\n"
            "big = orch.OrchestrationPhase(env=\"staging\", users=50)\nbig.run(); big.latency_chart()\n```"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNEL_SPEC)
    nb.metadata["language_info"] = {"name": "python"}
    return nb


NOTEBOOKS["02_orchestration.ipynb"] = orchestration_notebook()

if __name__ == "__main__":
    for name, nb in NOTEBOOKS.items():
        # Stable cell ids, so regenerating a notebook changes only what changed.
        for i, cell in enumerate(nb.cells):
            cell.id = f"{name.split('_')[0]}-{i:02d}"
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)
