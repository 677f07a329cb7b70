"""The orchestration rules over plain observations: own ids, foreign events, percentiles, the verdicts."""

import asyncio
import json
import random

import pytest

from netra_nb import orchestration as orch
from netra_nb.checks import Context
from netra_nb.frames import AGENT_EVENTS, normalize
from netra_nb.judge import Identity, Verdict, agent_run_view
from netra_nb.params import parse_params
from netra_nb.ws import WsFrame, WsObservation



@pytest.fixture
def params(unused_port):
    """Nothing listens at these URLs: these tests judge hand-made observations and must not connect
    (one that did would fail with connection_refused)."""
    return parse_params({"name": "pure", "base_url": f"http://127.0.0.1:{unused_port}",
                         "ws_url": f"ws://127.0.0.1:{unused_port}/ws", "auth": {"method": "none"},
                         "allow_test_auth": True,
                         "sla": {"http": 1.0, "agent_run": 2.0}})


def frame(t, direction, obj):
    text = json.dumps(obj)
    return WsFrame(t, direction, len(text), text, normalize(text))


def event(kind, user, run, t):
    data = {"status": "completed", "result": {"summary": "done"}, "execution_time_ms": 1000.0} \
        if kind == "agent_completed" else {}
    return frame(t, "received", {"type": kind, "run_id": run, "user_id": user, "data": data})


def observation(user="e2e-a", run="run_a", *, kinds=AGENT_EVENTS, extra=(), t_req=0.1, step=0.2, opened=0.02):
    obs = WsObservation(url="ws://x/ws", placement="header", started=100.0, open_s=opened, connect_s=0.001)
    obs.welcome = normalize(json.dumps({"type": "connection_established", "data": {"user_id": user}}))
    obs.frames.append(frame(0.03, "received", {"type": "connection_established", "data": {"user_id": user}}))
    obs.frames.append(frame(t_req, "sent", {"type": "start_agent", "payload": {"user_request": "x", "run_id": run}}))
    obs.first_client_message_t = obs.request_t = t_req
    for i, kind in enumerate(kinds):
        obs.frames.append(event(kind, user, run, t_req + step * (i + 1)))
    obs.frames.extend(extra)
    obs.frames.sort(key=lambda f: f.t)
    obs.bytes_received = sum(f.size for f in obs.frames if f.direction == "received") + 200
    obs.duration_s = obs.frames[-1].t + 0.01
    return obs


OK = Verdict("pass", "ok", "agent run completed", "")


def test_percentile_matches_linear_interpolation():
    xs = [random.Random(7).uniform(0, 10) for _ in range(101)]
    s = sorted(xs)
    assert orch.percentile(xs, 50) == pytest.approx(s[50])
    assert orch.percentile(xs, 0) == s[0] and orch.percentile(xs, 100) == s[-1]
    assert orch.percentile([1.0, 2.0], 50) == pytest.approx(1.5)
    assert orch.percentile([], 50) is None
    assert orch.percentiles([None, 3.0]) == {"p50": 3.0, "p95": 3.0, "p99": 3.0}


def test_peak_concurrency_counts_overlap_and_not_touching_ends():
    assert orch.peak_concurrency([(0, 1), (0.5, 2), (0.9, 1.5)]) == 3
    assert orch.peak_concurrency([(0, 1), (1, 2)]) == 1  # one ends as the other starts
    assert orch.peak_concurrency([]) == 0


def user(i, uid):
    return orch.UserToken(i, uid, "t", identity=Identity.of(uid))


def test_own_ids_and_timings_come_from_the_frames(params):
    obs = observation(t_req=0.5, step=0.25)
    run = orch.session_run(user(0, "e2e-a"), obs, OK, fleet_t0=99.0, sent_run_id="run_a")
    assert (run.own_user, run.own_run) == ("e2e-a", "run_a")
    assert run.first_event_s == pytest.approx(0.25) and run.completion_s == pytest.approx(1.25)
    assert run.events == 5 and run.foreign == [] and run.category == "ok"
    assert run.start_s == pytest.approx(1.0) and run.server_exec_s == pytest.approx(1.0)
    assert run.completed_at_s == pytest.approx(1.0 + 0.5 + 1.25)


