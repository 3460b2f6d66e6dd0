from decimal import Decimal

from django.db.models import Count, Sum

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
