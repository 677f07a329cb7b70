"""Triage of an existing pytest run: its JUnit XML read into records, each testcase diagnosed.

A JUnit file says what a test *claimed*; it carries no wire evidence of ours. So triage reads every
testcase (``<testsuites>`` or a bare ``<testsuite>``, pytest's attributes, ``failure``, ``error``,
``skipped``, ``system-out``/``system-err``, ``properties``) and diagnoses it from what the client
saw, by an ordered table of rules (:data:`RULES`, first match wins) written in the words the
libraries staging suites use (websockets old and new, httpx/httpcore/h11, aiohttp, ssl, asyncio)
and the words of the platform's own staging suite.

* A **failure** is categorised by its own failure text; when that names no platform failure (an
  assertion about something else, the test code's own error), by what its own output *admits*
  (:func:`admissions`: a close code, an error frame, a refused upgrade, a 5xx, a network error,
  a failure labelled as expected or accepted).
* A **pass** is checked for what its own output admits the same way, and for the ways past runs
  lied: a mock or canned answer in its output (``mock_fallback``), a network test under 10 ms by
  its own name or output (``fake_fast``). Any of these turns the pass into ``fail``, saying that
  the test passed while its output shows the failure. Any other pass stays ``pass``/``ok``, with
  "triage: no wire evidence" in its detail.

One testcase's evidence never decides another's category: what other testcases of the run saw
(:func:`related_evidence`) is shown as context, labelled so, and nothing more. Everything here but
:func:`triage_main` is pure or reads only the given files; nothing raises on odd input except
:class:`TriageInputError` for a file that is not JUnit XML or that XML a safe parser refuses
(entity declarations: billion laughs, external entities).
"""

from __future__ import annotations

import bisect
import gzip
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from .judge import Identity
from .records import Record, append_jsonl, utc_now
from .redact import clip, redact
from .registry import NOTEBOOKS

__all__ = [
    "Rule",
    "RULES",
    "JUnitCase",
    "Diagnosis",
    "TriageInputError",
    "FAST_S",
    "parse_junit",
    "match_rule",
    "ADMISSIONS",
    "Admission",
    "admissions",
    "diagnose",
    "related_evidence",
    "triage_records",
    "triage_files",
    "load_triage",
    "status_counts",
    "rules_table",
    "triage_main",
]

#: A testcase faster than this (seconds) cannot have done network work.
FAST_S = 0.010
DETAIL_LIMIT = 4000
ENV = PHASE = "triage"


class TriageInputError(ValueError):
    """A file that cannot be read as JUnit XML; the message names the file (and line)."""


# -- the rules ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """``pattern`` found in the evidence ⇒ ``category``; ``refine`` may name a more precise one from the
    same testcase's whole evidence."""

    name: str
    category: str
    pattern: re.Pattern[str]
    refine: Callable[[str], str | None] | None = None
    #: a sequence in websockets' debug log, or lines of one output read together, that :func:`admissions`
    #: finds by reading the output in order (the pattern shows its shape); never matched against a text on its own
    sequence: bool = False


# Words before a status code that make it an HTTP status ("Unexpected status: 500", "HTTP 503",
# "status_code == 404", httpx's "Server error '503 Service Unavailable'", aiohttp's
# "ClientResponseError: 503, message=", httpcore's log "(b'HTTP/1.1', 503, ", "assert 401 == 200").
_STATUS = (r"(?:unexpected status(?: code)?|status(?:[ _]?code)?|http(?:/\d(?:\.\d)?)?|returned|responded(?: with)?"
           r"|answered|got|error '|assert|->|clientresponseerror)\W{0,4}")
# The WebSocket upgrade being refused: websockets' InvalidStatus/InvalidStatusCode ("server rejected
# WebSocket connection: HTTP 403"), aiohttp's "WSServerHandshakeError: 403, message='Invalid response
# status'", websocket-client's "Handshake status 403", websockets' debug log of the upgrade's answer
# ("websockets.client:client.py:318 < HTTP/1.1 503 Service Unavailable"), or words to that effect.
_UPGRADE = (r"(?:rejected websocket connection|invalidstatus(?:code)?|wsserverhandshakeerror|handshake status"
            r"|websockets\.client\b[^\n]{0,40}< http/1\.1"
            r"|websocket (?:upgrade|handshake|connection)[^\n]{0,40}?(?:failed|rejected|refused|error))[^\n]{0,40}?")
# Evidence that a text is about a WebSocket (for a dropped connection: ws_abnormal_close, not HTTP).
_WS_WORDS = re.compile(r"(?i)websocket|\bwss?://|connectionclosed|while reading http status line|\bws_connect\b"
                       r"|\bws\.(?:recv|send|receive)|wsmsgtype")

_URL_PATH = re.compile(r"(?i)\b(wss?|https?)://[^/\s'\"<>]+(/[^\s'\"<>?#),;]*)?")
_GET_200 = re.compile(r"(?i)\bGET\b[^\n]*?(?:https?://[^/\s'\"]+)?(/[^\s'\"?#),;]*)[^\n]*?\b200\b")


def _same_path_gets(evidence: str) -> list[str]:
    """The lines of ``evidence`` where an HTTP GET on the WebSocket's path answered 200."""
    ws_paths = {(m.group(2) or "/").rstrip("/") or "/" for m in _URL_PATH.finditer(evidence)
                if m.group(1).lower().startswith("ws")}
    lines = []
    for line in evidence.splitlines():
        m = _GET_200.search(line)
        if m is None:
            continue
        path = m.group(1).rstrip("/") or "/"
        # Without the WebSocket URL in the evidence, a GET on a path that looks like one will do.
        if path in ws_paths or (not ws_paths and re.search(r"(?i)/ws$|websocket", path)):
            lines.append(line.strip())
    return lines


def _route_missing(evidence: str) -> str | None:
    """403 on the upgrade while an HTTP GET on the same path answered 200: no WebSocket route there."""
    return "ws_route_missing" if _same_path_gets(evidence) else None


def _dropped(evidence: str) -> str | None:
    """A connection dropped without an answer: on a WebSocket that is an abnormal close (1006); on HTTP,
    the platform not serving (the kit's own checks judge a dropped HTTP request the same way)."""
    return "ws_abnormal_close" if _WS_WORDS.search(evidence) else None


# An answer that says the platform is not serving (502, 503, 504), in any of the words the rules know.
_UNAVAILABLE = _STATUS + r"50[234]\b|service unavailable|bad gateway|gateway time-?out"
_UNAVAILABLE_LINE = re.compile(_UNAVAILABLE, re.IGNORECASE)
# The contract's E2E token endpoint (POST {auth}/auth/e2e/test-auth), with the origin that serves it.
_E2E_URL = re.compile(r"(?i)\b(https?://[^/\s'\"<>]+)/auth/e2e/")
# A request answered 2xx, by its method and URL (httpx's 'HTTP Request: GET https://… "HTTP/1.1 200 OK"', "GET … -> 200").
_ANSWERED_2XX = re.compile(r"(?i)\b(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+(https?://[^/\s'\"<>]+)(/[^\s'\"<>]*)?"
                           r"[^\n]*?" + _STATUS + r"2\d\d\b")
# httpcore's trace of a request's answer names no URL ("receive_response_headers.complete return_value=(b'HTTP/1.1',
# 503, …"): the httpx line that follows it does.
_HTTPCORE_TRACE = re.compile(r"(?i)^\s*(?:DEBUG\s+)?httpcore\.")


def _e2e_method_unavailable(evidence: str) -> str | None:
    """``auth_unavailable`` when every answer of the evidence that says "not serving" is the E2E token endpoint's
    (a 503 there is the contract's "not configured") while the same origin answered another path with 2xx in the
    same evidence (the auth service is up): the service does not offer the E2E method here."""
    origins = set()
    for line in evidence.splitlines():
        if not _UNAVAILABLE_LINE.search(line):
            continue
        m = _E2E_URL.search(line)
        if m:
            origins.add(m.group(1).lower())
        elif not _HTTPCORE_TRACE.match(line):
            return None  # something else was not serving either
    for m in _ANSWERED_2XX.finditer(evidence):
        if m.group(1).lower() in origins and not (m.group(2) or "").lower().startswith("/auth/e2e/"):
            return "auth_unavailable"
    return None


def _r(name: str, category: str, pattern: str, refine: Callable[[str], str | None] | None = None,
       sequence: bool = False) -> Rule:
    return Rule(name, category, re.compile(pattern, re.IGNORECASE), refine, sequence)