def test_timing_starts_at_the_request_not_at_an_october_handshake_ack(params):
    obs = observation(t_req=0.4)
    ack = frame(0.05, "sent", {"type": "handshake_acknowledged", "thread_id": "th"})
    obs.frames.insert(1, ack)
    obs.first_client_message_t = 0.05
    run = orch.session_run(user(0, "e2e-a"), obs, OK, 100.0, "run_a")
    assert run.first_event_s == pytest.approx(0.2)


def test_server_assigned_run_id_is_ours_when_the_request_id_is_not_echoed():
    obs = observation(run="srv_run")
    for f in obs.frames:
        if f.direction == "sent":
            obs.frames[obs.frames.index(f)] = frame(f.t, "sent", {"type": "start_agent",
                                                                  "payload": {"user_request": "x", "run_id": "mine"}})
    view = agent_run_view(obs, "mine", Identity.of("e2e-a"))
    assert (view.run_id, view.how) == ("srv_run", "first agent_started after our request")
    assert len(view.ours) == 5 and not view.foreign


def test_foreign_events_are_set_aside_for_completion_and_counted_for_isolation(params):
    leak = [event("agent_started", "e2e-b", "run_b", 0.35), event("agent_completed", "e2e-b", "run_b", 0.36)]
    obs = observation(extra=leak)
    run = orch.session_run(user(0, "e2e-a"), obs, OK, 100.0, "run_a")
    assert len(run.foreign) == 2 and run.events == 5
    assert run.verdict.category == "ok"  # its own run completed; the leak is user_isolation's
    assert run.category == "cross_user_leak"
    # its times are its own events' (the foreign agent_completed came first)
    assert run.completion_s == pytest.approx(1.0)


def fleet_of(*sessions, auth_method="e2e_endpoint"):
    return orch.Fleet(len(sessions), auth_method, auth_method in ("token", "none"), "2025-01-01T00:00:00Z",
                      list(sessions), 0.1, 2.0, orch.LoopLag(10, 0.1, 1.0, 2.0), 0.2)


def judge(params, fleet, name):
    async def go():
        ctx = Context(params, phase=orch.PHASE)
        ctx.provide(orch.FLEET.key, fleet)  # judge a fleet built by hand
        try:
            return await ctx.run(name)
        finally:
            await ctx.aclose()
    return asyncio.run(go())


def sess(params, i, obs=None, verdict=OK, uid=None):
    uid = uid or f"e2e-u{i}"
    obs = obs or observation(uid, f"run_{i}")
    return orch.session_run(user(i, uid), obs, verdict, 100.0, f"run_{i}")


def test_concurrent_runs_fail_with_the_dominant_category_and_count_them_all(params):
    bad = lambda i, cat: sess(params, i, observation(f"e2e-u{i}", f"run_{i}", kinds=AGENT_EVENTS[:3]),
                              Verdict("fail", cat, f"{cat} happened", "evidence"))
    fleet = fleet_of(sess(params, 0), bad(1, "agent_incomplete"), bad(2, "agent_incomplete"), bad(3, "ws_internal_error"))
    r = judge(params, fleet, "concurrent_agent_runs")
    assert (r.status, r.category) == ("fail", "agent_incomplete")
    assert r.message.startswith("1/4 agent runs completed; 2 failed with agent_incomplete")
    assert "agent_incomplete: 2" in r.detail and "ws_internal_error: 1" in r.detail and "ok: 1" in r.detail
    assert r.events_missing == ["tool_completed", "agent_completed"]
    assert r.bytes_received == sum(s.obs.bytes_received for s in fleet.sessions)


