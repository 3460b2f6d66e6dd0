"""Delivery: the deploy gate once every step succeeded; then push the approved commit, tag it, keep an archive."""

import shlex

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.runtime.sandbox import SandboxError, SandboxLimits, run_sandboxed
from agents.runtime.workspace import Workspace, WorkspaceError
from missions.changes import mission_change
from missions.engine.common import enqueue_after_commit
from missions.engine.testing import mission_baseline, run_test_command_for, test_run_fields, test_verdict
from missions.events import event_record
from missions.knowledge import knowledge_record_retrospective
from missions.models import Event, Mission, Step, TestRun
from missions.repository import mission_checkout, mission_head
from missions.selectors import current_plan
from missions.services import mission_fail, mission_transition
from reviews.gates import gate_open
from reviews.models import ApprovalGate


def execution_done(mission: Mission, steps: list[Step]) -> None:
    passed = TestRun.objects.filter(mission=mission).order_by("-id").values_list("passed", flat=True).first()
    summary = f"All {len(steps)} steps succeeded; last test run: {passed or 0} passed."
    altered = {s.key: s.test_config_files for s in steps if s.alters_test_config}
    if altered:
        # A change to how tests run makes its own test results no evidence: a human must decide, always.
        files = sorted({f for names in altered.values() for f in names})
        summary += (
            f" This change alters how tests run (steps {', '.join(altered)}: {', '.join(files[:8])}), so the test "
            "results above are not evidence: read those files before approving."
        )
    dropped = sorted({t for s in steps for t in (s.output or {}).get("dropped_tests", [])})
    if dropped:
        summary += (
            f" {len(dropped)} tests that passed at the base commit no longer run (removed or skipped: "
            f"{', '.join(dropped[:8])}): check that this is intended before approving."
        )
    if mission.require_deploy_approval or altered or dropped:
        head = mission_head(mission)  # git, outside the transaction: no lock held across a remote call
        change = mission_change(mission, head)  # the same: a clone; a failure is stored and shown, the gate opens
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
                    question=f"{summary} {_deploy_question(mission, head)}",
                    data={"sha": head, "alters_test_config": altered, "dropped_tests": dropped, "change": change},
                )
    elif mission_transition(
        mission=mission, to=Mission.Status.DEPLOYING, expected=Mission.Status.EXECUTING, reason=summary
    ):
        mission_deploy(mission)


def _deploy_question(mission: Mission, head: str) -> str:
    if mission.project_id:
        return f"Push commit {head[:10]} to {mission.project.name} as branch {mission.deploy_branch}?"
    return f"Deploy commit {head[:10]} to production?"


def mission_deploy(mission: Mission) -> None:
    """Push the approved commit to the deploy remote, tag it and store a downloadable archive.

    The conditional UPDATE on ``deploy_started_at`` makes it happen at most
    once per approval, however often the task is delivered.
    """
    if not Mission.objects.filter(
        pk=mission.pk, status=Mission.Status.DEPLOYING, deploy_started_at__isnull=True
    ).update(deploy_started_at=timezone.now()):
        return
    try:
        with mission_checkout(mission, "deploy") as workspace:
            if settings.DEPLOY_COMMAND:
                failure = _run_deploy_command(mission, workspace)
                if failure:
                    mission_fail(mission=mission, reason=failure)
                    return
            approved = _approved_gate_data(mission)
            sha = approved.get("sha") or workspace.head()
            if mission.project_id:
                base_note = ""
                if not approved.get("unmerged"):
                    moved = _merge_moved_default_branch(mission, workspace, sha)
                    if moved is None:
                        return  # sent back to execution, or failed, with the reason in the events
                    sha, base_note = moved
                where, notes = _push_to_project(mission, workspace, sha)
                notes = base_note + notes
            else:
                workspace.publish(
                    remote=settings.DEPLOY_REMOTE, sha=sha, branch=mission.deploy_branch, tag=mission.deploy_tag
                )
                where, notes = f"production as tag {mission.deploy_tag}", ""
            archive = workspace.archive(sha=sha, dest=settings.ARTIFACTS_DIR / f"{mission.code}.zip")
    except WorkspaceError as error:
        mission_fail(mission=mission, reason=f"Deployment failed: {error}")
        return
    with transaction.atomic():
        Mission.objects.filter(pk=mission.pk).update(
            deployed_sha=sha,
            deployed_ref=mission.deploy_branch if mission.project_id else mission.deploy_tag,
            pushed_sha=sha if mission.project_id else "",
            deployed_at=timezone.now(),
            artifact_path=str(archive),
        )
        event_record(
            mission=mission,
            kind=Event.Kind.STATUS,
            message=f"{'Pushed' if mission.project_id else 'Deployed'} {sha[:10]} to {where}; "
            f"archive ready to download.{notes}",
            data={"sha": sha},
        )
        if mission_transition(
            mission=mission,
            to=Mission.Status.COMPLETED,
            expected=Mission.Status.DEPLOYING,
            reason=f"{'Pushed' if mission.project_id else 'Deployed'} {sha[:10]}.",
        ):
            knowledge_record_retrospective(mission)


