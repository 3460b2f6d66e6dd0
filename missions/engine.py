"""The state machine that advances a mission, one phase per task.

Every phase starts by claiming the mission (or step) with a conditional
UPDATE, so a task delivered twice does its work once. Model calls happen in
agents.runtime; this module decides what happens next and records it.
"""

import logging
from datetime import timedelta

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from agents.errors import AgentRunError, BudgetExceeded
from agents.models import AgentMessage, AgentSpec
from agents.runtime.executor import run_tool_agent
from agents.runtime.metering import CallContext
from agents.runtime.sandbox import PytestResult, SandboxError, SandboxLimits, sandbox_isolation
from agents.runtime.structured import ask_structured
from agents.runtime.tools import TOOL_NAMES, StepTools, workspace_lock
from agents.runtime.workspace import Workspace, WorkspaceError
from agents.schemas import PlanDraft, PlanVote
from agents.selectors import agent_for_role, c_suite_agents
from agents.services import agent_message_record
from missions import briefs
from missions.events import event_record
from missions.models import DecisionCycle, Event, Mission, MissionTemplate, Plan, Step, TestRun, Vote
from missions.services import mission_fail, mission_pause_for_budget, mission_transition
from orchestrator_site.logging import mission_logging
from reviews.models import ApprovalGate
from reviews.services import gate_open

logger = logging.getLogger(__name__)


def _now():
    return timezone.now()


def weak_sandbox_refusal() -> str:
    """In production, generated code runs only in bwrap unless the operator chose the weaker sandbox explicitly."""
    try:
        isolation = sandbox_isolation()
    except SandboxError as error:
        return f"The sandbox is not usable: {error}"
    if isolation != "bwrap" and settings.PRODUCTION and settings.SANDBOX_BACKEND != "subprocess":
        return (
            "Refusing to run generated code without bubblewrap in production: install bubblewrap, "
            "or set SANDBOX_BACKEND=subprocess to accept the weaker sandbox."
        )
    return ""


def mission_advance(*, mission_id: int) -> None:
    """Do whatever the mission's current status calls for; waiting and finished missions need nothing."""
    mission = Mission.objects.select_related("model_profile").filter(pk=mission_id).first()
    if mission is None:
        logger.warning("advance: mission %s does not exist", mission_id)
        return
    with mission_logging(mission.code):
        try:
            if mission.status == Mission.Status.QUEUED:
                _plan(mission)
            elif mission.status == Mission.Status.STAFFING:
                _staff(mission)
            elif mission.status == Mission.Status.EXECUTING:
                _schedule(mission)
            elif mission.status == Mission.Status.DEPLOYING:
                _deploy(mission)
        except BudgetExceeded as error:
            # Only planning gets here (steps handle their own): plan again once the budget is raised.
            mission_pause_for_budget(mission=mission, reason=str(error), resume_to=Mission.Status.QUEUED)
        except AgentRunError as error:
            mission_fail(mission=mission, reason=str(error))
        except Exception as error:
            logger.exception("advance failed")
            mission_fail(mission=mission, reason=f"Internal error while advancing: {type(error).__name__}: {error}")


# --- Planning: the C-suite deliberates a plan -------------------------------------------------------


