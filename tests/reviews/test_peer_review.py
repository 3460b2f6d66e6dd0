"""Peer review by agents: each step is reviewed, the rule decides, changes are revisions, humans decide the rest.

Real parts: the simulated model server over HTTP, a real Celery worker, the sandbox and git. The sim's
reviewers approve with a comment on the first added line; ``[sim-review: ...]`` in the request scripts them.
"""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from agents.models import AgentMessage, AgentSpec, LLMCall
from agents.schemas import ReviewComment
from missions.changes import diff_line_numbers as diff_lines
from missions.control import mission_retry
from missions.events import event_record
from missions.forms import MissionForm
from missions.models import DecisionCycle, Event, Mission, MissionTemplate, Plan, Step
from missions.services import mission_fail, mission_submit
from orchestrator_site.asgi import application
from reviews.gates import GateError, gate_decide
from reviews.models import ApprovalGate, PeerReview
from reviews.peer import comments_anchor, consensus, step_reviewers
from tests.conftest import wait_for
from tests.sandbox_support import require_bwrap

DIFF = """diff --git a/core.py b/core.py
new file mode 100644
index 0000000..1111111
--- /dev/null
+++ b/core.py
@@ -0,0 +1,3 @@
+'''Core.'''
+
+VALUE = 1
diff --git a/util.py b/util.py
index 2222222..3333333 100644
--- a/util.py
+++ b/util.py
@@ -10,3 +10,4 @@ def helper():
     a = 1
-    b = 2
+    b = 3
+++ c = 4
     return a
"""


def _status(mission: Mission) -> str:
    mission.refresh_from_db()
    return mission.status


def _file(pm, request: str = "Build it.", **options) -> Mission:
    options.setdefault("require_deploy_approval", False)
    return mission_submit(
        requester=pm, title="Reviewed mission", request=request, budget_usd=Decimal("2.00"), **options
    )


def _until(mission: Mission, *statuses: str, timeout: float = 90) -> str:
    wanted = set(statuses) | Mission.FINISHED
    return wait_for(lambda: _status(mission) in wanted and mission.status, timeout=timeout, message=str(statuses))


# --------------------------------------------------------------------------------------------- pure parts


def test_it_knows_which_new_lines_a_diff_shows():
    """Added and context lines count, with their numbers in the new file; removed lines do not; a content
    line that looks like a file header ("+++ c = 4") is content."""
    assert diff_lines(DIFF) == {"core.py": {1, 2, 3}, "util.py": {10, 11, 12, 13}}


def test_it_keeps_only_comments_on_lines_of_the_diff():
    """A comment on an unknown file or on a line the diff does not show is dropped; text is cleaned."""
    comments = [
        ReviewComment(path="core.py", line=3, body="Name\u202e this\x00 better"),
        ReviewComment(path="b/util.py", line=11, body="Why 3?"),
        ReviewComment(path="secrets.py", line=1, body="Not in the diff"),
        ReviewComment(path="core.py", line=40, body="Not a shown line"),
    ]
    kept, dropped = comments_anchor(comments, diff_lines(DIFF))
    assert kept == [
        {"path": "core.py", "line": 3, "body": "Name this better"},
        {"path": "util.py", "line": 11, "body": "Why 3?"},
    ]
    assert dropped == 2


@pytest.mark.parametrize(
    ("verdicts", "rule", "asked", "expected"),
    [
        (["approve", "approve"], "majority", 2, "approve"),
        (["approve", "request_changes"], "majority", 2, "request_changes"),
        (["approve", "approve", "request_changes"], "majority", 3, "approve"),
        (["approve", "approve", "request_changes"], "unanimous", 3, "request_changes"),
        (["approve", "approve", "reject"], "majority", 3, "reject"),
        (["approve"], "unanimous", 2, "request_changes"),  # a reviewer whose answer was unusable did not approve
        ([], "majority", 0, "request_changes"),
    ],
)
def test_it_decides_by_the_missions_rule(verdicts, rule, asked, expected):
    """Any reject goes to a human; majority needs more than half of the asked reviewers; unanimous all."""
    assert consensus(verdicts, rule, asked) == expected


# --------------------------------------------------------------------------------------------- configuration


