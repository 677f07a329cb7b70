"""Every fault profile: its raw observable behaviour on the wire, and its ``expected`` map checked
against simple client probes (the checks it names break, every other check keeps working)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    NegotiationError,
)

from netra_nb.categories import CODES
from netra_nb.refserver import CHECKS, FAULTS, RefServer

from rs_helpers import (
    EMAIL,
    FIVE,
    USER_ID,
    agent_events,
    closed,
    collect,
    event_name,
    is_event,
    open_ws,
    recv_json,
    run,
    short,
    token,
    welcome,
)

START = {"type": "start_agent", "payload": {"user_request": "Analyze test data", "agent_type": "triage"}}

# design.md's category codes (categories.py holds them)
CATEGORIES = set(CODES)
ALL_CHECKS = [c for phase in CHECKS.values() for c in phase]


def fault_server(shared, *faults: str, **extra) -> RefServer:
    """The server of a fault profile, shared with the expected-map test of the same profile."""
    extra.setdefault("fault_delay", 0.1)
    extra.setdefault("heartbeat_interval", 0.1)
    return shared(faults=tuple(faults), **extra)


def is_type(t: str):
    return lambda f: isinstance(f, dict) and f.get("type") == t


def test_fault_table_is_well_formed():
    assert len(FAULTS) == 34
    for name, fault in FAULTS.items():
        assert fault.name == name
        assert fault.area in ("ws", "agent", "http", "auth")
        assert name.startswith(fault.area + "_")
        assert fault.placement in (None, "header", "query", "subprotocol"), name
        assert fault.summary and "\n" not in fault.summary
        assert fault.expected, name
        assert set(fault.expected) <= set(ALL_CHECKS), name
        assert set(fault.expected.values()) <= CATEGORIES - {"ok"}, name


# ============================================================================ raw behaviour


async def _invalid_status(srv: RefServer, *, path: str = "/ws", auth: str = "header", **kw) -> tuple[int, bytes]:
    with pytest.raises(InvalidStatus) as info:
        async with open_ws(srv, path=path, auth=auth, **kw):
            pass
    return info.value.response.status_code, info.value.response.body or b""


async def _closed_after_welcome(srv: RefServer, era: str = "mid") -> tuple[list[dict], ConnectionClosed, int | None]:
    async with open_ws(srv) as ws:
        frames = await welcome(ws, era)
        exc = await closed(ws)
        return frames, exc, ws.protocol.close_code


# The unprompted welcome frames of each era, in order (the last one is "the welcome" the faults follow).
WELCOME_TYPES = {
    "early": ["handshake_validation", "system_message"],
    "mid": ["connection_established"],
    "october": ["connection_established", "handshake_response"],
}


@pytest.mark.parametrize("era", ["early", "mid", "october"])
def test_ws_1011_after_welcome(shared, era):
    srv = fault_server(shared, "ws_1011_after_welcome", era=era)
    frames, exc, code = run(_closed_after_welcome(srv, era))
    assert [f["type"] for f in frames] == WELCOME_TYPES[era]  # the whole welcome, then the close
    if era == "early":
        assert frames[1]["data"]["event"] == "connection_established"
    assert isinstance(exc, ConnectionClosedError)
    assert exc.rcvd.code == 1011 and exc.rcvd.reason == "Internal error"
    assert code == 1011


def test_ws_1011_on_message(shared):
    srv = fault_server(shared, "ws_1011_on_message")

    async def go():
        async with open_ws(srv) as ws:
            await welcome(ws)
            quiet = await collect(ws, lambda f: False, 0.3)  # open while the client is silent
            assert {f["type"] for f in quiet} <= {"heartbeat"}
            await ws.send(json.dumps({"type": "ping"}))
            return await closed(ws)  # heartbeats may still come first: the fault server sends one every 0.1 s

    exc = run(go())
    assert isinstance(exc, ConnectionClosedError)
    assert exc.rcvd.code == 1011 and exc.rcvd.reason == "Internal error"


def test_ws_1011_on_message_spares_the_october_handshake(shared):
    srv = fault_server(shared, "ws_1011_on_message", era="october")

    async def go():
        async with open_ws(srv) as ws:
            _, handshake = await welcome(ws, "october")
            await ws.send(json.dumps({"type": "handshake_acknowledged", "thread_id": handshake["thread_id"]}))
            assert (await collect(ws, is_type("handshake_complete")))[-1]["type"] == "handshake_complete"
            await ws.send(json.dumps(START))
            return (await closed(ws)).rcvd.code

    assert run(go()) == 1011


def test_ws_error_frame_1011(shared):
    srv = fault_server(shared, "ws_error_frame_1011")

    async def go():
        async with open_ws(srv) as ws:
            err = await recv_json(ws)
            return err, await closed(ws)

    err, exc = run(go())
    assert err["type"] == "error_message" and err["error_code"] == "CONNECTION_ERROR"
    assert "main mode failed" in err["message"]
    assert isinstance(exc, ConnectionClosedError) and exc.rcvd.code == 1011


def test_ws_close_1000_early(shared):
    srv = fault_server(shared, "ws_close_1000_early")
    frames, exc, code = run(_closed_after_welcome(srv))
    assert frames[0]["type"] == "connection_established"
    assert isinstance(exc, ConnectionClosedOK)
    assert exc.rcvd.code == 1000 and exc.rcvd.reason == "main cleanup"


@pytest.mark.parametrize("auth", ["header", "none"])
def test_ws_auth_failed_1008(shared, auth):
    srv = fault_server(shared, "ws_auth_failed_1008")

    async def go():
        async with open_ws(srv, auth=auth) as ws:
            err = await recv_json(ws)
            return err, await closed(ws)

    err, exc = run(go())
    assert err["type"] == "error" and err["error_code"] == "AUTH_FAILED"
    assert isinstance(exc, ConnectionClosedError) and exc.rcvd.code == 1008


def test_ws_403_secret_mismatch(shared):
    srv = fault_server(shared, "ws_403_secret_mismatch")
    # the auth service still mints tokens; the backend refuses all of them
    minted = httpx.post(
        srv.auth_url + "/auth/e2e/test-auth", headers={"X-E2E-Bypass-Key": srv.config.e2e_key}, json={"email": "a@b.io"}
    ).json()["access_token"]

    async def go():
        results = [await _invalid_status(srv, auth=a) for a in ("header", "query", "subprotocol")]
        with pytest.raises(InvalidStatus) as info:
            async with connect(srv.ws_url, additional_headers={"Authorization": f"Bearer {minted}"}, open_timeout=3):
                pass
        results.append((info.value.response.status_code, info.value.response.body))
        return results

    for status, body in run(go()):
        assert status == 403
        assert "authentication failed" in json.loads(body)["detail"]
    # GET answers as on the healthy platform (and the real backend): no HTTP route on /ws
    assert httpx.get(srv.base_url + "/ws").status_code == 404
    assert httpx.get(srv.base_url + "/api/v1/websocket").status_code == 200


@pytest.mark.parametrize("path", ["/ws", "/api/v1/websocket"])
def test_ws_403_no_route(shared, path):
    srv = fault_server(shared, "ws_403_no_route")

    async def go():
        return [await _invalid_status(srv, path=path, auth=a) for a in ("header", "query", "subprotocol", "none")]

    for status, body in run(go()):
        assert (status, body) == (403, b"")  # a bare 403: no route, not an auth refusal
    r = httpx.get(srv.base_url + path)  # the path exists as an HTTP route only (E3)
    assert r.status_code == 200 and r.json()["data"]["service"] == "websocket_ssot"


@pytest.mark.parametrize("fault,status,want", [
    ("ws_500_upgrade", 500, {"detail": "Internal Server Error"}),
    ("ws_503_upgrade", 503, {"status": "unhealthy", "message": "Service Unavailable"}),
])
def test_ws_upgrade_http_errors(shared, fault, status, want):
    srv = fault_server(shared, fault)
    got, body = run(_invalid_status(srv))
    assert got == status
    assert json.loads(body) == want
    assert httpx.get(srv.base_url + "/health").status_code == 200


# A client left hanging on a hung server gives up after this long; stop() must end the hang well
# before (it would otherwise last until the client gives up).
HANG_S = 20.0


def test_ws_handshake_hang_times_out_and_stop_stays_quick(serve):
    srv = serve(faults=("ws_handshake_hang",))
    open_timeout = 0.4

    async def go():
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            async with open_ws(srv, open_timeout=open_timeout):
                pass
        elapsed = time.monotonic() - t0
        # a second handshake left hanging while the server stops
        pending = asyncio.ensure_future(open_ws(srv, open_timeout=HANG_S).__aenter__())
        await asyncio.sleep(0.2)
        assert not pending.done()  # it really hangs
        t1 = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, srv.stop)
        stop_s = time.monotonic() - t1
        with pytest.raises(InvalidStatus) as info:  # answered by the stopping server, not timed out
            await asyncio.wait_for(pending, HANG_S)
        return elapsed, stop_s, info.value.response

    elapsed, stop_s, response = run(go())
    assert elapsed >= open_timeout  # the server never answered: the client's own timeout ended it
    assert stop_s < HANG_S / 2
    # the stopping server answers it: the fault's own 503 "Shutting down", or uvicorn's 500 when its
    # shutdown reaches the connection first (a race inside the server; either way an answer)
    assert (response.status_code, bytes(response.body)) in {
        (503, b'{"status":"unhealthy","message":"Shutting down"}'), (500, b"Internal Server Error")}


def test_ws_drop_1006(shared):
    srv = fault_server(shared, "ws_drop_1006")
    frames, exc, code = run(_closed_after_welcome(srv))
    assert frames[0]["type"] == "connection_established"
    assert isinstance(exc, ConnectionClosedError)
    assert exc.rcvd is None and exc.sent is None  # no close frame either way
    assert code == 1006


@pytest.mark.parametrize("auth", ["header", "subprotocol"])
def test_ws_bad_subprotocol(shared, auth):
    srv = fault_server(shared, "ws_bad_subprotocol")

    async def go():
        with pytest.raises(NegotiationError) as info:
            async with open_ws(srv, auth=auth):
                pass
        return str(info.value)

    msg = run(go())
    assert ("no subprotocols supported" if auth == "header" else "unsupported subprotocol") in msg


def test_ws_ignore_pings(shared):
    srv = fault_server(shared, "ws_ignore_pings")
    keepalive = 0.3 + 0.3  # the client's ping_interval + ping_timeout

    async def go():
        t0 = time.monotonic()
        async with open_ws(srv, ping_interval=0.3, ping_timeout=0.3, close_timeout=0.2) as ws:
            await welcome(ws)
            await ws.send(json.dumps({"type": "ping"}))
            seen = []
            with pytest.raises(ConnectionClosedError) as info:
                while True:
                    seen.append((await recv_json(ws, 3, keep={"heartbeat", "pong"}))["type"])
            return seen, info.value, time.monotonic() - t0

    seen, exc, elapsed = run(go())
    assert "pong" not in seen and "heartbeat" in seen  # the server writes but never reads
    assert exc.rcvd is None
    assert exc.sent.code == 1011 and exc.sent.reason == "keepalive ping timeout"
    # the client's keepalive ended it: not before its first ping went unanswered, and long before the
    # server's own idle timeout (600 s) could have
    assert keepalive <= elapsed < 20 * keepalive


# ---------------------------------------------------------------------------- the real backend's behaviours
# (the frames they imitate are in tests/realshapes/; test_refserver_realshapes.py compares the shapes)

EMPTY = {"type": "start_agent", "payload": {"user_request": "", "agent_type": "triage"}}


async def _silence_after(ws, message, heartbeats: int = 2) -> list:
    """Send ``message``, then read until the ``heartbeats``-th heartbeat: what the server said meanwhile.
    The server idled ``heartbeats`` intervals by then, so an answer, had there been one, came before."""
    await ws.send(message if isinstance(message, str) else json.dumps(message))
    frames = await collect(ws, _heartbeats(heartbeats), 5.0)
    assert [f["type"] for f in frames if f["type"] == "heartbeat"] == ["heartbeat"] * heartbeats, frames
    return [f for f in frames if f["type"] != "heartbeat"]


async def _swallowing_session(srv: RefServer, welcome_type: str) -> None:
    async with open_ws(srv) as ws:
        (frame,) = await welcome(ws)
        assert frame["type"] == welcome_type
        assert frame["data"]["user_id"] == short(USER_ID)  # our own session
        for message in ({"type": "ping"}, EMPTY, START, {"type": "user_message", "payload": {"content": "hi"}},
                        {"type": "execute_agent", "payload": {"user_request": "hi"}}, {"type": "heartbeat"}):
            assert await _silence_after(ws, message) == [], message  # no pong, no error, no ack, no event
        # invalid JSON and an unknown type are still answered
        await ws.send("{this is not json")
        err = await recv_json(ws)
        assert err["type"] == "error_message" and err["error_code"] == "JSON_PARSE_ERROR"
        await ws.send(json.dumps({"type": "frobnicate"}))
        ack = await recv_json(ws)
        assert ack["type"] == "ack" and ack["received_type"] == "frobnicate" and ack["user_id"] == USER_ID
        # the heartbeat counts what the server received (all of it, though it answered none): 8 frames,
        # 4 of them agent requests (the empty one, start_agent, user_message, execute_agent)
        beat = (await collect(ws, _heartbeats(1), 3.0))[-1]
        assert beat["data"]["stats"] == {"messages_processed": 8, "agent_events_processed": 4}
        pong = await ws.ping()  # the transport still answers protocol pings
        await asyncio.wait_for(pong, 3)


def test_ws_swallow_all(shared):
    run(_swallowing_session(fault_server(shared, "ws_swallow_all"), "connection_established"))


@pytest.mark.parametrize("era", ["mid", "october"])
def test_ws_connect_welcome(shared, era):
    srv = fault_server(shared, "ws_connect_welcome", era=era)
    if era == "mid":
        run(_swallowing_session(srv, "connect"))
        return

    async def go():  # october: the same 'connect' welcome, then the handshake_response
        async with open_ws(srv) as ws:
            first, handshake = await welcome(ws, "october")
            assert first["type"] == "connect" and handshake["type"] == "handshake_response"
            assert await _silence_after(ws, {"type": "handshake_acknowledged", "thread_id": handshake["thread_id"]}) == []

    run(go())


@pytest.mark.parametrize("auth", ["header", "query", "subprotocol", "none", "wrong"])
def test_ws_token_ignored(shared, auth):
    srv = fault_server(shared, "ws_token_ignored")
    kw = {"additional_headers": {"Authorization": "Bearer " + token(srv).replace(".", ".x", 1)}} if auth == "wrong" else {}

    async def go():
        async with open_ws(srv, auth="none" if auth == "wrong" else auth, **kw) as ws:
            (frame,) = await welcome(ws)
            assert frame["type"] == "connection_established"
            assert frame["data"]["user_id"] == "demo-use..."  # not ours, whatever we sent
            await ws.send(json.dumps({"type": "frobnicate"}))
            assert (await recv_json(ws))["user_id"] == "demo-user-001"
            await ws.send(json.dumps(START))
            frames = await collect(ws, is_event("agent_completed"))
            assert agent_events(frames) == FIVE  # the session works: as the demo user
            assert {f["user_id"] for f in frames if event_name(f) in FIVE} == {"demo-user-001"}

    run(go())


@pytest.mark.parametrize("auth", ["header", "subprotocol", "query", "none", "wrong"])
def test_ws_query_token_ignored(shared, auth):
    srv = fault_server(shared, "ws_query_token_ignored")
    kw = {"additional_headers": {"Authorization": "Bearer " + token(srv).replace(".", ".x", 1)}} if auth == "wrong" else {}

    async def go():
        async with open_ws(srv, auth="none" if auth == "wrong" else auth, **kw) as ws:
            (frame,) = await welcome(ws)
            await ws.send(json.dumps({"type": "frobnicate"}))
            return frame["data"]["user_id"], (await recv_json(ws))["user_id"]

    shown, full = run(go())
    if auth in ("header", "subprotocol"):
        assert (shown, full) == (short(USER_ID), USER_ID)
    else:  # the query is never read, and nothing is refused: an anonymous relaxed user
        assert shown == "relaxed_..." and full.startswith("relaxed_") and len(full) == len("relaxed_") + 8


@pytest.mark.parametrize("auth", ["header", "none"])
def test_ws_error_frame_exception(shared, auth):
    srv = fault_server(shared, "ws_error_frame_exception")

    async def go():
        async with open_ws(srv, auth=auth) as ws:
            err = await recv_json(ws)
            return err, await closed(ws)

    err, exc = run(go())
    assert err["type"] == "error_message" and "error_code" not in err  # nested, as beta-17 sent it
    assert err["data"]["error_code"] == "CONNECTION_ERROR"
    assert err["data"]["details"] == {"error_type": "RecursionError", "mode": "main"}
    assert isinstance(err["timestamp"], float)
    assert isinstance(exc, ConnectionClosedError) and (exc.rcvd.code, exc.rcvd.reason) == (1011, "main mode error")


def test_ws_moved(shared):
    srv = fault_server(shared, "ws_moved")

    async def go():
        refused = [await _invalid_status(srv, auth=a) for a in ("header", "none", "query")]
        refused.append(await _invalid_status(srv, auth="none", additional_headers={
            "Authorization": "Bearer " + token(srv).replace(".", ".x", 1)}))
        async with open_ws(srv, path="/api/v1/websocket") as ws:  # the same token works there
            (frame,) = await welcome(ws)
        return refused, frame

    refused, frame = run(go())
    assert refused == [(403, b"")] * 4  # a bare 403 for our token, none, and a wrong one
    assert frame["type"] == "connection_established" and frame["data"]["user_id"] == short(USER_ID)
    r = httpx.get(srv.base_url + "/ws")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    assert httpx.get(srv.base_url + "/api/v1/websocket").status_code == 200


def test_a_path_without_a_route_answers_like_the_real_backend(mid_server):
    async def go():
        return [await _invalid_status(mid_server, path="/api/nows", auth=a) for a in ("header", "none")]

    assert run(go()) == [(403, b"")] * 2
    r = httpx.get(mid_server.base_url + "/api/nows")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})


# ---------------------------------------------------------------------------- agent faults


def _heartbeats(n: int):
    """Stop after the n-th heartbeat: the server was idle n heartbeat intervals by then."""
    seen = []
    return lambda f: isinstance(f, dict) and f.get("type") == "heartbeat" and (seen.append(f) or len(seen) >= n)


async def _agent_frames(srv: RefServer, until=None, timeout: float = 3.0) -> list:
    async with open_ws(srv) as ws:
        await welcome(ws)
        await ws.send(json.dumps(START))
        return await collect(ws, until or is_event("agent_completed"), timeout)


def test_agent_swallowed(shared):
    srv = fault_server(shared, "agent_swallowed")
    frames = run(_agent_frames(srv, until=_heartbeats(3)))  # the server idles: nothing else comes
    assert frames and all(isinstance(f, dict) for f in frames)
    assert {f["type"] for f in frames} <= {"ack", "heartbeat", "ping"}
    assert frames[0]["type"] == "ack" and frames[0]["received_type"] == "start_agent"
    assert "heartbeat" in {f["type"] for f in frames}


def test_agent_stops_after_tool(shared):
    srv = fault_server(shared, "agent_stops_after_tool")

    async def go():
        async with open_ws(srv) as ws:
            await welcome(ws)
            await ws.send(json.dumps(START))
            frames = await collect(ws, is_event("tool_executing"))
            frames += await collect(ws, _heartbeats(3))  # then only heartbeats: the rest never comes
            await ws.send(json.dumps({"type": "ping"}))  # the connection stays open
            return frames, (await collect(ws, is_type("pong")))[-1]

    frames, pong = run(go())
    assert agent_events(frames) == FIVE[:3]
    assert pong["type"] == "pong"


def test_agent_error(shared):
    srv = fault_server(shared, "agent_error")
    frames = run(_agent_frames(srv, until=is_event("agent_error")))
    assert agent_events(frames) == ["agent_started", "agent_error"]
    assert frames[-1]["data"]["error_message"]


def test_agent_no_result(shared):
    srv = fault_server(shared, "agent_no_result")
    frames = run(_agent_frames(srv))
    assert agent_events(frames) == FIVE
    assert not frames[-1]["data"]["result"]


def test_agent_out_of_order(shared):
    srv = fault_server(shared, "agent_out_of_order")
    events = agent_events(run(_agent_frames(srv)))
    assert sorted(events) == sorted(FIVE) and events != FIVE
    assert events.index("tool_completed") < events.index("tool_executing")


def test_agent_cross_user(shared):
    srv = fault_server(shared, "agent_cross_user")
    done = []  # until the own agent_completed and the foreign one right behind it
    frames = run(_agent_frames(srv, until=lambda f: is_event("agent_completed")(f) and (done.append(f) or len(done) == 2)))
    users = {f["user_id"] for f in frames if event_name(f) in FIVE}
    runs = {f["run_id"] for f in frames if event_name(f) in FIVE}
    assert USER_ID in users and len(users) == 2 and len(runs) == 2
    own = [event_name(f) for f in frames if event_name(f) in FIVE and f["user_id"] == USER_ID]
    assert own == FIVE  # the session's own run is intact
    foreign = [event_name(f) for f in frames if event_name(f) in FIVE and f["user_id"] != USER_ID]
    assert foreign == FIVE and {f["user_id"] for f in frames if event_name(f) in FIVE} - {USER_ID} == {"e2e-other-user"}


def test_agent_non_json(shared):
    srv = fault_server(shared, "agent_non_json")
    frames = run(_agent_frames(srv))
    garbage = [f for f in frames if isinstance(f, str)]
    assert len(garbage) == 2
    for g in garbage:
        with pytest.raises(ValueError):
            json.loads(g)
    assert agent_events(frames) == ["agent_started", "tool_executing", "agent_completed"]


# ---------------------------------------------------------------------------- HTTP faults


def test_http_503_startup(shared):
    srv = fault_server(shared, "http_503_startup")
    for path in ("/health", "/api/health", "/api/discovery/services", "/api/mcp/servers", "/ws", "/nope"):
        t0 = time.perf_counter()
        r = httpx.get(srv.base_url + path, timeout=3)
        assert time.perf_counter() - t0 >= 0.1
        assert r.status_code == 503
        assert r.json() == {"status": "unhealthy", "message": "Startup in progress"}
    r = httpx.post(srv.auth_url + "/auth/e2e/test-auth", headers={"X-E2E-Bypass-Key": srv.config.e2e_key})
    assert r.status_code == 503
    status, body = run(_invalid_status(srv))
    assert status == 503 and json.loads(body)["message"] == "Startup in progress"


def test_http_split_health(shared):
    srv = fault_server(shared, "http_split_health")
    r = httpx.get(srv.base_url + "/health")
    assert r.status_code == 503 and r.json()["status"] == "unhealthy"
    r = httpx.get(srv.base_url + "/api/health")
    assert r.status_code == 200 and r.json()["status"] == "healthy"


def test_http_degraded(shared):
    srv = fault_server(shared, "http_degraded")
    body = httpx.get(srv.base_url + "/api/health").json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"]["status"] == "unhealthy"
    assert httpx.get(srv.base_url + "/health").json()["status"] == "healthy"


def test_http_mcp_500(shared):
    srv = fault_server(shared, "http_mcp_500")
    r = httpx.get(srv.base_url + "/api/mcp/servers")
    assert r.status_code == 500 and r.json() == {"error": "Internal server error"}
    assert httpx.get(srv.base_url + "/health").json()["status"] == "healthy"


def test_http_health_hang_and_stop_stays_quick(serve):
    srv = serve(faults=("http_health_hang",))
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(srv.base_url + "/health", timeout=httpx.Timeout(5, read=0.4))
    assert httpx.get(srv.base_url + "/api/health").status_code == 200

    async def go():  # stop while a request hangs
        async with httpx.AsyncClient(timeout=HANG_S) as client:
            pending = asyncio.ensure_future(client.get(srv.base_url + "/health"))
            await asyncio.sleep(0.2)
            assert not pending.done()  # it really hangs
            t0 = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(None, srv.stop)
            stop_s = time.monotonic() - t0
            try:
                return stop_s, await pending
            except httpx.RemoteProtocolError as exc:  # but not the client's own timeout
                return stop_s, exc

    stop_s, r = run(go())
    assert stop_s < HANG_S / 2
    # The hung request ends with the server, not with the client's timeout: the handler gives up and
    # answers 503, or, should it not manage before uvicorn's graceful-shutdown timeout, uvicorn drops
    # the connection.
    if not isinstance(r, httpx.RemoteProtocolError):
        assert r.status_code == 503 and r.json() == {"status": "unhealthy", "message": "Startup in progress"}


def test_http_e2e_401(shared):
    srv = fault_server(shared, "http_e2e_401")
    url = srv.auth_url + "/auth/e2e/test-auth"
    r = httpx.post(url, headers={"X-E2E-Bypass-Key": srv.config.e2e_key})
    assert r.status_code == 401 and r.json() == {"detail": "Invalid E2E bypass key"}
    assert httpx.post(url).json() == {"detail": "E2E bypass key required"}


@pytest.mark.parametrize("message,canned", [
    ("Analyze test data for pipeline validation", "Mock triage agent response for: Analyze test data for pipeline validation"),
    ("Testing", "Mock triage agent response for: Testing"),
    ("Analyze the quarterly cost data", "Fallback triage agent response: Successfully processed "
                                        "'Analyze the quarterly cost data' using recovery mechanism"),
])
def test_http_execute_canned(shared, message, canned):
    srv = fault_server(shared, "http_execute_canned")
    r = httpx.post(srv.base_url + "/api/agents/execute", json={"type": "triage", "message": message})
    assert r.status_code == 200
    assert r.json() == {"status": "success", "agent": "triage", "response": canned, "execution_time": 0.0,
                        "circuit_breaker_state": "CLOSED", "error": None}


def test_auth_e2e_not_configured(shared):
    srv = fault_server(shared, "auth_e2e_not_configured")
    url = srv.auth_url + "/auth/e2e/test-auth"
    for key in (srv.config.e2e_key, "a-wrong-key"):
        r = httpx.post(url, headers={"X-E2E-Bypass-Key": key}, json={"email": EMAIL})
        assert r.status_code == 503 and r.json() == {"detail": "E2E authentication not configured"}
    assert httpx.post(url, json={"email": EMAIL}).json() == {"detail": "E2E bypass key required"}
    assert httpx.get(srv.base_url + "/health").status_code == 200

    async def go():  # a locally signed token still opens a session
        async with open_ws(srv) as ws:
            return (await welcome(ws))[0]["type"]

    assert run(go()) == "connection_established"


def test_faults_combine(shared):
    srv = fault_server(shared, "http_mcp_500", "agent_error", "http_degraded")
    assert httpx.get(srv.base_url + "/api/mcp/servers").status_code == 500
    assert httpx.get(srv.base_url + "/api/health").json()["status"] == "degraded"
    frames = run(_agent_frames(srv, until=is_event("agent_error")))
    assert agent_events(frames) == ["agent_started", "agent_error"]


# Each fault profile -> the test of its raw behaviour on the wire.
RAW_TESTS = {
    "ws_1011_after_welcome": test_ws_1011_after_welcome,
    "ws_1011_on_message": test_ws_1011_on_message,
    "ws_error_frame_1011": test_ws_error_frame_1011,
    "ws_close_1000_early": test_ws_close_1000_early,
    "ws_auth_failed_1008": test_ws_auth_failed_1008,
    "ws_403_secret_mismatch": test_ws_403_secret_mismatch,
    "ws_403_no_route": test_ws_403_no_route,
    "ws_500_upgrade": test_ws_upgrade_http_errors,
    "ws_503_upgrade": test_ws_upgrade_http_errors,
    "ws_handshake_hang": test_ws_handshake_hang_times_out_and_stop_stays_quick,
    "ws_drop_1006": test_ws_drop_1006,
    "ws_bad_subprotocol": test_ws_bad_subprotocol,
    "ws_ignore_pings": test_ws_ignore_pings,
    "ws_connect_welcome": test_ws_connect_welcome,
    "ws_token_ignored": test_ws_token_ignored,
    "ws_query_token_ignored": test_ws_query_token_ignored,
    "ws_swallow_all": test_ws_swallow_all,
    "ws_error_frame_exception": test_ws_error_frame_exception,
    "ws_moved": test_ws_moved,
    "agent_swallowed": test_agent_swallowed,
    "agent_stops_after_tool": test_agent_stops_after_tool,
    "agent_error": test_agent_error,
    "agent_no_result": test_agent_no_result,
    "agent_out_of_order": test_agent_out_of_order,
    "agent_cross_user": test_agent_cross_user,
    "agent_non_json": test_agent_non_json,
    "http_503_startup": test_http_503_startup,
    "http_split_health": test_http_split_health,
    "http_degraded": test_http_degraded,
    "http_mcp_500": test_http_mcp_500,
    "http_health_hang": test_http_health_hang_and_stop_stays_quick,
    "http_e2e_401": test_http_e2e_401,
    "http_execute_canned": test_http_execute_canned,
    "auth_e2e_not_configured": test_auth_e2e_not_configured,
}


def test_every_fault_has_a_raw_behaviour_test():
    assert set(RAW_TESTS) == set(FAULTS)
    for name, fn in RAW_TESTS.items():
        assert fn.__name__.startswith("test_") and globals()[fn.__name__] is fn, name  # collected, not shadowed
        # a test shared by several faults is parametrized over them
        shared_by = [f for f, g in RAW_TESTS.items() if g is fn]
        if len(shared_by) > 1:
            (mark,) = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
            assert mark.args[0].split(",")[0] == "fault", fn.__name__
            assert name in {values[0] for values in mark.args[1]}, name


# ============================================================================ expected maps

# Simple, strict client probes, one per check: True when the check would pass.


# Generous: on a loaded machine (two suites on 2 cores) the healthy agent_execute took over 0.8 s, and a probe
# that gives up early reports a healthy check as broken. A broken check never answers in time whatever the
# wait (http_health_hang hangs until the server stops), so only the hang's probe waits this long.
PROBE_TIMEOUT = httpx.Timeout(5.0)


async def _http_ok(srv: RefServer, method: str, path: str, validate, **kw) -> bool:
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        try:
            r = await client.request(method, srv.base_url + path, **kw)
        except httpx.HTTPError:
            return False
    if r.status_code != 200:
        return False
    try:
        return bool(validate(r.json()))
    except Exception:
        return False


async def _e2e_token(srv: RefServer) -> str | None:
    """The token as the kit's default auth method (e2e_endpoint) gets it."""
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        try:
            r = await client.post(
                srv.auth_url + "/auth/e2e/test-auth", headers={"X-E2E-Bypass-Key": srv.config.e2e_key}, json={"email": EMAIL}
            )
            return r.json()["access_token"] if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError):
            return None


