"""``netra-nb serve --replay RUN_DIR``: a server that answers as the recorded platform did (its ``wire.jsonl``).

HTTP: each request is matched to a recorded exchange by method and path (an unused one with the same query and
request body first, then the next unused one in recorded order, then the last one again); it is answered with
the recorded status, content type and body after the recorded time to the first byte. An exchange that got no
answer hangs until the client leaves (at most the recorded duration and a margin); one that failed otherwise
(the server dropped the connection) is dropped. Tokens in a recorded answer (redacted in the recording) are
replaced by stand-ins that name the recorded user, so the kit knows whose session it asks for.

WebSocket: an upgrade is matched by path (the kit's random no-route probe path counts as one) and by whose
token it carries (:func:`netra_nb.wire.token_key`: none, the user's id, the kit's wrong-token probe); among
the recorded sessions with that key, the first one not yet replayed leads. Its upgrade is refused (status and
body), left unanswered (a handshake that hung) or accepted (the recorded subprotocol), then its frames are sent
at their recorded offsets: from the accept, then from each client message (the replay waits for the client
where the recording shows one). Each client message narrows the session to the recorded ones whose client
messages so far were the same (run and thread ids aside), so the check is recognised from its first message;
the recorded ids are replaced by the client's in what is sent back. Then the recorded close: the code and
reason, an abort for a 1006, or waiting for the client's close. A session whose recorded protocol ping went
unanswered stops reading at once, as that server did. Any token is accepted: a recording holds none.

Every answer carries ``x-netra-nb-replay`` naming the recorded run (its folder name, environment, start), which
the kit records and the report shows. Anything the recording does not hold is a 404 saying so.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from .params import ConfigError
from .redact import clip, redact
from .refserver.config import ServerConfig
from .refserver.server import RefServer
from .refserver.session import PROTOCOL_SCOPE_KEY, deny
from .wire import BODY_KEEP, REPLAY_HEADER, WIRE_FILE, read_wire, token_key, token_of

__all__ = ["Recording", "ReplayServer", "load_recording", "replay_main", "HANG_MARGIN"]

#: Seconds a hang lasts beyond the recorded duration (the client's own timeout ends it first).
HANG_MARGIN = 3.0
#: At most this long waiting for a client message or close the recording shows.
WAIT_CAP = 120.0
#: A recorded auth service on a host of its own is served under this path (``auth_url`` = the replay + it).
AUTH_PREFIX = "/_auth"
_PROBE_PATH = re.compile(r"^/netra-nb-no-such-route-[0-9a-f]+$")
#: httpx's and asyncio's timeouts: the recorded request got no answer in time (a hang to replay)
_TIMEOUT_ERROR = re.compile(r"^(?:ReadTimeout|WriteTimeout|PoolTimeout|ConnectTimeout|TimeoutException|TimeoutError)\b")
_IDS = re.compile(r"\b(?:run|thread)_[0-9a-f]{12}\b")


def norm_path(path: str) -> str:
    return "/netra-nb-no-such-route-*" if _PROBE_PATH.match(path) else path


def _norm_msg(text: str | None) -> str:
    return _IDS.sub("<id>", text or "")


def _body_key(text: str) -> Any:
    """A request body for matching: parsed when it is JSON (the recorder and the client may space it differently)."""
    try:
        return json.dumps(json.loads(text), sort_keys=True)
    except ValueError:
        return text


def _msg_type(text: str | None) -> str:
    try:
        value = json.loads(text or "")
    except ValueError:
        return "<non-json>"
    return str(value.get("type")) if isinstance(value, dict) else f"<{type(value).__name__}>"


@dataclass
class HttpExchange:
    row: dict[str, Any]
    used: bool = False


@dataclass
class WsScript:
    session: str
    upgrade: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)  # ws_frame and ws_ping rows, in recorded order
    close: dict[str, Any] | None = None
    reserved: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return norm_path(self.upgrade.get("path") or "/"), self.upgrade.get("caller") or "none"

    @property
    def sent(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == "ws_frame" and e.get("dir") == "sent"]

    @property
    def deaf(self) -> bool:
        """The server stopped reading: a protocol ping of the client went unanswered."""
        return any(e["kind"] == "ws_ping" and not e.get("pong") for e in self.events)


@dataclass
class Recording:
    info: dict[str, Any]
    http: dict[tuple[str, str, str], list[HttpExchange]]  # (service, method, path)
    ws: dict[tuple[str, str], list[WsScript]]
    params: dict[str, Any]

    @property
    def auth_prefix(self) -> str:
        """Where the replay serves a separate auth service's answers (the recording had it on a host of its own)."""
        return AUTH_PREFIX if any(service == "auth" for service, _, _ in self.http) else ""

    def params_dict(self, srv: "ReplayServer", *, key_env: str = "E2E_OAUTH_SIMULATION_KEY",
                    secret_env: str = "JWT_SECRET_KEY", token_env: str = "STAGING_TEST_JWT_TOKEN") -> dict[str, Any]:
        """A params dict that runs the recorded run's checks, as they were configured, against ``srv``
        (the variables named must be set to anything: the replay accepts any key and token)."""
        p = self.params
        auth = dict(p.get("auth") or {})
        auth.update(key_env=key_env, secret_env=secret_env, token_env=token_env)
        timeouts = dict(p.get("timeouts") or {})
        return {"name": p.get("env") or "replay", "base_url": srv.base_url + (p.get("base_path") or ""),
                "ws_url": srv.ws_url.rsplit("/", 1)[0] + (p.get("ws_path") or "/ws"),
                "auth_url": srv.base_url + self.auth_prefix + (p.get("auth_path") or ""), "allow_test_auth": True,
                "auth": auth,
                "timeouts": timeouts, "agent": dict(p.get("agent") or {}),
                "orchestration": dict(p.get("orchestration") or {}), "sla": dict(p.get("sla") or {})}