def _push_to_project(mission: Mission, workspace: Workspace, sha: str) -> tuple[str, str]:
    """Push the approved commit as branch missions/<code> to the project's remote, never forced.

    With "merge after approval", the default branch is moved too, only as a fast-forward; when it moved
    meanwhile that is said in the event, and the branch waits for a human to merge it.
    """
    project = mission.project
    workspace.push_commit(remote=project.push_target, sha=sha, branch=mission.deploy_branch)
    where = f"{project.name} as branch {mission.deploy_branch}"
    if not project.merge_after_approval:
        return where, ""
    try:
        workspace.push_commit(remote=project.push_target, sha=sha, branch=project.default_branch)
    except WorkspaceError as error:
        return where, f" Not merged into {project.default_branch}: {error}"
    return where, f" Merged into {project.default_branch} (fast-forward)."


def _run_deploy_command(mission: Mission, workspace: Workspace) -> str:
    """Run DEPLOY_COMMAND in the sandbox on the approved tree; '' when it succeeded, else the reason."""
    argv = shlex.split(settings.DEPLOY_COMMAND)
    try:
        result = run_sandboxed(argv, workdir=workspace.root, limits=SandboxLimits(timeout_s=settings.SANDBOX_TIMEOUT_S))
    except SandboxError as error:
        return f"Deployment failed: the deploy command could not run: {error}"
    output = (result.stdout + result.stderr).strip()[-1500:]
    event_record(
        mission=mission,
        kind=Event.Kind.STATUS,
        message=f"Deploy command `{settings.DEPLOY_COMMAND}` exited {result.returncode}"
        + (" (timed out)" if result.timed_out else "")
        + f" in the {result.isolation} sandbox.",
        data={"returncode": result.returncode, "output": output},
    )
    if result.returncode != 0 or result.timed_out:
        return f"Deployment failed: `{settings.DEPLOY_COMMAND}` exited {result.returncode}: {output[-500:]}"
    return ""


def _approved_gate_data(mission: Mission) -> dict:
    """What the reviewer approved (its "sha", not whatever HEAD is now); {} without an approved gate."""
    gate = (
        ApprovalGate.objects.filter(mission=mission, kind=ApprovalGate.Kind.DEPLOY, status=ApprovalGate.Status.APPROVED)
        .order_by("-decided_at")
        .first()
    )
    return dict(gate.data or {}) if gate else {}


