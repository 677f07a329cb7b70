"""The edges of netra_nb/ws.py against real WebSocket servers on loopback (tests/contract_servers.py)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from contract_servers import WsStub, welcome
from netra_nb import ws as wsmod
from netra_nb.ws import WsSession, place_token


def go(coro):
    return asyncio.run(coro)


def test_the_token_goes_where_the_params_say():
    assert place_token("ws://h/ws", "T", "header") == ("ws://h/ws", {"Authorization": "Bearer T"}, [])
    assert place_token("ws://h/ws", "T", "subprotocol") == ("ws://h/ws", {}, ["jwt.T"])
    assert place_token("ws://h/ws?a=1", "T", "query") == ("ws://h/ws?a=1&token=T", {}, [])
    assert place_token("ws://h/ws", None, "query") == ("ws://h/ws", {}, [])
    with pytest.raises(ValueError):
        place_token("ws://h/ws", "T", "cookie")


def test_a_close_that_arrived_while_nothing_was_reading_is_recorded_with_its_time():
    async def closes(ws, me):
        await ws.send(json.dumps(welcome(me)))
        await ws.close(1011, "main mode error")

    async def client(url):
        s = WsSession(url, None)
        await s.open()
        await s.receive(1.0)  # the welcome
        await asyncio.sleep(0.4)  # nobody reads while the close arrives
        await s.close()
        return s.obs

    with WsStub(closes) as srv:
        obs = go(client(srv.ws_url))
    assert (obs.close_code, obs.close_reason, obs.closed_by) == (1011, "main mode error", "server")
    assert obs.close_t < obs.frames[0].t + 0.3  # when it arrived, not when it was noticed


def test_our_own_normal_close_is_not_recorded_as_a_close():
    async def quiet(ws, me):
        await ws.send(json.dumps(welcome(me)))
        await asyncio.sleep(30)

    async def client(url):
        s = WsSession(url, None)
        await s.open()
        await s.welcome(2.0)
        await s.close()
        return s.obs

    with WsStub(quiet) as srv:
        obs = go(client(srv.ws_url))
    assert obs.close_code is None and not [f for f in obs.frames if f.direction == "close"]


def test_frames_waiting_when_the_request_goes_out_are_dated_before_it():
    async def chatty(ws, me):
        await ws.send(json.dumps(welcome(me)))
        for i in range(5):
            await ws.send(json.dumps({"type": "agent_started", "run_id": f"old{i}"}))
        await asyncio.sleep(30)

    async def client(url):
        s = WsSession(url, None)
        await s.open()
        await s.receive(2.0)  # the welcome only
        await asyncio.sleep(0.3)  # the other five are buffered now
        await s.send({"type": "start_agent"}, request=True)
        return s.obs

    with WsStub(chatty) as srv:
        obs = go(client(srv.ws_url))
    received = [f for f in obs.frames if f.direction == "received"]
    assert len(received) == 6 and all(f.t < obs.request_t for f in received)


def test_a_server_that_stopped_reading_gets_a_real_1011_from_us():
    async def deaf(ws, me):
        await ws.send(json.dumps(welcome(me)))
        ws.transport.pause_reading()
        await asyncio.sleep(30)

    async def client(url):
        s = WsSession(url, None, ping_interval=None)
        await s.open()
        await s.welcome(2.0)
        rtt = await s.ping_probe(0.5)
        sent = s.conn.protocol.close_sent
        await s.close()
        return rtt, sent, s.obs

    with WsStub(deaf) as srv:
        rtt, sent, obs = go(client(srv.ws_url))
    assert rtt is None and sent is not None and sent.code == 1011  # the close frame really went out
    assert (obs.close_code, obs.closed_by) == (1011, "client") and "no pong within 0.5s" in obs.close_reason


def test_bytes_are_counted_on_the_socket_exactly():
    payloads = [json.dumps(welcome("u")), json.dumps({"type": "pong", "pad": "p" * 300}), "z" * 70000]

    async def sends(ws, me):
        for p in payloads:
            await ws.send(p)
        await asyncio.sleep(30)

    async def client(url):
        s = WsSession(url, None)
        await s.open()
        for _ in payloads:
            await s.receive(2.0)
        head = len(s.conn.response.serialize())
        return s.obs, head

    with WsStub(sends) as srv:
        obs, head = go(client(srv.ws_url))

    def frame(n):  # server frames are unmasked
        return n + 2 + (2 if 126 <= n < 65536 else 8 if n >= 65536 else 0)
    assert obs.bytes_received == head + sum(frame(len(p.encode())) for p in payloads)
    assert obs.bytes_sent > 0  # the upgrade request


def test_a_refused_upgrade_counts_the_refusal_and_keeps_its_body():
    async def never(ws, me):
        pass
    with WsStub(never, refuse={"/ws": (403, b'{"detail":"WebSocket authentication failed"}')}) as srv:
        async def client():
            s = WsSession(srv.ws_url, "tok")
            await s.open()
            return s.obs
        obs = go(client())
    assert obs.upgrade_status == 403 and "authentication failed" in obs.upgrade_body
    assert obs.bytes_received > len(obs.upgrade_body) and obs.bytes_sent > 0


@pytest.mark.parametrize("first, grace", [({"type": "features", "data": {}}, wsmod.UNKNOWN_WELCOME_GRACE),
                                          ({"type": "authentication_success", "user_id": "u"}, wsmod.AUTH_WELCOME_GRACE)])
def test_the_welcome_wait_is_short_after_a_frame_that_is_not_the_welcome(first, grace):
    async def odd(ws, me):
        await ws.send(json.dumps(first))
        await asyncio.sleep(30)

    async def client(url):
        s = WsSession(url, None)
        await s.open()
        t = time.perf_counter()
        got = await s.welcome(20.0)
        return got, time.perf_counter() - t, s.obs

    with WsStub(odd) as srv:
        got, waited, obs = go(client(srv.ws_url))
    assert waited < 20.0 - 5  # not the whole timeout
    assert obs.stage == "open"
    if first["type"] == "authentication_success":
        assert got and obs.welcome.event == "auth_success"
    else:
        assert not got and obs.welcome is None


def test_the_october_handshake_is_acknowledged_before_the_request():
    async def october(ws, me):
        await ws.send(json.dumps(welcome(me)))
        await ws.send(json.dumps({"type": "handshake_response", "thread_id": "th_1", "run_id": "run_1",
                                  "timestamp": time.time()}))
        ack = json.loads(await ws.recv())
        assert ack == {"type": "handshake_acknowledged", "thread_id": "th_1"}
        await ws.send(json.dumps({"type": "handshake_complete", "thread_id": "th_1", "timestamp": time.time()}))
        await asyncio.sleep(30)

    async def client(url):
        s = WsSession(url, None)
        await s.open()
        await s.welcome(3.0)
        return s.obs

    with WsStub(october) as srv:
        obs = go(client(srv.ws_url))
    assert [f.norm.event for f in obs.frames if f.direction == "received"] == \
        ["welcome", "handshake_response", "handshake_complete"]