# A timeout raised while a frame of the opening handshake was waiting (websockets' handshake /
# read_http_response, pytest's short and native traceback layouts alike), in any wording.
_IN_HANDSHAKE = r"(?:: in |, in )(?:handshake|read_http_response)\b"
_IN_RECV = r"(?:\brecv\(|\breceive(?:_json|_str)?\(|(?:: in |, in )(?:recv|receive)\b)"
_TIMEOUT_EXC = r"\b(?:timeouterror|cancellederror)\b"
# The message types that start an agent run (netra-contract.md: start_agent, user_message and their aliases),
# and the events of a run (the five, their failures, and the other types the contract names).
_AGENT_REQUEST = r"(?:start_agent|execute_agent|user_message|chat_message|message)"
_AGENT_EVENT = r"(?:agent_[a-z_]+|tool_executing|tool_completed|progress_update)"
# The same in words: the library's own, and the suites' helpers' ("WebSocket connection to wss://…
# timed out after 10s").
_HANDSHAKE_TIMEOUT = (r"timed out during (?:the )?opening handshake|opening handshake (?:timed out|timeout)"
                      r"|handshake timed out|timeout during (?:the )?(?:websocket )?handshake"
                      r"|websocket (?:connection|connect|handshake|upgrade)\b[^\n]{0,160}?(?:timed? ?out|timeout)")

#: The diagnosis table, first match wins. Order matters where texts overlap: WebSocket evidence
#: first (its upgrade refusals say "HTTP 403" too), the client's keepalive close before the
#: server's 1011, a 1008 (or an AUTH_FAILED frame) before an error frame before a 1011 (the frame
#: says what failed; the reference platform's fault profiles expect the same precedence), a health
#: body's ``"status":"degraded"`` before anything its checks mention, the E2E endpoint's "not
#: configured" before its 503, agent evidence before HTTP statuses, a session that was not ours after
#: every failure of the session itself (the kit's judge keeps a session's own failure too), statuses
#: before network words (a 500 whose body says "connection refused" is a 500), a TLS handshake that
#: timed out before other TLS errors, a dropped connection before protocol errors (websockets'
#: InvalidMessage wraps the EOF), and the test code's own errors last.
RULES: tuple[Rule, ...] = (
    _r("subprotocol", "ws_subprotocol_mismatch", r"negotiationerror|no subprotocols? supported|unsupported subprotocol"
       r"|(?:invalid|unexpected|mismatched) subprotocol|subprotocol (?:mismatch|negotiation failed|not supported)"),
    _r("handshake_timeout", "ws_handshake_timeout",
       _HANDSHAKE_TIMEOUT + r"|(?s:" + _IN_HANDSHAKE + r".{0,4000}?" + _TIMEOUT_EXC + r")"),
    # websockets' debug log: the upgrade request went out, no answer came, and the client hung up
    _r("upgrade_unanswered", "ws_handshake_timeout", r"websockets\.client[^\n]*> get /[^\n]*http/1\.1\n"
       r"(?:[^\n]*\n)*?[^\n]*websockets\.client[^\n]*> eof", sequence=True),
    _r("upgrade_401_403", "ws_upgrade_auth_rejected", _UPGRADE + r"\b40[13]\b", _route_missing),
    _r("upgrade_404", "ws_route_missing", _UPGRADE + r"\b(?:404|400|405|426|200)\b(?! ?ms)"),
    _r("upgrade_502_503_504", "ws_upgrade_unavailable", _UPGRADE + r"\b50[234]\b"),
    _r("upgrade_5xx", "ws_upgrade_server_error", _UPGRADE + r"\b5\d\d\b"),
    _r("keepalive", "ws_keepalive_timeout", r"keepalive ping timeout|sent 1011 \(internal error\) keepalive"
       r"|no pong received|timed out waiting for keepalive pong"),
    _r("close_1008", "ws_policy_violation", r"received 1008\b|1008 \(policy violation\)|\bclose(?:d)?\b[^\n]{0,20}\b1008\b"
       r"|\bcode\W{0,3}1008\b|auth_failed|received 4001\b|\bclose(?:d)?\b[^\n]{0,20}\b4001\b|\bcode\W{0,3}4001\b"),
    _r("error_frame", "ws_error_frame", r"[\"']type[\"']\s*:\s*[\"'](?:error(?:_message)?|authentication_error)[\"']"
       r"|error(?:_message)? frame|[\"']error_code[\"']\s*:|\b(?:connection_error|auth_error)\b"),
    _r("close_1011", "ws_internal_error", r"received 1011\b|1011 \(internal error\)|\bclose(?:d)?\b[^\n]{0,20}\b1011\b"
       r"|\bcode\W{0,3}1011\b"),
    # websockets' debug log: an agent request went out and the session ended with no agent event
    _r("agent_unanswered", "agent_no_events", r"websockets\.client[^\n]*> text '\{[^'\n]*?\"type\": ?\""
       + _AGENT_REQUEST + r"\"[^\n]*\n(?:[^\n]*\n)*?[^\n]*websockets\.client[^\n]*(?:[<>] close|[<>] eof)", sequence=True),
    # websockets' debug log: two events of one run flagged as out of the contract's order, or the first
    # events of two runs where the test sent one request (the second run is not ours)
    _r("events_out_of_order", "agent_event_order", r"< text '\{\"type\": ?\"(?:agent|tool)_\w+\", ?\"run_id\": ?\""
       r"(run_[0-9a-f]{6})[^\n]*\n(?:[^\n]*\n)*?[^\n]*< text '\{\"type\": ?\"(?:agent|tool)_\w+\", ?\"run_id\": ?\"\1",
       sequence=True),
    _r("foreign_run", "cross_user_leak", r"< text '\{\"type\": ?\"agent_\w+\", ?\"run_id\": ?\"(run_[0-9a-f]{6})[^\n]*\n"
       r"(?:[^\n]*\n)*?[^\n]*< text '\{\"type\": ?\"agent_\w+\", ?\"run_id\": ?\"(?!\1)run_", sequence=True),
    # the same, where some agent events came and agent_completed did not
    _r("agent_unfinished", "agent_incomplete", r"websockets\.client[^\n]*< text '[^\n]*?\"(?:type|event)\": ?\""
       r"(?!agent_completed|agent_error|agent_failed|agent_death)" + _AGENT_EVENT
       + r"\"[^\n]*\n(?:[^\n]*\n)*?[^\n]*websockets\.client[^\n]*(?:[<>] close|[<>] eof)", sequence=True),
    _r("close_normal", "ws_closed_early", r"(?<!then )received 10(?:00|01|12) \(|(?<![>] close )\b1000 \(ok\)"
       r"|\b1001 \(going away\)|\b1012 \(service restart\)|main cleanup|(?<!> )\bclose(?:d)?\b[^\n]{0,20}\b10(?:00|01|12)\b"),
    # (not "_ssl.c:1006": the ssl module names its source line in every message)
    _r("close_1006", "ws_abnormal_close", r"no close frame (?:received|sent)|(?:close[ds]?|code|received|sent)\b[^\n\d]{0,20}"
       r"\b1006\b|\b1006 \(abnormal|abnormal closure"),
    # websockets' debug log: an open session ended by the server's EOF, no close frame either way
    _r("dropped_session", "ws_abnormal_close", r"websockets\.client[^\n]*= connection is open\n"
       r"(?:[^\n]*\n)*?[^\n]*websockets\.client[^\n]*< eof", sequence=True),
    _r("health_body", "health_degraded", r"[\"']status[\"']\s*:\s*[\"']degraded[\"']"),
    _r("e2e_not_configured", "auth_unavailable", r"e2e (?:auth\w*|bypass|test[ -]auth)[^\n]{0,40}?not (?:configured|enabled"
       r"|available)"),
    _r("agent_failed", "agent_failed", r"[\"']type[\"']\s*:\s*[\"']agent_(?:error|failed)[\"']"
       r"|(?:received|got) (?:an? )?agent_(?:error|failed)|\bagent_(?:error|failed) (?:event|frame|arrived|received)"),
    _r("agent_empty_result", "agent_empty_result", r"agent_completed[^\n]{0,60}(?:without|no|empty|missing)[^\n]{0,12}result"
       r"|empty (?:agent )?result"),
    _r("agent_no_events", "agent_no_events", r"should receive (?:websocket |agent )?events"
       r"|no (?:websocket |agent )?events? (?:received|were received|arrived|came|within)"
       r"|(?:timed? ?out|timeout)[^\n]{0,40}wait(?:ing)? for[^\n]{0,30}(?:event|agent|websocket)"
       r"|wait(?:ing)? for (?:agent |websocket )?(?:events?|repl\w*)[^\n]{0,30}(?:timed? ?out|timeout)"
       r"|websocket (?:receive|recv|reply|replies|message)[^\n]{0,30}(?:timed? ?out|timeout)"
       r"|missing[^\n]{0,40}agent_started|\b0 (?:agent |websocket )?events\b"
       r"|(?s:" + _IN_RECV + r".{0,1500}?" + _TIMEOUT_EXC + r")"),
    _r("agent_incomplete", "agent_incomplete", r"(?:missing|never (?:got|received)|did not (?:get|receive))[^\n]{0,40}"
       r"agent_completed|agent_completed[^\n]{0,30}(?:missing|never|not (?:received|arrived))"),
    _r("no_reply", "ws_no_reply", r"no (?:response|reply|pong|answer)\b[^\n]{0,40}?(?:received|within|before|timed? ?out"
       r"|timeout)|\b(?:ping|pong)\b[^\n]{0,30}(?:timed? ?out|timeout|no reply|unanswered)"),
    # websockets' debug log or the test's prints: the platform's stand-in for a user whose token it did not read
    _r("auth_ignored", "ws_auth_ignored", r"\buser_?id\\*[\"']?\s*[:=]\s*\\*[\"'](?:demo-user-\d+|demo-use\.\.\.|relaxed_)",
       sequence=True),
    _r("http_502_503_504", "http_unavailable", _UNAVAILABLE, _e2e_method_unavailable),
    _r("http_5xx", "http_server_error", _STATUS + r"5\d\d\b|internal server error"),
    _r("http_401_403", "http_auth_rejected", _STATUS + r"40[13]\b|\bunauthorized\b|\bforbidden\b"),
    _r("http_404", "http_not_found", _STATUS + r"404\b|404 not found"),
    _r("http_4xx", "http_client_error", _STATUS + r"4\d\d\b"),
    _r("dns", "dns_failure", r"name or service not known|nodename nor servname|getaddrinfo failed"
       r"|temporary failure in name resolution|\bgaierror\b|no address associated with hostname"
       r"|clientconnectordnserror"),
    _r("refused", "connection_refused", r"connection refused|econnrefused|errno 111\b|errno 61\b|connect call failed"),
    _r("connect_failed", "connection_refused", r"all connection attempts failed"),
    _r("unreachable", "connect_timeout", r"network is unreachable|no route to host|errno 10[13]\b|errno 11[03]\b"
       r"|enetunreach|ehostunreach"),
    _r("tls_timeout", "connect_timeout", r"ssl handshake is taking longer than|handshake operation timed out"),
    _r("tls", "tls_error", r"\bssl\w*error\b|certificate verify failed|certificate_verify_failed|tlsv1_alert"
       r"|wrong version number|\bssl: |eof occurred in violation of protocol|clientconnectorcertificateerror"),
    _r("connect_timeout", "connect_timeout", r"\bconnecttimeout\b|connect(?:ion)? timed? ?out|timed out while connecting"
       r"|timeout (?:while )?connecting|connection timeout to host|connectiontimeouterror"),
    _r("health_words", "health_degraded", r"\b(?:degraded|unhealthy)\b"),
    _r("read_timeout", "read_timeout", r"\breadtimeout\b|\bwritetimeout\b|\bpooltimeout\b|read timed? ?out"
       r"|timeout on reading data|sockettimeouterror|servertimeouterror|\btimeouterror\b|\btimed out\b"),
    _r("dropped", "http_unavailable", r"connection reset by peer|econnreset|errno 104\b|broken pipe|errno 32\b"
       r"|server disconnected|remotedisconnected|peer closed connection|incompletereaderror|bytes read on a total of"
       r"|connection closed while reading|response payload is not completed|connection(?:reset|aborted)error",
       _dropped),
    _r("contract", "contract_mismatch", r"jsondecodeerror|expecting value: line \d|not (?:valid )?json|expecting property name"
       r"|invalid json received|received non-json|non-json (?:data|frame|message)"
       r"|missing (?:required )?(?:keys?|fields?)\b|unexpected (?:response )?(?:shape|format|schema)"
       r"|did not receive a valid http response|invalid(?:header(?:value|format)?|upgrade|message)\b"
       r"|invalid sec-websocket-\w+ header|remoteprotocolerror|localprotocolerror|decodingerror|contenttypeerror"
       r"|unexpected mimetype"),
    _r("config", "config_error", r"(?:environment variable|env var)[^\n]{0,60}(?:not set|missing|required)"
       r"|(?:not set|missing)[^\n]{0,40}(?:environment variable|env var)|invaliduri|isn't a valid uri|invalid url"
       r"|unsupportedprotocol|has an unsupported protocol"
       r"|(?-i:\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b)[^\n]{0,20}?\b(?:is )?(?:not set|required but not set|not configured"
       r"|not provided|missing)\b"),
    _r("client", "client_error", r"\b(?:typeerror|attributeerror|nameerror|importerror|modulenotfounderror|syntaxerror"
       r"|unboundlocalerror|indentationerror|concurrencyerror)\b|fixture '[^']+' not found|event loop is closed"
       r"|coroutine '[^']+' was never awaited|async def functions are not natively supported"
       r"|generator didn't stop|test (?:completed )?too (?:fast|quickly)"),
)

