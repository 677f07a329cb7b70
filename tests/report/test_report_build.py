"""build_report: papermill executes notebooks/90_run_report.ipynb, nbconvert exports report.html."""

from __future__ import annotations

import base64
import html
import json
import re
from datetime import timedelta

import nbformat
import pytest
from report_runs import SECRET_JWT, T0, build_e1, build_partial

from netra_nb.report import build_report, notebook_path

pytestmark = pytest.mark.notebook


def _text(page: str) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded."""
    page = re.sub(r"<style.*?</style>|<script.*?</script>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_the_stored_notebook_has_no_outputs_and_a_parameters_cell():
    nb = nbformat.read(notebook_path(), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0].source.startswith('run_dir = ""')
    assert all(len(c.source.splitlines()) <= 6 for c in code)  # logic lives in netra_nb.report


def test_report_html_of_e1(built_e1):
    run_dir, html_path = built_e1["dir"], built_e1["html"]
    assert html_path == run_dir / "report.html"
    assert (run_dir / "report.ipynb").exists()
    page = html_path.read_text()
    text = _text(page)
    # The verdict comes first, as the page's first heading.
    h1 = re.search(r"<h1[^>]*>(.*?)</h1>", page, re.S)
    assert h1 and "The golden path is NOT working: the server closed the WebSocket with 1011" in _text(h1.group(1))
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert html.unescape(title) == ("✘ The golden path is NOT working: the server closed the WebSocket with 1011 "
                                    "(internal error) — Netra staging run bbbb2222")
    order = [text.index(h) for h in ("In short", "Root cause 1", "Appendix: every check", "Appendix: charts",
                                     "Appendix: evidence of real execution", "Appendix: against the last run")]
    assert order == sorted(order)
    # Told once: the close stage in "In short" and on the root cause's line; the identical checks folded.
    assert text.count("before any client message") == 2
    assert "<details><summary>Which 2 checks</summary>" in page
    # No code: code cells have no input area, and no cell source is on the page.
    for cell in re.findall(r'<div class="jp-Cell jp-CodeCell([^"]*)"', page):
        assert "jp-mod-noInput" in cell
    assert "report.headline_markdown" not in page and "import report" not in page
    assert not re.search(r"\b(In|Out)\s*\[\d*\]", text)  # no prompts
    assert 'class="jp-InputPrompt' not in page and 'class="jp-OutputPrompt' not in page
    # Every chart is embedded, byte for byte.
    pngs = sorted((run_dir / "charts").glob("*.png"))
    names = {p.stem for p in pngs}
    # One session chart per distinct pattern with frames (connect/ping; the agent run and the fleet), no more,
    # under the session's own name: the file a phase notebook draws is the one the report shows.
    assert names == {"durations", "timeline", "session_connectivity_websocket_connect_0",
                     "session_agent_pipeline_agent_run_0"}
    for p in pngs:
        assert base64.b64encode(p.read_bytes()).decode() in page, p.name
    imgs = re.findall(r"<img\b[^>]*>", page)
    assert len(imgs) == len(pngs) and all('src="data:image/png;base64,' in i for i in imgs)
    assert 'alt="Timeline of the run' in page and "No description has been provided" not in page
    # Opens offline: nothing fetched from the network.
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*[\"']?(https?:)?//", page, re.I)
    assert "import(\"http" not in page
    # Content a reader needs, and no secret.
    assert "ws_internal_error" in text and "Find the exception in the server's logs between" in text
    assert "Compared with the previous staging run 20250908T183200Z-aaaa1111" in text
    assert "Newly failing (5)" in text
    assert SECRET_JWT not in page


def test_report_of_a_partial_run(tmp_path):
    run_dir = build_partial(tmp_path / "outputs", T0)
    html_path = build_report(run_dir, timeout=120)
    assert html_path is not None
    text = _text(html_path.read_text())
    assert "The golden path was not exercised" in text
    assert "01_agent_pipeline.ipynb failed at cell 7: KeyError: 'agent'" in text
    assert "Root cause 1: A mock or canned stand-in replaced the platform" in text
    assert "WebSocket sessions that worked" not in text  # no frames: no empty section
    assert "There is no earlier run of local" in text
    assert not (run_dir / "results.parquet").exists()


def test_a_raising_report_notebook_returns_none_and_keeps_report_ipynb(tmp_path):
    run_dir = build_e1(tmp_path / "outputs", T0 + timedelta(days=3))
    # A damaged folder the notebook cannot read: results.jsonl is a directory.
    (run_dir / "results.jsonl").unlink()
    (run_dir / "results.jsonl").mkdir()
    assert build_report(run_dir, timeout=120) is None
    nb = json.loads((run_dir / "report.ipynb").read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "IsADirectoryError"
    assert not (run_dir / "report.html").exists()
