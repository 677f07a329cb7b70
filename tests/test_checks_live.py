"""Every check against the reference platform, in each era and with each token placement."""

import asyncio
import html
import os

import pytest

from kit_helpers import params_for
from netra_nb.checks import CHECKS, PHASE_CHECKS, Context
from netra_nb.frames import AGENT_EVENTS
from netra_nb.notebook import Phase, check

PIPELINE = PHASE_CHECKS["connectivity"] + PHASE_CHECKS["agent_pipeline"]


def run_checks(params, names, phase="adhoc"):
    async def go():
        ctx = Context(params, phase=phase)
        try:
            return [await ctx.run(n) for n in names]
        finally:
            await ctx.aclose()
    return asyncio.run(go())


@pytest.mark.parametrize("era", ["early", "mid", "october"])
def test_every_check_passes_on_a_healthy_platform(platform, era):
    srv = platform(era=era)
    records = run_checks(params_for(srv), PIPELINE)
    bad = [(r.check, r.category, r.message) for r in records if r.status not in ("pass", "skip")]
    assert not bad
    for r in records:
        assert r.duration_s > 0 and r.bytes_received > 0 and r.bytes_sent > 0, r.check
    run = next(r for r in records if r.check == "agent_run")
    assert run.events_seen == list(AGENT_EVENTS) and run.events_missing == []
    assert run.first_event_s is not None and 0 < run.first_event_s < run.duration_s
    assert run.server_run_id and run.ws_open_s is not None and run.connect_s is not None


@pytest.mark.parametrize("placement", ["header", "subprotocol", "query"])
@pytest.mark.parametrize("message_type", ["start_agent", "user_message"])
def test_token_placements_and_message_types(platform, placement, message_type):
    srv = platform()
    p = params_for(srv, auth={"placement": placement}, agent={"message_type": message_type})
    records = run_checks(p, ["websocket_connect", "agent_run"])
    assert [r.status for r in records] == ["pass", "pass"], [r.message for r in records]


def test_query_token_is_redacted_from_the_record(platform):
    srv = platform()
    [r] = run_checks(params_for(srv, auth={"placement": "query"}), ["websocket_connect"])
    assert "token=[REDACTED]" in r.target and "eyJ" not in r.to_dict().__repr__()


def test_local_jwt_signing(platform):
    srv = platform()
    p = params_for(srv, auth={"method": "local_jwt"})
    records = run_checks(p, ["auth_token", "websocket_connect", "agent_run"])
    assert [r.status for r in records] == ["skip", "pass", "pass"]


def test_ready_made_token_from_environment(platform, monkeypatch):
    from netra_nb.auth import sign_token
    srv = platform()
    monkeypatch.setenv("NETRA_TEST_READY_TOKEN", sign_token(os.environ["NETRA_TEST_JWT_SECRET"], "u-1", "u@x.io"))
    p = params_for(srv, auth={"method": "token", "token_env": "NETRA_TEST_READY_TOKEN"})
    assert [r.status for r in run_checks(p, ["websocket_connect", "agent_run"])] == ["pass", "pass"]


def test_missing_secret_is_a_config_error_row(platform, monkeypatch):
    srv = platform()
    monkeypatch.delenv("NETRA_TEST_MISSING", raising=False)
    p = params_for(srv, auth={"key_env": "NETRA_TEST_MISSING"})
    [r] = run_checks(p, ["auth_token"])
    assert (r.status, r.category) == ("error", "config_error")
    assert "NETRA_TEST_MISSING" in r.message


def test_slow_agent_run_is_degraded_not_failed(platform):
    srv = platform(agent_event_offsets=(0.1, 0.2, 0.3, 0.4, 0.6))
    [r] = run_checks(params_for(srv, sla={"agent_run": 0.3}), ["agent_run"])
    assert (r.status, r.category) == ("degraded", "ok")


