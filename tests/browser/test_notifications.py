"""A reviewer is told live: the badge counts up and a toast appears on whatever page is open, and the
approval queue gains the new gate (and loses a decided one) without a reload, on a 390 px phone."""

from decimal import Decimal

import pytest

from missions.models import Mission
from missions.selectors import REVIEWERS_GROUP
from reviews.gates import gate_decide, gate_open
from reviews.models import ApprovalGate
from tests.browser.support import PHONE, in_thread
from tests.conftest import PASSWORD, _user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _gate_for(pm, title: str) -> ApprovalGate:
    mission = Mission.objects.create(
        requester=pm,
        title=title,
        request="r",
        budget_usd=Decimal("1.00"),
        status=Mission.Status.AWAITING_DEPLOY_APPROVAL,
    )
    return gate_open(mission=mission, kind=ApprovalGate.Kind.DEPLOY, question=f"Deploy {title}?")


def _log_in(browser, live_url, username):
    page = browser.new_context(viewport=PHONE).new_page()
    page.goto(live_url + "/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_url + "/")  # home, the page after login
    return page


@pytest.fixture
def second_reviewer(db):
    return _user("second_reviewer", REVIEWERS_GROUP)


def test_it_tells_the_reviewer_live(pm, reviewer, other_pm, second_reviewer, live_url, browser):
    """A gate opens on the PM's mission: the reviewer's badge shows 1 and a toast names the mission, without a
    reload; on the queue page the next gate appears and a gate decided by another reviewer disappears."""
    page = _log_in(browser, live_url, "reviewer")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.wait_for_selector("#notifications[data-live=connected]", state="attached")
    assert page.locator("#gate-badge").is_hidden()

    first = in_thread(_gate_for, pm, "Payments API")
    toast = page.locator("#toasts [data-toast]")
    toast.wait_for(timeout=10_000)
    assert "Deploy approval needs your decision: Payments API" in toast.inner_text()
    page.wait_for_function("document.getElementById('gate-badge').textContent.startsWith('1')")
    assert page.locator("#toasts").get_attribute("role") == "status"
    box = toast.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box  # fits the phone's screen
    assert navigations == [], "the page reloaded instead of updating live"
    toast.get_by_role("button", name="Dismiss this notification").click()
    assert page.locator("#toasts [data-toast]").count() == 0

    page.click("#nav-approvals")
    page.wait_for_url("**/gates/")
    page.wait_for_selector("#notifications[data-live=connected]", state="attached")
    assert page.locator("#gate-queue [data-gate]").count() == 1
    navigations.clear()
    second = in_thread(_gate_for, other_pm, "Search feature")
    page.wait_for_selector(f"#queue-gate-{second.pk}", timeout=10_000)
    assert "Search feature" in page.locator(f"#queue-gate-{second.pk}").inner_text()
    page.wait_for_function("document.getElementById('gate-badge').textContent.startsWith('2')")

    in_thread(gate_decide, gate=first, by=second_reviewer, decision="approved")
    page.wait_for_selector(f"#queue-gate-{first.pk}", state="detached", timeout=10_000)
    page.wait_for_function("document.getElementById('gate-badge').textContent.startsWith('1')")
    assert page.locator("#gate-queue-empty").is_hidden()
    assert navigations == [], "the queue reloaded instead of updating live"

    page.locator(f"#queue-gate-{second.pk} textarea").fill("Ship it")
    page.locator(f"#queue-gate-{second.pk} button:has-text('Approve')").click()  # the live-added form works
    page.wait_for_selector(".flash-success")
    assert "Deploy approval: approve recorded." in page.locator(".flash").inner_text()
    assert page.locator("#gate-queue-empty").is_visible()
