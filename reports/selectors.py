"""The KPI report: what the company's missions achieved and what they cost, for the missions a person may see.

Two populations, each stated on the page:
- Mission figures (status, success, lead time, gates, cost and tokens per mission, reviews, tests, retries,
  budget pauses, forecasts) count the missions *filed* in the date range; a mission's cost is all of its ledger.
- Spend over time counts the model calls *made* in the date range, on the missions the other filters keep, so
  its tables add up to the ledger for that range to the cent.

Every sum and count is computed in the database, in a fixed number of queries whatever the data size. The
percentiles are the exception: SQLite has no percentile aggregate, so one query fetches the per-mission figures
(one row per mission filed in the range, each already summed in SQL) and the median and p90 are interpolated in
Python, as PostgreSQL's percentile_cont would. That is still one query, but its rows grow with the missions.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import (
    Case,
    Count,
    DecimalField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, Greatest, TruncDay, TruncWeek
from django.utils import timezone

from agents.models import LLMCall
from missions.models import DecisionCycle, Mission, Plan, Step, TestRun
from missions.selectors import missions_visible_to
from reviews.models import ApprovalGate, PeerReview

USD_PLACES = Decimal("0.000001")  # the ledger's precision (LLMCall.cost_usd)
PERCENT_PLACES = Decimal("0.1")
HOUR_PLACES = Decimal("0.01")
BUCKETS = ("day", "week")
PAGE_ROWS = 500  # rows a table shows on the page; its CSV has every row
NO_AGENT, NO_TEMPLATE, NO_PROJECT = "(no agent)", "(no template)", "(no project)"


@dataclass(frozen=True)
class KpiFilters:
    """What the report covers: missions filed (and calls made) from ``date_from`` to ``date_to``, both inclusive."""

    date_from: date
    date_to: date
    project: object | None = None  # projects.models.Project
    template: object | None = None  # missions.models.MissionTemplate
    requester: AbstractBaseUser | None = None
    bucket: str = "day"

    @property
    def start(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.date_from, time.min))

    @property
    def end(self) -> datetime:
        """The first moment after the range (midnight after ``date_to`` in TIME_ZONE)."""
        return timezone.make_aware(datetime.combine(self.date_to + timedelta(days=1), time.min))

    def as_dict(self) -> dict:
        return {
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
            "project": getattr(self.project, "slug", None),
            "template": getattr(self.template, "slug", None),
            "requester": getattr(self.requester, "username", None),
            "bucket": self.bucket,
        }


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text | int | usd | percent | hours | ratio: how the page shows it; CSV has the raw value


@dataclass(frozen=True)
class Table:
    """One table of the page, its CSV (``?format=csv&table=<name>``) and, if ``chart``, the chart above it."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[dict]
    chart: dict | None = None  # {"type", "labels", "datasets": [{"label", "data"}], "stacked"}; numbers as floats
    help: str = ""

    @property
    def page_rows(self) -> list[dict]:
        return self.rows[:PAGE_ROWS]

    @property
    def cut(self) -> bool:
        return len(self.rows) > PAGE_ROWS

    def as_dict(self) -> dict:
        return {
            "title": self.title,
            "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in self.columns],
            "rows": [{c.key: _json_safe(row.get(c.key)) for c in self.columns} for row in self.rows],
        }


@dataclass(frozen=True)
class Figures:
    """The headline numbers; None where there is nothing to compute them from ("no data" on the page)."""

    missions: int = 0
    finished: int = 0
    completed: int = 0
    success_rate: Decimal | None = None  # percent of finished missions that completed
    lead_time_median_s: int | None = None
    lead_time_p90_s: int | None = None
    gate_wait_total_s: int = 0  # over completed missions
    working_total_s: int = 0
    gate_wait_median_s: int | None = None
    working_median_s: int | None = None
    cost_median_usd: Decimal | None = None
    cost_p90_usd: Decimal | None = None
    cost_total_usd: Decimal = Decimal("0.000000")  # every ledger row of the missions filed in the range
    tokens_median: int | None = None
    tokens_p90: int | None = None
    reviewed_steps: int = 0
    first_pass_approved: int = 0
    first_pass_rate: Decimal | None = None
    revision_rounds: int = 0
    revision_rounds_per_step: Decimal | None = None
    final_test_runs: int = 0
    tests_passed: int = 0
    tests_run: int = 0
    test_pass_rate: Decimal | None = None
    regressions: int = 0
    step_retries: int = 0
    steps_retried: int = 0
    budget_pauses: int = 0
    missions_paused_for_budget: int = 0
    spend_total_usd: Decimal = Decimal("0.000000")  # calls made in the range


