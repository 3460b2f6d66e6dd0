"""The deploy gate reviewed like a pull request: line comments, request changes → a new step → a new gate."""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import AgentSpec
from missions.models import DecisionCycle, Event, Mission, Plan, Step, Vote
from missions.services import mission_cancel, mission_submit
from reviews.gates import GateError, gate_comment_add, gate_decide, gate_open
from reviews.models import ApprovalGate, GateComment
from tests.conftest import wait_for
from tests.sandbox_support import require_bwrap

PATCH = (
    "diff --git a/shop/totals.py b/shop/totals.py\n"
    "--- a/shop/totals.py\n"
    "+++ b/shop/totals.py\n"
    "@@ -1,2 +1,3 @@\n"
    " import math\n"
    "-def total(items): return 0\n"
    "+def total(items):\n"
    "+    return sum(items)\n"
)
CHANGE = {
    "base": "a" * 40,
    "head": "b" * 40,
    "files_total": 1,
    "added": 2,
    "removed": 1,
    "files": [{"path": "shop/totals.py", "old_path": "shop/totals.py", "status": "modified", "patch": PATCH}],
    "commits": [],
}


def _deploy_gate(requester) -> ApprovalGate:
    mission = Mission.objects.create(
        requester=requester,
        title="Totals",
        request="Sum the items.",
        budget_usd=Decimal("2.00"),
        status=Mission.Status.AWAITING_DEPLOY_APPROVAL,
    )
    return gate_open(mission=mission, kind=ApprovalGate.Kind.DEPLOY, question="Ship it?", data={"change": CHANGE})


def _comment_url(gate) -> str:
    return reverse("reviews:comment", args=[gate.pk])


def test_it_shows_a_reviewers_line_comment_under_its_line(client, pm, reviewer):
    """A comment on line 3 of the new file appears right after that diff line, escaped, with its author."""
    gate = _deploy_gate(pm)
    client.force_login(reviewer)
    response = client.post(
        _comment_url(gate), {"path": "shop/totals.py", "line": "3", "body": "Use math.fsum <b>here</b>"}
    )
    assert response.status_code == 302 and response.url.endswith(f"#change-{gate.pk}")
    comment = GateComment.objects.get(gate=gate)
    assert (comment.author, comment.path, comment.line) == (reviewer, "shop/totals.py", 3)
    html = client.get(gate.mission.get_absolute_url()).content.decode()
    line = html.index("+    return sum(items)</td></tr>")
    # Searched from the diff line: the page's "now" line quotes the comment's event above the diff too.
    shown = html.index("Use math.fsum &lt;b&gt;here&lt;/b&gt;", line)
    assert shown < html.index("</table>", line)
    assert "<strong>reviewer</strong> on line 3" in html
    assert Event.objects.filter(mission=gate.mission, message__contains="commented on shop/totals.py:3").exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"path": "shop/totals.py", "line": "0", "body": "x"}, "Line 0 of shop/totals.py is not in the change"),
        ({"path": "shop/totals.py", "line": "99", "body": "x"}, "Line 99 of shop/totals.py is not in the change"),
        ({"path": "shop/totals.py", "line": "two", "body": "x"}, "Line 'two' is not a number."),
        ({"path": "../etc/passwd", "line": "1", "body": "x"}, "Choose a file of this change"),
        ({"path": "shop/totals.py", "line": "1", "body": "   "}, "Write the comment first."),
        ({"path": "shop/totals.py", "line": "1", "body": "c" * 2001}, "the limit is 2,000"),
    ],
    ids=["line-zero", "beyond-the-diff", "not-a-number", "not-a-file-of-the-change", "empty", "too-long"],
)
def test_it_refuses_a_comment_that_points_nowhere(pm, reviewer, fields, message):
    """A comment must point at a line (of the changed file) that the diff shows, and say something."""
    gate = _deploy_gate(pm)
    with pytest.raises(GateError, match=message):
        gate_comment_add(gate=gate, by=reviewer, **fields)
    assert not GateComment.objects.exists()