async def _ws_probe(srv: RefServer, body, placement: str = "header") -> bool:
    tok = await _e2e_token(srv)
    if tok is None:
        return False
    url, kw = srv.ws_url, {}
    if placement == "header":
        kw["additional_headers"] = {"Authorization": f"Bearer {tok}"}
    elif placement == "subprotocol":
        kw["subprotocols"] = [f"jwt.{tok}"]
    else:
        url += f"?token={tok}"
    try:
        async with connect(
            url,
            # Generous margins: a loaded 2-core machine must not turn a slow pong into a "broken" check.
            open_timeout=10, ping_interval=1.0, ping_timeout=5, close_timeout=0.5, **kw,
        ) as ws:
            frame = await recv_json(ws, 8.0)
            # the welcome (beta-12 named it 'connect') must name our user, shortened as the real one does
            if frame.get("type") not in ("connection_established", "connect"):
                return False
            if frame.get("data", {}).get("user_id") != short(USER_ID):
                return False
            return bool(await body(ws))
    except (ConnectionClosed, InvalidStatus, NegotiationError, TimeoutError, asyncio.TimeoutError, OSError, ValueError):
        return False


GRACE_S = 0.25


async def _grace(ws) -> bool:
    """The session must stay open and quiet, keepalive frames aside, a moment after the welcome (a close
    in that moment raises ConnectionClosed, which the probe reports as broken)."""
    keepalive = lambda f: isinstance(f, dict) and f.get("type") in ("heartbeat", "ping")  # noqa: E731
    frames = await collect(ws, lambda f: not keepalive(f), GRACE_S)
    return all(keepalive(f) for f in frames)