@dataclass(frozen=True)
class KpiReport:
    filters: KpiFilters
    figures: Figures
    tables: dict[str, Table] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-safe: Decimals as strings, dates as ISO text (the REST API serves this as it is)."""
        return {
            "filters": self.filters.as_dict(),
            "figures": {name: _json_safe(value) for name, value in self.figures.__dict__.items()},
            "tables": {name: table.as_dict() for name, table in self.tables.items()},
        }

    def charts(self) -> list[dict]:
        """What static/js/reports.js draws: one entry per table with a chart and rows (an empty one says "No data")."""
        return [
            {"canvas": f"chart-{t.name}", "table": t.name, **t.chart}
            for t in self.tables.values()
            if t.chart and t.rows
        ]


def kpi_report(*, user: AbstractBaseUser, filters: KpiFilters) -> KpiReport:
    """The KPI report of the missions ``user`` may see (missions_visible_to), narrowed by ``filters``."""
    kept = missions_visible_to(user)
    if filters.project is not None:
        kept = kept.filter(project=filters.project)
    if filters.template is not None:
        kept = kept.filter(template=filters.template)
    if filters.requester is not None:
        kept = kept.filter(requester=filters.requester)
    filed = kept.filter(created_at__gte=filters.start, created_at__lt=filters.end)
    filed_ids = filed.order_by().values("pk")

    tables: dict[str, Table] = {}
    status_rows = list(filed.order_by().values("status").annotate(missions=Count("id")).order_by("status"))
    per_mission = _per_mission(filed)
    figures = _mission_figures(status_rows, per_mission)
    figures.update(_quality_figures(filed_ids))
    spend = _spend_tables(kept, filters)
    figures["spend_total_usd"] = sum((row["cost_usd"] for row in spend["spend_over_time"].rows), Decimal(0))
    figures = Figures(**figures)

    tables["summary"] = _summary_table(figures)
    tables["by_status"] = _status_table(status_rows)
    tables["time_split"] = _time_split_table(figures)
    tables["missions"] = _missions_table(per_mission)
    tables.update(spend)
    tables["forecast"] = _forecast_table(filed)
    return KpiReport(filters=filters, figures=figures, tables=tables)


# --- mission figures ---------------------------------------------------------------------------------------


def _ledger_sum(expression) -> Subquery:
    """The sum of ``expression`` over one mission's ledger, as a correlated subquery (no join fan-out)."""
    return Subquery(
        LLMCall.objects.filter(mission=OuterRef("pk"))
        .order_by()
        .values("mission")
        .annotate(s=Sum(expression))
        .values("s")
    )


def _per_mission(filed: QuerySet[Mission]) -> list[dict]:
    """One row per mission filed in the range, its ledger, tokens, gate waits and approved forecast summed in SQL."""
    waited = ExpressionWrapper(F("decided_at") - F("requested_at"), DurationField())
    gate_wait = Subquery(
        ApprovalGate.objects.filter(mission=OuterRef("pk"), decided_at__isnull=False)
        .order_by()
        .values("mission")
        .annotate(s=Sum(waited))
        .values("s"),
        output_field=DurationField(),
    )
    rows = filed.order_by("created_at", "pk").values(
        "pk",
        "code",
        "title",
        "status",
        "created_at",
        "finished_at",
        "template__name",
        "project__name",
        "requester__username",
    )
    rows = rows.annotate(
        cost_usd=Coalesce(_ledger_sum("cost_usd"), Value(Decimal(0)), output_field=DecimalField()),
        tokens=Coalesce(_ledger_sum(F("prompt_tokens") + F("completion_tokens")), Value(0)),
        gate_wait=gate_wait,
    )
    missions = []
    for row in rows:
        row["cost_usd"] = _usd(row["cost_usd"])
        row["gate_wait_s"] = _seconds(row.pop("gate_wait"))
        row["lead_time_s"] = None
        row["working_s"] = None
        if row["status"] == Mission.Status.COMPLETED and row["finished_at"]:
            row["lead_time_s"] = max(0, int((row["finished_at"] - row["created_at"]).total_seconds()))
            row["working_s"] = max(0, row["lead_time_s"] - row["gate_wait_s"])
        missions.append(row)
    return missions


