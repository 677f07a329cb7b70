"""The history's analyses, over small hand-made frames (no files)."""

from __future__ import annotations

import math
from datetime import timedelta

import pandas as pd
import pytest
from history_helpers import T0, frame

from netra_nb import history as h


def row(df: pd.DataFrame, check: str, env: str | None = None) -> pd.Series:
    sel = df[df["check"].astype(str) == check]
    if env is not None:
        sel = sel[sel["env"].astype(str) == env]
    assert len(sel) == 1, sel
    return sel.iloc[0]


# -- flip rate -------------------------------------------------------------------------------------------

def test_flip_rate_counts_switches_over_runs_minus_one():
    df = frame({"ping": "PPFPF", "health": "PPPPP", "api": "PPPPP", "token": "PPPPP"})
    flaky = h.flaky_checks(df, last_n_runs=None)
    ping = row(flaky, "ping")
    assert ping["runs"] == 5 and ping["flips"] == 3
    assert ping["flip_rate"] == pytest.approx(3 / 4)
    assert ping["pass_rate"] == pytest.approx(3 / 5)
    assert ping["last_status"] == "fail" and ping["flaky"]
    health = row(flaky, "health")
    assert health["flips"] == 0 and health["flip_rate"] == 0 and not health["flaky"]
    assert flaky.iloc[0]["check"] == "ping"  # most flaky first


def test_a_check_that_broke_once_has_one_flip_and_is_not_flaky():
    df = frame({"agent_run": "PPPPPPPPFFFFFFFFFFFF", "a": "P" * 20, "b": "P" * 20, "c": "P" * 20})
    r = row(h.flaky_checks(df, last_n_runs=None), "agent_run")
    assert r["flips"] == 1 and r["flip_rate"] == pytest.approx(1 / 19) and not r["flaky"]


def test_flip_rate_leaves_out_outage_runs():
    # run 2 is an outage: 3 of 4 checks failed at once (> 50%)
    df = frame({"ping": "PPFPP", "health": "PPFPP", "api": "PPFPP", "token": "PPPPP"})
    flaky = h.flaky_checks(df, last_n_runs=None)
    assert row(flaky, "ping")["flips"] == 0 and row(flaky, "ping")["runs"] == 4
    with_outage = h.flaky_checks(df, last_n_runs=None, outage_share=1.0)  # nothing is an outage
    assert row(with_outage, "ping")["flips"] == 2 and row(with_outage, "ping")["flip_rate"] == pytest.approx(2 / 4)


def test_half_failing_is_not_an_outage_and_small_runs_never_are():
    df = frame({"a": "PF", "b": "PF", "c": "PP", "d": "PP"})  # run 1: 2 of 4 failed, not more than half
    assert not h.runs_table(df)["outage"].any()
    tiny = frame({"a": "PF", "b": "PF"})  # 2 checks: below min_checks
    assert not h.runs_table(tiny)["outage"].any()
    assert h.runs_table(tiny, min_checks=2)["outage"].tolist() == [False, True]


def test_outage_runs_lists_them_with_their_share():
    df = frame({"a": "PFP", "b": "PFP", "c": "PFP", "d": "PPP"})
    out = h.outage_runs(df)
    assert len(out) == 1
    assert out.iloc[0]["failing"] == 3 and out.iloc[0]["checks"] == 4 and out.iloc[0]["failing_share"] == 0.75


def test_flip_rate_uses_only_the_last_n_runs_of_each_env():
    staging = frame({"ping": "FPFPFPPPFF", "a": "P" * 10, "b": "P" * 10})  # 6 flips in all, 1 in the last 5
    production = frame({"ping": "PPPPPPPPFP", "a": "P" * 10, "b": "P" * 10}, env="production")
    flaky = h.flaky_checks(pd.concat([staging, production]), last_n_runs=5)
    s, p = row(flaky, "ping", "staging"), row(flaky, "ping", "production")
    assert (s["runs"], s["flips"]) == (5, 1)
    assert (p["runs"], p["flips"]) == (5, 2)


