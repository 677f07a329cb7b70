"""Record and replay: every fault profile of the reference platform, recorded on the wire, replays check for check."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from kit_helpers import KEY_ENV, SECRET_ENV, params_for
from netra_nb import cli
from netra_nb.redact import known_secrets
from netra_nb.refserver import FAULTS
from netra_nb.replay import ReplayServer
from netra_nb.report import write_summary_md
from netra_nb.wire import REPLAY_HEADER, WIRE_FILE, read_wire, replay_of
from replay_helpers import recorded_verdicts, replay_and_compare, run_checks

#: Generous timeouts (a loaded machine must not time out a check that the platform answers), shorter only where a
#: profile makes the kit wait for something that never comes
TIMEOUTS = {"http": 10, "ws_open": 10, "agent_run": 10}
WAITING = {"http_health_hang": {"http": 3}, "ws_handshake_hang": {"ws_open": 3},
           "ws_ignore_pings": {"ws_open": 3, "agent_run": 3}, "ws_connect_welcome": {"ws_open": 3, "agent_run": 3},
           "ws_swallow_all": {"ws_open": 3, "agent_run": 3}, "agent_swallowed": {"agent_run": 3},
           "agent_stops_after_tool": {"agent_run": 3}}
#: SLAs far above the timeouts: a check's verdict never depends on this machine's load (no profile is about SLAs)
SLA = {"http": 30.0, "agent_run": 30.0}
KINDS = {"params", "http", "ws_upgrade", "ws_frame", "ws_ping", "ws_close"}


def record(platform, tmp_path, *faults, **overrides):
    srv = platform(faults=faults)
    placement = {FAULTS[f].placement for f in faults if FAULTS[f].placement}
    if placement:
        overrides.setdefault("auth", {"placement": placement.pop()})
    run_dir = tmp_path / "recorded"
    timeouts = {**TIMEOUTS, **{k: v for f in faults for k, v in WAITING.get(f, {}).items()}}
    records = run_checks(params_for(srv, timeouts=timeouts, sla=SLA, **overrides), run_dir)
    return run_dir, records


@pytest.mark.parametrize("profile", sorted(FAULTS))
def test_every_profile_replays_check_for_check(profile, platform, tmp_path):
    run_dir, records = record(platform, tmp_path, profile)
    assert any(r.status == "fail" for r in records), "the profile failed something in the recording"
    assert replay_and_compare(run_dir, tmp_path / "replayed") == []


def test_a_healthy_run_replays_and_the_replay_says_what_it_replays(platform, tmp_path):
    run_dir, records = record(platform, tmp_path)
    assert all(r.status in ("pass", "skip") for r in records)
    (run_dir / "run.json").write_text(json.dumps({"env": "staging", "started_at": "2026-12-06T21:00:00+00:00",
                                                  "run_id": "abc123"}))
    replayed = tmp_path / "replayed"
    assert replay_and_compare(run_dir, replayed) == []
    assert replay_of(run_dir) is None  # the recording talked to the platform itself
    info = replay_of(replayed)
    assert info == {"run": "recorded", "env": "staging", "started_at": "2026-12-06T21:00:00+00:00",
                    "run_id": "abc123"}
    # the report's first screen (HTML and summary.md) says so, and of what; the original's does not
    text = write_summary_md(replayed).read_text()
    assert "A replay" in text and "`recorded`" in text and "**staging**" in text and "2026-12-06 21:00:00 UTC" in text
    assert "A replay" not in write_summary_md(run_dir).read_text()


def test_the_wire_file_holds_every_exchange_in_its_schema_and_no_secret(platform, tmp_path):
    run_dir, records = record(platform, tmp_path)
    rows = read_wire(run_dir / WIRE_FILE)
    assert {r["kind"] for r in rows} >= {"params", "http", "ws_upgrade", "ws_frame", "ws_close"}
    for r in rows:
        assert r["kind"] in KINDS and isinstance(r["t"], float) and r["phase"] and r["check"] and r["session"]
    checks = {r.check for r in records}
    assert {r["check"] for r in rows} == checks - {"user_isolation", "latency_percentiles"}  # they judge the fleet
    token = next(r for r in rows if r["kind"] == "http" and r["path"] == "/auth/e2e/test-auth")
    assert token["req_headers"]["x-e2e-bypass-key"] == "[REDACTED]" and token["status"] == 200
    assert '"access_token":"[REDACTED]"' in token["body"].replace(" ", "")
    assert token["mint"]["access_token"]["sub"]  # who the token named (not the token)
    run = [r for r in rows if r["session"] == "agent_pipeline/agent_run/ws1"]
    assert [r["kind"] for r in run][:2] == ["ws_upgrade", "ws_frame"] and run[-1]["kind"] == "ws_close"
    assert run[0]["status"] == 101 and run[0]["caller"].startswith("jwt:")
    assert [r["dir"] for r in run if r["kind"] == "ws_frame"].count("sent") == 1
    assert (run[-1]["code"], run[-1]["by"]) == (1000, "client")
    text = (run_dir / WIRE_FILE).read_text()
    for secret in [os.environ[KEY_ENV], os.environ[SECRET_ENV], *known_secrets()]:
        if len(secret) >= 8:
            assert secret not in text
    assert "eyJ" not in text  # no token of any kind


def test_a_refusal_a_close_and_a_drop_are_recorded(platform, tmp_path):
    run_dir, _ = record(platform, tmp_path, "ws_1011_after_welcome")
    closes = [r for r in read_wire(run_dir / WIRE_FILE) if r["kind"] == "ws_close" and r["check"] == "agent_run"]
    assert closes and (closes[0]["code"], closes[0]["reason"], closes[0]["by"]) == (1011, "Internal error", "server")
    run_dir, _ = record(platform, tmp_path / "b", "ws_500_upgrade")
    up = next(r for r in read_wire(run_dir / WIRE_FILE) if r["kind"] == "ws_upgrade")
    assert up["status"] == 500 and "Internal Server Error" in up["body"]


def test_what_the_recording_lacks_is_a_404_saying_so(platform, tmp_path):
    run_dir, _ = record(platform, tmp_path)
    with ReplayServer(run_dir) as srv:
        got = httpx.get(srv.base_url + "/api/nothing-here", timeout=10)
        assert got.status_code == 404 and "not in the recording" in got.json()["detail"]
        assert json.loads(got.headers[REPLAY_HEADER])["run"] == "recorded"
        ok = httpx.get(srv.base_url + "/health", timeout=10)
        assert ok.status_code == 200 and ok.json()["status"] == "healthy"


def test_serve_replay_refuses_a_folder_without_a_recording(tmp_path, capsys):
    assert cli.main(["serve", "--replay", str(tmp_path / "nope")]) == 2
    assert str(tmp_path / "nope") in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    assert cli.main(["serve", "--replay", str(tmp_path / "run")]) == 2
    assert "wire.jsonl" in capsys.readouterr().err


def test_recorded_verdicts_are_the_results_rows(platform, tmp_path):
    run_dir, records = record(platform, tmp_path, "agent_error")
    assert recorded_verdicts(run_dir)[("agent_pipeline", "agent_run")] == ("fail", "agent_failed")


def test_an_auth_service_of_its_own_keeps_its_own_answers(platform, tmp_path):
    """The backend's /health fails while the auth service's /health (a host of its own) is up and its E2E endpoint
    is not offered: the replay must not hand one service's /health answer to the other."""
    backend = platform(faults=("http_split_health",))
    auth = platform(faults=("auth_e2e_not_configured",))
    run_dir = tmp_path / "recorded"
    records = run_checks(params_for(backend, auth_url=auth.auth_url, timeouts=TIMEOUTS, sla=SLA), run_dir,
                         ("connectivity",))
    got = {r.check: (r.status, r.category) for r in records}
    assert got["health"] == ("fail", "http_unavailable") and got["auth_token"] == ("fail", "auth_unavailable")
    rows = [r for r in read_wire(run_dir / WIRE_FILE) if r["kind"] == "http" and r["path"] == "/health"]
    assert {(r["service"], r["status"]) for r in rows} == {("backend", 503), ("auth", 200)}
    assert replay_and_compare(run_dir, tmp_path / "replayed") == []
