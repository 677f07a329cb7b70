"""The CLI as a user meets it: exit codes, messages, and the run folder of design.md."""

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kit_helpers import ROOT, SECRET_ENV, write_params

RUN_FILES = ["00_connectivity.ipynb", "01_agent_pipeline.ipynb", "report.ipynb", "report.html", "results.jsonl",
             "results.parquet", "events.parquet", "summary.json", "summary.md", "junit.xml"]


def cli(*args, cwd=ROOT, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "netra_nb.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def run_dir_of(proc) -> Path:
    return Path(proc.stdout.strip().splitlines()[-1])


def test_unknown_environment_exits_2_with_a_clear_message(tmp_path):
    proc = cli("run", "nowhere", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown environment 'nowhere'" in proc.stderr and "local" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing run


def test_malformed_params_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [oops\n")
    proc = cli("run", "bad", "--params", str(bad), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "not valid YAML at line" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_url_scheme_exits_2(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("name: x\nbase_url: ftp://example.invalid\nws_url: ws://example.invalid/ws\n")
    proc = cli("run", "x", "--params", str(f), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "must use http:// or https://" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_missing_secret_exits_2_naming_the_variable(tmp_path, healthy_platform):
    f = write_params(tmp_path / "p.yaml", healthy_platform, auth={"key_env": "NETRA_TEST_NOT_SET"})
    proc = cli("run", "test", "--params", str(f), "--out", str(tmp_path / "out"), env={"NETRA_TEST_NOT_SET": ""})
    assert proc.returncode == 2 and "NETRA_TEST_NOT_SET" in proc.stderr


def test_faults_lists_profiles():
    proc = cli("faults")
    assert proc.returncode == 0 and "ws_1011_after_welcome" in proc.stdout


@pytest.mark.notebook
def test_healthy_run_exits_0_with_every_file(tmp_path, healthy_platform):
    f = write_params(tmp_path / "p.yaml", healthy_platform)
    proc = cli("run", "test", "--params", str(f), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = run_dir_of(proc)
    assert run_dir.parent == (tmp_path / "out" / "test").resolve()
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert rows and all(r["status"] in ("pass", "skip") for r in rows)
    assert all(r["duration_s"] > 0 and r["bytes_received"] > 0 for r in rows if r["status"] == "pass")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["golden_path"] == {"working": True, "blocked_by": None, "phase": None}
    assert summary["counts"].get("fail", 0) == 0 and summary["env"] == "test"
    assert list((run_dir / "charts").glob("*.png"))
    for name in ("00_connectivity.ipynb", "01_agent_pipeline.ipynb"):  # the phase notebooks show their charts
        cells = json.loads((run_dir / name).read_text())["cells"]
        images = [o for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert len(images) >= 2, name
    # a WebSocket session is drawn once: the phase notebook shows the file the report shows
    session = (run_dir / "charts" / "session_connectivity_websocket_connect_0.png").read_bytes()
    shown = [o["data"]["image/png"] for c in json.loads((run_dir / "00_connectivity.ipynb").read_text())["cells"]
             for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert base64.b64encode(session).decode() in ["".join(x.split()) for x in shown]
    # what it said while it ran: what it does, then every check as it ended (read from results.jsonl)
    out = proc.stdout.splitlines()
    assert out[1] == "starting 3 kernels (connectivity, agent_pipeline, orchestration), then the report and artifacts kernels"
    for r in rows:
        assert any(line.split()[:3] == [r["status"].upper(), r["phase"], r["check"]] for line in out), r["check"]
    assert out.index(next(line for line in out if line.startswith("building the report"))) > max(
        i for i, line in enumerate(out) if line.split()[:1] in (["PASS"], ["SKIP"]))


@pytest.mark.notebook
def test_the_run_itself_imports_no_pandas_matplotlib_pyarrow_or_nbconvert(tmp_path, healthy_platform):
    """What the artifacts and the report need is imported once in the zygote, for the kernels that write them:
    the process driving the run stays light (its imports were a second of CPU while the checks ran)."""
    f = write_params(tmp_path / "p.yaml", healthy_platform)
    code = ("import json, sys\nfrom netra_nb.cli import _main\n"
            f"code = _main(['run', 'test', '--params', {str(f)!r}, '--out', {str(tmp_path / 'out')!r}, '--quiet'])\n"
            "heavy = ['pandas', 'matplotlib', 'pyarrow', 'nbconvert', 'numpy']\n"
            "print(json.dumps({'exit': code, 'imported': [m for m in heavy if m in sys.modules]}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    assert json.loads(lines[-1]) == {"exit": 0, "imported": []}
    run_dir = next((tmp_path / "out" / "test").iterdir())
    for name in RUN_FILES:  # written by the kernels instead
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "kit-errors.log").exists()


@pytest.mark.notebook
def test_unreachable_platform_exits_1_with_rows_that_say_so(tmp_path, unused_port):
    f = tmp_path / "gone.yaml"
    f.write_text(f"name: gone\nallow_test_auth: true\nbase_url: http://127.0.0.1:{unused_port}\nws_url: ws://127.0.0.1:{unused_port}/ws\n"
                 f"auth: {{method: local_jwt, secret_env: {SECRET_ENV}}}\ntimeouts: {{http: 2, ws_open: 2, agent_run: 2}}\n")
    proc = cli("run", "gone", "--params", str(f), "--out", str(tmp_path / "out"), "--phase", "connectivity", "--quiet")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdict, counts, folder = proc.stdout.splitlines()  # --quiet: only the final lines
    assert verdict.startswith("The golden path is NOT working") and counts.startswith("checks: 5 fail, 1 skip; report: ")
    rows = [json.loads(line) for line in (run_dir_of(proc) / "results.jsonl").read_text().splitlines()]
    assert rows and all(r["category"] == "connection_refused" for r in rows if r["status"] != "skip")
    summary = json.loads((run_dir_of(proc) / "summary.json").read_text())
    assert summary["golden_path"]["working"] is False


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.notebook
def test_run_local_against_netra_nb_serve(tmp_path):
    """`netra-nb serve` in one process, `netra-nb run local` in another, as the README says."""
    port = _free_port()
    env = {**os.environ, "E2E_OAUTH_SIMULATION_KEY": "serve-key-" + os.urandom(6).hex()}
    server = subprocess.Popen([sys.executable, "-m", "netra_nb.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(f"netra-nb serve did not start: {server.stdout.read() if server.poll() is not None else ''}")
                time.sleep(0.1)
        local = (ROOT / "params" / "local.yaml").read_text().replace("localhost:8000", f"127.0.0.1:{port}")
        (tmp_path / "local.yaml").write_text(local)
        proc = subprocess.run([sys.executable, "-m", "netra_nb.cli", "run", "local", "--params", str(tmp_path / "local.yaml"),
                               "--out", str(tmp_path / "out"), "--phase", "connectivity", "--phase", "agent_pipeline"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert run_dir_of(proc).parent.name == "local"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.notebook
def test_a_phase_whose_kernel_keeps_exiting_is_named_and_the_run_exits_3(tmp_path, healthy_platform, monkeypatch):
    """Spawned kernels (NETRA_NB_FORK=0) that exit before answering, every time: the phase is said not to have
    run, with why, as the run goes (not only in run.json), and the run exits 3 (not every check ran)."""
    from test_engine import _dying_kernels
    _dying_kernels(tmp_path, monkeypatch, die_times=999)
    monkeypatch.setenv("NETRA_NB_FORK", "0")
    f = write_params(tmp_path / "p.yaml", healthy_platform)
    proc = cli("run", "test", "--params", str(f), "--out", str(tmp_path / "out"), "--phase", "connectivity")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "phase connectivity: not run: the connectivity kernel exited before it answered" in proc.stdout