def _mission_figures(status_rows: list[dict], missions: list[dict]) -> dict:
    counts = {row["status"]: row["missions"] for row in status_rows}
    finished = sum(n for status, n in counts.items() if status in Mission.FINISHED)
    completed = counts.get(Mission.Status.COMPLETED, 0)
    done = [m for m in missions if m["lead_time_s"] is not None]
    leads = [m["lead_time_s"] for m in done]
    waits = [m["gate_wait_s"] for m in done]
    works = [m["working_s"] for m in done]
    costs = [m["cost_usd"] for m in missions]
    tokens = [m["tokens"] for m in missions]
    return {
        "missions": sum(counts.values()),
        "finished": finished,
        "completed": completed,
        "success_rate": _percent(completed, finished),
        "lead_time_median_s": _int(percentile(leads, "0.5")),
        "lead_time_p90_s": _int(percentile(leads, "0.9")),
        "gate_wait_total_s": sum(waits),
        "working_total_s": sum(works),
        "gate_wait_median_s": _int(percentile(waits, "0.5")),
        "working_median_s": _int(percentile(works, "0.5")),
        "cost_median_usd": _usd_or_none(percentile(costs, "0.5")),
        "cost_p90_usd": _usd_or_none(percentile(costs, "0.9")),
        "cost_total_usd": _usd(sum(costs, Decimal(0))),
        "tokens_median": _int(percentile(tokens, "0.5")),
        "tokens_p90": _int(percentile(tokens, "0.9")),
    }


def _quality_figures(filed_ids: QuerySet) -> dict:
    """Peer reviews, the test runs that decided steps, retries and budget pauses of the missions filed: four queries."""
    steps = Step.objects.filter(plan__mission__in=filed_ids)
    first_round_approved = PeerReview.objects.filter(
        step=OuterRef("pk"), round=1, cycle__outcome=DecisionCycle.Outcome.APPROVED
    )
    # Counted through the join to the reviews, so distinct: a step has a row per review. A round is a review
    # cycle; the rounds after each step's first are the revisions the reviewers asked for.
    reviews = steps.filter(Exists(PeerReview.objects.filter(step=OuterRef("pk")))).aggregate(
        reviewed=Count("id", distinct=True),
        first_pass=Count("id", distinct=True, filter=Q(Exists(first_round_approved))),
        rounds=Count("reviews__cycle", distinct=True),
    )
    reviewed = reviews["reviewed"]
    revision_rounds = (reviews["rounds"] or 0) - reviewed  # rounds after each step's first
    # Cast only what is digits: the engine writes ints, but one odd row (an admin edit, 2.0) must not make
    # PostgreSQL's cast fail the whole report.
    regressed = Case(
        When(
            comparison__counts__regressed__regex=r"^[0-9]{1,9}$",
            then=Cast(KT("comparison__counts__regressed"), IntegerField()),
        ),
        default=Value(0),
    )
    # What decided each step is its last run (earlier ones are the agent's fail-fix loop); step-less runs are the
    # engine's own (the re-run before delivery).
    last_of_step = TestRun.objects.filter(step=OuterRef("step")).order_by("-pk").values("pk")[:1]
    final_runs = TestRun.objects.filter(mission__in=filed_ids).filter(
        Q(step__isnull=True) | Q(pk=Subquery(last_of_step))
    )
    tests = final_runs.aggregate(
        runs=Count("id"),
        passed=Sum("passed"),
        failed=Sum("failed"),
        errors=Sum("errors"),
        regressed=Sum(Coalesce(regressed, Value(0))),
    )
    tests_passed = tests["passed"] or 0
    tests_run = tests_passed + (tests["failed"] or 0) + (tests["errors"] or 0)
    extra_tries = Greatest(F("attempt") - F("review_revisions") - 1, Value(0))  # Step.tries beyond the first
    retries = steps.aggregate(
        retries=Sum(extra_tries), retried=Count("id", filter=Q(attempt__gt=1 + F("review_revisions")))
    )
    pauses = ApprovalGate.objects.filter(mission__in=filed_ids, kind=ApprovalGate.Kind.BUDGET).aggregate(
        gates=Count("id"), missions=Count("mission", distinct=True)
    )
    return {
        "reviewed_steps": reviewed,
        "first_pass_approved": reviews["first_pass"],
        "first_pass_rate": _percent(reviews["first_pass"], reviewed),
        "revision_rounds": revision_rounds,
        "revision_rounds_per_step": _ratio(revision_rounds, reviewed),
        "final_test_runs": tests["runs"],
        "tests_passed": tests_passed,
        "tests_run": tests_run,
        "test_pass_rate": _percent(tests_passed, tests_run),
        "regressions": tests["regressed"] or 0,
        "step_retries": retries["retries"] or 0,
        "steps_retried": retries["retried"],
        "budget_pauses": pauses["gates"],
        "missions_paused_for_budget": pauses["missions"],
    }


