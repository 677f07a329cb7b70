"""The orchestration phase against the reference platform: many users at once, real sockets, no mocks."""

import json
import os
import time
from collections import Counter

import pytest

from kit_helpers import ROOT, SECRET_ENV, params_for, write_params
from netra_nb import orchestration as orch
from netra_nb.frames import AGENT_EVENTS
from netra_nb.records import read_frames, read_records
from netra_nb.refserver import mint_access_token
from netra_nb.runner import run_notebook


def run_phase(params, users=0, run_dir=None):
    phase = orch.OrchestrationPhase(params=params, users=users, run_dir=run_dir)
    records = phase.run(progress=False)
    return phase, {r.check: r for r in records}


def test_fifty_users_at_once_each_get_exactly_their_own_five_events(platform, tmp_path):
    srv = platform()
    # What is tested is who gets which events, not speed: deadlines and SLAs a loaded machine keeps (50 token
    # calls at once took over the default 3 s with a second suite running).
    params = params_for(srv, timeouts={"http": 30, "ws_open": 30, "agent_run": 60}, sla={"http": 30, "agent_run": 60})
    phase, recs = run_phase(params, users=50, run_dir=str(tmp_path))
    assert {c: (r.status, r.category) for c, r in recs.items()} == {
        "concurrent_agent_runs": ("pass", "ok"), "user_isolation": ("pass", "ok"), "latency_percentiles": ("pass", "ok")}
    df = phase.sessions()
    assert len(df) == 50 and (df["events"] == 5).all() and (df["category"] == "ok").all()
    assert df["user_id"].nunique() == 50 and (df["foreign_events"] == 0).all()
    assert phase.fleet.peak_concurrency() == 50  # they really were open at the same time
    # Every session's frames are in events.jsonl once, told apart by `session`, each with its own run.
    frames = read_frames(tmp_path)
    assert len(frames) == sum(len(o.frames) for o in phase.fleet.observations)
    assert {f["check"] for f in frames} == {"concurrent_agent_runs"}
    by_session = {}
    for f in frames:
        if f["direction"] == "received" and f["event"] in AGENT_EVENTS:
            by_session.setdefault(f["session"], []).append((f["event"], f["run"], f["user_id"]))
    assert sorted(by_session) == list(range(50))
    for events in by_session.values():
        assert [e for e, _, _ in events] == list(AGENT_EVENTS)
        assert len({(run, user) for _, run, user in events}) == 1
    assert [r.check for r in read_records(tmp_path)] == list(recs)
    total = sum(o.bytes_received for o in phase.fleet.observations)
    assert all(r.bytes_received == total for r in recs.values())


def test_times_are_measured_on_the_wire_not_taken_from_the_config(platform):
    slow, fast = (0.3, 0.35, 0.4, 0.45, 0.6), (0.02, 0.04, 0.06, 0.08, 0.1)
    seen = {}
    for offsets in (slow, fast):
        params = params_for(platform(agent_event_offsets=offsets))
        phase, recs = run_phase(params, users=6)
        df = phase.sessions()
        assert (df["category"] == "ok").all()
        # never before the server sent them ...
        assert (df["first_event_s"] >= offsets[0]).all() and (df["completion_s"] >= offsets[-1]).all()
        assert (df["first_event_s"] < df["completion_s"]).all()
        # ... and the client's time contains the server's own (execution_time_ms, measured by the server
        # from when it got the request; a millisecond for its rounding), not a configured number: each
        # session has its own
        assert (df["server_exec_s"] >= offsets[-1] - 0.001).all()
        assert (df["completion_s"] >= df["server_exec_s"] - 0.001).all()
        assert df["completion_s"].nunique() == len(df) and df["first_event_s"].nunique() == len(df)
        assert (df["completion_s"] < params.timeout_agent_run).all()  # within the configured deadline
        assert (df["open_s"] > 0).all()
        seen[offsets] = recs["latency_percentiles"].message
    assert seen[slow] != seen[fast]


