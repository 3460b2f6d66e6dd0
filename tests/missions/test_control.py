"""Pause, resume, retry and clone a mission; a deploy rejected at the gate is "Rejected", not "Failed"."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from agents.models import AgentMessage, LLMCall
from missions.control import mission_clone, mission_pause, mission_resume, mission_retry
from missions.models import DecisionCycle, Event, Mission, MissionTemplate, Plan, Step
from missions.services import MissionError, mission_submit
from reviews.gates import gate_decide, gate_open
from reviews.models import ApprovalGate
from tests.conftest import wait_for
from tests.projects.conftest import product, project  # noqa: F401 - fixtures

ACTIONS = ("pause", "resume", "retry", "clone")


def _mission(requester, status=Mission.Status.EXECUTING, **fields) -> Mission:
    fields.setdefault("title", "Steered")
    fields.setdefault("request", "Do the thing.")
    fields.setdefault("budget_usd", Decimal("5.00"))
    return Mission.objects.create(requester=requester, status=status, **fields)


def _with_steps(mission: Mission, **statuses) -> Plan:
    plan = Plan.objects.create(mission=mission, version=1)
    for order, (key, status) in enumerate(statuses.items()):
        Step.objects.create(
            plan=plan, key=key, order=order, title=key, role="developer", instructions="x", status=status
        )
    return plan


def _settled(mission: Mission, timeout: float = 120) -> str:
    def check():
        mission.refresh_from_db()
        return mission.status if (mission.is_finished or mission.is_waiting) else None

    return wait_for(check, timeout=timeout, message=f"mission {mission.title} to settle")


def _submit(pm) -> Mission:
    return mission_submit(
        requester=pm, title="Controlled", request="Build it", budget_usd=Decimal("3.00"), require_deploy_approval=False
    )


# --- The services, on the real worker and the simulated model ----------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_pauses_a_running_step_and_resumes_without_paying_again(company, pm, sim, celery_worker):
    """Paused while `api` runs: it stops after its tool call, back to pending with no attempt used, and nothing
    starts while paused. Resumed: the mission completes; `core` is not run again and no answer is paid twice."""
    sim.set_latency(400)  # slow enough to pause between two model calls of one step
    mission = _submit(pm)

    def api_working():
        return AgentMessage.objects.filter(mission=mission, step__key="api", kind=AgentMessage.Kind.TOOL_CALL).exists()

    wait_for(api_working, timeout=120, message="step api to make a tool call")
    mission_pause(mission=mission, by=pm)
    assert mission.status == Mission.Status.PAUSED and mission.paused_from == Mission.Status.EXECUTING

    api = Step.objects.get(plan__mission=mission, key="api")
    wait_for(lambda: Step.objects.get(pk=api.pk).status == Step.Status.PENDING, timeout=30, message="api to stop")
    api.refresh_from_db()
    assert api.attempt == 0 and api.error == ""
    assert mission.events.filter(
        message="Step api stopped after its current tool call: the mission is paused."
    ).exists()
    core_calls = LLMCall.objects.filter(step__plan__mission=mission, step__key="core").count()
    calls_when_paused = LLMCall.objects.filter(mission=mission).count()
    time.sleep(2)  # nothing starts while paused
    assert LLMCall.objects.filter(mission=mission).count() == calls_when_paused
    assert Step.objects.get(pk=api.pk).status == Step.Status.PENDING
    mission.refresh_from_db()
    assert mission.status == Mission.Status.PAUSED

    sim.set_latency(0)
    mission_resume(mission=mission, by=pm)
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason
    core = Step.objects.get(plan__mission=mission, key="core")
    assert core.attempt == 1 and LLMCall.objects.filter(step=core).count() == core_calls
    assert Step.objects.get(pk=api.pk).attempt == 1
    paid_twice = (
        LLMCall.objects.filter(mission=mission, status=LLMCall.Status.OK)
        .values("fingerprint")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not paid_twice.exists()
    assert LLMCall.objects.filter(step=api, status=LLMCall.Status.CACHE_HIT).exists()  # replayed, not paid
    messages = list(mission.events.filter(kind=Event.Kind.STATUS).values_list("message", flat=True))
    assert any(m.startswith("Paused. By pm:") for m in messages)
    assert "Executing. Resumed by pm." in messages


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_retries_a_failed_mission_from_its_failed_step(company, pm, sim, celery_worker, settings):
    """With one attempt allowed, a step that never passes fails the mission; the retry runs that step (its attempt
    reset) and the mission completes."""
    settings.STEP_MAX_ATTEMPTS = 1
    settings.STEP_MAX_TOOL_ITERATIONS = 6
    sim.script({"role": "codegen", "match": "Step: core", "times": 1, "reply": {"variant": "always_fail"}})
    mission = _submit(pm)
    assert _settled(mission) == Mission.Status.FAILED
    core = Step.objects.get(plan__mission=mission, key="core")
    assert (core.status, core.attempt) == (Step.Status.FAILED, 1)

    assert mission_retry(mission=mission, by=pm) == ["core"]
    assert mission.status == Mission.Status.EXECUTING and mission.failure_reason == "" and mission.finished_at is None
    assert _settled(mission) == Mission.Status.COMPLETED, mission.failure_reason
    core.refresh_from_db()
    assert (core.status, core.attempt) == (Step.Status.SUCCEEDED, 1)
    assert mission.events.filter(message="Executing. Retried by pm from step core.").exists()


# --- The services' rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "resumes_at"),
    [
        (Mission.Status.QUEUED, Mission.Status.QUEUED),
        (Mission.Status.PLANNING, Mission.Status.QUEUED),
        (Mission.Status.VALIDATING, Mission.Status.QUEUED),
        (Mission.Status.STAFFING, Mission.Status.STAFFING),
        (Mission.Status.EXECUTING, Mission.Status.EXECUTING),
    ],
)
def test_it_resumes_in_the_phase_it_was_paused_in(pm, status, resumes_at, django_capture_on_commit_callbacks):
    """Planning starts over (its open cycle closed); staffing gives its claim back; execution continues.
    Resuming enqueues the mission's advance."""
    mission = _mission(pm, status)
    plan = Plan.objects.create(mission=mission, version=1, staffed_at="2026-01-01T00:00Z")
    cycle = DecisionCycle.objects.create(mission=mission, number=1, kind=DecisionCycle.Kind.PLANNING)
    mission_pause(mission=mission, by=pm)
    assert (mission.status, mission.paused_from) == (Mission.Status.PAUSED, resumes_at)
    with django_capture_on_commit_callbacks() as callbacks:
        mission_resume(mission=mission, by=pm)
    mission.refresh_from_db()
    assert (mission.status, mission.paused_from) == (resumes_at, "")
    assert [c for c in callbacks if c.__qualname__.startswith("enqueue_after_commit")]  # advance is sent
    plan.refresh_from_db()
    cycle.refresh_from_db()
    assert (plan.staffed_at is None) == (resumes_at == Mission.Status.STAFFING)
    assert (cycle.finished_at is not None) == (resumes_at == Mission.Status.QUEUED)