# --- spend over time -----------------------------------------------------------------------------------------

DIMENSIONS = (
    ("agent", "Agent", "agent__title", NO_AGENT),
    ("role", "Role", "agent__role", NO_AGENT),
    ("model", "Model", "model_name", ""),
    ("template", "Template", "mission__template__name", NO_TEMPLATE),
    ("project", "Project", "mission__project__name", NO_PROJECT),
)
SPEND_COLUMNS = (
    Column("calls", "Calls", "int"),
    Column("prompt_tokens", "Tokens in", "int"),
    Column("completion_tokens", "Tokens out", "int"),
    Column("cost_usd", "Cost", "usd"),
)


def _spend_tables(kept: QuerySet[Mission], filters: KpiFilters) -> dict[str, Table]:
    """The ledger of the kept missions in the range, per bucket, and per bucket and dimension: six queries."""
    trunc = TruncDay if filters.bucket == "day" else TruncWeek
    calls = LLMCall.objects.filter(
        mission__in=kept.order_by().values("pk"), created_at__gte=filters.start, created_at__lt=filters.end
    ).annotate(bucket=trunc("created_at"))
    totals = {
        "calls": Count("id"),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        "cost_usd": Sum("cost_usd"),
    }
    labels = _bucket_labels(filters)
    word = filters.bucket.capitalize()
    rows = [_spend_row(row) for row in calls.values("bucket").annotate(**totals).order_by("bucket")]
    by_bucket = {row["bucket"]: row for row in rows}
    tables = {
        "spend_over_time": Table(
            name="spend_over_time",
            title=f"Spend per {filters.bucket}",
            columns=(Column("bucket", word), *SPEND_COLUMNS),
            rows=rows,
            chart={
                "type": "bar",
                "labels": labels,
                "datasets": [
                    {"label": "Cost (USD)", "data": [_float(by_bucket.get(b, {}).get("cost_usd")) for b in labels]}
                ],
                "stacked": False,
            },
            help="Model calls made in the date range, on the missions the other filters keep.",
        )
    }
    for name, label, path, missing in DIMENSIONS:
        summed = calls.values("bucket", path).annotate(**totals).order_by("bucket", path)
        rows = [_spend_row(row, name=row[path] or missing) for row in summed]
        names = sorted({row["name"] for row in rows}, key=lambda n: (n.startswith("("), n))
        cells = {(row["bucket"], row["name"]): row for row in rows}
        tables[f"spend_by_{name}"] = Table(
            name=f"spend_by_{name}",
            title=f"Spend by {label.lower()} per {filters.bucket}",
            columns=(Column("bucket", word), Column("name", label), *SPEND_COLUMNS),
            rows=rows,
            chart={
                "type": "bar",
                "labels": labels,
                "datasets": [
                    {"label": n, "data": [_float(cells.get((b, n), {}).get("cost_usd")) for b in labels]} for n in names
                ],
                "stacked": True,
            },
        )
    return tables


