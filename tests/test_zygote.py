"""netra_nb.zygote: kernels forked from one process that imported the kit once behave like spawned ones
(separate processes in sessions of their own, killed with their trees, seen dead when they die), and
where the zygote cannot fork (gone, a thread started, turned off) kernels are spawned as before."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from netra_nb.engine import Kernel, execute, kill_kernels, read_notebook
from netra_nb.zygote import Zygote, fork_supported

pytestmark = [pytest.mark.notebook,
              pytest.mark.skipif(not fork_supported(), reason="kernels are forked on Linux only")]

MODULES = ("ipykernel.kernelapp", "netra_nb", "pandas", "matplotlib.pyplot")


def _wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _notebook(path: Path, *sources: str):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return read_notebook(path, None)


def _outputs(path: Path) -> list[list[dict]]:
    return [c["outputs"] for c in json.loads(path.read_text())["cells"]]


def test_a_forked_kernel_runs_a_notebook_as_a_spawned_one_does(tmp_path, monkeypatch):
    monkeypatch.setenv("NETRA_NB_ZYGOTE_TEST", "from the runner")
    work = tmp_path / "run"
    work.mkdir()
    nb = _notebook(tmp_path / "in.ipynb",
                   "%matplotlib inline\nimport os, sys, matplotlib\nimport matplotlib.pyplot as plt",
                   "print(os.getcwd(), os.environ.get('NETRA_NB_ZYGOTE_TEST').replace(' ', '_'), os.environ.get('JPY_PARENT_PID'),"
                   " sys.executable, matplotlib.get_backend())",
                   "plt.plot([1, 2, 3]);",
                   "import netra_nb, threading\nprint(sorted(t.name for t in threading.enumerate()))",
                   "print(sys.modules.get('ipykernel.debugger') is not None and sys.modules.get('debugpy') is not None)")

    async def go():
        zygote = Zygote.start(cwd=tmp_path, log=tmp_path / "k.log", modules=MODULES)
        assert zygote is not None
        try:
            forked = await Kernel.start("forked", cwd=work, log=tmp_path / "k.log", zygote=zygote)
            spawned = await Kernel.start("spawned", cwd=work, log=tmp_path / "k.log")
            try:
                # Forked: the zygote's child, in a session of its own (Ctrl-C in the terminal is not its to see).
                assert psutil.Process(forked.pid).ppid() == zygote.pid
                assert os.getsid(forked.pid) == forked.pid and os.getpgid(forked.pid) == forked.pid
                assert psutil.Process(spawned.pid).ppid() == os.getpid()
                a = await execute(nb, tmp_path / "forked.ipynb", forked)
                b = await execute(read_notebook(tmp_path / "in.ipynb", None), tmp_path / "spawned.ipynb", spawned)
                return a, b
            finally:
                kill_kernels([forked, spawned])
        finally:
            zygote.close()

    a, b = asyncio.run(go())
    assert a.status == b.status == "ok", (a, b)
    forked, spawned = _outputs(tmp_path / "forked.ipynb"), _outputs(tmp_path / "spawned.ipynb")
    cwd, value, parent, executable, backend = "".join(forked[1][0]["text"]).split()
    # The same folder, environment, interpreter and backend; ipykernel's parent poller is replaced by the watcher.
    assert [cwd, value] == [str(work), "from_the_runner"]
    assert "".join(spawned[1][0]["text"]).split() == [cwd, value, str(os.getpid()), sys.executable, backend]
    assert parent == "None" and executable == sys.executable and backend == "inline"
    assert "image/png" in forked[2][0]["data"] and "image/png" in spawned[2][0]["data"]
    # The forked kernel's threads are a kernel's, the watcher in place of ipykernel's parent poller (an
    # unnamed thread): nothing came from the zygote.
    threads = set(eval("".join(forked[3][0]["text"])))  # noqa: S307 - our own print of a list of names
    assert "netra-nb-watch" in threads
    poller = {t for t in eval("".join(spawned[3][0]["text"])) if t.startswith("Thread-")}  # noqa: S307
    assert len(poller) == 1
    assert threads - {"netra-nb-watch"} == set(eval("".join(spawned[3][0]["text"]))) - poller  # noqa: S307
    # The forked kernel runs without ipykernel's debugger (debugpy and pydevd are not imported); a spawned one,
    # as JupyterLab starts it, keeps it where debugpy is installed.
    assert "".join(forked[4][0]["text"]).strip() == "False"


def test_a_forked_kernel_that_dies_is_seen_dead_and_its_tree_is_killed(tmp_path):
    nb = _notebook(tmp_path / "in.ipynb",
                   "import subprocess, sys\n"
                   "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
                   "open('g', 'w').write(str(g.pid))",
                   "import os\nos._exit(3)",
                   "never = True")

    async def go():
        zygote = Zygote.start(cwd=tmp_path, log=tmp_path / "k.log", modules=MODULES)
        try:
            kernel = await Kernel.start("k", cwd=tmp_path, log=tmp_path / "k.log", zygote=zygote)
            assert psutil.Process(kernel.pid).ppid() == zygote.pid
            try:
                result = await execute(nb, tmp_path / "out.ipynb", kernel)
            finally:
                kill_kernels([kernel])
            second = await Kernel.start("k2", cwd=tmp_path, log=tmp_path / "k.log", zygote=zygote)
            try:
                grandchild = int((tmp_path / "g").read_text())
                pid = second.pid
                assert psutil.Process(pid).ppid() == zygote.pid
                assert (await second.run("import subprocess, sys\n"
                                         "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
                                         "open('g2', 'w').write('started')"))["status"] == "ok"
                _wait_for(lambda: psutil.Process(pid).children(), "the kernel's child")
                child = psutil.Process(pid).children()[0].pid
            finally:
                kill_kernels([second])
            return result, grandchild, pid, child
        finally:
            zygote.close()

    result, grandchild, pid, child = asyncio.run(go())
    assert result.status == "failed" and result.error.ename == "DeadKernel" and result.error.cell == 2
    for p in (pid, child):  # the run's deadline and Ctrl-C kill a forked kernel with its children
        _wait_for(lambda: _gone(p), f"process {p} to be gone", 30)
    os.kill(grandchild, signal.SIGKILL)  # started in a session of its own by a kernel that then died


def test_a_killed_zygote_leaves_its_kernels_running_and_the_next_kernel_is_spawned(tmp_path):
    async def go():
        zygote = Zygote.start(cwd=tmp_path, log=tmp_path / "k.log", modules=MODULES)
        first = await Kernel.start("first", cwd=tmp_path, log=tmp_path / "k.log", zygote=zygote)
        try:
            assert psutil.Process(first.pid).ppid() == zygote.pid
            zygote.kill()
            zygote.proc.wait(30)
            second = await Kernel.start("second", cwd=tmp_path, log=tmp_path / "k.log", zygote=zygote)
            try:
                assert zygote.broken
                assert psutil.Process(second.pid).ppid() == os.getpid()  # spawned
                reply = await first.run("x = 6 * 7")  # the forked kernel outlived its zygote
                assert reply["status"] == "ok"
                assert (await second.run("y = 1"))["status"] == "ok"
            finally:
                kill_kernels([second])
        finally:
            kill_kernels([first])
            zygote.close()

    asyncio.run(go())


def test_a_zygote_with_a_thread_does_not_fork_and_the_kernel_is_spawned(tmp_path, monkeypatch):
    # pyarrow (imported by pandas) starts jemalloc's background thread unless the zygote turns it off.
    monkeypatch.setenv("JE_ARROW_MALLOC_CONF", "background_thread:true")

    async def go():
        zygote = Zygote.start(cwd=tmp_path, log=tmp_path / "k.log", modules=MODULES)
        try:
            kernel = await Kernel.start("k", cwd=tmp_path, log=tmp_path / "k.log", zygote=zygote)
            try:
                assert psutil.Process(kernel.pid).ppid() == os.getpid()
                assert (await kernel.run("import pandas"))["status"] == "ok"
            finally:
                kill_kernels([kernel])
            assert zygote.proc.poll() is None and not zygote.broken  # refused, still there
        finally:
            zygote.close()

    asyncio.run(go())


def test_no_zygote_with_netra_nb_fork_0(tmp_path, monkeypatch):
    monkeypatch.setenv("NETRA_NB_FORK", "0")
    assert Zygote.start(cwd=tmp_path) is None


def test_a_killed_runner_takes_its_forked_kernels_and_zygote_with_it(tmp_path):
    script = textwrap.dedent(f"""
        import asyncio, pathlib, time
        from netra_nb.engine import Kernel
        from netra_nb.zygote import Zygote

        async def go():
            tmp = pathlib.Path({str(tmp_path)!r})
            zygote = Zygote.start(cwd=tmp, log=tmp / "k.log", modules=("ipykernel.kernelapp",))
            kernel = await Kernel.start("k", cwd=tmp, log=tmp / "k.log", zygote=zygote)
            (tmp / "pids").write_text(f"{{zygote.pid}} {{kernel.pid}}")
            time.sleep(600)

        asyncio.run(go())
    """)
    runner = subprocess.Popen([sys.executable, "-c", script])
    try:
        _wait_for(lambda: (tmp_path / "pids").is_file() and (tmp_path / "pids").read_text(), "the kernel")
        zygote, kernel = map(int, (tmp_path / "pids").read_text().split())
        assert psutil.Process(kernel).ppid() == zygote
        runner.kill()
        runner.wait(30)
        _wait_for(lambda: _gone(zygote) and _gone(kernel), "the zygote and the kernel to exit")
    finally:
        runner.kill()


def test_a_zygote_started_before_the_run_folder_keeps_what_it_wrote_for_the_runs_log(tmp_path, monkeypatch):
    """``netra-nb run`` starts the zygote before the run folder exists: what it writes until then waits, and
    reaches the run's kernel log, in order, before what it writes after."""
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "say_early.py").write_text("import sys\nprint('imported before the run folder existed', file=sys.stderr)\n")
    (mods / "say_late.py").write_text("import sys\nprint('imported after', file=sys.stderr)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(mods), os.environ.get("PYTHONPATH")])))
    log = tmp_path / "run" / "kernels.log"

    async def go():
        zygote = Zygote.start(cwd=tmp_path, modules=("say_early",))
        assert zygote is not None
        try:
            log.parent.mkdir()
            zygote.log_to(log)
            kernel = await Kernel.start("late", cwd=log.parent, log=log, zygote=zygote, modules=("say_late",))
            assert psutil.Process(kernel.pid).ppid() == zygote.pid  # forked: the modules were the zygote's
            kernel.kill()
        finally:
            zygote.close()

    asyncio.run(go())
    lines = log.read_text().splitlines()
    assert lines[:2] == ["imported before the run folder existed", "imported after"], lines
