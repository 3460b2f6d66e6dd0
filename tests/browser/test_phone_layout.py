"""On a 390 px phone: no page scrolls sideways, the approval queue's buttons are on screen and work, with or
without JavaScript; a budget typed with a decimal comma is filed as typed."""

from decimal import Decimal

import pytest

from missions.models import Event, Mission, Plan, Step, TestRun
from reviews.models import ApprovalGate
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
LONG = "x" * 300  # one unbreakable "word", as pasted ids and URLs are


@pytest.fixture
def spilling_mission(pm) -> tuple[Mission, ApprovalGate]:
    """A mission with everything that used to spill: a long title and request, a plan, a test run, a gate.

    Made before the browser starts: Playwright's event loop forbids the ORM in the test body."""
    mission = Mission.objects.create(
        requester=pm,
        title=f"Build an API for user authentication {LONG[:150]}",  # titles stop at 200 characters
        request=f"Line one\nLine two\n{LONG}",
        budget_usd=Decimal("5.00"),
        status=Mission.Status.AWAITING_DEPLOY_APPROVAL,
    )
    Event.objects.create(mission=mission, seq=1, kind=Event.Kind.SUBMITTED, message=f"Filed {LONG}")
    Mission.objects.filter(pk=mission.pk).update(last_event_seq=1)
    step = Step.objects.create(
        plan=Plan.objects.create(mission=mission, version=1),
        key="core",
        title="Token service",
        role="developer",
        instructions="Build it.",
        status=Step.Status.SUCCEEDED,
        summary="**Done**\nline two",
        commit_sha="a" * 40,
    )
    TestRun.objects.create(
        mission=mission,
        step=step,
        passed=12,
        isolation="bwrap",
        tests=[{"outcome": "passed", "nodeid": f"tests/test_tokens.py::test_{LONG}"}],
        log=f"log {LONG}",
    )
    gate = ApprovalGate.objects.create(
        mission=mission,
        kind=ApprovalGate.Kind.DEPLOY,
        question=f"The tests pass (12 passed). Deploy commit {'a' * 40} to production?",
    )
    return mission, gate


def _log_in(browser, live_url, username, *, javascript=True):
    page = browser.new_context(viewport=PHONE, java_script_enabled=javascript).new_page()
    page.goto(live_url + "/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_url + "/")  # home, the page after login
    return page


def _assert_no_sideways_scroll(page, what: str) -> None:
    width, viewport = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= viewport, f"{what} is {width}px wide in a {viewport}px viewport"


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_it_fits_a_phone_and_the_queue_buttons_work(spilling_mission, reviewer, live_url, browser, javascript):
    """List, detail and queue fit 390 px; Approve and Reject are inside the viewport; Approve decides the gate."""
    mission, gate = spilling_mission
    page = _log_in(browser, live_url, "reviewer", javascript=javascript)
    _assert_no_sideways_scroll(page, "the mission list")
    page.goto(live_url + mission.get_absolute_url())
    _assert_no_sideways_scroll(page, "the mission page")

    page.goto(live_url + "/gates/")
    _assert_no_sideways_scroll(page, "the approval queue")
    form = page.locator(f"#queue-gate-{gate.pk} form.decision")
    for label in ("Approve", "Reject"):
        button = form.get_by_role("button", name=label)
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (label, box)
        assert box["height"] >= 32, f"{label} is too small to tap: {box}"
    form.get_by_role("button", name="Approve").click()
    page.wait_for_selector(".flash-success")
    assert "Deploy approval: approve recorded." in page.locator(".flash-success").inner_text()
    assert "Deploy approval on Build an API" in page.locator("li.decided").first.inner_text()
    assert "Approved by reviewer" in page.locator("li.decided").first.inner_text()
    assert page.locator(f"#queue-gate-{gate.pk}").count() == 0


def test_it_files_a_budget_typed_with_a_decimal_comma_as_typed(company, pm, live_url, browser):
    """Typing 5,00 in the browser previews and files a $5.00 mission (a number input once made it $500.00)."""
    page = _log_in(browser, live_url, "pm")
    page.goto(live_url + "/missions/new/")
    _assert_no_sideways_scroll(page, "the new mission form")
    page.fill("#id_title", "Comma budget")
    page.fill("#id_request", "Check the budget field.")
    page.fill("#id_budget_usd", "5,00")
    # The live preview (htmx) shows what will be filed while the form is edited.
    page.wait_for_selector("#preview .preview-request:has-text('Check the budget field.')")
    assert "Budget $5.00." in page.locator("#preview").inner_text()
    page.click("text=File mission")
    page.wait_for_url("**/missions/*-*/")
    assert "of $5.00 ·" in page.locator("#mission-status").inner_text()
