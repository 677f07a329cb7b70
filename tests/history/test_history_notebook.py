"""`netra-nb history`: notebook 91 executed with papermill over a small real history."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from history_helpers import T0, make_run

from netra_nb import history as h


def test_no_history_is_a_usage_error_with_a_clear_message(tmp_path, capsys):
    assert h.history_main(None, tmp_path / "outputs") == 2
    err = capsys.readouterr().err
    assert "no history" in err and "_history" in err
    assert h.history_main("staging", tmp_path) == 2
    assert "for env 'staging'" in capsys.readouterr().err
    assert not (tmp_path / "outputs" / "_history").exists()


@pytest.mark.notebook
def test_history_notebook_runs_and_shows_every_section(tmp_path, capsys):
    out = tmp_path / "outputs"
    for i, ping in enumerate("PPFPFPPF"):
        for env in ("staging", "production"):
            run = make_run(out, env, T0 + timedelta(minutes=5 * i),
                           {"health": "P", "websocket_ping": ping if env == "staging" else "P",
                            "agent_run": "F" if (env == "staging" and i >= 5) else "P"}, run_id=f"{env[:4]}{i}")
            h.append_run(run, out)
    assert h.history_main(None, out) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    notebook = out.resolve() / "_history" / printed[-1].rsplit("/", 1)[1]
    assert printed[-1] == str(notebook) and notebook.name.startswith("report-") and notebook.suffix == ".ipynb"
    nb = json.loads(notebook.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # durations, pass rate, flaky, environments
    text = json.dumps(nb)
    assert "websocket_ping" in text and "agent_run" in text and "production" in text
    html = notebook.with_suffix(".html").read_text()
    assert "data:image/png;base64" in html and "load_history(" not in html  # no code cells