async def _ping(ws) -> bool:
    await ws.send(json.dumps({"type": "ping"}))
    frames = await collect(ws, lambda f: isinstance(f, dict) and f.get("type") == "pong", 3.0)
    return bool(frames) and frames[-1].get("type") == "pong"


async def _agent_run(ws) -> bool:
    await ws.send(json.dumps(START))
    frames = await collect(ws, lambda f: isinstance(f, dict) and event_name(f) in ("agent_completed", "agent_error"), 4.0)
    if any(not isinstance(f, dict) for f in frames):
        return False
    events = [f for f in frames if event_name(f) in FIVE + ["agent_error"]]
    return (
        [event_name(f) for f in events] == FIVE
        and {f["user_id"] for f in events} == {USER_ID}
        and len({f["run_id"] for f in events}) == 1
        and bool(events[-1]["data"].get("result"))
    )


async def _invalid_json(ws) -> bool:
    await ws.send("{oops")
    frame = await recv_json(ws, 8.0)
    return frame.get("type") == "error_message" and frame.get("error_code") == "JSON_PARSE_ERROR"


async def _empty_request(ws) -> bool:
    await ws.send(json.dumps({"type": "start_agent", "payload": {"user_request": ""}}))
    frame = await recv_json(ws, 8.0)
    return frame.get("type") == "error" and frame.get("message") == "Please enter a message"


