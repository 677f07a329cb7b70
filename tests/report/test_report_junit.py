"""junit.xml: parses back, one suite per phase, one case per check, and keeps to the common JUnit schema."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from report_runs import SECRET_JWT

from netra_nb.junit import write_junit
from netra_nb.records import Record, read_records

# The common JUnit schema (Jenkins' junit-10.xsd, also what GitLab reads): allowed attributes, the required
# ones, and allowed children of each element.
SCHEMA = {
    "testsuites": ({"name", "time", "tests", "failures", "errors"}, set(), {"testsuite"}),
    "testsuite": ({"name", "tests", "failures", "errors", "group", "time", "skipped", "timestamp", "hostname", "id",
                   "package", "file", "log", "url"}, {"name", "tests", "failures", "errors"},
                  {"testsuite", "properties", "testcase", "system-out", "system-err"}),
    "properties": (set(), set(), {"property"}),
    "property": ({"name", "value"}, {"name", "value"}, set()),
    "testcase": ({"name", "time", "classname", "group"}, {"name"},
                 {"skipped", "error", "failure", "system-out", "system-err"}),
    "failure": ({"type", "message"}, set(), set()),
    "error": ({"type", "message"}, set(), set()),
    "skipped": ({"type", "message"}, set(), set()),
    "system-out": (set(), set(), set()),
    "system-err": (set(), set(), set()),
}
SUREFIRE_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")


def validate(el: ET.Element) -> None:
    allowed, required, children = SCHEMA[el.tag]
    assert set(el.attrib) <= allowed, (el.tag, set(el.attrib) - allowed)
    assert required <= set(el.attrib), (el.tag, required - set(el.attrib))
    if el.tag in ("testsuites", "testsuite") and "time" in el.attrib:
        assert SUREFIRE_TIME.fullmatch(el.attrib["time"]), el.attrib["time"]
    for key in ("tests", "failures", "errors", "skipped"):
        if key in el.attrib:
            assert el.attrib[key].isdigit()
    for child in el:
        assert child.tag in children, (el.tag, child.tag)
        validate(child)


def _parse(run_dir: Path) -> ET.Element:
    path = write_junit(run_dir, read_records(run_dir))
    assert path == run_dir / "junit.xml"
    return ET.parse(path).getroot()


def test_e1_junit_has_a_suite_per_phase_and_the_failures(fresh_runs):
    root = _parse(fresh_runs["e1"])
    validate(root)
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["connectivity", "agent_pipeline", "orchestration"]
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert len(cases) == 13
    run = cases["agent_run"]
    assert run.get("classname") == "netra_nb.agent_pipeline"
    assert run.get("time") == "9.070"
    failure = run.find("failure")
    assert failure is not None and failure.get("type") == "ws_internal_error"
    assert failure.get("message").startswith("ws_internal_error: ConnectionClosedError: received 1011")
    assert "0.021s after the first client message" in failure.text
    assert cases["health"].find("failure") is None and cases["health"].find("error") is None
    assert cases["ws_empty_request"].find("skipped") is not None
    pipeline = suites["agent_pipeline"]
    assert (pipeline.get("tests"), pipeline.get("failures"), pipeline.get("errors"), pipeline.get("skipped")) == \
        ("5", "2", "0", "1")
    assert root.get("tests") == "13" and root.get("failures") == "5"
    # The close evidence is next to the verdict for a person reading the CI page.
    assert "close code: 1011" in run.find("system-out").text


def test_error_status_becomes_an_error_element_and_secrets_and_control_chars_go(tmp_path):
    bad = Record(run_id="r1", env="staging", phase="triage", check="test_login\x07", status="error",
                 category="client_error", started_at="2025-09-09T18:32:00Z", duration_s=0.5,
                 message=f"crashed with token {SECRET_JWT}", detail=f"Authorization: Bearer {SECRET_JWT}\x00\x1b[31m")
    path = write_junit(tmp_path, [bad])
    text = path.read_text()
    assert SECRET_JWT not in text and "[REDACTED]" in text
    root = ET.parse(path).getroot()
    validate(root)
    case = root.find("testsuite/testcase")
    assert case.get("name") == "test_login"
    err = case.find("error")
    assert err is not None and err.get("type") == "client_error" and case.find("failure") is None
    assert root.find("testsuite").get("errors") == "1"


def test_partial_run_junit_still_parses(runs, tmp_path):
    records = read_records(runs["partial"])  # the torn last line is skipped by the reader
    root = ET.parse(write_junit(tmp_path, records)).getroot()
    validate(root)
    assert sorted(c.get("name") for c in root.iter("testcase")) == ["agent_discovery", "api_health", "health"]
    assert "findings: mock_fallback" in root.find(".//testcase[@name='agent_discovery']/system-out").text


def test_no_records_gives_an_empty_but_valid_document(tmp_path):
    root = ET.parse(write_junit(tmp_path, [])).getroot()
    validate(root)
    assert root.get("tests") == "0" and root.findall("testsuite") == []
