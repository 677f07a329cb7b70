"""The committed notebooks are the source (no generator): each is clean, thin, on the project's kernel,
parameterised, and the phase notebooks are the registry's."""

import json
import re

import pytest

from kit_helpers import ROOT
from netra_nb.engine import KERNEL_SPEC
from netra_nb.registry import NOTEBOOKS, PHASE_NOTEBOOKS

NOTEBOOK_DIR = ROOT / "notebooks"
ALL = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
#: Code lines a cell may hold: the logic lives in netra_nb, a cell only calls it.
MAX_CELL_LINES = 8


def load(name):
    return json.loads((NOTEBOOK_DIR / name).read_text(encoding="utf-8"))


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_every_notebook_the_registry_names_is_committed_and_no_other():
    assert sorted({*PHASE_NOTEBOOKS.values(), *NOTEBOOKS.values()}) == ALL


@pytest.mark.parametrize("name", ALL)
def test_a_notebook_is_stored_clean(name):
    nb = load(name)
    for cell in code_cells(nb):
        assert cell.get("outputs") == [] and cell.get("execution_count") is None, cell["source"]
    assert set(nb["metadata"]) <= {"kernelspec", "language_info"}  # no papermill or widget state
    assert all(set(c.get("metadata", {})) <= {"tags"} for c in nb["cells"])


@pytest.mark.parametrize("name", ALL)
def test_a_notebook_is_on_the_project_kernel_and_has_one_parameters_cell_first(name):
    nb = load(name)
    assert nb["metadata"]["kernelspec"] == KERNEL_SPEC
    cells = code_cells(nb)
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert tagged == [0]


@pytest.mark.parametrize("name", ALL)
def test_a_notebook_is_thin(name):
    for cell in code_cells(load(name)):
        lines = [ln for ln in "".join(cell["source"]).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        assert len(lines) <= MAX_CELL_LINES, "".join(cell["source"])
        assert not re.search(r"^\s*(def|class|async def) ", "".join(cell["source"]), re.M), "logic belongs in netra_nb"


@pytest.mark.parametrize("phase", sorted(PHASE_NOTEBOOKS))
def test_a_phase_notebook_runs_its_registry_phase(phase):
    source = "".join("".join(c["source"]) for c in code_cells(load(PHASE_NOTEBOOKS[phase])))
    assert re.search(rf"Phase\(\s*\"{phase}\"", source) or (phase == "orchestration" and "OrchestrationPhase(" in source)
