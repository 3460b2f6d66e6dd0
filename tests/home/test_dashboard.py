"""The home dashboard: my missions live, the gates waiting for me, spend this week against last, last failures."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from agents.models import LLMCall
from home.selectors import home_dashboard, week_spend
from missions.models import Mission, Plan, Step
from missions.selectors import missions_visible_to
from reviews.gates import gate_open
from reviews.models import ApprovalGate

# A Thursday: its calendar week began on Monday 2026-11-30 at 00:00 UTC.
NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


def _mission(requester, title="Payments API", status=Mission.Status.EXECUTING, **fields) -> Mission:
    return Mission.objects.create(
        requester=requester, title=title, request="r", budget_usd=Decimal("2.00"), status=status, **fields
    )


def _spent(mission, cost: str, at: datetime) -> LLMCall:
    # Backdated while pending: PostgreSQL's ledger trigger refuses edits to a settled row.
    call = LLMCall.objects.create(mission=mission, model_name="sim-1", purpose="p", status="pending")
    LLMCall.objects.filter(pk=call.pk).update(created_at=at, status="ok", cost_usd=Decimal(cost))
    return call


def _steps(mission, version: int, statuses: list[str]) -> None:
    plan = Plan.objects.create(mission=mission, version=version)
    for index, status in enumerate(statuses):
        Step.objects.create(plan=plan, key=f"s{index}", title="S", role="dev", instructions="i", status=status)


def test_it_sums_spend_by_calendar_week_to_the_cent(pm):
    """This week counts from Monday 00:00; last week is the seven days before it, and "at this point" stops
    exactly seven days before now; calls of other people's missions and after now are not counted."""
    mine, theirs = _mission(pm), _mission(pm, title="Other")
    _spent(mine, "0.100000", datetime(2026, 11, 30, 0, 0, tzinfo=UTC))  # this week's first second
    _spent(mine, "0.020000", NOW - timedelta(minutes=1))
    _spent(mine, "0.300000", datetime(2026, 11, 29, 23, 59, tzinfo=UTC))  # last week, after same time
    _spent(mine, "0.004000", NOW - timedelta(days=7, minutes=1))  # last week, before the same time
    _spent(mine, "0.500000", datetime(2026, 11, 22, 23, 59, tzinfo=UTC))  # the week before: out
    _spent(mine, "9.000000", NOW + timedelta(minutes=1))  # the future (a clock skew): out
    spend = week_spend(missions=Mission.objects.filter(pk=mine.pk), now=NOW)
    assert spend.this_week == Decimal("0.120000")
    assert spend.last_week == Decimal("0.304000")
    assert spend.last_week_same_time == Decimal("0.004000")
    assert spend.change_percent == 2900
    assert spend.week_start == datetime(2026, 11, 30, tzinfo=UTC)
    empty = week_spend(missions=Mission.objects.filter(pk=theirs.pk), now=NOW)
    assert (empty.this_week, empty.last_week, empty.change_percent) == (0, 0, None)


def test_it_lists_my_missions_with_progress_of_their_newest_plan(pm, other_pm):
    """Unfinished missions first (last changed first), then the latest finished; steps counted on the newest plan
    only; another PM's mission is not mine."""
    old = _mission(pm, title="Old", status=Mission.Status.COMPLETED, finished_at=NOW)
    running = _mission(pm, title="Running")
    _steps(running, 1, ["succeeded", "failed"])
    _steps(running, 2, ["succeeded", "succeeded", "running", "pending"])
    _mission(other_pm, title="Not mine")
    parts = home_dashboard(user=pm, now=NOW)
    assert [m.title for m in parts["active"]] == ["Running"] and [m.title for m in parts["finished"]] == ["Old"]
    shown = parts["active"][0]
    assert (shown.steps_done, shown.steps_total, shown.progress_percent) == (2, 4, 50)
    assert (old.pk, parts["finished"][0].steps_total) == (parts["finished"][0].pk, 0)


def test_it_shows_a_reviewer_the_gates_they_may_decide_and_a_pm_where_theirs_wait(pm, reviewer):
    """A reviewer gets the approval queue's gates (never on their own missions); a PM, who decides none, sees the
    gates their own missions wait at."""
    waiting = _mission(pm, status=Mission.Status.AWAITING_DEPLOY_APPROVAL)
    gate = gate_open(mission=waiting, kind=ApprovalGate.Kind.DEPLOY, question="Ship?")
    own = _mission(reviewer, title="Reviewer's own", status=Mission.Status.AWAITING_DEPLOY_APPROVAL)
    gate_open(mission=own, kind=ApprovalGate.Kind.DEPLOY, question="Ship?")
    for_reviewer = home_dashboard(user=reviewer, now=NOW)
    assert [g.pk for g in for_reviewer["gates"]] == [gate.pk] and for_reviewer["gates_total"] == 1
    assert for_reviewer["gates_are_mine_to_decide"]
    for_pm = home_dashboard(user=pm, now=NOW)
    assert [g.pk for g in for_pm["gates"]] == [gate.pk] and not for_pm["gates_are_mine_to_decide"]


def test_it_lists_the_last_failures_with_their_reasons(client, pm, other_pm, reviewer):
    """A PM sees their own failed missions, newest first, with the reason (as text); a reviewer sees everyone's."""
    _mission(pm, title="First", status=Mission.Status.FAILED, failure_reason="old", finished_at=NOW - timedelta(1))
    _mission(pm, title="Second", status=Mission.Status.FAILED, failure_reason="<b>tests</b> failed", finished_at=NOW)
    _mission(other_pm, title="Theirs", status=Mission.Status.FAILED, failure_reason="x", finished_at=NOW)
    _mission(pm, title="Fine", status=Mission.Status.COMPLETED, finished_at=NOW)
    assert [m.title for m in home_dashboard(user=pm, now=NOW)["failures"]] == ["Second", "First"]
    assert {m.title for m in home_dashboard(user=reviewer, now=NOW)["failures"]} == {"First", "Second", "Theirs"}
    client.force_login(pm)
    body = client.get(reverse("home")).content.decode()
    assert "&lt;b&gt;tests&lt;/b&gt; failed" in body and "<b>tests</b>" not in body and "Theirs" not in body


def test_it_is_the_page_after_login_and_needs_one(client, pm):
    """Anonymous visitors go to log in; logging in lands on the dashboard, which the navigation links."""
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    response = client.post("/login/", {"username": "pm", "password": "correct horse battery staple"})
    assert response["Location"] == reverse("home") == "/"
    body = client.get("/").content.decode()
    assert '<div id="home-dashboard"' in body and '<a href="/">Home</a>' in body
    assert "You have filed no missions yet." in body and "No failed missions." in body


@pytest.mark.parametrize("missions", [1, 40])
def test_it_runs_a_fixed_number_of_queries_whatever_the_data(
    client, pm, reviewer, missions, django_assert_max_num_queries
):
    """The page's queries do not grow with missions, steps, gates or ledger rows."""
    for index in range(missions):
        mission = _mission(pm, title=f"M{index}", status=Mission.Status.AWAITING_DEPLOY_APPROVAL)
        _steps(mission, 1, ["succeeded", "pending"])
        gate_open(mission=mission, kind=ApprovalGate.Kind.DEPLOY, question="Ship?")
        _spent(mission, "0.010000", NOW)
        _mission(pm, title=f"F{index}", status=Mission.Status.FAILED, failure_reason="r", finished_at=NOW)
    for user in (pm, reviewer):
        client.force_login(user)
        with django_assert_max_num_queries(14):
            assert client.get("/").status_code == 200
    assert missions_visible_to(pm).count() == 2 * missions