def _spend_row(row: dict, **extra) -> dict:
    bucket = row["bucket"]
    day = timezone.localtime(bucket).date() if isinstance(bucket, datetime) else bucket
    return {
        "bucket": day.isoformat(),
        **extra,
        "calls": row["calls"],
        "prompt_tokens": row["prompt_tokens"] or 0,
        "completion_tokens": row["completion_tokens"] or 0,
        "cost_usd": _usd(row["cost_usd"]),
    }


def _bucket_labels(filters: KpiFilters) -> list[str]:
    """Every bucket of the range, so a chart shows the quiet days too (a week starts on Monday, as TruncWeek's)."""
    day = filters.date_from
    if filters.bucket == "week":
        day -= timedelta(days=day.weekday())
    step = timedelta(days=1 if filters.bucket == "day" else 7)
    labels = []
    while day <= filters.date_to:
        labels.append(day.isoformat())
        day += step
    return labels


# --- forecast ------------------------------------------------------------------------------------------------


def _forecast_table(filed: QuerySet[Mission]) -> Table:
    """Completed missions' approved forecast against their ledger, per template and model: one grouped query.

    The forecast is the newest approved plan's (Plan.approved_estimated_*, kept by plan_approval_record); the
    actual is the mission's whole ledger, planning included, since that is what its budget has to cover.
    """
    approved = Plan.objects.filter(mission=OuterRef("pk"), approved_at__isnull=False).order_by("-version")
    rows = (
        filed.filter(status=Mission.Status.COMPLETED)
        .annotate(
            est_tokens=Subquery(approved.values("approved_estimated_tokens")[:1]),
            est_cost=Subquery(approved.values("approved_estimated_cost_usd")[:1]),
            est_model=Subquery(approved.values("approved_model_name")[:1]),
            actual_tokens=Coalesce(_ledger_sum(F("prompt_tokens") + F("completion_tokens")), Value(0)),
            actual_cost=Coalesce(_ledger_sum("cost_usd"), Value(Decimal(0)), output_field=DecimalField()),
        )
        .filter(est_tokens__isnull=False)
        .order_by()
        .values("template__name", "est_model")
        .annotate(
            missions=Count("id"),
            estimated_tokens=Sum("est_tokens"),
            actual_tokens=Sum("actual_tokens"),
            estimated_cost_usd=Sum("est_cost"),
            actual_cost_usd=Sum("actual_cost"),
        )
        .order_by("template__name", "est_model")
    )
    table_rows = []
    for row in rows:
        estimated, actual = _usd(row["estimated_cost_usd"]), _usd(row["actual_cost_usd"])
        table_rows.append(
            {
                "template": row["template__name"] or NO_TEMPLATE,
                "model": row["est_model"] or "(unknown)",
                "missions": row["missions"],
                "estimated_tokens": row["estimated_tokens"] or 0,
                "actual_tokens": row["actual_tokens"] or 0,
                "tokens_ratio": _ratio(row["actual_tokens"] or 0, row["estimated_tokens"] or 0),
                "estimated_cost_usd": estimated,
                "actual_cost_usd": actual,
                "cost_error_usd": actual - estimated,
                "cost_ratio": _ratio(actual, estimated),
            }
        )
    labels = [f"{r['template']} · {r['model']}" for r in table_rows]
    return Table(
        name="forecast",
        title="Forecast accuracy",
        columns=(
            Column("template", "Template"),
            Column("model", "Model"),
            Column("missions", "Missions", "int"),
            Column("estimated_tokens", "Tokens estimated", "int"),
            Column("actual_tokens", "Tokens used", "int"),
            Column("tokens_ratio", "Used ÷ estimated", "ratio"),
            Column("estimated_cost_usd", "Cost estimated", "usd"),
            Column("actual_cost_usd", "Cost", "usd"),
            Column("cost_error_usd", "Cost − estimate", "usd"),
            Column("cost_ratio", "Cost ÷ estimate", "ratio"),
        ),
        rows=table_rows,
        chart={
            "type": "bar",
            "labels": labels,
            "datasets": [
                {"label": "Estimated (USD)", "data": [_float(r["estimated_cost_usd"]) for r in table_rows]},
                {"label": "Used (USD)", "data": [_float(r["actual_cost_usd"]) for r in table_rows]},
            ],
            "stacked": False,
        },
        help="Completed missions filed in the range whose plan was approved with a forecast: the plan's estimated "
        "tokens, priced at the mission's model when it was approved, against the mission's whole ledger.",
    )


