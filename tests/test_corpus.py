"""The corpus of recorded runs (tests/corpus/NAME, made by `netra-nb corpus add`): each replays to its verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kit_helpers import ROOT, params_for
from netra_nb import cli
from replay_helpers import recorded_verdicts, replay_and_compare, run_checks

CORPUS = ROOT / "tests" / "corpus"
ENTRIES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith(".")) if CORPUS.is_dir() else []


def test_the_corpus_holds_the_incidents_it_promises():
    runs = {name: json.loads((CORPUS / name / "run.json").read_text()) for name in ENTRIES}
    faults = {r.get("fault") for r in runs.values()}
    assert {"ws_1011_after_welcome", "agent_error", "ws_403_no_route", None} <= faults
    # and runs recorded against the real backend (realrun.sh: params named "real", no fault profile)
    assert any(r.get("env") == "real" and r.get("fault") is None for r in runs.values())


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_corpus_entry_replays_to_its_recorded_verdicts(entry, tmp_path, test_secrets):
    assert recorded_verdicts(CORPUS / entry), "the entry has its expected verdicts"
    assert replay_and_compare(CORPUS / entry, tmp_path / "replayed", sla_tolerant=True) == []


def test_corpus_add_makes_an_entry_that_replays(platform, tmp_path, capsys):
    srv = platform(faults=("agent_no_result",))
    run_dir = tmp_path / "run"
    run_checks(params_for(srv, timeouts={"http": 10, "ws_open": 10, "agent_run": 10}, sla={"http": 30, "agent_run": 30}),
               run_dir,
               ("connectivity", "agent_pipeline"))
    root = tmp_path / "corpus"
    assert cli.main(["corpus", "add", str(run_dir), "empty-result", "--root", str(root),
                     "--note", "reference platform, agent_no_result"]) == 0
    entry = root / "empty-result"
    assert json.loads((entry / "run.json").read_text())["note"] == "reference platform, agent_no_result"
    assert capsys.readouterr().out.strip().endswith(str(entry))
    assert sorted(p.name for p in entry.iterdir()) == ["results.jsonl", "run.json", "wire.jsonl"]
    rows = [json.loads(line) for line in (entry / "results.jsonl").read_text().splitlines()]
    assert set(rows[0]) == {"phase", "check", "status", "category", "message"}
    assert recorded_verdicts(entry)[("agent_pipeline", "agent_run")] == ("fail", "agent_empty_result")
    assert replay_and_compare(entry, tmp_path / "replayed") == []
    # the same name twice, a folder that is not a recorded run, a bad name: exit 2 naming the path
    assert cli.main(["corpus", "add", str(run_dir), "empty-result", "--root", str(root)]) == 2
    assert str(entry) in capsys.readouterr().err
    assert cli.main(["corpus", "add", str(tmp_path / "missing"), "x", "--root", str(root)]) == 2
    assert str(tmp_path / "missing") in capsys.readouterr().err
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "wire.jsonl").write_text((run_dir / "wire.jsonl").read_text())
    assert cli.main(["corpus", "add", str(tmp_path / "bare"), "x", "--root", str(root)]) == 2
    assert str(tmp_path / "bare" / "results.jsonl") in capsys.readouterr().err
    assert cli.main(["corpus", "add", str(run_dir), "../escape", "--root", str(root)]) == 2
    assert not (tmp_path / "escape").exists()
