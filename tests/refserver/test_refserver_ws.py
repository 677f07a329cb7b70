"""The WebSocket contract of the reference platform: auth placements, token rejection, the session
flow of every era, agent runs and the other frames.  Real sockets, websockets' asyncio client."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import datetime

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from netra_nb.refserver import RefServer

from rs_helpers import (
    FIVE,
    USER_ID,
    agent_events,
    closed,
    collect,
    event_body,
    event_name,
    is_event,
    make_config,
    open_ws,
    recv_json,
    run,
    short,
    token,
    welcome,
)

START = {"type": "start_agent", "payload": {"user_request": "Analyze test data", "agent_type": "triage"}}


# ---------------------------------------------------------------------------- the upgrade


async def _upgrade_status(url: str, **kw) -> tuple[int, bytes]:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, open_timeout=3, **kw):
            pass
    return info.value.response.status_code, info.value.response.body or b""


@pytest.mark.parametrize("case", ["missing", "wrong_secret", "expired", "refresh", "garbage"])
def test_bad_token_is_refused_with_403_before_the_upgrade(mid_server, case):
    url = mid_server.ws_url
    from netra_nb.refserver.tokens import mint_access_token, mint_refresh_token

    secret = mid_server.config.jwt_secret
    kw: dict = {}
    if case == "wrong_secret":
        kw["additional_headers"] = {"Authorization": "Bearer " + mint_access_token("not-the-secret-" + "x" * 32)}
    elif case == "expired":
        kw["additional_headers"] = {"Authorization": "Bearer " + mint_access_token(secret, now=time.time() - 3600)}
    elif case == "refresh":
        kw["additional_headers"] = {"Authorization": "Bearer " + mint_refresh_token(secret, "a@b.c")}
    elif case == "garbage":
        url += "?token=not-a-jwt"
    status, body = run(_upgrade_status(url, **kw))
    assert status == 403
    assert json.loads(body)["detail"].startswith("WebSocket authentication failed")


@pytest.mark.parametrize("auth", ["header", "query", "subprotocol"])
def test_each_token_placement_is_accepted(mid_server, auth):
    async def go():
        async with open_ws(mid_server, auth=auth) as ws:
            (frame,) = await welcome(ws)
            assert frame["data"]["user_id"] == short(USER_ID)  # the real welcome shortens it
            return ws.subprotocol

    chosen = run(go())
    if auth == "subprotocol":
        assert chosen.startswith("jwt.eyJ")  # the token-bearing entry is echoed
    else:
        assert chosen is None


@pytest.mark.parametrize("prefix", ["jwt.", "jwt-auth.", "bearer."])
@pytest.mark.parametrize("encoding", ["raw", "base64url"])
def test_subprotocol_forms_are_echoed(mid_server, prefix, encoding):
    tok = token(mid_server)
    value = tok if encoding == "raw" else base64.urlsafe_b64encode(tok.encode()).decode().rstrip("=")
    offered = prefix + value

    async def go():
        async with connect(mid_server.ws_url, subprotocols=["netra.v1", offered], open_timeout=3) as ws:
            await welcome(ws)
            return ws.subprotocol

    assert run(go()) == offered


def test_alias_path_serves_the_same_session(mid_server):
    async def go():
        async with open_ws(mid_server, path="/api/v1/websocket") as ws:
            (frame,) = await welcome(ws)
            assert frame["type"] == "connection_established"
            await ws.send(json.dumps(START))
            frames = await collect(ws, is_event("agent_completed"))
            return agent_events(frames)

    assert run(go()) == FIVE


# ---------------------------------------------------------------------------- eras


def _check_run(frames: list, era: str, run_id: str | None = None) -> None:
    events = [f for f in frames if isinstance(f, dict) and event_name(f) in FIVE]
    assert [event_name(f) for f in events] == FIVE
    bodies = [event_body(f) for f in events]
    run_ids = {b["run_id"] for b in bodies}
    assert len(run_ids) == 1 and all(run_ids)
    if run_id:
        assert run_ids == {run_id}
    assert {b["user_id"] for b in bodies} == {USER_ID}
    assert all(b["agent_name"] == "triage" for b in bodies)
    by_name = dict(zip(FIVE, events))
    if era == "early":
        # flat, with both names of the event (the real early events carried type and event)
        assert all(e["type"] == e["event"] and isinstance(e["timestamp"], float) for e in events)
        assert by_name["tool_executing"]["tool_name"] and by_name["tool_completed"]["results"]
        assert by_name["agent_completed"]["status"] == "completed" and by_name["agent_completed"]["result"]
        return
    for b in bodies:
        assert isinstance(b["timestamp"], str) and "T" in b["timestamp"]
        assert isinstance(b["data"], dict)
    assert by_name["tool_executing"]["tool_name"] and by_name["tool_completed"]["tool_name"]
    assert by_name["tool_completed"]["results"]
    done = by_name["agent_completed"]["data"]
    assert done["status"] == "completed" and done["result"] and done["execution_time_ms"] >= 0
    if era == "october":
        assert events[0]["type"] == "system_message" and events[1]["type"] == "agent_progress"
        assert all(isinstance(e["timestamp"], float) for e in events[:2])  # the wrappers' own stamp
        assert [e["type"] for e in events[2:]] == FIVE[2:]


def test_early_era_session():
    with RefServer(make_config(era="early", heartbeat_interval=0.2)) as srv:
        async def go():
            async with open_ws(srv) as ws:
                first, second = await welcome(ws, "early")
                assert first["type"] == "handshake_validation" and first["validation_id"]
                assert second["type"] == "system_message"
                assert isinstance(first["timestamp"], float) and isinstance(second["timestamp"], float)
                data = second["data"]
                assert data["event"] == "connection_established" and data["connection_ready"] is True
                assert data["user_id"] == USER_ID and data["connection_id"]  # early welcomes carry the whole id
                ping = await recv_json(ws, keep={"ping"})  # the early server pings
                assert ping["type"] == "ping" and isinstance(ping["timestamp"], float)
                await ws.send(json.dumps({"type": "start_agent", "user_request": "x", "agent_type": "triage", "run_id": "run-early-1"}))
                frames = await collect(ws, is_event("agent_completed"))
                _check_run(frames, "early", "run-early-1")
                pings = await collect(ws, lambda f: f.get("type") == "ping", timeout=2)
                assert pings and pings[-1]["type"] == "ping"

        run(go())


def test_mid_era_session(mid_server):
    async def go():
        async with open_ws(mid_server) as ws:
            (frame,) = await welcome(ws)
            assert frame["type"] == "connection_established"
            assert isinstance(frame["timestamp"], float)
            assert frame["server_id"] is None and frame["correlation_id"] is None
            data = frame["data"]
            assert data["mode"] == "main" and data["user_id"] == "e2e-alic..."  # first 8 characters + "..."
            assert data["connection_id"].startswith("main_")
            assert data["golden_path_events"] == FIVE
            assert data["features"] and all(v is True for v in data["features"].values())
            datetime.fromisoformat(data["timestamp"])
            await ws.send(json.dumps({**START, "thread_id": "thread-1", "payload": {**START["payload"], "run_id": "run-mid-1"}}))
            frames = await collect(ws, is_event("agent_completed"))
            _check_run(frames, "mid", "run-mid-1")
            assert all(f["thread_id"] == "thread-1" for f in frames if event_name(f) in FIVE)

    run(go())


def test_october_era_session_with_handshake():
    with RefServer(make_config(era="october")) as srv:
        async def go():
            async with open_ws(srv) as ws:
                established, handshake = await welcome(ws, "october")
                assert established["type"] == "connection_established"
                assert established["data"]["user_id"] == short(USER_ID)
                assert handshake["type"] == "handshake_response"
                assert handshake["thread_id"] and handshake["run_id"] and isinstance(handshake["timestamp"], float)
                await ws.send(json.dumps({"type": "handshake_acknowledged", "thread_id": handshake["thread_id"]}))
                complete = await recv_json(ws)
                assert complete["type"] == "handshake_complete" and isinstance(complete["timestamp"], float)
                await ws.send(json.dumps({**START, "thread_id": handshake["thread_id"]}))
                frames = await collect(ws, is_event("agent_completed"))
                _check_run(frames, "october", handshake["run_id"])

        run(go())


def test_october_runs_without_the_acknowledgement():
    with RefServer(make_config(era="october")) as srv:
        async def go():
            async with open_ws(srv) as ws:
                await welcome(ws, "october")
                await ws.send(json.dumps(START))
                frames = await collect(ws, is_event("agent_completed"))
                _check_run(frames, "october")

        run(go())


# ---------------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    "message",
    [
        {"type": "user_message", "payload": {"content": "hi", "agent_type": "triage"}},
        {"type": "message", "payload": {"content": "hi", "agent_type": "triage"}},
        {"type": "chat_message", "content": "hi", "agent_type": "triage"},
        {"type": "execute_agent", "payload": {"user_request": "hi", "agent_type": "triage"}},
    ],
)
def test_message_aliases_start_a_run(mid_server, message):
    async def go():
        async with open_ws(mid_server) as ws:
            await welcome(ws)
            await ws.send(json.dumps(message))
            return await collect(ws, is_event("agent_completed"))

    _check_run(run(go()), "mid")


def test_other_frames(mid_server):
    async def go():
        async with open_ws(mid_server) as ws:
            await welcome(ws)
            await ws.send(json.dumps({"type": "ping"}))
            pong = await recv_json(ws, keep={"pong"})
            assert pong["type"] == "pong" and isinstance(pong["timestamp"], float)
            await ws.send(json.dumps({"type": "frobnicate", "x": 1}))
            ack = await recv_json(ws)
            assert isinstance(ack.pop("timestamp"), float)
            # the real ack names the whole user id (the welcome only shortens it)
            assert ack == {"type": "ack", "received_type": "frobnicate", "user_id": USER_ID, "status": "acknowledged"}
            await ws.send("{this is not json")
            err = await recv_json(ws)
            assert isinstance(err.pop("timestamp"), float)
            assert err == {"type": "error_message", "error_code": "JSON_PARSE_ERROR", "error_message": "Invalid JSON format",
                           "details": {}, "recovery_suggestions": None}
            for empty in (
                {"type": "start_agent", "payload": {"user_request": ""}},
                {"type": "user_message", "payload": {"content": "   "}},
                {"type": "start_agent"},
            ):
                await ws.send(json.dumps(empty))
                frame = await recv_json(ws)
                assert isinstance(frame.pop("timestamp"), float)
                assert frame == {"type": "error", "message": "Please enter a message"}
            # and the session still works afterwards
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv_json(ws, keep={"pong"}))["type"] == "pong"

    run(go())


def test_heartbeats_when_idle(shared):
    interval = 0.15
    srv = shared(heartbeat_interval=interval)

    async def go():
        async with open_ws(srv) as ws:
            (established,) = await welcome(ws)
            return [established] + [await recv_json(ws, keep={"heartbeat"}) for _ in range(2)]

    frames = run(go())
    assert [f["type"] for f in frames] == ["connection_established", "heartbeat", "heartbeat"]
    for beat in frames[1:]:  # the real heartbeat's shape
        assert beat["data"]["connection_id"] == frames[0]["data"]["connection_id"]
        datetime.fromisoformat(beat["data"]["timestamp"])
        assert beat["data"]["stats"] == {"messages_processed": 0, "agent_events_processed": 0}
        assert beat["server_id"] is None and beat["correlation_id"] is None
    # the server's own timestamps: a heartbeat goes out once the session was idle for an interval
    # (a small allowance for the clocks' granularity), and no burst of them
    stamps = [f["timestamp"] for f in frames]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(gap >= interval - 0.005 for gap in gaps), gaps


def test_concurrent_runs_on_one_connection(shared):
    srv = shared(agent_event_offsets=(0.05, 0.1, 0.15, 0.2, 0.25))

    async def go():
        async with open_ws(srv) as ws:
            await welcome(ws)
            for rid in ("run-a", "run-b", "run-c"):
                await ws.send(json.dumps({"type": "start_agent", "payload": {"user_request": "x", "run_id": rid}}))
            completed: set[str] = set()
            frames = await collect(
                ws, lambda f: event_name(f) == "agent_completed" and completed.add(f["run_id"]) is None and len(completed) == 3
            )
            per_run: dict[str, list[str]] = {}
            for f in frames:
                if event_name(f) in FIVE:
                    per_run.setdefault(f["run_id"], []).append(event_name(f))
            return per_run

    per_run = run(go())
    assert per_run == {"run-a": FIVE, "run-b": FIVE, "run-c": FIVE}


def test_event_offsets_are_honoured(serve):
    offsets = (0.1, 0.2, 0.3, 0.4, 0.5)
    srv = serve(agent_event_offsets=offsets)

    async def go():
        async with open_ws(srv) as ws:
            await welcome(ws)
            t0 = time.monotonic()
            await ws.send(json.dumps(START))
            frames, arrivals = [], []
            for _ in FIVE:
                frames.append(await recv_json(ws))
                arrivals.append(time.monotonic() - t0)
            return frames, arrivals

    frames, arrivals = run(go())
    assert [event_name(f) for f in frames] == FIVE
    # On the server's clock: when each event was made, in seconds since the run started (the run's
    # execution_time_ms is measured from the start to agent_completed).
    stamps = [datetime.fromisoformat(f["timestamp"]).timestamp() for f in frames]
    since_start = [frames[-1]["data"]["execution_time_ms"] / 1000 - (stamps[-1] - t) for t in stamps]
    late = [t - want for t, want in zip(since_start, offsets)]
    # never early (a millisecond for the rounding of the ISO stamps and of execution_time_ms) ...
    assert all(x >= -0.001 for x in late), late
    assert all(t >= want for t, want in zip(arrivals, offsets)), arrivals  # the client's clock agrees
    # ... and scheduled by the offsets themselves: none is late by a whole run's length (offsets
    # summed as sleeps would put the last event at 1.5 s, 1 s late) - generous for a busy machine
    assert all(x < offsets[-1] for x in late), late


def test_idle_timeout_closes_main_cleanup(shared):
    srv = shared(idle_timeout=0.3, heartbeat_interval=0.1)

    async def go():
        async with open_ws(srv) as ws:
            await welcome(ws)
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 3)
            return ws.close_code, ws.close_reason

    assert run(go()) == (1000, "main cleanup")


def test_stop_is_quick_with_open_sessions_and_clients_see_1012(serve):
    offsets = (20, 21, 22, 23, 24)  # the run in flight would hold a waiting stop() this long
    srv = serve(agent_event_offsets=offsets)

    async def go():
        async with open_ws(srv) as ws:
            await welcome(ws)
            await ws.send(json.dumps(START))  # a run in flight
            t0 = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(None, srv.stop)
            stop_s = time.monotonic() - t0
            await closed(ws, 3)
            return stop_s, ws.close_code

    stop_s, code = run(go())
    assert stop_s < offsets[0] / 2  # it did not wait for the run
    assert code == 1012
    with pytest.raises(httpx.TransportError):
        httpx.get(srv.base_url + "/health", timeout=1)