def load_recording(run_dir: str | Path) -> Recording:
    """A run folder's (or a corpus entry's) wire file, ready to serve; ConfigError naming the path if unusable."""
    run_dir = Path(run_dir)
    path = run_dir / WIRE_FILE
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a folder (a run folder with {WIRE_FILE} is needed)")
    if not path.is_file():
        raise ConfigError(f"{path}: no such file: the run was recorded by a kit without wire recording, "
                          f"or this is not a run folder")
    rows = read_wire(path)
    if not any(r.get("kind") in ("http", "ws_upgrade") for r in rows):
        raise ConfigError(f"{path}: no HTTP exchange or WebSocket upgrade recorded")
    try:
        run = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        run = {}
    params = next((r for r in rows if r.get("kind") == "params"), {})
    info = {"run": run.get("run") or run_dir.name, "env": run.get("env") or params.get("env"),
            "started_at": run.get("started_at"), "run_id": run.get("run_id")}
    http: dict[tuple[str, str, str], list[HttpExchange]] = {}
    scripts: dict[str, WsScript] = {}
    for r in sorted(rows, key=lambda r: (r.get("t") or 0)):
        kind = r.get("kind")
        if kind == "http":
            key = (r.get("service") or "backend", str(r.get("method")), norm_path(str(r.get("path"))))
            http.setdefault(key, []).append(HttpExchange(r))
        elif kind == "ws_upgrade":
            scripts[r["session"]] = WsScript(r["session"], r)
    for r in rows:  # a session's lines are written together: order them by their own clock
        s = scripts.get(r.get("session", ""))
        if s is None:
            continue
        if r.get("kind") in ("ws_frame", "ws_ping"):
            s.events.append(r)
        elif r.get("kind") == "ws_close":
            s.close = r
    ws: dict[tuple[str, str], list[WsScript]] = {}
    for s in sorted(scripts.values(), key=lambda s: s.upgrade.get("t") or 0):
        s.events.sort(key=lambda e: e.get("at_s") or 0)
        ws.setdefault(s.key, []).append(s)
    return Recording(info, http, ws, params)


def _mint(claims: dict[str, Any]) -> str:
    """A stand-in token naming the recorded user, signed with a throwaway key (the replay accepts any token)."""
    now = int(time.time())
    body = {k: v for k, v in claims.items() if k != "ttl"}
    body.update(iat=now, exp=now + int(claims.get("ttl") or 900), jti=secrets.token_hex(8))
    return jwt.encode(body, secrets.token_hex(16), algorithm="HS256")


def _transport(scope: dict[str, Any], receive: Any) -> Any:
    owner = scope.get(PROTOCOL_SCOPE_KEY) or getattr(receive, "__self__", None)
    return getattr(owner, "transport", None)


