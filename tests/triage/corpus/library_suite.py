"""A staging-style pytest suite whose failures are the libraries' own: websockets (new and legacy API),
httpx/httpcore/h11, aiohttp, ssl and asyncio, each provoked against a small server on loopback.

It is not part of the kit's tests (its name does not start with ``test_``): ``make_corpus.py`` runs it
in a venv that has the versions the platform's staging suite pins (websockets 15.0.1, httpx 0.28.1,
aiohttp 3.14.5, pytest 8.4.2), inside ``unshare -rn`` (loopback only), and keeps its JUnit XML as
``library.xml``. Every message in that file was raised by the library itself; none is typed here.
The categories each testcase must triage to are in ``expected.csv``.

The server speaks raw HTTP/1.1 and a minimal RFC 6455 so it can misbehave in ways a real framework
will not: refuse upgrades with any status, hang, drop, answer garbage, echo an unoffered
subprotocol, close with any code, stop reading. Successful answers wait ``DELAY_S`` first, as a
real platform's round trip would (a pass faster than 10 ms is triaged as ``fake_fast``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import httpx
import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect
from websockets.legacy.client import connect as legacy_connect

DELAY_S = 0.02
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           422: "Unprocessable Entity", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable"}
WELCOME = {"type": "connection_established", "data": {"mode": "main", "user_id": "e2e-libr...",
                                                       "connection_id": "main_1"}, "timestamp": 1.0}


# -- the misbehaving server --------------------------------------------------------------------------

def _response(code: int, body: str = "", ctype: str = "application/json", extra: str = "") -> bytes:
    data = body.encode()
    return (f"HTTP/1.1 {code} {REASONS.get(code, 'Status')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n{extra}\r\n").encode() + data


def _frame(opcode: int, payload: bytes) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def _close(code: int, reason: str = "") -> bytes:
    return _frame(0x8, struct.pack("!H", code) + reason.encode())


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b1, b2 = await reader.readexactly(2)
    n = b2 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if b2 & 0x80 else b"\0\0\0\0"
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(await reader.readexactly(n)))
    return b1 & 0x0F, data


async def _request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    target = head[0].split(" ")[1]
    headers = {}
    for line in head[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if int(headers.get("content-length", "0") or 0):
        await reader.readexactly(int(headers["content-length"]))
    return target, headers


async def _hold(reader: asyncio.StreamReader) -> None:
    """Keep the connection open, reading nothing useful, until the client goes away."""
    with contextlib.suppress(Exception):
        while await reader.read(65536):
            pass


async def _http(path: str, query: dict, writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
    if path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        body = query.get("body", [json.dumps({"detail": REASONS.get(code, "error")})])[0]
        await asyncio.sleep(DELAY_S)
        writer.write(_response(code, body))
    elif path == "/ok":
        await asyncio.sleep(DELAY_S)
        writer.write(_response(200, json.dumps({"status": "healthy"})))
    elif path == "/html":
        await asyncio.sleep(DELAY_S)
        writer.write(_response(200, "<html><body>Service starting</body></html>", "text/html"))
    elif path == "/hang":
        await _hold(reader)
    elif path == "/close":
        pass  # the request was read; close without a byte of response
    elif path == "/reset":
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif path == "/partial":
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"status\":")
    elif path == "/api/agents/execute":
        await asyncio.sleep(DELAY_S)
        writer.write(_response(200, json.dumps({"status": "success", "agent": "triage",
                                                "response": "Mock triage agent response for: test request",
                                                "execution_time": 0.0})))
    else:
        writer.write(_response(404, json.dumps({"detail": "Not Found"})))


async def _ws(path: str, query: dict, headers: dict, writer: asyncio.StreamWriter,
              reader: asyncio.StreamReader) -> None:
    if path.startswith("/ws/status/"):
        code = int(path.rsplit("/", 1)[1])
        await asyncio.sleep(DELAY_S)
        writer.write(_response(code, json.dumps({"detail": REASONS.get(code, "error")})))
        return
    if path == "/ws/plain":
        await asyncio.sleep(DELAY_S)
        writer.write(_response(200, json.dumps({"service": "websocket", "status": "available"})))
        return
    if path == "/ws/hang":
        await _hold(reader)
        return
    if path == "/ws/eof":
        return
    if path == "/ws/garbage":
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        return
    accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()).decode()
    extra = ""
    if path == "/ws/badaccept":
        accept = base64.b64encode(b"not the right accept value").decode()
    if path == "/ws/subprotocol":  # echo the raw header, or a protocol nobody offered
        extra = f"Sec-WebSocket-Protocol: {headers.get('sec-websocket-protocol', 'jwt.other').split(',')[0]}\r\n"
        if "sec-websocket-protocol" in headers and query.get("other"):
            extra = "Sec-WebSocket-Protocol: jwt-auth.other\r\n"
    writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n").encode())
    await asyncio.sleep(DELAY_S)
    writer.write(_frame(0x1, json.dumps(WELCOME).encode()))
    await writer.drain()
    if path.startswith("/ws/close/"):
        code = int(path.rsplit("/", 1)[1])
        writer.write(_close(code, query.get("reason", [""])[0]))
    elif path == "/ws/drop":
        return
    elif path == "/ws/deaf":  # stops reading: pings go unanswered
        await asyncio.sleep(30)
        return
    elif path == "/ws/error_frame":
        await _read_frame(reader)
        writer.write(_frame(0x1, json.dumps({"type": "error_message", "error_code": "CONNECTION_ERROR",
                                             "error_message": "main mode failed", "timestamp": 2.0}).encode()))
        writer.write(_close(1011, "main mode error"))
    elif path == "/ws/auth_failed":
        writer.write(_frame(0x1, json.dumps({"type": "error_message", "error_code": "AUTH_FAILED",
                                             "error_message": "Token validation failed"}).encode()))
        writer.write(_close(1008, "Authentication failed"))
    await writer.drain()
    # the session: answer pings and the contract's requests; "silent" answers only the protocol's pings
    while True:
        try:
            opcode, data = await _read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        if opcode == 0x8:
            with contextlib.suppress(Exception):
                writer.write(_close(struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1000))
                await writer.drain()
            return
        if opcode == 0x9:
            writer.write(_frame(0xA, data))
        elif opcode == 0x1 and path == "/ws/session":
            await asyncio.sleep(DELAY_S)
            try:
                message = json.loads(data)
            except ValueError:
                reply = {"type": "error_message", "error_code": "JSON_PARSE_ERROR", "error_message": "Invalid JSON"}
            else:
                reply = {"type": "pong"} if message.get("type") == "ping" else {"type": "ack", "status": "acknowledged"}
            writer.write(_frame(0x1, json.dumps(reply).encode()))
        await writer.drain()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        target, headers = await _request(reader)
        url = urlsplit(target)
        query = parse_qs(url.query)
        if headers.get("upgrade", "").lower() == "websocket":
            await _ws(url.path, query, headers, writer, reader)
        else:
            await _http(url.path, query, writer, reader)
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def _plain_400(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A plain HTTP server that answers whatever arrives (a TLS ClientHello too) with a 400."""
    await reader.read(1024)
    writer.write(_response(400, "Bad Request", "text/plain"))
    await writer.drain()
    writer.close()


