"""An echoing platform against a whole run: no secret, and no piece of one, reaches any file of the
run folder, including the bypass key a local_jwt run names but never uses; and the last pass of
``finalize_run`` removes what slipped into a file by another way."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kit_helpers import ROOT, SECRET_ENV
from leaky import LeakyPlatform
from netra_nb.redact import JWT_PATTERN, REDACTED, register_secret

PIECE = 8


def _texts(folder: Path) -> dict[str, str]:
    """Every file of a folder as text (Parquet: every value of every column)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            out[path.name] = json.dumps(pq.read_table(path).to_pylist(), default=str)
        else:
            out[path.name] = path.read_bytes().decode("utf-8", "replace")
    return out


def leaks(folder: Path, values: list[str]) -> list[str]:
    """Where a piece (8 characters) of one of ``values``, or a JWT, is in a file of ``folder``."""
    found = []
    for name, text in _texts(folder).items():
        for value in values:
            hits = {value[i:i + PIECE] for i in range(len(value) - PIECE + 1)} & {
                text[i:i + PIECE] for i in range(len(text) - PIECE + 1)}
            if hits:
                found.append(f"{name}: {sorted(hits)[0]!r}")
        if JWT_PATTERN.search(text):
            found.append(f"{name}: a JWT")
    return found


def _leaky_params(srv: LeakyPlatform, key_env: str, token_env: str) -> dict:
    return {"name": "leaky", "base_url": srv.http_url, "ws_url": srv.ws_url, "allow_test_auth": True,
            "auth": {"method": "local_jwt", "secret_env": SECRET_ENV, "key_env": key_env, "token_env": token_env},
            "timeouts": {"http": 3, "ws_open": 3, "agent_run": 3, "run": 240}, "orchestration": {"users": 2}}


@pytest.fixture
def unused_credentials(monkeypatch):
    """A bypass key and a ready token in the variables the params name, which a local_jwt run never uses
    (names that do not look secret: only the params naming them makes them secrets)."""
    key = "bypass-" + secrets.token_urlsafe(18)
    token = "ready-" + secrets.token_hex(20)
    monkeypatch.setenv("NB_LEAKY_E2E", key)
    monkeypatch.setenv("NB_LEAKY_READY", token)
    return key, token


def test_an_echoing_platform_gets_no_secret_into_any_file(tmp_path, unused_credentials):
    from netra_nb.notebook import Phase
    from netra_nb.orchestration import OrchestrationPhase
    from netra_nb.params import parse_params
    from netra_nb.runner import finalize_run

    key, token = unused_credentials
    run_dir = tmp_path / "run"
    with LeakyPlatform([key, token, os.environ[SECRET_ENV]]) as srv:
        params = parse_params(_leaky_params(srv, "NB_LEAKY_E2E", "NB_LEAKY_READY"), source="<leaky>")
        records = []
        for phase in ("connectivity", "agent_pipeline"):
            records += Phase(phase, params=params, run_dir=str(run_dir)).run(progress=False)
        records += OrchestrationPhase(params=params, run_dir=str(run_dir)).run(progress=False)
    # The platform's echo reached the records: the redaction had work to do. The health body is cut
    # at 600 characters, inside the secret: what is left is the start of the marker, not of the key.
    [health] = [r for r in records if r.check == "health"]
    assert health.detail.endswith("x[RED") and key[:4] not in health.detail
    assert any(REDACTED in r.detail for r in records if r.check == "service_discovery")
    assert any(REDACTED in r.message for r in records if r.check == "agent_discovery")
    frames = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert any(REDACTED in f["text"] for f in frames if f["type"] == "connection_established")
    assert any(f["type"] == "error_message" and f["size"] > 2000 for f in frames)
    # At the source: the rows and frames as the checks wrote them, before any last pass.
    assert leaks(run_dir, [key, token, os.environ[SECRET_ENV]]) == []
    finalize_run(run_dir, report=False)
    assert {"results.parquet", "events.parquet", "junit.xml", "summary.md"} <= {p.name for p in run_dir.iterdir()}
    assert leaks(run_dir, [key, token, os.environ[SECRET_ENV]]) == []


def test_finalize_removes_a_secret_that_reached_a_file_another_way(tmp_path):
    from netra_nb.records import append_jsonl
    from netra_nb.runner import finalize_run

    secret = "late-" + secrets.token_hex(16)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    append_jsonl(run_dir / "results.jsonl", [{
        "run_id": "r1", "env": "e", "phase": "connectivity", "check": "health", "status": "fail",
        "category": "http_unavailable", "started_at": "2026-01-01T00:00:00.000Z", "duration_s": 0.2,
        "message": f"HTTP 503 with {secret}", "detail": f"body: {secret}", "bytes_received": 10}])
    (run_dir / "papermill.log").write_text(f"Traceback: {secret}\n")
    nb = {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "execution_count": 1,
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": f"{secret}\n"}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (run_dir / "00_connectivity.ipynb").write_text(json.dumps(nb))
    register_secret(secret)  # known to the process, as a key from the environment is

    finalize_run(run_dir, report=False)

    assert leaks(run_dir, [secret]) == []
    row = json.loads((run_dir / "results.jsonl").read_text())
    assert row["detail"] == f"body: {REDACTED}" and row["check"] == "health"
    assert json.loads((run_dir / "00_connectivity.ipynb").read_text())["cells"][0]["outputs"][0]["text"] == f"{REDACTED}\n"


@pytest.mark.notebook
def test_a_cli_run_against_an_echoing_platform_leaves_no_secret(tmp_path):
    """The real path: the CLI, one kernel per phase, the report; each process registers what the params name."""
    import yaml

    key, token = "bypass-" + secrets.token_urlsafe(18), "ready-" + secrets.token_hex(20)
    with LeakyPlatform([key, token, os.environ[SECRET_ENV]]) as srv:
        f = tmp_path / "leaky.yaml"
        f.write_text(yaml.safe_dump(_leaky_params(srv, "NB_LEAKY_E2E", "NB_LEAKY_READY")))
        proc = subprocess.run([sys.executable, "-m", "netra_nb.cli", "run", "leaky", "--params", str(f), "--out",
                               str(tmp_path / "out"), "--phase", "connectivity", "--phase", "agent_pipeline"],
                              cwd=ROOT, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "NB_LEAKY_E2E": key, "NB_LEAKY_READY": token})
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the platform fails its checks
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert (run_dir / "report.html").is_file() and (run_dir / "01_agent_pipeline.ipynb").is_file()
    assert leaks(run_dir, [key, token, os.environ[SECRET_ENV]]) == []
    assert not any(v in proc.stdout + proc.stderr for v in (key, token))