def test_skips_neither_flip_nor_count():
    df = frame({"ping": "PSPSFSP", "a": "PPPPPPP", "b": "PPPPPPP"})
    r = row(h.flaky_checks(df, last_n_runs=None), "ping")
    assert r["runs"] == 4 and r["flips"] == 2


def test_degraded_counts_as_passing_and_error_as_failing():
    df = frame({"ping": "PDPEP", "a": "PPPPP", "b": "PPPPP"})
    r = row(h.flaky_checks(df, last_n_runs=None), "ping")
    assert r["flips"] == 2 and r["pass_rate"] == pytest.approx(4 / 5)


def test_flip_rate_of_a_single_run_is_nan():
    r = row(h.flaky_checks(frame({"ping": "F"}), last_n_runs=None), "ping")
    assert r["runs"] == 1 and math.isnan(r["flip_rate"]) and not r["flaky"]


def test_several_records_of_a_check_in_one_run_pass_only_together():
    df = frame({"user": "PP", "x": "PP", "y": "PP"})
    dup = df[(df["check"] == "user") & (df["run_id"] == "staging0001")].assign(status="fail")
    r = row(h.flaky_checks(pd.concat([df, dup]), last_n_runs=None), "user")
    assert r["runs"] == 2 and r["flips"] == 1 and r["last_status"] == "fail"


# -- first failure / last pass -----------------------------------------------------------------------------

def test_failing_streak_names_its_first_failed_run_and_the_last_pass():
    df = frame({"agent_run": "PPFPPFFF", "health": "PPPPPPPP", "a": "PPPPPPPP"})
    streaks = h.failing_streaks(df)
    assert streaks["check"].tolist() == ["agent_run"]
    r = streaks.iloc[0]
    assert r["first_failed_run"] == "staging0005" and r["last_passed_run"] == "staging0004"
    assert r["first_failed_at"] == pd.Timestamp(T0 + 5 * timedelta(minutes=5))
    assert r["last_passed_at"] == pd.Timestamp(T0 + 4 * timedelta(minutes=5))
    assert r["failing_runs"] == 3 and r["category"] == "http_unavailable" and r["last_status"] == "fail"


def test_a_check_that_never_passed_has_no_last_pass():
    r = h.failing_streaks(frame({"ws": "FFF", "a": "PPP"})).iloc[0]
    assert r["first_failed_run"] == "staging0000" and r["last_passed_run"] is None and pd.isna(r["last_passed_at"])
    assert r["failing_runs"] == 3


def test_skips_do_not_break_a_streak_and_a_final_skip_is_not_a_pass():
    r = h.failing_streaks(frame({"ws": "PPFSFS", "a": "PPPPPP"})).iloc[0]
    assert r["first_failed_run"] == "staging0002" and r["last_passed_run"] == "staging0001" and r["failing_runs"] == 2


def test_passing_checks_have_no_streak():
    assert h.failing_streaks(frame({"ws": "FFFP", "a": "PPPP"})).empty


def test_streaks_are_per_env_newest_first():
    staging = frame({"ws": "PPPF", "a": "PPPP"})
    production = frame({"ws": "PFFF", "a": "PPPP"}, env="production")
    streaks = h.failing_streaks(pd.concat([staging, production]))
    assert streaks["env"].tolist() == ["staging", "production"]
    assert streaks["failing_runs"].tolist() == [1, 3]


# -- environments side by side ------------------------------------------------------------------------------