class ReplayState:
    def __init__(self, recording: Recording) -> None:
        self.rec = recording
        self.stopping = False
        self.header = json.dumps(recording.info, ensure_ascii=True, separators=(",", ":"))

    async def sleep(self, seconds: float) -> None:
        end = time.monotonic() + max(0.0, seconds)
        while not self.stopping and time.monotonic() < end:
            await asyncio.sleep(min(0.1, end - time.monotonic()))

    def not_recorded(self, what: str) -> JSONResponse:
        return JSONResponse({"detail": f"not in the recording: {what} (a replay of {self.rec.info.get('run')})"},
                            404, headers={REPLAY_HEADER: self.header})

    # -- HTTP ----------------------------------------------------------------------------------
    async def http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        method, path = request.method, request.url.path
        service = "backend"
        if self.rec.auth_prefix and path.startswith(AUTH_PREFIX + "/"):
            service, path = "auth", path[len(AUTH_PREFIX):]
        body = await request.body()
        cands = self.rec.http.get((service, method, norm_path(path)))
        if not cands:
            await self.not_recorded(f"{method} {path}")(scope, receive, send)
            return
        want = _body_key(clip(body.decode("utf-8", "replace"), BODY_KEEP) if body else "")
        query = redact(request.url.query)
        ex = (next((c for c in cands if not c.used and _body_key(c.row.get("req_body") or "") == want
                    and c.row.get("query") == query), None)
              or next((c for c in cands if not c.used), None) or cands[-1])
        ex.used = True
        row = ex.row
        if row.get("status") is None:
            if row.get("timed_out") or _TIMEOUT_ERROR.match(str(row.get("error") or "")):
                await self._hang(request, float(row.get("duration_s") or 0) + HANG_MARGIN)
                response = JSONResponse({"detail": "replay: the recorded request got no answer in time"}, 504,
                                        headers={REPLAY_HEADER: self.header})
                await response(scope, receive, send)
            else:  # the recorded server dropped the connection (or it never connected): drop it
                transport = _transport(scope, receive)
                if transport is not None:
                    transport.abort()
            return
        # the recorded time to the first byte, less the connection's set-up (this server's own is on top)
        ttfb = float(row.get("ttfb_s") or row.get("duration_s") or 0)
        await self.sleep(ttfb - float(row.get("connect_s") or 0) - float(row.get("tls_s") or 0))
        content = row.get("body") or ""
        if row.get("mint"):
            try:
                data = json.loads(content)
                for key, claims in row["mint"].items():
                    if isinstance(data, dict) and key in data:
                        data[key] = _mint(claims)
                content = json.dumps(data)
            except ValueError:
                pass
        headers = {REPLAY_HEADER: self.header}
        ctype = (row.get("headers") or {}).get("content-type")
        response = Response(content.encode(), int(row["status"]), headers=headers, media_type=ctype)
        await response(scope, receive, send)

    async def _hang(self, request: Request, limit: float) -> None:
        end = time.monotonic() + limit
        while not self.stopping and time.monotonic() < end:
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.1)

    # -- WebSocket -----------------------------------------------------------------------------
    def _another_users(self, key: tuple[str, str]) -> list[Any] | None:
        """The recorded sessions at the same path with another of the run's users' tokens (of the same kind: the
        user's own, or the kit's short-lived wrong one): which fleet user made a once-per-run probe depends on
        which got there first, in the recording and in the replay alike."""
        path, caller = key
        if not caller.startswith("jwt:"):
            return None
        probe = caller.endswith(":probe")
        pool = [s for (p, c), scripts in self.rec.ws.items() if p == path and c.startswith("jwt:")
                and c.endswith(":probe") == probe for s in scripts]
        return pool or None

    async def websocket(self, ws: WebSocket) -> None:
        path = ws.url.path
        key = (norm_path(path), token_key(token_of(ws.headers.items(), ws.scope.get("subprotocols") or (),
                                                   ws.url.query)))
        cands = self.rec.ws.get(key) or self._another_users(key)
        if not cands:
            await deny(ws, self.not_recorded(f"a WebSocket upgrade at {path} with token {key[1]}"))
            return
        script = next((s for s in cands if not s.reserved), cands[-1])
        up = script.upgrade
        status = up.get("status")
        if status is None:
            script.reserved = True
            if up.get("timed_out"):
                await self._never_answer(ws, float(up.get("duration_s") or 0) + HANG_MARGIN)
            else:
                transport = _transport(ws.scope, ws.receive)
                if transport is not None:
                    transport.abort()
            return
        await self.sleep(float(up.get("upgrade_s") or 0))
        if status != 101:
            script.reserved = True
            ctype = (up.get("headers") or {}).get("content-type")
            body = (up.get("body") or "").encode()
            await deny(ws, Response(body, int(status), headers={REPLAY_HEADER: self.header}, media_type=ctype))
            return
        offered = list(ws.scope.get("subprotocols") or ())
        chosen = up.get("subprotocol")
        if chosen and "[REDACTED]" in chosen:  # the client's own jwt.<token>, echoed
            prefix = chosen.split("[REDACTED]")[0]
            chosen = next((p for p in offered if p.startswith(prefix)), None)
        await ws.accept(subprotocol=chosen, headers=[(REPLAY_HEADER.encode(), self.header.encode())])
        await _Player(self, ws, cands, script).run()

    async def _never_answer(self, ws: WebSocket, limit: float) -> None:
        async def gone() -> None:
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass
        waiter = asyncio.ensure_future(gone())
        end = time.monotonic() + limit
        try:
            while not waiter.done() and not self.stopping and time.monotonic() < end:
                await asyncio.wait({waiter}, timeout=0.1)
        finally:
            waiter.cancel()
        if not waiter.done() or waiter.cancelled():
            try:
                await deny(ws, JSONResponse({"detail": "replay: the recorded upgrade got no answer"}, 503,
                                            headers={REPLAY_HEADER: self.header}))
            except Exception:  # noqa: BLE001 - the client is gone
                pass


