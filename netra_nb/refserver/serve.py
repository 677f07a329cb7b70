"""``netra-nb serve`` / ``python -m netra_nb.refserver``: serve the reference platform until
SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import signal
import sys
import threading
from pathlib import Path

from .config import ERAS, ServerConfig
from .faults import FAULTS
from .server import RefServer

__all__ = ["serve_main", "build_parser", "write_env_file", "ENV_FILE"]

JWT_ENVS = ("JWT_SECRET_STAGING", "JWT_SECRET_KEY")  # the contract's order
E2E_ENV = "E2E_OAUTH_SIMULATION_KEY"
#: Where `netra-nb serve` writes its env file unless told otherwise (relative to the working directory).
ENV_FILE = ".netra-nb.env"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="netra-nb serve",
        description="Serve the Netra reference platform (backend, auth service and WebSocket on one port).",
        epilog="Fault profiles: " + ", ".join(FAULTS) + ".  Secrets come from JWT_SECRET_KEY "
        "(or JWT_SECRET_STAGING) and E2E_OAUTH_SIMULATION_KEY; unset ones are generated and printed.",
    )
    p.add_argument("--era", choices=ERAS, default="mid", help="session shapes (default: mid)")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="P1,P2",
        help="fault profile(s), comma-separated; may be repeated (see `netra-nb faults`)",
    )
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port; default 8000)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--agent-seconds",
        type=float,
        default=None,
        metavar="S",
        help="seconds from the request to agent_completed (default 1.4)",
    )
    p.add_argument("--fault-delay", type=float, default=None, metavar="S", help="delay of the delayed faults (default 1)")
    p.add_argument("--heartbeat", type=float, default=None, metavar="S", help="heartbeat interval (default 5)")
    env = p.add_mutually_exclusive_group()
    env.add_argument(
        "--env-file",
        default=ENV_FILE,
        metavar="PATH",
        help=f"write the secrets this server accepts as shell 'export NAME=value' lines ({', '.join(JWT_ENVS)}, "
        f"{E2E_ENV}) to PATH, mode 0600, so a client in another process (a JupyterLab kernel, "
        f"`source {ENV_FILE}`) can use them; removed again when the server stops (default: {ENV_FILE} in the "
        "current directory)",
    )
    env.add_argument("--no-env-file", action="store_true", help="write no env file")
    return p


def env_file_text(base_url: str, ws_url: str, jwt_secret: str, e2e_key: str) -> str:
    """The env file's content: a comment naming the server, then one ``export NAME=value`` line per
    secret, each value quoted for the shell (generated ones are URL-safe and need no quotes)."""
    lines = [
        "# netra-nb serve: the secrets the reference platform at",
        f"#   base_url {base_url}  ws_url {ws_url}",
        "# accepts. `source` it, or load it into a kernel. It is removed when the server stops.",
    ]
    lines += [f"export {name}={shlex.quote(jwt_secret)}" for name in JWT_ENVS]
    lines.append(f"export {E2E_ENV}={shlex.quote(e2e_key)}")
    return "\n".join(lines) + "\n"


def write_env_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), also when the file existed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def _remove_env_file(path: Path, text: str) -> None:
    """Remove the env file unless someone (another server) has rewritten it since."""
    try:
        if path.read_text(encoding="utf-8") == text:
            path.unlink()
    except OSError:
        pass


def serve_main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or bad usage (2)
        return int(exc.code or 0)

    faults = tuple(p.strip() for item in args.fault for p in item.split(",") if p.strip())
    printed: list[str] = []
    jwt_secret = next((os.environ[n] for n in JWT_ENVS if os.environ.get(n)), None)
    if jwt_secret is None:
        jwt_secret = secrets.token_urlsafe(32)
        printed += [f"export {n}={jwt_secret}" for n in JWT_ENVS]
    e2e_key = os.environ.get(E2E_ENV) or None
    if e2e_key is None:
        e2e_key = secrets.token_urlsafe(32)
        printed.append(f"export {E2E_ENV}={e2e_key}")

    kwargs: dict = dict(era=args.era, faults=faults, jwt_secret=jwt_secret, e2e_key=e2e_key, host=args.host, port=args.port)
    if args.fault_delay is not None:
        kwargs["fault_delay"] = args.fault_delay
    if args.heartbeat is not None:
        kwargs["heartbeat_interval"] = args.heartbeat
    try:
        cfg = ServerConfig.scaled(args.agent_seconds, **kwargs) if args.agent_seconds is not None else ServerConfig(**kwargs)
    except ValueError as exc:
        print(f"netra-nb serve: {exc}", file=sys.stderr)
        return 2

    srv = RefServer(cfg)
    try:
        srv.start()
    except (OSError, RuntimeError) as exc:
        print(f"netra-nb serve: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2

    env_path = None if args.no_env_file else Path(args.env_file)
    env_text = env_file_text(srv.base_url, srv.ws_url, jwt_secret, e2e_key)
    if env_path is not None:
        try:
            write_env_file(env_path, env_text)
        except OSError as exc:
            srv.stop()
            print(f"netra-nb serve: cannot write the env file {env_path}: {exc.strerror or exc} "
                  "(choose another with --env-file PATH, or --no-env-file)", file=sys.stderr)
            return 2

    done = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: done.set())
    try:
        print(f"Netra reference platform (era {cfg.era}, faults: {', '.join(cfg.faults) or 'none'})")
        print(f"  base_url: {srv.base_url}")
        print(f"  ws_url:   {srv.ws_url}")
        print(f"  auth_url: {srv.auth_url}")
        if printed:
            print("Secrets were generated; for a client in another shell:")
            for line in printed:
                print(f"  {line}")
        if env_path is not None:
            print(f"  env file: {env_path} (mode 0600; `source {env_path}` in another shell)")
        print("Press Ctrl+C to stop.", flush=True)
        while not done.wait(0.5):
            if not srv.running:
                print("netra-nb serve: the server stopped unexpectedly", file=sys.stderr)
                return 3
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        if env_path is not None:
            _remove_env_file(env_path, env_text)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped", flush=True)
    return 0