_KIT_CATEGORIES = frozenset({"client_error", "config_error", "unknown"})
_RULE = {r.name: r for r in RULES}


def match_rule(text: str, context: str = "") -> tuple[Rule, str] | None:
    """The first rule whose pattern is in ``text``, with its category (refined with ``text`` and
    ``context``); None when no rule matches.

    ``context`` must be the *same* testcase's other evidence (its output next to its failure): one
    testcase's evidence never decides another's category.
    """
    for rule in RULES:
        if not rule.sequence and rule.pattern.search(text):
            refined = rule.refine(f"{text}\n{context}") if rule.refine else None
            return rule, refined or rule.category
    return None


# -- what a testcase's own output admits ------------------------------------------------------------------

def _union(*names: str) -> str:
    return "|".join(f"(?:{_RULE[n].pattern.pattern})" for n in names)


# Words a suite uses to wave a failure through, and words that say something did fail (lowercase:
# matched against the lowercased output, like :data:`ADMISSIONS`).
_ACCEPTED = re.compile(
    r"\[expected\]|\bexpected (?:in staging|for staging|behaviou?r|error|failure)|\bas expected\b"
    r"|known (?:issue|limitation|problem|bug)|\blimitation\b|graceful(?:ly)?[ _-]?degrad|\baccept(?:ed|ing|able)\b"
    r"|\[partial pass\]|partial success|may be normal|\bnon-critical\b|\btolerat(?:ed|ing)\b"
    r"|(?:server|service|staging) (?:has|is having|may be experiencing|experiencing) issues")
_FAILED = re.compile(r"\b[45]\d\d\b|error|fail|timed? ?out|refused|reject|\bclosed?\b|unavailable|forbidden"
                     r"|unauthori[sz]ed|denied|no (?:response|reply|events?)|not respond|degraded|unhealthy")
# The contract's own replies to an invalid request: a test that provoked them and saw them is honest.
# Prefixes too: websockets' debug log keeps a long frame's first 47 characters and elides the middle
# ('…,"error_code":"JSON_PA...', '{"type":"error","message":"Please enter a messa...mp":1795994409.83}').
_EXPECTED_REPLY = re.compile(r"(?i)\bjson_pa|\binvalid_m|please enter a me")