def _plan(mission: Mission) -> None:
    if not mission_transition(
        mission=mission, to=Mission.Status.PLANNING, expected=Mission.Status.QUEUED, started_at=_now()
    ):
        return
    if mission.model_profile is None:
        raise AgentRunError("No model profile is configured: run `manage.py seed_demo` or add one in the admin.")
    members = c_suite_agents()
    drafter = next((m for m in members if m.role == "cto"), None)
    if drafter is None:
        raise AgentRunError("No active CTO agent to draft the plan; activate one in the admin.")
    cycle = _cycle_open(
        mission, DecisionCycle.Kind.PLANNING, f"C-suite deliberation: {', '.join(m.title for m in members)}."
    )

    roles = sorted(set(AgentSpec.objects.filter(is_active=True, is_c_suite=False).values_list("role", flat=True)))
    feedback = list(
        mission.gates.filter(status=ApprovalGate.Status.REVISION_REQUESTED).values_list("comment", flat=True)
    )
    prompt = briefs.plan_request_brief(mission, roles, feedback)
    draft = _ask(mission, drafter, cycle, "plan_draft", prompt, PlanDraft)
    draft_json = draft.model_dump_json(indent=1)
    _transcript(mission, drafter, cycle, f"Draft plan: {draft.summary}", {"plan": draft.model_dump()})
    event_record(
        mission=mission,
        kind=Event.Kind.PLAN,
        message=f"{drafter.title} drafted a plan with {len(draft.steps)} steps: {draft.summary}",
        data={"cycle": cycle.number},
    )

    votes = [_vote(mission, member, cycle, draft_json) for member in members]
    approvals = sum(v.stance == Vote.Stance.APPROVE for v in votes)
    objections = sum(v.stance == Vote.Stance.OBJECT for v in votes)
    if mission.consensus_rule == MissionTemplate.ConsensusRule.UNANIMOUS:
        agreed = approvals > 0 and objections == 0
    else:
        agreed = approvals * 2 > approvals + objections
    tally = f"{approvals} approve, {objections} object, {len(votes) - approvals - objections} abstain"
    rule = f"Rule: {mission.get_consensus_rule_display()}; {tally}."
    _cycle_close(cycle, DecisionCycle.Outcome.CONSENSUS if agreed else DecisionCycle.Outcome.DEADLOCK, rule)
    plan = _plan_store(mission, cycle, draft, adopted=agreed)
    if not agreed:
        _await_plan_decision(
            mission,
            ApprovalGate.Kind.DEADLOCK,
            f"The C-suite is deadlocked on plan v{plan.version} ({tally}). "
            "Adopt it anyway, send it back with comments, or reject the mission.",
        )
    elif mission.require_plan_approval:
        _await_plan_decision(
            mission,
            ApprovalGate.Kind.PLAN,
            f"The C-suite agreed on plan v{plan.version} ({tally}). Approve it before work starts?",
        )
    elif mission_transition(mission=mission, to=Mission.Status.STAFFING, expected=Mission.Status.PLANNING):
        _staff(mission)


def _await_plan_decision(mission: Mission, kind: str, question: str) -> None:
    with transaction.atomic():
        if mission_transition(
            mission=mission, to=Mission.Status.AWAITING_PLAN_APPROVAL, expected=Mission.Status.PLANNING
        ):
            gate_open(mission=mission, kind=kind, question=question)


def _ask(mission: Mission, agent: AgentSpec, cycle: DecisionCycle, purpose: str, prompt: str, output_type):
    profile = agent.model_profile or mission.model_profile
    context = CallContext(mission_id=mission.pk, purpose=purpose, cycle_id=cycle.pk, agent_id=agent.pk)
    return async_to_sync(ask_structured)(
        profile=profile, system_prompt=agent.system_prompt, prompt=prompt, output_type=output_type, context=context
    )


def _vote(mission: Mission, member: AgentSpec, cycle: DecisionCycle, draft_json: str) -> Vote:
    answer = _ask(mission, member, cycle, "plan_vote", briefs.vote_brief(mission, draft_json), PlanVote)
    with transaction.atomic():
        vote = Vote.objects.create(
            cycle=cycle,
            round=1,
            agent=member,
            stance=answer.stance,
            rationale=answer.rationale,
            amendments=answer.amendments,
        )
        event_record(
            mission=mission,
            kind=Event.Kind.VOTE,
            message=f"{member.title} votes {vote.get_stance_display().lower()}: {answer.rationale}",
            data={"vote": vote.pk, "stance": vote.stance, "agent": member.name},
        )
    return vote