def test_it_takes_the_reviewers_from_the_template_or_the_pm(company, pm):
    """Without a choice a mission gets the template's reviewers and rule (the defaults without a template);
    the PM's choice wins; [] turns peer review off."""
    template = MissionTemplate.objects.get(slug="bug_fix")
    assert template.reviewers == ["code-reviewer", "security-reviewer"]
    template.reviewers, template.review_rule = ["security-reviewer"], MissionTemplate.ReviewRule.UNANIMOUS
    template.save()
    variables = {"symptom": "x", "steps": "y", "expected": "z"}
    plain = _file(pm)  # in a test transaction that never commits: filed, never started
    from_template = _file(pm, request="", template=template, variables=variables)
    chosen = _file(pm, request="Other", template=template, variables=variables, reviewers=["code-reviewer"])
    off = _file(pm, request="Off", reviewers=[], review_rule="unanimous")
    assert (plain.reviewers, plain.review_rule) == (["code-reviewer", "security-reviewer"], "majority")
    assert (from_template.reviewers, from_template.review_rule) == (["security-reviewer"], "unanimous")
    assert (chosen.reviewers, chosen.review_rule) == (["code-reviewer"], "unanimous")
    assert (off.reviewers, off.review_rule) == ([], "unanimous")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reviewers": ["code-reviewer", "ghost"]}, "Unknown or inactive reviewer agent: ghost."),
        ({"reviewers": ["ceo"]}, "Unknown or inactive reviewer agent: ceo."),
        ({"reviewers": "code-reviewer"}, "Reviewers must be a list of agent names."),
        ({"review_rule": "loudest"}, "The review rule must be one of majority, unanimous, not 'loudest'."),
    ],
)
def test_it_refuses_unknown_reviewers_and_rules(company, pm, options, message):
    """A reviewer that is no active agent, a C-suite member or an unknown rule is refused with a clear message."""
    with pytest.raises(ValueError) as raised:
        _file(pm, **options)
    assert str(raised.value) == message
    assert not Mission.objects.exists()


def test_it_offers_the_reviewers_on_the_filing_form(company, pm):
    """The form lists the reviewer agents; choosing some and turning review off at once is a form error."""
    base = {"title": "T", "request": "R", "budget_usd": "1", "priority": "normal", "require_deploy_approval": "on"}
    form = MissionForm(data={**base, "reviewers": ["security-reviewer"], "review_rule": "unanimous"}, user=pm)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["reviewer_names"] == ["security-reviewer"]
    assert MissionForm(data=base, user=pm).is_valid()
    both = MissionForm(data={**base, "reviewers": ["code-reviewer"], "skip_peer_review": "on"}, user=pm)
    assert not both.is_valid()
    assert both.errors["skip_peer_review"] == ["Choose reviewers or turn peer review off, not both."]
    off = MissionForm(data={**base, "skip_peer_review": "on"}, user=pm)
    assert off.is_valid() and off.cleaned_data["reviewer_names"] == []
    page = Client()
    page.force_login(pm)
    html = page.get("/missions/new/").content.decode()
    assert "Peer reviewers" in html and "Security Reviewer" in html