class Loopback:
    """The server on 127.0.0.1 (plain, TLS self-signed for ``other.example``, and a plain one that answers
    400 to anything), in its own thread."""

    def __init__(self, workdir: Path) -> None:
        self.cert, self.key = workdir / "cert.pem", workdir / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=other.example", "-addext", "subjectAltName=DNS:other.example",
                        "-keyout", str(self.key), "-out", str(self.cert)], check=True, capture_output=True)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        assert self.ready.wait(10), "the loopback server did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self.cert, self.key)
        plain = self.loop.run_until_complete(asyncio.start_server(_serve, "127.0.0.1", 0))
        secure = self.loop.run_until_complete(asyncio.start_server(_serve, "127.0.0.1", 0, ssl=tls))
        chatty = self.loop.run_until_complete(asyncio.start_server(_plain_400, "127.0.0.1", 0))
        self.chatty_port = chatty.sockets[0].getsockname()[1]
        self.port = plain.sockets[0].getsockname()[1]
        self.tls_port = secure.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Loopback:
    return Loopback(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def closed_port() -> int:
    """A port nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="session")
def full_backlog():
    """A port whose accept queue is full: further SYNs are dropped, so connecting times out."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    port = s.getsockname()[1]
    held = socket.create_connection(("127.0.0.1", port))
    yield port
    held.close()
    s.close()


def run(coro):
    return asyncio.run(coro)


AGENT_REQUEST = json.dumps({"type": "start_agent", "payload": {"user_request": "Analyze test data"}})


# -- websockets, new API (websockets.asyncio.client.connect) ---------------------------------------------

class TestWebsocketsAsyncioClient:
    @pytest.mark.parametrize("code", [401, 403, 404, 500, 502, 503])
    def test_upgrade_refused(self, server, code):
        async def go():
            async with ws_connect(server.ws(f"/ws/status/{code}"), additional_headers={"Authorization": "Bearer x"}):
                pass
        run(go())

    def test_upgrade_answered_by_plain_http_route(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/plain")):
                pass
        run(go())

    def test_opening_handshake_times_out(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/hang"), open_timeout=0.5):
                pass
        run(go())

    def test_connect_wrapped_in_wait_for_times_out(self, server):
        async def go():
            await asyncio.wait_for(ws_connect(server.ws("/ws/hang"), open_timeout=None), timeout=0.5)
        run(go())

    def test_subprotocol_sent_as_raw_header(self, server):
        async def go():
            headers = {"Sec-WebSocket-Protocol": "jwt.eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}
            async with ws_connect(server.ws("/ws/subprotocol"), additional_headers=headers):
                pass
        run(go())

    def test_server_selects_a_subprotocol_not_offered(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/subprotocol?other=1"), subprotocols=["jwt-auth"]):
                pass
        run(go())

    @pytest.mark.parametrize("code, reason", [(1011, "Internal error"), (1008, "Authentication failed"),
                                              (1000, "main cleanup"), (1001, "going away"),
                                              (1012, "service restart"), (4001, "Authentication failed")])
    def test_server_closes_after_welcome(self, server, code, reason):
        async def go():
            async with ws_connect(server.ws(f"/ws/close/{code}?reason={reason.replace(' ', '+')}")) as ws:
                await ws.recv()  # the welcome
                await ws.send(AGENT_REQUEST)
                await ws.recv()
        run(go())

    def test_connection_dropped_without_close_frame(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/drop")) as ws:
                await ws.recv()
                await ws.recv()
        run(go())

    def test_pings_unanswered(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/deaf"), ping_interval=0.2, ping_timeout=0.2,
                                  close_timeout=0.5) as ws:
                await ws.recv()
                await asyncio.wait_for(ws.recv(), timeout=5)
        run(go())

    def test_no_agent_event_after_request(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/silent")) as ws:
                await ws.recv()
                await ws.send(AGENT_REQUEST)
                event = await asyncio.wait_for(ws.recv(), timeout=0.5)
                assert json.loads(event)["type"] == "agent_started"
        run(go())

    def test_error_frame_instead_of_agent_event(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/error_frame")) as ws:
                await ws.recv()
                await ws.send(AGENT_REQUEST)
                event = json.loads(await ws.recv())
                assert event["type"] == "agent_started", f"Unexpected event: {event}"
        run(go())

    def test_auth_failed_frame_then_1008(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/auth_failed")) as ws:
                await ws.recv()
                event = json.loads(await ws.recv())
                assert event["type"] == "connection_ready", f"Unexpected event: {event}"
        run(go())

    def test_scheme_is_not_ws(self, server):
        async def go():
            async with ws_connect(server.http("/ws")):
                pass
        run(go())

    def test_bad_accept_header(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/badaccept")):
                pass
        run(go())

    def test_upgrade_answered_with_garbage(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/garbage")):
                pass
        run(go())

    def test_connection_closed_during_upgrade(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/eof")):
                pass
        run(go())

    def test_nothing_listens(self, closed_port):
        async def go():
            async with ws_connect(f"ws://127.0.0.1:{closed_port}/ws"):
                pass
        run(go())

    def test_host_does_not_resolve(self):
        async def go():
            async with ws_connect("wss://api.staging.netrasystems.invalid/ws"):
                pass
        run(go())

    def test_self_signed_certificate(self, server):
        async def go():
            async with ws_connect(f"wss://127.0.0.1:{server.tls_port}/ws/session"):
                pass
        run(go())


# -- websockets, legacy API (websockets.legacy.client.connect: InvalidStatusCode) -------------------------

class TestWebsocketsLegacyClient:
    @pytest.mark.parametrize("code", [403, 404, 500, 503])
    def test_upgrade_refused(self, server, code):
        async def go():
            async with legacy_connect(server.ws(f"/ws/status/{code}")):
                pass
        run(go())

    def test_opening_handshake_times_out(self, server):
        async def go():
            async with legacy_connect(server.ws("/ws/hang"), open_timeout=0.5):
                pass
        run(go())

    def test_subprotocol_sent_as_raw_header(self, server):
        async def go():
            async with legacy_connect(server.ws("/ws/subprotocol"), extra_headers={"Sec-WebSocket-Protocol": "jwt.x"}):
                pass
        run(go())

    def test_server_closes_1011(self, server):
        async def go():
            async with legacy_connect(server.ws("/ws/close/1011?reason=Internal+error")) as ws:
                await ws.recv()
                await ws.recv()
        run(go())

    def test_connection_dropped_without_close_frame(self, server):
        async def go():
            async with legacy_connect(server.ws("/ws/drop")) as ws:
                await ws.recv()
                await ws.recv()
        run(go())

    def test_pings_unanswered(self, server):
        async def go():
            async with legacy_connect(server.ws("/ws/deaf"), ping_interval=0.2, ping_timeout=0.2,
                                      close_timeout=0.5) as ws:
                await ws.recv()
                await asyncio.wait_for(ws.recv(), timeout=5)
        run(go())


# -- httpx (httpcore, h11, anyio underneath) ---------------------------------------------------------------

class TestHttpx:
    @pytest.mark.parametrize("code", [401, 404, 422, 500, 502, 503])
    def test_raise_for_status(self, server, code):
        httpx.get(server.http(f"/status/{code}"), timeout=5).raise_for_status()

    def test_status_code_asserted(self, server):
        response = httpx.get(server.http("/status/503"), timeout=5)
        assert response.status_code == 200

    def test_e2e_endpoint_not_configured(self, server):
        body = json.dumps({"detail": "E2E authentication not configured"})
        response = httpx.post(server.http(f"/status/503?body={body}"), timeout=5)
        assert response.status_code == 200, f"Failed to get test token: {response.status_code} - {response.text}"

    def test_nothing_listens(self, closed_port):
        httpx.get(f"http://127.0.0.1:{closed_port}/health", timeout=5)

    def test_nothing_listens_async(self, closed_port):
        async def go():
            async with httpx.AsyncClient(timeout=5) as client:
                await client.get(f"http://localhost:{closed_port}/health")
        run(go())

    def test_host_does_not_resolve(self):
        httpx.get("https://api.staging.netrasystems.invalid/health", timeout=5)

    def test_connect_times_out(self, full_backlog):
        httpx.get(f"http://127.0.0.1:{full_backlog}/health", timeout=httpx.Timeout(5, connect=0.5))

    def test_read_times_out(self, server):
        httpx.get(server.http("/hang"), timeout=httpx.Timeout(5, read=0.5))

    def test_server_disconnects_without_response(self, server):
        httpx.get(server.http("/close"), timeout=5)

    def test_connection_reset(self, server):
        httpx.get(server.http("/reset"), timeout=5)

    def test_body_cut_short(self, server):
        httpx.get(server.http("/partial"), timeout=5)

    def test_body_not_json(self, server):
        httpx.get(server.http("/html"), timeout=5).json()

    def test_self_signed_certificate(self, server):
        httpx.get(f"https://127.0.0.1:{server.tls_port}/ok", timeout=5)

    def test_unsupported_scheme(self):
        httpx.get("ftp://127.0.0.1/health", timeout=5)


# -- aiohttp -------------------------------------------------------------------------------------------------

class TestAiohttp:
    def test_nothing_listens(self, closed_port):
        async def go():
            async with aiohttp.ClientSession() as session:
                await session.get(f"http://127.0.0.1:{closed_port}/health")
        run(go())

    def test_host_does_not_resolve(self):
        async def go():
            async with aiohttp.ClientSession() as session:
                await session.get("https://api.staging.netrasystems.invalid/health")
        run(go())

    def test_self_signed_certificate(self, server):
        async def go():
            async with aiohttp.ClientSession() as session:
                await session.get(f"https://127.0.0.1:{server.tls_port}/ok")
        run(go())

    @pytest.mark.parametrize("code", [403, 503])
    def test_ws_upgrade_refused(self, server, code):
        async def go():
            async with aiohttp.ClientSession() as session:
                await session.ws_connect(server.ws(f"/ws/status/{code}"))
        run(go())

    @pytest.mark.parametrize("code", [401, 500, 503])
    def test_raise_for_status(self, server, code):
        async def go():
            async with aiohttp.ClientSession(raise_for_status=True) as session:
                await session.get(server.http(f"/status/{code}"))
        run(go())

    def test_server_disconnects(self, server):
        async def go():
            async with aiohttp.ClientSession() as session:
                await session.get(server.http("/close"))
        run(go())

    def test_connect_times_out(self, full_backlog):
        async def go():
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5, connect=0.5)) as session:
                await session.get(f"http://127.0.0.1:{full_backlog}/health")
        run(go())

    def test_read_times_out(self, server):
        async def go():
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5, sock_read=0.5)) as session:
                await session.get(server.http("/hang"))
        run(go())

    def test_ws_server_closes_1011(self, server):
        async def go():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(server.ws("/ws/close/1011?reason=Internal+error")) as ws:
                    await ws.receive()
                    await ws.send_str(AGENT_REQUEST)
                    msg = await ws.receive()
                    assert msg.type == aiohttp.WSMsgType.TEXT
        run(go())

    def test_ws_heartbeat_unanswered(self, server):
        async def go():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(server.ws("/ws/deaf"), heartbeat=0.2) as ws:
                    await ws.receive()
                    msg = await ws.receive()
                    assert msg.type == aiohttp.WSMsgType.TEXT, f"unexpected message {msg} (close code {ws.close_code})"
        run(go())


# -- ssl and asyncio on their own ---------------------------------------------------------------------------

class TestSslAndAsyncio:
    def test_hostname_mismatch(self, server):
        context = ssl.create_default_context(cafile=str(server.cert))
        with socket.create_connection(("127.0.0.1", server.tls_port), timeout=5) as sock:
            context.wrap_socket(sock, server_hostname="api.staging.netrasystems.ai")

    def test_tls_to_a_port_that_never_answers(self, server):
        with socket.create_connection(("127.0.0.1", server.port), timeout=0.5) as sock:
            ssl.create_default_context().wrap_socket(sock, server_hostname="localhost")

    def test_tls_to_a_plain_http_server(self, server):
        httpx.get(f"https://127.0.0.1:{server.chatty_port}/health", timeout=5)

    def test_tls_handshake_times_out(self):
        async def go():
            # a server that accepts and never speaks: TLS waits for a ServerHello that never comes
            hang = await asyncio.start_server(lambda r, w: _hold(r), "127.0.0.1", 0)
            port = hang.sockets[0].getsockname()[1]
            async with hang:
                await asyncio.open_connection("127.0.0.1", port, ssl=ssl.create_default_context(),
                                              server_hostname="localhost", ssl_handshake_timeout=0.5)
        run(go())

    def test_stream_ends_mid_frame(self, server):
        async def go():
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
            await reader.readexactly(2)
        run(go())

    def test_recv_under_asyncio_timeout(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/silent")) as ws:
                await ws.recv()
                await ws.send(AGENT_REQUEST)
                async with asyncio.timeout(0.5):
                    await ws.recv()
        run(go())


# -- the staging suite's own helpers (their wording, from netra-systems/zen tests/e2e) -----------------------

class TestSuiteHelpers:
    def test_bypass_key_not_set(self):
        # tests/e2e/staging_config.py: get_bypass_auth_headers
        key = os.environ.get("E2E_OAUTH_SIMULATION_KEY_NOT_SET_HERE")
        if not key:
            raise ValueError("E2E_OAUTH_SIMULATION_KEY not set in environment")

    def test_secret_required_but_not_set(self):
        name = "JWT_SECRET_STAGING_NOT_SET_HERE"
        if not os.environ.get(name):
            raise RuntimeError(f"{name} is required but not set")

    def test_connect_helper_timeout(self, server):
        # test_framework/ssot/e2e_auth_helper.py: connect_authenticated_websocket
        async def go():
            url, staging_timeout = server.ws("/ws/hang"), 0.5
            try:
                await asyncio.wait_for(ws_connect(url, open_timeout=None), timeout=staging_timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"WebSocket connection to {url} timed out after {staging_timeout}s. "
                                   "Environment: staging. This may indicate: (1) E2E headers not detected by server, "
                                   "(2) Server still performing full JWT validation, or (3) GCP Cloud Run "
                                   "infrastructure timeout. Headers sent: ['Authorization']")
        run(go())

    def test_connect_helper_retries_exhausted(self, server):
        # test_framework/ssot/e2e_auth_helper.py: connect_with_retry
        async def go():
            last_error = None
            for _ in range(2):
                try:
                    async with ws_connect(server.ws("/ws/status/403")):
                        return
                except Exception as e:  # noqa: BLE001 - as the helper does
                    last_error = e
            raise Exception(f"Failed to establish WebSocket connection after 2 attempts. Last error: {last_error}")
        run(go())


# -- passes whose own output admits a failure (the staging suite's habit) --------------------------------------

class TestPassesThatHideFailures:
    def test_upgrade_403_labelled_expected(self, server):
        async def go():
            try:
                async with ws_connect(server.ws("/ws/status/403")):
                    print("[SUCCESS] WebSocket connected")
            except websockets.exceptions.InvalidStatus as e:
                print(f"[EXPECTED] WebSocket authentication rejected (HTTP 403): {e}")
                print("[INFO] This confirms that staging WebSocket authentication is properly enforced")
        run(go())
        print("[PASS] WebSocket connection test completed - staging behavior verified")

    def test_close_1011_accepted_as_known_issue(self, server):
        async def go():
            try:
                async with ws_connect(server.ws("/ws/close/1011?reason=Internal+error")) as ws:
                    await ws.recv()
                    await ws.send(AGENT_REQUEST)
                    await ws.recv()
            except websockets.exceptions.ConnectionClosed as e:
                print(f"[WARNING] Connection closed: {e} - known issue in staging, accepting")
        run(go())

    def test_error_frame_as_graceful_degradation(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/error_frame")) as ws:
                await ws.recv()
                await ws.send(AGENT_REQUEST)
                with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                    print(f"[INFO] Received: {await ws.recv()}")
                print("[PASS] graceful degradation: the service reported its error")
        run(go())

    def test_503_accepted_as_limitation(self, server):
        response = httpx.get(server.http("/status/503"), timeout=5)
        if response.status_code != 200:
            print(f"[WARNING] /api/mcp/servers answered {response.status_code} - accepted as a staging limitation")

    def test_canned_mock_response(self, server):
        response = httpx.post(server.http("/api/agents/execute"), json={"message": "test request"}, timeout=5)
        print(f"[INFO] Agent response: {response.json()['response']}")
        assert response.status_code == 200

    def test_no_reply_within_timeout_may_be_normal(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/silent")) as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "ping"}))
                try:
                    await asyncio.wait_for(ws.recv(), timeout=0.5)
                except asyncio.TimeoutError:
                    print("[INFO] No response received within timeout (may be normal)")
        run(go())


# -- honest passes: output that only looks alarming ----------------------------------------------------------

class TestHonestPasses:
    def test_invalid_json_gets_the_contracts_error_frame(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/session")) as ws:
                await ws.recv()
                await ws.send("{not json")
                reply = json.loads(await ws.recv())
                print(f"[INFO] Error frame for invalid JSON: {reply}")
                assert reply["error_code"] == "JSON_PARSE_ERROR"
        run(go())

    def test_ping_pong_and_a_normal_close(self, server):
        async def go():
            async with ws_connect(server.ws("/ws/session")) as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "ping"}))
                assert json.loads(await ws.recv())["type"] == "pong"
                await ws.close()
                try:
                    await ws.recv()
                except websockets.exceptions.ConnectionClosedOK as e:
                    print(f"[INFO] closed as asked: {e}")
        run(go())

    def test_client_side_token_fallback(self, server):
        print("[WARNING] SSOT staging auth bypass failed: E2E_OAUTH_SIMULATION_KEY not provided")
        print("[INFO] Falling back to staging-compatible JWT creation")
        print("[FALLBACK] Created staging-compatible JWT token for: staging-e2e-user-001")
        response = httpx.get(server.http("/ok"), timeout=5)
        assert response.json()["status"] == "healthy"

    def test_invalid_body_gets_422(self, server):
        response = httpx.post(server.http("/status/422"), json={}, timeout=5)
        print(f"[INFO] invalid request answered {response.status_code} as the contract says")
        assert response.status_code == 422
