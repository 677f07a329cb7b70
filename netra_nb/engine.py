"""Execute notebooks in kernels of the project's own interpreter, cell by cell, with nbclient.

Everything that runs a notebook goes through here: the phase notebooks and the report (the
runner), the history and triage notebooks. A notebook always runs in a kernel of its own (a
separate process, so a hung or killed notebook never takes the caller with it) started from
the interpreter that runs ``netra-nb`` itself, so the kernel imports the same kit; no installed
kernel spec is needed (``make`` installs one named ``netra-nb`` for JupyterLab, and the notebooks'
metadata names it).

- :class:`Kernel` starts a kernel, runs warm-up code in it and kills its process tree;
- :func:`parameterize` injects the parameters cell the way papermill does;
- :func:`execute` runs a notebook in a started kernel, writing the executed notebook after each cell;
- :func:`run_notebook` does all three, synchronously (the history and triage commands).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import psutil

from .redact import redact
from .registry import notebooks_dir  # noqa: F401 - re-exported beside run_notebook

if TYPE_CHECKING:
    from .zygote import Zygote

__all__ = ["notebooks_dir", "KERNEL_NAME", "KERNEL_SPEC", "Kernel", "KernelStartError", "parameterize", "read_notebook", "execute",
           "run_notebook", "kill_kernels", "kill_tree", "kill_trees", "NotebookError", "Executed"]


KERNEL_NAME = "netra-nb"
#: The notebooks' ``metadata.kernelspec`` (what JupyterLab shows; ``make`` installs the spec).
KERNEL_SPEC = {"name": KERNEL_NAME, "display_name": "Python (netra-nb)", "language": "python"}
#: Seconds a kernel may take to answer its first request (a busy machine takes several).
STARTUP_TIMEOUT_S = 120.0


class KernelStartError(RuntimeError):
    """A kernel could not be started (ipykernel missing, or it died or hung while starting); ``died``: its process
    exited before it answered."""

    def __init__(self, message: str, *, died: bool = False) -> None:
        super().__init__(message)
        self.died = died


#: How many times a kernel that exits before answering is started (see :meth:`Kernel.start`).
KERNEL_START_ATTEMPTS = 3


def kill_trees(pids: Iterable[int]) -> None:
    """SIGKILL processes and all their descendants, now, and reap them.

    Kernels run in sessions of their own (jupyter_client starts them so), so a process-group
    kill would leave them running and writing rows after the run was finalized. Each root is
    stopped first so that it cannot start another child while its tree is collected; every
    process is killed before any is waited for.
    """
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            root.suspend()
            procs += [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)


def is_kernel_process(p: psutil.Process, runner: int) -> bool:
    """Whether ``p``, a descendant of the runner ``runner``, is a kernel: spawned (``ipykernel_launcher``), or
    forked by the run's zygote (its command line; the zygote itself is the runner's child)."""
    try:
        cmd = " ".join(p.cmdline())
        return "ipykernel" in cmd or ("netra_nb.zygote" in cmd and p.ppid() != runner)
    except psutil.Error:
        return False


def kill_tree(pid: int) -> None:
    """:func:`kill_trees` of one process."""
    kill_trees([pid])


_compiled = False


def compile_package() -> None:
    """Write the kit's bytecode (``__pycache__``) once per process, when the package's folder is writable.

    ``netra_nb`` is installed editable (pip compiles what it installs in site-packages, not this
    folder), and with ``PYTHONDONTWRITEBYTECODE=1`` set no import writes the bytecode either: every
    kernel then compiled the kit from source again (~0.35 s of CPU each). ``compileall`` writes
    whatever that variable says, and only what is missing or stale (a check of each file's size and
    time when nothing changed)."""
    global _compiled
    if _compiled:
        return
    _compiled = True
    package = Path(__file__).resolve().parent
    if not os.access(package, os.W_OK):
        return
    try:
        import compileall

        compileall.compile_dir(str(package), quiet=2, workers=1)
    except Exception:  # noqa: BLE001 - only a speed-up: the kernels compile what they import
        pass


def _spec_manager() -> Any:
    """A kernel spec manager that serves ``netra-nb`` as this interpreter's ipykernel."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    class OwnInterpreter(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            if kernel_name != KERNEL_NAME:
                return super().get_kernel_spec(kernel_name)
            return KernelSpec(argv=[sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher",
                                    "-f", "{connection_file}"],
                              display_name=KERNEL_SPEC["display_name"], language="python",
                              resource_dir=str(Path(__file__).resolve().parent), metadata={"debugger": False})

    return OwnInterpreter()