def test_concurrent_runs_pass_only_when_every_session_completed(params):
    r = judge(params, fleet_of(sess(params, 0), sess(params, 1)), "concurrent_agent_runs")
    assert (r.status, r.category) == ("pass", "ok") and r.message.startswith("2/2 agent runs completed")
    assert r.events_seen == list(AGENT_EVENTS) and r.events_missing == []
    assert r.ws_open_s == pytest.approx(0.02)


def test_isolation_names_a_leak_between_two_of_our_users(params):
    stray = event("tool_executing", "e2e-u1", "run_1", 0.33)
    fleet = fleet_of(sess(params, 0, observation("e2e-u0", "run_0", extra=[stray])), sess(params, 1))
    r = judge(params, fleet, "user_isolation")
    assert (r.status, r.category) == ("fail", "cross_user_leak")
    assert "user 1 of this fleet" in r.message


def test_isolation_fails_when_a_token_is_welcomed_as_another_of_our_users(params):
    a = sess(params, 0, observation("e2e-u0", "run_0"), uid="e2e-u0")
    b = sess(params, 1, observation("e2e-u0", "run_1"), uid="e2e-u1")
    r = judge(params, fleet_of(a, b), "user_isolation")
    assert r.category == "cross_user_leak" and "was welcomed as user 0" in r.message


def test_isolation_fails_as_auth_ignored_when_users_are_welcomed_as_a_stranger(params):
    a = sess(params, 0, observation("e2e-same", "run_0"), uid="e2e-u0")
    b = sess(params, 1, observation("e2e-same", "run_1"), uid="e2e-u1")
    r = judge(params, fleet_of(a, b), "user_isolation")
    assert r.category == "ws_auth_ignored" and "'e2e-same'" in r.message


def test_isolation_with_one_shared_token_says_only_runs_were_told_apart(params):
    fleet = fleet_of(sess(params, 0, uid="e2e-one", obs=observation("e2e-one", "run_0")),
                     sess(params, 1, uid="e2e-one", obs=observation("e2e-one", "run_1")), auth_method="token")
    r = judge(params, fleet, "user_isolation")
    assert r.status == "pass" and "one shared token" in r.message


def test_latency_is_degraded_when_the_p95_passes_the_sla(params):
    slow = [sess(params, i, observation(f"e2e-u{i}", f"run_{i}", step=0.5 if i < 19 else 0.1)) for i in range(20)]
    r = judge(params, fleet_of(*slow), "latency_percentiles")  # completion 2.5 s > sla.agent_run 2.0
    assert (r.status, r.category) == ("degraded", "ok")
    assert "completion p95 2.500s > sla.agent_run 2.0s" in r.message
    fast = [sess(params, i) for i in range(5)]
    r = judge(params, fleet_of(*fast), "latency_percentiles")
    assert r.status == "pass" and "completion 1.000/1.000/1.000 s" in r.message


def test_nothing_to_measure_is_a_skip_not_a_pass(params):
    none = sess(params, 0, observation("e2e-u0", kinds=()), Verdict("fail", "agent_no_events", "silence", ""))
    for name in ("latency_percentiles", "user_isolation"):
        r = judge(params, fleet_of(none), name)
        assert r.status == "skip", name


def test_sessions_frame_has_one_row_per_user(params):
    df = orch.sessions_frame(fleet_of(sess(params, 0), sess(params, 1)))
    assert list(df.columns[:6]) == ["user", "open_s", "first_event_s", "completion_s", "events", "category"]
    assert df["events"].tolist() == [5, 5] and df["category"].tolist() == ["ok", "ok"]
    assert orch.sessions_frame(None).empty


def test_a_shared_token_config_needs_its_variable(params, monkeypatch):
    p = params.with_overrides(auth=params.auth.__class__(method="token", token_env="NETRA_NB_NOPE"))
    monkeypatch.delenv("NETRA_NB_NOPE", raising=False)
    r = judge_fresh(p, "concurrent_agent_runs")
    assert (r.status, r.category) == ("error", "config_error") and "NETRA_NB_NOPE" in r.message


