"""The KPI report's figures, against fixtures computed by hand (in each test's comments)."""

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from missions.models import Mission
from reports.selectors import KpiFilters, kpi_report, percentile
from reviews.models import ApprovalGate
from tests.reports import builders as b

NOVEMBER = KpiFilters(date_from=date(2026, 11, 1), date_to=date(2026, 11, 30))


@pytest.fixture
def fleet(pm, other_pm):
    """Three missions filed in November and one in October, with a ledger, gates, reviews, tests and retries.

    A (pm, Bug fix, Shop, completed): filed 2 Nov 10:00, completed 3 Nov 10:00 (24 h); a plan gate 2 h and a
       deploy gate 1 h (3 h waiting, 21 h working); calls $0.10 (150 tokens) and $0.25 (300 tokens) by the
       Developer; forecast 500 tokens, $0.30.
    B (pm, Bug fix, completed): filed 5 Nov 00:00, completed 12:00 (12 h), no gate; one call $0.05 (100 tokens);
       forecast 100 tokens, $0.08.
    C (other_pm, no template, failed): filed 10 Nov; $1.00 (1,000 tokens); one budget pause.
    D (pm, filed 20 Oct, executing): $0.50 on 20 Oct (outside the range), $0.007 on 4 Nov (inside).
    """
    bug_fix, shop, dev = b.template(), b.project(), b.agent()
    reviewer_agent = b.agent("code-reviewer", "code_reviewer", "Code reviewer")
    a = b.mission(
        pm, title="A", filed=b.at(2, 10), finished=b.at(3, 10), status=Mission.Status.COMPLETED,
        template=bug_fix, project=shop,
    )  # fmt: skip
    b.gate(a, ApprovalGate.Kind.PLAN, b.at(2, 12), b.at(2, 14))
    b.gate(a, ApprovalGate.Kind.DEPLOY, b.at(3, 8), b.at(3, 9))
    b.call(a, "0.100000", b.at(2, 11), prompt=100, completion=50, agent=dev)
    b.call(a, "0.250000", b.at(3, 1), prompt=200, completion=100, agent=dev)
    plan_a = b.plan(a, tokens=500, cost="0.300000")
    s1 = b.step(plan_a, "s1", attempt=2, review_revisions=1)  # revised once by reviewers: no retry
    s2 = b.step(plan_a, "s2", attempt=3)  # two retries
    b.review_round(s1, reviewer_agent, 1, approved=False)
    b.review_round(s1, reviewer_agent, 2, approved=True)
    b.review_round(s2, reviewer_agent, 1, approved=True)
    b.test_run(a, passed=0, failed=10, step=s1)  # an earlier run of s1: not what decided it
    b.test_run(a, passed=8, failed=2, regressed=1, step=s1)

    bb = b.mission(
        pm, title="B", filed=b.at(5, 0), finished=b.at(5, 12), status=Mission.Status.COMPLETED, template=bug_fix
    )
    b.call(bb, "0.050000", b.at(5, 1), prompt=80, completion=20)
    plan_b = b.plan(bb, tokens=100, cost="0.080000")
    only = b.step(plan_b, "only")
    b.review_round(only, reviewer_agent, 1, approved=True)
    b.test_run(bb, passed=1, failed=1, step=only)
    b.test_run(bb, passed=4, step=only)
    b.test_run(bb, passed=1, purpose="delivery")  # the re-run before delivery counts

    c = b.mission(other_pm, title="C", filed=b.at(10), finished=b.at(11), status=Mission.Status.FAILED)
    b.call(c, "1.000000", b.at(10, 2), prompt=1000, model_name="big-1")
    b.gate(c, ApprovalGate.Kind.BUDGET, b.at(10, 3), b.at(10, 4))

    d = b.mission(pm, title="D", filed=b.at(20, month=10))
    b.call(d, "0.500000", b.at(20, 1, month=10))
    b.call(d, "0.007000", b.at(4, 5))
    return {"a": a, "b": bb, "c": c, "d": d, "bug_fix": bug_fix, "shop": shop}