class _Player:
    """One accepted session played from its recording (see the module's docstring)."""

    def __init__(self, state: ReplayState, ws: WebSocket, cands: list[WsScript], script: WsScript) -> None:
        self.state, self.ws, self.cands, self.script = state, ws, cands, script
        self.loop = asyncio.get_running_loop()
        self.anchor_real = self.loop.time()
        self.anchor_rec = float(script.upgrade.get("open_s") or 0)
        self.seen: list[str] = []  # the client's messages so far, ids aside
        self.ids: dict[str, str] = {}
        self.i = 0
        self.gone = False

    async def _until(self, at_s: float) -> None:
        await self.state.sleep(self.anchor_real + (at_s - self.anchor_rec) - self.loop.time())

    async def _send(self, ev: dict[str, Any]) -> None:
        if ev.get("binary"):
            await self.ws.send_bytes(b"\0" * min(int(ev.get("size") or 0), 1 << 21))
            return
        text = _IDS.sub(lambda m: self.ids.get(m.group(0), m.group(0)), ev.get("text") or "")
        await self.ws.send_text(text)

    async def _next_message(self, limit: float) -> str | bytes | None:
        """The client's next message, or None when it left (or the limit passed)."""
        try:
            async with asyncio.timeout(limit):
                while True:
                    msg = await self.ws.receive()
                    if msg["type"] == "websocket.disconnect":
                        self.gone = True
                        return None
                    if msg.get("text") is not None:
                        return msg["text"]
                    if msg.get("bytes") is not None:
                        return msg["bytes"]
        except TimeoutError:
            return None

    def _rematch(self, text: str | bytes, recorded: dict[str, Any] | None) -> bool:
        """Narrow to the recorded sessions whose client messages so far were these; map their ids to the client's.
        ``recorded`` is the current script's client message at this point (None: it shows no more); False when no
        recorded session fits (the message is then read past)."""
        sent = text if isinstance(text, str) else ""
        self.seen.append(_norm_msg(sent))
        k = len(self.seen)

        def fits(s: WsScript, norm: Any, seen: list[str]) -> bool:
            return len(s.sent) >= k and [norm(e.get("text")) for e in s.sent[:k]] == seen

        pool = [s for s in self.cands if s is self.script or not s.reserved]
        best = (next((s for s in pool if fits(s, _norm_msg, self.seen)), None)
                or next((s for s in pool if fits(s, _msg_type, [_msg_type(m) for m in self.seen])), None))
        if best is None and recorded is None:
            self.seen.pop()
            return False
        if best is not None and (best is not self.script or recorded is None):
            self.script = best
            nth = [i for i, e in enumerate(best.events) if e["kind"] == "ws_frame" and e.get("dir") == "sent"][k - 1]
            self.i = nth + 1
            recorded = best.events[nth]
        if recorded is not None:
            self.anchor_real, self.anchor_rec = self.loop.time(), float(recorded.get("at_s") or 0)
            for old, new in zip(_IDS.findall(recorded.get("text") or ""), _IDS.findall(sent)):
                self.ids[old] = new
        return True

    async def run(self) -> None:
        try:
            await self._play()
        except Exception:  # noqa: BLE001 - the client went away mid-send: the session is over
            self.gone = True
        finally:
            if not self.seen:  # no client message: a session that only listened (websocket_connect)
                quiet = next((s for s in self.cands if not s.reserved and not s.sent), None)
                (quiet or self.script).reserved = True
            else:
                self.script.reserved = True

    async def _play(self) -> None:
        deaf = False
        while True:
            if self.script.deaf and not deaf:  # (also once a client message told this recorded session)
                deaf = True
                transport = _transport(self.ws.scope, self.ws.receive)
                if transport is not None:
                    transport.pause_reading()  # frames, pings and closes from the client are never read
            while self.i < len(self.script.events):
                ev = self.script.events[self.i]
                self.i += 1
                if ev["kind"] != "ws_frame":
                    continue
                if ev.get("dir") == "received":
                    await self._until(float(ev.get("at_s") or 0))
                    await self._send(ev)
                elif not deaf:
                    remaining = float((self.script.close or {}).get("duration_s") or 0) - float(ev.get("at_s") or 0)
                    msg = await self._next_message(min(WAIT_CAP, max(remaining, 0) + 30))
                    if msg is None:
                        return
                    self._rematch(msg, ev)
            close = self.script.close or {}
            by, at = close.get("by"), close.get("at_s")
            if deaf:
                transport = _transport(self.ws.scope, self.ws.receive)
                end = self.loop.time() + min(WAIT_CAP, float(close.get("duration_s") or 0) + 30)
                while transport is not None and not transport.is_closing() and not self.state.stopping \
                        and self.loop.time() < end:
                    await asyncio.sleep(0.1)
                return
            if by == "server" or (by is None and close.get("code") == 1006):
                if at is not None:
                    await self._until(float(at))
                if by == "server":
                    await self.ws.close(int(close.get("code") or 1000), str(close.get("reason") or ""))
                else:
                    transport = _transport(self.ws.scope, self.ws.receive)
                    if transport is not None:
                        transport.abort()
                return
            # the client closed (or nothing was recorded): wait for it; a message may yet tell another recorded
            # session (this one was only the first with the same upgrade), else it is read past
            while True:
                msg = await self._next_message(WAIT_CAP)
                if msg is None:
                    return
                if self._rematch(msg, None):
                    break


