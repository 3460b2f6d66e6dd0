from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from missions.models import Mission
from reviews.models import ApprovalGate


def gate_queue_for_user(user: AbstractBaseUser) -> QuerySet[ApprovalGate]:
    """Pending gates a reviewer may decide: never on a mission they requested."""
    return (
        ApprovalGate.objects.filter(status=ApprovalGate.Status.PENDING)
        .exclude(mission__requester=user)
        .exclude(mission__status__in=Mission.FINISHED)
        .select_related("mission", "mission__requester")
        .order_by("requested_at")
    )


def recent_decisions(limit: int = 20) -> QuerySet[ApprovalGate]:
    return (
        ApprovalGate.objects.exclude(status__in=(ApprovalGate.Status.PENDING, ApprovalGate.Status.CLOSED))
        .select_related("mission", "decided_by")
        .order_by("-decided_at")[:limit]
    )
