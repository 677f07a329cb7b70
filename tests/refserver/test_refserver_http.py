"""The HTTP endpoints (backend and auth service) of the reference platform, healthy shapes."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime

import httpx
import jwt
import pytest

from netra_nb.refserver import FAULTS, RefServer, ServerConfig

from rs_helpers import make_config


def get(srv: RefServer, path: str, **kw) -> httpx.Response:
    return httpx.get(srv.base_url + path, timeout=5, **kw)


def test_health(mid_server):
    r = get(mid_server, "/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy"
    assert body["service"] == "netra-ai-platform"
    assert body["version"] == "1.0.0"
    assert isinstance(body["timestamp"], float) and abs(body["timestamp"] - time.time()) < 60


def test_api_health(mid_server):
    r = get(mid_server, "/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy"
    datetime.fromisoformat(body["timestamp"])
    assert body["uptime_seconds"] >= 0
    assert isinstance(body["checks"], dict) and body["checks"]
    assert all(c["status"] == "healthy" for c in body["checks"].values())


def test_service_discovery_points_at_this_server(mid_server):
    body = get(mid_server, "/api/discovery/services").json()
    assert body["available"] is True
    datetime.fromisoformat(body["timestamp"])
    assert set(body["services"]) == {"backend", "frontend", "auth"}
    for svc in body["services"].values():
        assert {"url", "api_url", "ws_url"} <= set(svc)
        assert svc["url"].startswith(mid_server.base_url)
        assert svc["ws_url"] == mid_server.ws_url
    assert body["services"]["auth"]["url"] == mid_server.auth_url


def test_mcp_servers(mid_server):
    r = get(mid_server, "/api/mcp/servers")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "success"
    (server,) = body["data"]
    assert server["name"] == "netra-mcp" and server["status"] == "connected" and server["version"] == "1.0.0"
    assert server["capabilities"] == {"tools": True, "resources": True, "prompts": True}
    assert server["description"]


def test_mcp_config(mid_server):
    r = get(mid_server, "/api/mcp/config")
    assert r.status_code == 200
    body = r.json()
    assert {"claude", "cursor", "mcp", "http", "websocket"} <= set(body)
    assert all(body[k] for k in ("claude", "cursor", "mcp", "http", "websocket"))


def test_agents_status_is_a_list(mid_server):
    r = get(mid_server, "/api/agents/status")
    assert r.status_code == 200
    agents = r.json()
    assert isinstance(agents, list) and agents
    assert all({"name", "status"} <= set(a) for a in agents)


def test_agents_execute(mid_server):
    r = httpx.post(mid_server.base_url + "/api/agents/execute", json={"type": "triage", "message": "hello"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"status", "agent", "response", "execution_time"}
    assert body["agent"] == "triage" and body["status"] == "success"
    assert isinstance(body["execution_time"], float)


@pytest.mark.parametrize(
    "content",
    [b'{"type":"triage"}', b'{"message":"x"}', b'{"type":1,"message":"x"}', b"[1,2]", b"{not json", b""],
)
def test_agents_execute_invalid_body_is_422(mid_server, content):
    r = httpx.post(
        mid_server.base_url + "/api/agents/execute", content=content, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert "detail" in r.json()


def test_unknown_path_and_method_answer_json(mid_server):
    r = get(mid_server, "/api/nope")
    assert r.status_code == 404 and r.json()["detail"] == "Not Found"
    r = httpx.delete(mid_server.base_url + "/health")
    assert r.status_code == 405 and "detail" in r.json()


def test_plain_get_on_websocket_paths_answers_as_the_real_backend(mid_server):
    # GET /ws is 404 on the real backend although /ws serves sessions; /api/v1/websocket describes the service
    r = get(mid_server, "/ws")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    r = get(mid_server, "/api/v1/websocket")
    assert r.status_code == 200
    body = r.json()
    assert body["data"]["service"] == "websocket_ssot" and body["data"]["endpoints"]["websocket"] == "/ws"
    datetime.fromisoformat(body["timestamp"])


# ---------------------------------------------------------------------------- auth service


def e2e(srv: RefServer, key: str | None, body: dict | None = None) -> httpx.Response:
    headers = {} if key is None else {"X-E2E-Bypass-Key": key}
    return httpx.post(srv.auth_url + "/auth/e2e/test-auth", json=body, headers=headers, timeout=5)


def test_e2e_endpoint_mints_contract_token(mid_server):
    r = e2e(mid_server, mid_server.config.e2e_key, {"email": "ci-bot@netrasystems.ai", "name": "CI", "permissions": ["read", "execute"]})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["refresh_token"]
    assert body["user"] == {"id": "e2e-ci-bot", "email": "ci-bot@netrasystems.ai", "name": "CI",
                            "permissions": ["read", "execute"], "oauth_simulated": True}
    claims = jwt.decode(
        body["access_token"], mid_server.config.jwt_secret, algorithms=["HS256"], audience="netra-platform"
    )
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    assert claims["sub"] == "e2e-ci-bot"
    assert claims["email"] == "ci-bot@netrasystems.ai"
    assert claims["permissions"] == ["read", "execute"]
    assert claims["type"] == "access" and claims["token_type"] == "access"
    assert claims["iss"] == "netra-auth-service" and claims["aud"] == "netra-platform"
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]


def test_e2e_endpoint_defaults_without_body(mid_server):
    r = e2e(mid_server, mid_server.config.e2e_key)
    assert r.status_code == 200
    assert r.json()["user"]["id"].startswith("e2e-")


def test_e2e_endpoint_401s(mid_server):
    r = e2e(mid_server, None, {"email": "a@b.c"})
    assert r.status_code == 401 and r.json() == {"detail": "E2E bypass key required"}
    r = e2e(mid_server, "wrong-key", {"email": "a@b.c"})
    assert r.status_code == 401 and r.json() == {"detail": "Invalid E2E bypass key"}


def test_http_latency_is_added(shared):
    srv = shared(http_latency=0.25)
    t0 = time.perf_counter()
    assert get(srv, "/health").status_code == 200
    assert time.perf_counter() - t0 >= 0.25


# ---------------------------------------------------------------------------- config


def test_config_rejects_unknown_fault_listing_known():
    with pytest.raises(ValueError) as info:
        ServerConfig(faults=("ws_1011_after_welcome", "no_such_fault"))
    msg = str(info.value)
    assert "no_such_fault" in msg
    assert all(name in msg for name in FAULTS)


def test_config_normalizes_faults_and_is_frozen():
    cfg = ServerConfig(faults="agent_error, http_mcp_500,agent_error")
    assert cfg.faults == ("agent_error", "http_mcp_500")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.era = "early"  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"era": "november"},
        {"agent_event_offsets": (0.1, 0.2)},
        {"agent_event_offsets": (0.5, 0.4, 0.6, 0.7, 0.8)},
        {"heartbeat_interval": 0},
        {"fault_delay": -1},
        {"jwt_secret": ""},
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        ServerConfig(**kwargs)


def test_scaled_config_ends_at_agent_seconds():
    assert ServerConfig.scaled(7.0).agent_event_offsets[-1] == pytest.approx(7.0)


def test_default_secrets_are_random():
    a, b = ServerConfig(), ServerConfig()
    assert a.jwt_secret != b.jwt_secret and a.e2e_key != b.e2e_key
    assert a.jwt_secret not in repr(a)


def test_two_servers_in_one_process_are_independent():
    with RefServer(make_config()) as a, RefServer(make_config(faults=("http_split_health",))) as b:
        assert a.port != b.port
        assert get(a, "/health").status_code == 200
        assert get(b, "/health").status_code == 503


def test_e2e_user_id_is_the_tokens_subject_and_permissions_are_kept(mid_server):
    r = httpx.post(f"{mid_server.auth_url}/auth/e2e/test-auth", headers={"X-E2E-Bypass-Key": mid_server.config.e2e_key},
                   json={"email": "@x.io", "permissions": []})
    assert r.status_code == 200
    body = r.json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == body["user"]["id"]
    assert claims["permissions"] == []


def test_api_health_counts_the_open_sessions(mid_server):
    import asyncio
    from websockets.asyncio.client import connect

    token = httpx.post(f"{mid_server.auth_url}/auth/e2e/test-auth",
                       headers={"X-E2E-Bypass-Key": mid_server.config.e2e_key}, json={}).json()["access_token"]

    async def go():
        before = httpx.get(f"{mid_server.base_url}/api/health").json()["checks"]["websocket"]["active_connections"]
        async with connect(mid_server.ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            await ws.recv()
            during = httpx.get(f"{mid_server.base_url}/api/health").json()["checks"]["websocket"]["active_connections"]
        return before, during

    before, during = asyncio.run(go())
    assert during == before + 1


def test_stop_does_not_wait_out_a_startup_delay():
    srv = RefServer(make_config(faults=("http_503_startup",), fault_delay=30)).start()
    import threading
    answers = []
    t = threading.Thread(target=lambda: answers.append(
        httpx.get(f"{srv.base_url}/health", timeout=60).status_code))
    t.start()
    # Stop while the request waits out the delay (a fixed sleep raced the request on a loaded machine: the
    # server stopped before it had read the request, and the client got no answer at all).
    deadline = time.monotonic() + 30
    while srv._state.delayed == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv._state.delayed == 1
    srv.stop()  # must not sit out the 30 s delay
    t.join(20)
    assert not t.is_alive() and answers == [503]
