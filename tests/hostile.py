"""Hostile servers on loopback for the kit's robustness tests: real sockets, misbehaving on purpose.

``TcpServer`` speaks raw TCP (accept and stay silent, trickle one byte a second, send garbage, answer
HTTP 200 "application/json" with a body that is not JSON). ``WsServer`` is a real WebSocket server
(the websockets library's) that welcomes, then misbehaves as asked (binary frames, frames that are
not JSON, JSON of the wrong shape, a frame larger than the client's limit, a drop mid-run).
"""

from __future__ import annotations

import asyncio
import json
import threading

from websockets.asyncio.server import serve


class _LoopThread:
    """A server's own event loop in a thread; leaving the ``with`` stops the server, ends every
    connection handler still running (a silent one sleeps for an hour) and closes the loop."""

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
            asyncio.run_coroutine_threadsafe(self._cancel_the_rest(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if not self.thread.is_alive():
                self.loop.close()

    async def _cancel_the_rest(self) -> None:
        """Cancel and await the tasks still pending on this loop (handlers the stop did not end)."""
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


class TcpServer(_LoopThread):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.writers: list[asyncio.StreamWriter] = []

    async def _start(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _stop(self):
        self.server.close()
        for w in self.writers:
            w.transport.abort()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.mode == "silent":
                await asyncio.sleep(3600)
            elif self.mode == "trickle":
                for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{\"status\":\"healthy\"}":
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(1.0)
            elif self.mode == "garbage":
                writer.write(b"\x00\xffTHIS IS NOT HTTP\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(0.5)
            elif self.mode == "json_lie":
                body = b"<html><body>502 Bad Gateway</body></html>"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
                await asyncio.sleep(0.5)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


class WsServer(_LoopThread):
    WELCOME = {"type": "connection_established", "data": {"user_id": "u", "connection_id": "main_x"}}

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    async def _start(self):
        self.server = await serve(self._handle, "127.0.0.1", 0, max_size=None)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _stop(self):
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, ws) -> None:
        from contract_servers import request_token, token_sub  # the same token reading as the contract stubs
        me = token_sub(request_token(ws)) or "u"
        await ws.send(json.dumps({**self.WELCOME, "data": {**self.WELCOME["data"], "user_id": me}}))
        try:
            async for message in ws:
                data = json.loads(message) if message.startswith("{") else {}
                if data.get("type") == "ping":
                    await ws.send('{"type": "pong"}')
                    continue
                if self.mode == "binary":
                    await ws.send(b"\x00\x01\x02 binary agent event")
                elif self.mode == "not_json":
                    await ws.send("agent_started but not JSON")
                elif self.mode == "wrong_shape":
                    await ws.send(json.dumps([{"agent": "started"}]))
                    await ws.send(json.dumps({"status": "ok", "payload": "no type anywhere"}))
                elif self.mode == "too_large":
                    await ws.send(json.dumps({"type": "agent_started", "data": {"blob": "x" * (2 << 20)}}))
                elif self.mode == "drop_mid_run":
                    await ws.send(json.dumps({"type": "agent_started", "run_id": "r", "user_id": me}))
                    await asyncio.sleep(0.1)
                    ws.transport.abort()
                    return
                elif self.mode == "close_mid_run":
                    await ws.send(json.dumps({"type": "agent_started", "run_id": "r", "user_id": me}))
                    await ws.close(1011, "Internal error")
                    return
        except Exception:  # noqa: BLE001 - a hostile server does not care
            pass
