"""`python -m netra_nb.refserver` / serve_main: URLs and secrets printed, runs until SIGTERM/SIGINT."""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from netra_nb.refserver import serve_main

SECRET_ENVS = ("JWT_SECRET_KEY", "JWT_SECRET_STAGING", "E2E_OAUTH_SIMULATION_KEY")
#: generous: a cold interpreter start-up on a busy machine
READY_S = 120.0  # a fresh interpreter importing uvicorn took over 30 s at load 60-80
#: the serve loop notices a signal within 0.5 s, then stop() allows open requests shutdown_timeout
#: (1 s by default); generous on top of that
STOP_S = 10.0


def _pump(stream, sink) -> None:
    """Forward a pipe's lines to ``sink`` until EOF (so the child never blocks on a full pipe)."""
    for line in stream:
        sink(line.rstrip("\n"))
    stream.close()


def _start(args: list[str], env_extra: dict[str, str] | None = None, cwd=None) -> tuple[subprocess.Popen, list[str]]:
    """Start the CLI and wait, at most READY_S, for its ready line; its stdout up to that line.  Without
    ``cwd`` it runs with --no-env-file (the tests of the env file give it a directory of their own)."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENVS}
    env.update(env_extra or {})
    if cwd is None:
        args = ["--no-env-file", *args]
    proc = subprocess.Popen(
        [sys.executable, "-m", "netra_nb.refserver", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )
    out: queue.Queue[str | None] = queue.Queue()
    err: list[str] = []
    threading.Thread(target=lambda: (_pump(proc.stdout, out.put), out.put(None)), daemon=True).start()
    err_pump = threading.Thread(target=_pump, args=(proc.stderr, err.append), daemon=True)
    err_pump.start()
    lines: list[str] = []
    deadline = time.monotonic() + READY_S
    try:
        while True:
            line = out.get(timeout=max(0.0, deadline - time.monotonic()))  # queue.Empty at the deadline
            if line is None:
                break  # the child closed its stdout (it exited)
            lines.append(line)
            if "Ctrl+C" in line:
                return proc, lines
    except queue.Empty:
        pass
    proc.kill()
    proc.wait(STOP_S)
    err_pump.join(STOP_S)
    pytest.fail(f"the server printed no ready line (waited at most {READY_S:g}s; exit code {proc.returncode}); "
                f"stdout: {lines}; stderr: {err}")


def _stop(proc: subprocess.Popen, sig: int) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(STOP_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not stop within {STOP_S:g}s of signal {sig}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_generates_and_prints_secrets(sig):
    proc, lines = _start(["--fault", "agent_error,http_mcp_500", "--agent-seconds", "0.2"])
    try:
        text = "\n".join(lines)
        base_url = re.search(r"base_url:\s+(http://127\.0\.0\.1:\d+)", text).group(1)
        assert re.search(r"ws_url:\s+ws://127\.0\.0\.1:\d+/ws", text)
        assert re.search(r"auth_url:\s+http://127\.0\.0\.1:\d+", text)
        exports = dict(re.findall(r"export (\w+)=(\S+)", text))
        assert set(exports) == set(SECRET_ENVS)
        assert exports["JWT_SECRET_KEY"] == exports["JWT_SECRET_STAGING"]
        assert httpx.get(base_url + "/health").json()["status"] == "healthy"
        assert httpx.get(base_url + "/api/mcp/servers").status_code == 500
        r = httpx.post(base_url + "/auth/e2e/test-auth", headers={"X-E2E-Bypass-Key": exports["E2E_OAUTH_SIMULATION_KEY"]})
        assert r.status_code == 200
    finally:
        rc = _stop(proc, sig)  # fails unless it stops within STOP_S
    assert rc == 0


def test_serve_takes_secrets_from_the_environment():
    env = {"JWT_SECRET_STAGING": "s" * 40, "E2E_OAUTH_SIMULATION_KEY": "k" * 40}
    proc, lines = _start(["--era", "october"], env)
    try:
        text = "\n".join(lines)
        assert "export" not in text
        assert "s" * 40 not in text and "k" * 40 not in text
        base_url = re.search(r"base_url:\s+(\S+)", text).group(1)
        r = httpx.post(base_url + "/auth/e2e/test-auth", headers={"X-E2E-Bypass-Key": "k" * 40})
        assert r.status_code == 200
    finally:
        assert _stop(proc, signal.SIGTERM) == 0


def test_serve_rejects_unknown_fault(capsys):
    assert serve_main(["--fault", "ws_1011_after_welcome,not_a_fault", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "not_a_fault" in err and "ws_drop_1006" in err


def test_serve_rejects_bad_usage(capsys):
    assert serve_main(["--era", "november"]) == 2
    assert serve_main(["--port", "0", "--agent-seconds", "0"]) == 2


# ---------------------------------------------------------------------------- the env file


def _sourced(path, *names: str) -> dict[str, str]:
    """The variables ``names`` after a POSIX shell sourced ``path`` (the way a user loads it)."""
    script = f". {shlex.quote(str(path))}; " + "; ".join(f'printf "%s\\n" "${n}"' for n in names)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]})
    return dict(zip(names, out.stdout.splitlines()))


def test_serve_writes_the_env_file_for_another_process(tmp_path):
    proc, lines = _start([], cwd=tmp_path)
    path = tmp_path / ".netra-nb.env"
    try:
        text = "\n".join(lines)
        exports = dict(re.findall(r"export (\w+)=(\S+)", text))
        assert ".netra-nb.env" in text
        assert path.stat().st_mode & 0o777 == 0o600
        assert _sourced(path, *SECRET_ENVS) == {n: exports[n] for n in SECRET_ENVS}
        base_url = re.search(r"base_url:\s+(\S+)", text).group(1)
        assert base_url in path.read_text()
    finally:
        assert _stop(proc, signal.SIGTERM) == 0
    assert not path.exists()  # its secrets are worthless once the server is gone


def test_env_file_holds_secrets_from_the_environment_too(tmp_path):
    target = tmp_path / "sub" / "netra.env"
    target.parent.mkdir()
    target.write_text("old content\n")
    target.chmod(0o644)
    env = {"JWT_SECRET_KEY": "s" * 40, "E2E_OAUTH_SIMULATION_KEY": "k'ey with space"}
    proc, lines = _start(["--env-file", str(target)], env, cwd=tmp_path)
    try:
        assert "export" not in "\n".join(lines)  # nothing was generated, so nothing printed
        assert target.stat().st_mode & 0o777 == 0o600  # an existing file is tightened too
        assert _sourced(target, *SECRET_ENVS) == {
            "JWT_SECRET_KEY": "s" * 40, "JWT_SECRET_STAGING": "s" * 40, "E2E_OAUTH_SIMULATION_KEY": "k'ey with space"}
    finally:
        assert _stop(proc, signal.SIGTERM) == 0
    assert not target.exists()


def test_no_env_file_writes_nothing(tmp_path):
    proc, lines = _start(["--no-env-file"], cwd=tmp_path)
    try:
        assert list(tmp_path.iterdir()) == []
        assert "env file" not in "\n".join(lines)
    finally:
        assert _stop(proc, signal.SIGTERM) == 0


def test_an_env_file_that_cannot_be_written_is_a_usage_error(tmp_path, capsys):
    target = tmp_path / "missing-dir" / "x.env"
    assert serve_main(["--port", "0", "--env-file", str(target)]) == 2
    err = capsys.readouterr().err
    assert str(target) in err and "--no-env-file" in err


def test_netra_nb_serve_passes_the_env_file_options_on(tmp_path, capsys):
    from netra_nb.cli import main

    target = tmp_path / "missing-dir" / "x.env"
    assert main(["serve", "--port", "0", "--env-file", str(target)]) == 2
    assert str(target) in capsys.readouterr().err
