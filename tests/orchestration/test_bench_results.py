"""bench/RESULTS.md: the generated figures are replaced between their markers, the findings kept."""

from bench.__main__ import END, START, write_results


def test_figures_are_replaced_and_findings_kept(tmp_path):
    path = tmp_path / "RESULTS.md"
    write_results(path, "figures v1")
    text = path.read_text()
    assert START in text and "figures v1" in text
    path.write_text(text.replace(END, END + "\n\n## Findings\n\nwritten by a person\n"))
    write_results(path, "figures v2")
    text = path.read_text()
    assert "figures v2" in text and "figures v1" not in text and "written by a person" in text
