"""Servers on loopback for the secret and production-guard tests: real sockets, on purpose indiscreet.

``Recorder`` keeps every byte a client sends it and answers every request 503: the evidence of
what the kit sent (or did not send) to a host. ``LeakyPlatform`` is a platform with debug output
left on: it echoes the secrets it knows, and the credentials it is sent, in every place a server
can (JSON bodies, ``Set-Cookie`` and custom headers, the welcome, pongs, error frames long
enough that a cut at the kit's limits goes through the secret, the close reason).
"""

from __future__ import annotations

import asyncio
import json
import threading

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response


class _Loop:
    """A server's own event loop in a thread; leaving the ``with`` stops it and closes the loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc):
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if not self.thread.is_alive():
                self.loop.close()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


class Recorder(_Loop):
    """Records every byte received (``received``) and answers each request with a bare 503."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()

    @property
    def received(self) -> bytes:
        with self._lock:
            return b"".join(self._chunks)

    async def _start(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _stop(self):
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
            with self._lock:
                self._chunks.append(head + body)
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 22\r\nConnection: close\r\n\r\n{\"status\":\"unhealthy\"}")
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, TimeoutError, ValueError):
            pass
        finally:
            writer.close()


class LeakyPlatform(_Loop):
    """HTTP and WebSocket on one port, echoing ``leaks`` (and any Authorization it receives) everywhere.

    In the long texts each leak comes after ``http_pad`` characters (HTTP bodies) or ``ws_pad``
    (frames): a kit that cut there before redacting (the judges' 600, ws.py's 2000) would keep
    the first characters of the secret.
    """

    def __init__(self, leaks: list[str], http_pad: int = 560, ws_pad: int = 1930) -> None:
        super().__init__()
        self.leaks = list(leaks)
        self.http_pad = http_pad
        self.ws_pad = ws_pad

    def _debug(self, extra: str = "") -> str:
        return " ".join(["debug:", *self.leaks, extra]).strip()

    def _long(self, pad: int, extra: str = "") -> str:
        return "".join("x" * pad + leak + " " for leak in [*self.leaks, extra] if leak)

    async def _start(self):
        self.server = await serve(self._session, "127.0.0.1", 0, process_request=self._http, max_size=None)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _stop(self):
        self.server.close()
        await self.server.wait_closed()

    def _http(self, connection, request):
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None  # go on with the handshake
        seen = request.headers.get("Authorization", "")
        if request.path in ("/health", "/api/health"):  # a failure: the body becomes evidence
            status, body = 503, {"status": "unhealthy", "message": self._long(self.http_pad, seen)}
        elif request.path == "/api/mcp/servers":  # a pass whose message quotes the servers' names
            status, body = 200, {"data": [{"name": f"netra-mcp {leak}", "status": "connected"} for leak in self.leaks]}
        else:
            status, body = 500, {"error": self._long(self.http_pad, seen), "trace": self._debug(seen)}
        text = json.dumps(body)
        headers = Headers({"Content-Type": "application/json", "Content-Length": str(len(text.encode())),
                           "Set-Cookie": f"session={self.leaks[0]}; Path=/", "X-Debug-Key": self.leaks[0],
                           "Connection": "close"})
        return Response(status, "Leaky", headers, text.encode())

    async def _session(self, ws) -> None:
        seen = ws.request.headers.get("Authorization", "")
        await ws.send(json.dumps({"type": "connection_established", "timestamp": 1.0,
                                  "data": {"mode": "main", "connection_id": "main_leak", "debug": self._debug(seen)}}))
        try:
            async for message in ws:
                try:
                    data = json.loads(message)
                except ValueError:
                    data = None
                data = data if isinstance(data, dict) else {}
                if data.get("type") == "ping":
                    await ws.send(json.dumps({"type": "pong", "debug": self._debug(seen)}))
                    continue
                await ws.send(json.dumps({"type": "error_message", "error_code": "INTERNAL",
                                          "error_message": self._long(self.ws_pad, seen), "echo": message}))
                await ws.close(1011, f"debug {self.leaks[0]}"[:120])
                return
        except Exception:  # noqa: BLE001 - a leaky server does not care
            pass
