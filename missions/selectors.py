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
    """Staff or in the Reviewers group; asked once per user object, since a page asks it for every gate."""
    cached = getattr(user, "_is_reviewer", None)
    if cached is None:
        cached = user.is_authenticated and (user.is_staff or user.groups.filter(name=REVIEWERS_GROUP).exists())
        user._is_reviewer = cached
    return cached


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


def llm_calls_ended(mission: Mission, call_ids: list[int]) -> set[int]:
    """Those of ``call_ids`` that are no longer running (settled, failed, or not the mission's)."""
    running = LLMCall.objects.filter(mission=mission, pk__in=call_ids, status=LLMCall.Status.PENDING)
    return set(call_ids) - set(running.values_list("pk", flat=True))


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
        "gates": list(mission.gates.select_related("decided_by").prefetch_related("line_comments__author")),
        "llm_calls": LLMCall.objects.filter(mission=mission).count(),
    }


PLAN_DIFF_FIELDS = ("title", "kind", "role", "instructions", "depends_on", "acceptance")


def plan_review(mission: Mission, version: int | None) -> dict | None:
    """What a plan gate shows: the plan's steps, the votes on it round by round, and what changed since the
    version before (steps added, removed, and changed field by field). Four queries; None without the plan."""
    plans = list(mission.plans.filter(version__lte=version or 10**6).order_by("-version")[:2])
    if not plans:
        return None
    plan, previous = plans[0], (plans[1] if len(plans) > 1 else None)
    steps = list(plan.steps.select_related("agent"))
    rounds: dict[int, list[Vote]] = {}
    if plan.cycle_id:
        for vote in Vote.objects.filter(cycle_id=plan.cycle_id).select_related("agent"):
            rounds.setdefault(vote.round, []).append(vote)
    review = {"plan": plan, "steps": steps, "rounds": sorted(rounds.items()), "previous": previous}
    if previous is not None:
        before = {s.key: s for s in previous.steps.all()}
        now = {s.key: s for s in steps}
        review["added"] = [now[k] for k in now if k not in before]
        review["removed"] = [before[k] for k in before if k not in now]
        review["changed"] = [
            {"key": k, "fields": [f for f in PLAN_DIFF_FIELDS if getattr(before[k], f) != getattr(now[k], f)]}
            for k in now
            if k in before
        ]
        review["changed"] = [c for c in review["changed"] if c["fields"]]
    return review