def test_it_takes_a_whole_file_comment_without_a_line(pm, reviewer):
    """Leaving the line empty comments on the file as a whole."""
    gate = _deploy_gate(pm)
    comment = gate_comment_add(gate=gate, by=reviewer, path="shop/totals.py", line="", body="Needs a docstring.")
    assert comment.line is None and comment.anchor == "shop/totals.py"


def test_it_lets_only_a_deciding_reviewer_comment(client, pm, reviewer, outsider):
    """The requester (even with a crafted POST), a PM who cannot see it, and anyone after a cancel are refused."""
    gate = _deploy_gate(pm)
    fields = {"path": "shop/totals.py", "line": "3", "body": "Mine is fine"}
    client.force_login(pm)
    client.post(_comment_url(gate), fields)
    client.force_login(outsider)
    assert client.post(_comment_url(gate), fields).status_code == 404
    assert not GateComment.objects.exists()
    mission_cancel(mission=gate.mission, by=pm)
    with pytest.raises(GateError, match="while it is open"):
        gate_comment_add(gate=gate, by=reviewer, **fields)
    client.force_login(reviewer)
    assert client.get(reverse("reviews:comment", args=[gate.pk])).status_code == 405
    assert not GateComment.objects.exists()


def test_it_needs_a_comment_to_reject_or_request_changes(pm, reviewer):
    """ "No" and "change this" without a reason are refused; the gate stays pending."""
    gate = _deploy_gate(pm)
    for decision in ("rejected", "revision_requested"):
        with pytest.raises(GateError, match="needs a comment"):
            gate_decide(gate=gate, by=reviewer, decision=decision, comment=" ")
    gate.refresh_from_db()
    assert gate.is_pending


def test_it_refuses_to_revise_a_step_that_does_not_exist(pm, reviewer):
    """A crafted step name is refused with a clear message before anything is decided."""
    gate = _deploy_gate(pm)
    with pytest.raises(GateError, match="There is no step 'nope' to revise"):
        gate_decide(gate=gate, by=reviewer, decision="revision_requested", comment="More", step_key="nope")
    gate.refresh_from_db()
    assert gate.is_pending


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_sends_requested_changes_back_as_a_step_and_asks_again(company, pm, reviewer, sim, celery_worker):
    """Request changes on a deploy → a new step by the named step's agent with the comments → a new deploy gate."""
    require_bwrap()
    mission = mission_submit(
        requester=pm, title="Greeting", request="Add a greeting function with tests.", budget_usd=Decimal("2.00")
    )

    def pending_deploy():
        return ApprovalGate.objects.filter(
            mission=mission, kind=ApprovalGate.Kind.DEPLOY, status=ApprovalGate.Status.PENDING
        ).first()

    first = wait_for(pending_deploy, timeout=120, message="first deploy gate")
    steps = list(Step.objects.filter(plan__mission=mission, kind=Step.Kind.CODEGEN))
    named = steps[0]
    page = Client()
    page.force_login(reviewer)
    html = page.get(mission.get_absolute_url()).content.decode()
    change = html[html.index(f'id="change-{first.pk}"') :]
    assert "<h3>Peer reviews</h3>" in change and "Code Reviewer <span" in change  # the agents' verdicts
    assert f"Code Reviewer on step {named.key} (approve)</strong> on line" in change  # their comments, by line
    change = first.data["change"]
    path = change["files"][0]["path"]
    gate_comment_add(gate=first, by=reviewer, path=path, line="", body="Add a docstring to this module.")
    gate_decide(
        gate=first, by=reviewer, decision="revision_requested", comment="Please document it.", step_key=named.key
    )

    second = wait_for(pending_deploy, timeout=120, message="second deploy gate")
    mission.refresh_from_db()
    assert second.pk != first.pk and mission.status == Mission.Status.AWAITING_DEPLOY_APPROVAL
    revision = Step.objects.get(plan__mission=mission, key=f"{named.key}-rev1")
    assert revision.status == Step.Status.SUCCEEDED and revision.agent_id == named.agent_id
    assert "Please document it." in revision.instructions
    assert f"- {path} — Add a docstring to this module." in revision.instructions
    assert revision.depends_on == [s.key for s in Step.objects.filter(plan__mission=mission).exclude(pk=revision.pk)]
    first.refresh_from_db()
    assert first.status == ApprovalGate.Status.REVISION_REQUESTED and first.decided_by == reviewer
    gate_decide(gate=second, by=reviewer, decision="approved")
    wait_for(lambda: Mission.objects.get(pk=mission.pk).is_finished, timeout=60, message="deploy")
    assert Mission.objects.get(pk=mission.pk).status == Mission.Status.COMPLETED


