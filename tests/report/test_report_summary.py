"""summary.md: the seed report's sections, generated from records and diagnosis."""

from __future__ import annotations


from report_runs import SECRET_JWT

from netra_nb.records import read_records
from netra_nb.report import write_summary_md

SECTIONS = ["## Summary", "### Working components", "### Failed", "## Results", "## Root cause analysis",
            "## Impact on the golden path", "## Recommendations", "## Evidence of real execution"]


def _summary(run_dir, **extra):
    data = {"run_id": "x", "env": "staging", "started_at": "2025-09-09T18:32:00.000Z", "duration_s": 12.2,
            "counts": {}, "categories": {}, "golden_path": {}}
    data.update(extra)
    return data


def _sections_in_order(text: str) -> None:
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions), positions


def test_e1_summary_names_the_blocking_category_and_what_works(fresh_runs):
    run_dir = fresh_runs["e1"]
    path = write_summary_md(run_dir, read_records(run_dir), _summary(run_dir, run_id="bbbb2222"))
    assert path == run_dir / "summary.md"
    text = path.read_text()
    _sections_in_order(text)
    assert "golden path NOT working" in text.splitlines()[0]
    assert "The golden path is NOT working" in text
    assert "blocked by `ws_internal_error`" in text
    root_cause = text[text.index("## Root cause analysis"):text.index("## Impact on the golden path")]
    assert root_cause.index("`ws_internal_error`") < 200 and "This blocks the golden path" in root_cause
    # What a good report says for E1 (failure-examples.md): auth and HTTP work, the WebSocket opens and the
    # server closes it with 1011 before any agent event, every WebSocket check fails the same way, look at logs.
    assert "Authentication works" in text
    assert "The HTTP API works: 5 of 5 HTTP checks pass" in text
    assert "closed by the server with 1011 (Internal error) before any agent event" in text
    assert "Every WebSocket check fails the same way (5 of 5" in text
    assert "Look at the server logs around the close time for the exception" in text
    working = text[text.index("### Working components"):text.index("### Failed")]
    failed = text[text.index("### Failed"):text.index("## Results")]
    assert "`health`" in working and "`agent_discovery`" in working and "`agent_run`" not in working
    assert "`agent_run` (`ws_internal_error`" in failed
    assert "P0" in text[text.index("## Recommendations"):]
    assert SECRET_JWT not in text


def test_healthy_summary_says_the_golden_path_works(fresh_runs):
    run_dir = fresh_runs["healthy"]
    text = write_summary_md(run_dir, read_records(run_dir), _summary(run_dir)).read_text()
    _sections_in_order(text)
    assert "golden path working" in text.splitlines()[0]
    assert "The golden path works" in text
    assert "- nothing failed" in text
    assert "Every passing check exchanged bytes with the platform" in text
    assert "No action needed" in text


def test_partial_summary_says_which_phases_did_not_finish(fresh_runs):
    run_dir = fresh_runs["partial"]
    # The runner passes the records it could read; a torn last line is not among them.
    text = write_summary_md(run_dir, read_records(run_dir), _summary(run_dir, env="local")).read_text()
    _sections_in_order(text)
    assert "`01_agent_pipeline.ipynb` failed at cell 7: KeyError: 'agent'" in text
    assert "Phase `orchestration` was not run" in text
    assert "has no `finished_at`" in text
    assert "1 unreadable line(s)" in text
    assert "golden path not exercised" in text.splitlines()[0]
    assert "`mock_fallback`" in text and "‼" in text


def test_summary_md_from_the_folder_alone(fresh_runs):
    """Called with no records and no summary (e.g. by hand), it reads the folder itself."""
    run_dir = fresh_runs["e1"]
    (run_dir / "run.json").write_text("{not json")
    text = write_summary_md(run_dir).read_text()
    _sections_in_order(text)
    assert "run.json is unreadable" in text
    assert not any(ord(ch) < 32 and ch not in "\n\t" for ch in text)  # plain text: no control characters
