"""What /metrics reports, read from the database at scrape time.

Every figure is an aggregate computed in SQL (histogram buckets too, as conditional counts), so a scrape costs
a fixed number of queries however many rows there are, and every process of every host reports the same
numbers: no per-process counters to merge.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, QuerySet, Sum
from django.utils import timezone

from agents.models import LLMCall
from missions.models import Mission, Step
from reviews.models import ApprovalGate

# Upper bounds (seconds) of the histogram buckets; +Inf is added by the collector.
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
STEP_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
GATE_WAIT_BUCKETS_S = (60, 300, 900, 3600, 4 * 3600, 24 * 3600, 3 * 24 * 3600, 7 * 24 * 3600)


@dataclass(frozen=True)
class Histogram:
    counts: list[int]  # cumulative, one per bucket bound
    count: int
    sum_s: float


@dataclass(frozen=True)
class MetricsSnapshot:
    missions_by_status: dict[str, int]
    calls: list[dict]  # one per (model, purpose, status): calls, tokens in / cached / out, cost
    call_latency: dict[tuple[str, str], Histogram]  # (model, purpose), settled calls only
    step_durations: dict[tuple[str, str], Histogram]  # (kind, status), finished steps only
    gates_pending: dict[str, tuple[int, float]]  # kind -> (count, age of the oldest in seconds)
    gate_waits: dict[str, Histogram]  # kind -> time from request to decision


def _bucket_counts(prefix: str, field: str, bounds: tuple[float, ...], *, as_duration: bool) -> dict:
    """Conditional counts ``<prefix>_<i>`` of rows whose ``field`` is at most each bound (cumulative)."""
    return {
        f"{prefix}_{i}": Count("id", filter=Q(**{f"{field}__lte": timedelta(seconds=b) if as_duration else b}))
        for i, b in enumerate(bounds)
    }


def _histogram(row: dict, prefix: str, bounds: tuple[float, ...], count: int, sum_s: float) -> Histogram:
    return Histogram(counts=[row[f"{prefix}_{i}"] for i in range(len(bounds))], count=count, sum_s=sum_s)


def _seconds(value) -> float:
    """A summed duration as seconds (PostgreSQL gives a timedelta; SQLite microseconds as a number)."""
    if value is None:
        return 0.0
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) / 1_000_000


def _duration_rows(queryset: QuerySet, start: str, end: str, group: tuple[str, ...], bounds) -> list[dict]:
    waited = ExpressionWrapper(F(end) - F(start), output_field=DurationField())
    return list(
        queryset.filter(**{f"{start}__isnull": False, f"{end}__isnull": False})
        .alias(waited=waited)
        .values(*group)
        .annotate(n=Count("id"), total=Sum("waited"), **_bucket_counts("b", "waited", bounds, as_duration=True))
        .order_by(*group)
    )


def metrics_snapshot() -> MetricsSnapshot:
    """Everything /metrics shows, in five queries."""
    missions = dict(Mission.objects.values_list("status").annotate(n=Count("id")).order_by("status"))

    ms_bounds = tuple(b * 1000 for b in LATENCY_BUCKETS_S)
    settled = ~Q(status=LLMCall.Status.PENDING)
    call_rows = list(
        LLMCall.objects.values("model_name", "purpose", "status")
        .annotate(
            calls=Count("id"),
            tokens_in=Sum("prompt_tokens"),
            tokens_cached=Sum("cached_tokens"),
            tokens_out=Sum("completion_tokens"),
            cost=Sum("cost_usd"),
            latency_total_ms=Sum("latency_ms"),
            **{f"b_{i}": Count("id", filter=Q(latency_ms__lte=bound) & settled) for i, bound in enumerate(ms_bounds)},
        )
        .order_by("model_name", "purpose", "status")
    )
    latency: dict[tuple[str, str], Histogram] = {}
    for row in call_rows:
        if row["status"] == LLMCall.Status.PENDING:
            continue
        key = (row["model_name"], row["purpose"])
        seen = latency.get(key, Histogram(counts=[0] * len(ms_bounds), count=0, sum_s=0.0))
        latency[key] = Histogram(
            counts=[a + row[f"b_{i}"] for i, a in enumerate(seen.counts)],
            count=seen.count + row["calls"],
            sum_s=seen.sum_s + (row["latency_total_ms"] or 0) / 1000,
        )

    step_durations = {
        (row["kind"], row["status"]): _histogram(row, "b", STEP_BUCKETS_S, row["n"], _seconds(row["total"]))
        for row in _duration_rows(Step.objects.all(), "started_at", "finished_at", ("kind", "status"), STEP_BUCKETS_S)
    }

    now = timezone.now()
    gates_pending = {
        kind: (n, max(0.0, (now - oldest).total_seconds()))
        for kind, n, oldest in ApprovalGate.objects.filter(status=ApprovalGate.Status.PENDING)
        .values_list("kind")
        .annotate(n=Count("id"), oldest=Min("requested_at"))
        .order_by("kind")
    }
    gate_waits = {
        row["kind"]: _histogram(row, "b", GATE_WAIT_BUCKETS_S, row["n"], _seconds(row["total"]))
        for row in _duration_rows(
            ApprovalGate.objects.exclude(status=ApprovalGate.Status.CLOSED),
            "requested_at",
            "decided_at",
            ("kind",),
            GATE_WAIT_BUCKETS_S,
        )
    }
    return MetricsSnapshot(
        missions_by_status=missions,
        calls=call_rows,
        call_latency=latency,
        step_durations=step_durations,
        gates_pending=gates_pending,
        gate_waits=gate_waits,
    )