def test_environments_side_by_side_latest_status_and_p50():
    local = frame({"health": "PP", "agent_run": "PP"}, env="local", durations={"health": [0.01, 0.03], "agent_run": [1, 3]})
    staging = frame({"health": "PP", "agent_run": "PF"}, env="staging", durations={"health": [0.2, 0.4], "agent_run": [5, 7]})
    production = frame({"health": "PP"}, env="production", durations={"health": [0.1, 0.1]})
    cmp = h.compare_envs(pd.concat([production, staging, local]))
    assert [e for e in cmp.columns.get_level_values("env").unique() if e] == ["local", "staging", "production"]
    assert cmp.loc[("connectivity", "agent_run"), ("local", "status")] == "pass"
    assert cmp.loc[("connectivity", "agent_run"), ("staging", "status")] == "fail"
    assert cmp.loc[("connectivity", "agent_run"), ("staging", "category")] == "http_unavailable"
    assert pd.isna(cmp.loc[("connectivity", "agent_run"), ("production", "status")])  # not run there
    assert cmp.loc[("connectivity", "health"), ("staging", "p50_s")] == pytest.approx(0.3)
    assert cmp.loc[("connectivity", "agent_run"), ("staging", "pass_rate")] == pytest.approx(0.5)
    assert bool(cmp.loc[("connectivity", "agent_run"), ("", "differs")])
    assert not bool(cmp.loc[("connectivity", "health"), ("", "differs")])


def test_env_comparison_uses_each_envs_last_runs():
    staging = frame({"health": "FFFPP"}, durations={"health": [9, 9, 9, 1, 3]})
    cmp = h.compare_envs(staging, last_n_runs=2)
    assert cmp.loc[("connectivity", "health"), ("staging", "pass_rate")] == 1.0
    assert cmp.loc[("connectivity", "health"), ("staging", "p50_s")] == pytest.approx(2.0)


# -- durations over time ----------------------------------------------------------------------------------------

def test_duration_trend_per_n_runs_with_p50_p95_pass_rate_and_sla():
    durations = {"agent_run": [1, 2, 3, 4, 10, 20, 30, 40]}
    trend = h.duration_trend(frame({"agent_run": "PPPFPPPP"}, durations=durations, sla_s=15.0), every_n_runs=4)
    assert trend["runs"].tolist() == [4, 4]
    assert trend["p50_s"].tolist() == pytest.approx([2.5, 25.0])
    assert trend["p95_s"].iloc[1] == pytest.approx(pd.Series([10, 20, 30, 40]).quantile(0.95))
    assert trend["pass_rate"].tolist() == [0.75, 1.0]
    assert trend["sla_s"].tolist() == [15.0, 15.0]
    assert trend["bucket"].iloc[1] == pd.Timestamp(T0 + 4 * timedelta(minutes=5))


def test_duration_trend_per_day_over_a_long_history():
    df = frame({"health": "P" * 10}, every=timedelta(hours=12))
    trend = h.duration_trend(df)  # 4.5 days: per day
    assert trend["bucket"].dt.hour.eq(0).all() and trend["runs"].sum() == 10 and len(trend) == 5


def test_skipped_runs_stay_out_of_durations():
    trend = h.duration_trend(frame({"x": "PSP"}, durations={"x": [1, 100, 3]}), every_n_runs=10)
    assert trend["runs"].tolist() == [2] and trend["p50_s"].tolist() == [2.0]


# -- frames from anywhere, and empty ones ---------------------------------------------------------------------

def test_a_frame_of_plain_records_works_without_run_key_or_run_start():
    df = frame({"ws": "PF", "a": "PP"}).drop(columns=["run_key", "run_started_at"])
    df["started_at"] = ["2026-11-02T08:00:00Z", "2026-11-02T08:00:01Z", "2026-11-02T08:05:00Z", "2026-11-02T08:05:02Z"]
    assert h.failing_streaks(df).iloc[0]["first_failed_run"] == "staging0001"


def test_empty_history_gives_empty_results_and_charts():
    empty = h.load_history("/nonexistent")
    assert empty.empty and {"env", "check", "status"} <= set(empty.columns)
    assert h.failing_streaks(empty).empty and h.compare_envs(empty).empty and h.overview(empty).empty
    assert h.flaky_checks(empty).empty and h.duration_trend(empty).empty
    charts = {
        "no durations in the history": h.plot_duration_trend(h.duration_trend(empty)),
        "no runs in the history": h.plot_pass_rate(h.duration_trend(empty)),
        "no check switched between pass and fail": h.plot_flaky(h.flaky_checks(empty)),
        "no environments to compare": h.plot_env_comparison(h.compare_envs(empty)),
    }
    for says, fig in charts.items():  # one blank panel that says why, nothing drawn
        (ax,) = fig.axes
        assert not ax.axison and [t.get_text() for t in ax.texts] == [says]
        assert not (ax.lines or ax.patches or ax.images or ax.collections)