class Kernel:
    """A started kernel: ``await Kernel.start(...)``, then :func:`execute` notebooks in it, then
    :meth:`kill` (at once, from anywhere: a kernel holds nothing worth a polite shutdown)."""

    def __init__(self, km: Any, kc: Any, label: str) -> None:
        self.km, self.kc, self.label = km, kc, label
        self.killed = False

    @classmethod
    async def start(cls, label: str, *, cwd: Path, log: Path | None = None, timeout: float = STARTUP_TIMEOUT_S,
                    zygote: "Zygote | None" = None, modules: tuple[str, ...] = ()) -> "Kernel":
        """Start a kernel and wait until it answers (at most ``timeout`` seconds).

        With a ``zygote`` (:mod:`netra_nb.zygote`) the kernel is forked from it, once it has imported
        ``modules``; where the zygote cannot (it is gone, or refuses), the kernel is spawned instead.

        A kernel that exits before it answers is started again, with new ports, up to twice: jupyter_client
        picks free TCP ports and the kernel binds them later, and on a busy machine another process can take
        one in between ("Address already in use" in ``kernels.log``). A kernel that does not answer in time
        is not retried."""
        for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
            try:
                return await cls._start_once(label, cwd=cwd, log=log, timeout=timeout, zygote=zygote, modules=modules)
            except KernelStartError as exc:
                if not exc.died or attempt == KERNEL_START_ATTEMPTS:
                    raise
                if log is not None:
                    with log.open("a", encoding="utf-8") as fh:
                        fh.write(f"netra-nb: the {label} kernel exited before it answered (attempt {attempt} of "
                                 f"{KERNEL_START_ATTEMPTS}); starting it again with new ports\n")
        raise AssertionError("unreachable")

    @classmethod
    async def _start_once(cls, label: str, *, cwd: Path, log: Path | None, timeout: float,
                          zygote: "Zygote | None", modules: tuple[str, ...]) -> "Kernel":
        from jupyter_client.manager import AsyncKernelManager

        compile_package()
        # History in memory: a kernel per phase must not contend for IPython's sqlite file.
        arguments = ["--IPKernelApp.log_level=CRITICAL", "--HistoryManager.hist_file=:memory:"]
        km = None
        if zygote is not None and not zygote.broken:
            from .zygote import ZygoteError, forked_provisioner

            km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=_spec_manager())
            try:
                km.provisioner = forked_provisioner(km, zygote, log=log, modules=modules)
                await km.start_kernel(cwd=str(cwd), extra_arguments=arguments)
            except ZygoteError:
                try:
                    await km.cleanup_resources()  # the connection file and ports of the start that did not happen
                except Exception:  # noqa: BLE001
                    pass
                km = None  # not forked: spawned below, as without a zygote
            except Exception as exc:  # noqa: BLE001 - say which kernel and why, the caller decides
                raise KernelStartError(f"the {label} kernel did not start: {type(exc).__name__}: {exc}") from exc
        if km is None:
            km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=_spec_manager())
            # The kernels' own output (start-up warnings, C-level prints) goes to the log, not the terminal.
            out = log.open("ab") if log is not None else None
            try:
                await km.start_kernel(cwd=str(cwd), stdout=out, stderr=out, extra_arguments=arguments)
            except Exception as exc:  # noqa: BLE001 - say which kernel and why, the caller decides
                raise KernelStartError(f"the {label} kernel did not start: {type(exc).__name__}: {exc}") from exc
            finally:
                if out is not None:
                    out.close()  # the kernel holds its own copy of the descriptor
        kc = km.client()
        kc.start_channels()
        kernel = cls(km, kc, label)
        try:
            await kc.wait_for_ready(timeout=timeout)
        except BaseException as exc:  # a cancelled start too: the process exists, it must not outlive us
            kernel.kill()
            if isinstance(exc, Exception):
                died = isinstance(exc, RuntimeError) and "died" in str(exc)  # jupyter_client: "Kernel died before replying"
                raise KernelStartError(f"the {label} kernel exited before it answered: {exc}" if died else
                                       f"the {label} kernel did not answer within {timeout:.0f} s: {exc}",
                                       died=died) from exc
            raise
        return kernel

    async def run(self, code: str, *, timeout: float = STARTUP_TIMEOUT_S,
                  expressions: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Execute ``code`` silently (no output, no history) and wait for its reply's content (``status``
        ``ok`` or ``error``; ``user_expressions``: the repr of each of ``expressions`` evaluated after it);
        for warm-up imports and the run's tail, when no notebook is using the kernel's channels."""
        msg_id = self.kc.execute(code, silent=True, store_history=False, user_expressions=dict(expressions or {}))
        deadline = time.monotonic() + timeout
        while True:
            reply = await self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"]

    @property
    def pid(self) -> int | None:
        return getattr(self.km.provisioner, "pid", None) if self.km.has_kernel else None

    def kill(self) -> None:
        """Kill the kernel's process tree now (safe to call twice, from a signal handler too)."""
        kill_kernels([self])