#: What, in a testcase's own output, admits that something failed, line by line (lowercase patterns,
#: matched against the lowercased output: see :data:`_ADMITTED`). Normal closes
#: (1000/1001 after our own close) and the contract's replies to invalid input do not count;
#: HTTP 4xx do not either (a suite probes routes that do not exist), unless a line labels them
#: as expected or accepted.
ADMISSIONS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern)) for name, pattern in (
    ("a close code", r"(?<!then )received (?!100[01] |1012 )\d{4} \(|(?:sent|> close) 1011 \(internal error\) keepalive"
     r"|no close frame received or sent|< close (?!100[01]\b)\d{4}\b|data=(?!100[01]\b)\d{4}, extra="
     r"|no pong received|\bclosed?\b(?: with)?(?: code)?\W{0,3}(?:1011|1008|1006|40\d\d)\b"),
    ("a close before the end", r"(?<!then )received 10(?:00|01|12) \([^)]*\)[^;\n]*; then sent"),
    ("a keepalive that timed out", r"timed out waiting for keepalive pong|keepalive ping timeout"),
    ("an agent that sent nothing", r"(?:timed? ?out|timeout)[^\n]{0,40}wait(?:ing)? for[^\n]{0,30}(?:events?|agent)\b"
     r"|no (?:websocket |agent )?events? (?:received|were received|arrived|came|within)"
     r"|missing[^\n]{0,40}agent_(?:started|completed)"),
    ("a refused upgrade", _UPGRADE + r"\b(?!101\b)[1-5]\d\d\b"),
    ("a handshake that timed out", _HANDSHAKE_TIMEOUT),
    ("an error frame", r"[\"']type[\"']\s*:\s*[\"'](?:error(?:_message)?|authentication_error)[\"']"
     r"|\b(?:connection_error|auth_failed|auth_error|internal_error|service_unavailable)\b"),
    ("an agent failure", _RULE["agent_failed"].pattern.pattern),
    ("a frame that is not json", r"invalid json received|received non-json|non-json (?:data|frame|message)"),
    # httpcore's trace log of a request that failed: "receive_response_headers.failed exception=ReadTimeout(…)"
    ("a request that failed", r"httpcore\.[\w.]+:[\w.]+:\d+ [\w.]+\.failed exception="),
    ("a server error", _STATUS + r"5\d\d\b|internal server error|service unavailable|bad gateway|gateway time-?out"),
    ("a health body", _RULE["health_body"].pattern.pattern),
    ("the E2E endpoint", _RULE["e2e_not_configured"].pattern.pattern),
    ("a network error", _union("dns", "refused", "connect_failed", "unreachable", "tls_timeout", "tls", "connect_timeout")),
))


@dataclass(frozen=True)
class Admission:
    """What a testcase's own output admits: the category it points at, the rule that named it (None
    when only a label such as "known issue" said so), and the lines that said it."""

    category: str
    rule: str | None
    lines: tuple[str, ...]
    quote: str  # the line that shows it best: what the test printed, else a log record, else the first line


#: All of :data:`ADMISSIONS` in one pattern, run once over the *lowercased* output: a suite's
#: captured output runs to hundreds of kilobytes, and case-insensitive matching is the slow part.
_ADMITTED = re.compile("|".join(f"(?:{p.pattern})" for _, p in ADMISSIONS))


def _line_numbers(pattern: re.Pattern[str], text: str) -> list[int]:
    """The numbers of the lines of ``text`` in which ``pattern`` matches: one pass over the text."""
    ends = [m.start() for m in re.finditer("\n", text)]
    numbers, pos = [], 0
    while pos <= len(text) and (m := pattern.search(text, pos)) is not None:
        n = bisect.bisect_left(ends, m.start())
        numbers.append(n)
        pos = ends[n] + 1 if n < len(ends) else len(text) + 1
    return numbers


def _matching_lines(pattern: re.Pattern[str], text: str) -> list[str]:
    """Every line of ``text`` in which ``pattern`` matches, in order."""
    lines = text.split("\n")
    return [lines[n] for n in _line_numbers(pattern, text)]


# pytest's captured log record: "DEBUG    websockets.client:protocol.py:599 < CLOSE 1011 …".
_LOG_RECORD = re.compile(r"(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+[\w.]+:[\w.]+:\d+ ")
_CLOSE_LOG = re.compile(r"(?<!\S)([<>]) close (\d{4}) \(")


Finding = tuple[str, tuple[int, ...]]  # (the rule that names it, the lines that show it)


def _server_closed_first(low: Sequence[str]) -> list[Finding]:
    """The lines of websockets' debug log ("< CLOSE 1000 (OK) main cleanup", "> CLOSE …") where the
    server sent a normal close that was not the echo of ours: a session the server ended. Each of
    our closes is owed one echo; sessions that interleave are counted, not told apart."""
    owed, first = 0, []
    for n, line in enumerate(low):
        m = _CLOSE_LOG.search(line)
        if m is None:
            continue
        if m.group(1) == ">":
            owed += 1
        elif owed:
            owed -= 1
        elif m.group(2) in ("1000", "1001", "1012"):
            first.append(("close_normal", (n,)))
    return first


_WS_LOG = re.compile(r"websockets\.client\b.*?"
                     r"(> get /\S* http/1\.1|< http/1\.1|= connection is open|[<>] close \d|[<>] eof)")


def _broken_sessions(low: Sequence[str]) -> list[Finding]:
    """The lines of websockets' debug log that show a session broken on the wire: an upgrade request
    the client gave up on before any answer ("> GET … HTTP/1.1" … "> EOF", no "< HTTP/1.1"), and an
    open session the server ended with EOF and no close frame ("= connection is OPEN" … "< EOF").
    Sessions that interleave are read in order, not told apart."""
    found: list[Finding] = []
    request, opened, closing = None, None, False
    for n, line in enumerate(low):
        m = _WS_LOG.search(line)
        if m is None:
            continue
        event = m.group(1)
        if event.startswith("> get"):
            request, opened, closing = n, None, False
        elif event.startswith("< http"):
            request = None
        elif event.startswith("= connection is open"):
            opened, closing = n, False
        elif "close" in event:
            closing = True
        elif event == "> eof" and request is not None:
            found.append(("upgrade_unanswered", (request, n)))
            request = None
        elif event == "< eof" and opened is not None and not closing:
            found.append(("dropped_session", (opened, n)))
            opened = None
    return found


_WS_FRAMES = re.compile(r"websockets\.client\b.*?(?:> text '\{[^'\n]*?\"type\": ?\"(?P<request>" + _AGENT_REQUEST
                        + r")\"|< text '[^\n]*?\"(?:type|event)\": ?\"(?P<event>" + _AGENT_EVENT + r")\""
                        r"|< text '\{\"type\": ?\"(?P<reply>error|ack|heartbeat)"
                        r"(?:[^\n]*?\"received_type\": ?\"(?P<acked>[a-z_]+))?|(?P<ping>< ping)|(?P<end>[<>] close \d|[<>] eof))")
_RUN_ENDS = ("agent_completed", "agent_error", "agent_failed", "agent_death")


# A test's own word that it waited for more and nothing came ("[INFO] No more events received within timeout").
# Alone it says nothing (a healthy run prints it after agent_completed); beside an agent request that no
# event answered before the session ended, it says that the client waited.
_WAITED_IN_VAIN = re.compile(r"no (?:more |further )?(?:events?|messages?|responses?)(?: received)? (?:within|before)"
                             r" (?:the )?timeout")


def _unfinished_runs(low: Sequence[str], said_waited: int | None = None) -> list[Finding]:
    """The lines of websockets' debug log where an agent request went out ("> TEXT '{… "type": "start_agent"…")
    and the session ended ("CLOSE", "EOF") while the client was still waiting: after the request, or
    after the last agent event, a heartbeat, a ping or the ack of that request arrived (they answer
    nothing, but show that the client waited; a client that closes right after the welcome or an event
    did not), or the test said it waited in vain (``said_waited``: the number of that line, which the
    finding then holds too): the request and the end when no agent event came; the last agent event
    and the end when the run never reached agent_completed (nor agent_error). An error reply answers
    the request. Sessions that interleave are read in order, not told apart."""
    found: list[Finding] = []
    request: tuple[int, str] | None = None
    last_event, waited = None, False
    for n, line in enumerate(low):
        m = _WS_FRAMES.search(line)
        if m is None:
            continue
        if m.group("request"):
            request, last_event, waited = (n, m.group("request")), None, False
        elif request is None:
            continue
        elif m.group("event"):
            if m.group("event") in _RUN_ENDS:
                request = None
            else:
                last_event, waited = n, False
        elif m.group("reply") == "error":
            request = None
        elif m.group("ping") or m.group("reply") == "heartbeat" or m.group("acked") == request[1]:
            waited = True
        elif m.group("end"):
            if waited or said_waited is not None:
                shown = (request[0], n) if last_event is None else (last_event, n)
                found.append(("agent_unanswered" if last_event is None else "agent_unfinished",
                              shown if waited else (*shown, said_waited)))
            request = None
    return found


# The log elides long frames at a fixed width, so a run_id keeps more or fewer of its characters
# depending on the event's name: runs are told apart by the first 6 hex digits it always keeps.
_RUN_EVENT = re.compile(r"websockets\.client\b.*?< text '\{\"type\": ?\"(agent_started|agent_thinking|tool_executing"
                        r"|tool_completed|agent_completed)\", ?\"run_id\": ?\"(run_[0-9a-f]{6})")
_REQUEST_SENT = re.compile(r"websockets\.client\b.*?> text '\{[^'\n]*?\"type\": ?\"" + _AGENT_REQUEST + r"\"")