def test_charts_draw_from_the_analyses():
    import matplotlib
    matplotlib.use("Agg")
    df = pd.concat([frame({"ping": "PFPFPF", "agent_run": "PPPPPP"}, durations={"agent_run": [1, 2, 3, 20, 2, 1]}, sla_s=15),
                    frame({"ping": "PPPPPP", "agent_run": "PPPPPP"}, env="production")])
    trend = h.duration_trend(df, every_n_runs=2)
    fig = h.plot_duration_trend(trend)
    assert len([ax for ax in fig.axes if ax.lines]) == 4
    sla_lines = [ln for ax in fig.axes for ln in ax.lines if ln.get_label().startswith("SLA")]
    assert sorted({ln.get_ydata()[0] for ln in sla_lines}) == [2.0, 15.0]

    # pass rate: one row per env · phase/check, one column per period, the worst check on top
    labels = trend["env"] + " · " + trend["phase"] + "/" + trend["check"]
    rates = {label: g.sort_values("bucket")["pass_rate"].tolist() for label, g in trend.assign(label=labels).groupby("label")}
    ax = h.plot_pass_rate(trend).axes[0]
    (image,) = ax.images
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(rows) == sorted(rates) and rows[0] == "staging · connectivity/ping"
    assert image.get_array().tolist() == [rates[r] for r in rows]

    # flaky: a bar per check that flipped, as long as its flip rate (only staging's ping flipped)
    flaky = h.flaky_checks(df)
    ax = h.plot_flaky(flaky).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["staging · connectivity/ping"]
    assert [b.get_width() for b in ax.patches] == [row(flaky, "ping", "staging")["flip_rate"]] == [1.0]

    # env comparison: per check, one bar per environment, as long as its p50
    cmp = h.compare_envs(df)
    ax = h.plot_env_comparison(cmp).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{p}/{c}" for p, c in cmp.index]
    envs = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(envs) == ["production", "staging"]
    widths = [b.get_width() for b in ax.patches]  # env by env, check by check
    assert widths == pytest.approx([cmp.loc[idx, (env, "p50_s")] for env in envs for idx in cmp.index])


# -- series: an environment pointed at different targets ---------------------------------------------------

def test_demo_with_fault_profiles_leaves_the_healthy_series_alone():
    """`make demo` alternating healthy and fault-profile runs: each profile is its own series."""
    ok = {"health": "PPPP", "api": "PPPP", "token": "PPPP"}
    healthy = frame({"agent_run": "PPPP", "ping": "PPPP", **ok}, env="demo")
    faulty = frame({"agent_run": "FFFF", "ping": "FFFF", **ok}, env="demo", start=T0 + timedelta(minutes=2))
    df = pd.concat([healthy.assign(series="reference platform (mid era, faults: none)"),
                    faulty.assign(series="reference platform (mid era, faults: ws_1011_after_welcome)")])
    flaky = h.flaky_checks(df, last_n_runs=None)
    assert not flaky["flaky"].any() and flaky["flips"].sum() == 0
    streaks = h.failing_streaks(df)
    assert set(streaks["series"]) == {"reference platform (mid era, faults: ws_1011_after_welcome)"}
    assert sorted(streaks["check"]) == ["agent_run", "ping"]
    # Mixed into one series (as before), the same runs look flaky.
    assert h.flaky_checks(df.drop(columns="series"), last_n_runs=None)["flaky"].any()
    cmp = h.compare_envs(df)
    assert [w for w in cmp.columns.get_level_values("env").unique() if w] == [
        "demo · reference platform (mid era, faults: none)",
        "demo · reference platform (mid era, faults: ws_1011_after_welcome)"]
    assert h.overview(df)["series"].tolist() == sorted(set(df["series"]))
