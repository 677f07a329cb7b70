"""netra_nb.engine: parameters injected as papermill does, the project's kernel, notebooks executed cell by
cell in a kernel of their own, process trees killed whole; and the runner's reading of rows as they come."""

import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from netra_nb.engine import KERNEL_NAME, KERNEL_SPEC, _spec_manager, kill_tree, parameterize, run_notebook
from netra_nb.runner import RowTail

ROOT = Path(__file__).resolve().parent.parent


def _cell(source, tags=()):
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source, "outputs": [], "execution_count": None}


def test_parameters_follow_the_parameters_cell_and_replace_an_earlier_injection():
    nb = {"cells": [_cell("import x"), _cell("env = 'local'", ["parameters"]), _cell("old", ["injected-parameters"]),
                    _cell("run()")], "metadata": {}}
    out = parameterize(nb, {"env": "staging", "run_dir": "/tmp/a b", "n": 3, "users": None, "flag": True,
                            "files": ["a.xml", "b'c.xml"], "opts": {"k": 1.5}})
    assert [c["source"] for c in out["cells"]][:2] == ["import x", "env = 'local'"]
    injected = out["cells"][2]
    assert injected["metadata"]["tags"] == ["injected-parameters"] and out["cells"][3]["source"] == "run()"
    assert len(out["cells"]) == 4 and nb["cells"][2]["source"] == "old"  # the input is not changed
    namespace: dict = {}
    exec(injected["source"], namespace)  # noqa: S102 - the point: it is valid Python with these values
    assert {k: namespace[k] for k in ("env", "run_dir", "n", "users", "flag", "files", "opts")} == {
        "env": "staging", "run_dir": "/tmp/a b", "n": 3, "users": None, "flag": True, "files": ["a.xml", "b'c.xml"],
        "opts": {"k": 1.5}}


def test_without_a_parameters_cell_the_parameters_come_first():
    out = parameterize({"cells": [_cell("run()")], "metadata": {}}, {"a": 1})
    assert out["cells"][0]["source"] == "# Parameters\na = 1\n" and out["cells"][1]["source"] == "run()"


@pytest.mark.parametrize("value", [float("nan"), object(), b"bytes"])
def test_a_parameter_that_is_not_a_plain_value_is_refused(value):
    with pytest.raises((TypeError, ValueError)):
        parameterize({"cells": []}, {"x": value})


def test_the_kernel_is_this_interpreter_whatever_is_installed():
    spec = _spec_manager().get_kernel_spec(KERNEL_NAME)
    assert spec.argv[0] == sys.executable and "ipykernel_launcher" in spec.argv
    for name in ("00_connectivity", "01_agent_pipeline", "02_orchestration", "90_run_report", "91_history",
                 "92_pytest_triage"):
        assert json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["metadata"]["kernelspec"] == KERNEL_SPEC


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 0", metadata={"tags": ["parameters"]}),
                                         *(nbformat.v4.new_code_cell(s) for s in sources)])
    nbformat.write(nb, path)
    return path


@pytest.mark.notebook
def test_a_notebook_runs_with_its_parameters_and_its_outputs_are_kept(tmp_path):
    nb = _notebook(tmp_path / "in.ipynb", "import sys\nprint(x * 2, sys.executable)")
    result = run_notebook(nb, tmp_path / "out.ipynb", {"x": 21}, time.monotonic() + 120, tmp_path / "k.log")
    assert result["status"] == "ok" and result["error"] is None
    cells = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    assert "".join(cells[2]["outputs"][0]["text"]) == f"42 {sys.executable}\n"


@pytest.mark.notebook
def test_a_raising_cell_is_named_by_its_index_among_the_code_cells(tmp_path):
    nb = _notebook(tmp_path / "in.ipynb", "y = 1", "raise KeyError('no such thing')", "never = True")
    result = run_notebook(nb, tmp_path / "out.ipynb", {"x": 1}, time.monotonic() + 120, tmp_path / "k.log")
    assert result["status"] == "failed"
    assert result["error"] == {"cell": 4, "ename": "KeyError", "evalue": "'no such thing'"}  # params, injected, y, raise
    cells = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    assert cells[3]["outputs"][0]["output_type"] == "error" and cells[4]["outputs"] == []


