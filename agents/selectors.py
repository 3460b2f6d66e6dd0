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


def staff_roles_for(mission) -> list[str]:
    """The roles ``mission``'s plan may staff without a new specialist: only agents it may use.

    A specialist's role is model text from another mission's plan: listing every
    active agent would show it (and whatever it says) to other requesters' models.
    """
    agents = AgentSpec.objects.usable_for(mission).filter(is_active=True, is_c_suite=False)
    return sorted(set(agents.values_list("role", flat=True)))
