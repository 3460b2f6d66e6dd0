"""Reads for pages, the consumer and the CLI."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404

from agents.models import AgentMessage, LLMCall
from missions.models import Event, Mission, Plan, Step, TestRun, Vote
from reviews.models import PeerReview

REVIEWERS_GROUP = "Reviewers"
TRANSCRIPT_LIMIT = 300
PRODUCT_MANAGERS_GROUP = "Product managers"


def user_is_reviewer(user: AbstractBaseUser) -> bool:
    return user.is_staff or user.groups.filter(name=REVIEWERS_GROUP).exists()


def user_can_file_missions(user: AbstractBaseUser) -> bool:
    return user.is_staff or user.groups.filter(name=PRODUCT_MANAGERS_GROUP).exists()


def user_can_cancel(user: AbstractBaseUser, mission: Mission) -> bool:
    return not mission.is_finished and (mission.requester_id == user.pk or user.is_staff)


def missions_visible_to(user: AbstractBaseUser) -> QuerySet[Mission]:
    """Requesters see their own missions; reviewers and staff see all."""
    missions = Mission.objects.select_related("requester", "template", "project")
    if not user.is_authenticated:
        return missions.none()
    if user_is_reviewer(user):
        return missions
    return missions.filter(requester=user)


def mission_for_user(user: AbstractBaseUser, code: object) -> Mission:
    """The one way views and the consumer load a mission: someone else's is a 404, like a missing one."""
    try:
        return missions_visible_to(user).select_related("model_profile").get(code=code)
    except (Mission.DoesNotExist, ValueError, TypeError):
        raise Http404("No such mission.") from None


def mission_list_for_user(user: AbstractBaseUser, *, status: str = "", query: str = "") -> QuerySet[Mission]:
    missions = missions_visible_to(user)
    if status:
        missions = missions.filter(status=status)
    if query:
        missions = missions.filter(Q(title__icontains=query) | Q(request__icontains=query))
    return missions.order_by("-created_at")


def current_plan(mission: Mission) -> Plan | None:
    return mission.plans.order_by("-version").first()


def mission_steps(mission: Mission) -> list[Step]:
    plan = mission.plans.order_by("-version").first()
    if plan is None:
        return []
    reviews = Prefetch("reviews", queryset=PeerReview.objects.select_related("reviewer"))
    return list(plan.steps.select_related("agent").prefetch_related("test_runs", reviews))


def mission_events(mission: Mission, *, after: int = 0, limit: int = 500) -> list[Event]:
    """Events after ``after``; when there are more than ``limit``, the newest ones."""
    newest = mission.events.filter(seq__gt=after).order_by("-seq")[:limit]
    return sorted(newest, key=lambda event: event.seq)


def mission_detail(mission: Mission) -> dict:
    """Everything the mission page shows, in a handful of queries.

    Events are read before the mission row is refreshed, so the status shown
    is never older than the newest event on the page.
    """
    events = mission_events(mission)
    mission.refresh_from_db()
    return {
        "mission": mission,
        "steps": mission_steps(mission),
        "events": events,
        "votes": list(Vote.objects.filter(cycle__mission=mission).select_related("agent", "cycle")),
        "cycles": list(mission.cycles.all()),
        "transcript_messages": sorted(
            AgentMessage.objects.filter(mission=mission).select_related("step").order_by("-id")[:TRANSCRIPT_LIMIT],
            key=lambda message: message.pk,
        ),
        "test_runs": list(TestRun.objects.filter(mission=mission).select_related("step")),
        "gates": list(mission.gates.all()),
        "llm_calls": LLMCall.objects.filter(mission=mission).count(),
    }