def kill_kernels(kernels: Iterable[Kernel]) -> None:
    """Kill kernels' process trees at once (all killed, then all reaped) and release their channels."""
    todo = [k for k in kernels if not k.killed]
    for k in todo:
        k.killed = True
    kill_trees(pid for k in todo if (pid := k.pid) is not None)
    for k in todo:
        try:
            k.kc.stop_channels()
        except Exception:  # noqa: BLE001 - best effort: the process is gone either way
            pass
        try:
            k.km.cleanup_connection_file()
            # The manager's own socket to the kernel's control channel: left open, it keeps its zmq context
            # from ending, and a process that collects the context at exit waits for it forever.
            k.km._close_control_socket()
        except Exception:  # noqa: BLE001
            pass


# -- parameters --------------------------------------------------------------------------------

def _literal(value: Any) -> str:
    """A Python literal for a parameter value (str, int, float, bool, None, lists and dicts of them)."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a notebook parameter cannot be {value!r}")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_literal(str(k))}: {_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"a notebook parameter cannot be a {type(value).__name__}")


def parameterize(nb: dict[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook with a cell tagged ``injected-parameters`` that assigns ``parameters``, placed
    right after the cell tagged ``parameters`` (first if there is none), replacing an earlier
    injected cell, as papermill does: the defaults stay visible, the values used follow them."""
    lines = ["# Parameters"] + [f"{name} = {_literal(value)}" for name, value in parameters.items()]
    injected = {"cell_type": "code", "execution_count": None, "id": "injected-parameters",
                "metadata": {"tags": ["injected-parameters"]}, "outputs": [], "source": "\n".join(lines) + "\n"}
    cells = [c for c in nb.get("cells", []) if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    at = next((i + 1 for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])), 0)
    return {**nb, "cells": cells[:at] + [injected] + cells[at:]}


# -- execution ---------------------------------------------------------------------------------

@dataclass
class NotebookError:
    """Where an executed notebook stopped: the 1-based index among its code cells (None: not in a cell)."""

    cell: int | None
    ename: str
    evalue: str

    def to_dict(self) -> dict[str, Any]:
        return {"cell": self.cell, "ename": self.ename, "evalue": self.evalue}


@dataclass
class Executed:
    """What :func:`execute` reports: ``status`` ``ok`` or ``failed``, the error, the timings."""

    path: str
    status: str
    duration_s: float
    error: NotebookError | None = None
    cells_s: list[float] = field(default_factory=list)  # each executed code cell's wall time

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "duration_s": round(self.duration_s, 3),
                "error": self.error.to_dict() if self.error else None}


