"""redact.py on its own: the patterns, the registered values in every form, redact-then-cut, and
the last pass over a run folder; then property tests that a registered secret placed anywhere in any
text never survives, whole or as a piece of 8 characters, through any path that cuts text.

Sizes of the property tests (Hypothesis examples per run): ``clip`` 400; the judges' builders 150
(each example through all seven); frames kept by ``ws.py`` (a real WebSocket on loopback) 60; the
JUnit writer 100; ``summary.md`` 60; and redacting twice changes nothing more: 200.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import string
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netra_nb.redact import (REDACTED, clip, known_secrets, redact, redact_keeping_images, register_secret,
                             scrub_files, scrub_tree, signature)

PIECE = 8

# -- the patterns ------------------------------------------------------------------------------------

# (text, the secret values in it): each value must be gone, and the rest of the text kept.
CAUGHT = [
    ("GET https://h.example/x?api_key=v4lue-one&mode=main", ["v4lue-one"]),
    ("wss://h.example/ws?user=u&apikey=v4lue-two", ["v4lue-two"]),
    ("https://h.example/cb?access_token=v4lue-3&refresh_token=v4lue-4;jwt=v4lue-5", ["v4lue-3", "v4lue-4", "v4lue-5"]),
    ("https://h.example/?client_secret=v4lue-6&X-Amz-Signature=v4lue-7&sig=v4lue-8", ["v4lue-6", "v4lue-7", "v4lue-8"]),
    ("Cookie: sid=v4lue-9; theme=v4lue-10", ["v4lue-9", "v4lue-10"]),
    ("Set-Cookie: session=v4lue-11; Path=/; HttpOnly", ["v4lue-11"]),
    ("{'set-cookie': 'auth=v4lue-12; Secure'}", ["v4lue-12"]),
    ("x-api-key: v4lue-13", ["v4lue-13"]),
    ("X-Auth-Token: v4lue-14\r\nApi-Key: v4lue-15", ["v4lue-14", "v4lue-15"]),
    ("{'X-E2E-Bypass-Key': 'v4lue-16', 'x-access-token': 'v4lue-17'}", ["v4lue-16", "v4lue-17"]),
    ('{"accessToken": "v4lue-18", "refreshToken": "v4lue-19", "idToken": "v4lue-20"}', ["v4lue-18", "v4lue-19", "v4lue-20"]),
    ('{"apiKey": "v4lue-21", "clientSecret": "v4lue-22", "password": "v4lue-23", "e2e_key": "v4lue-24"}',
     ["v4lue-21", "v4lue-22", "v4lue-23", "v4lue-24"]),
    ('{"access_token": "v4lue-\\"25\\"-escaped"}', ["v4lue-", "25", "escaped"]),
    ('"access_token": "v4lue-26-cut-off-befo', ["v4lue-26"]),  # a value whose closing quote was cut
    ("&quot;access_token&quot;: &quot;v4lue-27&quot;", ["v4lue-27"]),  # as HTML writes JSON
    ("https://user:v4lue-28@h.example/x and postgres://db:v4lue-29@db:5432/x", ["v4lue-28", "v4lue-29"]),
    ("https://ghp_v4lue30v4lue30v4lue30@github.com/x.git", ["ghp_v4lue30"]),
    ("Authorization: Bearer v4lue-31-long", ["v4lue-31"]),
    ("authorization: v4lue-32", ["v4lue-32"]),
    ("{'Authorization': 'Basic djRsdWUtMzM6eA=='}", ["djRsdWUtMzM6eA=="]),
    ("Proxy-Authorization: Digest v4lue-34", ["v4lue-34"]),
    ("subprotocols ['jwt.v4lue-35-token']", ["v4lue-35"]),
    ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJl in the text", ["eyJhbGciOiJIUzI1NiJ9"]),
    ("export E2E_OAUTH_SIMULATION_KEY=v4lue-36 JWT_SECRET_STAGING=v4lue-37", ["v4lue-36", "v4lue-37"]),
    ("access_token=v4lue-38, apiKey: v4lue-39, db_password: v4lue-40", ["v4lue-38", "v4lue-39", "v4lue-40"]),
    ("password: v4lue-41", ["v4lue-41"]),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIv4lue42\n-----END RSA PRIVATE KEY-----", ["MIIv4lue42"]),
    ("-----BEGIN PRIVATE KEY-----\nMIIv4lue43 and the rest was cut", ["MIIv4lue43"]),
]


@pytest.mark.parametrize("text, values", CAUGHT)
def test_each_family_of_secret_is_caught(text, values):
    out = redact(text)
    assert REDACTED in out
    for value in values:
        assert value not in out, out


# Evidence that must survive: the kit's own messages, the platform's frames, params files, URLs.
KEPT = [
    "key_env: E2E_OAUTH_SIMULATION_KEY  # the bypass key, for e2e_endpoint\nsecret_env: JWT_SECRET_STAGING\n"
    "token_env: STAGING_TEST_JWT_TOKEN\nplacement: header",
    "missing secret: the environment variable NETRA_X (the E2E bypass key) is not set",
    "environment local: http://localhost:8000 (token: e2e_endpoint, header)",
    'E2E token endpoint: HTTP 401 {"detail":"Invalid E2E bypass key"}',
    '{"access_token_expires_in": 900, "token_type": "Bearer", "expires_in": 900}',
    "no access_token in the answer",
    '{"type": "connection_established", "data": {"mode": "main", "user_id": "e2e-stag...", '
    '"connection_id": "main_1", "golden_path_events": ["agent_started"]}, "timestamp": 1.5}',
    '{"type": "error_message", "error_code": "AUTH_FAILED", "error_message": "Invalid token: signature expired"}',
    "wss://api.staging.netrasystems.ai/ws?mode=main and http://127.0.0.1:8000/api/health",
    "upgrade with a wrong token → 403 'Forbidden'; HTTP GET /ws → 200",
    "MODE=main PHASE=connectivity",
]


@pytest.mark.parametrize("text", KEPT)
def test_evidence_without_secrets_is_kept_as_it_is(text):
    assert redact(text) == text


fragments = st.sampled_from([text for text, _ in CAUGHT] + KEPT + ["Authorization: Bearer [REDACTED]", "\n", " "])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(fragments, st.text(max_size=40)), max_size=8))
def test_redacting_twice_changes_nothing_more(parts):
    once = redact("".join(parts))
    assert redact(once) == once


def test_registered_values_are_removed_in_every_form_they_are_written_in():
    value = 'k3y"with<odd>&chars/+=\\end'
    register_secret(value)
    for form in (value, json.dumps(value), json.dumps({"v": value}), html.escape(value),
                 html.escape(value, quote=False), "x?k=" + __import__("urllib.parse").parse.quote(value, safe="")):
        out = redact(f"before {form} after")
        assert "k3y" not in out and "chars" not in out, (form, out)
        assert out.startswith("before ") and out.endswith(" after")


def test_overlapping_secrets_both_go():
    # One secret's end is another's start: a leftmost-match replace would leave the second's tail.
    a, b = "AAAA1111BBBB2222", "BBBB2222CCCC3333"
    register_secret(a)
    assert redact(a) == REDACTED  # compiled before b is registered: the two are in different groups
    register_secret(b)
    out = redact(f"x {a[:8]}{b} y")
    assert out == f"x {REDACTED} y"
    assert redact(f"x {a}CCCC3333 y") == f"x {REDACTED} y"


def test_secrets_registered_between_redactions_all_stay_registered():
    # A fleet registers a token per user while it judges the answers: every one must keep working.
    values = [f"fleet-{i}-{os.urandom(6).hex()}" for i in range(300)]
    for i, value in enumerate(values):
        register_secret(value)
        assert redact(f"<{value}>") == f"<{REDACTED}>"
        if i % 37 == 0:
            assert all(redact(v) == REDACTED for v in values[:i + 1])
    assert redact(" ".join(values)) == " ".join([REDACTED] * len(values))


def test_too_short_values_are_not_registered():
    register_secret("abc")
    assert "abc" not in known_secrets() and redact("abc abc") == "abc abc"


def test_clip_redacts_before_it_cuts():
    secret = "clip-" + os.urandom(8).hex()
    register_secret(secret)
    text = "x" * 95 + secret + "y" * 50
    assert clip(text, 100) == "x" * 95 + REDACTED[:5]
    assert clip(text, 100, tail=True) == ("x" * 95 + REDACTED + "y" * 50)[-100:]
    assert secret[:5] not in clip(text, 100)  # cut first, a prefix of the secret would remain
    assert clip(None, 10) == "" and clip("abc", 0) == "" and clip(12345, 3) == "123"


def test_images_are_kept_whole():
    secret = "img-" + os.urandom(8).hex()
    register_secret(secret)
    image = "data:image/png;base64," + "QUJD" * 50 + "a2V5PXZhbHVl=="  # base64 of "key=value"
    page = f'<p>{secret}</p><img src="{image}"><p>Bearer abcdefghijkl</p>'
    out = redact_keeping_images(page)
    assert image in out and secret not in out and "abcdefghijkl" not in out


# -- the last pass over a run folder ---------------------------------------------------------------

def _plant(run: Path, secret: str) -> dict[str, str]:
    """One file of every kind the run folder holds, each with the secret in it (and a clean one)."""
    image = "iVBORw0KGgo" + "A" * 200
    nb = {"cells": [{"cell_type": "code", "source": "print(x)", "metadata": {}, "execution_count": 1,
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": f"got {secret}\n"},
                                 {"output_type": "display_data", "metadata": {},
                                  "data": {"image/png": image, "text/plain": "<Figure>"}}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    files = {
        "results.jsonl": json.dumps({"check": "a", "detail": f"body {secret}"}) + "\n"
        + json.dumps({"check": "b", "detail": "clean", "headers": {"x-api-key": "plain-value-1"}}) + "\n"
        + '{"check": "c", "detail": "torn ' + secret,  # a run killed mid-write
        "summary.json": json.dumps({"verdict": f"see {secret}", "access_token": "plain-value-2"}, indent=2),
        "00_connectivity.ipynb": json.dumps(nb, indent=1),
        "summary.md": f"# Run\n\n- detail: `{secret}`\n",
        "report.html": f'<p>{html.escape(secret)}</p><img src="data:image/png;base64,{image}">',
        "junit.xml": f'<testsuites><testcase name="a"><failure message="{html.escape(secret)}"/></testcase></testsuites>',
        "papermill.log": f"cell raised: {secret}\n",
        "params.yaml": "name: x\nauth:\n  key_env: E2E_OAUTH_SIMULATION_KEY\n",
        "charts/notes.txt": f"{secret}\n",
        "kit-errors.log": "nothing secret here\n",
    }
    for name, text in files.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(text)
    (run / "charts" / "chart.png").write_bytes(b"\x89PNG\r\n" + secret.encode())  # binary: not a text file
    table = pa.table({"detail": [f"a {secret}", None, "clean"], "events_seen": [[secret], [], ["agent_started"]],
                      "n": [1, 2, 3]})
    pq.write_table(table, run / "results.parquet")
    return files


def test_scrub_tree_rewrites_every_file_that_holds_a_secret_and_only_those(tmp_path):
    secret = "scrub-" + os.urandom(10).hex()
    run = tmp_path / "run"
    run.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text(secret)
    (run / "link.txt").symlink_to(outside)  # a link out of the folder is not followed
    files = _plant(run, secret)
    register_secret(secret)
    untouched = {name: (run / name).stat().st_ino for name in ("params.yaml", "kit-errors.log")}

    rewritten = scrub_tree(run)

    assert {p.relative_to(run).as_posix() for p in rewritten} == (
        set(files) - {"params.yaml", "kit-errors.log"}) | {"results.parquet"}
    for name in files:
        text = (run / name).read_text()
        assert secret not in text and html.escape(secret) not in text, name
    assert {name: (run / name).stat().st_ino for name in untouched} == untouched
    assert outside.read_text() == secret and (run / "charts" / "chart.png").read_bytes().endswith(secret.encode())
    # JSON stays JSON; values under a secret-named key go whole; images are left as they were.
    lines = (run / "results.jsonl").read_text().split("\n")
    assert json.loads(lines[0])["detail"] == f"body {REDACTED}"
    assert json.loads(lines[1])["headers"]["x-api-key"] == REDACTED
    assert lines[2] == '{"check": "c", "detail": "torn ' + REDACTED
    assert json.loads((run / "summary.json").read_text())["access_token"] == REDACTED
    nb = json.loads((run / "00_connectivity.ipynb").read_text())
    assert nb["cells"][0]["outputs"][1]["data"]["image/png"] == "iVBORw0KGgo" + "A" * 200
    assert "base64,iVBORw0KGgo" + "A" * 200 in (run / "report.html").read_text()
    table = pq.read_table(run / "results.parquet")
    assert table.column("detail").to_pylist() == [f"a {REDACTED}", None, "clean"]
    assert table.column("events_seen").to_pylist() == [[REDACTED], [], ["agent_started"]]
    assert table.column("n").to_pylist() == [1, 2, 3] and table.schema == pa.table(
        {"detail": ["x"], "events_seen": [["x"]], "n": [1]}).schema
    assert not list(run.rglob("*.scrub-tmp"))
    # Nothing left: a second pass reads everything and writes nothing.
    inodes = {p: p.stat().st_ino for p in run.rglob("*") if p.is_file()}
    assert scrub_tree(run) == []
    assert {p: p.stat().st_ino for p in run.rglob("*") if p.is_file()} == inodes


# -- property tests: a secret at any offset, through every path that cuts text --------------------

ALPHABETS = {
    "hex": string.hexdigits[:16],
    "base64url": string.ascii_letters + string.digits + "-_",
    "base64": string.ascii_letters + string.digits + "+/=",
    "jwt": string.ascii_letters + string.digits + "-_.",
    # a password: any printable ASCII but the brackets of the REDACTED marker and whitespace
    "printable": "".join(c for c in string.printable if c not in string.whitespace + "[]"),
}
secret_values = st.sampled_from(sorted(ALPHABETS)).flatmap(
    lambda name: st.text(alphabet=ALPHABETS[name], min_size=12, max_size=80))
# Text around the secret: any character but control characters (which XML and Markdown drop or split on).
around = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=120)
#: Offsets reach past every cut the kit makes (80, 120, 200, 300, 400, 500, 600, 1000, 2000).
offsets = st.integers(min_value=0, max_value=2300)


def placed(secret: str, head: str, tail: str, offset: int) -> str:
    """``secret`` at ``offset`` (at least) in a text that starts with ``head`` and ends with ``tail``."""
    return head.ljust(offset, " ") + secret + tail


def pieces(secret: str) -> set[str]:
    return {secret[i:i + PIECE] for i in range(len(secret) - PIECE + 1)}


def leaked(secret: str, outputs: list[str], *sources: str) -> list[str]:
    """The 8-character pieces of ``secret`` in ``outputs`` that none of ``sources`` holds (the text
    around the secret, the path's output without it): those can only have come from the secret."""
    found = []
    for out in outputs:
        out = out.replace(REDACTED, "\x00")
        found += [p for p in pieces(secret) if p in out and not any(p in s for s in sources)]
    return found


@settings(max_examples=400, deadline=None)
@given(secret_values, around, around, offsets, st.integers(min_value=0, max_value=2500), st.booleans())
def test_clip_never_leaves_a_piece_of_a_secret(secret, head, tail, offset, limit, from_end):
    register_secret(secret)
    text = placed(secret, head, tail, offset)
    out = clip(text, limit, tail=from_end)
    assert len(out) <= limit
    assert not leaked(secret, [out], head, tail)


def _judge_outputs(text: str) -> list[str]:
    """Every message/detail builder of the judges, fed ``text`` where the platform's words go."""
    from netra_nb.frames import normalize
    from netra_nb.http import HttpObservation
    from netra_nb.judge import Identity, judge_agent_run, judge_http, judge_reply, judge_ws_failure
    from netra_nb.ws import WsFrame, WsObservation

    verdicts = [judge_http(HttpObservation("GET", "http://h/health", status=503, body=text.encode()), health=True),
                judge_http(HttpObservation("GET", "http://h/health", exception=OSError(text)))]
    failed = WsObservation(url="ws://h/ws", placement="header", upgrade_status=403, upgrade_body=text,
                           exception=RuntimeError("server rejected WebSocket connection: HTTP 403"))
    verdicts.append(judge_ws_failure(failed))

    def session(*frames: dict | str) -> WsObservation:
        obs = WsObservation(url="ws://h/ws", placement="header", open_s=0.01, first_client_message_t=0.05,
                            request_t=0.05)
        obs.welcome = normalize('{"type": "connection_established"}')
        for i, f in enumerate(frames):
            raw = f if isinstance(f, str) else json.dumps(f)
            obs.frames.append(WsFrame(0.1 + i / 100, "received", len(raw), raw, normalize(raw)))
        return obs

    events = [{"type": e, "run_id": "r", "user_id": "u"} for e in
              ("agent_started", "agent_thinking", "tool_executing", "tool_completed")]
    done = {"type": "agent_completed", "run_id": "r", "user_id": "u", "data": {"status": "completed", "result": {"note": text}}}
    empty = {"type": "agent_completed", "run_id": "r", "user_id": "u", "data": {"note": text}}
    me = Identity.of("u")
    verdicts += [judge_agent_run(session(*events, done), request_sent=True, identity=me, sent_run_id="r"),
                 judge_agent_run(session(*events, empty), request_sent=True, identity=me, sent_run_id="r"),
                 judge_agent_run(session(*events, text), request_sent=True, identity=me, sent_run_id="r"),
                 judge_reply(session({"type": "pong", "note": text}), expected=lambda n: n.event == "pong",
                             expectation="pong", request_sent=True)]
    return [part for v in verdicts for part in (v.message, v.detail)]


@settings(max_examples=150, deadline=None)
@given(secret_values, around, around, offsets)
def test_the_judges_never_leave_a_piece_of_a_secret(secret, head, tail, offset):
    register_secret(secret)
    text = placed(secret, head, tail, offset)
    baseline = "\n".join(_judge_outputs(placed("", head, tail, offset)))
    assert not leaked(secret, _judge_outputs(text), head, tail, baseline)


class EchoServer:
    """A WebSocket server on loopback that sends every message back (its own loop, in a thread)."""

    def __enter__(self) -> "EchoServer":
        from websockets.asyncio.server import serve

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def echo(ws):
            async for message in ws:
                await ws.send(message)

        async def start():
            return await serve(echo, "127.0.0.1", 0, max_size=None)

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/ws"
        return self

    def __exit__(self, *exc) -> None:
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def echo_server():
    with EchoServer() as srv:
        yield srv


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=secret_values, head=around, tail=around, offset=offsets)
def test_frames_kept_by_the_websocket_client_never_hold_a_piece_of_a_secret(echo_server, secret, head, tail, offset):
    from netra_nb.checks import CHECKS, Context, Outcome
    from netra_nb.judge import Verdict
    from netra_nb.params import parse_params
    from netra_nb.ws import WsSession

    text = placed(secret, head, tail, offset)

    async def exchange() -> WsSession:
        s = WsSession(echo_server.url, None, open_timeout=10)
        await s.open()
        assert await s.send(text)  # raw text: what the kit sends is kept too
        assert await s.receive(10) is not None
        await s.close()
        return s

    register_secret(secret)
    obs = asyncio.run(exchange()).obs
    params = parse_params({"name": "echo", "base_url": "http://127.0.0.1:1", "ws_url": echo_server.url,
                           "auth": {"method": "none"}})
    kept = Context(params)._frames(CHECKS["websocket_ping"], Outcome(Verdict("pass", "ok", "", ""), ws=[obs]))
    texts = [f.text for f in obs.frames] + [f.text for f in kept]
    assert len([f for f in obs.frames if f.direction in ("sent", "received")]) == 2
    assert not leaked(secret, texts, head, tail)


