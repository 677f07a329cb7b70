"""HTTP calls on httpx with the timing breakdown from its trace extension (the I/O edge).

:func:`http_call` never raises for a network failure: it returns an :class:`HttpObservation`
holding the status, body, timings, bytes on the wire, or the exception, for the pure judges in
:mod:`netra_nb.judge` to classify.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from . import wire
from .redact import clip

__all__ = ["HttpObservation", "http_call", "new_client", "MAX_BODY"]

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


#: Where the check running in this task keeps its observations: a request joins it when it starts, so a check
#: its deadline cuts while the request waits is judged on that request (what it sent, how long it waited).
IN_FLIGHT: ContextVar[list[Any] | None] = ContextVar("netra_nb_http_in_flight", default=None)

#: The byte counters [sent, received] of the request the current task is making (see :func:`http_call`).
_COUNTER: ContextVar[list[int] | None] = ContextVar("netra_nb_http_bytes", default=None)


class _CountingStream(httpcore.AsyncNetworkStream):
    """httpcore's network stream, counting the bytes that pass for the request being made in this task.

    httpcore does a request's connect, writes and reads in the task that makes it, so a context variable
    set around one request attributes every byte of a shared keep-alive connection to the right request.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._inner.read(max_bytes, timeout)
        counter = _COUNTER.get()
        if counter is not None:
            counter[1] += len(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)
        counter = _COUNTER.get()
        if counter is not None:
            counter[0] += len(buffer)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return _CountingStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _CountingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        return _CountingStream(await self._inner.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                                             socket_options=socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        return _CountingStream(await self._inner.connect_unix_socket(path, timeout=timeout,
                                                                     socket_options=socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def new_client(timeout: float = 10.0, **kwargs: Any) -> httpx.AsyncClient:
    """One client per phase: connections are reused across its checks; bytes are counted on the stream."""
    kwargs.setdefault("follow_redirects", False)
    limits = kwargs.pop("limits", httpx.Limits(max_connections=200, max_keepalive_connections=50))
    transport = httpx.AsyncHTTPTransport(limits=limits)
    pool = transport._pool  # httpx builds its httpcore pool here; the backend is its I/O edge
    pool._network_backend = _CountingBackend(pool._network_backend)
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=transport, **kwargs)


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
            obs = retry
    wire.record_http(obs, headers=headers, json_body=json_body, content=content)
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
    bucket = IN_FLIGHT.get()
    if bucket is not None:
        bucket.append(obs)
    counter = [0, 0]
    scope = _COUNTER.set(counter)
    try:
        request = client.build_request(
            method, url, json=json_body, content=content, headers=headers,
            extensions={"trace": trace, "timeout": httpx.Timeout(timeout).as_dict()},
        )
        async with asyncio.timeout(timeout):
            response = await client.send(request, stream=True)
            try:
                obs.status = response.status_code
                obs.headers = {k.lower(): v for k, v in response.headers.items()}
                chunks = []
                size = 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size <= MAX_BODY:
                        chunks.append(chunk)
                    else:
                        break
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
    finally:
        # Also when the check's deadline cancels the request: what was sent and how long it waited is evidence.
        _COUNTER.reset(scope)
        obs.bytes_sent, obs.bytes_received = counter
        obs.duration_s = time.perf_counter() - t0
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