def _plan(mission, version, steps, cycle):
    plan = Plan.objects.create(mission=mission, version=version, summary=f"Version {version}", cycle=cycle)
    for order, (key, title, depends) in enumerate(steps):
        Step.objects.create(
            plan=plan,
            key=key,
            order=order,
            title=title,
            role="developer",
            instructions=f"Do {key}.",
            depends_on=depends,
        )
    return plan


def test_it_shows_the_plan_its_votes_per_round_and_what_changed(client, company, pm, reviewer):
    """A plan gate after a revision lists the steps with their dependencies, each round's votes, and the diff."""
    mission = Mission.objects.create(
        requester=pm, title="Plan", request="Plan it.", budget_usd=Decimal("2"), status=Mission.Status.PLANNING
    )
    ceo, cto = AgentSpec.objects.filter(is_c_suite=True).order_by("name")[:2]
    first = DecisionCycle.objects.create(mission=mission, number=1, kind=DecisionCycle.Kind.PLANNING)
    second = DecisionCycle.objects.create(mission=mission, number=2, kind=DecisionCycle.Kind.PLANNING)
    _plan(mission, 1, [("api", "Build the API", []), ("docs", "Write docs", ["api"])], first)
    _plan(mission, 2, [("api", "Build the API with rate limits", []), ("tests", "Test the <API>", ["api"])], second)
    Vote.objects.create(cycle=second, round=1, agent=ceo, stance=Vote.Stance.OBJECT, rationale="Needs limits")
    Vote.objects.create(cycle=second, round=2, agent=cto, stance=Vote.Stance.APPROVE, rationale="Limits added")
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.AWAITING_PLAN_APPROVAL)
    gate_open(mission=mission, kind=ApprovalGate.Kind.PLAN, question="Approve v2?", data={"plan": 2})
    client.force_login(reviewer)

    html = client.get(mission.get_absolute_url()).content.decode()
    review = html[html.index('class="plan-review"') :]
    assert "<h3>Plan v2: Version 2</h3>" in review and "Changed since v1" in review
    assert '<span class="badge file-added">added</span> <strong>tests</strong> Test the &lt;API&gt;' in review
    assert '<span class="badge file-deleted">removed</span> <strong>docs</strong> Write docs' in review
    assert '<span class="badge file-modified">changed</span> <strong>api</strong>: title' in review
    assert review.index("<strong>Round 1</strong>") < review.index("Needs limits") < review.index("Round 2")
    assert review.index("Round 2") < review.index("Limits added")
    table = review[review.index('class="steps plan-steps"') :]
    row = table[table.index("<strong>tests</strong> Test the") :]
    assert "<td>api</td>" in row[: row.index("</tr>")]


def test_it_offers_no_change_request_on_an_unmerged_push_gate(pm, reviewer):
    """After resolving a moved default branch failed, the gate is push-as-is or not: a new step could never run."""
    gate = _deploy_gate(pm)
    ApprovalGate.objects.filter(pk=gate.pk).update(data={**gate.data, "unmerged": True})
    gate.refresh_from_db()
    with pytest.raises(GateError, match="cannot be decided as 'revision_requested'"):
        gate_decide(gate=gate, by=reviewer, decision="revision_requested", comment="Merge it yourself")
