"""The ``netra-nb`` command (see design.md, "CLI").

Exit codes: 0 every check passed; 1 the platform failed a check; 2 bad usage or configuration
(a clear message, nothing run); 3 the kit itself failed. ``run``, ``demo`` and ``triage`` print
the run folder as their last line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

from .params import ConfigError, check_name, load_params, params_dir
from .redact import redact, register_env_secrets, register_secret

EXIT_USAGE = 2
EXIT_KIT = 3


def _out_default() -> Path:
    return Path(os.environ.get("NETRA_NB_OUTPUTS", "outputs"))


def _phases(requested: list[str] | None) -> list[str]:
    from .runner import PHASE_NOTEBOOKS, notebooks_dir
    available = [p for p, nb in PHASE_NOTEBOOKS.items() if (notebooks_dir() / nb).is_file()]
    if not requested:
        return available
    unknown = [p for p in requested if p not in PHASE_NOTEBOOKS]
    if unknown:
        raise ConfigError(f"unknown phase(s) {', '.join(unknown)}; phases: {', '.join(PHASE_NOTEBOOKS)}")
    return list(dict.fromkeys(requested))


@contextlib.contextmanager
def _zygote() -> Iterator[Any]:
    """The run's kernel zygote, started before this process imports the checks and reads the params (its
    imports are most of the time until the first check); the run closes it, and it is killed here when no
    run began (bad params: exit 2)."""
    from .zygote import start_for_run
    zygote = start_for_run()
    try:
        yield zygote
    finally:
        if zygote is not None:
            zygote.kill()


def cmd_run(args: argparse.Namespace) -> int:
    with _zygote() as zygote:
        return _run(args, zygote)


def _run(args: argparse.Namespace, zygote: Any) -> int:
    from .auth import check_auth_config
    from .runner import Progress, run_phases

    params_file = Path(args.params) if args.params else params_dir() / f"{args.env}.yaml"
    params = load_params(args.env, path=args.params) if args.params else load_params(args.env)
    if args.params and args.env and args.env != params.name:
        params = params.with_overrides(name=check_name(args.env, "environment"))
    check_auth_config(params)
    phases = _phases(args.phase)
    cluster = _cluster(args, params, phases)
    result = run_phases(params, params_file.resolve(), Path(args.out), phases=phases, jobs=args.jobs,
                        env_name=params.name, progress=Progress(quiet=args.quiet), cluster=cluster, zygote=zygote)
    _print_end(result.summary, result.run_dir, interrupted=result.interrupted)
    return result.exit_code


def _cluster(args: argparse.Namespace, params: Any, phases: list[str]) -> str | None:
    """Where the orchestration fleet will run (--cluster, else orchestration.cluster), checked before anything
    runs: a Dask scheduler that cannot be reached is exit 2 here, not a failed fleet later. Returns the
    ``--cluster`` value, normalized (None without the option: the params file already says where)."""
    from .params import cluster_spec
    given = cluster_spec(args.cluster, "--cluster") if getattr(args, "cluster", None) else None
    cluster = given or params.cluster
    if cluster and "orchestration" in phases:
        from .cluster import probe
        where = probe(cluster)
        if not args.quiet:
            print(f"orchestration fleet on {where}", flush=True)
    return given


def _print_end(summary: dict[str, Any], run_dir: Path, *, interrupted: bool = False) -> None:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.get("counts", {}).items()))
    if interrupted:
        print(f"interrupted (Ctrl-C): {', '.join(summary.get('unfinished_phases') or []) or 'no phase'} did not "
              f"finish; the report covers the checks recorded before that")
    print(summary.get("verdict", ""))
    report = run_dir / "report.html"
    print(f"checks: {counts or 'none'}; report: {report if report.is_file() else 'not written (see kit-errors.log)'}")
    print(run_dir)


def demo_params(base: Path, url: str, ws_url: str, key_env: str) -> dict[str, Any]:
    """params/local.yaml pointed at a reference platform on ``url``, for the demo."""
    data = yaml.safe_load(base.read_text()) if base.is_file() else {}
    data.update(name="demo", base_url=url, ws_url=ws_url, auth_url=url)
    data.setdefault("auth", {}).update(method="e2e_endpoint", key_env=key_env)
    return data


def cmd_demo(args: argparse.Namespace) -> int:
    from .refserver import FAULTS, RefServer, ServerConfig
    from .runner import Progress, run_phases

    faults = tuple(f for f in (args.fault or "").split(",") if f)
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise ConfigError(f"unknown fault profile(s) {', '.join(unknown)}; `netra-nb faults` lists them")
    # Fresh secrets per demo unless the environment provides them (the leak test does).
    key = os.environ.get("NETRA_DEMO_E2E_KEY") or secrets.token_urlsafe(24)
    secret = os.environ.get("NETRA_DEMO_JWT_SECRET") or secrets.token_urlsafe(32)
    for value in (key, secret):
        register_secret(value)
    os.environ["NETRA_DEMO_E2E_KEY"] = key  # inherited by the notebooks' kernels; never written anywhere
    out = Path(args.out)
    (out / "demo").mkdir(parents=True, exist_ok=True)
    config = ServerConfig(era=args.era, faults=faults, jwt_secret=secret, e2e_key=key)
    with _zygote() as zygote, RefServer(config) as srv:
        if not args.quiet:
            print(f"reference platform ({args.era} era{', faults: ' + ','.join(faults) if faults else ''}) at "
                  f"{srv.base_url}", flush=True)
        data = demo_params(params_dir() / "local.yaml", srv.base_url, srv.ws_url, "NETRA_DEMO_E2E_KEY")
        params_file = out / "demo" / f".params-{srv.port}.yaml"
        params_file.write_text(yaml.safe_dump(data, sort_keys=False))
        try:
            params = load_params(path=params_file)
            phases = _phases(args.phase)
            cluster = _cluster(args, params, phases)
            result = run_phases(params, params_file.resolve(), out, phases=phases, jobs=args.jobs,
                                env_name="demo", extra_run_info={"fault": ",".join(faults) or None, "era": args.era},
                                progress=Progress(quiet=args.quiet), cluster=cluster, zygote=zygote)
        finally:
            params_file.unlink(missing_ok=True)
    _print_end(result.summary, result.run_dir, interrupted=result.interrupted)
    return result.exit_code


def cmd_serve(args: argparse.Namespace) -> int:
    if args.replay:
        from .replay import replay_main
        if args.fault:
            raise ConfigError("--replay serves a recording: --fault does not apply")
        return replay_main(args.replay, host=args.host, port=args.port)
    from .refserver import serve_main
    argv = ["--era", args.era, "--port", str(args.port), "--host", args.host]
    if args.fault:
        argv += ["--fault", args.fault]
    argv += ["--no-env-file"] if args.no_env_file else ["--env-file", args.env_file]
    return serve_main(argv)


def cmd_faults(args: argparse.Namespace) -> int:
    from .refserver import FAULTS
    width = max(len(n) for n in FAULTS)
    for name, fault in FAULTS.items():
        print(f"{name:<{width}}  [{fault.area}] {fault.summary}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .runner import exit_code, finalize_run
    run_dir = Path(args.run_dir)
    if not (run_dir / "results.jsonl").exists() and not (run_dir / "run.json").exists():
        raise ConfigError(f"{run_dir} is not a run folder (no results.jsonl or run.json)")
    summary = finalize_run(run_dir)
    if summary.get("unfinished_phases"):
        print(f"phases that did not finish: {', '.join(summary['unfinished_phases'])}")
    _print_end(summary, run_dir)
    return exit_code(run_dir, summary)


def cmd_triage(args: argparse.Namespace) -> int:
    from .triage import triage_main
    return triage_main([Path(f) for f in args.files], Path(args.out))


def cmd_corpus(args: argparse.Namespace) -> int:
    from .corpus import corpus_add
    entry = corpus_add(Path(args.run_dir), args.name, Path(args.root), note=args.note)
    print(entry)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from .history import history_main
    return history_main(args.env, Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netra-nb", description="Staging investigation notebooks for the Netra platform.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run phases + report for params/ENV.yaml (or --params FILE)")
    run.add_argument("env", help="environment name: params/ENV.yaml")
    run.add_argument("--phase", action="append", help="run only this phase (repeatable)")
    run.add_argument("--jobs", type=int, default=3, help="phase notebooks executed at once (default 3)")
    run.add_argument("--out", default=str(_out_default()), help="outputs root (default outputs/)")
    run.add_argument("--params", help="a params file to use instead of params/ENV.yaml")
    run.add_argument("--quiet", "-q", action="store_true", help="print only the final lines (for CI logs)")
    run.add_argument("--cluster", metavar="local[:N]|tcp://HOST:PORT",
                     help="run the orchestration fleet on a Dask cluster: N worker processes here (default 2), or "
                          "the scheduler of a cluster elsewhere (needs the [cluster] extra; overrides "
                          "orchestration.cluster)")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="start the reference platform and run everything against it")
    demo.add_argument("--fault", help="fault profile(s), comma separated (see `netra-nb faults`)")
    demo.add_argument("--era", default="mid", choices=["early", "mid", "october"])
    demo.add_argument("--phase", action="append")
    demo.add_argument("--jobs", type=int, default=3)
    demo.add_argument("--out", default=str(_out_default()))
    demo.add_argument("--quiet", "-q", action="store_true", help="print only the final lines")
    demo.add_argument("--cluster", metavar="local[:N]|tcp://HOST:PORT",
                      help="run the orchestration fleet on a Dask cluster (as for run)")
    demo.set_defaults(func=cmd_demo)

    serve = sub.add_parser("serve", help="serve the reference platform")
    serve.add_argument("--fault")
    serve.add_argument("--replay", metavar="RUN_DIR",
                       help="serve a recorded run (its wire.jsonl) back, as the platform answered it, instead")
    serve.add_argument("--era", default="mid", choices=["early", "mid", "october"])
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1")
    serve_env = serve.add_mutually_exclusive_group()
    serve_env.add_argument("--env-file", default=".netra-nb.env", metavar="PATH",
                           help="write the accepted secrets as 'export' lines here, mode 0600, removed on stop "
                                "(default .netra-nb.env)")
    serve_env.add_argument("--no-env-file", action="store_true", help="write no env file")
    serve.set_defaults(func=cmd_serve)

    faults = sub.add_parser("faults", help="list the fault profiles")
    faults.set_defaults(func=cmd_faults)

    report = sub.add_parser("report", help="rebuild report, summary and JUnit from a (partial) run folder")
    report.add_argument("run_dir")
    report.set_defaults(func=cmd_report)

    triage = sub.add_parser("triage", help="diagnose an existing pytest run from its JUnit XML")
    triage.add_argument("files", nargs="+")
    triage.add_argument("--out", default=str(_out_default()))
    triage.set_defaults(func=cmd_triage)

    corpus = sub.add_parser("corpus", help="turn a recorded run into a regression test (tests/corpus/NAME)")
    corpus_sub = corpus.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    corpus_add = corpus_sub.add_parser("add", help="copy RUN_DIR's recording and verdicts to tests/corpus/NAME")
    corpus_add.add_argument("run_dir")
    corpus_add.add_argument("name")
    corpus_add.add_argument("--root", default="tests/corpus", help="the corpus folder (default tests/corpus)")
    corpus_add.add_argument("--note", help="what the platform was (kept in the entry's run.json)")
    corpus_add.set_defaults(func=cmd_corpus)

    history = sub.add_parser("history", help="execute the history notebook")
    history.add_argument("--env")
    history.add_argument("--out", default=str(_out_default()))
    history.set_defaults(func=cmd_history)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``netra-nb`` command; ``argv`` None: the process's own command line, and the process then ends
    as soon as the command has (see :func:`exit_now`)."""
    code = _main(argv)
    if argv is None:
        exit_now(code)
    return code


def exit_now(code: int) -> None:
    """End the process with ``code`` once its output is flushed and its exit handlers ran, without tearing
    down every module it imported: the run's files are written and closed by then, and the teardown (pandas,
    pyarrow, zmq and matplotlib objects collected one by one) took 0.3-0.5 s after the last line printed."""
    import atexit
    import logging
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        getattr(atexit, "_run_exitfuncs", lambda: None)()  # what a normal exit runs, before the teardown skipped here
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code if isinstance(code, int) else 1)


def _main(argv: list[str] | None) -> int:
    register_env_secrets()
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "jobs", 1) is not None and getattr(args, "jobs", 1) < 1:
        parser.error("--jobs must be at least 1")
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"netra-nb: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("netra-nb: interrupted; the rows written so far are in the run folder", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - exit 3: the kit failed, say so plainly
        import traceback
        print(redact("".join(traceback.format_exception(exc))), file=sys.stderr)
        print(f"netra-nb: the kit itself failed: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
        return EXIT_KIT


if __name__ == "__main__":
    sys.exit(main())
