"""Bad input and hostile servers: a clear message (exit 2) or classified rows (exit 1), never a hang."""

import asyncio

import pytest

from hostile import TcpServer, WsServer
from netra_nb.checks import Context
from netra_nb.params import parse_params


#: every timeout of the hostile params: a check may not end before it (when it has to wait it out) and
#: must end long before a hostile server would let it (a trickle takes minutes, a silent server forever)
T = 1.5
#: a check ends within this many timeouts (one HTTP call, then a WebSocket open and a run, each bounded)
BOUND = 4 * T


def params(base, ws, **t):
    return parse_params({"name": "hostile", "base_url": base, "ws_url": ws, "allow_test_auth": True,
                         "auth": {"method": "local_jwt", "secret_env": "NETRA_TEST_JWT_SECRET"},
                         "timeouts": {"http": T, "ws_open": T, "agent_run": T, **t}})


def run(p, *names):
    async def go():
        ctx = Context(p, phase="hostile")
        try:
            return {n: await ctx.run(n) for n in names}
        finally:
            await ctx.aclose()
    return asyncio.run(go())


def test_host_that_does_not_resolve():
    # https/wss: test credentials never go over plain http off this machine (the name fails first anyway)
    rs = run(params("https://netra-nb-test.invalid", "wss://netra-nb-test.invalid/ws"), "health", "websocket_connect")
    assert {r.category for r in rs.values()} == {"dns_failure"}


def test_closed_port(unused_port):
    rs = run(params(f"http://127.0.0.1:{unused_port}", f"ws://127.0.0.1:{unused_port}/ws"), "health", "agent_run")
    assert {r.category for r in rs.values()} == {"connection_refused"}


def test_server_that_accepts_and_never_answers():
    with TcpServer("silent") as srv:
        rs = run(params(srv.http_url, srv.ws_url), "health", "websocket_connect", "agent_run")
    assert rs["health"].category == "read_timeout"
    assert rs["websocket_connect"].category == "ws_handshake_timeout"
    assert rs["agent_run"].category == "ws_handshake_timeout"
    assert all(T <= r.duration_s < BOUND for r in rs.values()), {n: r.duration_s for n, r in rs.items()}


def test_server_that_answers_one_byte_per_second():
    with TcpServer("trickle") as srv:
        rs = run(params(srv.http_url, srv.ws_url), "health")
    # a byte a second never trips a per-read timeout: the check's own deadline ends it (the whole
    # answer would take over a minute)
    assert rs["health"].category == "read_timeout" and T <= rs["health"].duration_s < BOUND


def test_server_that_sends_garbage():
    with TcpServer("garbage") as srv:
        rs = run(params(srv.http_url, srv.ws_url), "health", "websocket_connect")
    assert rs["health"].status == "fail" and rs["health"].category == "contract_mismatch"
    assert rs["websocket_connect"].status == "fail" and rs["websocket_connect"].category == "contract_mismatch"


def test_body_that_claims_json_and_is_not():
    with TcpServer("json_lie") as srv:
        rs = run(params(srv.http_url, srv.ws_url), "health", "agent_discovery")
    for r in rs.values():
        assert (r.status, r.category) == ("fail", "contract_mismatch")
        assert "not JSON" in r.message and "502 Bad Gateway" in r.detail


@pytest.mark.parametrize("mode, category", [
    ("binary", "contract_mismatch"),
    ("not_json", "contract_mismatch"),
    ("wrong_shape", "contract_mismatch"),
    ("too_large", "contract_mismatch"),
    ("drop_mid_run", "ws_abnormal_close"),
    ("close_mid_run", "ws_internal_error"),
])
def test_websocket_frames_that_break_the_contract(mode, category, unused_port):
    with WsServer(mode) as srv:
        rs = run(params(f"http://127.0.0.1:{unused_port}", srv.ws_url), "agent_run")
    r = rs["agent_run"]
    assert (r.status, r.category) == ("fail", category), r.message
    assert r.duration_s < BOUND
