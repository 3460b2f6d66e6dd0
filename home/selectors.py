"""What the home dashboard shows a person: their missions live, the gates that need them, the week's spend and
the latest failures. Every part is a bounded number of queries, whatever the data size."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, Sum
from django.utils import timezone

from agents.models import LLMCall
from missions.models import Mission, Step
from missions.selectors import missions_visible_to, user_is_reviewer
from reviews.models import ApprovalGate
from reviews.selectors import gate_queue_for_user

ACTIVE_LIMIT = 20
FINISHED_LIMIT = 5
GATES_LIMIT = 10
FAILURES_LIMIT = 5


@dataclass(frozen=True)
class WeekSpend:
    """Settled spend this calendar week so far, last week up to the same moment, and all of last week."""

    this_week: Decimal
    last_week_same_time: Decimal
    last_week: Decimal
    week_start: datetime

    @property
    def change_percent(self) -> int | None:
        """This week against last week at the same point; None when last week had nothing to compare with."""
        if not self.last_week_same_time:
            return None
        return round((self.this_week - self.last_week_same_time) * 100 / self.last_week_same_time)


def home_dashboard(*, user: AbstractBaseUser, now: datetime | None = None) -> dict:
    """The dashboard's parts for ``user``; a reviewer's spend and failures cover every mission they may see."""
    now = now or timezone.now()
    visible = missions_visible_to(user)
    mine = visible.filter(requester=user)
    active = list(mine.exclude(status__in=Mission.FINISHED).order_by("-updated_at")[:ACTIVE_LIMIT])
    finished = list(mine.filter(status__in=Mission.FINISHED).order_by("-finished_at", "-pk")[:FINISHED_LIMIT])
    _attach_progress(active + finished)
    reviewer = user_is_reviewer(user)
    if reviewer:
        queue = gate_queue_for_user(user)
        gates, gates_total = list(queue[:GATES_LIMIT]), queue.count()
    else:  # a PM decides no gate: show where their own missions wait for a reviewer
        queue = ApprovalGate.objects.filter(
            status=ApprovalGate.Status.PENDING, mission__requester=user, mission__status__in=Mission.WAITING
        )
        gates = list(queue.select_related("mission").order_by("requested_at")[:GATES_LIMIT])
        gates_total = queue.count()
    failures = list(visible.filter(status=Mission.Status.FAILED).order_by("-finished_at", "-pk")[:FAILURES_LIMIT])
    return {
        "active": active,
        "finished": finished,
        "gates": gates,
        "gates_total": gates_total,
        "gates_are_mine_to_decide": reviewer,
        "spend": week_spend(missions=visible, now=now),
        "spend_scope": "all missions" if reviewer else "your missions and your projects'",
        "failures": failures,
    }


def week_spend(*, missions, now: datetime) -> WeekSpend:
    """The ledger of ``missions`` summed over calendar weeks (Monday 00:00 in TIME_ZONE); one query."""
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    week_start = today - timedelta(days=today.weekday())
    last_start = week_start - timedelta(days=7)
    same_time = now - timedelta(days=7)
    calls = LLMCall.objects.filter(mission__in=missions.values("pk"), created_at__gte=last_start, created_at__lt=now)
    sums = calls.aggregate(
        this_week=Sum("cost_usd", filter=Q(created_at__gte=week_start)),
        last_week=Sum("cost_usd", filter=Q(created_at__lt=week_start)),
        last_week_same_time=Sum("cost_usd", filter=Q(created_at__lt=same_time)),
    )
    return WeekSpend(**{name: sums[name] or Decimal(0) for name in sums}, week_start=week_start)


def _attach_progress(missions: list[Mission]) -> None:
    """Each mission's steps done and in all, of its newest plan: one query for all of them."""
    counts: dict[int, dict] = {}
    rows = (
        Step.objects.filter(plan__mission__in=missions)
        .values("plan__mission_id", "plan__version")
        .annotate(total=Count("id"), done=Count("id", filter=Q(status=Step.Status.SUCCEEDED)))
    )
    for row in rows:
        best = counts.get(row["plan__mission_id"])
        if best is None or row["plan__version"] > best["plan__version"]:
            counts[row["plan__mission_id"]] = row
    for mission in missions:
        row = counts.get(mission.pk)
        mission.steps_done, mission.steps_total = (row["done"], row["total"]) if row else (0, 0)
        mission.progress_percent = round(100 * mission.steps_done / mission.steps_total) if mission.steps_total else 0