def build_replay_app(recording: Recording) -> tuple[Any, ReplayState]:
    state = ReplayState(recording)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope[PROTOCOL_SCOPE_KEY] = getattr(receive, "__self__", None)
            await state.websocket(WebSocket(scope, receive, send))
        elif scope["type"] == "http":
            await state.http(scope, receive, send)

    return app, state


class ReplayServer(RefServer):
    """The replay of a recorded run, on loopback like the reference platform: ``with ReplayServer(run_dir) as srv``."""

    def __init__(self, run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ServerConfig(host=host, port=port, ws_ping_interval=None, ws_ping_timeout=None))
        self.recording = load_recording(run_dir)

    def _build(self) -> tuple[Any, Any]:
        return build_replay_app(self.recording)

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"<ReplayServer {where} of {self.recording.info.get('run')}>"


def replay_main(run_dir: str, host: str = "127.0.0.1", port: int = 8000) -> int:
    """``netra-nb serve --replay RUN_DIR``: serve until Ctrl-C; prints where, and the params to point at it."""
    import signal
    import threading
    srv = ReplayServer(run_dir, host=host, port=port).start()
    p = srv.recording.params
    info = srv.recording.info
    print(f"replay of {info.get('run')} (env {info.get('env')}, started {info.get('started_at')}) at {srv.base_url}")
    print(f"  base_url: {srv.base_url}{p.get('base_path', '')}")
    print(f"  ws_url: {srv.ws_url.rsplit('/', 1)[0]}{p.get('ws_path') or '/ws'}")
    print(f"  auth_url: {srv.base_url}{srv.recording.auth_prefix}{p.get('auth_path', '')}")
    print("any token is accepted; Ctrl-C stops", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        srv.stop()
    return 0
