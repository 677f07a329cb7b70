"""The reference platform in a process of its own, so that the client's and the platform's CPU are
measured apart and never share a GIL.

``python -m bench.refplatform [--offsets 0.15,0.45,0.8,1.1,1.4] [--http-latency S] [--era mid]`` prints one
JSON line (``base_url``, ``ws_url``, ``pid``) once it accepts connections, and serves until SIGTERM.
Its secrets come from ``NETRA_BENCH_JWT_SECRET`` and ``NETRA_BENCH_E2E_KEY``. (``python -m
netra_nb.refserver`` has no flag for the event offsets or the HTTP latency, hence this.)

:class:`Platform` starts it from the parent, reads its CPU time from ``/proc``, and stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

KEY_ENV = "NETRA_BENCH_E2E_KEY"
SECRET_ENV = "NETRA_BENCH_JWT_SECRET"


def main(argv: list[str] | None = None) -> int:
    from netra_nb.refserver import RefServer, ServerConfig

    ap = argparse.ArgumentParser(prog="python -m bench.refplatform")
    ap.add_argument("--offsets", help="seconds from the request to each of the five agent events")
    ap.add_argument("--http-latency", type=float, default=0.0)
    ap.add_argument("--era", default="mid")
    ap.add_argument("--fault", default="")
    args = ap.parse_args(argv)
    kw = {}
    if args.offsets:
        kw["agent_event_offsets"] = tuple(float(x) for x in args.offsets.split(","))
    config = ServerConfig(era=args.era, faults=args.fault, http_latency=args.http_latency,
                          jwt_secret=os.environ[SECRET_ENV], e2e_key=os.environ[KEY_ENV], **kw)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with RefServer(config) as srv:
        print(json.dumps({"base_url": srv.base_url, "ws_url": srv.ws_url, "pid": os.getpid()}), flush=True)
        done.wait()
    return 0


class Platform:
    """``with Platform(offsets=…, http_latency=…) as p: p.base_url, p.cpu_s()``."""

    def __init__(self, *, offsets: tuple[float, ...] | None = None, http_latency: float = 0.0, era: str = "mid") -> None:
        os.environ.setdefault(KEY_ENV, "bench-key-" + secrets.token_hex(12))
        os.environ.setdefault(SECRET_ENV, "bench-secret-" + secrets.token_hex(24))
        self.offsets = offsets
        self.http_latency = http_latency
        cmd = [sys.executable, "-m", "bench.refplatform", "--http-latency", str(http_latency), "--era", era]
        if offsets:
            cmd += ["--offsets", ",".join(str(x) for x in offsets)]
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=root,
                                     env={**os.environ, "PYTHONPATH": str(root)})
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the reference platform did not start (exit {self.proc.wait()})")
        info = json.loads(line)
        self.base_url, self.ws_url, self.pid = info["base_url"], info["ws_url"], info["pid"]

    def cpu_s(self) -> float:
        """User + system CPU seconds the platform's process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def params(self, **overrides):
        """Params (as a dict, for params files too) pointing at this platform: E2E tokens, generous timeouts."""
        data = {
            "name": "local", "base_url": self.base_url, "ws_url": self.ws_url, "auth_url": self.base_url,
            "allow_test_auth": True,
            "auth": {"method": "e2e_endpoint", "key_env": KEY_ENV, "secret_env": SECRET_ENV, "placement": "header"},
            "timeouts": {"http": 10, "ws_open": 10, "agent_run": 30, "run": 900},
            "agent": {"message_type": "start_agent", "request": "Analyze test data for pipeline validation"},
            "orchestration": {"users": 5},
            "sla": {"http": 2.0, "agent_run": 15.0},
        }
        data.update(overrides)
        return data

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "Platform":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