def _cycle_open(mission: Mission, kind: str, summary: str) -> DecisionCycle:
    with transaction.atomic():
        number = (mission.cycles.order_by("-number").values_list("number", flat=True).first() or 0) + 1
        cycle = DecisionCycle.objects.create(mission=mission, number=number, kind=kind, rounds=1, summary=summary)
        event_record(mission=mission, kind=Event.Kind.CYCLE, message=summary, data={"cycle": number, "kind": kind})
    return cycle


def _cycle_close(cycle: DecisionCycle, outcome: str, summary: str) -> None:
    with transaction.atomic():
        DecisionCycle.objects.filter(pk=cycle.pk).update(outcome=outcome, summary=summary, finished_at=_now())
        message = f"{DecisionCycle.Outcome(outcome).label}. {summary}"
        event_record(
            mission=cycle.mission,
            kind=Event.Kind.CYCLE,
            message=message,
            data={"cycle": cycle.number, "outcome": outcome},
        )


def _plan_store(mission: Mission, cycle: DecisionCycle, draft: PlanDraft, *, adopted: bool) -> Plan:
    with transaction.atomic():
        version = (mission.plans.order_by("-version").values_list("version", flat=True).first() or 0) + 1
        plan = Plan.objects.create(mission=mission, version=version, summary=draft.summary, cycle=cycle)
        Step.objects.bulk_create(
            Step(
                plan=plan,
                key=s.key,
                order=i,
                title=s.title,
                kind=s.kind,
                role=s.role,
                instructions=s.instructions,
                depends_on=s.depends_on,
                acceptance=s.acceptance,
                estimated_tokens=s.estimated_tokens,
            )
            for i, s in enumerate(draft.steps)
        )
        event_record(
            mission=mission,
            kind=Event.Kind.PLAN,
            message=f"Plan v{version} {'adopted' if adopted else 'proposed without consensus'}: "
            f"{', '.join(s.key for s in draft.steps)}.",
            data={"plan": version},
        )
    return plan


# --- Staffing and the workspace ----------------------------------------------------------------------


def _staff(mission: Mission) -> None:
    """Give every step of the current plan an agent, prepare the workspace, start executing."""
    plan = current_plan(mission)
    for step in plan.steps.all():
        agent = agent_for_role(step.role) or agent_for_role("developer")
        if agent is None:
            raise AgentRunError(f"No active agent can do step {step.key!r} (role {step.role!r}).")
        with transaction.atomic():
            Step.objects.filter(pk=step.pk).update(agent=agent)
            event_record(
                mission=mission,
                kind=Event.Kind.STEP,
                message=f"Step {step.key} staffed with {agent.title}.",
                data={"step": step.key},
            )
    workspace = _workspace(mission)
    workspace.init()
    Mission.objects.filter(pk=mission.pk).update(workspace_path=str(workspace.root))
    if mission_transition(mission=mission, to=Mission.Status.EXECUTING, expected=Mission.Status.STAFFING):
        _schedule(mission)


def _workspace(mission: Mission) -> Workspace:
    return Workspace(settings.WORKSPACES_DIR / mission.code.hex)


# --- Execution ---------------------------------------------------------------------------------------


def current_plan(mission: Mission) -> Plan | None:
    return mission.plans.order_by("-version").first()


