"""The KPI report in a browser on a phone: Chart.js draws the charts from the page's JSON, each above its table."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from agents.models import LLMCall
from missions.models import Mission
from tests.browser.support import PHONE, in_thread
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _completed_mission_with_spend(pm) -> Mission:
    now = timezone.now()
    mission = Mission.objects.create(
        requester=pm, title="Checkout v2", request="r", budget_usd=Decimal("1.00"), status=Mission.Status.COMPLETED
    )
    Mission.objects.filter(pk=mission.pk).update(created_at=now - timedelta(hours=5), finished_at=now)
    for cost, model in (("0.123456", "sim-1"), ("0.200000", "big-1")):
        call = LLMCall.objects.create(mission=mission, model_name=model, purpose="p", status="pending")
        LLMCall.objects.filter(pk=call.pk).update(status="ok", cost_usd=Decimal(cost), prompt_tokens=10)
    return mission


def test_it_draws_each_chart_above_a_table_of_its_numbers_on_a_phone(pm, live_url, browser):
    """Every canvas on the page has a Chart.js chart; the tables under them carry the ledger's figures; the page
    fits a 390 px screen."""
    in_thread(_completed_mission_with_spend, pm)
    page = browser.new_context(viewport=PHONE).new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(live_url + "/login/")
    page.fill("#id_username", "pm")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_url + "/")
    page.click("nav >> text=Reports")
    page.wait_for_selector("#chart-spend_over_time")
    page.wait_for_function("Array.from(document.querySelectorAll('canvas')).every(c => Chart.getChart(c))")
    drawn = page.evaluate(
        "Array.from(document.querySelectorAll('canvas')).map(c => "
        "[c.id, Chart.getChart(c).data.datasets.length, c.width > 0 && c.height > 0])"
    )
    names = {canvas for canvas, _, _ in drawn}
    assert {"chart-by_status", "chart-spend_over_time", "chart-spend_by_model", "chart-time_split"} <= names
    assert all(sets > 0 and sized for _, sets, sized in drawn), drawn
    by_model = page.locator("#report-spend_by_model table").inner_text()
    assert "sim-1" in by_model and "$0.123456" in by_model and "big-1" in by_model and "$0.200000" in by_model
    assert "$0.323456" in page.locator("#report-spend_over_time table").inner_text()
    assert "100.0 %" in page.locator("#report-summary table").inner_text()  # its success rate
    assert page.locator("#report-forecast .empty").inner_text() == "No data"
    assert errors == []
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