def _run_anomalies(low: Sequence[str]) -> list[Finding]:
    """The lines of websockets' debug log where a run's events break the contract's order (an event
    before agent_started, a tool_completed with no tool_executing open, anything after
    agent_completed) — each with the run's previous event — and, where the test sent a single agent
    request, the first event of a second run (a run that is not ours in our session). Runs are told
    apart by the first 6 hex digits of their run_id."""
    found: list[Finding] = []
    runs: dict[str, dict[str, Any]] = {}
    single = sum(1 for line in low if _REQUEST_SENT.search(line)) == 1
    for n, line in enumerate(low):
        m = _RUN_EVENT.search(line)
        if m is None:
            continue
        event, run = m.groups()
        if run not in runs:
            runs[run] = {"started": False, "open_tools": 0, "done": False, "last": None}
            if single and len(runs) == 2:
                found.append(("foreign_run", (next(r["first"] for r in runs.values() if r.get("first") is not None), n)))
            runs[run]["first"] = n
        state = runs[run]
        broken = ((event != "agent_started" and not state["started"]) or state["done"]
                  or (event == "tool_completed" and state["open_tools"] <= 0))
        if broken and state["last"] is not None:
            found.append(("events_out_of_order", (state["last"], n)))
        state["started"] |= event == "agent_started"
        state["open_tools"] += {"tool_executing": 1, "tool_completed": -1}.get(event, 0)
        state["done"] |= event == "agent_completed"
        state["last"] = n
    return found


# The user a session was welcomed as (or an ack or event carried), when it is one of the platform's stand-ins
# for a user whose token it never read (real-platform/README.md): DEMO_MODE's demo-user-001 and the anonymous
# relaxed_<hex>, whole or as the welcome shortens them ("demo-use...", "relaxed_..."). JSON, a Python repr, or
# JSON quoted inside a structured log record.
_STAND_IN = re.compile(r"\buser_?id\\*[\"']?\s*[:=]\s*\\*[\"'](demo-user-\d+|demo-use\.\.\.|relaxed_[0-9a-f]*(?:\.\.\.)?)")
# What a test says about whose credentials it made or holds ("Created staging JWT for EXISTING user: X",
# "Token represents REAL USER in staging database: X", "JWT token for: X", "Selected user: X").
_OUR_USER = re.compile(r"(?:\b(?:jwt|token)\b[^\n:]{0,60}?\b(?:for|represents)\b[^\n:]{0,40}:|\bselected user:)"
                       r"\s*([a-z0-9][\w.@+-]*)")
_SENT_LOG = re.compile(r"websockets\.client\b.*?> text ")


def _not_our_user(low: Sequence[str]) -> list[Finding]:
    """The lines where the platform named one of its stand-in users (:data:`_STAND_IN`) as the session's user
    while the same output says the test's credentials were made for another user: the token was not read.
    Each finding holds the lines naming our users and the line naming the stand-in. Nothing when the output
    names no user of ours (then nothing says the stand-in is not ours), nor for what the test itself sent."""
    ours = {m.group(1).rstrip(".,;"): n for n, line in enumerate(low) for m in _OUR_USER.finditer(line)}
    identity = Identity.of(*ours)
    if not identity:
        return []
    named = tuple(sorted(set(ours.values())))
    return [("auth_ignored", (*named, n)) for n, line in enumerate(low)
            if not _SENT_LOG.search(line)
            and any(identity.matches(m.group(1)) is False for m in _STAND_IN.finditer(line))]


def admissions(output: str, context: str = "") -> Admission | None:
    """What ``output`` (one testcase's captured output) admits failed, or None when it admits nothing.

    Every line that shows a failure (:data:`ADMISSIONS`), or that labels one as expected, a known
    issue, a limitation, graceful degradation, accepted (:data:`_ACCEPTED` with a failure word on
    the same line), is kept, in the output's order, and so are the sequences a structural reading of
    websockets' debug log finds (a normal close the server sent first, a session broken on the wire,
    an agent run the session ended unfinished, a run's events out of order, a second run in a
    one-request test), and a session welcomed as one of the platform's stand-in users while the test's
    credentials were made for another (:func:`_not_our_user`). The category is the earliest in :data:`RULES` order of the rule that matches
    the flagged lines (refined with ``context``, the same testcase's failure text) and the rules
    that name the sequences; lines that only a label flags and no rule names are ``unknown``. Pure.
    """
    lowered = output.lower()  # as many lines as ``output``: lower() never adds or removes a newline
    original, low = output.split("\n"), lowered.split("\n")
    flagged = set(_line_numbers(_ADMITTED, lowered))
    flagged.update(n for n in _line_numbers(_ACCEPTED, lowered) if _FAILED.search(low[n]))
    flagged = {n for n in flagged if not _EXPECTED_REPLY.search(low[n])}
    structures: list[Finding] = []
    if "close 10" in lowered:
        structures += _server_closed_first(low)
    if "websockets.client" in lowered:
        said = next(iter(_line_numbers(_WAITED_IN_VAIN, lowered)), None)
        structures += _broken_sessions(low) + _unfinished_runs(low, said) + _run_anomalies(low)
    if "demo-use" in lowered or "relaxed_" in lowered:
        structures += _not_our_user(low)
    numbers = sorted(flagged.union(*(nums for _, nums in structures)))
    lines = list(dict.fromkeys(original[n].strip() for n in numbers))
    if not lines:
        return None
    # The candidates, in RULES order: the first rule that matches the flagged lines, and each sequence
    # a structural reading found (named by its own rule, which a line-by-line match could confuse with
    # another run's or session's lines).
    said_lines = [original[n].strip() for n in sorted(flagged)]
    found = match_rule("\n".join(said_lines), f"{output}\n{context}") if said_lines else None
    order = {rule.name: i for i, rule in enumerate(RULES)}
    best = min(structures, key=lambda f: order[f[0]], default=None)
    if best is not None and (found is None or order[best[0]] < order[found[0].name]):
        rule = _RULE[best[0]]
        return Admission(rule.category, rule.name, tuple(lines), original[best[1][-1]].strip())
    if found is None:
        return Admission("unknown", None, tuple(lines), lines[0])
    # Quote what the test itself said where it can (a print), else a library's log record.
    alone = [line for line in said_lines if found[0].pattern.search(line)] or said_lines
    said = [line for line in alone if not _LOG_RECORD.match(line)]
    return Admission(found[1], found[0].name, tuple(lines), (said or alone)[0])


# -- reading JUnit XML -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class JUnitCase:
    """One ``<testcase>`` as pytest wrote it."""

    file: str  # the XML file it came from
    suite: str
    classname: str
    name: str
    time_s: float | None  # None: no (readable) time attribute
    outcome: str  # "passed" | "failure" | "error" | "skipped"
    type: str = ""  # of the failure/error/skipped element
    message: str = ""
    text: str = ""  # the element's body (the traceback, or the skip's location and reason)
    stdout: str = ""
    stderr: str = ""
    properties: tuple[tuple[str, str], ...] = ()
    source: str = ""  # file:line when pytest wrote them (junit_family=xunit1)
    suite_timestamp: str = ""
    offset_s: float = 0.0  # the testcases of its suite before it, in seconds

    @property
    def failure_text(self) -> str:
        return "\n".join(p for p in (self.type, self.message, self.text) if p)

    @property
    def output_text(self) -> str:
        props = "\n".join(f"{k}={v}" for k, v in self.properties)
        return "\n".join(p for p in (self.stdout, self.stderr, props) if p)


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip().replace(",", ""))
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") and number >= 0 else None


def _props(element: ET.Element | None) -> list[tuple[str, str]]:
    if element is None:
        return []
    return [(p.get("name", ""), p.get("value", p.text or "")) for p in element.iter("property")]


def _case(path: str, suite: ET.Element, case: ET.Element, suite_props: list[tuple[str, str]], offset: float) -> JUnitCase:
    outcome, kind, message = "passed", "", ""
    bodies = []
    for tag in ("failure", "error", "skipped"):  # a failure outranks a teardown error, which outranks a skip
        for el in case.findall(tag):
            if outcome == "passed":
                outcome, kind, message = tag, el.get("type", ""), el.get("message", "")
            bodies.append((el.text or "").strip())
    text = "\n\n".join(b for b in bodies if b)
    stdout = "\n".join((el.text or "") for el in case.findall("system-out")).strip()
    stderr = "\n".join((el.text or "") for el in case.findall("system-err")).strip()
    line = case.get("line")
    source = f"{case.get('file', '')}:{line}" if case.get("file") and line else case.get("file", "")
    return JUnitCase(file=path, suite=suite.get("name", ""), classname=case.get("classname", ""),
                     name=case.get("name", "") or "(unnamed)", time_s=_float(case.get("time")), outcome=outcome,
                     type=kind, message=message, text=text, stdout=stdout, stderr=stderr,
                     properties=tuple(suite_props + _props(case.find("properties"))), source=source,
                     suite_timestamp=suite.get("timestamp", ""), offset_s=offset)