def _schedule(mission: Mission) -> None:
    """Finish the mission when every step is done; otherwise start the steps whose inputs are ready."""
    plan = current_plan(mission)
    steps = list(plan.steps.all()) if plan else []
    failed = [s for s in steps if s.status == Step.Status.FAILED]
    if failed:
        mission_fail(mission=mission, reason=f"Step {failed[0].key} failed: {failed[0].error}")
        return
    if steps and all(s.status == Step.Status.SUCCEEDED for s in steps):
        passed = TestRun.objects.filter(mission=mission).order_by("-id").values_list("passed", flat=True).first()
        summary = f"All {len(steps)} steps succeeded; last test run: {passed or 0} passed."
        if mission.require_deploy_approval:
            with transaction.atomic():
                if mission_transition(
                    mission=mission,
                    to=Mission.Status.AWAITING_DEPLOY_APPROVAL,
                    expected=Mission.Status.EXECUTING,
                    reason=summary,
                ):
                    gate_open(
                        mission=mission,
                        kind=ApprovalGate.Kind.DEPLOY,
                        question=f"{summary} Deploy commit {_workspace(mission).head()[:10]} to production?",
                    )
        elif mission_transition(
            mission=mission, to=Mission.Status.DEPLOYING, expected=Mission.Status.EXECUTING, reason=summary
        ):
            _deploy(mission)
        return
    done = {s.key for s in steps if s.status == Step.Status.SUCCEEDED}
    ready = [s.pk for s in steps if s.status == Step.Status.PENDING and set(s.depends_on) <= done]
    from missions.tasks import run_step

    for step_id in ready:
        transaction.on_commit(lambda step_id=step_id: run_step.delay(step_id))


def step_run(*, step_id: int) -> None:
    """Run one step with its agent, then hand control back to the mission.

    1. Claim the step (pending → running, with a lease) while the mission executes; lost claim → stop.
    2. Let the agent work with its tools; every tool call is recorded as it happens.
    3. Accept the step only when its checks pass: for code, tests ran green and the work is committed.
    4. Ask the mission to advance (start the next steps or finish).
    """
    now = _now()
    executing = Mission.objects.filter(plans__steps=step_id, status=Mission.Status.EXECUTING).exists()
    # The claim filters on the step's own columns only: a join would become "id IN (subquery)",
    # which PostgreSQL does not re-check under concurrency, letting two workers claim one step.
    claimed = executing and Step.objects.filter(pk=step_id, status=Step.Status.PENDING).update(
        status=Step.Status.RUNNING,
        attempt=F("attempt") + 1,
        started_at=now,
        lease_expires_at=now + timedelta(seconds=settings.STEP_LEASE_S),
    )
    if not claimed:
        return
    step = Step.objects.select_related("plan__mission__model_profile", "agent__model_profile").get(pk=step_id)
    mission = step.plan.mission
    with mission_logging(mission.code):
        event_record(
            mission=mission,
            kind=Event.Kind.STEP,
            message=f"Step {step.key} started by {step.agent.title if step.agent else 'an agent'}.",
            data={"step": step.key, "status": Step.Status.RUNNING},
        )
        try:
            outcome, error = _execute(mission, step)
        except BudgetExceeded as exc:
            _step_requeue(step)
            mission_pause_for_budget(mission=mission, reason=str(exc), resume_to=Mission.Status.EXECUTING)
            return
        except AgentRunError as exc:
            outcome, error = None, str(exc)
        except Exception as exc:
            logger.exception("step %s crashed", step.key)
            outcome, error = None, f"Internal error: {type(exc).__name__}: {exc}"
        _step_finish(mission, step, outcome, error)
    from missions.tasks import advance_mission

    transaction.on_commit(lambda: advance_mission.delay(mission.pk))


