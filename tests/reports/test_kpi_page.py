"""The KPI report page at /reports/: who sees what, its tables and CSV downloads, bad filters, query count."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.models import LLMCall
from missions.models import Mission, TestRun
from reviews.models import ApprovalGate
from tests.reports import builders as b

URL = reverse("reports:kpi")
NOVEMBER = {"date_from": "2026-11-01", "date_to": "2026-11-30"}
SPEND_TABLES = ("spend_over_time", "spend_by_agent", "spend_by_role", "spend_by_model", "spend_by_template")


def _csv(client, table: str, **params) -> list[dict]:
    response = client.get(URL, {**NOVEMBER, **params, "format": "csv", "table": table})
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="kpi-{table}-2026-11-01-2026-11-30.csv"'
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def _busy_mission(requester, index: int, template, project, agent) -> Mission:
    """A completed mission with two calls, a gate, a reviewed step and a test run."""
    day = 1 + index % 28
    mission = b.mission(
        requester, title=f"M{index}", filed=b.at(day), finished=b.at(day, 5), status=Mission.Status.COMPLETED,
        template=template, project=project,
    )  # fmt: skip
    b.call(mission, "0.010000", b.at(day, 1), prompt=10, completion=5, agent=agent)
    b.call(mission, "0.001000", b.at(day, 2), prompt=1, completion=1)
    b.gate(mission, ApprovalGate.Kind.DEPLOY, b.at(day, 3), b.at(day, 4))
    plan = b.plan(mission, tokens=10, cost="0.010000")
    b.review_round(b.step(plan, "s"), agent, 1, approved=True)
    b.test_run(mission, passed=3, purpose="delivery")
    return mission


def test_it_sends_an_anonymous_visitor_to_log_in(client):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_it_renders_every_table_with_a_csv_link_and_charts_data(client, pm):
    """Each table has its CSV link keeping the filters; the charts' data is a JSON script, no inline script."""
    mission = b.mission(pm, filed=b.at(2), finished=b.at(2, 6), status=Mission.Status.COMPLETED)
    b.call(mission, "0.123456", b.at(2, 1), prompt=10, completion=5)
    client.force_login(pm)
    response = client.get(URL, NOVEMBER)
    body = response.content.decode()
    assert response.status_code == 200
    for name in ("summary", "by_status", "time_split", "missions", *SPEND_TABLES, "spend_by_project", "forecast"):
        assert f'id="report-{name}"' in body, name
        assert f"date_from=2026-11-01&amp;date_to=2026-11-30&amp;format=csv&amp;table={name}" in body, name
    assert '<script id="kpi-charts" type="application/json">' in body
    assert 'id="chart-spend_over_time"' in body and "$0.123456" in body
    assert "vendor/chart-4.6.1.umd.min.js" in body and "js/reports.js" in body
    assert body.count("<script>") == 0  # no inline JavaScript
    assert 'href="/reports/"' in body  # the nav link


def test_it_says_no_data_and_draws_no_chart_for_an_empty_period(client, reviewer):
    client.force_login(reviewer)
    body = client.get(URL, {"date_from": "2026-09-01", "date_to": "2026-09-30"}).content.decode()
    assert body.count('<p class="empty">No data</p>') == 10  # every table but the summary
    assert "<canvas" not in body
    assert '<script id="kpi-charts" type="application/json">[]</script>' in body
    assert "No data" in body.split('id="report-summary"')[1].split("</section>")[0]  # its medians and rates


def test_it_downloads_spend_tables_that_sum_to_the_ledger(client, reviewer, pm, other_pm):
    """Every spend CSV's cost column adds up to the ledger rows made in the range, to the millionth of a dollar;
    a formula-like name is quoted (the cost report's csv_safe)."""
    dev = b.agent(title="=HYPERLINK(evil)")
    mine = b.mission(pm, filed=b.at(3), template=b.template(), project=b.project())
    theirs = b.mission(other_pm, filed=b.at(20, month=10))
    b.call(mine, "0.333333", b.at(3, 1), agent=dev)
    b.call(mine, "0.000001", b.at(30, 23))
    b.call(theirs, "1.100000", b.at(15, 12), model_name="big-1")
    b.call(theirs, "9.000000", b.at(1, 0, month=12))  # after the range
    ledger = sum(
        (c.cost_usd for c in LLMCall.objects.filter(created_at__gte=b.at(1), created_at__lt=b.at(1, month=12))),
        Decimal(0),
    )
    assert ledger == Decimal("1.433334")
    client.force_login(reviewer)
    for table in (*SPEND_TABLES, "spend_by_project"):
        rows = _csv(client, table)
        assert sum(Decimal(row["cost_usd"]) for row in rows) == ledger, table
    assert "'=HYPERLINK(evil)" in {row["name"] for row in _csv(client, "spend_by_agent")}
    missions = _csv(client, "missions")
    assert [(row["title"], row["cost_usd"]) for row in missions] == [("M", "0.333334")]
    summary = {row["metric"]: row["value"] for row in _csv(client, "summary")}
    assert summary["Spend in the range"] == "1.433334" and summary["Success rate"] == ""


