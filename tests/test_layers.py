"""The package's layers (README, "Layout"): every module imports only from its own layer or those below,
and no two modules import each other, directly or around a circle."""

import ast

from kit_helpers import ROOT

PACKAGE = ROOT / "netra_nb"
#: Bottom to top, as the README's table lists them.
LAYERS = [
    {"registry", "records", "categories", "frames", "params", "redact", "text", "envfile"},  # facts and data
    {"wire", "http", "ws", "auth", "judge", "diagnosis"},  # observing (and recording what was on the wire) and judging
    {"checks"},
    {"engine", "zygote", "notebook", "orchestration", "cluster", "charts"},  # a phase in a notebook: its checks, its figures
    {"runfolder", "narrative", "tables", "comparison", "export", "report", "junit", "artifacts",
     "history_store", "history_analysis", "history_plots", "history",
     "replay", "corpus"},  # reading a run (replay serves a recorded one back; corpus keeps it as a test)
    {"runner", "triage", "cli", "__init__"},  # commands
]
#: checks.registry() imports orchestration so that its checks register (orchestration builds on checks).
ALLOWED_UPWARD = {("checks", "orchestration")}
#: Deferred imports that close a circle by design: a fleet on a cluster runs orchestration's sessions on the
#: workers (orchestration -> cluster -> orchestration); a kernel forked from the zygote is the engine's, and the
#: zygote compiles the package with the engine's helper (engine -> zygote -> engine).
ALLOWED_CIRCLES = {("orchestration", "cluster"), ("engine", "zygote")}


def _runtime_nodes(tree):
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only, never imported)."""
    skip = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            skip |= {id(x) for s in n.body for x in ast.walk(s)}
    return [n for n in ast.walk(tree) if id(n) not in skip]


def imports_of(path):
    deps = set()
    for n in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(n, ast.ImportFrom):
            if n.level == 1:
                deps |= {n.module.split(".")[0]} if n.module else {a.name for a in n.names}
            elif n.module and n.module.split(".")[0] == "netra_nb":
                deps |= {n.module.split(".")[1]} if "." in n.module else {a.name for a in n.names}
        elif isinstance(n, ast.Import):
            deps |= {a.name.split(".")[1] for a in n.names if a.name.startswith("netra_nb.")}
    return deps - {path.stem, "refserver"}


def graph():
    return {p.stem: imports_of(p) for p in PACKAGE.glob("*.py")}


def layer(module):
    return next(i for i, names in enumerate(LAYERS) if module in names)


def test_every_module_has_a_layer():
    assert set(graph()) == set().union(*LAYERS)


def test_imports_go_down_the_layers():
    upward = {(m, d) for m, deps in graph().items() for d in deps if layer(d) > layer(m)}
    assert upward == ALLOWED_UPWARD


def test_no_import_circle():
    cut = ALLOWED_UPWARD | ALLOWED_CIRCLES
    g = {m: deps - {d for (src, d) in cut if src == m} for m, deps in graph().items()}
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError(" -> ".join(path + [m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for d in sorted(g[m]):
            visit(d, path + [m])
        state[m] = 2

    for m in sorted(g):
        visit(m, [])


def test_the_registry_imports_nothing_of_the_kit():
    assert imports_of(PACKAGE / "registry.py") == set()