def _write_notebook(nb: Any, path: Path) -> None:
    """Write atomically, so that a run killed mid-write leaves the previous version, not half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_notebook(path: Path, parameters: Mapping[str, Any] | None) -> Any:
    """A notebook as nbformat's node, parameterized and on the project's kernel."""
    import nbformat

    nb = nbformat.reads(Path(path).read_text(encoding="utf-8"), as_version=4)
    if parameters is not None:
        nb = nbformat.from_dict(parameterize(nb, parameters))
    nb.metadata["kernelspec"] = dict(KERNEL_SPEC)
    return nb


async def execute(nb: Any, out: Path, kernel: Kernel, *, cell_timeout: float | None = None,
                  save_each_cell: bool = True) -> Executed:
    """Run every code cell of ``nb`` (from :func:`read_notebook`) in ``kernel``, in order, stopping at
    the first that raises; ``out`` holds the executed notebook at the end, and after each cell with
    ``save_each_cell`` (a run killed half-way then keeps the cells that ran).

    ``cell_timeout`` (seconds, None disables) limits each cell; the run's own deadline is the
    caller's (it kills the kernel, and this returns ``DeadKernel``)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    client = NotebookClient(nb, km=kernel.km, kernel_name=KERNEL_NAME, allow_errors=False,
                            timeout=int(math.ceil(cell_timeout)) if cell_timeout else None,
                            resources={"metadata": {"path": str(out.parent)}})
    client.kc = kernel.kc
    t0 = time.monotonic()
    error: NotebookError | None = None
    cells_s: list[float] = []
    code_index = 0
    try:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            code_index += 1
            t = time.monotonic()
            await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            cells_s.append(time.monotonic() - t)
            if save_each_cell:
                _write_notebook(nb, out)
    except CellExecutionError as exc:
        error = NotebookError(code_index, exc.ename, redact(str(exc.evalue))[:500])
    except CellTimeoutError:
        error = NotebookError(code_index, "CellTimeout", f"cell {code_index} ran longer than {cell_timeout:.0f} s")
    except DeadKernelError:
        error = NotebookError(code_index, "DeadKernel", f"the kernel died during cell {code_index}")
    finally:
        _write_notebook(nb, out)
    return Executed(out.name, "failed" if error else "ok", time.monotonic() - t0, error, cells_s)


def run_notebook(nb_in: Path, nb_out: Path, parameters: dict[str, Any], deadline: float,
                 log: Path) -> dict[str, Any]:
    """Execute one notebook in a kernel of its own before ``deadline`` (``time.monotonic``); the
    kernel's output goes to ``log``. Returns ``{"path", "status", "duration_s", "error"}``
    (``error``: ``{"cell", "ename", "evalue"}``; ``RunDeadline`` when the deadline stopped it)."""

    async def go() -> dict[str, Any]:
        started = time.monotonic()
        nb = read_notebook(nb_in, parameters)
        try:
            kernel = await Kernel.start(nb_in.stem, cwd=nb_out.parent, log=log,
                                        timeout=max(1.0, deadline - started))
        except KernelStartError as exc:
            return {"path": nb_out.name, "status": "failed", "duration_s": round(time.monotonic() - started, 3),
                    "error": {"cell": None, "ename": "KernelStart", "evalue": redact(str(exc))[:500]}}
        task = asyncio.ensure_future(execute(nb, nb_out, kernel))
        try:
            done, _ = await asyncio.wait({task}, timeout=max(0.1, deadline - time.monotonic()))
            if done:
                return task.result().to_dict()
            kernel.kill()  # nbclient swallows a cancellation (it takes it for a dead kernel): kill first
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return {"path": nb_out.name, "status": "failed", "duration_s": round(time.monotonic() - started, 3),
                    "error": {"cell": None, "ename": "RunDeadline",
                              "evalue": "the deadline passed; the notebook was stopped"}}
        finally:
            kernel.kill()

    return asyncio.run(go())