# --- the other tables ----------------------------------------------------------------------------------------


def _status_table(status_rows: list[dict]) -> Table:
    labels = dict(Mission.Status.choices)
    rows = [{"status": labels.get(r["status"], r["status"]), "missions": r["missions"]} for r in status_rows]
    return Table(
        name="by_status",
        title="Missions by status",
        columns=(Column("status", "Status"), Column("missions", "Missions", "int")),
        rows=rows,
        chart={
            "type": "bar",
            "labels": [r["status"] for r in rows],
            "datasets": [{"label": "Missions", "data": [r["missions"] for r in rows]}],
            "stacked": False,
        },
        help="Missions filed in the date range, by their status now.",
    )


def _time_split_table(figures: Figures) -> Table:
    if figures.lead_time_median_s is None:
        rows = []
    else:
        rows = [
            {"part": "Waiting on gates", "total_s": figures.gate_wait_total_s, "median_s": figures.gate_wait_median_s},
            {"part": "Working", "total_s": figures.working_total_s, "median_s": figures.working_median_s},
        ]
    for row in rows:
        row["total_hours"], row["median_hours"] = _hours(row["total_s"]), _hours(row["median_s"])
    return Table(
        name="time_split",
        title="Time waiting on gates and working",
        columns=(
            Column("part", "Part"),
            Column("total_hours", "Hours in all", "hours"),
            Column("median_hours", "Median hours per mission", "hours"),
            Column("total_s", "Seconds in all", "int"),
        ),
        rows=rows,
        chart={
            "type": "doughnut",
            "labels": [r["part"] for r in rows],
            "datasets": [{"label": "Hours", "data": [_float(r["total_hours"]) for r in rows]}],
            "stacked": False,
        }
        if rows
        else None,
        help="Completed missions. Waiting on gates: from each gate's request to its decision, summed. "
        "Working: the lead time (filed to completed) minus that waiting.",
    )


def _missions_table(missions: list[dict]) -> Table:
    rows = [
        {
            "code": str(m["code"]),
            "title": m["title"],
            "status": m["status"],
            "template": m["template__name"] or NO_TEMPLATE,
            "project": m["project__name"] or NO_PROJECT,
            "requester": m["requester__username"],
            "filed": m["created_at"].isoformat(),
            "cost_usd": m["cost_usd"],
            "tokens": m["tokens"],
            "lead_time_hours": _hours(m["lead_time_s"]),
            "gate_wait_hours": _hours(m["gate_wait_s"]),
        }
        for m in missions
    ]
    return Table(
        name="missions",
        title="Missions filed",
        columns=(
            Column("title", "Mission"),
            Column("status", "Status"),
            Column("template", "Template"),
            Column("project", "Project"),
            Column("requester", "Requester"),
            Column("filed", "Filed"),
            Column("cost_usd", "Cost", "usd"),
            Column("tokens", "Tokens", "int"),
            Column("lead_time_hours", "Lead time (h)", "hours"),
            Column("gate_wait_hours", "On gates (h)", "hours"),
            Column("code", "Code"),
        ),
        rows=rows,
        help="Each mission's cost and tokens are its whole ledger; lead time only for completed missions.",
    )