@pytest.mark.notebook
def test_the_deadline_kills_the_kernel_and_says_so(tmp_path):
    # The deadline is twice what a kernel took to start and run a cell here, now: a busy machine cannot
    # make the notebook miss it before the cell that sleeps.
    t0 = time.monotonic()
    warm = run_notebook(_notebook(tmp_path / "warm.ipynb", "pass"), tmp_path / "warm-out.ipynb", {}, t0 + 300,
                        tmp_path / "k.log")
    assert warm["status"] == "ok"
    start_s = time.monotonic() - t0
    nb = _notebook(tmp_path / "in.ipynb", "import os\nopen('pid', 'w').write(str(os.getpid()))", "import time\ntime.sleep(600)")
    result = run_notebook(nb, tmp_path / "out.ipynb", {}, time.monotonic() + 2 * start_s + 1, tmp_path / "k.log")
    assert result["status"] == "failed" and result["error"]["ename"] == "RunDeadline"
    kernel = int((tmp_path / "pid").read_text())  # the kernel's cwd is the output's folder
    assert not psutil.pid_exists(kernel) or psutil.Process(kernel).status() == psutil.STATUS_ZOMBIE


def test_kill_tree_kills_descendants_in_sessions_of_their_own(tmp_path):
    # A child that starts a grandchild in a new session (as jupyter_client starts kernels), then waits.
    script = ("import subprocess, sys, time\n"
              "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
              f"open({str(tmp_path / 'g')!r}, 'w').write(str(g.pid))\n"
              "time.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120
    while not (tmp_path / "g").is_file() or not (tmp_path / "g").read_text():
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.02)
    grandchild = psutil.Process(int((tmp_path / "g").read_text()))
    kill_tree(child.pid)
    child.wait(30)
    grandchild.wait(30)  # reaped by init once its parent is gone; it must be dead, not orphaned and running
    assert not grandchild.is_running()


def test_rows_are_read_whole_as_they_are_appended(tmp_path):
    path = tmp_path / "results.jsonl"
    tail = RowTail(path)
    assert tail.new_rows() == []  # no file yet
    path.write_text('{"check": "a"}\n{"check": "b"')  # the second line is still being written
    assert tail.new_rows() == [{"check": "a"}]
    with path.open("a") as fh:
        fh.write(', "status": "pass"}\nnot json\n[1]\n{"check": "c"}\n')
    assert tail.new_rows() == [{"check": "b", "status": "pass"}, {"check": "c"}]
    assert tail.new_rows() == []


# A stand-in for ipykernel_launcher, first on PYTHONPATH: it exits at once for the first DIE_TIMES starts (as a
# kernel does whose port another process took between jupyter_client's pick and its bind), then runs the real one.
_DYING_LAUNCHER = '''
import os, runpy, sys
count = os.environ["NETRA_NB_TEST_STARTS"]
n = int(open(count).read() or 0) if os.path.exists(count) else 0
open(count, "w").write(str(n + 1))
if n < int(os.environ["NETRA_NB_TEST_DIE_TIMES"]):
    sys.exit("zmq.error.ZMQError: Address already in use (the test's stand-in)")
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
sys.modules.pop("ipykernel_launcher", None)
runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)
'''


def _dying_kernels(tmp_path, monkeypatch, die_times):
    (tmp_path / "launcher").mkdir()
    (tmp_path / "launcher" / "ipykernel_launcher.py").write_text(_DYING_LAUNCHER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "launcher"))
    monkeypatch.setenv("NETRA_NB_TEST_STARTS", str(tmp_path / "starts"))
    monkeypatch.setenv("NETRA_NB_TEST_DIE_TIMES", str(die_times))
    return tmp_path / "kernels.log"


def test_a_kernel_that_exits_before_it_answers_is_started_again(tmp_path, monkeypatch):
    import asyncio

    from netra_nb.engine import Kernel
    log = _dying_kernels(tmp_path, monkeypatch, die_times=1)

    async def go():
        kernel = await Kernel.start("phase", cwd=tmp_path, log=log)
        try:
            return (await kernel.run("x = 6 * 7"))["status"]
        finally:
            kernel.kill()

    assert asyncio.run(go()) == "ok"
    assert (tmp_path / "starts").read_text() == "2"
    text = log.read_text()
    assert "Address already in use" in text
    assert "the phase kernel exited before it answered (attempt 1 of 3); starting it again with new ports" in text


def test_a_kernel_that_keeps_exiting_is_a_start_error_after_three_attempts(tmp_path, monkeypatch):
    import asyncio

    from netra_nb.engine import KERNEL_START_ATTEMPTS, Kernel, KernelStartError
    log = _dying_kernels(tmp_path, monkeypatch, die_times=99)
    with pytest.raises(KernelStartError, match="the phase kernel exited before it answered") as info:
        asyncio.run(Kernel.start("phase", cwd=tmp_path, log=log))
    assert info.value.died
    assert (tmp_path / "starts").read_text() == str(KERNEL_START_ATTEMPTS) == "3"
