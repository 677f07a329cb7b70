"""A fleet spread over a Dask cluster (netra_nb/cluster.py): real LocalClusters of worker processes, the
reference platform on loopback, no mocks. Small fleets: the point is the spreading, not the scale
(bench/ measures that)."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from kit_helpers import ROOT, params_for, write_params
from netra_nb import orchestration as orch
from netra_nb.checks import PHASE_CHECKS, Context
from netra_nb.cli import main
from netra_nb.frames import AGENT_EVENTS
from netra_nb.params import ConfigError, cluster_spec, parse_params
from netra_nb.records import read_frames, read_records

distributed = pytest.importorskip("distributed")

SLOW_OFFSETS = (0.4, 0.8, 1.2, 1.6, 2.4)  # sessions long enough to overlap, and to be cut by a kill


def _run_checks(params, run_dir, progress=None):
    async def go():
        ctx = Context(params, phase="orchestration", run_dir=run_dir)
        ctx.progress = progress
        try:
            return {n: await ctx.run(n) for n in PHASE_CHECKS["orchestration"]}, await orch.fleet_for(ctx)
        finally:
            await ctx.aclose()
    return asyncio.run(go())


def test_forty_users_over_two_worker_processes_are_judged_as_one_fleet(platform, tmp_path):
    srv = platform(agent_event_offsets=SLOW_OFFSETS)
    # Generous deadlines and SLA: the machine may be busy; this test is about spreading, not speed.
    params = params_for(srv, timeouts={"http": 15, "ws_open": 15, "agent_run": 15}, sla={"http": 15, "agent_run": 15},
                        orchestration={"users": 40, "cluster": "local:2"})
    assert params.cluster == "local:2"
    lines = []
    recs, fleet = _run_checks(params, tmp_path, lines.append)
    assert {c: (r.status, r.category) for c, r in recs.items()} == {
        "concurrent_agent_runs": ("pass", "ok"), "user_isolation": ("pass", "ok"), "latency_percentiles": ("pass", "ok")}
    df = orch.sessions_frame(fleet)
    assert len(df) == 40 and (df["events"] == 5).all() and (df["category"] == "ok").all()
    assert df["user_id"].nunique() == 40 and (df["foreign_events"] == 0).all()
    # Two workers, twenty users each, each session's run its own.
    assert sorted(Counter(df["worker"]).values()) == [20, 20]
    assert len(fleet.shards) == 2 and len({s["pid"] for s in fleet.shards}) == 2
    assert os.getpid() not in {s["pid"] for s in fleet.shards}  # the sessions ran in other processes
    # Opened at one instant: sessions of both workers were open at the same time.
    assert fleet.peak_concurrency() > 20
    assert "on 2 Dask workers" in recs["concurrent_agent_runs"].detail
    assert any("all open at one instant" in line for line in lines)
    # e2e_endpoint: each worker called the E2E endpoint for its own users (one token each, all distinct)
    assert any("tokens in" in line and "on the workers" in line for line in lines)
    # Every session's frames came back into the one run folder, with the worker that ran it.
    frames = read_frames(tmp_path)
    assert len(frames) == sum(len(o.frames) for o in fleet.observations)
    assert {f["worker"] for f in frames} == set(df["worker"])
    worker_of_session = {}
    for f in frames:
        worker_of_session.setdefault(f["session"], set()).add(f["worker"])
    assert all(len(ws) == 1 for ws in worker_of_session.values()) and len(worker_of_session) == 40
    by_session = {}
    for f in frames:
        if f["direction"] == "received" and f["event"] in AGENT_EVENTS:
            by_session.setdefault(f["session"], []).append(f["event"])
    assert all(events == list(AGENT_EVENTS) for events in by_session.values()) and len(by_session) == 40
    total = sum(o.bytes_received for o in fleet.observations)
    assert all(r.bytes_received == total for r in recs.values())
    assert [r.check for r in read_records(tmp_path)] == list(recs)


def test_a_worker_killed_mid_fleet_gives_client_lost_rows_for_its_sessions(platform, tmp_path):
    srv = platform(agent_event_offsets=(1.0, 2.0, 3.0, 4.0, 6.0))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc, set_as_default=False) as client:
        pids = client.run(os.getpid)  # worker address → its process
        victim_addr = sorted(pids)[0]
        params = params_for(srv, timeouts={"http": 15, "ws_open": 15, "agent_run": 15}, sla={"http": 15, "agent_run": 15},
                            orchestration={"users": 12, "cluster": lc.scheduler_address})
        killed = threading.Event()

        def progress(line):
            # Once every shard is ready and the start is set, kill one worker's process while its sessions run.
            if "all open at one instant" in line and not killed.is_set():
                killed.set()
                threading.Timer(1.5, os.kill, (pids[victim_addr], signal.SIGKILL)).start()

        recs, fleet = _run_checks(params, tmp_path, progress)
    assert killed.is_set()
    df = orch.sessions_frame(fleet)
    assert len(df) == 12  # never silently missing
    lost = df[df["category"] == "client_lost"]
    ok = df[df["category"] == "ok"]
    assert len(lost) == 6 and len(ok) == 6
    assert set(lost["worker"]) == {victim_addr} and victim_addr not in set(ok["worker"])
    assert [s for s in fleet.shards if s["lost"]][0]["worker"] == victim_addr
    run = recs["concurrent_agent_runs"]
    # The kit lost those sessions, the platform did not fail them: an error, not a failure.
    assert (run.status, run.category) == ("error", "client_lost")
    assert "6/12 agent runs completed" in run.message and "client side was lost" in run.message
    lat = recs["latency_percentiles"]
    assert (lat.status, lat.category) == ("error", "client_lost")
    assert recs["user_isolation"].status == "pass"  # the sessions that ran were each their own
    # The surviving worker's frames are in the run folder; the lost ones have none to give.
    assert {f["worker"] for f in read_frames(tmp_path)} == set(ok["worker"])


def test_an_unreachable_scheduler_is_exit_2_before_anything_runs(platform, tmp_path, capsys):
    srv = platform()
    params_file = write_params(tmp_path / "p.yaml", srv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    out = tmp_path / "out"
    code = main(["run", "test", "--params", str(params_file), "--out", str(out), "--phase", "orchestration",
                 "--cluster", f"tcp://127.0.0.1:{port}", "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"tcp://127.0.0.1:{port}" in err and "cannot be reached" in err
    assert not out.exists() or not any(out.rglob("results.jsonl"))  # no run folder, no row


def test_the_cluster_address_is_checked_where_it_is_written(platform, tmp_path, capsys):
    for bad in ("local:0", "locale", "tcp://host", "http://host:8786", "tcp://:8786", "tls://sched:8786", 5):
        with pytest.raises(ConfigError, match="orchestration.cluster"):
            cluster_spec(bad, "orchestration.cluster")
    assert [cluster_spec(v) for v in ("", "local", "local:3", "tcp://10.0.0.5:8786", " tcp://sched:8786")] == [
        "", "local", "local:3", "tcp://10.0.0.5:8786", "tcp://sched:8786"]
    srv = platform()
    from kit_helpers import params_dict
    with pytest.raises(ConfigError, match="orchestration.cluster 'local:x'"):
        parse_params(params_dict(srv, orchestration={"cluster": "local:x"}), source="p.yaml")
    params_file = write_params(tmp_path / "p.yaml", srv)
    assert main(["run", "test", "--params", str(params_file), "--out", str(tmp_path / "o"), "--cluster", "mesos"]) == 2
    assert "--cluster 'mesos'" in capsys.readouterr().err


def test_without_a_cluster_dask_is_never_imported():
    code = ("import sys, asyncio\n"
            "import netra_nb.cli, netra_nb.runner, netra_nb.orchestration, netra_nb.notebook, netra_nb.report\n"
            "assert 'distributed' not in sys.modules and 'dask' not in sys.modules, 'dask imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


@pytest.mark.notebook
def test_netra_nb_run_with_cluster_local_2_runs_the_notebook_fleet_on_two_workers(platform, tmp_path):
    import pyarrow.parquet as pq
    srv = platform()
    params_file = write_params(tmp_path / "p.yaml", srv, orchestration={"users": 10},
                               timeouts={"http": 15, "ws_open": 15, "agent_run": 15}, sla={"http": 15, "agent_run": 15})
    out = tmp_path / "out"
    code = main(["run", "test", "--params", str(params_file), "--out", str(out), "--phase", "orchestration",
                 "--cluster", "local:2", "-q"])
    run_dir = next(p for p in out.rglob("results.jsonl")).parent
    recs = {r.check: r for r in read_records(run_dir)}
    assert code == 0, {c: (r.status, r.category, r.message) for c, r in recs.items()}
    assert all(r.status == "pass" for r in recs.values()) and len(recs) == 3
    assert "cluster: local:2" in (run_dir / "params.yaml").read_text()
    events = pq.read_table(run_dir / "events.parquet").to_pandas()
    assert events["worker"].nunique() == 2 and events["worker"].notna().all()
    assert events.groupby("session")["worker"].nunique().eq(1).all() and events["session"].nunique() == 10
