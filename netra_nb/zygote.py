"""A fork server for kernels (a "zygote"): one process imports ipykernel, pandas, matplotlib and the kit
once, then forks a kernel per notebook, so that four kernels do not each pay ~1.5 s of CPU for the same
imports (bench/RESULTS.md, "Kit overhead").

What a forked kernel is, and why it behaves like a spawned one:

- it is a separate process in a session of its own (``setsid``, as jupyter_client starts kernels), its
  output appended to the run's kernel log, its working folder and environment those jupyter_client
  asked for; it runs ``ipykernel``'s own entry point with the same arguments, after the fork, so every
  zmq context, socket, thread and event loop of the kernel is created in the kernel;
- the caller sees it through :class:`ForkedProvisioner` (a jupyter_client kernel provisioner): a pid,
  signals to its process group, ``poll`` and ``wait``; :func:`netra_nb.engine.kill_trees` kills it
  and its children like any kernel (the run deadline, Ctrl-C);
- it exits when the process that asked for it is gone (a watcher thread, started after the fork,
  instead of ipykernel's parent poller, which would take the zygote for the parent): a killed zygote
  does not take running kernels with it, a killed runner does.

Fork safety: the zygote forks only while it has a single thread (checked before every fork; the
request is refused otherwise and the caller starts that kernel the usual way). Two libraries start a
thread at import, so the zygote turns them off before importing anything: OpenBLAS's thread pool
(``OPENBLAS_NUM_THREADS=1``: the kernels' BLAS then runs on one thread; nothing in the kit does linear
algebra worth a second core) and pyarrow's jemalloc background purging thread
(``JE_ARROW_MALLOC_CONF=background_thread:false``). Forking is used on Linux only: on macOS a forked
child of a process that loaded system frameworks may crash, so there (and wherever ``os.fork`` is
missing, and with ``NETRA_NB_FORK=0``) kernels are spawned as before.

The protocol: JSON lines on the zygote's stdin, one JSON line answering each on its stdout.
``{"op": "import", "modules": [...]}`` imports (an entry ``module:function`` also calls the function: a
warm-up the kernels inherit); ``{"op": "fork", "args": [...], "cwd", "env", "log",
"watch": [pid, create_time], "modules": [...]}`` imports ``modules`` then forks, answering ``{"pid": n}``
or ``{"error": "..."}``; ``{"op": "log", "path": ...}`` appends what the zygote wrote to its stderr so far
to that file and writes there from then on (a zygote started before the run folder existed). End of
stdin: the zygote exits.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["Zygote", "ZygoteError", "fork_supported", "main", "start_for_run", "PHASE_MODULES", "REPORT_MODULES"]

#: Turned off in the zygote before any import: each would start a thread, and a process forks safely
#: only while it has one (see the module's docstring).
THREADLESS_ENV = {"OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}
#: What a zygote imports before it forks the phase kernels (what the phase notebooks import first and draw
#: with), and then before it forks the report's. ``netra_nb`` itself imports its modules when first used.
PHASE_MODULES = ("ipykernel.kernelapp", "netra_nb.notebook", "netra_nb.orchestration", "netra_nb.charts", "pandas",
                 "matplotlib.pyplot")
#: The report's kernel and the artifacts kernel (netra_nb.artifacts) also export HTML and write Parquet: the
#: zygote imports nbconvert and compiles the report page's templates once, and pyarrow, for both.
REPORT_MODULES = ("IPython.display", "netra_nb.report", "netra_nb.export:prepare_export", "netra_nb.artifacts",
                  "pyarrow.parquet", "netra_nb.junit", "netra_nb.history")
#: ipykernel sets this when it starts unless it is set (``IPKernelApp.init_gui_pylab``); matplotlib reads
#: it at import, so the zygote sets it before importing matplotlib, as the kernel would have.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def fork_supported() -> bool:
    """Kernels are forked on Linux, unless ``NETRA_NB_FORK=0``."""
    return (hasattr(os, "fork") and sys.platform.startswith("linux")
            and os.environ.get("NETRA_NB_FORK", "1").strip().lower() not in ("0", "false", "no", "off"))


def native_threads() -> int:
    """This process's threads as the kernel counts them (Linux), else Python's."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return threading.active_count()