@pytest.mark.parametrize(
    "status",
    [
        Mission.Status.AWAITING_DEPLOY_APPROVAL,
        Mission.Status.DEPLOYING,
        Mission.Status.PAUSED_BUDGET,
        Mission.Status.PAUSED,
        Mission.Status.COMPLETED,
    ],
)
def test_it_refuses_to_pause_where_nothing_can_stop(pm, status):
    mission = _mission(pm, status)
    label = Mission.Status(status).label.lower()
    with pytest.raises(MissionError, match=f"A mission that is {label} cannot be paused."):
        mission_pause(mission=mission, by=pm)
    mission.refresh_from_db()
    assert mission.status == status


def test_it_sends_again_a_step_waiting_out_its_backoff(pm, django_capture_on_commit_callbacks):
    """Its delayed run may have been refused while paused: resuming sends it again, besides the advance."""
    mission = _mission(pm, Mission.Status.PAUSED, paused_from=Mission.Status.EXECUTING)
    _with_steps(mission, waiting=Step.Status.PENDING, ready=Step.Status.PENDING)
    Step.objects.filter(key="waiting").update(retry_at=timezone.now() + timedelta(seconds=30))
    with django_capture_on_commit_callbacks() as callbacks:
        mission_resume(mission=mission, by=pm)
    assert len([c for c in callbacks if c.__qualname__.startswith("enqueue_after_commit")]) == 2


def test_it_refuses_to_resume_a_mission_that_is_not_paused(pm):
    """A budget pause is resumed by its gate, not by this button."""
    mission = _mission(pm, Mission.Status.PAUSED_BUDGET, paused_from=Mission.Status.EXECUTING)
    with pytest.raises(MissionError, match="Only a paused mission can be resumed; this one is paused: budget."):
        mission_resume(mission=mission, by=pm)


