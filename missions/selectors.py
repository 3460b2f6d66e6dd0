"""Reads for pages, the consumer and the CLI."""

from collections import Counter

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404

from agents.models import AgentMessage, LLMCall
from missions.models import Event, Mission, Plan, Step, TestRun, Vote
from projects.models import Project
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
    """Requesters see their own missions and those on projects they are a member of; reviewers and staff see all.

    Seeing is not steering: pause, cancel and the rest stay with the requester (``control.user_may_control``).
    """
    missions = Mission.objects.select_related("requester", "template", "project")
    if not user.is_authenticated:
        return missions.none()
    if user_is_reviewer(user):
        return missions
    # A subquery, not a join: no duplicate rows, so callers may aggregate or update without distinct().
    member_of = Project.objects.filter(members=user).values("pk")
    return missions.filter(Q(requester=user) | Q(project__in=member_of))


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
    return list(plan.steps.select_related("agent").prefetch_related(reviews))


def mission_events(mission: Mission, *, after: int = 0, limit: int = 500) -> list[Event]:
    """Events after ``after``; when there are more than ``limit``, the newest ones."""
    newest = mission.events.filter(seq__gt=after).order_by("-seq")[:limit]
    return sorted(newest, key=lambda event: event.seq)


NOW_ACTION_CHARS = 300


def mission_now(*, steps: list[Step], events: list[Event], messages: list[AgentMessage]) -> dict:
    """The "now" line: the steps running and the newest thing that happened, from rows already loaded.

    The last action is the newest event's message, or the newest transcript entry when it came later (an
    agent's words arrive between events).
    """
    last_event = events[-1] if events else None
    last_message = messages[-1] if messages else None
    if last_message and (last_event is None or last_message.created_at > last_event.created_at):
        # One line: the page truncates it further, this only bounds the work.
        action = f"{last_message.source}: {' '.join(last_message.content[:NOW_ACTION_CHARS].split())}"
        at = last_message.created_at
    elif last_event:
        action, at = last_event.message, last_event.created_at
    else:
        action, at = "", None
    return {
        "running": [step for step in steps if step.status == Step.Status.RUNNING],
        "last_action": action,
        "last_action_at": at,
    }


# The bar fills from the left with what is done, then what is under way, then what went wrong; pending last.
PROGRESS_ORDER = (
    Step.Status.SUCCEEDED,
    Step.Status.IN_REVIEW,
    Step.Status.RUNNING,
    Step.Status.FAILED,
    Step.Status.CANCELLED,
    Step.Status.PENDING,
)


def step_progress(steps: list[Step]) -> dict:
    """Done out of total over the newest plan's steps, with a bar segment per status present."""
    counts = Counter(step.status for step in steps)
    total = len(steps)
    segments = [
        {
            "status": status.value,
            "label": status.label,
            "count": counts[status],
            "percent": f"{counts[status] * 100 / total:.2f}",
        }
        for status in PROGRESS_ORDER
        if counts[status]
    ]
    done = counts[Step.Status.SUCCEEDED]
    return {"total": total, "done": done, "segments": segments}


def _attempt_starts(events: list[Event]) -> dict[str, list[tuple]]:
    """Per step key, when each attempt started, from the step events that record it (oldest first)."""
    starts: dict[str, list[tuple]] = {}
    for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        attempt = data.get("attempt")
        if event.kind == Event.Kind.STEP and data.get("status") == Step.Status.RUNNING and isinstance(attempt, int):
            starts.setdefault(str(data.get("step")), []).append((event.created_at, attempt))
    return starts


def step_groups(items: list, *, events: list[Event], steps: list[Step], prefix: str, other) -> list[dict]:
    """Transcript entries or test runs grouped by step and attempt, in the order each group began.

    An item's attempt is the newest start of its step at or before it (None when the page's events do not
    reach back that far). Items without a step go in a group named by ``other(item)``. A group of a step
    running now, in its current attempt, is ``open``: the page shows it unfolded.
    """
    starts = _attempt_starts(events)
    running = {step.key: step.attempt for step in steps if step.status == Step.Status.RUNNING}
    groups: dict[tuple, dict] = {}
    for item in items:
        key = item.step.key if item.step_id else ""
        attempt = None
        for started_at, number in starts.get(key, ()):
            if started_at <= item.created_at:
                attempt = number
        name = key or other(item)
        group = groups.get((name, attempt))
        if group is None:
            group = groups[(name, attempt)] = {
                # "--" is in no step key (revision steps are key-revN, revise-N), so ids never collide.
                "id": f"{prefix}-{'step-' if key else ''}{name}{f'--a{attempt}' if attempt else ''}",
                "key": key,
                "name": name,
                "step": item.step if key else None,
                "attempt": attempt,
                "items": [],
                "open": key in running and attempt in (None, running[key]),
            }
        group["items"].append(item)
    return list(groups.values())


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
    steps = mission_steps(mission)
    test_runs = list(TestRun.objects.filter(mission=mission).select_related("step"))
    messages = sorted(
        AgentMessage.objects.filter(mission=mission).select_related("step").order_by("-id")[:TRANSCRIPT_LIMIT],
        key=lambda message: message.pk,
    )
    return {
        "mission": mission,
        "steps": steps,
        "now": mission_now(steps=steps, events=events, messages=messages),
        "progress": step_progress(steps),
        "events": events,
        "votes": list(Vote.objects.filter(cycle__mission=mission).select_related("agent", "cycle")),
        "cycles": list(mission.cycles.all()),
        "transcript_messages": messages,
        "transcript_groups": step_groups(
            messages, events=events, steps=steps, prefix="transcript", other=lambda message: "mission"
        ),
        "test_runs": test_runs,
        "test_run_groups": step_groups(
            test_runs, events=events, steps=steps, prefix="tests", other=lambda run: run.purpose
        ),
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