# --------------------------------------------------------------------------------------------- real missions


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_reviews_every_step_and_shows_the_comments_next_to_the_diff(company, pm, sim, celery_worker):
    """Both default reviewers approve each step; each review is a PeerReview with a comment on a line of the
    step's diff; their calls are in the ledger as "review", attributed to the step and its review cycle;
    the mission page shows verdict, score, summary and the comment next to its diff line."""
    require_bwrap()
    mission = _file(pm)
    assert _until(mission, Mission.Status.COMPLETED) == Mission.Status.COMPLETED, mission.failure_reason
    steps = list(Step.objects.filter(plan__mission=mission))
    reviews = list(PeerReview.objects.filter(mission=mission).select_related("reviewer", "step", "cycle"))
    assert len(reviews) == 2 * len(steps) and len(steps) >= 2
    assert {r.reviewer.name for r in reviews} == {"code-reviewer", "security-reviewer"}
    for review in reviews:
        assert (review.verdict, review.score, review.round, review.attempt) == ("approve", 4, 1, 1)
        assert review.cycle.kind == DecisionCycle.Kind.REVIEW and review.cycle.outcome == "approved"
        (comment,) = review.comments
        assert comment["path"] in review.step.output["files"]
        assert comment["line"] in diff_lines(review.step.output["diff"])[comment["path"]]
    calls = LLMCall.objects.filter(mission=mission, purpose="review")
    assert calls.count() == len(reviews)
    assert {(c.step_id, c.cycle_id, c.agent_id) for c in calls} == {
        (r.step_id, r.cycle_id, r.reviewer_id) for r in reviews
    }
    assert mission.spent_usd == sum(c.cost_usd for c in LLMCall.objects.filter(mission=mission))
    assert all(s.attempt == 1 and s.status == Step.Status.SUCCEEDED for s in steps)

    page = Client()
    page.force_login(pm)
    html = page.get(mission.get_absolute_url()).content.decode()
    assert "peer review by code-reviewer, security-reviewer (majority of reviewers approve)" in html
    assert "As Code Reviewer: small, tested and clear. Approved." in html and "4/5" in html
    assert 'id="review-diff-core"' in html
    assert re.search(
        r'data-line="1"[^>]*>1</td><td class="code">\+[^<]*</td></tr><tr class="diff-comment"><td colspan="3">'
        r'<div class="line-comment"><strong>(Code|Security) Reviewer \(approve\)</strong> on line 1: ',
        html,
    )


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_sends_a_step_back_with_the_comments_and_accepts_the_revision(company, pm, sim, celery_worker):
    """Round 1 asks for changes: attempt 2 of the step gets the comments in its brief and revises the code;
    round 2 approves. The revision's calls are attributed to the step and to the round that asked for it."""
    require_bwrap()
    mission = _file(pm, request="Build it. [sim-review: changes-once]")
    assert _until(mission, Mission.Status.COMPLETED) == Mission.Status.COMPLETED, mission.failure_reason
    core = Step.objects.get(plan__mission=mission, key="core")
    assert core.attempt == 2 and core.status == Step.Status.SUCCEEDED
    assert "+# Revised after review round 1." in core.output["diff"]
    reviews = list(PeerReview.objects.filter(step=core).order_by("round", "id"))
    assert [(r.round, r.attempt, r.verdict) for r in reviews] == [
        (1, 1, "request_changes"),
        (1, 1, "request_changes"),
        (2, 2, "approve"),
        (2, 2, "approve"),
    ]
    asking = reviews[0].cycle
    revision = LLMCall.objects.filter(mission=mission, step=core, cycle=asking, purpose="step:codegen")
    assert revision.exists() and all(c.cost_usd > 0 for c in revision)
    brief = AgentMessage.objects.get(step=core, source="Brief", content__contains="Review round 1 asked for changes")
    assert "core.py:1: Please document this module" in brief.content
    assert core.revision["round"] == 1 and core.revision["comments"][0]["path"] == "core.py"
    assert mission.spent_usd == sum(c.cost_usd for c in LLMCall.objects.filter(mission=mission))
    messages = list(mission.events.filter(kind=Event.Kind.STEP).values_list("message", flat=True))
    assert any("asked for changes; attempt 2 revises it" in m for m in messages)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_asks_a_human_when_a_reviewer_rejects_and_goes_on_when_approved(company, pm, reviewer, sim, celery_worker):
    """A reject holds the step (pushed, "awaiting review") and opens a review gate; the mission waits. The
    requester cannot decide; a reviewer's approval accepts the step as it is and the mission goes on."""
    require_bwrap()
    mission = _file(pm, request="Build it. [sim-review: reject]")
    assert _until(mission, Mission.Status.AWAITING_REVIEW) == Mission.Status.AWAITING_REVIEW, mission.failure_reason
    gate = ApprovalGate.objects.get(mission=mission, kind=ApprovalGate.Kind.REVIEW, status="pending")
    core = Step.objects.get(plan__mission=mission, key="core")
    assert core.status == Step.Status.IN_REVIEW and gate.data["step"] == "core"
    assert "rejected by Code Reviewer, Security Reviewer" in gate.question
    assert not Step.objects.filter(plan__mission=mission, key="api").exclude(status=Step.Status.PENDING).exists()
    page = Client()
    page.force_login(reviewer)
    html = page.get(mission.get_absolute_url()).content.decode()
    assert "Awaiting review" in html and 'href="#step-core"' in html and 'id="reviews-core"' in html
    with pytest.raises(GateError, match="Only reviewers"):
        gate_decide(gate=gate, by=pm, decision="approved")
    gate_decide(gate=gate, by=reviewer, decision="approved", comment="Fine by me.")
    core.refresh_from_db()
    assert core.status == Step.Status.SUCCEEDED and core.attempt == 1

    # The next step is rejected too: a gate of its own, approved again; then the mission completes.
    wait_for(
        lambda: ApprovalGate.objects.filter(mission=mission, kind="review", status="pending", data__step="api").first(),
        timeout=90,
        message="the api step's review gate",
    )
    gate_decide(gate=ApprovalGate.objects.get(mission=mission, status="pending"), by=reviewer, decision="approved")
    assert _until(mission, Mission.Status.COMPLETED) == Mission.Status.COMPLETED, mission.failure_reason
    statuses = [e.data.get("status") for e in mission.events.filter(kind=Event.Kind.STATUS)]
    assert statuses.count("awaiting_review") == 2


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_sends_a_held_step_back_with_the_humans_comment_and_fails_on_reject(
    company, pm, reviewer, sim, celery_worker
):
    """ "Request changes" at the review gate runs the step once more with the person's comment; when the
    reviewers still reject it a new gate opens, and a person's reject fails the mission at that step."""
    require_bwrap()
    mission = _file(pm, request="Build it. [sim-review: reject]")
    assert _until(mission, Mission.Status.AWAITING_REVIEW) == Mission.Status.AWAITING_REVIEW, mission.failure_reason
    gate = ApprovalGate.objects.get(mission=mission, status="pending")
    with pytest.raises(GateError, match="needs a comment"):
        gate_decide(gate=gate, by=reviewer, decision="revision_requested")
    gate_decide(gate=gate, by=reviewer, decision="revision_requested", comment="Add input validation.")
    second = wait_for(
        lambda: ApprovalGate.objects.filter(mission=mission, status="pending").exclude(pk=gate.pk).first(),
        timeout=90,
        message="a second review gate",
    )
    core = Step.objects.get(plan__mission=mission, key="core")
    assert core.attempt == 2 and core.revision["summary"] == "Add input validation."
    assert AgentMessage.objects.filter(step=core, source="Brief", content__contains="Add input validation.").exists()
    assert PeerReview.objects.filter(step=core, round=2, attempt=2).count() == 2

    gate_decide(gate=second, by=reviewer, decision="rejected", comment="Not safe.")
    assert _status(mission) == Mission.Status.FAILED
    core.refresh_from_db()
    assert core.status == Step.Status.FAILED and "Not safe." in core.error
    assert core.revision == {"by": "reviewer", "summary": "Not safe.", "comments": [], "rejected": True}

    # Retrying starts the step again with the person's reason in its brief (the rejected work is on the branch).
    mission_retry(mission=mission, by=pm)
    wait_for(
        lambda: AgentMessage.objects.filter(
            step=core, source="Brief", content__contains="reviewer rejected this step's earlier work"
        ).exists(),
        timeout=60,
        message="the retried step's brief",
    )
    core.refresh_from_db()
    assert core.review_revisions == 0 and core.revision["rejected"] is True


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_asks_a_human_once_the_review_rounds_are_used_up(company, pm, reviewer, sim, celery_worker, settings):
    """Reviewers who keep asking for changes send the step back REVIEW_MAX_ROUNDS times, then a human decides."""
    require_bwrap()
    settings.REVIEW_MAX_ROUNDS = 1
    mission = _file(pm, request="Build it. [sim-review: changes]", reviewers=["code-reviewer"])
    assert _until(mission, Mission.Status.AWAITING_REVIEW) == Mission.Status.AWAITING_REVIEW, mission.failure_reason
    gate = ApprovalGate.objects.get(mission=mission, kind="review", status="pending")
    assert "still not approved after 1 revision" in gate.question
    core = Step.objects.get(plan__mission=mission, key="core")
    assert core.attempt == 2 and core.status == Step.Status.IN_REVIEW
    assert list(PeerReview.objects.filter(step=core).values_list("round", "verdict")) == [
        (1, "request_changes"),
        (2, "request_changes"),
    ]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_drops_bogus_comments_escapes_model_text_and_adds_a_specialist(company, pm, sim, celery_worker):
    """The PM's single reviewer and a specialist in the steps' field review each step. A comment on a file
    or line that is not in the diff is dropped; markup in the model's text is shown as text."""
    require_bwrap()
    specialist = AgentSpec.objects.create(
        name="python-specialist",
        role="developer",
        title="Python Specialist",
        system_prompt="You are the Python Specialist of the mission team.",
        is_dynamic=True,
        owner=pm,
        model_profile=company,
    )
    sim.script(
        {
            "role": "step_review",
            "match": "Step: core",
            "times": 1,
            "reply": {
                "json": {
                    "verdict": "approve",
                    "score": 5,
                    "summary": "<script>alert('x')</script> fine",
                    "comments": [
                        {"path": "core.py", "line": 1, "body": "<img src=x onerror=alert(1)> ok"},
                        {"path": "../../etc/passwd", "line": 1, "body": "bogus path"},
                        {"path": "core.py", "line": 9999, "body": "bogus line"},
                    ],
                }
            },
        }
    )
    mission = _file(pm, reviewers=["security-reviewer"])
    assert _until(mission, Mission.Status.COMPLETED) == Mission.Status.COMPLETED, mission.failure_reason
    core = Step.objects.get(plan__mission=mission, key="core")
    reviews = list(PeerReview.objects.filter(step=core).select_related("reviewer"))
    assert [r.reviewer.name for r in reviews] == ["security-reviewer", "python-specialist"]
    scripted = next(r for r in reviews if r.score == 5)
    assert scripted.comments == [{"path": "core.py", "line": 1, "body": "<img src=x onerror=alert(1)> ok"}]
    assert scripted.dropped_comments == 2
    assert PeerReview.objects.filter(mission=mission, reviewer=specialist).count() == 2

    page = Client()
    page.force_login(pm)
    html = page.get(mission.get_absolute_url()).content.decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; fine" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt; ok" in html
    assert "2 comments not on a line of the diff dropped." in html


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_runs_no_peer_review_when_turned_off(company, pm, sim, celery_worker):
    """A mission filed with no reviewers has no review calls and no PeerReview rows."""
    require_bwrap()
    mission = _file(pm, reviewers=[])
    assert _until(mission, Mission.Status.COMPLETED) == Mission.Status.COMPLETED, mission.failure_reason
    assert not PeerReview.objects.filter(mission=mission).exists()
    assert not LLMCall.objects.filter(mission=mission, purpose="review").exists()