def _refusal(exc: DefusedXmlException) -> str:
    """Why the safe parser refused a file, in words."""
    if isinstance(exc, EntitiesForbidden):
        target = f" ({exc.sysid})" if exc.sysid else ""
        return (f"refused: the XML declares the entity {exc.name!r}{target}; entity declarations are not read "
                "(they can expand without bound or read other files), and pytest never writes them")
    if isinstance(exc, ExternalReferenceForbidden):
        return f"refused: the XML references an external resource ({exc.sysid or exc.pubid}); it is not fetched"
    if isinstance(exc, DTDForbidden):
        return "refused: the XML carries a document type declaration"
    return f"refused: {exc}"


def parse_junit(path: str | Path) -> list[JUnitCase]:
    """Every testcase of a JUnit XML file (``<testsuites>``, nested suites, or a bare ``<testsuite>``).

    A ``.gz`` file is read through gzip (CI keeps reports compressed). The file is untrusted: it is
    read with defusedxml, which refuses entity declarations and external references (billion
    laughs, XXE). Raises :class:`TriageInputError` naming the file and
    line when it is refused, not well-formed XML, or not JUnit; an empty suite gives an empty list.
    """
    path = Path(path)
    parser = DefusedET.DefusedXMLParser(target=ET.TreeBuilder())
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as handle:
            root = DefusedET.parse(handle, parser=parser).getroot()
    except ET.ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        reason = str(exc).split(":")[0]
        raise TriageInputError(f"{path}:{line}:{column}: not well-formed XML ({reason})") from None
    except DefusedXmlException as exc:
        raise TriageInputError(f"{path}:{parser.parser.CurrentLineNumber}: {_refusal(exc)}") from None
    except (OSError, EOFError) as exc:  # EOFError: a gzip file cut short
        raise TriageInputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise TriageInputError(f"{path}:1: not JUnit XML: the root element is <{root.tag}>, "
                               "not <testsuites> or <testsuite>")
    cases = []
    suites = [root] if root.tag == "testsuite" else []
    suites += [s for s in root.iter("testsuite") if s is not root]
    for suite in suites:
        suite_props = _props(suite.find("properties"))
        offset = 0.0
        for case in suite.findall("testcase"):
            parsed = _case(str(path), suite, case, suite_props, offset)
            cases.append(parsed)
            offset += parsed.time_s or 0.0
    return cases


# -- diagnosing one testcase ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Diagnosis:
    status: str
    category: str
    message: str
    detail: str
    http_status: int | None = None
    ws_close_code: int | None = None
    ws_close_reason: str | None = None
    ws_closed_by: str | None = None
    target: str | None = None
    findings: tuple[str, ...] = ()
    rule: str | None = None  # the rule that decided the category


#: A mock or a canned answer standing in for the platform: the suites' mock WebSockets, and the
#: platform's own canned agent answers (netra_backend/app/routes/agents_execute.py: "Mock {type} agent
#: response for: …", "Mock {type} response (timeout fallback)", "Fallback {type} agent response: …
#: using recovery mechanism"). A client-side fallback (a locally signed token, a default timeout) is not.
_MOCK = re.compile(r"(?i)mock\w*[ _-]?websocket|fall(?:ing|s)?[ _-]?back to (?:a |the )?mock|fallback to (?:a |the )?mock"
                   r"|using (?:a )?mock\w* (?:websocket|platform|backend|server|response|agent)"
                   r"|\bmock \w+(?: agent)? response (?:for\b|\(timeout fallback\))|\bfallback \w+(?: agent)? response\b"
                   r"|using recovery mechanism|fallback activated|providing fallback response")
_NETWORK_WORDS = frozenset({"websocket", "websockets", "ws", "wss", "http", "https", "api", "staging", "agent", "agents",
                            "connection", "connections", "connect", "real", "e2e", "network", "endpoint", "endpoints",
                            "server", "auth", "token", "upgrade", "remote", "live", "integration", "health",
                            "production", "deployed", "pipeline", "orchestration", "request", "requests", "socket", "sockets"})
_NETWORK_OUTPUT = re.compile(r"(?i)\bwss?://|\bhttps?://|\bHTTP/\d|\bconnect(?:ed|ing) to\b|\bstaging\b")
_LOCAL_WORDS = frozenset({"unit", "unittest", "unittests"})
# websockets' ConnectionClosed text ("received 1011 (internal error) Internal error; then sent …") and
# its debug log ("< CLOSE 1011 (internal error) Internal error [16 bytes]": < received, > sent).
_CLOSE = re.compile(r"(?i)\b(received|sent) (\d{4}) \(([^)]*)\)\s*([^;\n]*)|(?:^|\s)([<>]) close (\d{4}) \(([^)]*)\)"
                    r"\s*([^\[\n]*)")
_CLOSE_CODE = re.compile(r"(?i)(?:close(?:d)?|code)\b[^\n\d]{0,20}\b([14]\d{3})\b")
_UPGRADE_CODE = re.compile(_UPGRADE + r"\b([1-5]\d\d)\b", re.IGNORECASE)
_HTTP_CODE = re.compile(_STATUS + r"([1-5]\d\d)\b", re.IGNORECASE)


def _tokens(*texts: str) -> set[str]:
    """Words of identifiers: snake_case, dotted.paths and CamelCase split ("TestWebSocket" → test, web, socket)."""
    words = set()
    for text in texts:
        spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
        words.update(t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t)
    return words


def _http_status(*texts: str) -> int | None:
    for text in texts:
        m = _UPGRADE_CODE.search(text) or _HTTP_CODE.search(text)
        if m:
            return int(m.group(1))
    return None


def _close(*texts: str) -> tuple[int | None, str | None, str | None]:
    """(code, reason, who closed first) of the first close in ``texts``."""
    for text in texts:
        m = _CLOSE.search(text)
        if m:
            side, code, meaning, reason = m.group(1, 2, 3, 4) if m.group(1) else m.group(5, 6, 7, 8)
            by = "server" if side.lower() in ("received", "<") else "client"
            return int(code), reason.strip() or meaning.strip() or None, by
        m = _CLOSE_CODE.search(text)
        if m:
            return int(m.group(1)), None, None
    return None, None, None


def _target(*texts: str) -> str | None:
    for text in texts:
        m = _URL_PATH.search(text)
        if m:
            return m.group(0)
    return None


