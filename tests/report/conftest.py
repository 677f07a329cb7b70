"""Fixtures of the report tests: the synthetic run folders of ``report_runs`` (healthy, E1, partial)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from report_runs import T0, build_e1, build_healthy, build_partial


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Read-only run folders shared by the tests: don't write into them (use ``fresh_runs`` for that)."""
    root = tmp_path_factory.mktemp("outputs")
    return {"healthy": build_healthy(root, T0 - timedelta(days=1)), "e1": build_e1(root, T0),
            "partial": build_partial(root, T0 + timedelta(hours=1)), "root": root}


@pytest.fixture
def fresh_runs(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "outputs"
    return {"healthy": build_healthy(root, T0 - timedelta(days=1)), "e1": build_e1(root, T0),
            "partial": build_partial(root, T0 + timedelta(hours=1)), "root": root}


@pytest.fixture(scope="session")
def built_e1(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The E1 run (with the healthy run before it) after one ``build_report``: shared by the notebook and
    browser tests so papermill runs once."""
    from netra_nb.report import build_report

    root = tmp_path_factory.mktemp("built") / "outputs"
    healthy = build_healthy(root, T0 - timedelta(days=1))
    e1 = build_e1(root, T0)
    html = build_report(e1, timeout=120)
    return {"dir": e1, "healthy": healthy, "html": html}