def test_it_shows_each_person_only_the_missions_they_may_see(client, pm, other_pm, reviewer, admin_user):
    """A PM sees their own missions' figures, not another PM's; reviewers and admins see everyone's."""
    b.call(b.mission(pm, title="Mine", filed=b.at(3)), "0.200000", b.at(3, 1))
    b.call(b.mission(other_pm, title="Theirs", filed=b.at(4)), "0.700000", b.at(4, 1))
    expected = {pm: ["Mine"], other_pm: ["Theirs"], reviewer: ["Mine", "Theirs"], admin_user: ["Mine", "Theirs"]}
    for user, titles in expected.items():
        client.force_login(user)
        assert [row["title"] for row in _csv(client, "missions")] == titles, user
    client.force_login(pm)
    assert _csv(client, "spend_over_time")[0]["cost_usd"] == "0.200000"
    assert "Theirs" not in client.get(URL, NOVEMBER).content.decode()
    # Another PM is not offered as a requester to filter by, and naming them is a form error, not their data.
    response = client.get(URL, {**NOVEMBER, "requester": "other_pm"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"date_from": "2026-12-01", "date_to": "2026-11-01"}, "The start date is after the end date."),
        ({"date_from": "2026-13-01"}, "Enter a valid date."),
        ({"date_from": "2025-01-01", "date_to": "2026-11-30"}, "699 days is too long a range per day: at most 366."),
        ({"date_from": "2000-01-01", "date_to": "2026-11-30", "bucket": "week"}, "at most 1830."),
        ({"bucket": "year"}, "Select a valid choice. year is not one of the available choices."),
        ({"project": "no-such"}, "Select a valid choice."),
        ({"template": "<script>"}, "Select a valid choice."),
        ({"date_to": "9999-12-31"}, "Ensure this value is less than or equal to 9000-12-31."),
    ],
)
def test_it_shows_clear_errors_for_bad_filters(client, pm, params, message):
    """Bad filters render the page with the error and no figures; their CSV is a 400 saying why."""
    client.force_login(pm)
    response = client.get(URL, params)
    body = response.content.decode()
    assert response.status_code == 200
    assert message in body and 'id="report-invalid"' in body and 'id="report-summary"' not in body
    refused = client.get(URL, {**params, "format": "csv", "table": "summary"})
    assert refused.status_code == 400 and message in refused.content.decode()


def test_it_refuses_an_unknown_table(client, pm):
    client.force_login(pm)
    response = client.get(URL, {"format": "csv", "table": "passwords"})
    assert response.status_code == 400
    assert response.content.decode().startswith("No such table; choose one of: summary, by_status,")


def test_it_reads_the_same_number_of_queries_for_one_mission_or_thirty(
    client, reviewer, pm, django_assert_max_num_queries
):
    """Aggregates, not rows: the page and a CSV cost a fixed number of queries whatever the data size."""
    template, project, agent = b.template(), b.project(), b.agent()
    _busy_mission(pm, 0, template, project, agent)
    client.force_login(reviewer)
    client.get(URL, NOVEMBER)  # the session and the user's groups, once
    bound = 22
    with django_assert_max_num_queries(bound) as one:
        assert client.get(URL, NOVEMBER).status_code == 200
    for index in range(1, 30):
        _busy_mission(pm, index, template, project, agent)
    with django_assert_max_num_queries(bound) as thirty:
        body = client.get(URL, NOVEMBER).content.decode()
    assert "M29" in body
    assert len(one.captured_queries) == len(thirty.captured_queries)
    with django_assert_max_num_queries(bound):
        assert len(_csv(client, "missions")) == 30


def test_it_fills_the_date_inputs_with_the_range_it_reports(client, pm):
    """No dates given: the last 30 days to today, shown in the inputs so the page says what it covers."""
    client.force_login(pm)
    body = client.get(URL).content.decode()
    today = timezone.localdate()
    assert f'name="date_to" value="{today.isoformat()}"' in body
    assert f'name="date_from" value="{(today - timedelta(days=29)).isoformat()}"' in body


def test_it_shows_the_first_rows_of_a_long_table_and_says_the_csv_has_all(client, reviewer, pm, monkeypatch):
    monkeypatch.setattr("reports.selectors.PAGE_ROWS", 2)
    for day in (2, 3, 4):
        b.call(b.mission(pm, filed=b.at(day)), "0.010000", b.at(day, 1))
    client.force_login(reviewer)
    body = client.get(URL, NOVEMBER).content.decode()
    assert "The first 2 of 3 rows are shown; the CSV has them all." in body
    assert len(_csv(client, "spend_over_time")) == 3


def test_its_csv_keeps_a_negative_figure_a_number(client, pm):
    """An under-spent forecast is a negative number in the CSV, not text a spreadsheet would leave out of a sum
    (only text cells are guarded against formulas)."""
    mission = b.mission(pm, filed=b.at(3), finished=b.at(3, 5), status=Mission.Status.COMPLETED)
    b.plan(mission, tokens=100, cost="0.500000")
    b.call(mission, "0.300000", b.at(3, 1), prompt=50, completion=10)
    client.force_login(pm)
    (row,) = _csv(client, "forecast")
    assert row["cost_error_usd"] == "-0.200000"


def test_an_odd_regression_count_does_not_break_the_report(client, pm):
    """A comparison edited by hand (2.0, "many") counts as no regression instead of failing PostgreSQL's cast."""
    mission = b.mission(pm, filed=b.at(3))
    b.test_run(mission, passed=1, regressed=3, purpose="delivery")
    for odd in (2.0, "many", -1):
        TestRun.objects.create(mission=mission, passed=1, isolation="bwrap", comparison={"counts": {"regressed": odd}})
    client.force_login(pm)
    summary = {row["metric"]: row["value"] for row in _csv(client, "summary")}
    assert summary["Regressions"] == "3"