def _first_line(text: str, limit: int = 240) -> str:
    """The first non-blank line of ``text``, cut to ``limit``: callers pass text already redacted."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _clip(text: str, limit: int = DETAIL_LIMIT) -> str:
    """Head and tail of a long text (a traceback's end says the most), redacted before it is cut."""
    text = str(redact(text))
    if len(text) <= limit:
        return text
    head = int(limit * 0.7)
    return text[:head] + f"\n… [{len(text) - limit} characters cut] …\n" + text[-(limit - head):]


def _secs(value: float | None) -> str:
    return "an unmeasured time" if value is None else f"{value:.3f}s"


def _evidence_detail(case: JUnitCase, notes: Sequence[str]) -> str:
    parts = list(notes)
    if case.failure_text:
        parts.append(case.failure_text)
    if case.stdout:
        parts.append("--- system-out ---\n" + case.stdout)
    if case.stderr:
        parts.append("--- system-err ---\n" + case.stderr)
    if case.properties:
        parts.append("--- properties ---\n" + "\n".join(f"{k}={v}" for k, v in case.properties))
    where = " ".join(p for p in (f"{case.classname}::{case.name}", f"({case.source})" if case.source else "",
                                 f"in {Path(case.file).name}") if p)
    parts.append(f"testcase {where}")
    return _clip("\n\n".join(parts))


def related_evidence(cases: Sequence[JUnitCase]) -> list[str]:
    """Lines of every testcase's output that may be shown as *context* next to another testcase's
    diagnosis, never used for its category: HTTP GETs answered 200 (a suite often probes the
    WebSocket path with a GET in one test and upgrades in another). Redacted, then cut to 300."""
    return [f"{c.name}: {clip(line.strip(), 300)}" for c in cases
            for line in _matching_lines(_GET_200, c.output_text)]


def _context_note(category: str, own: str, related: Sequence[str]) -> str | None:
    """For a 403 on the upgrade that the testcase's own evidence cannot place: what other testcases saw,
    labelled as context (it does not change the category)."""
    if category != "ws_upgrade_auth_rejected" or not related:
        return None
    urls = "\n".join(m.group(0) for m in _URL_PATH.finditer(own))
    gets = [line for line in _same_path_gets(f"{urls}\n" + "\n".join(related)) if line not in urls]
    if not gets:
        return None
    return ("triage, context only (other testcases' evidence, not used for this category): "
            + "; ".join(gets[:3]) + ". If that GET was on this testcase's WebSocket path, no WebSocket route serves it "
            "(ws_route_missing); this testcase's own evidence cannot tell a missing route from refused credentials")


def _honesty(case: JUnitCase, output: str, mocked: re.Match[str] | None) -> tuple[list[str], list[str]]:
    """(findings, notes) for a pass: a mock in its output, or a time too short for the network work
    that its own name or output claims (not its module's or class's: a module named
    ``test_real_agent_execution_staging`` says nothing about each test in it)."""
    findings, notes = [], []
    if mocked:
        findings.append("mock_fallback")
        notes.append(f"triage: the output shows a mock stood in for the platform ({mocked.group(0)!r}): "
                     "the pass proves nothing about the platform")
    claims = sorted(_tokens(case.name) & _NETWORK_WORDS)
    if _tokens(case.classname, case.source) & _LOCAL_WORDS:
        claims = []  # a unit test may name the network without using it; only its output counts
    claims_output = _NETWORK_OUTPUT.search(output)
    if case.time_s is not None and case.time_s < FAST_S and (claims or claims_output):
        findings.append("fake_fast")
        said = ", ".join(claims) if claims else f"output {claims_output.group(0)!r}"
        notes.append(f"triage: {_secs(case.time_s)} is too fast for the network work its name or output claims "
                     f"({said}): no round trip to a platform takes under 10 ms")
    return findings, notes


def _admitted_note(admitted: Admission, passed: bool) -> str:
    said = "; ".join(line[:300] for line in admitted.lines[:5])
    more = f" (and {len(admitted.lines) - 5} more lines)" if len(admitted.lines) > 5 else ""
    named = (f"{admitted.category} by rule {admitted.rule!r} on those lines" if admitted.rule
             else "no rule names the failure; read the lines")
    if passed:
        return f"triage: the test passed, but its own output shows a failure ({named}): {said}{more}"
    return f"triage: the failure text names no platform failure; its own output does ({named}): {said}{more}"


def diagnose(case: JUnitCase, related: Sequence[str] = ()) -> Diagnosis:
    """Status, category and evidence for one testcase (pure; never raises).

    The category comes only from this testcase's own failure and output. ``related`` (other
    testcases' evidence, see :func:`related_evidence`) is shown as context where it bears on an
    ambiguity, labelled as such, and never changes the category.
    """
    primary, output = str(redact(case.failure_text)), str(redact(case.output_text))
    mocked = _MOCK.search("\n".join((primary, output)))
    took = _secs(case.time_s)
    admitted = admissions(output, primary) if case.outcome != "skipped" else None
    # What the record's evidence fields show: the failure first, then what the output admitted.
    shown = [primary, "\n".join(admitted.lines) if admitted else "", output]
    common = dict(http_status=_http_status(*shown), target=_target(*shown))
    common["ws_close_code"], common["ws_close_reason"], common["ws_closed_by"] = _close(*shown)

    if case.outcome == "passed":
        return _diagnose_pass(case, output, took, admitted, mocked, related, common)

    if case.outcome == "skipped":
        hint = match_rule(primary)
        note = f" (the reason points at {hint[1]})" if hint else ""
        reason = _first_line(str(redact(case.message or case.text))).rstrip(".") or "no reason given"
        return Diagnosis("skip", "ok", f"skipped: {reason}{note}", _evidence_detail(case, []), **common)

    found = match_rule(primary, output)
    notes = []
    if found and found[1] == "ws_internal_error" and admitted and _RULE["error_frame"].pattern.search(
            "\n".join(admitted.lines)):
        # The same precedence as on a single text: an error frame before the 1011 says what failed.
        rule, category = _RULE["error_frame"], "ws_error_frame"
        frame = next(line for line in admitted.lines if rule.pattern.search(line))
        notes.append(f"triage: ws_error_frame: the failure is the server's 1011, and its own output shows the error "
                     f"frame the server sent with it ({frame[:300]})")
    elif found and found[1] not in _KIT_CATEGORIES:
        rule, category = found
        notes.append(f"triage: {category} by rule {rule.name!r} on the failure")
    elif admitted and admitted.category not in _KIT_CATEGORIES:
        rule, category = _RULE[admitted.rule], admitted.category
        notes.append(_admitted_note(admitted, passed=False))
        if found:
            notes.append(f"triage: the failure itself is the test code's ({found[1]} by rule {found[0].name!r})")
    elif found:
        rule, category = found
        notes.append(f"triage: {category} by rule {rule.name!r} on the failure: the test code failed, "
                     "not (by its evidence) the platform")
    else:
        rule, category = None, "unknown"
        notes.append("triage: no rule matched; read the raw evidence below")
    if category == "ws_route_missing" and rule is not None and rule.name == "upgrade_401_403":
        notes.append("triage: the upgrade was refused with 403 while an HTTP GET on the same path answered 200 ("
                     + "; ".join(_same_path_gets(f"{primary}\n{output}")[:3]) + "): no WebSocket route serves that path")
    notes.extend(_category_notes(category, f"{primary}\n{output}", related))
    findings = ["mock_fallback"] if mocked else []
    if mocked:
        notes.append(f"triage: the output also shows a mock stood in for the platform ({mocked.group(0)!r})")
    # A setup/teardown error, or a failure of the test code itself, that nothing ties to the platform:
    # the suite could not judge.
    status = "error" if category in ("client_error", "config_error") or (
        case.outcome == "error" and category in _KIT_CATEGORIES) else "fail"
    verb = "failed" if case.outcome == "failure" else "errored"
    summary = _first_line(str(redact(case.message or case.text or case.type))) or "no message"
    return Diagnosis(status, category, f"{verb} in {took}: {summary}", _evidence_detail(case, notes),
                     findings=tuple(findings), rule=rule.name if rule else None, **common)


# websockets' debug log of a refused upgrade: "< HTTP/1.1 403 Forbidden" then "< Content-Length: 0".
_BARE_403 = re.compile(r"(?is)< HTTP/1\.1 40[13] [^\n]*\n(?:[^\n]*< [^\n]*\n){0,12}?[^\n]*< content-length: 0\b")
_AUTH_REFUSED = re.compile(r"(?i)[^\n]*/auth/[^\n]*\b(?:401|403|503)\b[^\n]*")
_AUTH_BODY = re.compile(r"(?i)websocket authentication failed|invalid token|token (?:expired|invalid)|not authenticated")


def _category_notes(category: str, own: str, related: Sequence[str]) -> list[str]:
    notes = []
    if category == "ws_upgrade_auth_rejected":
        if _AUTH_BODY.search(own):
            notes.append("triage: the refusal names authentication: a WebSocket route read the token and refused it")
        elif _BARE_403.search(own):
            notes.append("triage: the refusal came with an empty body: nothing in it names authentication. A close "
                         "before accept and a path with no WebSocket route (the framework's bare 403) answer the same "
                         "way; without a GET on the path or a second token, the JUnit cannot tell them apart")
        else:
            notes.append("triage: nothing in this testcase's evidence tells refused credentials from a missing "
                         "WebSocket route (a GET on the same path answering 200 would)")
        refused = _AUTH_REFUSED.search(own)
        if refused:
            notes.append(f"triage: its output also shows the auth service failing a token request "
                         f"({refused.group(0).strip()[:200]}): the token the upgrade carried may be a fallback")
    if category == "auth_unavailable" and not _RULE["e2e_not_configured"].pattern.search(own):
        notes.append("triage: the E2E token endpoint answered 503 while the same host answered another path: the "
                     "service is up. The contract's E2E endpoint answers 503 when it is not configured; the body "
                     "that would say so is not in this testcase's evidence")
    if category == "ws_auth_ignored":
        notes.append("triage: demo-user-001 (DEMO_MODE) and relaxed_<hex> (a session whose token was not read) are the "
                     "platform's stand-ins for a user it did not authenticate; the lines above show whom the test's "
                     "credentials were made for")
    if category == "ws_internal_error":
        notes.append("triage: whether the server closed before or after the first client message is unknown — a JUnit "
                     "file does not record the frames")
    if category == "connection_refused" and re.search(r"(?i)all connection attempts failed", own):
        notes.append("triage: every address of the host refused or failed; the error does not say why each one did")
    context = _context_note(category, own, related)
    if context:
        notes.append(context)
    return notes


def _diagnose_pass(case: JUnitCase, output: str, took: str, admitted: Admission | None,
                   mocked: re.Match[str] | None, related: Sequence[str], common: dict[str, Any]) -> Diagnosis:
    """A pass stays a pass unless its own output shows a mock, admits a platform failure, or its time is
    too short for what it claims. The category is the mock first (failure-examples.md E6: the pass
    is a mock's), then the failure the pass hides, then the time; every one is in the detail."""
    findings, notes = _honesty(case, output, mocked)
    hidden = admitted if admitted and admitted.category not in ("client_error", "config_error") else None
    if hidden:
        notes.insert(0, _admitted_note(hidden, passed=True))
        notes.extend(_category_notes(hidden.category, output, related))
    if mocked:
        also = f" (its output also shows {hidden.category}: {_first_line(hidden.quote, 160)})" if hidden else ""
        return Diagnosis("fail", "mock_fallback", f"passed in {took}, but a mock replaced the platform: not evidence "
                         f"of a working platform{also}", _evidence_detail(case, notes), findings=tuple(findings),
                         **common)
    if hidden:
        return Diagnosis("fail", hidden.category, f"passed in {took}, but its own output shows the failure "
                         f"({hidden.category}): {_first_line(hidden.quote)}", _evidence_detail(case, notes),
                         findings=tuple(findings), rule=hidden.rule, **common)
    if findings:
        return Diagnosis("fail", "fake_fast", f"passed in {took}, but too fast for network work: not evidence of a "
                         "working platform", _evidence_detail(case, notes), findings=tuple(findings), **common)
    note = ("triage: no wire evidence — JUnit records only that the test's assertions held; netra-nb did not "
            "see its traffic")
    return Diagnosis("pass", "ok", f"passed in {took} (JUnit only: no wire evidence)",
                     _evidence_detail(case, [note]), **common)


# -- testcases → records ----------------------------------------------------------------------------------

def _started_at(case: JUnitCase, fallback: str) -> str:
    try:
        start = datetime.fromisoformat(case.suite_timestamp.strip().replace("Z", "+00:00"))
    except ValueError:
        return fallback
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)  # pytest writes local time without a zone; assume UTC
    try:
        start += timedelta(seconds=case.offset_s)
    except OverflowError:
        return fallback
    return start.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_names(cases: Sequence[JUnitCase]) -> list[str]:
    """The testcase name; prefixed with its classname where names collide, numbered if that collides too."""
    by_name: dict[str, set[str]] = {}
    for c in cases:
        by_name.setdefault(c.name, set()).add(c.classname)
    names, seen = [], {}
    for c in cases:
        name = f"{c.classname}::{c.name}" if len(by_name[c.name]) > 1 and c.classname else c.name
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} [{seen[name]}]")
    return names