def judge_fresh(params, name):
    async def go():
        ctx = Context(params, phase=orch.PHASE)
        try:
            return await ctx.run(name)
        finally:
            await ctx.aclose()
    return asyncio.run(go())


def test_a_big_fleet_raises_the_open_files_soft_limit():
    code = ("import resource; from netra_nb.orchestration import _fd_headroom\n"
            "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
            "print(_fd_headroom(1000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "None" and int(out[1]) >= 1256


def test_per_user_tokens_never_reach_a_record_unregistered():
    from netra_nb.redact import redact
    from netra_nb.refserver import mint_access_token
    token = mint_access_token("a-secret-that-nobody-ever-registered-anywhere", "e2e-nb-user-7@test.netrasystems.ai")
    assert orch._JWT.fullmatch(token) is not None  # a JWT: the redactor's generic pattern covers it
    assert token not in redact(f"Authorization: Bearer {token} and bare {token}")


def test_local_jwt_users_share_sign_tokens_claims_but_not_their_identity(params, monkeypatch):
    import jwt
    monkeypatch.setenv("NETRA_NB_TEST_SIGNING", "s" * 40)
    p = params.with_overrides(auth=params.auth.__class__(method="local_jwt", secret_env="NETRA_NB_TEST_SIGNING"))

    async def go():
        ctx = Context(p)
        try:
            return await orch.user_tokens(ctx, 3)
        finally:
            await ctx.aclose()
    users = asyncio.run(go())
    claims = [jwt.decode(u.token, "s" * 40, algorithms=["HS256"], audience="netra-platform") for u in users]
    assert [c["sub"] for c in claims] == ["e2e-nb-user-0", "e2e-nb-user-1", "e2e-nb-user-2"] == [u.user_id for u in users]
    assert len({c["jti"] for c in claims}) == 3 and len({c["email"] for c in claims}) == 3
    assert all(set(c) == set(claims[0]) for c in claims)


def test_a_source_runs_once_however_many_checks_judge_it(params):
    from netra_nb.checks import CHECKS, PHASE_CHECKS, Outcome, Source, check
    runs, seen = [], []

    async def make(ctx):
        runs.append(ctx)
        await asyncio.sleep(0.05)
        return object()

    work = Source("test-work", make, lambda p: 5.0)
    for name in ("judges_one_way", "judges_another_way"):
        @check(name, "test-only", "http", "test", "test", source=work)
        def judge_(value, p, name=name):
            seen.append((name, value))
            return Outcome(Verdict("skip", "ok", f"{name} judged it", ""))

    async def go():
        ctx = Context(params, phase="test-only")
        try:
            return [await ctx.run(n) for n in ("judges_one_way", "judges_another_way")]
        finally:
            await ctx.aclose()
    try:
        records = asyncio.run(go())
    finally:
        for name in ("judges_one_way", "judges_another_way"):
            CHECKS.pop(name)
        PHASE_CHECKS.pop("test-only")
    assert len(runs) == 1 and [n for n, _ in seen] == ["judges_one_way", "judges_another_way"]
    assert seen[0][1] is seen[1][1]  # one result, judged two ways
    assert [r.message for r in records] == ["judges_one_way judged it", "judges_another_way judged it"]
    assert all(r.timeout_s == 5.0 + 2.0 for r in records)  # the source's budget is each check's deadline


def test_the_fleet_is_the_one_source_of_the_three_orchestration_checks():
    from netra_nb.checks import PHASE_CHECKS, registry
    specs = [registry()[n] for n in PHASE_CHECKS[orch.PHASE]]
    assert [s.name for s in specs] == ["concurrent_agent_runs", "user_isolation", "latency_percentiles"]
    assert all(s.source is orch.FLEET for s in specs)
