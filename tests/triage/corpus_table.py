"""The triage corpus's expectations (corpus/expected.csv, corpus/profiles.csv) and what each testcase
must triage to. Used by test_triage_corpus.py and by corpus/score.py (which measures a kit against
the corpus); nothing here imports the kit."""

from __future__ import annotations

import csv
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
BASELINE = "platform/none.xml.gz"


def _rows(name: str) -> list[dict[str, str]]:
    """The rows of a CSV file of the corpus; a row whose first cell starts with '#' is a comment."""
    with open(CORPUS / name, newline="") as f:
        return [row for row in csv.DictReader(f) if not row[next(iter(row))].startswith("#")]


#: (file, "Class::testcase") -> (status, category)
EXPECTED = {(r["file"], r["testcase"]): (r["status"], r["category"]) for r in _rows("expected.csv")}
#: profile -> its rows {"profile", "category", "tests" (space-separated testcase names), "why"}: one row
#: per profile, or one per category where a profile fails different tests differently. Category "ok":
#: the suite's tests ran over the faulty part and never looked (the JUnit cannot show the fault);
#: "skip": the suite skipped them (its own health gate).
PROFILES: dict[str, list[dict[str, str]]] = {}
for _row in _rows("profiles.csv"):
    PROFILES.setdefault(_row["profile"], []).append(_row)
FILES = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.xml.gz"))


def key(classname: str, name: str) -> str:
    """A testcase's key in the tables: its class (the last part of the classname) and its name."""
    return f"{classname.rsplit('.', 1)[-1]}::{name}"


FAST_S = 0.010


def row_expectation(category: str) -> tuple[str, str]:
    """(status, category) for the tests of a profiles.csv row: ``ok`` passed (the suite never looks),
    ``skip`` skipped (the suite's own health gate skipped them), anything else failed with it."""
    return {"ok": ("pass", "ok"), "skip": ("skip", "ok")}.get(category, ("fail", category))


def expected(file: str, testcase: str, time_s: float | None) -> tuple[str, str]:
    """What ``testcase`` (a key) of ``file``, which took ``time_s``, must triage to: its own row in
    expected.csv, else (a profile's file) the profile's category for the testcases that exercise the
    failing part, else what the healthy run's testcase of that name must triage to.

    Status ``by-time`` (the suite's tests that assert constants yet are named for network work): a
    JUnit file shows nothing of them but their time, so ``fail``/``fake_fast`` under 10 ms, else
    ``pass``/``ok`` (nothing tells them from a real test)."""
    if (file, testcase) in EXPECTED:
        status, category = EXPECTED[(file, testcase)]
    else:
        profile = file.removeprefix("platform/").removesuffix(".xml.gz")
        rows = [r for r in PROFILES.get(profile, []) if testcase.split("::", 1)[1] in r["tests"].split()]
        if rows:
            return row_expectation(rows[0]["category"])
        status, category = EXPECTED[(BASELINE, testcase)]
    if status == "by-time":
        return ("fail", category) if time_s is not None and time_s < FAST_S else ("pass", "ok")
    return status, category
