"""HTTP calls on httpx with the timing breakdown from its trace extension (the I/O edge).

:func:`http_call` never raises for a network failure: it returns an :class:`HttpObservation`
holding the status, body, timings, bytes on the wire, or the exception, for the pure judges in
:mod:`netra_nb.judge` to classify.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from .redact import clip

__all__ = ["HttpObservation", "http_call", "new_client", "request_bytes", "MAX_BODY"]

MAX_BODY = 1 << 20  # bodies larger than this are cut; the evidence only needs the start


@dataclass
class HttpObservation:
    method: str
    url: str
    started: float = 0.0  # time.perf_counter() at the start
    duration_s: float = 0.0
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    json: Any = None
    json_error: str | None = None
    exception: BaseException | None = None
    timed_out: bool = False  # the check's own deadline passed
    connect_s: float | None = None
    tls_s: float | None = None
    ttfb_s: float | None = None
    bytes_sent: int = 0
    bytes_received: int = 0

    @property
    def text(self) -> str:
        """The whole body as text (not redacted: cut it with :func:`netra_nb.redact.clip`, which redacts first)."""
        return self.body.decode("utf-8", errors="replace")


def new_client(timeout: float = 10.0, **kwargs: Any) -> httpx.AsyncClient:
    """One client per phase: connections are reused across its checks."""
    kwargs.setdefault("follow_redirects", False)
    kwargs.setdefault("limits", httpx.Limits(max_connections=200, max_keepalive_connections=50))
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout), **kwargs)


def request_bytes(request: httpx.Request) -> int:
    """Bytes of the request as sent: request line, headers, body."""
    line = len(request.method) + len(request.url.raw_path) + len(b"  HTTP/1.1\r\n")
    headers = sum(len(k) + len(v) + 4 for k, v in request.headers.raw) + 2
    return line + headers + len(request.content or b"")


def _response_head_bytes(response: httpx.Response) -> int:
    line = len(b"HTTP/1.1 000 \r\n") + len(response.reason_phrase or "")
    return line + sum(len(k) + len(v) + 4 for k, v in response.headers.raw) + 2


async def http_call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    timeout: float,
    json_body: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> HttpObservation:
    """Make one request under a hard deadline of ``timeout`` seconds; never raises on failure.

    A GET whose reused keep-alive connection was closed by the server before it answered is
    retried once on a fresh connection, within the same deadline (the race every browser handles).
    """
    t0 = time.perf_counter()
    obs = await _call_once(client, method, url, timeout=timeout, json_body=json_body, content=content,
                           headers=headers)
    if (method == "GET" and isinstance(obs.exception, httpx.RemoteProtocolError)
            and "without sending a response" in str(obs.exception)):
        remaining = timeout - (time.perf_counter() - t0)
        if remaining > 0.05:
            retry = await _call_once(client, method, url, timeout=remaining, json_body=json_body, content=content,
                                     headers=headers)
            retry.bytes_sent += obs.bytes_sent
            retry.bytes_received += obs.bytes_received
            retry.duration_s = time.perf_counter() - t0
            retry.started = t0
            return retry
    return obs


async def _call_once(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    timeout: float,
    json_body: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> HttpObservation:
    obs = HttpObservation(method=method, url=url)
    marks: dict[str, float] = {}

    async def trace(name: str, info: dict[str, Any]) -> None:
        marks.setdefault(name, time.perf_counter())

    obs.started = t0 = time.perf_counter()
    request = None
    try:
        request = client.build_request(
            method, url, json=json_body, content=content, headers=headers,
            extensions={"trace": trace, "timeout": httpx.Timeout(timeout).as_dict()},
        )
        obs.bytes_sent = request_bytes(request)
        async with asyncio.timeout(timeout):
            response = await client.send(request, stream=True)
            try:
                obs.status = response.status_code
                obs.headers = {k.lower(): v for k, v in response.headers.items()}
                obs.bytes_received = _response_head_bytes(response)
                chunks = []
                size = 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size <= MAX_BODY:
                        chunks.append(chunk)
                    else:
                        break
                obs.bytes_received += response.num_bytes_downloaded
                raw = b"".join(chunks)
                encoding = response.headers.get("content-encoding", "identity")
                obs.body = raw if encoding in ("identity", "") else _decode(response, raw)
            finally:
                await response.aclose()
    except TimeoutError as exc:
        obs.timed_out = True
        obs.exception = exc
    except (httpx.HTTPError, OSError, ValueError) as exc:
        obs.exception = exc
    obs.duration_s = time.perf_counter() - t0
    if obs.exception is not None and request is not None and not marks.get("http11.send_request_headers.complete"):
        obs.bytes_sent = 0  # nothing reached the wire
    _timings(obs, marks, t0)
    if obs.status is not None and obs.body:
        try:
            obs.json = json.loads(obs.body)
        except (ValueError, RecursionError) as exc:
            obs.json_error = clip(str(exc), 200)
    elif obs.status is not None:
        obs.json_error = "empty body"
    return obs


def _decode(response: httpx.Response, raw: bytes) -> bytes:
    try:
        decoder = response._get_content_decoder()  # httpx's own decoder for gzip/br/deflate
        return decoder.decode(raw) + decoder.flush()
    except Exception:  # noqa: BLE001 - a body we cannot decode is evidence, not a crash
        return raw


def _timings(obs: HttpObservation, marks: dict[str, float], t0: float) -> None:
    def span(name: str) -> float | None:
        start, end = marks.get(f"connection.{name}.started"), marks.get(f"connection.{name}.complete")
        return round(end - start, 6) if start is not None and end is not None else None

    obs.connect_s = span("connect_tcp")
    obs.tls_s = span("start_tls")
    for proto in ("http11", "http2"):
        got = marks.get(f"{proto}.receive_response_headers.complete")
        if got is not None:
            obs.ttfb_s = round(got - t0, 6)
            break