# --------------------------------------------------------------------------------------------- live page


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_pushes_a_new_review_to_the_page_live(company, pm):
    """A review recorded with its event reaches an open mission page with its comment next to the diff line."""

    def setup():
        mission = Mission.objects.create(requester=pm, title="Live", request="Do it", budget_usd=Decimal("1.00"))
        plan = Plan.objects.create(mission=mission, version=1)
        step = Step.objects.create(
            plan=plan, key="core", title="Core", role="developer", instructions="x", output={"diff": DIFF}
        )
        return mission, step

    def review(mission, step):
        created = PeerReview.objects.create(
            mission=mission,
            step=step,
            reviewer=AgentSpec.objects.get(name="code-reviewer"),
            verdict="request_changes",
            score=2,
            summary="Needs <b>work</b>",
            comments=[{"path": "util.py", "line": 11, "body": "Why three?"}],
        )
        event_record(mission=mission, kind=Event.Kind.REVIEW, message="Code Reviewer reviewed step core")
        return created

    mission, step = await sync_to_async(setup)()
    client = Client()
    await sync_to_async(client.force_login)(pm)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    communicator = WebsocketCommunicator(
        application,
        f"/ws/missions/{mission.code}/",
        headers=[(b"origin", b"http://localhost"), (b"host", b"localhost"), cookie],
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.send_json_to({"type": "resume", "after": mission.last_event_seq})
    await sync_to_async(review)(mission, step)
    html = await communicator.receive_from(timeout=5)
    assert 'id="reviews-core"' in html and "Needs &lt;b&gt;work&lt;/b&gt;" in html
    assert re.search(
        r'data-line="11"[^>]*>11</td><td class="code">[^<]*</td></tr><tr class="diff-comment"><td colspan="3">'
        r'<div class="line-comment"><strong>[^<]+\(request changes\)</strong> on line 11: Why three\?',
        html,
    )
    await communicator.disconnect()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_asks_a_human_when_no_reviewer_says_anything_usable(company, pm, sim, celery_worker):
    """Reviewers whose every answer is unusable do not send the step round and round (paying each time):
    the first such round holds the step for a person, with the reason on the gate."""
    require_bwrap()
    sim.script({"role": "step_review", "times": 50, "reply": {"text": "I think it is fine, probably."}})
    mission = _file(pm)
    status = _until(mission, Mission.Status.AWAITING_REVIEW)
    assert status == Mission.Status.AWAITING_REVIEW, "\n".join(e.message for e in mission.events.all())
    gate = ApprovalGate.objects.get(mission=mission, kind=ApprovalGate.Kind.REVIEW, status="pending")
    assert "no usable request for changes (2 unusable reviews)" in gate.question
    core = Step.objects.get(plan__mission=mission, key="core")
    assert core.status == Step.Status.IN_REVIEW and core.attempt == 1 and core.review_revisions == 0
    assert mission.cycles.filter(kind="review").count() == 1


def test_it_never_lets_an_agent_review_its_own_step(company, pm):
    """A step staffed to a reviewer agent is reviewed by the others only."""
    mission = _file(pm)
    code_reviewer = AgentSpec.objects.get(name="code-reviewer")
    plan = Plan.objects.create(mission=mission, version=1)
    step = Step.objects.create(plan=plan, key="x", title="X", role=code_reviewer.role, agent=code_reviewer)
    assert [a.name for a in step_reviewers(mission, step)] == ["security-reviewer"]


def test_it_does_not_count_review_revisions_as_retries(company, pm, settings):
    """A step on its third attempt after two reviewers' revisions has used one try: a lost worker requeues it."""
    from missions.engine import reap_stalled

    settings.STEP_MAX_ATTEMPTS = 2
    mission = _file(pm)
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.EXECUTING)
    plan = Plan.objects.create(mission=mission, version=1)
    step = Step.objects.create(
        plan=plan,
        key="x",
        title="X",
        role="developer",
        status=Step.Status.RUNNING,
        attempt=3,
        review_revisions=2,
        lease_expires_at=timezone.now() - timedelta(minutes=5),
    )
    assert step.tries == 1
    reap_stalled()
    step.refresh_from_db()
    assert step.status == Step.Status.PENDING, step.error