def _summary_table(f: Figures) -> Table:
    def row(metric, value, kind, definition):
        return {"metric": metric, "value": value, "kind": kind, "definition": definition}

    rows = [
        row("Missions filed", f.missions, "int", "Filed in the date range."),
        row("Success rate", f.success_rate, "percent", f"Completed ÷ finished ({f.completed} of {f.finished})."),
        row("Lead time, median", _hours(f.lead_time_median_s), "hours", "Filed → completed, completed missions."),
        row("Lead time, p90", _hours(f.lead_time_p90_s), "hours", "90th percentile, interpolated."),
        row("Cost per mission, median", f.cost_median_usd, "usd", "A mission's whole ledger."),
        row("Cost per mission, p90", f.cost_p90_usd, "usd", "90th percentile, interpolated."),
        row("Cost of these missions", f.cost_total_usd, "usd", "Every ledger row of the missions filed."),
        row("Tokens per mission, median", f.tokens_median, "int", "Prompt + completion tokens."),
        row("Tokens per mission, p90", f.tokens_p90, "int", "90th percentile, interpolated."),
        row(
            "First-pass review approval",
            f.first_pass_rate,
            "percent",
            f"Peer-reviewed steps approved in their first round ({f.first_pass_approved} of {f.reviewed_steps}).",
        ),
        row(
            "Revision rounds per reviewed step",
            f.revision_rounds_per_step,
            "ratio",
            f"Review rounds after the first ({f.revision_rounds} in all).",
        ),
        row(
            "Test pass rate",
            f.test_pass_rate,
            "percent",
            f"Tests passed ÷ run in the run that decided each step and the re-run before delivery ({f.tests_passed} "
            f"of {f.tests_run}, {f.final_test_runs} runs).",
        ),
        row("Regressions", f.regressions if f.final_test_runs else None, "int", "Tests that passed at the base "
            "commit and failed in one of those runs."),
        row("Step retries", f.step_retries, "int", f"Attempts beyond a step's first, not counting reviewers' "
            f"revisions ({f.steps_retried} steps retried)."),
        row("Budget pauses", f.budget_pauses, "int", f"Budget gates opened ({f.missions_paused_for_budget} "
            "missions)."),
        row("Spend in the range", f.spend_total_usd, "usd", "Model calls made in the date range."),
    ]  # fmt: skip
    return Table(
        name="summary",
        title="Summary",
        columns=(Column("metric", "Measure"), Column("value", "Value", "auto"), Column("definition", "How")),
        rows=rows,
    )


# --- numbers -------------------------------------------------------------------------------------------------


def percentile(values: list, p: str):
    """The ``p`` quantile of ``values`` by linear interpolation (PostgreSQL's percentile_cont); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = Decimal(p) * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    below, above = Decimal(ordered[low]), Decimal(ordered[high])
    return below + (above - below) * (rank - low)


def _usd(value) -> Decimal:
    """A ledger sum at the ledger's precision (SQLite sums decimals as floats)."""
    return Decimal(str(value or 0)).quantize(USD_PLACES, rounding=ROUND_HALF_EVEN)


def _usd_or_none(value) -> Decimal | None:
    return None if value is None else _usd(value)


def _int(value) -> int | None:
    return None if value is None else int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _percent(part: int, whole: int) -> Decimal | None:
    return (Decimal(part) * 100 / whole).quantize(PERCENT_PLACES) if whole else None


def _ratio(part, whole) -> Decimal | None:
    return (Decimal(part) / Decimal(whole)).quantize(HOUR_PLACES) if whole else None


def _hours(seconds: int | None) -> Decimal | None:
    return None if seconds is None else (Decimal(seconds) / 3600).quantize(HOUR_PLACES)


def _seconds(value) -> int:
    """A summed duration in whole seconds (PostgreSQL gives a timedelta; SQLite may give microseconds)."""
    if value is None:
        return 0
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    return int(value) // 1_000_000


def _float(value) -> float:
    return float(value or 0)


def _json_safe(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value
