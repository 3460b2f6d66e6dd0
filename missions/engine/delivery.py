"""Delivery: the deploy gate once every step succeeded; then push the approved commit, tag it, keep an archive."""

import shlex

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.runtime.sandbox import SandboxError, SandboxLimits, run_sandboxed
from agents.runtime.workspace import Workspace, WorkspaceError
from missions.changes import mission_change
from missions.events import event_record
from missions.knowledge import knowledge_record_retrospective
from missions.models import Event, Mission, Step, TestRun
from missions.repository import mission_checkout, mission_head
from missions.services import mission_fail, mission_transition
from reviews.models import ApprovalGate
from reviews.services import gate_open


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
    if mission.require_deploy_approval or altered:
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
                    question=f"{summary} Deploy commit {head[:10]} to production?",
                    data={"sha": head, "alters_test_config": altered, "change": change},
                )
    elif mission_transition(
        mission=mission, to=Mission.Status.DEPLOYING, expected=Mission.Status.EXECUTING, reason=summary
    ):
        mission_deploy(mission)


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
            sha = _approved_sha(mission) or workspace.head()
            if mission.project_id:
                where, notes = _push_to_project(mission, workspace, sha)
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
            message=f"Deployed {sha[:10]} to {where}; archive ready to download.{notes}",
            data={"sha": sha},
        )
        if mission_transition(
            mission=mission,
            to=Mission.Status.COMPLETED,
            expected=Mission.Status.DEPLOYING,
            reason=f"Deployed {sha[:10]}.",
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


def _approved_sha(mission: Mission) -> str:
    """The commit the reviewer approved (not whatever HEAD is now)."""
    gate = (
        ApprovalGate.objects.filter(mission=mission, kind=ApprovalGate.Kind.DEPLOY, status=ApprovalGate.Status.APPROVED)
        .order_by("-decided_at")
        .first()
    )
    return (gate.data or {}).get("sha", "") if gate else ""
