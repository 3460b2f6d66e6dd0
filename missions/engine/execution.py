"""Execution: start the ready steps; run one step with its agent and real tools, accept it only when its checks pass.

A failed attempt is retried with exponential backoff and jitter, up to
STEP_MAX_ATTEMPTS; each retry's brief says why the last one failed.
With peer review on (reviews/peer.py), green work is reviewed before it is pushed: "request changes"
runs the agent again in the same workspace as the step's next attempt; a step the reviewers do not
approve in the end is pushed and held ("awaiting review") until a person decides at a review gate.
"""

import logging
import random
import shutil
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from agents.errors import AgentRunError, BudgetExceeded, MissionStopped, database_error_is_transient
from agents.models import AgentMessage, AgentSpec
from agents.runtime.executor import run_tool_agent
from agents.runtime.metering import CallContext
from agents.runtime.sandbox import PytestResult, SandboxError, SandboxLimits, sandbox_isolation
from agents.runtime.tools import TOOL_NAMES, StepTools, workspace_lock
from agents.runtime.workspace import Workspace, WorkspaceError
from agents.services import agent_message_record
from missions import briefs
from missions.clones import step_clone_path, step_clones_remove
from missions.engine.common import connection_reset, enqueue_after_commit
from missions.engine.delivery import execution_done, resolve_failed
from missions.engine.testing import (
    dropped_tests,
    mission_baseline,
    mission_test_runner,
    test_run_fields,
    test_verdict,
)
from missions.events import event_record
from missions.models import Event, Mission, Step, TestRun
from missions.repomap import mission_repo_map
from missions.repository import mission_repo_url
from missions.selectors import current_plan
from missions.services import mission_fail, mission_transition
from missions.streams import stream_target_for
from orchestrator_site.logging import mission_logging
from reviews import peer
from reviews.gates import gate_open, gate_open_budget
from reviews.models import ApprovalGate

logger = logging.getLogger(__name__)
CODE_KINDS = (Step.Kind.CODEGEN, Step.Kind.TEST)  # steps that change code get the repository map


def mission_schedule(mission: Mission) -> None:
    """Finish when every step succeeded; fail on a step that failed for good; else start the ready steps."""
    plan = current_plan(mission)
    steps = list(plan.steps.all()) if plan else []
    failed = [s for s in steps if s.status == Step.Status.FAILED]
    if failed and failed[0].merge_from:  # the moved default branch could not be merged: a human decides
        resolve_failed(mission, failed[0])
        return
    if failed:
        mission_fail(mission=mission, reason=f"Step {failed[0].key} failed: {failed[0].error}")
        return
    held = [s for s in steps if s.status == Step.Status.IN_REVIEW]
    if held:  # the agent reviewers could not approve it: a person decides, the mission waits holding no worker
        _review_gate_open(mission, held[0])
        return
    if steps and all(s.status == Step.Status.SUCCEEDED for s in steps):
        execution_done(mission, steps)
        return
    done = {s.key for s in steps if s.status == Step.Status.SUCCEEDED}
    now = timezone.now()
    ready = [
        s.pk
        for s in steps
        if s.status == Step.Status.PENDING and set(s.depends_on) <= done and (s.retry_at is None or s.retry_at <= now)
    ]
    from missions.tasks import run_step

    for step_id in ready:
        enqueue_after_commit(run_step, step_id)


def _review_gate_open(mission: Mission, step: Step) -> None:
    with transaction.atomic():
        if not mission_transition(
            mission=mission,
            to=Mission.Status.AWAITING_REVIEW,
            expected=Mission.Status.EXECUTING,
            reason=f"Step {step.key} needs a human review.",
        ):
            return
        gate_open(
            mission=mission,
            kind=ApprovalGate.Kind.REVIEW,
            question=peer.review_gate_question(step),
            data={"step": step.key, "step_id": step.pk, "round": step.output.get("review_round", 0)},
        )


def weak_sandbox_refusal() -> str:
    """Why generated code must not run here ('' when it may): no usable sandbox, or a weak one not chosen."""
    try:
        isolation = sandbox_isolation()
    except SandboxError as error:
        return f"The sandbox is not usable: {error}"
    if isolation == "subprocess" and settings.PRODUCTION and settings.SANDBOX_BACKEND != "subprocess":
        return (
            "Refusing to run generated code without bubblewrap in production: install bubblewrap, "
            "or set SANDBOX_BACKEND=subprocess to accept the weaker sandbox."
        )
    return ""