def _execute(mission: Mission, step: Step) -> tuple[dict | None, str]:
    agent = step.agent
    if agent is None:
        return None, "The step has no agent."
    refusal = weak_sandbox_refusal()
    if refusal:
        return None, refusal
    workspace = _workspace(mission)
    deps = list(step.plan.steps.filter(key__in=step.depends_on))

    async def on_test_run(result: PytestResult) -> None:
        await sync_to_async(_test_run_record)(mission, step, agent, result)

    async def on_message(kind: str, content: str, data: dict) -> None:
        await sync_to_async(_step_message)(mission, step, agent, kind, content, data)

    tools = StepTools(
        workspace,
        limits=SandboxLimits(timeout_s=settings.SANDBOX_TIMEOUT_S),
        on_test_run=on_test_run,
        allowed=tuple(agent.tools) or TOOL_NAMES,
    )
    report = async_to_sync(run_tool_agent)(
        profile=agent.model_profile or mission.model_profile,
        name=agent.name,
        system_prompt=agent.system_prompt,
        brief=briefs.step_brief(step, deps),
        tools=tools,
        context=CallContext(mission_id=mission.pk, purpose=f"step:{step.kind}", step_id=step.pk, agent_id=agent.pk),
        on_message=on_message,
        max_iterations=settings.STEP_MAX_TOOL_ITERATIONS,
    )
    if step.kind in (Step.Kind.CODEGEN, Step.Kind.TEST):
        test = tools.last_test
        if test is None:
            return None, "The agent finished without running the tests."
        if not (test.passed and not test.failed and not test.errors and not test.timed_out):
            return None, f"Tests did not pass: {test.passed} passed, {test.failed} failed, {test.errors} errors."
    try:
        with workspace_lock(workspace.root):
            leftover = workspace.commit(f"{step.key}: {step.title}")  # work the agent did not commit itself
    except WorkspaceError as exc:
        return None, f"Could not commit the step's work: {exc}"
    commits = tools.commits + ([leftover] if leftover else [])
    if step.kind == Step.Kind.CODEGEN and not commits:
        return None, "The agent finished without changing any file."
    output = {
        "summary": report.final_text[:2000],
        "commit": commits[-1] if commits else "",
        "files": tools.files_written,
    }
    return output, ""


def _step_requeue(step: Step) -> None:
    """Put a step back to pending (the budget ran out mid-way); it starts afresh when resumed."""
    Step.objects.filter(pk=step.pk, status=Step.Status.RUNNING).update(
        status=Step.Status.PENDING, lease_expires_at=None, error=""
    )


# --- Deployment ----------------------------------------------------------------------------------------


def _deploy(mission: Mission) -> None:
    """Push the approved commit to the deploy remote, tag it and store a downloadable archive.

    The conditional UPDATE on ``deploy_started_at`` makes it happen at most
    once per approval, however often the task is delivered.
    """
    if not Mission.objects.filter(
        pk=mission.pk, status=Mission.Status.DEPLOYING, deploy_started_at__isnull=True
    ).update(deploy_started_at=_now()):
        return
    workspace = _workspace(mission)
    try:
        sha = workspace.head()
        workspace.publish(remote=settings.DEPLOY_REMOTE, sha=sha, branch=mission.deploy_branch, tag=mission.deploy_tag)
        archive = workspace.archive(sha=sha, dest=settings.ARTIFACTS_DIR / f"{mission.code}.zip")
    except WorkspaceError as error:
        mission_fail(mission=mission, reason=f"Deployment failed: {error}")
        return
    with transaction.atomic():
        Mission.objects.filter(pk=mission.pk).update(
            deployed_sha=sha, deployed_ref=mission.deploy_tag, deployed_at=_now(), artifact_path=str(archive)
        )
        event_record(
            mission=mission,
            kind=Event.Kind.STATUS,
            message=f"Deployed {sha[:10]} to production as tag {mission.deploy_tag}; archive ready to download.",
            data={"sha": sha},
        )
        mission_transition(
            mission=mission,
            to=Mission.Status.COMPLETED,
            expected=Mission.Status.DEPLOYING,
            reason=f"Deployed {sha[:10]}.",
        )


def _step_finish(mission: Mission, step: Step, output: dict | None, error: str) -> None:
    status = Step.Status.SUCCEEDED if output is not None else Step.Status.FAILED
    with transaction.atomic():
        Step.objects.filter(pk=step.pk, status=Step.Status.RUNNING).update(
            status=status,
            output=output or {},
            summary=(output or {}).get("summary", ""),
            commit_sha=(output or {}).get("commit", ""),
            error=error,
            finished_at=_now(),
            lease_expires_at=None,
        )
        label = "succeeded" if output is not None else f"failed: {error}"
        event_record(
            mission=mission,
            kind=Event.Kind.STEP,
            message=f"Step {step.key} {label}",
            data={"step": step.key, "status": status},
        )