def _record(text: str, **kw):
    from netra_nb.records import Record
    fields = dict(run_id="r1", env="e", phase="connectivity", check="health", status="fail",
                  category="http_unavailable", started_at="2026-01-01T00:00:00.000Z", duration_s=0.25,
                  message=text, detail=text, target=text, ws_close_reason=text, http_status=503, bytes_received=10)
    return Record(**{**fields, **kw})


def _xml_values(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return [v for el in root.iter() for v in [el.text or "", el.tail or "", *el.attrib.values()]]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=secret_values, head=around, tail=around, offset=offsets)
def test_the_junit_writer_never_writes_a_piece_of_a_secret(tmp_path, secret, head, tail, offset):
    from netra_nb.junit import write_junit

    def write(text: str) -> list[str]:
        path = write_junit(tmp_path, [_record(text), _record(text, status="error", category="unknown")])
        return [path.read_text(), *_xml_values(path)]

    register_secret(secret)
    baseline = "\n".join(write(placed("", head, tail, offset)))  # what the writer says without the secret
    assert not leaked(secret, write(placed(secret, head, tail, offset)), head, tail, baseline)


def _markdown_plain(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=secret_values, head=around, tail=around, offset=offsets)
def test_summary_md_never_holds_a_piece_of_a_secret(tmp_path, secret, head, tail, offset):
    from netra_nb.report import write_summary_md

    def write(text: str) -> str:
        completed = json.dumps({"type": "agent_completed", "run_id": "x", "user_id": "u",
                                "data": {"status": "completed", "result": {"answer": text}}})
        frames = [{"run_id": "r1", "phase": "agent_pipeline", "check": "agent_run", "seq": 5, "t_s": 0.5,
                   "direction": "received", "type": "agent_completed", "event": "agent_completed",
                   "size": len(completed), "run": "x", "user_id": "u", "text": completed, "session": 0}]
        records = [_record(text),
                   _record(text, phase="agent_pipeline", check="agent_run", status="pass", category="ok",
                           events_seen=["agent_started", "agent_thinking", "tool_executing", "tool_completed",
                                        "agent_completed"], bytes_sent=10, http_status=None)]
        summary = {"run_id": "r1", "env": "e", "started_at": "2026-01-01T00:00:00.000Z", "duration_s": 1.0}
        out = write_summary_md(tmp_path, records, summary, frames).read_text()
        return out + "\n" + _markdown_plain(out)

    register_secret(secret)
    baseline = write(placed("", head, tail, offset))
    assert not leaked(secret, [write(placed(secret, head, tail, offset))], head, tail, baseline)


