"""The reference platform sends what the real backend sent: each frame and answer compared, by shape
(keys and value types, recursively) and where it matters by value, with the captures in tests/realshapes/."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus

import realshapes
from realshapes import received, signature
from rs_helpers import USER_ID, closed, collect, open_ws, recv_json, run, short, welcome


def only(frames: list, kind: str) -> dict:
    (frame,) = [f for f in frames if isinstance(f, dict) and f.get("type") == kind][:1]
    return frame


def wire(name: str, direction: str) -> list[dict]:
    return [w for w in realshapes.load(name)["wire"] if w["dir"] == direction]


def test_the_fixtures_are_well_formed_and_hold_no_token():
    names = realshapes.names()
    assert len(names) >= 20
    for name in names:
        text = (realshapes.HERE / f"{name}.json").read_text()
        assert "eyJ" not in text.replace("eyJhbGciOiJI", ""), name  # JWTs appear only as [REDACTED-JWT]
        fixture = realshapes.load(name)
        assert fixture["backend"] and fixture["shows"] and fixture["wire"]
        assert [w["t"] for w in fixture["wire"]] == sorted(w["t"] for w in fixture["wire"]), name


def test_signature_sees_shape_not_values():
    assert signature({"a": 1.5, "b": [{"x": "s"}, {"x": "t"}], "c": None}) == {
        "a": "number", "b": [{"x": "string"}], "c": "null"}
    assert signature({"a": 1}) != signature({"a": 1.0}) != signature({"a": "1"})


# ---------------------------------------------------------------------------- WebSocket frames


async def _mid_session(srv, *messages: str, keep=frozenset()) -> list:
    """The welcome and one answer per message (keepalive frames skipped unless kept)."""
    async with open_ws(srv) as ws:
        frames = await welcome(ws)
        for message in messages:
            await ws.send(message)
            frames.append(await recv_json(ws, keep=keep))
        return frames


def test_mid_welcome_is_the_real_welcome(mid_server):
    (real,) = received("beta14_welcome_header")
    (ours,) = run(_mid_session(mid_server))
    assert signature(ours) == signature(real)
    assert ours["data"]["features"] == real["data"]["features"]
    assert ours["data"]["golden_path_events"] == real["data"]["golden_path_events"]
    # the shortening rule is the real one: first 8 characters of the sub, then "..."
    assert real["data"]["user_id"] == short(realshapes.load("beta14_welcome_header")["our_sub"])
    assert ours["data"]["user_id"] == short(USER_ID)
    assert len(ours["data"]["connection_id"]) == len(real["data"]["connection_id"])


def test_heartbeat_is_the_real_heartbeat(shared):
    real = only(received("beta14_idle_heartbeats"), "heartbeat")
    srv = shared(heartbeat_interval=0.1)

    async def go():
        async with open_ws(srv) as ws:
            await welcome(ws)
            return await recv_json(ws, keep={"heartbeat"})

    assert signature(run(go())) == signature(real)


def test_error_and_ack_frames_are_the_real_ones(mid_server):
    real_error = only(received("beta14_invalid_json"), "error_message")
    real_ack = only(received("beta14_ack_unknown_type"), "ack")
    _, error, ack = run(_mid_session(mid_server, "{this is not json", json.dumps({"type": "unknown_thing_xyz"})))
    assert signature(error) == signature(real_error)
    assert {k: error[k] for k in ("error_code", "error_message")} == {k: real_error[k] for k in ("error_code", "error_message")}
    assert signature(ack) == signature(real_ack)
    assert ack["user_id"] == USER_ID  # the ack names the whole id, as the real one did
    assert real_ack["user_id"] == realshapes.load("beta14_ack_unknown_type")["our_sub"]


def test_every_server_frame_carries_a_top_level_timestamp(mid_server):
    frames = run(_mid_session(mid_server, '{"type":"ping"}', "{bad", '{"type":"frobnicate"}',
                              '{"type":"start_agent","payload":{"user_request":""}}', keep={"pong"}))
    assert [f["type"] for f in frames] == ["connection_established", "pong", "error_message", "ack", "error"]
    assert all(isinstance(f["timestamp"], float) for f in frames), frames


def test_connect_welcome_is_beta12s(shared):
    real = received("beta12_connect_welcome_start_agent")[0]
    (ours,) = run(_mid_session(shared(faults=("ws_connect_welcome",))))
    assert ours["type"] == real["type"] == "connect"
    assert signature(ours) == signature(real)


def test_swallowed_start_agent_shows_only_heartbeats_as_on_beta14_and_beta12(shared):
    for name in ("beta14_swallow_start_agent", "beta12_connect_welcome_start_agent"):
        after = [w for w in realshapes.load(name)["wire"] if w["dir"] == "recv"][1:]  # after the welcome
        assert after and {json.loads(w["text"])["type"] for w in after} == {"heartbeat"}, name
    srv = shared(faults=("ws_swallow_all",), heartbeat_interval=0.1)

    async def go():
        async with open_ws(srv) as ws:
            await welcome(ws)
            await ws.send(json.dumps({"type": "start_agent", "payload": {"user_request": "Analyze test data"}}))
            seen: list = []
            return await collect(ws, lambda f: seen.append(f) or len(seen) >= 3, 3.0)

    frames = run(go())
    assert len(frames) == 3 and {f["type"] for f in frames} == {"heartbeat"}
    assert frames[-1]["data"]["stats"] == {"messages_processed": 1, "agent_events_processed": 1}


@pytest.mark.parametrize("fault,fixture,shown,full", [
    ("ws_token_ignored", "beta14_demo_welcome", "demo-use...", "demo-user-001"),
    ("ws_query_token_ignored", "beta14_query_token_relaxed", "relaxed_...", None),
])
def test_a_session_that_is_not_ours_names_its_user_as_the_real_one_did(shared, fault, fixture, shown, full):
    real = received(fixture)
    assert real[0]["data"]["user_id"] == shown
    srv = shared(faults=(fault,))

    async def go():
        async with open_ws(srv, auth="query") as ws:
            (frame,) = await welcome(ws)
            await ws.send(json.dumps({"type": "unknown_thing_xyz"}))
            return frame, await recv_json(ws)

    frame, ack = run(go())
    assert signature(frame) == signature(real[0]) and frame["data"]["user_id"] == shown
    if full:
        assert ack["user_id"] == full
    else:
        real_ack = only(real, "ack")
        assert ack["user_id"].startswith("relaxed_") and real_ack["user_id"].startswith("relaxed_")


def test_beta17_error_frame_and_close(shared):
    real = received("beta17_error_frame_1011")
    (close,) = wire("beta17_error_frame_1011", "close")
    srv = shared(faults=("ws_error_frame_exception",))

    async def go():
        async with open_ws(srv) as ws:
            frame = await recv_json(ws)
            exc = await closed(ws)
            assert isinstance(exc, ConnectionClosedError)
            return frame, exc.rcvd

    frame, rcvd = run(go())
    assert signature(frame) == signature(real[0])
    assert {k: v for k, v in frame["data"].items() if k != "timestamp"} == {
        k: v for k, v in real[0]["data"].items() if k != "timestamp"}
    assert (rcvd.code, rcvd.reason) == (close["code"], close["reason"]) == (1011, "main mode error")


# ---------------------------------------------------------------------------- refusals and HTTP


@pytest.mark.parametrize("fixture", ["beta14_no_route_403", "beta14_no_route_403_no_token"])
def test_no_route_refusal_is_the_real_one(shared, fixture):
    (real,) = wire(fixture, "refused")
    srv = shared(faults=("ws_moved",))

    async def go():
        with pytest.raises(InvalidStatus) as info:
            async with open_ws(srv, auth=realshapes.load(fixture)["wire"][0]["placement"]):
                pass
        return info.value.response

    response = run(go())
    assert (response.status_code, bytes(response.body)) == (real["status"], real["body"].encode())
    assert response.headers["Content-Type"] == real["headers"]["Content-Type"]
    assert response.headers["Content-Length"] == real["headers"]["Content-Length"] == "0"


@pytest.mark.parametrize("fixture,path", [("beta14_no_route_get_404", "/api/nows"), ("beta14_get_ws_404", "/ws")])
def test_get_on_a_websocket_or_unknown_path_is_the_real_404(mid_server, fixture, path):
    (real,) = wire(fixture, "response")
    r = httpx.get(mid_server.base_url + path)
    assert (r.status_code, r.json()) == (real["status"], json.loads(real["body"]))


@pytest.mark.parametrize("fixture", ["execute_mock_test", "execute_fallback"])
def test_canned_execute_is_the_real_one(shared, fixture):
    request, response = wire(fixture, "request")[0], wire(fixture, "response")[0]
    srv = shared(faults=("http_execute_canned",))
    r = httpx.post(srv.base_url + request["path"], json=json.loads(request["body"]))
    assert r.status_code == response["status"]
    assert r.json() == json.loads(response["body"])


def test_healthy_execute_is_not_canned_and_measures_its_time(mid_server):
    request = json.loads(wire("execute_mock_test", "request")[0]["body"])  # a message with "test" in it
    body = httpx.post(mid_server.base_url + "/api/agents/execute", json=request).json()
    canned = json.loads(wire("execute_mock_test", "response")[0]["body"])
    assert signature(body) == signature(canned)
    assert not body["response"].startswith(("Mock ", "Fallback "))
    assert body["execution_time"] >= mid_server.config.agent_event_offsets[0] > 0


@pytest.mark.parametrize("fixture,key", [("auth_dev_e2e_503", True), ("auth_dev_e2e_no_key_401", False)])
def test_e2e_endpoint_in_development_is_the_real_one(shared, fixture, key):
    request, response = wire(fixture, "request")[0], wire(fixture, "response")[0]
    srv = shared(faults=("auth_e2e_not_configured",))
    headers = {"X-E2E-Bypass-Key": srv.config.e2e_key} if key else {}
    r = httpx.post(srv.auth_url + request["path"], json=json.loads(request["body"]), headers=headers)
    assert (r.status_code, r.json()) == (response["status"], json.loads(response["body"]))
    assert r.headers["content-type"] == response["headers"]["content-type"] == "application/json"


def test_e2e_token_answer_has_the_real_shape(mid_server):
    real = json.loads(wire("auth_staging_e2e_200", "response")[0]["body"])
    request = json.loads(wire("auth_staging_e2e_200", "request")[0]["body"])
    r = httpx.post(mid_server.auth_url + "/auth/e2e/test-auth", json=request,
                   headers={"X-E2E-Bypass-Key": mid_server.config.e2e_key})
    body = r.json()
    assert signature(body) == signature(real)
    assert body["user"]["id"] == real["user"]["id"]  # "e2e-" + the email's local part
