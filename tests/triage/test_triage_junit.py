"""Reading JUnit XML as pytest writes it, into records; malformed input; odd input never raises."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from triage_helpers import junit_case, write_xml

from netra_nb.categories import CODES
from netra_nb.records import STATUSES
from netra_nb.triage import TriageInputError, diagnose, match_rule, parse_junit, triage_files, triage_records


def test_testsuites_with_every_element_pytest_writes(tmp_path):
    path = write_xml(
        tmp_path / "r.xml",
        {"name": "test_ok", "classname": "tests.t.T", "time": "0.512", "file": "tests/t.py", "line": "10",
         "out": "hello", "props": {"ticket": "NET-1"}},
        {"name": "test_bad", "classname": "tests.t.T", "time": "2.5",
         "failure": ("AssertionError: Unexpected status: 503", "E   AssertionError: Unexpected status: 503"),
         "err": "stderr text"},
        {"name": "test_err", "classname": "tests.t.T", "time": "0.2",
         "error": ('failed on setup with "ConnectionRefusedError: [Errno 111] Connection refused"', "traceback")},
        {"name": "test_skip", "classname": "tests.t.T", "time": "0.000",
         "skipped": ("staging only", "tests/t.py:30: staging only")},
        suite_attrs={"timestamp": "2025-09-09T18:32:04.500000", "hostname": "ci"},
        suite_properties={"env": "staging"})
    cases = parse_junit(path)
    assert [(c.name, c.outcome) for c in cases] == [("test_ok", "passed"), ("test_bad", "failure"),
                                                    ("test_err", "error"), ("test_skip", "skipped")]
    ok, bad, err, skip = cases
    assert ok.time_s == 0.512 and ok.source == "tests/t.py:10" and ok.stdout == "hello"
    assert ("env", "staging") in ok.properties and ("ticket", "NET-1") in ok.properties
    assert bad.message == "AssertionError: Unexpected status: 503" and bad.stderr == "stderr text"
    assert skip.message == "staging only" and "tests/t.py:30" in skip.text
    records = triage_records(cases, "run1")
    assert [(r.status, r.category) for r in records] == [("pass", "ok"), ("fail", "http_unavailable"),
                                                         ("fail", "connection_refused"), ("skip", "ok")]
    r = records[1]
    assert (r.run_id, r.env, r.phase, r.check, r.duration_s) == ("run1", "triage", "triage", "test_bad", 2.5)
    assert (r.http_status, r.bytes_sent, r.bytes_received) == (503, 0, 0)
    assert records[0].started_at == "2025-09-09T18:32:04.500Z"
    assert records[1].started_at == "2025-09-09T18:32:05.012Z"  # the suite's start plus the tests before it
    assert "ticket=NET-1" in records[0].detail


def test_a_bare_testsuite_and_nested_suites(tmp_path):
    bare = write_xml(tmp_path / "bare.xml", {"name": "test_a", "classname": "c", "time": "1"}, bare=True)
    assert [c.name for c in parse_junit(bare)] == ["test_a"]
    nested = tmp_path / "nested.xml"
    nested.write_text('<testsuites><testsuite name="outer"><testsuite name="inner">'
                      '<testcase classname="c" name="test_inner" time="1"/></testsuite>'
                      '<testcase classname="c" name="test_outer" time="1"/></testsuite></testsuites>')
    assert sorted(c.name for c in parse_junit(nested)) == ["test_inner", "test_outer"]
    empty = tmp_path / "empty.xml"
    empty.write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="0"/></testsuites>')
    assert parse_junit(empty) == []


def test_a_failure_with_a_teardown_error_is_a_failure_with_both_texts(tmp_path):
    path = tmp_path / "r.xml"
    path.write_text('<testsuite><testcase classname="c" name="t" time="1">'
                    '<failure message="received 1011 (internal error)">first</failure>'
                    '<error message="failed on teardown">second</error></testcase></testsuite>')
    (case,) = parse_junit(path)
    assert case.outcome == "failure" and case.message == "received 1011 (internal error)"
    assert "first" in case.text and "second" in case.text


@pytest.mark.parametrize("time, expected", [("1.5", 1.5), ("0.00", 0.0), ("0", 0.0), ("1,234.5", 1234.5),
                                            ("", None), ("abc", None), ("nan", None), ("-1", None), ("inf", None)])
def test_odd_times(tmp_path, time, expected):
    path = write_xml(tmp_path / "r.xml", {"name": "t", "classname": "c", "time": time})
    assert parse_junit(path)[0].time_s == expected


def test_colliding_names_get_their_classname_and_then_a_number(tmp_path):
    a = write_xml(tmp_path / "a.xml", {"name": "test_websocket_connection", "classname": "tests.a.TestA", "time": "1"},
                  {"name": "test_unique", "classname": "tests.a.TestA", "time": "1"})
    b = write_xml(tmp_path / "b.xml", {"name": "test_websocket_connection", "classname": "tests.b.TestB", "time": "1"},
                  {"name": "test_websocket_connection", "classname": "tests.b.TestB", "time": "1"})
    checks = [r.check for r in triage_files([a, b])]
    assert checks == ["tests.a.TestA::test_websocket_connection", "test_unique",
                      "tests.b.TestB::test_websocket_connection", "tests.b.TestB::test_websocket_connection [2]"]


@pytest.mark.parametrize("content, where", [
    ("<testsuites><testsuite><testcase name='t'></testsuite>", ":1:"),
    ('<?xml version="1.0"?>\n<testsuites>\n  <testcase name="t" time="1"\n</testsuites>', ":4:"),
    ("", ":1:"),
    ("not xml at all", ":1:"),
])
def test_malformed_xml_names_the_file_and_line(tmp_path, content, where):
    path = tmp_path / "broken.xml"
    path.write_text(content)
    with pytest.raises(TriageInputError) as exc:
        parse_junit(path)
    assert f"broken.xml{where}" in str(exc.value) and "not well-formed XML" in str(exc.value)


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<testsuites><testsuite><testcase name="t" classname="c" time="1"><system-out>&lol3;</system-out></testcase></testsuite></testsuites>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE testsuites [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<testsuites><testsuite><testcase name="t" classname="c" time="1"><system-out>&secret;</system-out></testcase></testsuite>
</testsuites>
"""
EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE testsuites SYSTEM "http://127.0.0.1:9/junit.dtd">
<testsuites><testsuite><testcase name="t" classname="c" time="1"/></testsuite></testsuites>
"""


@pytest.mark.parametrize("content, line, words", [
    (BILLION_LAUGHS, 3, "declares the entity 'lol'"),
    (EXTERNAL_ENTITY, 2, "declares the entity 'secret' (file:///etc/passwd)"),
])
def test_entity_declarations_are_refused_naming_the_file_and_line(tmp_path, content, line, words):
    path = tmp_path / "hostile.xml"
    path.write_text(content)
    with pytest.raises(TriageInputError) as exc:
        parse_junit(path)
    assert str(exc.value).startswith(f"{path}:{line}: refused:") and words in str(exc.value)
    assert "root:" not in str(exc.value)  # /etc/passwd was never read


def test_an_external_dtd_is_never_fetched(tmp_path):
    path = tmp_path / "dtd.xml"
    path.write_text(EXTERNAL_DTD)
    assert [c.name for c in parse_junit(path)] == ["t"]  # expat does not load it; nothing listens on port 9 anyway


def test_other_xml_and_missing_files_are_refused_clearly(tmp_path):
    other = tmp_path / "pom.xml"
    other.write_text("<project><name>x</name></project>")
    with pytest.raises(TriageInputError, match=r"pom.xml:1: not JUnit XML: the root element is <project>"):
        parse_junit(other)
    with pytest.raises(TriageInputError, match=r"missing.xml: cannot read"):
        parse_junit(tmp_path / "missing.xml")


# -- property tests: odd input never raises ---------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(message=text, body=text, out=text, name=text, classname=text,
       time=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
       outcome=st.sampled_from(["passed", "failure", "error", "skipped", "weird"]))
@settings(max_examples=300, deadline=None)
def test_diagnose_is_total(message, body, out, name, classname, time, outcome):
    d = diagnose(junit_case(name, classname=classname, time=time, outcome=outcome, message=message, text=body,
                            stdout=out))
    assert d.status in STATUSES and d.category in CODES
    assert all(f in CODES for f in d.findings)
    assert isinstance(d.message, str) and isinstance(d.detail, str)


@given(st.text(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_match_rule_is_total(text):
    found = match_rule(text)
    assert found is None or found[1] in CODES


xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")), max_size=80)  # what XML can carry


@given(cases=st.lists(st.fixed_dictionaries({
    "name": xml_text, "classname": xml_text, "time": xml_text,
    "failure": st.one_of(st.none(), st.tuples(xml_text, xml_text)),
    "out": xml_text}), max_size=6), bare=st.booleans(), stamp=xml_text)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_well_formed_junit_is_read_and_triaged(tmp_path, cases, bare, stamp):
    path = tmp_path / "any.xml"
    write_xml(path, *[{k: v for k, v in c.items() if v is not None} for c in cases], bare=bare,
              suite_attrs={"timestamp": stamp})
    records = triage_files([path])
    assert len(records) == len(cases)
    assert len({r.check for r in records}) == len(records)  # checks stay unique
    assert all(r.category in CODES and r.status in STATUSES for r in records)


def test_xml_escapes_and_control_characters_survive(tmp_path):
    path = tmp_path / "r.xml"
    root = ET.Element("testsuite")
    case = ET.SubElement(root, "testcase", name="t<&>", classname="c", time="1")
    ET.SubElement(case, "failure", message='say "hi" & <bye>').text = "line1\nline2\ttab"
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    (r,) = triage_files([path])
    assert r.check == "t<&>" and 'say "hi" & <bye>' in r.detail
