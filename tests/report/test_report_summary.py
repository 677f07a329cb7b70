"""summary.md: the report's first screen, its root causes, the results and the evidence, each told once."""

from __future__ import annotations

from report_runs import SECRET_JWT

from netra_nb.records import read_records
from netra_nb.report import write_summary_md

SECTIONS = ["**In short**", "## Root causes", "## Results", "## Evidence of real execution"]


def _summary(run_dir, **extra):
    data = {"run_id": "x", "env": "staging", "started_at": "2025-09-09T18:32:00.000Z", "duration_s": 12.2,
            "counts": {}, "categories": {}, "golden_path": {}}
    data.update(extra)
    return data


def _sections_in_order(text: str, sections=SECTIONS) -> None:
    positions = [text.index(s) for s in sections]
    assert positions == sorted(positions), positions


def test_e1_summary_tells_the_root_cause_once(fresh_runs):
    run_dir = fresh_runs["e1"]
    path = write_summary_md(run_dir, read_records(run_dir), _summary(run_dir, run_id="bbbb2222"))
    assert path == run_dir / "summary.md"
    text = path.read_text()
    _sections_in_order(text)
    assert text.splitlines()[0] == "# ✘ The golden path is NOT working: the server closed the WebSocket with 1011 (internal error)"
    # What a good report says for E1 (failure-examples.md): auth and HTTP work, the WebSocket opens and the
    # server closes it with 1011 before any client message, where to look — each once.
    assert "✔ **Authentication**" in text and "✔ **HTTP API**: 5 of 5 checks pass." in text
    assert text.count("before any client message") == 2  # In short, and the root cause's line for those checks
    assert text.count("before reading anything from the client") == 1
    assert text.count("Find the exception in the server's logs") == 1
    assert "### ✘ Root cause 1: The server closed the WebSocket with 1011 (internal error) — blocks the golden path" in text
    results = text[text.index("## Results"):text.index("## Evidence of real execution")]
    assert "- ✘ 5 checks (`ws_internal_error`): root cause 1" in results
    assert "- ⊘ 1 skipped: `ws_empty_request`" in results
    assert len(text.split()) < 700
    assert SECRET_JWT not in text


def test_healthy_summary_says_the_golden_path_works(fresh_runs):
    run_dir = fresh_runs["healthy"]
    text = write_summary_md(run_dir, read_records(run_dir), _summary(run_dir)).read_text()
    _sections_in_order(text, ["**In short**", "## Results", "## Evidence of real execution"])
    assert text.splitlines()[0] == "# ✔ The golden path works: a real agent run started and returned a result"
    assert "## Root causes" not in text
    assert "✔ **Agent run**: `agent_run` received `agent_started`, `agent_thinking`, `tool_executing`, `tool_completed`, " \
           "`agent_completed` and a result in 3.410 s; the result: {\"summary\": \"ok\"}." in text
    assert "Every passing check received bytes from the platform" in text


def test_partial_summary_says_which_phases_did_not_finish(fresh_runs):
    run_dir = fresh_runs["partial"]
    # The runner passes the records it could read; a torn last line is not among them.
    text = write_summary_md(run_dir, read_records(run_dir), _summary(run_dir, env="local")).read_text()
    _sections_in_order(text)
    assert "`01_agent_pipeline.ipynb` failed at cell 7: KeyError: 'agent'" in text
    assert "Phase `orchestration` was not run" in text
    assert "has no `finished_at`" in text
    assert "1 unreadable line(s)" in text
    assert text.splitlines()[0] == "# ✘ The golden path was not exercised"
    assert "`mock_fallback`" in text and "‼ Root cause 1: A mock or canned stand-in replaced the platform" in text


def test_summary_md_from_the_folder_alone(fresh_runs):
    """Called with no records and no summary (e.g. by hand), it reads the folder itself."""
    run_dir = fresh_runs["e1"]
    (run_dir / "run.json").write_text("{not json")
    text = write_summary_md(run_dir).read_text()
    _sections_in_order(text)
    assert "run.json is unreadable" in text
    assert not any(ord(ch) < 32 and ch not in "\n\t" for ch in text)  # plain text: no control characters
