"""Reads for notifications: the badge count, who is told about a gate, who wants mail."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from missions.selectors import REVIEWERS_GROUP
from notifications.models import NotificationPreference
from reviews.models import ApprovalGate
from reviews.selectors import gate_queue_for_user


def gate_badge_count(user: AbstractBaseUser) -> int:
    """How many gates wait for this reviewer's decision: one COUNT over the queue's own rules."""
    return gate_queue_for_user(user).count()


def gate_reviewers(gate: ApprovalGate) -> QuerySet:
    """Everyone who may decide the gate (gate_can_decide's rules): active reviewers or staff, not the requester."""
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_staff=True) | Q(groups__name=REVIEWERS_GROUP))
        .exclude(pk=gate.mission.requester_id)
        .distinct()
        .order_by("pk")
    )


def email_wanted(user: AbstractBaseUser) -> bool:
    """Mail goes out only when the server sends mail, the user has an address and has not turned it off."""
    if not settings.EMAIL_NOTIFICATIONS or not user.is_active or not user.email:
        return False
    return notification_preference(user).email


def notification_preference(user: AbstractBaseUser) -> NotificationPreference:
    """The user's preference, or the (unsaved) defaults."""
    return NotificationPreference.objects.filter(user=user).first() or NotificationPreference(user=user)
