"""Deployment: push the approved commit, tag it, keep a downloadable archive."""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.runtime.workspace import WorkspaceError
from missions.consult import mission_workspace
from missions.events import event_record
from missions.knowledge import knowledge_record_retrospective
from missions.models import Event, Mission
from missions.services import mission_fail, mission_transition


def mission_deploy(mission: Mission) -> None:
    """Push the approved commit to the deploy remote, tag it and store a downloadable archive.

    The conditional UPDATE on ``deploy_started_at`` makes it happen at most
    once per approval, however often the task is delivered.
    """
    if not Mission.objects.filter(
        pk=mission.pk, status=Mission.Status.DEPLOYING, deploy_started_at__isnull=True
    ).update(deploy_started_at=timezone.now()):
        return
    workspace = mission_workspace(mission)
    try:
        sha = workspace.head()
        workspace.publish(remote=settings.DEPLOY_REMOTE, sha=sha, branch=mission.deploy_branch, tag=mission.deploy_tag)
        archive = workspace.archive(sha=sha, dest=settings.ARTIFACTS_DIR / f"{mission.code}.zip")
    except WorkspaceError as error:
        mission_fail(mission=mission, reason=f"Deployment failed: {error}")
        return
    with transaction.atomic():
        Mission.objects.filter(pk=mission.pk).update(
            deployed_sha=sha, deployed_ref=mission.deploy_tag, deployed_at=timezone.now(), artifact_path=str(archive)
        )
        event_record(
            mission=mission,
            kind=Event.Kind.STATUS,
            message=f"Deployed {sha[:10]} to production as tag {mission.deploy_tag}; archive ready to download.",
            data={"sha": sha},
        )
        if mission_transition(
            mission=mission,
            to=Mission.Status.COMPLETED,
            expected=Mission.Status.DEPLOYING,
            reason=f"Deployed {sha[:10]}.",
        ):
            knowledge_record_retrospective(mission)