def test_it_computes_every_figure_of_a_period_by_hand(fleet, reviewer):
    """A reviewer sees A, B and C filed in November (D was filed in October, but its November call is spend)."""
    f = kpi_report(user=reviewer, filters=NOVEMBER).figures
    assert (f.missions, f.finished, f.completed, f.success_rate) == (3, 3, 2, Decimal("66.7"))
    # Lead times 24 h and 12 h: median 18 h; p90 = 12 + 0.9 × 12 = 22.8 h.
    assert (f.lead_time_median_s, f.lead_time_p90_s) == (18 * 3600, 82080)
    # Waiting 3 h and 0; working 21 h and 12 h.
    assert (f.gate_wait_total_s, f.gate_wait_median_s) == (3 * 3600, 5400)
    assert (f.working_total_s, f.working_median_s) == (33 * 3600, 59400)
    # Costs 0.05, 0.35, 1.00: median 0.35; p90 = 0.35 + 0.8 × 0.65 = 0.87.
    assert (f.cost_median_usd, f.cost_p90_usd, f.cost_total_usd) == (
        Decimal("0.350000"),
        Decimal("0.870000"),
        Decimal("1.400000"),
    )
    # Tokens 100, 450, 1000: median 450; p90 = 450 + 0.8 × 550 = 890.
    assert (f.tokens_median, f.tokens_p90) == (450, 890)
    # Reviewed steps s1 (changes asked in round 1), s2 and B's: 2 of 3 first pass; one round after the first.
    assert (f.reviewed_steps, f.first_pass_approved, f.first_pass_rate) == (3, 2, Decimal("66.7"))
    assert (f.revision_rounds, f.revision_rounds_per_step) == (1, Decimal("0.33"))
    # The run that decided each step (its last) and the delivery re-run: 13 passed of 15 run; one regression.
    assert (f.final_test_runs, f.tests_passed, f.tests_run, f.test_pass_rate, f.regressions) == (
        3,
        13,
        15,
        Decimal("86.7"),
        1,
    )
    assert (f.step_retries, f.steps_retried) == (2, 1)
    assert (f.budget_pauses, f.missions_paused_for_budget) == (1, 1)
    # Calls made in November: 0.10 + 0.25 + 0.05 + 1.00 + 0.007.
    assert f.spend_total_usd == Decimal("1.407000")


def test_it_sums_spend_per_day_and_dimension_to_the_ledger(fleet, reviewer):
    """Each spend table adds up to the same November ledger; days and names are the calls' own."""
    tables = kpi_report(user=reviewer, filters=NOVEMBER).tables
    over_time = {row["bucket"]: row["cost_usd"] for row in tables["spend_over_time"].rows}
    assert over_time == {
        "2026-11-02": Decimal("0.100000"),
        "2026-11-03": Decimal("0.250000"),
        "2026-11-04": Decimal("0.007000"),
        "2026-11-05": Decimal("0.050000"),
        "2026-11-10": Decimal("1.000000"),
    }
    for name in ("agent", "role", "model", "template", "project"):
        rows = tables[f"spend_by_{name}"].rows
        assert sum(row["cost_usd"] for row in rows) == Decimal("1.407000"), name
    by_agent = {(r["bucket"], r["name"]): r["cost_usd"] for r in tables["spend_by_agent"].rows}
    assert by_agent[("2026-11-03", "Developer")] == Decimal("0.250000")
    assert by_agent[("2026-11-10", "(no agent)")] == Decimal("1.000000")
    by_template = {}
    for row in tables["spend_by_template"].rows:
        by_template[row["name"]] = by_template.get(row["name"], 0) + row["cost_usd"]
    assert by_template == {"Bug fix": Decimal("0.400000"), "(no template)": Decimal("1.007000")}
    assert {r["name"] for r in tables["spend_by_model"].rows} == {"sim-1", "big-1"}
    chart = tables["spend_over_time"].chart
    assert len(chart["labels"]) == 30 and chart["datasets"][0]["data"][1] == 0.1  # every day, quiet ones at 0


def test_it_judges_the_forecast_per_template_and_model(fleet, reviewer):
    """A and B (Bug fix, sim-1): estimated 600 tokens and $0.38, used 550 tokens and $0.40."""
    (row,) = kpi_report(user=reviewer, filters=NOVEMBER).tables["forecast"].rows
    assert row == {
        "template": "Bug fix",
        "model": "sim-1",
        "missions": 2,
        "estimated_tokens": 600,
        "actual_tokens": 550,
        "tokens_ratio": Decimal("0.92"),
        "estimated_cost_usd": Decimal("0.380000"),
        "actual_cost_usd": Decimal("0.400000"),
        "cost_error_usd": Decimal("0.020000"),
        "cost_ratio": Decimal("1.05"),
    }