def _merge_moved_default_branch(mission: Mission, workspace: Workspace, sha: str) -> tuple[str, str] | None:
    """Bring the project's default branch into the approved work when it moved since; (commit to push, note).

    Merged (never rebased: nothing is force-pushed) and re-tested with the project's tests. A conflict or a
    regression sends the mission back to execution with a step that resolves it; None then. A default
    branch that cannot be fetched (deleted, unreachable) is no reason to withhold the branch: it is said.
    """
    project = mission.project
    branch = project.default_branch
    try:
        upstream = workspace.fetch_branch(branch, remote=project.git_url)
    except WorkspaceError as error:
        return sha, f" Could not fetch {branch} to check whether it moved ({error}); pushed without merging it."
    if workspace.is_ancestor(upstream, sha):
        return sha, ""
    workspace.checkout_detached(sha)
    conflicted = workspace.merge_in(upstream, f"Merge {branch} ({upstream[:10]}) into {mission.deploy_branch}")
    if conflicted:
        _send_back(
            mission,
            upstream=upstream,
            reason=f"{branch} moved to {upstream[:10]} since the base and conflicts with this work in "
            f"{', '.join(conflicted[:10])}.",
            instructions=f"The project's {branch} moved since this mission began, and merging it conflicts in "
            f"{', '.join(conflicted[:20])}. The repository is in the middle of that merge: edit each of these files "
            "to keep what both sides need, remove every conflict marker (<<<<<<<, =======, >>>>>>>), run the "
            "tests until they pass, then commit.",
        )
        return None
    try:
        # Judged against where the branch moved to: what the move itself broke is not this mission's doing.
        baseline = mission_baseline(mission, upstream, source=workspace.root)
        result = run_test_command_for(mission, workspace, upstream)
    except SandboxError as error:
        mission_fail(
            mission=mission, reason=f"Deployment stopped: the tests could not run on {branch} merged in: {error}"
        )
        return None
    verdict = test_verdict(result, baseline)
    TestRun.objects.create(
        mission=mission,
        purpose=TestRun.Purpose.DELIVERY,
        comparison=verdict.comparison,
        **test_run_fields(result),
    )
    if not verdict.ok:
        _send_back(
            mission,
            upstream=upstream,
            reason=f"{branch} moved to {upstream[:10]} since the base; merged with this work, {verdict.reason}",
            instructions=f"The project's {branch} moved since this mission began. Merged with this work, the "
            f"project's tests fail: {verdict.reason} The repository has {branch} merged in: fix the code so the "
            "whole test suite passes, then commit.",
        )
        return None
    merged = workspace.head()
    if not workspace.push_head(mission.deploy_branch):
        mission_fail(mission=mission, reason="The mission branch moved during the deploy; nothing was pushed.")
        return None
    return (
        merged,
        f" {branch} had moved to {upstream[:10]}: merged it in and re-ran the tests ({result.passed} passed).",
    )


def _send_back(mission: Mission, *, upstream: str, reason: str, instructions: str) -> None:
    """Back to execution with a step that merges the moved default branch and makes the tests pass again.

    When such a step was tried already and this is still not deliverable, a human decides instead: a deploy
    gate that offers to push the branch as it was approved, unmerged.
    """
    plan = current_plan(mission)
    steps = list(plan.steps.all())
    tries = sum(1 for s in steps if s.merge_from)
    if tries >= settings.DEPLOY_RESOLVE_MAX_STEPS:
        _gate_unmerged(mission, reason, expected=Mission.Status.DEPLOYING)
        return
    author = next((s for s in reversed(steps) if s.kind == Step.Kind.CODEGEN and s.agent_id), None)
    with transaction.atomic():
        if not mission_transition(
            mission=mission,
            to=Mission.Status.EXECUTING,
            expected=Mission.Status.DEPLOYING,
            reason=f"Back to execution: {reason}",
            deploy_started_at=None,
        ):
            return
        step = Step.objects.create(
            plan=plan,
            key=f"resolve-{tries + 1}",
            order=max((s.order for s in steps), default=0) + 1,
            title=f"Resolve conflicts with {mission.project.default_branch}",
            kind=Step.Kind.CODEGEN,
            role=author.role if author else "developer",
            agent=author.agent if author else None,
            instructions=instructions,
            depends_on=[s.key for s in steps],
            acceptance=["the project's whole test suite passes", "no conflict markers remain"],
            merge_from=upstream,
        )
        event_record(
            mission=mission,
            kind=Event.Kind.STEP,
            message=f"Step {step.key} added: {step.title}.",
            data={"step": step.key, "status": step.status},
        )
        from missions.tasks import advance_mission

        enqueue_after_commit(advance_mission, mission.pk)


def resolve_failed(mission: Mission, step: Step) -> None:
    """A resolve step failed for good: the approved work waits for a human instead of failing the mission."""
    _gate_unmerged(
        mission,
        f"Step {step.key} could not merge {mission.project.default_branch}: {step.error}",
        expected=Mission.Status.EXECUTING,
    )


def _gate_unmerged(mission: Mission, reason: str, *, expected: str) -> None:
    """Resolving did not make it deliverable: ask a human whether to push the approved branch unmerged."""
    approved = _approved_gate_data(mission).get("sha", "") or mission_head(mission)
    change = mission_change(mission, approved)  # outside the transaction: a clone
    with transaction.atomic():
        if mission_transition(
            mission=mission,
            to=Mission.Status.AWAITING_DEPLOY_APPROVAL,
            expected=expected,
            reason=reason,
            deploy_started_at=None,
        ):
            gate_open(
                mission=mission,
                kind=ApprovalGate.Kind.DEPLOY,
                question=f"{reason} Resolving it did not succeed. Push {mission.deploy_branch} at {approved[:10]} "
                f"without {mission.project.default_branch}, for a person to merge?",
                data={"sha": approved, "unmerged": True, "change": change},
            )