def _import(modules: list[str]) -> None:
    """Import each module; ``module:function`` also calls ``function()`` (a warm-up the forked kernels inherit)."""
    import importlib
    for name in modules:
        module, _, function = name.partition(":")
        imported = importlib.import_module(module)
        if function:
            getattr(imported, function)()


def _watch(pid: int, create_time: float) -> None:
    """In a kernel: exit when the process that asked for it (the runner) is gone."""
    import psutil

    def alive() -> bool:
        try:
            p = psutil.Process(pid)
            return abs(p.create_time() - create_time) < 1.0 and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    while alive():
        time.sleep(1.0)
    os._exit(1)


def _child(req: dict[str, Any], control: tuple[int, int]) -> None:
    """In the forked process: become the kernel jupyter_client asked for, then exit (never returns)."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in control:
            os.close(fd)
        out = os.open(req.get("log") or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.chdir(req["cwd"])
        env = dict(req["env"])
        env.pop("JPY_PARENT_PID", None)  # ipykernel's poller would watch the zygote; _watch watches the runner
        os.environ.clear()
        os.environ.update(env)
        import importlib.util
        spec = importlib.util.find_spec("ipykernel_launcher")
        sys.argv = [(spec.origin if spec and spec.origin else "ipykernel_launcher"), *req["args"]]
        watch = req.get("watch")
        if watch:
            threading.Thread(target=_watch, args=(int(watch[0]), float(watch[1])), name="netra-nb-watch",
                             daemon=True).start()
        # Without the debugger: ipykernel imports debugpy and pydevd (~130 modules, 0.12 s of each kernel's
        # 0.19 s start) to offer debugging to a front end; nothing debugs a kernel the kit drives. A kernel
        # JupyterLab starts (the installed kernel spec) is not forked, and keeps its debugger.
        sys.modules.setdefault("debugpy", None)  # type: ignore[arg-type]
        from ipykernel import kernelapp

        kernelapp.launch_new_instance()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - say it in the kernel log, then exit
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main() -> None:
    # The requests come on stdin and the answers go on stdout: keep them on descriptors of their own,
    # and give whatever the imports print to stderr (the kernel log).
    ctl_in, ctl_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    requests = os.fdopen(ctl_in, "rb")
    # Each kernel is reaped as soon as it exits (waited for, so that its CPU time counts as this process's
    # children's, as a spawned kernel's counts as the runner's); a forked kernel sets the default back.
    signal.signal(signal.SIGCHLD, _reap)
    for name, value in THREADLESS_ENV.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
    # As ipykernel_launcher does: the working folder is not where the kit's modules come from.
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]

    def answer(obj: dict[str, Any]) -> None:
        os.write(ctl_out, (json.dumps(obj) + "\n").encode())

    answer({"ready": True, "pid": os.getpid()})
    for line in requests:
        try:
            req = json.loads(line)
            if req.get("op") == "log":
                _log_to(str(req["path"]))
                answer({"ok": True})
                continue
            _import(list(req.get("modules") or []))
            if req.get("op") != "fork":
                answer({"ok": True, "threads": native_threads()})
                continue
            threads = native_threads()
            if threads != 1:
                answer({"error": f"the zygote has {threads} threads: forking is not safe"})
                continue
            sys.stdout.flush()  # nothing the zygote buffered is written twice
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(req, (ctl_in, ctl_out))
            answer({"pid": pid})
        except Exception as exc:  # noqa: BLE001 - the caller starts its kernel the usual way
            answer({"error": f"{type(exc).__name__}: {exc}"})
    _reap()
    os._exit(0)


def _log_to(path: str) -> None:
    """Write stdout and stderr to ``path`` from now on, after what was written to stderr so far (when it is a
    file this process can read: the caller's temporary file)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.lseek(2, 0, os.SEEK_SET)
            while chunk := os.read(2, 1 << 16):
                os.write(fd, chunk)
        except OSError:  # not a file (a pipe, /dev/null) or not readable: nothing to carry over
            pass
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def _reap(*_: Any) -> None:
    """Wait for every child that has exited (the SIGCHLD handler)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# -- the caller's side -----------------------------------------------------------------------------

#: Seconds the zygote may take to import and fork (a busy machine takes several).
STARTUP_TIMEOUT_S = 120.0


class ZygoteError(RuntimeError):
    """The zygote could not fork a kernel (it is gone, refused, or did not answer)."""


class Zygote:
    """The caller's handle on a zygote process: :meth:`start` it, ``await`` :meth:`fork` (or
    :meth:`log_to`), :meth:`close` it. Requests are served one at a time, in the order they are
    made (a single worker thread talks to the process)."""

    def __init__(self, proc: Any) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.proc = proc
        self.pid: int = proc.pid
        self.broken: str | None = None
        self._ready = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netra-nb-zygote")
        import psutil
        me = psutil.Process()
        self._watch = [me.pid, me.create_time()]

    @classmethod
    def start(cls, *, cwd: Path, log: Path | None = None, modules: list[str] | tuple[str, ...] = ()) -> "Zygote | None":
        """Start a zygote now (it answers ``ready`` at once; ``modules`` are imported next, in the
        background); None where kernels are not forked (:func:`fork_supported`) or it cannot start.

        Without a ``log`` (no run folder yet) what it writes waits in a temporary file until :meth:`log_to`."""
        if not fork_supported():
            return None
        import subprocess
        import tempfile

        from .engine import compile_package
        compile_package()

        err = log.open("ab") if log is not None else tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen([sys.executable, "-Xfrozen_modules=off", "-m", "netra_nb.zygote"], cwd=str(cwd),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                    start_new_session=True)  # Ctrl-C in the terminal is the runner's to handle
        except OSError:
            return None
        finally:
            err.close()  # the zygote holds its own descriptor
        zygote = cls(proc)
        if modules:
            zygote._worker.submit(zygote._request, {"op": "import", "modules": list(modules)}, STARTUP_TIMEOUT_S)
        return zygote

    def _read(self, timeout: float) -> dict[str, Any]:
        import select

        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, timeout))
        line = self.proc.stdout.readline() if ready else b""
        if not ready:
            raise ZygoteError(f"the zygote did not answer within {timeout:.0f} s")
        if not line:
            raise ZygoteError(f"the zygote is gone (exit {self.proc.poll()})")
        return json.loads(line)

    def _request(self, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        """In the worker thread: send one request and read its answer; a zygote that fails once is not
        asked again."""
        if self.broken:
            raise ZygoteError(self.broken)
        deadline = time.monotonic() + timeout
        try:
            if not self._ready:
                self._read(timeout)  # {"ready": true}
                self._ready = True
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps(req) + "\n").encode())
            self.proc.stdin.flush()
            reply = self._read(deadline - time.monotonic())
        except (OSError, ValueError, ZygoteError) as exc:
            self.broken = f"the zygote failed: {exc}"
            self.kill()
            raise ZygoteError(self.broken) from exc
        if "error" in reply:
            raise ZygoteError(f"the zygote refused: {reply['error']}")
        return reply

    def log_to(self, path: Path) -> None:
        """From now on the zygote writes to ``path`` (a run's kernel log), after what it wrote before; the
        request is queued (answered after the imports asked for earlier), not waited for."""
        self._worker.submit(self._request, {"op": "log", "path": str(path)}, STARTUP_TIMEOUT_S)

    async def fork(self, args: list[str], *, cwd: str, env: dict[str, str], log: str | None,
                   modules: list[str] | tuple[str, ...] = (), timeout: float = STARTUP_TIMEOUT_S) -> int:
        """A new kernel process running ``ipykernel_launcher`` with ``args``; its pid."""
        import asyncio

        req = {"op": "fork", "args": list(args), "cwd": cwd, "env": env, "log": log, "modules": list(modules),
               "watch": self._watch}
        reply = await asyncio.get_running_loop().run_in_executor(self._worker, self._request, req, timeout)
        return int(reply["pid"])

    def kill(self) -> None:
        """Kill the zygote process (only it: the kernels it forked are the caller's to kill)."""
        try:
            self.proc.kill()
        except OSError:
            pass

    def close(self) -> None:
        """End the zygote: the end of its requests tells it to reap the kernels that exited and leave;
        killed if it has not within a second (safe twice)."""
        self.broken = self.broken or "the zygote was closed"
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=1)
        except Exception:  # noqa: BLE001 - busy (importing for a request never sent): killed
            self.kill()
            try:
                self.proc.wait(timeout=5)
            except Exception:  # noqa: BLE001
                pass
        self._worker.shutdown(wait=False, cancel_futures=True)  # a request in flight reads the end and fails
        if self.proc.poll() is not None and self.proc.stdout is not None:
            try:
                self.proc.stdout.close()
            except OSError:
                pass


def start_for_run() -> Zygote | None:
    """A zygote importing what the phase kernels need, for a run that has not made its folder yet:
    ``netra-nb run`` and ``demo`` start it first, before their own imports and the params, and hand it to
    :func:`netra_nb.runner.run_phases`. None where kernels are not forked."""
    return Zygote.start(cwd=Path.cwd(), modules=PHASE_MODULES)


def forked_provisioner(km: Any, zygote: Zygote, *, log: Path | None, modules: list[str] | tuple[str, ...] = ()) -> Any:
    """A jupyter_client kernel provisioner for ``km`` whose kernel is forked by ``zygote``; set as
    ``km.provisioner`` before ``km.start_kernel`` (jupyter_client then uses it instead of looking one
    up in the kernel spec). Everything but the launch is :class:`LocalProvisioner`'s: the connection
    file, the ports, the command line (whose arguments after ``ipykernel_launcher`` the kernel gets)."""
    import signal as _signal
    import uuid

    import psutil
    from jupyter_client.provisioning import LocalProvisioner

    class ForkedProvisioner(LocalProvisioner):  # type: ignore[misc]
        _proc: psutil.Process | None = None
        _exit: int | None = None

        async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
            if "ipykernel_launcher" not in cmd:
                raise ZygoteError(f"not an ipykernel command: {cmd}")
            args = cmd[cmd.index("ipykernel_launcher") + 1:]
            cwd = str(kwargs.get("cwd") or os.getcwd())
            env = {k: str(v) for k, v in (kwargs.get("env") or os.environ).items()}
            pid = await zygote.fork(args, cwd=cwd, env=env, log=str(log) if log else None, modules=modules)
            self._proc = psutil.Process(pid)
            self.pid = self.pgid = pid  # a session (and process group) of its own
            self.cwd = cwd
            return self.connection_info

        @property
        def has_process(self) -> bool:
            return self._proc is not None

        async def poll(self) -> int | None:
            if self._proc is None:
                return self._exit if self._exit is not None else 0
            try:
                if self._proc.is_running() and self._proc.status() != psutil.STATUS_ZOMBIE:
                    return None
            except psutil.Error:
                pass
            self._exit = -_signal.SIGKILL  # the zygote reaped it: the status is not known here
            return self._exit

        async def wait(self) -> int | None:
            import asyncio
            while await self.poll() is None:
                await asyncio.sleep(0.1)
            self._proc = None
            return self._exit

        async def send_signal(self, signum: int) -> None:
            if self._proc is None:
                return
            try:
                os.killpg(self.pgid, signum)
            except OSError:
                try:
                    if self._proc.is_running():
                        self._proc.send_signal(signum)
                except psutil.Error:
                    pass

        async def kill(self, restart: bool = False) -> None:
            await self.send_signal(_signal.SIGKILL)

        async def terminate(self, restart: bool = False) -> None:
            await self.send_signal(_signal.SIGTERM)

    km.kernel_id = km.kernel_id or str(uuid.uuid4())
    return ForkedProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)


if __name__ == "__main__":
    main()
