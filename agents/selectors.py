from agents.models import AgentSpec, ModelProfile


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
