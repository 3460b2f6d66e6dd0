"""Tell people what needs them: a live toast and badge on whatever page they have open, and a mail.

1. Code that changed something calls one function here, inside its transaction: `notify_gate_opened`,
   `notify_gate_decided`, `notify_mission_finished`, or the general `notify`.
2. Nothing goes out before that transaction commits (as missions/events.py): a toast about a gate the
   reader cannot load yet would be a lie, and a rolled-back gate must not be mailed.
3. After commit, toasts and badge refreshes go to the per-user channel groups (best effort, like every
   live update: the badge is recounted on the next page or reconnect), and each mail becomes a Celery
   task, so no web request and no worker transaction ever waits on a mail server.
"""

import logging
import re

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from missions.models import Mission
from notifications.models import NotificationPreference
from notifications.selectors import email_wanted, gate_reviewers
from reviews.models import ApprovalGate

logger = logging.getLogger(__name__)

# Every socket of a reviewer joins this group: any change to the gates makes each recount its own badge.
REVIEWERS_GROUP_NAME = "notifications_reviewers"
KIND_PATTERN = re.compile(r"^[a-z][a-z_]{0,30}$")
SUBJECT_MAX = 150
FINISHED_WORDS = {
    Mission.Status.COMPLETED: "completed",
    Mission.Status.FAILED: "failed",
    Mission.Status.REJECTED: "was rejected",
    Mission.Status.CANCELLED: "was cancelled",
}


class Kind:
    """What a notification is about; also its toast's style (``toast-<kind>``)."""

    GATE = "gate"
    FINISHED = "finished"
    WARNING = "warning"


def user_notify_group(user_id: int) -> str:
    return f"notifications_{user_id}"


def notify(
    *, user: AbstractBaseUser, kind: str, message: str, url: str, mission: Mission | None = None, email: bool = True
) -> None:
    """Tell ``user`` after commit: a toast on the page they have open, and (unless ``email=False``) a mail if
    they want mail.

    ``url`` is a path on this site ("/missions/<code>/"); the mail makes it absolute with SITE_URL.
    """
    if not KIND_PATTERN.match(kind):
        raise ValueError(f"A notification kind is a short lowercase word, got {kind!r}.")
    if url and (not url.startswith("/") or url.startswith("//")):
        raise ValueError(f"A notification links to a path on this site, got {url!r}.")
    user_id, title = user.pk, mission.title if mission else ""
    transaction.on_commit(
        lambda: _deliver(user_id=user_id, kind=kind, message=message, url=url, title=title, email=email),
        robust=True,
    )


def notify_gate_opened(gate: ApprovalGate) -> None:
    """A gate waits: every reviewer who may decide it gets a toast (and mail), every queue and badge updates."""
    transaction.on_commit(lambda: _gate_opened(gate.pk), robust=True)


def notify_gate_decided(gate: ApprovalGate) -> None:
    """A gate left the queue: badges count down and open queues drop it."""
    transaction.on_commit(_gates_changed, robust=True)


def notify_mission_finished(mission: Mission) -> None:
    """Tell the requester their mission finished; its gates (closed with it) leave every queue."""
    transaction.on_commit(lambda: _mission_finished(mission.pk), robust=True)


def notify_mission_changed(mission: Mission) -> None:
    """A mission moved (any status change): its requester's open home dashboard shows it, after commit."""
    requester_id = mission.requester_id
    transaction.on_commit(
        lambda: _group_send(user_notify_group(requester_id), {"type": "notify.missions"}), robust=True
    )


def notification_preference_set(*, user: AbstractBaseUser, email: bool) -> NotificationPreference:
    preference, _ = NotificationPreference.objects.update_or_create(user=user, defaults={"email": email})
    return preference


def notification_email_send(*, user_id: int, subject: str, body: str) -> bool:
    """Send one notification mail now (from the Celery task), if the user still wants it; True if sent."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not email_wanted(user):
        return False
    send_mail(subject, body, None, [user.email])
    return True


def _gate_opened(gate_id: int) -> None:
    gate = ApprovalGate.objects.select_related("mission").filter(pk=gate_id).first()
    if gate is None or not gate.is_pending:
        return
    mission = gate.mission
    for reviewer in gate_reviewers(gate):
        notify(
            user=reviewer,
            kind=Kind.GATE,
            message=f"{gate.get_kind_display()} needs your decision: {mission.title}",
            url=mission.get_absolute_url(),
            mission=mission,
        )
    _gates_changed()


def _mission_finished(mission_id: int) -> None:
    mission = Mission.objects.select_related("requester").filter(pk=mission_id).first()
    if mission is None or not mission.is_finished:
        return
    notify(
        user=mission.requester,
        kind=Kind.FINISHED,
        message=f"Your mission {mission.title} {FINISHED_WORDS.get(mission.status, mission.status)}.",
        url=mission.get_absolute_url(),
        mission=mission,
    )
    _gates_changed()


def _gates_changed() -> None:
    _group_send(REVIEWERS_GROUP_NAME, {"type": "notify.gates"})


def _deliver(*, user_id: int, kind: str, message: str, url: str, title: str, email: bool) -> None:
    _group_send(user_notify_group(user_id), {"type": "notify.toast", "kind": kind, "message": message, "url": url})
    if not email or not settings.EMAIL_NOTIFICATIONS:
        return
    from notifications.tasks import send_notification_email

    subject, body = _mail(user_id=user_id, message=message, url=url, title=title)
    try:
        send_notification_email.delay(user_id, subject, body)
    except (BrokerError, RedisError, OSError) as error:
        logger.warning("could not enqueue a notification mail for user %s: %s", user_id, error)


def _mail(*, user_id: int, message: str, url: str, title: str) -> tuple[str, str]:
    """Subject and plain-text body: what happened, the mission's title and a link. Nothing else (no secrets)."""
    subject = " ".join(f"[Mission Orchestrator] {message}".split())
    if len(subject) > SUBJECT_MAX:
        subject = subject[: SUBJECT_MAX - 1] + "…"
    lines = [message, ""]
    if title:
        lines.append(f"Mission: {title}")
    if url:
        lines.append(f"Open it: {settings.SITE_URL}{url}")
    lines += [
        "",
        "You get this mail because email notifications are on for your account.",
        f"Turn them off on your profile: {settings.SITE_URL}{reverse('notifications:profile')}",
    ]
    return subject, "\n".join(lines) + "\n"


def _group_send(group: str, message: dict) -> None:
    """Best effort: a page that misses an update recounts on its next load or reconnect."""
    try:
        async_to_sync(get_channel_layer().group_send)(group, message)
    except Exception:
        logger.warning("could not publish %s to %s", message["type"], group, exc_info=True)