def test_every_path_under_test_carries_the_text_it_is_given(tmp_path, echo_server):
    """The property tests above are not vacuous: each path puts the text (so the secret) in its output."""
    marker = "MARKER-7f3a"
    outputs = _judge_outputs(marker + " " * 700)
    verdict_texts = [outputs[i] + outputs[i + 1] for i in range(0, len(outputs), 2)]
    assert len(verdict_texts) == 7 and all(marker in t for t in verdict_texts), verdict_texts
    from netra_nb.junit import write_junit
    assert marker in write_junit(tmp_path, [_record(marker)]).read_text()
    from netra_nb.report import write_summary_md
    completed = json.dumps({"type": "agent_completed", "data": {"status": "completed", "result": {"answer": marker}}})
    frames = [{"check": "agent_run", "event": "agent_completed", "direction": "received", "text": completed}]
    records = [_record("msg " + marker), _record("ok", phase="agent_pipeline", check="agent_run", status="pass",
                                                 category="ok", events_seen=["agent_started", "agent_completed"])]
    md = write_summary_md(tmp_path, records, {"run_id": "r1", "env": "e"}, frames).read_text()
    assert f'the result: {{"answer": "{marker}"}}' in md, md  # the agent's result is what summary.md quotes


def test_files_gone_over_where_they_were_written_are_skipped_by_the_last_pass_unless_they_changed(tmp_path):
    """The artifacts kernel redacts the Parquet files it writes (reading them needs pyarrow, which the runner
    does not import); the runner's last pass skips them while they are the files that were gone over."""
    secret = "scrub-" + os.urandom(10).hex()
    run = tmp_path / "run"
    run.mkdir()
    _plant(run, secret)
    register_secret(secret)
    done = scrub_files(run, ["results.parquet", "missing.parquet"])
    assert list(done) == ["results.parquet"] and done["results.parquet"] == signature(run / "results.parquet")
    assert pq.read_table(run / "results.parquet").column("detail").to_pylist() == [f"a {REDACTED}", None, "clean"]
    rewritten = {p.name for p in scrub_tree(run, scrubbed=done)}
    assert "results.parquet" not in rewritten and "results.jsonl" in rewritten
    # Written again after it was gone over (a secret with it): the last pass reads it again.
    pq.write_table(pa.table({"detail": [f"late {secret}"]}), run / "results.parquet")
    assert {p.name for p in scrub_tree(run, scrubbed=done)} == {"results.parquet"}
    assert pq.read_table(run / "results.parquet").column("detail").to_pylist() == [f"late {REDACTED}"]
