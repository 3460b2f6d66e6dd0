from decimal import Decimal

from django.db.models import Case, CharField, Count, F, Sum, Value, When

from agents.models import AgentSpec, LLMCall, ModelProfile

LEDGER_PLACES = Decimal("0.000001")  # LLMCall.cost_usd's decimal places


def default_model_profile() -> ModelProfile | None:
    return ModelProfile.objects.filter(is_default=True).first() or ModelProfile.objects.order_by("pk").first()


def c_suite_agents() -> list[AgentSpec]:
    order = {"ceo": 0, "cto": 1, "cfo": 2, "cro": 3}
    agents = list(AgentSpec.objects.filter(is_c_suite=True, is_active=True).select_related("model_profile"))
    return sorted(agents, key=lambda a: (order.get(a.role, 99), a.name))


def agent_for_role(role: str, *, mission) -> AgentSpec | None:
    """The active agent ``mission`` may use for ``role``: standard first, then promoted, then the requester's own."""
    return (
        AgentSpec.objects.usable_for(mission)
        .filter(role=role, is_active=True, is_c_suite=False)
        .order_by("is_dynamic", "-reviewed_for_reuse", "pk")
        .select_related("model_profile")
        .first()
    )


def staff_roles_for(mission) -> list[str]:
    """The roles ``mission``'s plan may staff without a new specialist: only agents it may use.

    A specialist's role is model text from another mission's plan: listing every
    active agent would show it (and whatever it says) to other requesters' models.
    """
    agents = AgentSpec.objects.usable_for(mission).filter(is_active=True, is_c_suite=False)
    return sorted(set(agents.values_list("role", flat=True)))


def _usd(total: Decimal | None) -> Decimal:
    """A ledger sum at the ledger's precision (SQLite's SUM of decimals comes back with sixteen places)."""
    return (total or Decimal(0)).quantize(LEDGER_PLACES)


def mission_spend_by_agent(mission) -> list[dict]:
    """The mission's ledger summed per agent, biggest first: one aggregate query."""
    rows = (
        LLMCall.objects.filter(mission=mission)
        .values("agent_id", "agent__title")
        .annotate(cost_usd=Sum("cost_usd"), calls=Count("id"))
        .order_by("-cost_usd", "agent__title")
    )
    return [
        {"agent": row["agent__title"] or "(no agent)", "cost_usd": _usd(row["cost_usd"]), "calls": row["calls"]}
        for row in rows
    ]


def mission_spend_by_step(mission) -> list[dict]:
    """The mission's ledger summed per step (calls outside a step, such as planning, together), biggest first."""
    rows = (
        LLMCall.objects.filter(mission=mission)
        .values("step_id", "step__key", "step__title", "step__status")
        .annotate(cost_usd=Sum("cost_usd"), calls=Count("id"))
        .order_by("-cost_usd", "step__key")
    )
    return [
        {
            "step_id": row["step_id"],
            "step": row["step__key"] or "",
            "title": row["step__title"] or "Outside steps (planning, staffing, budget)",
            "status": row["step__status"] or "",
            "cost_usd": _usd(row["cost_usd"]),
            "calls": row["calls"],
        }
        for row in rows
    ]


def _totals() -> dict:
    """What each row of a cost breakdown sums."""
    return {
        "cost_usd": Sum("cost_usd"),
        "calls": Count("id"),
        "prompt_tokens": Sum("prompt_tokens"),
        "cached_tokens": Sum("cached_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        "latency_ms": Sum("latency_ms"),
    }


def _spend_rows(rows, *group: str) -> list[dict]:
    """``rows`` (the mission's ledger) summed by ``group`` in one aggregate query, biggest first."""
    summed = rows.values(*group).annotate(**_totals()).order_by("-cost_usd", *group)
    return [{**row, "cost_usd": _usd(row["cost_usd"])} for row in summed]


def mission_spend_by_phase(mission) -> list[dict]:
    """Per phase: the call's decision cycle's kind (planning, validation, review…), execution for a step's own
    calls, "other" for the rest (a budget proposal, say)."""
    phase = Case(
        When(cycle__isnull=False, then=F("cycle__kind")),
        When(step__isnull=False, then=Value("execution")),
        default=Value("other"),
        output_field=CharField(),
    )
    return _spend_rows(LLMCall.objects.filter(mission=mission).annotate(phase=phase), "phase")


def mission_spend_by_model(mission) -> list[dict]:
    return _spend_rows(LLMCall.objects.filter(mission=mission), "model_name")


def mission_spend_by_agent_and_step(mission) -> list[dict]:
    """Per agent and step, with tokens: the cost report's table (the budget gate keeps its smaller ones)."""
    return _spend_rows(LLMCall.objects.filter(mission=mission), "agent__title", "step__key")


LEDGER_LIMIT = 2000  # calls listed (and exported) per mission; the sums above count every call


def mission_ledger(mission, limit: int | None = LEDGER_LIMIT):
    """The mission's model calls in order, with what the report shows of each; one query (``limit=None``: all)."""
    calls = (
        LLMCall.objects.filter(mission=mission)
        .select_related("agent", "step", "cycle")
        .only(
            "created_at",
            "purpose",
            "model_name",
            "status",
            "prompt_tokens",
            "cached_tokens",
            "completion_tokens",
            "cost_usd",
            "price_input_per_mtok",
            "price_cached_input_per_mtok",
            "price_output_per_mtok",
            "latency_ms",
            "attempt",
            "agent__title",
            "step__key",
            "cycle__kind",
            "cycle__number",
        )
        .order_by("id")
    )
    return calls if limit is None else calls[:limit]