def test_it_retries_only_a_mission_that_failed_in_execution(pm):
    """Failed before any step ran: say so. Not failed: say so. Failed in execution: the failed and the stopped
    steps go back to pending with their attempts reset; succeeded steps stay."""
    early = _mission(pm, Mission.Status.FAILED, failure_reason="The plan failed validation: no.")
    with pytest.raises(MissionError, match="this one failed before any step ran"):
        mission_retry(mission=early, by=pm)
    running = _mission(pm, Mission.Status.EXECUTING)
    with pytest.raises(MissionError, match="Only a failed mission can be retried; this one is executing."):
        mission_retry(mission=running, by=pm)

    failed = _mission(pm, Mission.Status.FAILED, failure_reason="Step a failed: boom")
    _with_steps(failed, a=Step.Status.FAILED, b=Step.Status.CANCELLED, c=Step.Status.SUCCEEDED)
    Step.objects.filter(plan__mission=failed).update(attempt=3, error="boom")
    assert mission_retry(mission=failed, by=pm) == ["a", "b"]
    steps = {s.key: s for s in Step.objects.filter(plan__mission=failed)}
    assert [(steps[k].status, steps[k].attempt) for k in "abc"] == [
        (Step.Status.PENDING, 0),
        (Step.Status.PENDING, 0),
        (Step.Status.SUCCEEDED, 3),
    ]
    assert steps["a"].error == "boom"  # the new attempt's brief says what went wrong
    failed.refresh_from_db()
    assert (failed.status, failed.failure_reason, failed.finished_at) == (Mission.Status.EXECUTING, "", None)


def test_it_clones_the_request_template_and_settings_for_the_cloner(company, pm, other_pm):
    """The clone is filed by the cloner through mission_submit with the same text, template, variables, budget and
    gate settings; both missions say so in their timeline."""
    template = MissionTemplate.objects.get(slug="api_endpoint")
    variables = {name: "widgets" for name in template.variable_names()}
    original = mission_submit(
        requester=pm,
        title="",
        request="Also paginate.",
        template=template,
        variables=variables,
        budget_usd=Decimal("7.50"),
        priority=Mission.Priority.HIGH,
        require_plan_approval=True,
        require_deploy_approval=False,
        consensus_rule="unanimous",
        deadlock_policy="ceo",
        conversation_mode="broadcast",
    )
    Mission.objects.filter(pk=original.pk).update(status=Mission.Status.FAILED)
    clone = mission_clone(mission=original, by=other_pm)
    clone.refresh_from_db()
    copied = (
        "title request acceptance_criteria template_id variables budget_usd priority require_plan_approval "
        "require_deploy_approval consensus_rule deadlock_policy conversation_mode project_id"
    ).split()
    for field in copied:
        assert getattr(clone, field) == getattr(original, field), field
    assert clone.request.count("Also paginate.") == 1
    assert (clone.requester, clone.status) == (other_pm, Mission.Status.QUEUED)
    assert clone.events.filter(message=f"Cloned by other_pm from “{original.title}” ({original.code}).").exists()
    assert original.events.filter(message=f"other_pm cloned this mission into {clone.code}.").exists()


def test_it_applies_the_filing_rules_to_a_clone(pm, reviewer, settings):
    """A non-PM cannot clone; a budget above the confirmation threshold needs confirming again."""
    settings.BUDGET_CONFIRM_ABOVE_USD = Decimal("50")
    mission = _mission(pm, Mission.Status.COMPLETED, budget_usd=Decimal("80.00"))
    with pytest.raises(MissionError, match="Only product managers can file missions."):
        mission_clone(mission=mission, by=reviewer)
    with pytest.raises(ValueError, match=r"A budget above \$50 needs confirmation"):
        mission_clone(mission=mission, by=pm)
    assert mission_clone(mission=mission, by=pm, budget_confirmed=True).budget_usd == Decimal("80.00")


def test_it_clones_against_the_project_only_for_who_may_file_on_it(pm, other_pm, project):  # noqa: F811
    """A clone starts from the project's mirrored head on its own branch; a restricted project refuses others."""
    mission = _mission(pm, Mission.Status.COMPLETED, project=project, base_sha=project.head_sha)
    clone = mission_clone(mission=mission, by=other_pm)
    assert (clone.project, clone.base_sha) == (project, project.head_sha)
    project.restricted = True
    project.save()
    project.members.add(pm)
    with pytest.raises(ValueError, match="You may not file missions against Shop."):
        mission_clone(mission=mission, by=other_pm)
    assert mission_clone(mission=mission, by=pm).project == project


def test_a_deploy_rejected_at_the_gate_shows_rejected(client, pm, reviewer, django_capture_on_commit_callbacks):
    """The reviewer's no is "Rejected" with their comment, a finished mission, not "Failed"."""
    mission = _mission(pm, Mission.Status.AWAITING_DEPLOY_APPROVAL)
    gate = gate_open(mission=mission, kind=ApprovalGate.Kind.DEPLOY, question="Deploy?")
    with django_capture_on_commit_callbacks(execute=True):
        gate_decide(gate=gate, by=reviewer, decision="rejected", comment="Not this quarter")
    mission.refresh_from_db()
    assert mission.status == Mission.Status.REJECTED and mission.is_finished and mission.finished_at
    client.force_login(pm)
    page = client.get(mission.get_absolute_url()).content.decode()
    assert 'class="status status-rejected" id="mission-status-label">Rejected<' in page
    assert "Deploy approval rejected by reviewer. “Not this quarter”" in page
    assert "Failed" not in page