def _test_run_record(mission: Mission, step: Step, agent: AgentSpec, result: PytestResult) -> None:
    with transaction.atomic():
        run = TestRun.objects.create(
            mission=mission,
            step=step,
            passed=result.passed,
            failed=result.failed,
            errors=result.errors,
            skipped=result.skipped,
            duration_s=result.duration_s,
            isolation=result.isolation,
            timed_out=result.timed_out,
            tests=[{"nodeid": t.nodeid, "outcome": t.outcome} for t in result.tests],
            log=result.log,
        )
        event_record(
            mission=mission,
            kind=Event.Kind.TEST_RUN,
            message=f"Tests for {step.key}: {run} ({result.isolation} sandbox, {result.duration_s:.1f}s).",
            data={"test_run": run.pk, "step": step.key},
        )


def _step_message(mission: Mission, step: Step, agent: AgentSpec, kind: str, content: str, data: dict) -> None:
    with transaction.atomic():
        source = "Brief" if data.get("from") == "user" else agent.title  # the task the engine handed over
        message = agent_message_record(
            mission_id=mission.pk,
            step_id=step.pk,
            agent_id=agent.pk,
            source=source,
            kind=kind,
            content=content,
            data=data,
        )
        if kind == AgentMessage.Kind.TOOL_CALL:
            event_record(
                mission=mission,
                kind=Event.Kind.TOOL,
                message=f"{agent.title} · {step.key}: {content}",
                data={"message": message.pk, "step": step.key},
            )


def _transcript(mission: Mission, agent: AgentSpec, cycle: DecisionCycle, content: str, data: dict) -> None:
    agent_message_record(
        mission_id=mission.pk, cycle_id=cycle.pk, agent_id=agent.pk, source=agent.title, content=content, data=data
    )


# --- Crash recovery --------------------------------------------------------------------------------------

WORKER_DRIVEN = (Mission.Status.QUEUED, Mission.Status.STAFFING, Mission.Status.EXECUTING, Mission.Status.DEPLOYING)


def reap_stalled() -> dict[str, int]:
    """Re-start work whose worker vanished (killed, crashed, or its task was lost).

    1. A running step whose lease expired goes back to pending; its mission is advanced to run it again.
    2. A mission in a worker-driven status with no event for STALLED_AFTER_S is advanced again
       (every phase is idempotent, so a mission that was merely slow loses nothing).
    3. A mission stuck in planning goes back to queued: planning starts over.
    4. A deploy that started but never finished is cleared so it can run again (pushing the same commit is a no-op).
    """
    from missions.tasks import advance_mission

    now = _now()
    stale = now - timedelta(seconds=settings.STALLED_AFTER_S)
    expired = list(
        Step.objects.filter(status=Step.Status.RUNNING, lease_expires_at__lt=now).values_list("pk", "plan__mission")
    )
    for step_id, _ in expired:
        Step.objects.filter(pk=step_id, status=Step.Status.RUNNING, lease_expires_at__lt=now).update(
            status=Step.Status.PENDING, lease_expires_at=None, error="The worker running this step stopped; retried."
        )
    quiet = Mission.objects.annotate(last_event=Max("events__created_at")).filter(last_event__lt=stale)
    to_advance = {mission_id for _, mission_id in expired}
    to_advance |= set(quiet.filter(status__in=WORKER_DRIVEN).values_list("pk", flat=True))
    for mission in quiet.filter(status=Mission.Status.PLANNING):
        to_advance.add(mission.pk)
        mission_transition(
            mission=mission,
            to=Mission.Status.QUEUED,
            expected=Mission.Status.PLANNING,
            reason="Planning stopped without finishing (worker lost); starting it again.",
        )
    Mission.objects.filter(
        status=Mission.Status.DEPLOYING, deploy_started_at__lt=stale, deployed_at__isnull=True
    ).update(deploy_started_at=None)
    for mission_id in to_advance:
        advance_mission.delay(mission_id)
    return {"steps_requeued": len(expired), "missions_advanced": len(to_advance)}