def test_cross_user_events_fail_isolation_but_not_completion(platform):
    srv = platform(faults=("agent_cross_user",))
    phase, recs = run_phase(params_for(srv), users=5)
    iso = recs["user_isolation"]
    assert (iso.status, iso.category) == ("fail", "cross_user_leak")
    assert iso.message.startswith("5 of 5 sessions received") and "e2e-other-user" in iso.message
    assert recs["concurrent_agent_runs"].status == "pass"
    assert (phase.sessions()["category"] == "cross_user_leak").all()


def test_runs_that_stop_fail_with_the_dominant_category(platform):
    srv = platform(faults=("agent_stops_after_tool",))
    phase, recs = run_phase(params_for(srv, timeouts={"agent_run": 1}), users=4)
    r = recs["concurrent_agent_runs"]
    assert (r.status, r.category) == ("fail", "agent_incomplete")
    assert r.message.startswith("0/4 agent runs completed; 4 failed with agent_incomplete")
    assert "agent_incomplete: 4" in r.detail
    assert r.events_missing == ["tool_completed", "agent_completed"]
    assert recs["latency_percentiles"].status == "skip"


def test_a_rejected_bypass_key_fails_every_user_with_its_category(platform, monkeypatch):
    srv = platform()
    monkeypatch.setenv("NETRA_NB_WRONG_KEY", "not-the-key-" + os.urandom(4).hex())
    phase, recs = run_phase(params_for(srv, auth={"key_env": "NETRA_NB_WRONG_KEY"}), users=3)
    r = recs["concurrent_agent_runs"]
    assert (r.status, r.category, r.http_status) == ("fail", "http_auth_rejected", 401)
    assert recs["user_isolation"].status == "skip"
    assert phase.fleet.observations == []


def test_local_jwt_signs_one_token_per_user(platform):
    srv = platform()
    phase, recs = run_phase(params_for(srv, auth={"method": "local_jwt"}), users=4)
    assert all(r.status == "pass" for r in recs.values())
    assert sorted(phase.sessions()["user_id"]) == [f"e2e-nb-user-{i}" for i in range(4)]
    assert "one token per user (local_jwt)" in recs["user_isolation"].message


def test_one_shared_token_is_used_by_every_user_and_the_record_says_so(platform, monkeypatch):
    srv = platform()
    monkeypatch.setenv("NETRA_NB_SHARED_TOKEN", mint_access_token(os.environ[SECRET_ENV], "shared@netra.test"))
    phase, recs = run_phase(params_for(srv, auth={"method": "token", "token_env": "NETRA_NB_SHARED_TOKEN"}), users=3)
    assert all(r.status == "pass" for r in recs.values())
    assert phase.sessions()["user_id"].nunique() == 1
    assert "one shared token" in recs["user_isolation"].message


def test_users_zero_means_the_params_file(platform):
    phase, recs = run_phase(params_for(platform(), orchestration={"users": 3}), users=0)
    assert len(phase.sessions()) == 3 and recs["concurrent_agent_runs"].message.startswith("3/3")


@pytest.mark.notebook
def test_the_notebook_runs_in_a_kernel_with_its_table_and_charts(platform, tmp_path):
    srv = platform()
    params_file = write_params(tmp_path / "p.yaml", srv)
    out = tmp_path / "02.ipynb"
    parameters = {"env": "test", "run_dir": str(tmp_path), "params_file": str(params_file), "users": 8}
    result = run_notebook(ROOT / "notebooks" / "02_orchestration.ipynb", out, parameters, time.monotonic() + 180,
                          tmp_path / "kernels.log")
    assert result["status"] == "ok", result
    records = read_records(tmp_path)
    assert [(r.check, r.status) for r in records] == [
        ("concurrent_agent_runs", "pass"), ("user_isolation", "pass"), ("latency_percentiles", "pass")]
    assert Counter(f["session"] for f in read_frames(tmp_path) if f["event"] == "agent_completed") == \
        {i: 1 for i in range(8)}
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # distributions and completions over time
    assert any("8/8 agent runs completed" in "".join(o.get("text", "")) for o in outputs)
