"""registry.py: the one place for the phases, groups, notebooks and how a status looks; what derives from it."""

from netra_nb import charts, diagnosis, notebook, registry, report, runner, tables
from netra_nb.checks import GROUPS, PHASE_TITLES, registry as check_registry
from netra_nb.records import STATUSES


def test_every_check_names_a_phase_and_a_group_of_the_registry():
    for spec in check_registry().values():
        assert spec.phase in registry.RUN_PHASES, spec.name
        assert spec.group in registry.GROUPS, spec.name


def test_the_run_phases_are_the_phases_with_a_notebook_in_order():
    assert registry.RUN_PHASES == ("connectivity", "agent_pipeline", "orchestration")
    assert runner.PHASE_NOTEBOOKS is registry.PHASE_NOTEBOOKS and list(PHASE_TITLES) == list(registry.RUN_PHASES)
    assert diagnosis.PHASE_ORDER == registry.PHASE_ORDER and registry.PHASE_ORDER[-1] == "triage"
    assert [registry.phase_rank(p) for p in ("agent_pipeline", "connectivity", "nope")] == [1, 0, 4]
    assert GROUPS is registry.GROUPS


def test_every_status_looks_one_way_everywhere():
    assert set(registry.STATUSES) == set(STATUSES)
    assert charts.STATUS_COLORS is registry.STATUS_COLORS and tables.STATUS_ICON is registry.STATUS_ICON
    assert notebook._STATUS_MARK is registry.STATUS_MARK
    # one yellow for degraded: the chart's bar and the report's icon
    assert registry.ICON_COLORS[registry.STATUS_ICON["degraded"]] == registry.STATUS_COLORS["degraded"]
    assert sorted(registry.STATUS_ORDER, key=registry.STATUS_ORDER.get) == ["fail", "error", "degraded", "skip", "pass"]
    assert len(set(registry.STATUS_ICON.values())) == len(registry.STATUSES)


def test_the_notebooks_are_where_the_registry_says():
    for name in [*registry.PHASE_NOTEBOOKS.values(), *registry.NOTEBOOKS.values()]:
        assert (registry.notebooks_dir() / name).is_file(), name
    assert report.notebook_path() == registry.notebooks_dir() / registry.NOTEBOOKS["report"]
