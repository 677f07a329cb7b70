"""The triage corpus (tests/triage/corpus, README there): real JUnit XML from two sources, every testcase
with the category it must triage to.

* ``library.xml.gz``: failures raised by websockets (new and legacy API), httpx/httpcore/h11, aiohttp,
  ssl and asyncio themselves, and passes that hide them, against a misbehaving loopback server.
* ``platform/<profile>.xml.gz``: the platform's own staging suite run against the reference platform
  under each fault profile (``none``: healthy). ``profiles.csv`` names, per profile, the category and
  the testcases that exercise the failing part; every other testcase of a profile's file must triage
  as it does in the healthy run, unless ``expected.csv`` has a row for it in that file.
"""

from __future__ import annotations

import gzip
import re
from functools import lru_cache

import pytest
from corpus_table import BASELINE, CORPUS, EXPECTED, FILES, PROFILES, expected, key, row_expectation

from netra_nb.redact import JWT_PATTERN
from netra_nb.refserver.faults import FAULTS
from netra_nb.triage import parse_junit, triage_records


@lru_cache(maxsize=None)
def triaged(file: str) -> dict[str, tuple[str, str, str, float | None]]:
    """testcase key -> (status, category, message, time) for one corpus file (each file is triaged once)."""
    cases = parse_junit(CORPUS / file)
    return {key(c.classname, c.name): (r.status, r.category, r.message, c.time_s)
            for c, r in zip(cases, triage_records(cases, "corpus"))}


def test_the_corpus_holds_both_sources_and_every_fault_profile():
    assert "library.xml.gz" in FILES and BASELINE in FILES
    assert set(PROFILES) == set(FAULTS), "a fault profile without its corpus row (or a row for no profile)"
    assert {f"platform/{p}.xml.gz" for p in PROFILES} | {BASELINE, "library.xml.gz"} == set(FILES)
    assert len(triaged("library.xml.gz")) >= 80 and len(triaged(BASELINE)) == 28


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_fault_profiles_category_comes_out_of_its_junit(profile):
    names = {k.split("::", 1)[1]: v[:2] for k, v in triaged(f"platform/{profile}.xml.gz").items()}
    for row in PROFILES[profile]:
        tests = row["tests"].split()
        assert tests, f"{profile}: name the testcases that exercise the failing part"
        # the category the kit's own checks report for this profile; any other (the suite never looks: ok;
        # it swapped in its mock: mock_fallback; its evidence cannot tell: ...) says why
        assert row["category"] in set(FAULTS[profile].expected.values()) or row["why"], \
            f"{profile}: say why its JUnit shows {row['category']}, not what the kit's checks report"
        assert {t: names[t] for t in tests} == {t: row_expectation(row["category"]) for t in tests}


@pytest.mark.parametrize("file", FILES)
def test_every_testcase_of_the_corpus_triages_as_expected(file):
    wrong = {t: (got[:2], expected(file, t, got[3]), got[2][:160]) for t, got in triaged(file).items()
             if got[:2] != expected(file, t, got[3])}
    assert not wrong


def test_the_expectations_name_only_testcases_that_exist():
    for file, testcase in EXPECTED:
        assert testcase in triaged(file), (file, testcase)
    baseline_names = {k.split("::", 1)[1] for k in triaged(BASELINE)}
    for profile, rows in PROFILES.items():
        for row in rows:
            assert set(row["tests"].split()) <= baseline_names, profile


def test_no_secret_in_the_corpus():
    for file in FILES:
        with gzip.open(CORPUS / file, "rt", encoding="utf-8") as f:
            text = f.read()
        assert not JWT_PATTERN.search(text), file
        assert not re.search(r"refsrv-(?:secret|e2e)", text), file  # the reference platform's test secrets