def test_agent_run_deadline_yields_a_row(platform):
    srv = platform(agent_event_offsets=(0.1, 0.2, 0.3, 0.4, 5.0))
    [r] = run_checks(params_for(srv, timeouts={"agent_run": 1}), ["agent_run"])
    assert (r.status, r.category) == ("fail", "agent_incomplete")
    assert r.events_missing == ["agent_completed"] and 1.0 <= r.duration_s < 5


def test_unreachable_platform_gives_classified_rows(unused_port):
    from netra_nb.params import parse_params
    p = parse_params({"name": "gone", "base_url": f"http://127.0.0.1:{unused_port}",
                      "ws_url": f"ws://127.0.0.1:{unused_port}/ws", "allow_test_auth": True,
                      "auth": {"method": "local_jwt", "secret_env": "NETRA_TEST_JWT_SECRET"},
                      "timeouts": {"http": 2, "ws_open": 2, "agent_run": 2}})
    records = run_checks(p, ["health", "websocket_connect", "agent_run"])
    assert {(r.status, r.category) for r in records} == {("fail", "connection_refused")}
    assert all(r.bytes_received == 0 for r in records)


def test_interactive_check_and_phase(platform):
    srv = platform()
    result = check("agent_run", params=params_for(srv))
    r = result.record
    assert r.status == "pass"
    page = result._repr_html_()
    assert page.startswith(f"<p><b>✅ agent_run</b>: {html.escape(r.message)}</p><table>")
    assert "<th style='text-align:left'>category</th><td style='text-align:left'>ok</td>" in page
    assert {f.event for f in result.frames} >= set(AGENT_EVENTS)
    # the check's chart (the report's session chart): one marker per frame, a row per type sent and event received
    ax = _only_axes(result.chart())
    assert len(_markers(ax)) == len(result.frames)
    assert [t.get_text() for t in ax.get_yticklabels()] == _rows(result.frames)

    phase = Phase("connectivity", params=params_for(srv))
    records = phase.run(progress=False)
    assert [r.check for r in records] == list(PHASE_CHECKS["connectivity"])
    assert list(phase.table()["check"]) == [r.check for r in records]
    # the duration chart (the report's): a bar per check ending at its duration, labelled with its name; its SLA ticked
    ax = _only_axes(phase.chart())
    assert [t.get_text() for t in ax.get_yticklabels()] == [r.check for r in records]
    assert [b.get_x() + b.get_width() for b in ax.patches] == pytest.approx(
        [max(r.duration_s, ax.patches[0].get_x()) for r in records])
    sla = [ln.get_xdata()[0] for ln in ax.lines if ln.get_marker() == "|"]
    assert sla == [r.sla_s for r in records if r.sla_s] and sla
    # the frames chart of one WebSocket check: that check's frames only
    ws_frames = [f for f in phase.frames if f.check == "websocket_connect" and f.session == 0]
    ax = _only_axes(phase.frames_chart("websocket_connect"))
    assert ws_frames and len(_markers(ax)) == len(ws_frames)
    assert [t.get_text() for t in ax.get_yticklabels()] == _rows(ws_frames)


def _markers(ax):
    return [ln for ln in ax.lines if ln.get_marker() not in (None, "None", "")]


def _rows(frames):
    """The session chart's rows: what the client sent by its type, what it received by its event, the close last."""
    rows = list(dict.fromkeys("close" if f.direction == "close" else f"→ {f.type}" if f.direction == "sent"
                              else f"← {f.event}" for f in frames))
    return [r for r in rows if r != "close"] + (["close"] if "close" in rows else [])


def _only_axes(fig):
    import matplotlib.pyplot as plt
    try:
        (ax,) = fig.axes
        fig.canvas.draw()  # tick labels are filled in by drawing
        return ax
    finally:
        plt.close(fig)


def test_every_registered_check_belongs_to_a_phase():
    assert set(CHECKS) == {n for names in PHASE_CHECKS.values() for n in names}
