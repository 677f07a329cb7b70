"""Triage of an existing pytest run: its JUnit XML read into records, each testcase diagnosed.

A JUnit file says what a test *claimed*; it carries no wire evidence. So triage reads every
testcase (``<testsuites>`` or a bare ``<testsuite>``, pytest's attributes, ``failure``, ``error``,
``skipped``, ``system-out``/``system-err``, ``properties``) and diagnoses it from what the client
saw, by an ordered table of rules (:data:`RULES`, first match wins), over the failure first and
the captured output second. Passes are checked for the two ways past runs lied:

* ``mock_fallback`` — the output shows a mock WebSocket replaced the platform;
* ``fake_fast`` — under 10 ms while the name or output claims network work.

Either turns a pass into ``fail`` with the finding added. Any other pass stays ``pass``/``ok``, with
"triage: no wire evidence" in its detail. Everything here but :func:`triage_main` is pure or reads
only the given files; nothing raises on odd input except :class:`TriageInputError` for a file that
is not JUnit XML.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .records import Record, append_jsonl, utc_now
from .redact import clip, redact

__all__ = [
    "Rule",
    "RULES",
    "JUnitCase",
    "Diagnosis",
    "TriageInputError",
    "FAST_S",
    "parse_junit",
    "match_rule",
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
    """``pattern`` found in the evidence ⇒ ``category``; ``refine`` may name a more precise one."""

    name: str
    category: str
    pattern: re.Pattern[str]
    refine: Callable[[str], str | None] | None = None


# Words before a status code that make it an HTTP status ("Unexpected status: 500", "HTTP 503",
# "status_code == 404", "Server error '503 Service Unavailable'", "assert 401 == 200").
_STATUS = (r"(?:unexpected status(?: code)?|status(?:[ _]?code)?|http(?:/\d(?:\.\d)?)?|returned|responded(?: with)?"
           r"|answered|got|error '|assert|->)\W{0,4}")
# The WebSocket upgrade being refused (websockets' InvalidStatus/InvalidStatusCode, websocket-client's
# "Handshake status", or words to that effect).
_UPGRADE = (r"(?:rejected websocket connection|invalidstatus(?:code)?|handshake status"
            r"|websocket (?:upgrade|handshake|connection)[^\n]{0,40}?(?:failed|rejected|refused|error))[^\n]{0,40}?")

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


def _r(name: str, category: str, pattern: str, refine: Callable[[str], str | None] | None = None) -> Rule:
    return Rule(name, category, re.compile(pattern, re.IGNORECASE), refine)


#: The diagnosis table, first match wins. Order matters where texts overlap: WebSocket evidence
#: first (its upgrade refusals say "HTTP 403" too), the client's keepalive close before the
#: server's 1011, a health body's ``"status":"degraded"`` before anything its checks mention, agent
#: evidence before HTTP statuses, statuses before network words (a 500 whose body says "connection
#: refused" is a 500), and the test code's own errors last.
RULES: tuple[Rule, ...] = (
    _r("subprotocol", "ws_subprotocol_mismatch", r"negotiationerror|no subprotocols? supported|unsupported subprotocol"
       r"|(?:invalid|unexpected|mismatched) subprotocol|subprotocol (?:mismatch|negotiation failed|not supported)"),
    _r("handshake_timeout", "ws_handshake_timeout", r"timed out during (?:the )?opening handshake"
       r"|opening handshake (?:timed out|timeout)|handshake timed out|timeout during (?:the )?(?:websocket )?handshake"),
    _r("upgrade_401_403", "ws_upgrade_auth_rejected", _UPGRADE + r"\b40[13]\b", _route_missing),
    _r("upgrade_404", "ws_route_missing", _UPGRADE + r"\b(?:404|400|405|426)\b"),
    _r("upgrade_502_503_504", "ws_upgrade_unavailable", _UPGRADE + r"\b50[234]\b"),
    _r("upgrade_5xx", "ws_upgrade_server_error", _UPGRADE + r"\b5\d\d\b"),
    _r("keepalive", "ws_keepalive_timeout", r"keepalive ping timeout|sent 1011 \(internal error\) keepalive"),
    _r("close_1011", "ws_internal_error", r"received 1011\b|1011 \(internal error\)|\bclose(?:d)?\b[^\n]{0,20}\b1011\b"
       r"|\bcode\W{0,3}1011\b"),
    _r("close_1008", "ws_policy_violation", r"received 1008\b|1008 \(policy violation\)|\bclose(?:d)?\b[^\n]{0,20}\b1008\b"
       r"|\bcode\W{0,3}1008\b|auth_failed"),
    _r("close_normal", "ws_closed_early", r"received 10(?:00|01|12) \(|\b1000 \(ok\)|\b1001 \(going away\)"
       r"|\b1012 \(service restart\)|main cleanup|\bclose(?:d)?\b[^\n]{0,20}\b10(?:00|01|12)\b"),
    _r("close_1006", "ws_abnormal_close", r"no close frame (?:received|sent)|\b1006\b|abnormal closure"),
    _r("health_body", "health_degraded", r"[\"']status[\"']\s*:\s*[\"']degraded[\"']"),
    _r("error_frame", "ws_error_frame", r"[\"']type[\"']\s*:\s*[\"']error(?:_message)?[\"']|error(?:_message)? frame"
       r"|[\"']error_code[\"']\s*:"),
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
       r"|(?s:(?:recv|receive)\(\).{0,600}?\btimeouterror\b)"),
    _r("agent_incomplete", "agent_incomplete", r"(?:missing|never (?:got|received)|did not (?:get|receive))[^\n]{0,40}"
       r"agent_completed|agent_completed[^\n]{0,30}(?:missing|never|not (?:received|arrived))"),
    _r("http_502_503_504", "http_unavailable", _STATUS + r"50[234]\b|service unavailable|bad gateway|gateway time-?out"),
    _r("http_5xx", "http_server_error", _STATUS + r"5\d\d\b|internal server error"),
    _r("http_401_403", "http_auth_rejected", _STATUS + r"40[13]\b|\bunauthorized\b|\bforbidden\b"),
    _r("http_404", "http_not_found", _STATUS + r"404\b|404 not found"),
    _r("http_4xx", "http_client_error", _STATUS + r"4\d\d\b"),
    _r("dns", "dns_failure", r"name or service not known|nodename nor servname|getaddrinfo failed"
       r"|temporary failure in name resolution|\bgaierror\b|no address associated with hostname"),
    _r("refused", "connection_refused", r"connection refused|econnrefused|errno 111\b|errno 61\b|connect call failed"),
    _r("tls", "tls_error", r"\bssl\w*error\b|certificate verify failed|certificate_verify_failed|tlsv1_alert"
       r"|wrong version number|\bssl: "),
    _r("connect_timeout", "connect_timeout", r"\bconnecttimeout\b|connect(?:ion)? timed? ?out|timed out while connecting"
       r"|timeout (?:while )?connecting"),
    _r("health_words", "health_degraded", r"\b(?:degraded|unhealthy)\b"),
    _r("read_timeout", "read_timeout", r"\breadtimeout\b|read timed? ?out|\btimeouterror\b|\btimed out\b"),
    _r("contract", "contract_mismatch", r"jsondecodeerror|expecting value: line \d|not (?:valid )?json"
       r"|missing (?:required )?(?:keys?|fields?)\b|unexpected (?:response )?(?:shape|format|schema)"),
    _r("config", "config_error", r"(?:environment variable|env var)[^\n]{0,60}(?:not set|missing|required)"
       r"|(?:not set|missing)[^\n]{0,40}(?:environment variable|env var)|invaliduri|invalid url"),
    _r("client", "client_error", r"\b(?:typeerror|attributeerror|nameerror|importerror|modulenotfounderror|syntaxerror"
       r"|unboundlocalerror|indentationerror)\b|fixture '[^']+' not found|event loop is closed"
       r"|coroutine '[^']+' was never awaited|async def functions are not natively supported"),
)

_KIT_CATEGORIES = frozenset({"client_error", "config_error", "unknown"})


def match_rule(text: str, context: str = "") -> tuple[Rule, str] | None:
    """The first rule whose pattern is in ``text``, with its category (refined with ``text`` and
    ``context``, e.g. other testcases' evidence); None when no rule matches."""
    for rule in RULES:
        if rule.pattern.search(text):
            refined = rule.refine(f"{text}\n{context}") if rule.refine else None
            return rule, refined or rule.category
    return None


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


def parse_junit(path: str | Path) -> list[JUnitCase]:
    """Every testcase of a JUnit XML file (``<testsuites>``, nested suites, or a bare ``<testsuite>``).

    Raises :class:`TriageInputError` naming the file and line when it is not well-formed XML or not
    JUnit; an empty suite gives an empty list.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        reason = str(exc).split(":")[0]
        raise TriageInputError(f"{path}:{line}:{column}: not well-formed XML ({reason})") from None
    except OSError as exc:
        raise TriageInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
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


_MOCK = re.compile(r"(?i)mock\w*[ _-]?websocket|fall(?:ing|s)?[ _-]?back to (?:a |the )?mock|fallback to (?:a |the )?mock"
                   r"|using (?:a )?mock\w* (?:websocket|platform|backend|server)")
_NETWORK_WORDS = frozenset({"websocket", "websockets", "ws", "wss", "http", "https", "api", "staging", "agent", "agents",
                            "connection", "connections", "connect", "real", "e2e", "network", "endpoint", "endpoints",
                            "server", "auth", "token", "upgrade", "remote", "live", "integration", "health",
                            "production", "deployed", "pipeline", "orchestration", "request", "requests", "socket", "sockets"})
_NETWORK_OUTPUT = re.compile(r"(?i)\bwss?://|\bhttps?://|\bHTTP/\d|\bconnect(?:ed|ing) to\b|\bstaging\b")
_LOCAL_WORDS = frozenset({"unit", "unittest", "unittests"})
_CLOSE = re.compile(r"(?i)\b(received|sent) (\d{4}) \(([^)]*)\)\s*([^;\n]*)")
_CLOSE_CODE = re.compile(r"(?i)(?:close(?:d)?|code)\b[^\n\d]{0,20}\b(1\d{3})\b")
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
    for text in texts:
        m = _CLOSE.search(text)
        if m:
            by = "server" if m.group(1).lower() == "received" else "client"
            reason = m.group(4).strip() or m.group(3).strip() or None
            return int(m.group(2)), reason, by
        m = _CLOSE_CODE.search(text)
        if m:
            return int(m.group(1)), None, None
    return None, None, None


def _target(*texts: str) -> str | None:
    for text in texts:
        m = _URL_PATH.search(text)
        if m:
            return str(redact(m.group(0)))
    return None


def _first_line(text: str, limit: int = 240) -> str:
    line = str(redact(next((ln.strip() for ln in text.splitlines() if ln.strip()), "")))
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _clip(text: str, limit: int = DETAIL_LIMIT) -> str:
    """Head and tail of a long text: a traceback's end says the most."""
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
    """Lines of every testcase's output that other testcases' diagnosis may use: HTTP GETs answered 200
    (a suite often probes the WebSocket path with a GET in one test and upgrades in another)."""
    return [f"{c.name}: {clip(line.strip(), 300)}" for c in cases for line in c.output_text.splitlines()
            if _GET_200.search(line)]


def _honesty(case: JUnitCase, mocked: re.Match[str] | None) -> tuple[list[str], list[str]]:
    """(findings, notes) for a pass: a mock in its output, or a time too short for the network work it claims."""
    findings, notes = [], []
    if mocked:
        findings.append("mock_fallback")
        notes.append(f"triage: the output shows a mock stood in for the platform ({mocked.group(0)!r}): "
                     "the pass proves nothing about the platform")
    claims = sorted(_tokens(case.name, case.classname, Path(case.source.split(":")[0]).stem) & _NETWORK_WORDS)
    if _tokens(case.classname, case.source) & _LOCAL_WORDS:
        claims = []  # a unit test module may name the network without using it; only its output counts
    claims_output = _NETWORK_OUTPUT.search(case.output_text)
    if case.time_s is not None and case.time_s < FAST_S and (claims or claims_output):
        findings.append("fake_fast")
        said = ", ".join(claims) if claims else f"output {claims_output.group(0)!r}"
        notes.append(f"triage: {_secs(case.time_s)} is too fast for the network work its name or output claims "
                     f"({said}): no round trip to a platform takes under 10 ms")
    return findings, notes


def diagnose(case: JUnitCase, related: Sequence[str] = ()) -> Diagnosis:
    """Status, category and evidence for one testcase (pure; never raises).

    ``related`` is evidence from the same run's other testcases (see :func:`related_evidence`).
    """
    primary, output = case.failure_text, case.output_text
    everything = "\n".join((primary, output))
    http_status = _http_status(primary, output)
    close_code, close_reason, closed_by = _close(primary, output)
    target = _target(primary, output)
    mocked = _MOCK.search("\n".join((case.message, case.text, output)))
    common = dict(http_status=http_status, ws_close_code=close_code, ws_close_reason=close_reason,
                  ws_closed_by=closed_by, target=target)
    took = _secs(case.time_s)

    if case.outcome == "passed":
        findings, notes = _honesty(case, mocked)
        if findings:
            why = "a mock replaced the platform" if findings[0] == "mock_fallback" else "too fast for network work"
            return Diagnosis("fail", findings[0], f"passed in {took}, but {why}: not evidence of a working platform",
                             _evidence_detail(case, notes), findings=tuple(findings), **common)
        note = ("triage: no wire evidence — JUnit records only that the test's assertions held; netra-nb did not "
                "see its traffic")
        return Diagnosis("pass", "ok", f"passed in {took} (JUnit only: no wire evidence)",
                         _evidence_detail(case, [note]), **common)

    if case.outcome == "skipped":
        hint = match_rule(primary)
        note = f" (the reason points at {hint[1]})" if hint else ""
        reason = redact(_first_line(case.message or case.text)).rstrip(".") or "no reason given"
        return Diagnosis("skip", "ok", f"skipped: {reason}{note}", _evidence_detail(case, []), **common)

    context = "\n".join(related)
    found = match_rule(primary, "\n".join((output, context)))
    where = "failure"
    if found is None:
        found = match_rule(everything, context)
        where = "output"
    rule, category = found if found else (None, "unknown")
    if case.outcome == "error" and category in _KIT_CATEGORIES:
        status = "error"  # a setup/teardown error nothing ties to the platform: the suite could not judge
    else:
        status = "fail"
    notes = []
    if rule is not None:
        notes.append(f"triage: {category} by rule {rule.name!r} on the {where}")
        if category == "ws_route_missing" and rule.name == "upgrade_401_403":
            gets = _same_path_gets("\n".join((everything, context)))
            notes.append("triage: the upgrade was refused with 403 while an HTTP GET on the same path answered 200 ("
                         + "; ".join(gets[:3]) + "): no WebSocket route serves that path")
    else:
        notes.append("triage: no rule matched; read the raw evidence below")
    if category == "ws_internal_error":
        notes.append("triage: whether the server closed before or after the first client message is unknown — a JUnit "
                     "file does not record the frames")
    findings = ["mock_fallback"] if mocked else []
    if mocked:
        notes.append(f"triage: the output also shows a mock stood in for the platform ({mocked.group(0)!r})")
    verb = "failed" if case.outcome == "failure" else "errored"
    summary = _first_line(case.message or case.text or case.type) or "no message"
    return Diagnosis(status, category, f"{verb} in {took}: {redact(summary)}", _evidence_detail(case, notes),
                     findings=tuple(findings), rule=rule.name if rule else None, **common)


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
    from .report import Run, load_run
    if run_dir and (Path(run_dir) / "results.jsonl").is_file():
        return load_run(run_dir)
    records = triage_files(junit_files, run_id="adhoc")
    return Run(Path.cwd(), {"env": ENV, "run_id": "adhoc", "phases": [PHASE]}, records, [])


def rules_table():
    """:data:`RULES` as a table, in order: name, category, pattern, and whether a refinement applies."""
    import pandas as pd
    return pd.DataFrame([{"rule": r.name, "category": r.category, "pattern": r.pattern.pattern,
                          "refined by": r.refine.__name__.lstrip("_") if r.refine else ""} for r in RULES])


def status_counts(records: Sequence[Record]):
    """Testcases by status and category (a small table for the notebook)."""
    import pandas as pd
    df = pd.DataFrame([{"status": r.status, "category": r.category} for r in records], columns=["status", "category"])
    if df.empty:
        return df.assign(testcases=[])
    return df.value_counts().rename("testcases").reset_index().sort_values(["status", "testcases"], ascending=[True, False],
                                                                            ignore_index=True)


# -- the CLI -----------------------------------------------------------------------------------------------

TRIAGE_NOTEBOOK = "92_pytest_triage.ipynb"
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