def triage_records(cases: Sequence[JUnitCase], run_id: str) -> list[Record]:
    """One record per testcase (phase and env ``triage``), diagnosed."""
    now = utc_now()
    related = ["\n".join(related_evidence(cases))]  # joined once, not once per testcase
    records = []
    for case, check in zip(cases, _check_names(cases)):
        d = diagnose(case, related)
        records.append(Record(
            run_id=run_id, env=ENV, phase=PHASE, check=check, status=d.status, category=d.category,
            started_at=_started_at(case, now), duration_s=case.time_s or 0.0, message=d.message, detail=d.detail,
            http_status=d.http_status, ws_close_code=d.ws_close_code,
            ws_close_reason=redact(d.ws_close_reason) if d.ws_close_reason else None, ws_closed_by=d.ws_closed_by,
            bytes_sent=0, bytes_received=0, target=d.target, findings=list(d.findings)))
    return records


def triage_files(files: Iterable[str | Path], run_id: str = "triage") -> list[Record]:
    """Parse every file (all of them first: one bad file stops everything) and diagnose its testcases."""
    cases = [c for f in files for c in parse_junit(f)]
    return triage_records(cases, run_id)


# -- what notebook 92 calls ------------------------------------------------------------------------------------

def load_triage(junit_files: Sequence[str | Path] = (), run_dir: str | Path | None = None):
    """The triage as a :class:`netra_nb.report.Run`: the run folder's records when ``run_dir`` has them,
    else the given JUnit files triaged in memory (nothing written)."""
    from .runfolder import Run, load_run
    if run_dir and (Path(run_dir) / "results.jsonl").is_file():
        return load_run(run_dir)
    records = triage_files(junit_files, run_id="adhoc")
    return Run(Path.cwd(), {"env": ENV, "run_id": "adhoc", "phases": [PHASE]}, records, [])


def rules_table():
    """:data:`RULES` as a table, in order: name, category, pattern, whether a refinement applies, and what
    the rule reads (a text, or a sequence of websockets' debug log)."""
    import pandas as pd
    return pd.DataFrame([{"rule": r.name, "category": r.category, "pattern": r.pattern.pattern,
                          "refined by": r.refine.__name__.lstrip("_") if r.refine else "",
                          "reads": "websockets' debug log, in order" if r.sequence else "the text"} for r in RULES])


def status_counts(records: Sequence[Record]):
    """Testcases by status and category (a small table for the notebook)."""
    import pandas as pd
    df = pd.DataFrame([{"status": r.status, "category": r.category} for r in records], columns=["status", "category"])
    if df.empty:
        return df.assign(testcases=[])
    return df.value_counts().rename("testcases").reset_index().sort_values(["status", "testcases"], ascending=[True, False],
                                                                            ignore_index=True)


# -- the CLI -----------------------------------------------------------------------------------------------

TRIAGE_NOTEBOOK = NOTEBOOKS["triage"]
NOTEBOOK_TIMEOUT_S = 300


def triage_main(files: list[Path], out: Path) -> int:
    """``netra-nb triage JUNIT.xml ... [--out DIR]``.

    Reads every file first (a malformed one: exit 2, nothing written), then writes
    ``out/triage/<UTC time>-<short id>/`` with ``run.json`` and ``results.jsonl``, executes notebook
    92 into it and calls :func:`netra_nb.runner.finalize_run` (parquet, summary, junit, report,
    history). Prints the folder as its last line. Returns 1 if any testcase is diagnosed failing,
    else 0 — or 3 when the notebook or finalize_run failed (the records are written all the same).
    """
    import time
    from .runner import run_notebook, finalize_run, new_run_dir, notebooks_dir, write_run_json
    started = utc_now()
    files = [Path(f) for f in files]
    try:
        if not files:
            raise TriageInputError("no JUnit XML file given")
        cases = [c for f in files for c in parse_junit(f)]
    except TriageInputError as exc:
        print(f"netra-nb triage: {exc}", file=sys.stderr)
        return 2
    if not cases:
        print(f"netra-nb triage: no testcase in {', '.join(str(f) for f in files)}", file=sys.stderr)
        return 2
    run_dir, run_id = new_run_dir(Path(out), ENV)
    info: dict[str, Any] = {"run_id": run_id, "env": ENV, "started_at": started, "phases": [PHASE], "notebooks": {},
                            "outputs_root": str(Path(out).resolve()),
                            "junit_files": [str(f.resolve()) for f in files]}
    write_run_json(run_dir, info)
    records = triage_records(cases, run_id)
    append_jsonl(run_dir / "results.jsonl", [r.to_dict() for r in records])

    info["notebooks"] = {PHASE: run_notebook(
        notebooks_dir() / TRIAGE_NOTEBOOK, run_dir / TRIAGE_NOTEBOOK,
        {"junit_files": [str(f.resolve()) for f in files], "run_dir": str(run_dir)},
        time.monotonic() + NOTEBOOK_TIMEOUT_S, run_dir / "papermill.log")}
    info["finished_at"] = utc_now()
    write_run_json(run_dir, info)
    kit_failed = info["notebooks"][PHASE]["status"] != "ok"
    if kit_failed:
        error = info["notebooks"][PHASE].get("error") or {}
        print(f"netra-nb triage: notebook {TRIAGE_NOTEBOOK} failed: {error.get('ename')}: {error.get('evalue')}",
              file=sys.stderr)
    try:
        finalize_run(run_dir)
    except Exception as exc:  # noqa: BLE001 - the records are written; say what is missing
        kit_failed = True
        print(f"netra-nb triage: finishing the run folder failed: {type(exc).__name__}: {redact(str(exc))}",
              file=sys.stderr)
    failing = [r for r in records if r.status in ("fail", "error")]
    report = run_dir / "report.html"
    print(f"{len(records)} testcases: {len(failing)} diagnosed failing; report: "
          + (str(report) if report.exists() else "not written (see kit-errors.log)"))
    print(run_dir)
    if failing:
        return 1
    return 3 if kit_failed else 0
