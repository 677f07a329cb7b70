"""JupyterLab: secrets from serve's env file reach the kernel, tables show, every chart shows once."""

from __future__ import annotations

import os
import stat

import nbformat
import pytest
from kit_helpers import KEY_ENV, write_params
from nbformat.v4 import new_code_cell, new_notebook

from netra_nb.envfile import load_env_file, parse_env_file
from netra_nb.params import ConfigError
from netra_nb.redact import redact


def test_env_file_lines_are_read_as_a_shell_would():
    text = "# written by netra-nb serve\nexport E2E_OAUTH_SIMULATION_KEY=abc123\n\nexport QUOTED='a b'\nPLAIN=x=y\n"
    assert parse_env_file(text) == {"E2E_OAUTH_SIMULATION_KEY": "abc123", "QUOTED": "a b", "PLAIN": "x=y"}
    with pytest.raises(ConfigError, match=r"f.env:2: expected 'export NAME=value'"):
        parse_env_file("export A=1\nexport\n", "f.env")
    with pytest.raises(ConfigError, match=r"f.env:1: not a shell line"):
        parse_env_file("export A='unclosed\n", "f.env")


def test_env_file_fills_only_what_the_environment_lacks(tmp_path):
    path = tmp_path / ".netra-nb.env"
    path.write_text("export NETRA_LAB_A=from-file-secret-1\nexport NETRA_LAB_B=from-file-secret-2\n")
    path.chmod(0o600)
    environ = {"NETRA_LAB_B": "from-env"}
    assert load_env_file(path, environ) == ["NETRA_LAB_A"]
    assert environ == {"NETRA_LAB_A": "from-file-secret-1", "NETRA_LAB_B": "from-env"}  # the environment wins
    assert "from-file-secret-2" not in redact("b=from-file-secret-2")  # every value is a secret
    assert load_env_file(tmp_path / "absent.env", environ) == []


def test_env_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / ".netra-nb.env"
    path.write_text("export NETRA_LAB_C=x\n")
    path.chmod(0o644)
    environ: dict[str, str] = {}
    with pytest.raises(ConfigError, match="chmod 600"):
        load_env_file(path, environ)
    assert environ == {} and stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.notebook
def test_a_kernel_gets_the_key_from_the_env_file_and_shows_each_output_once(platform, tmp_path):
    """The scenario of a JupyterLab user: `netra-nb serve` wrote the key to .netra-nb.env after Lab started,
    so the kernel's environment lacks it; importing netra_nb loads it, and the phase runs."""
    from nbclient import NotebookClient

    srv = platform()
    (tmp_path / "params").mkdir()
    write_params(tmp_path / "params" / "local.yaml", srv)
    env_file = tmp_path / ".netra-nb.env"
    env_file.write_text(f"export {KEY_ENV}={os.environ[KEY_ENV]}\n")
    env_file.chmod(0o600)
    (tmp_path / "notebooks").mkdir()
    sources = ["import netra_nb as nb\nphase = nb.Phase('connectivity', env='local')",
               "phase.run(progress=False)",
               "phase.table()",
               "phase.chart()",
               "phase.frames_chart('websocket_ping')"]
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    kernel_env = {k: v for k, v in os.environ.items() if k not in (KEY_ENV, "NETRA_NB_PARAMS_DIR")}
    client = NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path / "notebooks")}})
    client.execute(env=kernel_env)
    imported, ran, table, chart, frames = nb.cells
    assert any(KEY_ENV in o.get("text", "") and o.get("name") == "stderr" for o in imported.outputs)
    assert os.environ[KEY_ENV] not in nbformat.writes(nb)  # names only, never the value
    assert "text/html" in ran.outputs[0]["data"] and "websocket_ping" in ran.outputs[0]["data"]["text/html"]
    assert "config_error" not in ran.outputs[0]["data"]["text/html"]  # the token checks had their key
    assert "text/html" in table.outputs[0]["data"]
    for cell in (chart, frames):
        assert [o["output_type"] for o in cell.outputs] == ["execute_result"]  # once, not twice
        assert "image/png" in cell.outputs[0]["data"]
