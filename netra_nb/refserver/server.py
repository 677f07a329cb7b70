"""RefServer: uvicorn in a background thread of this process, bound to loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn

from .app import AppState, build_app
from .config import ServerConfig

__all__ = ["RefServer"]


class RefServer:
    """The reference platform.  ``with RefServer(cfg) as srv: srv.base_url ...`` or
    ``srv.start(); ...; srv.stop()``.  start() returns once the server accepts connections;
    stop() is quick even with open WebSockets, hung handshakes or hung requests."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config if config is not None else ServerConfig()
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._state: AppState | None = None
        self._error: BaseException | None = None
        self._port: int | None = None

    # -- addresses

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("RefServer is not started")
        return self._port

    @property
    def _netloc(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self._netloc}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._netloc}/ws"

    @property
    def auth_url(self) -> str:
        """The auth service (``POST /auth/e2e/test-auth``) is served by the same server."""
        return self.base_url

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle

    def _bind(self) -> socket.socket:
        host, port = self.config.host, int(self.config.port)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then (else Nagle
        # and delayed ACKs add 40 ms to back-to-back frames)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def _build(self) -> tuple[object, object]:
        """The ASGI application and its state (the replay server serves another application the same way)."""
        return build_app(self.config)

    def start(self, timeout: float = 15.0) -> "RefServer":
        if self.running:
            return self
        app, state = self._build()
        cfg = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="websockets-sansio",
            http="h11",
            proxy_headers=False,
            server_header=False,
            ws_ping_interval=self.config.ws_ping_interval,
            ws_ping_timeout=self.config.ws_ping_timeout,
            timeout_graceful_shutdown=self.config.shutdown_timeout,
            backlog=2048,
        )
        server = uvicorn.Server(cfg)
        sock = self._bind()
        self._server, self._state = server, state
        self._port = sock.getsockname()[1]
        self._error = None

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # noqa: BLE001 - reported by start()
                self._error = exc
            finally:
                try:
                    sock.close()
                except OSError:
                    pass

        self._thread = threading.Thread(target=run, name=f"netra-refserver:{self._port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the reference platform failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the reference platform did not start in time")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        if self._state is not None:
            self._state.stopping = True
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():  # pragma: no cover - a last resort
            server.force_exit = True
            thread.join(timeout)
        self._thread = None
        self._server = None

    def __enter__(self) -> "RefServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        faults = ",".join(self.config.faults) or "none"
        return f"<RefServer {where} era={self.config.era} faults={faults}>"