# --- The views --------------------------------------------------------------------------------------------------


def _url(action: str, mission: Mission) -> str:
    return reverse(f"missions:{action}", kwargs={"code": mission.code})


@pytest.mark.parametrize("action", ACTIONS)
def test_it_hides_each_action_from_who_may_not_see_the_mission(client, pm, other_pm, outsider, action):
    """Another PM, or a user who files nothing, gets the 404 of a missing mission; nothing changes."""
    mission = _mission(pm, Mission.Status.PAUSED if action == "resume" else Mission.Status.EXECUTING)
    for user in (other_pm, outsider):
        client.force_login(user)
        assert client.post(_url(action, mission)).status_code == 404
    assert Mission.objects.count() == 1 and Mission.objects.get().status == mission.status


@pytest.mark.parametrize("action", ACTIONS)
def test_it_refuses_each_action_to_a_reviewer_who_did_not_file_it(client, pm, reviewer, action):
    """A reviewer sees every mission but is neither its PM nor an admin (nor may file): 403, nothing changes."""
    mission = _mission(pm, Mission.Status.PAUSED if action == "resume" else Mission.Status.EXECUTING)
    client.force_login(reviewer)
    assert client.post(_url(action, mission)).status_code == 403
    page = client.get(mission.get_absolute_url()).content.decode()
    assert all(_url(a, mission) not in page for a in ACTIONS)
    assert Mission.objects.count() == 1 and Mission.objects.get().status == mission.status


@pytest.mark.parametrize("action", ACTIONS)
def test_it_takes_each_action_by_post_only(client, pm, action):
    mission = _mission(pm)
    client.force_login(pm)
    assert client.get(_url(action, mission)).status_code == 405


def test_it_needs_the_csrf_token(pm):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(pm)
    mission = _mission(pm)
    assert client.post(_url("pause", mission)).status_code == 403
    assert Mission.objects.get().status == Mission.Status.EXECUTING


def test_the_pm_pauses_and_resumes_from_the_page(client, pm, django_capture_on_commit_callbacks):
    """Each state shows only the buttons that apply; an htmx post is told to reload the page."""
    mission = _mission(pm)
    client.force_login(pm)
    page = client.get(mission.get_absolute_url()).content.decode()
    assert _url("pause", mission) in page and _url("resume", mission) not in page and _url("clone", mission) in page
    response = client.post(_url("pause", mission), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Redirect"] == mission.get_absolute_url()
    mission.refresh_from_db()
    assert mission.status == Mission.Status.PAUSED
    page = client.get(mission.get_absolute_url()).content.decode()
    assert _url("resume", mission) in page and _url("pause", mission) not in page
    assert 'id="mission-status-label">Paused<' in page

    with django_capture_on_commit_callbacks():
        response = client.post(_url("resume", mission))
    assert response.status_code == 302
    mission.refresh_from_db()
    assert mission.status == Mission.Status.EXECUTING
    response = client.post(_url("resume", mission), follow=True)
    assert "Only a paused mission can be resumed; this one is executing." in response.content.decode()


def test_an_admin_retries_a_mission_filed_by_someone_else(client, pm, django_user_model):
    admin = django_user_model.objects.create_user("admin", is_staff=True)
    mission = _mission(pm, Mission.Status.FAILED, failure_reason="Step a failed: boom")
    _with_steps(mission, a=Step.Status.FAILED)
    client.force_login(pm)
    assert _url("retry", mission) in client.get(mission.get_absolute_url()).content.decode()
    client.force_login(admin)
    response = client.post(_url("retry", mission))
    assert response.status_code == 302
    mission.refresh_from_db()
    assert mission.status == Mission.Status.EXECUTING
    assert mission.events.filter(message="Executing. Retried by admin from step a.").exists()


def test_a_pm_clones_from_the_page_and_lands_on_the_clone(client, pm, settings):
    settings.BUDGET_CONFIRM_ABOVE_USD = Decimal("50")
    mission = _mission(pm, Mission.Status.REJECTED, budget_usd=Decimal("60.00"))
    client.force_login(pm)
    page = client.get(mission.get_absolute_url()).content.decode()
    assert 'name="confirm_budget"' in page
    response = client.post(_url("clone", mission), follow=True)
    assert "Not cloned: A budget above $50 needs confirmation" in response.content.decode()
    assert Mission.objects.count() == 1
    response = client.post(_url("clone", mission), {"confirm_budget": "1"})
    clone = Mission.objects.exclude(pk=mission.pk).get()
    assert response.status_code == 302 and response["Location"] == clone.get_absolute_url()