def retry_delay_s(attempt: int) -> float:
    """Exponential backoff with full jitter, capped: attempt 1 waits up to base, 2 up to 2×base, …"""
    ceiling = min(settings.STEP_RETRY_MAX_S, settings.STEP_RETRY_BASE_S * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def step_run(*, step_id: int) -> None:
    """Run one step with its agent, then hand control back to the mission.

    1. Claim the step (pending → running, with a lease) while the mission executes; lost claim → stop.
    2. Let the agent work with its tools, renewing the lease while this worker lives; every tool call
       is recorded as it happens. A dropped database connection gives the claim back and retries the task.
    3. Accept the step only when its checks pass: for code, tests ran green and the work is committed.
       Otherwise retry later (backoff), or fail it when attempts are used up.
    4. Ask the mission to advance (start the next steps, retry, or finish).
    """
    now = timezone.now()
    executing = Mission.objects.filter(plans__steps=step_id, status=Mission.Status.EXECUTING).exists()
    # The claim filters on the step's own columns only: a join would become "id IN (subquery)",
    # which PostgreSQL does not re-check under concurrency, letting two workers claim one step.
    claimed = executing and Step.objects.filter(pk=step_id, status=Step.Status.PENDING).exclude(
        retry_at__gt=now
    ).update(
        status=Step.Status.RUNNING,
        attempt=F("attempt") + 1,
        worker=settings.WORKER_NAME,
        started_at=now,
        retry_at=None,
        lease_expires_at=now + timedelta(seconds=settings.STEP_LEASE_S),
    )
    if not claimed:
        return
    try:
        with _lease_kept(step_id, now):
            _step_work(step_id)
    except Exception as exc:
        if not database_error_is_transient(exc):
            raise
        # Not the step's fault: give the claim and the attempt back; the task runs again (tasks.py).
        logger.warning("step %s: database connection lost (%s); retrying", step_id, exc)
        connection_reset()
        _step_release(step_id, now)
        raise


def _step_work(step_id: int) -> None:
    step = Step.objects.select_related("plan__mission__model_profile", "agent__model_profile").get(pk=step_id)
    mission = step.plan.mission
    # Earlier attempts are over (this claim took the next number): a clone a lost worker left goes now.
    step_clones_remove(mission_code=mission.code, key=step.key, below=step.attempt)
    with mission_logging(mission.code):
        event_record(
            mission=mission,
            kind=Event.Kind.STEP,
            message=f"Step {step.key} started by {step.agent.title if step.agent else 'an agent'}"
            + (f" (attempt {step.tries} of {settings.STEP_MAX_ATTEMPTS})." if step.tries > 1 else "."),
            # The attempt, so the page can group this attempt's transcript and test runs (selectors.step_groups).
            data={"step": step.key, "status": Step.Status.RUNNING, "attempt": step.attempt},
            actor_agent=step.agent,
        )
        refusal = weak_sandbox_refusal()
        if refusal:  # retrying cannot help: the mission stops here with the reason
            _step_finish(mission, step, None, refusal, retry=False)
            _advance(mission)
            return
        try:
            outcome, error = _execute(mission, step)
        except BudgetExceeded as exc:
            _step_requeue(step)
            gate_open_budget(mission=mission, reason=str(exc), resume_to=Mission.Status.EXECUTING)
            return
        except MissionStopped as exc:
            if Mission.objects.filter(pk=mission.pk, status=Mission.Status.PAUSED).exists():
                _step_pause(mission, step)  # it starts again when the mission resumes
            else:
                _step_finish(mission, step, None, str(exc), final_status=Step.Status.CANCELLED)
            return
        except AgentRunError as exc:
            outcome, error = None, str(exc)
        except Exception as exc:
            if database_error_is_transient(exc):
                raise
            logger.exception("step %s crashed", step.key)
            outcome, error = None, f"Internal error: {type(exc).__name__}: {exc}"
        _step_finish(mission, step, outcome, error)
    _advance(mission)


def _advance(mission: Mission) -> None:
    from missions.tasks import advance_mission

    enqueue_after_commit(advance_mission, mission.pk)


def _execute(mission: Mission, step: Step) -> tuple[dict | None, str]:
    if step.agent is None:
        return None, "The step has no agent."
    dest = step_clone_path(mission.code, step.key, step.attempt)
    shutil.rmtree(dest, ignore_errors=True)  # left over by a worker that died mid-step
    try:
        # Each attempt works in its own clone of the mission branch, on this worker's disk only.
        workspace = Workspace.clone_branch(url=mission_repo_url(mission), branch=mission.deploy_branch, dest=dest)
    except WorkspaceError as exc:
        return None, f"Could not prepare the step's workspace: {exc}"
    try:
        return _execute_in(mission, step, workspace)
    finally:
        # Every attempt's clone goes, failed or not: the work that counts was pushed to the mission branch.
        shutil.rmtree(workspace.root, ignore_errors=True)


def _execute_in(mission: Mission, step: Step, workspace: Workspace) -> tuple[dict | None, str]:
    """Let the agent work in its clone; accept, commit, merge and push only when the step's checks pass."""
    agent = step.agent
    base = workspace.head()
    judged_at = mission.base_sha  # the commit whose baseline the tests are compared with
    if step.merge_from:
        judged_at, problem = _merge_default_branch(mission, step, workspace)
        if problem:
            return None, problem
    deps = list(step.plan.steps.filter(key__in=step.depends_on))
    try:
        baseline = mission_baseline(mission, judged_at, source=workspace.root if step.merge_from else None)
    except SandboxError as exc:
        return None, f"Could not run the tests at {judged_at[:10]} to compare with: {exc}"

    def judge(result: PytestResult):
        return test_verdict(result, baseline)

    async def on_test_run(result: PytestResult) -> None:
        await sync_to_async(_test_run_record)(mission, step, result, judge(result).comparison)

    async def on_message(kind: str, content: str, data: dict) -> None:
        await sync_to_async(_step_message)(mission, step, agent, kind, content, data)

    def tool_judge(result: PytestResult) -> tuple[bool, str]:
        verdict = judge(result)
        if verdict.ok and (still := verdict.comparison.get("counts", {}).get("still_failing")):
            return True, f"{still} tests failed at the base commit already; they do not block this step."
        return verdict.ok, verdict.reason

    def agent_run(revision: dict) -> tuple[StepTools, object]:
        tools = StepTools(
            workspace,
            limits=SandboxLimits(timeout_s=settings.SANDBOX_TIMEOUT_S),
            on_test_run=on_test_run,
            runner=mission_test_runner(mission, judged_at),
            judge=tool_judge,
            allowed=tuple(agent.tools) if (agent.tools or agent.is_dynamic) else TOOL_NAMES,
        )
        report = async_to_sync(run_tool_agent)(
            profile=agent.model_profile or mission.model_profile,
            name=agent.name,
            system_prompt=agent.system_prompt,
            brief=briefs.step_brief(
                step,
                deps,
                previous_error=step.error,
                knowledge=mission.knowledge_snapshot,
                repo_map=mission_repo_map(mission, workspace) if step.kind in CODE_KINDS else "",
                revision=revision,
            ),
            tools=tools,
            # A revision asked for by a review round is attributed to that round's cycle.
            context=CallContext(
                mission_id=mission.pk,
                purpose=f"step:{step.kind}",
                cycle_id=revision.get("cycle"),
                step_id=step.pk,
                agent_id=agent.pk,
                stream=stream_target_for(mission, agent=agent.title, step=step.key),
            ),
            on_message=on_message,
            max_iterations=settings.STEP_MAX_TOOL_ITERATIONS,
        )
        return tools, report

    tested = step.kind in (Step.Kind.CODEGEN, Step.Kind.TEST)
    reviewers = peer.step_reviewers(mission, step)
    revision, commits, files, review = dict(step.revision or {}), [], [], None
    while True:  # one agent run, then (with reviewers) one review round; "request changes" runs the agent again
        tools, report = agent_run(revision)
        files += [path for path in tools.files_written if path not in files]
        if tested and tools.last_test is None:
            return None, "The agent finished without running the tests."
        try:
            with workspace_lock(workspace.root):
                leftover = workspace.commit(f"{step.key}: {step.title}")  # work the agent did not commit itself
                committed_tree = workspace.head_tree()
            commits += tools.commits + ([leftover] if leftover else [])
            if not commits and workspace.head() != base:  # a resolve step whose merge needed no edits
                commits = [workspace.head()]
            if step.kind == Step.Kind.CODEGEN and not commits:
                return None, "The agent finished without changing any file."
            if tested and (refusal := _acceptance_refusal(tools, committed_tree, judge)):
                return None, refusal
            diff = ""  # the step's whole change, which the reviewers read and the page shows; a resolve step: its merge
            if commits:
                diff = workspace.diff(commits[-1]) if step.merge_from else workspace.diff_range(base, commits[-1])
        except WorkspaceError as exc:
            return None, f"Could not commit the step's work: {exc}"
        if not (reviewers and diff):
            break
        review = peer.step_review_round(
            mission=mission, step=step, reviewers=reviewers, diff=diff, tests=_tests_line(tools.last_test)
        )
        if review.decision != peer.REVISE:
            break
        revision = review.revision()
        if not _step_revise(mission, step, revision):
            return None, "The step was taken over by another run during its review."
    try:
        test_config = workspace.test_config_changes(base) if commits else []
        if commits and (refusal := _integrate(mission, step, workspace, tools, judge if tested else None)):
            return None, refusal
    except WorkspaceError as exc:
        return None, f"Could not commit the step's work: {exc}"
    output = {
        "summary": report.final_text[:2000],
        "commit": commits[-1] if commits else "",
        "files": files,
        "diff": diff[:20000],
        "test_config_files": test_config,
        "dropped_tests": dropped_tests(judge(tools.last_test).comparison)[:50] if tested and baseline else [],
    }
    if review is not None:
        output["review_round"] = review.round
        if review.decision == peer.HUMAN:  # pushed, and held for a person at a review gate
            output["awaiting_review"], output["review_reason"] = True, review.reason
    return output, ""


def _tests_line(result: PytestResult | None) -> str:
    if result is None:
        return "not run (this kind of step is not tested)"
    return f"{result.passed} passed, {result.failed} failed, {result.errors} errors in {result.duration_s:.1f}s"


def _step_revise(mission: Mission, step: Step, revision: dict) -> bool:
    """The reviewers asked for changes: the next attempt of the step starts now, in the same workspace."""
    with transaction.atomic():
        updated = Step.objects.filter(pk=step.pk, status=Step.Status.RUNNING, attempt=step.attempt).update(
            attempt=F("attempt") + 1,
            review_revisions=F("review_revisions") + 1,
            revision=revision,
            lease_expires_at=timezone.now() + timedelta(seconds=settings.STEP_LEASE_S),
        )
        if not updated:
            return False
        step.attempt += 1
        step.review_revisions += 1
        step.revision = revision
        event_record(
            mission=mission,
            kind=Event.Kind.STEP,
            message=f"Step {step.key}: {revision['by']} asked for changes; attempt {step.attempt} revises it.",
            data={"step": step.key, "status": Step.Status.RUNNING, "attempt": step.attempt},
        )
    return True


def _merge_default_branch(mission: Mission, step: Step, workspace: Workspace) -> tuple[str, str]:
    """A resolve step starts by merging the commit the default branch had moved to: (that commit, problem).

    Conflicts stay in the files for the agent; the merge is committed once their markers are gone.
    """
    branch = mission.project.default_branch
    try:
        fetched = workspace.fetch_branch(branch, remote=mission.project.git_url)
        target = step.merge_from if workspace.is_ancestor(step.merge_from, fetched) else fetched
        if not workspace.is_ancestor(target, workspace.head()):
            workspace.merge_in(target, f"Merge {branch} ({target[:10]})", keep_conflicts=True)
    except WorkspaceError as exc:
        return "", f"Could not merge {branch} into the step's workspace: {exc}"
    return target, ""


def _integrate(mission: Mission, step: Step, workspace: Workspace, tools: StepTools, judge) -> str:
    """Merge the step's work onto the mission branch as it is now and push; '' when pushed, else the refusal.

    Another step may push first: then fetch, merge again and retry, up to GIT_PUSH_ATTEMPTS times. A merge
    that brought in others' work has a tree nobody tested: it is tested before it is pushed.
    """
    work = workspace.head()
    for _ in range(settings.GIT_PUSH_ATTEMPTS):
        target = workspace.fetch_branch(mission.deploy_branch)
        with workspace_lock(workspace.root):
            workspace.merge_onto(target, work, f"Merge step {step.key}: {step.title}")
            merged_tree = workspace.head_tree()
        if judge and (refusal := _acceptance_refusal(tools, merged_tree, judge)):
            return f"With the work merged meanwhile: {refusal}"
        if workspace.push_head(mission.deploy_branch):
            return ""
        time.sleep(random.uniform(0.05, 0.5))  # another step pushed first: let it finish, then merge again
    return f"The mission branch kept moving: could not push after {settings.GIT_PUSH_ATTEMPTS} attempts."


def _acceptance_refusal(tools: StepTools, committed_tree: str, judge) -> str:
    """Why the committed work is not accepted ('' when it is): its tests must have passed on exactly that tree.

    The agent's last run counts only when nothing changed after it; otherwise (files edited after the
    green run, or during it) the engine runs the tests itself on what was committed. ``judge`` says
    whether a run is green (missions.engine.testing: on a project, against its baseline).
    """
    test = tools.last_test
    if tools.last_test_tree != committed_tree:
        try:
            test = async_to_sync(tools.test_run)()
        except (SandboxError, WorkspaceError) as exc:
            return f"The sandbox could not run the acceptance tests on the committed work: {exc}"
        verdict = judge(test)
        if not verdict.ok:
            return f"The committed work changed after the agent's last test run, and on it: {verdict.reason}"
    verdict = judge(test)
    return "" if verdict.ok else verdict.reason


def _step_requeue(step: Step) -> None:
    """Put a step back to pending (the budget ran out mid-way); it starts afresh when resumed."""
    Step.objects.filter(pk=step.pk, status=Step.Status.RUNNING, attempt=step.attempt).update(
        status=Step.Status.PENDING, lease_expires_at=None, error="", attempt=F("attempt") - 1
    )  # not the step's fault: the attempt is given back


def _step_pause(mission: Mission, step: Step) -> None:
    """The mission was paused mid-step: back to pending, the attempt given back.

    Its error (the previous attempt's) is kept, so the resumed run has the same brief and the model calls
    already answered replay from the ledger instead of being paid again.
    """
    with transaction.atomic():
        Step.objects.filter(pk=step.pk, status=Step.Status.RUNNING, attempt=step.attempt).update(
            status=Step.Status.PENDING, lease_expires_at=None, attempt=F("attempt") - 1
        )
        event_record(
            mission=mission,
            kind=Event.Kind.STEP,
            message=f"Step {step.key} stopped after its current tool call: the mission is paused.",
            data={"step": step.key, "status": Step.Status.PENDING},
        )


@contextmanager
def _lease_kept(step_id: int, claimed_at):
    """Renew the step's lease every third of STEP_LEASE_S for as long as this worker runs it.

    A model call or a test run can be silent for longer than a short lease; this renewal says
    the worker is alive, not that the step progressed. It dies with the worker, so a killed
    worker's step is reaped within STEP_LEASE_S (plus the reaper's period).
    """
    stop = threading.Event()

    def keep() -> None:
        try:
            while not stop.wait(settings.STEP_LEASE_S / 3):
                try:
                    renewed = Step.objects.filter(pk=step_id, status=Step.Status.RUNNING, started_at=claimed_at).update(
                        lease_expires_at=timezone.now() + timedelta(seconds=settings.STEP_LEASE_S)
                    )
                except DatabaseError:
                    logger.warning("step %s: could not renew the lease; trying again", step_id, exc_info=True)
                    connection_reset()
                    continue
                if not renewed:  # finished, released or taken over: nothing left to keep
                    return
        finally:
            connection.close()  # this thread's own connection

    keeper = threading.Thread(target=keep, name=f"step-{step_id}-lease", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join(timeout=10)


def _step_release(step_id: int, claimed_at) -> None:
    """Undo this run's claim: pending again, the attempt given back, so the retry replays the same brief.

    When the database is still away this fails too; then the lease runs out and the reaper does it.
    """
    try:
        Step.objects.filter(pk=step_id, status=Step.Status.RUNNING, started_at=claimed_at).update(
            status=Step.Status.PENDING, lease_expires_at=None, attempt=F("attempt") - 1
        )
    except DatabaseError:
        logger.warning("step %s: could not release the claim yet; the reaper will", step_id, exc_info=True)


def _step_finish(
    mission: Mission,
    step: Step,
    output: dict | None,
    error: str,
    *,
    final_status: str = Step.Status.FAILED,
    retry: bool = True,
) -> None:
    """Record success; or schedule a retry with backoff; or fail for good when attempts are used up."""
    from missions.tasks import run_step

    retry = retry and output is None and final_status == Step.Status.FAILED and step.tries < settings.STEP_MAX_ATTEMPTS
    test_config = (output or {}).get("test_config_files", [])
    held = bool((output or {}).get("awaiting_review"))
    if output is not None:
        status = Step.Status.IN_REVIEW if held else Step.Status.SUCCEEDED
    else:
        status = Step.Status.PENDING if retry else final_status
    delay = retry_delay_s(step.tries) if retry else 0
    with transaction.atomic():
        # The attempt guard: a run the reaper gave up on must not overwrite the run that replaced it.
        updated = Step.objects.filter(pk=step.pk, status=Step.Status.RUNNING, attempt=step.attempt).update(
            status=status,
            output=output or {},
            summary=(output or {}).get("summary", ""),
            commit_sha=(output or {}).get("commit", ""),
            alters_test_config=bool(test_config),
            test_config_files=test_config,
            error=error,
            finished_at=None if retry or held else timezone.now(),
            lease_expires_at=None,
            retry_at=timezone.now() + timedelta(seconds=delay) if retry else None,
        )
        if not updated:
            logger.warning(
                "step %s attempt %s finished after it was taken over; result dropped", step.key, step.attempt
            )
            return
        dropped = (output or {}).get("dropped_tests", [])
        if held:
            message = f"Step {step.key} is done and pushed, but {output['review_reason']}: a human reviews it."
        elif output is not None and dropped:
            message = (
                f"Step {step.key} succeeded, but {len(dropped)} tests that passed at the base commit no longer run "
                f"({', '.join(dropped[:5])}): a human decides at the deploy gate."
            )
        elif output is not None and test_config:
            message = (
                f"Step {step.key} succeeded, but its change alters how tests run ({', '.join(test_config[:5])}): "
                "its test results do not count until a human has reviewed it at the deploy gate."
            )
        elif output is not None:
            message = f"Step {step.key} succeeded."
        elif retry:
            message = (
                f"Step {step.key} failed (attempt {step.tries} of {settings.STEP_MAX_ATTEMPTS}): {error} "
                f"Retrying in {delay:.0f}s."
            )
        else:
            message = f"Step {step.key} {Step.Status(status).label.lower()}: {error}"
        event_record(mission=mission, kind=Event.Kind.STEP, message=message, data={"step": step.key, "status": status})
        if retry:
            enqueue_after_commit(run_step, step.pk, countdown=delay)


def _test_run_record(mission: Mission, step: Step, result: PytestResult, comparison: dict) -> None:
    with transaction.atomic():
        run = TestRun.objects.create(mission=mission, step=step, comparison=comparison, **test_run_fields(result))
        event_record(
            mission=mission,
            kind=Event.Kind.TEST_RUN,
            message=f"Tests for {step.key}: {run} ({result.isolation} sandbox, {result.duration_s:.1f}s).",
            data={"test_run": run.pk, "step": step.key},
        )


def _step_message(mission: Mission, step: Step, agent: AgentSpec, kind: str, content: str, data: dict) -> None:
    with transaction.atomic():
        # Every sign of progress renews the lease, so a long but live step is not reaped.
        Step.objects.filter(pk=step.pk, status=Step.Status.RUNNING, attempt=step.attempt).update(
            lease_expires_at=timezone.now() + timedelta(seconds=settings.STEP_LEASE_S)
        )
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
                actor_agent=agent,
            )