def _not_canned(body: dict) -> bool:
    """An execute answer that did the work: not the real backend's canned texts, time measured."""
    response = body["response"]
    return bool(body["agent"]) and not response.startswith(("Mock ", "Fallback ")) and body["execution_time"] > 0


async def _execute_as_user(srv: RefServer) -> bool:
    """agent_execute runs as our user: the kit calls it with the E2E token (no token, no call)."""
    tok = await _e2e_token(srv)
    if tok is None:
        return False
    return await _http_ok(srv, "POST", "/api/agents/execute", _not_canned, headers={"Authorization": f"Bearer {tok}"},
                          json={"type": "triage", "message": "Analyze test data for pipeline validation"})


def _probes(srv: RefServer, placement: str = "header") -> dict:
    key = {"X-E2E-Bypass-Key": srv.config.e2e_key}
    return {
        "health": lambda: _http_ok(srv, "GET", "/health", lambda b: b["status"] == "healthy"),
        "api_health": lambda: _http_ok(srv, "GET", "/api/health", lambda b: b["status"] == "healthy"),
        "service_discovery": lambda: _http_ok(srv, "GET", "/api/discovery/services", lambda b: len(b["services"]) == 3),
        "auth_token": lambda: _http_ok(srv, "POST", "/auth/e2e/test-auth", lambda b: b["access_token"], headers=key, json={"email": "a@b.io"}),
        "websocket_connect": lambda: _ws_probe(srv, _grace, placement),
        "websocket_ping": lambda: _ws_probe(srv, _ping, placement),
        "agent_discovery": lambda: _http_ok(srv, "GET", "/api/mcp/servers", lambda b: b["data"]),
        "agent_configuration": lambda: _http_ok(srv, "GET", "/api/mcp/config", lambda b: b["websocket"]),
        "agent_status": lambda: _http_ok(srv, "GET", "/api/agents/status", lambda b: isinstance(b, list)),
        "agent_execute": lambda: _execute_as_user(srv),
        "agent_run": lambda: _ws_probe(srv, _agent_run, placement),
        "ws_invalid_json": lambda: _ws_probe(srv, _invalid_json, placement),
        "ws_empty_request": lambda: _ws_probe(srv, _empty_request, placement),
    }


@pytest.mark.parametrize("placement", ["header", "query", "subprotocol"])
def test_probes_pass_on_a_healthy_server(shared, placement):
    results = _probe_all(fault_server(shared), placement)
    assert set(results) == set(ALL_CHECKS)
    assert all(results.values()), results


def _probe_all(srv: RefServer, placement: str = "header") -> dict[str, bool]:
    async def go():
        probes = _probes(srv, placement)
        return dict(zip(probes, await asyncio.gather(*(p() for p in probes.values()))))

    return run(go())


@pytest.mark.parametrize("name", list(FAULTS))
def test_expected_map_matches_what_breaks(shared, name):
    srv = fault_server(shared, name)
    fault = FAULTS[name]
    # A profile tied to a placement is probed with each (the healthy server passes with each:
    # test_probes_pass_on_a_healthy_server); the others with the kit's default, the header.
    for placement in ("header", "query", "subprotocol") if fault.placement else ("header",):
        results = _probe_all(srv, placement)
        broken = {check for check, ok in results.items() if not ok}
        if fault.placement in (None, placement):
            assert broken == set(fault.expected), (placement, results)
        else:  # the profile's expectations hold for another placement: nothing breaks here
            assert broken == set(), (placement, results)