def test_it_groups_spend_by_week_from_monday(fleet, reviewer):
    """Per week: 2 Nov is a Monday, so A, D's and B's calls share a week; C's is the next."""
    filters = KpiFilters(date_from=date(2026, 11, 1), date_to=date(2026, 11, 30), bucket="week")
    rows = kpi_report(user=reviewer, filters=filters).tables["spend_over_time"].rows
    assert [(r["bucket"], r["cost_usd"]) for r in rows] == [
        ("2026-11-02", Decimal("0.407000")),
        ("2026-11-09", Decimal("1.000000")),
    ]


def test_it_says_no_data_for_an_empty_period(fleet, reviewer):
    """A month with no mission and no call: counts are zero, medians and rates are None, tables empty."""
    report = kpi_report(user=reviewer, filters=KpiFilters(date_from=date(2026, 9, 1), date_to=date(2026, 9, 30)))
    f = report.figures
    assert (f.missions, f.success_rate, f.lead_time_median_s, f.cost_median_usd, f.tokens_p90) == (0, *[None] * 4)
    assert (f.first_pass_rate, f.test_pass_rate, f.spend_total_usd) == (None, None, Decimal(0))
    assert all(not t.rows for name, t in report.tables.items() if name != "summary")
    assert json.dumps(report.as_dict())  # JSON-safe however empty


def test_it_reports_a_single_mission(pm):
    """One completed mission: its median and p90 are its own figures."""
    one = b.mission(pm, filed=b.at(2), finished=b.at(2, 6), status=Mission.Status.COMPLETED)
    b.call(one, "0.123456", b.at(2, 1), prompt=10, completion=5)
    f = kpi_report(user=pm, filters=NOVEMBER).figures
    assert (f.missions, f.success_rate, f.lead_time_median_s, f.lead_time_p90_s) == (1, Decimal("100.0"), 21600, 21600)
    assert (f.cost_median_usd, f.cost_p90_usd, f.tokens_median, f.tokens_p90) == (
        Decimal("0.123456"),
        Decimal("0.123456"),
        15,
        15,
    )
    assert (f.gate_wait_total_s, f.working_total_s, f.reviewed_steps, f.first_pass_rate) == (0, 21600, 0, None)


def test_it_narrows_to_project_template_and_requester(fleet, reviewer, other_pm):
    """Each filter keeps only its missions, for mission figures and spend alike."""
    by_project = kpi_report(user=reviewer, filters=replace(NOVEMBER, project=fleet["shop"]))
    assert (by_project.figures.missions, by_project.figures.spend_total_usd) == (1, Decimal("0.350000"))
    by_template = kpi_report(user=reviewer, filters=replace(NOVEMBER, template=fleet["bug_fix"]))
    assert (by_template.figures.missions, by_template.figures.spend_total_usd) == (2, Decimal("0.400000"))
    by_requester = kpi_report(user=reviewer, filters=replace(NOVEMBER, requester=other_pm))
    assert (by_requester.figures.missions, by_requester.figures.spend_total_usd) == (1, Decimal("1.000000"))


def test_it_shows_a_pm_only_the_missions_they_may_see(fleet, pm, other_pm, reviewer, admin_user):
    """The mission list's rule (missions_visible_to): a PM their own, reviewers and admins all."""
    mine = kpi_report(user=pm, filters=NOVEMBER).figures
    assert (mine.missions, mine.spend_total_usd, mine.budget_pauses) == (2, Decimal("0.407000"), 0)
    theirs = kpi_report(user=other_pm, filters=NOVEMBER).figures
    assert (theirs.missions, theirs.spend_total_usd) == (1, Decimal("1.000000"))
    for everyone in (reviewer, admin_user):
        assert kpi_report(user=everyone, filters=NOVEMBER).figures.missions == 3


def test_it_serialises_decimals_as_strings(fleet, reviewer):
    """as_dict is JSON as it is: money as exact strings, dates as ISO text."""
    data = json.loads(json.dumps(kpi_report(user=reviewer, filters=NOVEMBER).as_dict()))
    assert data["figures"]["cost_p90_usd"] == "0.870000"
    assert data["filters"] == {
        "date_from": "2026-11-01",
        "date_to": "2026-11-30",
        "project": None,
        "template": None,
        "requester": None,
        "bucket": "day",
    }
    assert data["tables"]["forecast"]["rows"][0]["cost_error_usd"] == "0.020000"


def test_it_interpolates_percentiles_like_percentile_cont():
    """Linear interpolation between the closest ranks; None for no values."""
    assert percentile([], "0.5") is None
    assert percentile([Decimal("1")], "0.9") == 1
    assert percentile([1, 2, 3, 4], "0.5") == Decimal("2.5")
    assert percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], "0.9") == Decimal("91")
