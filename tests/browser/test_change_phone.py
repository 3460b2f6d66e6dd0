"""On a 390 px phone the deploy gate's diff scrolls sideways inside its box; the page itself never does."""

from decimal import Decimal

import pytest

from agents.runtime.workspace import Workspace
from missions.changes import change_summary
from missions.models import Event, Mission
from reviews.models import ApprovalGate
from tests.browser.test_phone_layout import PHONE, _assert_no_sideways_scroll, _log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def gated_change(pm, tmp_path) -> Mission:
    """A deploy gate whose change has a 400-character line, a long path and a binary file.

    Made before the browser starts: Playwright's event loop forbids the ORM in the test body."""
    repo = Workspace(tmp_path / "repo")
    repo.init()
    base = repo.head()
    repo.write_file(f"src/{'deep/' * 12}module.py", f"VALUE = '{'v' * 400}'\n\ndef f():\n    return VALUE\n")
    (repo.root / "logo.png").write_bytes(b"\x89PNG\x00\x01")
    change = change_summary(repo, base, repo.commit("Long lines"))
    mission = Mission.objects.create(
        requester=pm,
        title="Long lines",
        request="Add a long constant",
        budget_usd=Decimal("5.00"),
        status=Mission.Status.AWAITING_DEPLOY_APPROVAL,
    )
    Event.objects.create(mission=mission, seq=1, kind=Event.Kind.SUBMITTED, message="Filed")
    Mission.objects.filter(pk=mission.pk).update(last_event_seq=1)
    ApprovalGate.objects.create(
        mission=mission, kind=ApprovalGate.Kind.DEPLOY, question="Deploy?", data={"change": change}
    )
    return mission


def test_the_diff_scrolls_inside_its_box_on_a_phone(gated_change, reviewer, live_url, browser):
    """The coloured diff is there and open; its long line overflows only the diff box."""
    page = _log_in(browser, live_url, "reviewer")
    page.goto(live_url + gated_change.get_absolute_url())
    _assert_no_sideways_scroll(page, "the mission page with a diff")
    code = page.locator("details.change-file[open] .diff-table-wrap").first
    assert code.locator("tr.diff-gi").count() >= 4  # the added lines, coloured
    inner, outer = code.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert inner > outer, "the long line should scroll inside the diff box"
    box = code.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    assert "binary file" in page.locator(".change-files").inner_text()


def test_a_reviewer_comments_on_a_line_by_tapping_its_number(gated_change, reviewer, live_url, browser):
    """Tapping line 3's number fills the file's comment form; the comment then shows under that line, escaped."""
    page = _log_in(browser, live_url, "reviewer")
    page.goto(live_url + gated_change.get_absolute_url())
    file = page.locator("details.change-file[open]").first
    file.locator('td.ln[data-line="3"]').click()
    form = file.locator(".line-comment-form")
    assert form.locator("input[name=line]").input_value() == "3"
    assert page.evaluate("document.activeElement.name") == "body"
    form.locator("textarea[name=body]").fill("Name this <em>better</em>")
    form.locator("button:has-text('Add comment')").click()
    page.wait_for_selector(".diff-comment .line-comment")
    comment = page.locator(".diff-comment .line-comment").first
    assert comment.inner_text() == "reviewer on line 3: Name this <em>better</em>"
    row = page.locator("tr.diff-comment").first.evaluate("e => e.previousElementSibling.id")
    assert row.endswith("-L3"), row
    _assert_no_sideways_scroll(page, "the mission page with a line comment")
