"""GET /api/v1/reports/kpi: the page's figures for the token's user, filter errors as JSON, bounded queries."""

from decimal import Decimal

import pytest

from agents.models import LLMCall
from tests.api.conftest import bearer
from tests.reports import builders as b

URL = "/api/v1/reports/kpi"
NOVEMBER = {"date_from": "2026-11-01", "date_to": "2026-11-30"}


@pytest.fixture
def ledger(pm, other_pm):
    b.call(b.mission(pm, title="Mine", filed=b.at(3)), "0.200000", b.at(3, 1), prompt=10, completion=4)
    b.call(b.mission(other_pm, title="Theirs", filed=b.at(4)), "0.700001", b.at(4, 1))


@pytest.mark.parametrize(
    ("persona", "status", "titles", "spend"),
    [
        ("anonymous", 401, None, None),
        ("revoked", 401, None, None),
        ("pm", 200, ["Mine"], "0.200000"),
        ("other_pm", 200, ["Theirs"], "0.700001"),
        ("reviewer", 200, ["Mine", "Theirs"], "0.900001"),
        ("admin", 200, ["Mine", "Theirs"], "0.900001"),
    ],
)
def test_it_reports_only_what_the_tokens_user_may_see(client, tokens, ledger, persona, status, titles, spend):
    response = client.get(URL, NOVEMBER, headers=bearer(tokens[persona]))
    assert response.status_code == status, response.content
    body = response.json()
    if status != 200:
        assert body["detail"]
        return
    assert [row["title"] for row in body["tables"]["missions"]["rows"]] == titles
    assert body["figures"]["spend_total_usd"] == spend
    assert body["filters"]["date_from"] == "2026-11-01"


def test_its_spend_tables_sum_to_the_ledger_to_the_millionth(client, tokens, ledger):
    body = client.get(URL, {**NOVEMBER, "bucket": "week"}, headers=bearer(tokens["reviewer"])).json()
    ledger_sum = sum((c.cost_usd for c in LLMCall.objects.all()), Decimal(0))
    for name in ("spend_over_time", "spend_by_model", "spend_by_project"):
        rows = body["tables"][name]["rows"]
        assert sum(Decimal(row["cost_usd"]) for row in rows) == ledger_sum == Decimal("0.900001"), name


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"date_from": "2026-12-01", "date_to": "2026-11-01"}, "non_field", "The start date is after the end date."),
        ({"date_from": "yesterday"}, "date_from", "Enter a valid date."),
        ({"bucket": "year"}, "bucket", "Select a valid choice."),
        ({"requester": "other_pm"}, "requester", "Select a valid choice."),
    ],
)
def test_it_refuses_bad_filters_with_json_errors(client, tokens, ledger, params, field, message):
    response = client.get(URL, params, headers=bearer(tokens["pm"]))
    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith("Fix the report's filters: ")
    assert message in body["errors"][field][0]


def test_it_runs_a_bounded_number_of_queries(client, tokens, pm, django_assert_max_num_queries):
    for index in range(20):
        b.call(b.mission(pm, title=f"M{index}", filed=b.at(1 + index)), "0.010000", b.at(1 + index, 1))
    with django_assert_max_num_queries(24):
        response = client.get(URL, NOVEMBER, headers=bearer(tokens["pm"]))
    assert len(response.json()["tables"]["missions"]["rows"]) == 20
