"""Every fault profile is diagnosed to the categories README.md promises (the table is read from it)."""

import asyncio
import re

import pytest

from kit_helpers import ROOT, params_for
from netra_nb.checks import PHASE_CHECKS, Context
from netra_nb.diagnosis import golden_path
from netra_nb.refserver import FAULTS
from netra_nb.runner import exit_code


def readme_table() -> dict[str, dict[str, str]]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- faults:start -->")[1].split("<!-- faults:end -->")[0]
    table = {}
    for line in block.splitlines():
        m = re.match(r"\|\s*`(\w+)`\s*\|[^|]*\|[^|]*\|(.*)\|\s*$", line)
        if not m:
            continue
        expected = {}
        for part in m.group(2).split(";"):
            cat, _, checks = part.partition(":")
            for c in checks.split(","):
                if c.strip():
                    expected[c.strip()] = cat.strip().strip("`")
        table[m.group(1)] = expected
    return table


TABLE = readme_table()
PHASES = ("connectivity", "agent_pipeline")


def test_the_table_covers_every_profile_and_matches_the_platform():
    assert set(TABLE) == set(FAULTS)
    for name, expected in TABLE.items():
        assert expected == dict(FAULTS[name].expected), name


def run_phases(params):
    async def phase(name):
        ctx = Context(params, phase=name, run_id="fault")
        try:
            return [await ctx.run(n) for n in PHASE_CHECKS[name]]
        finally:
            await ctx.aclose()
    return [r for name in PHASES for r in asyncio.run(phase(name))]


@pytest.mark.parametrize("profile", sorted(TABLE))
def test_profile_is_diagnosed(profile, platform, tmp_path):
    srv = platform(faults=(profile,))
    # a profile tied to a token placement (Fault.placement) is diagnosed with the kit using that placement
    placement = {"auth": {"placement": FAULTS[profile].placement}} if FAULTS[profile].placement else {}
    records = run_phases(params_for(srv, timeouts={"http": 1.5, "ws_open": 1.5, "agent_run": 2.5}, **placement))
    expected = TABLE[profile]
    got = {r.check: r.category for r in records}
    assert set(expected) <= set(got), "every check the table names produced a record"
    for r in records:
        if r.check in expected:
            assert (r.status, r.category) == ("fail", expected[r.check]), f"{r.check}: {r.message} | {r.detail[:300]}"
            assert r.detail or r.message
        else:
            assert r.status in ("pass", "skip", "degraded"), f"{r.check} should still work: {r.category} {r.message}"
    gp = golden_path(records)
    if "agent_run" in expected:
        assert not gp.working and gp.blocked_by == expected["agent_run"], gp
        first = next(r for r in records if r.category == gp.blocked_by)
        assert gp.phase == first.phase
    else:
        assert gp.working, gp
    summary = {"counts": {s: sum(r.status == s for r in records) for s in {r.status for r in records}},
               "categories": {c: list(got.values()).count(c) for c in set(got.values())}}
    assert exit_code(tmp_path, summary) == 1


def test_evidence_of_a_1011_says_where_it_happened(platform):
    srv = platform(faults=("ws_1011_on_message",))
    [r] = [r for r in run_phases(params_for(srv, timeouts={"agent_run": 2})) if r.check == "agent_run"]
    assert r.ws_close_code == 1011 and r.ws_closed_by == "server"
    assert "after the first client message" in r.message


def test_route_missing_probes_are_in_the_detail(platform):
    srv = platform(faults=("ws_403_no_route",))
    [r] = [r for r in run_phases(params_for(srv)) if r.check == "websocket_connect"]
    assert "upgrade with no token → 403 (empty body)" in r.detail and "upgrade with a wrong token → 403" in r.detail
    assert "HTTP GET /ws → 200" in r.detail


# The orchestration phase judges every user's run like agent_run (README, under the fault table).
ORCHESTRATION = {
    "ws_1011_on_message": {"concurrent_agent_runs": "ws_internal_error"},
    "ws_403_no_route": {"concurrent_agent_runs": "ws_route_missing"},
    "agent_swallowed": {"concurrent_agent_runs": "agent_no_events"},
    "agent_cross_user": {"user_isolation": "cross_user_leak"},
    "http_503_startup": {"concurrent_agent_runs": "http_unavailable"},
    "http_e2e_401": {"concurrent_agent_runs": "http_auth_rejected"},
}


@pytest.mark.parametrize("profile", sorted(ORCHESTRATION))
def test_orchestration_under_a_profile(profile, platform):
    srv = platform(faults=(profile,))
    params = params_for(srv, timeouts={"http": 1.5, "ws_open": 1.5, "agent_run": 2.5})

    async def go():
        ctx = Context(params, phase="orchestration", run_id="fault")
        try:
            return [await ctx.run(n) for n in PHASE_CHECKS["orchestration"]]
        finally:
            await ctx.aclose()

    records = asyncio.run(go())
    expected = ORCHESTRATION[profile]
    for r in records:
        if r.check in expected:
            assert (r.status, r.category) == ("fail", expected[r.check]), r.message
        else:
            assert r.status in ("pass", "skip", "degraded"), (r.check, r.category, r.message)