def test_it_cancels_a_held_step_when_the_mission_fails(company, pm):
    """A step waiting for a person's review does not stay "in review" on a mission that failed."""
    mission = _file(pm)
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.AWAITING_REVIEW)
    plan = Plan.objects.create(mission=mission, version=1)
    step = Step.objects.create(plan=plan, key="x", title="X", role="developer", status=Step.Status.IN_REVIEW)
    mission.refresh_from_db()
    mission_fail(mission=mission, reason="Another step failed for good.")
    step.refresh_from_db()
    assert step.status == Step.Status.CANCELLED


def test_it_closes_the_review_round_when_the_mission_stops_during_it(company, pm, sim):
    """A pause during a review round stops it at the next model call, and its cycle is closed, not left open."""
    from agents.errors import MissionStopped
    from reviews.peer import step_review_round

    mission = _file(pm)
    plan = Plan.objects.create(mission=mission, version=1)
    step = Step.objects.create(plan=plan, key="x", title="X", role="developer", status=Step.Status.RUNNING)
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.PAUSED)
    with pytest.raises(MissionStopped):
        step_review_round(
            mission=mission, step=step, reviewers=step_reviewers(mission, step), diff=DIFF, tests="1 passed"
        )
    cycle = mission.cycles.get(kind="review")
    assert cycle.finished_at is not None and "interrupted (MissionStopped)" in cycle.summary
    assert not PeerReview.objects.filter(step=step).exists()
