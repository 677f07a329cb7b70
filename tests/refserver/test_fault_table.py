"""README.md's fault table is the one generated from FAULTS (regenerate it with update_readme)."""

from __future__ import annotations

import shutil
from pathlib import Path

from netra_nb.refserver.faults import FAULTS, README_END, README_START, readme_table, update_readme

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_table_is_generated_from_the_profiles():
    block = README.read_text().split(README_START)[1].split(README_END)[0].strip()
    assert block == readme_table(), (
        "README.md's fault table is stale: run python -c \"from pathlib import Path; "
        "from netra_nb.refserver.faults import update_readme; update_readme(Path('README.md'))\"")


def test_the_table_names_every_profile_and_the_placement_it_needs():
    rows = readme_table().splitlines()[2:]
    assert [r.split("`")[1] for r in rows] == list(FAULTS)
    (query_row,) = [r for r in rows if r.startswith("| `ws_query_token_ignored`")]
    assert "`auth.placement: query`" in query_row


def test_update_readme_rewrites_only_the_block(tmp_path):
    copy = tmp_path / "README.md"
    shutil.copy(README, copy)
    assert update_readme(copy) is False  # already current
    text = copy.read_text()
    stale = text.replace(readme_table(), "| stale |")
    copy.write_text(stale)
    assert update_readme(copy) is True
    assert copy.read_text() == text
