"""The edges of netra_nb/http.py against real HTTP servers on loopback (tests/contract_servers.py, tests/hostile.py)."""

from __future__ import annotations

import asyncio
import gzip
import json

from contract_servers import Answer, HttpStub
from hostile import TcpServer
from netra_nb.http import MAX_BODY, http_call, new_client


def call_all(*requests, timeout=3.0, concurrently=False):
    """Make the requests ((method, url[, json]) tuples) with one client; the observations in order."""
    async def go():
        client = new_client(timeout)
        try:
            calls = [http_call(client, r[0], r[1], timeout=timeout, json_body=r[2] if len(r) > 2 else None)
                     for r in requests]
            if concurrently:
                return await asyncio.gather(*calls)
            return [await c for c in calls]
        finally:
            await client.aclose()
    return asyncio.run(go())


def wire_size(status: int, body: bytes, content_type: str = "application/json") -> int:
    head = f"HTTP/1.1 {status} {'OK' if status == 200 else 'Service Unavailable'}\r\nContent-Type: {content_type}\r\n" \
           f"Content-Length: {len(body)}\r\n\r\n"
    return len(head) + len(body)


def test_each_request_on_a_kept_alive_connection_counts_its_own_bytes():
    a, b = json.dumps({"status": "healthy"}).encode(), json.dumps({"pad": "q" * 3000}).encode()
    with HttpStub({("GET", "/a"): Answer(200, a), ("GET", "/b"): Answer(200, b)}) as srv:
        first, second = call_all(("GET", srv.http_url + "/a"), ("GET", srv.http_url + "/b"))
        assert len(srv.requests) == 2
    assert first.bytes_received == wire_size(200, a) and second.bytes_received == wire_size(200, b)
    assert first.connect_s is not None and second.connect_s is None  # one connection, reused


def test_concurrent_requests_are_counted_apart():
    bodies = {f"/{i}": json.dumps({"pad": "x" * (100 * (i + 1))}).encode() for i in range(5)}
    with HttpStub({("GET", p): Answer(200, b, delay=0.05) for p, b in bodies.items()}) as srv:
        obs = call_all(*(("GET", srv.http_url + p) for p in bodies), concurrently=True)
    assert [o.bytes_received for o in obs] == [wire_size(200, b) for b in bodies.values()]


def test_a_request_body_is_counted_as_sent():
    with HttpStub({("POST", "/x"): Answer(200, {"ok": True})}) as srv:
        [o] = call_all(("POST", srv.http_url + "/x", {"message": "m" * 1000}))
        raw = srv.requests[0][2]
    assert len(raw) > 1000 and o.bytes_sent > len(raw) + len("POST /x HTTP/1.1\r\n")


def test_a_refused_connection_sends_and_receives_nothing(unused_port):
    [o] = call_all(("GET", f"http://127.0.0.1:{unused_port}/health"))
    assert o.status is None and o.exception is not None and (o.bytes_sent, o.bytes_received) == (0, 0)


def test_a_large_body_is_cut_and_gzip_is_decoded():
    big = b"{" + b'"a":"' + b"b" * (MAX_BODY + 10) + b'"}'
    small = gzip.compress(json.dumps({"status": "healthy"}).encode())
    with HttpStub({("GET", "/big"): Answer(200, big), ("GET", "/gz"): Answer(200, small)}) as srv:
        srv.routes[("GET", "/gz")] = lambda body: Answer(200, small)
        big_obs, gz_obs = call_all(("GET", srv.http_url + "/big"), ("GET", srv.http_url + "/gz"))
    assert len(big_obs.body) <= MAX_BODY and big_obs.json is None  # cut: evidence, not parsed
    assert gz_obs.body == small  # no Content-Encoding header: kept as it came


def test_a_server_that_never_answers_times_out_with_the_deadline():
    with TcpServer("silent") as srv:
        [o] = call_all(("GET", srv.http_url + "/health"), timeout=0.5)
    assert o.timed_out and o.status is None and 0.5 <= o.duration_s < 3
    assert o.bytes_sent > 0  # the request went out; nothing came back
