"""Writes for the cost ledger and the transcript."""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from agents.errors import BudgetExceeded, MissionStopped
from agents.models import AgentMessage, LLMCall, ModelProfile
from agents.runtime.probe import CAPABILITIES, probe_endpoint
from missions.events import event_record
from missions.models import Event, Mission

# A capability a server may refuse at run time, the profile flag that records it, and what happens next.
DOWNGRADES = {
    "json_schema": ("supports_json_schema", "later calls use JSON mode with the schema in the prompt"),
    "json_mode": ("supports_json_mode", "later calls only put the schema in the prompt"),
    "tools": ("supports_tools", "execution agents cannot work without tools (llama.cpp's server needs --jinja)"),
}


def llm_call_reserve(
    *,
    mission_id: int,
    profile: ModelProfile,
    model_name: str,
    purpose: str,
    prompt_token_bound: int,
    max_output_tokens: int,
    fingerprint: str = "",
    cycle_id: int | None = None,
    step_id: int | None = None,
    agent_id: int | None = None,
) -> LLMCall:
    """Reserve the call's worst-case cost against the budget and write its ledger row.

    1. Lock the mission row, so concurrent steps reserve one after another.
    2. Refuse when the mission has stopped (this is how a cancel reaches a running step).
    3. Refuse when the upper-bound cost does not fit what is left of the budget.
    4. Add the bound to ``reserved_usd`` and write a pending LLMCall.
    """
    estimate = profile.cost_usd(prompt_tokens=prompt_token_bound, completion_tokens=max_output_tokens)
    with transaction.atomic():
        mission = Mission.objects.select_for_update().get(pk=mission_id)
        if mission.is_finished:
            raise MissionStopped(f"The mission is {mission.get_status_display().lower()}.")
        if estimate > mission.budget_remaining_usd:
            raise BudgetExceeded(
                f"Budget exhausted: the next model call ({purpose}) may cost up to ${estimate:.4f}, "
                f"but only ${max(mission.budget_remaining_usd, Decimal(0)):.4f} of ${mission.budget_usd} is left."
            )
        mission.reserved_usd += estimate
        mission.save(update_fields=["reserved_usd", "updated_at"])
        return LLMCall.objects.create(
            mission=mission,
            cycle_id=cycle_id,
            step_id=step_id,
            agent_id=agent_id,
            model_profile=profile,
            model_name=model_name,
            purpose=purpose,
            reserved_usd=estimate,
            fingerprint=fingerprint,
        )


def llm_call_cached_response(*, mission_id: int, fingerprint: str) -> dict | None:
    """The answer an identical, completed request of this mission got (a re-run after a crash)."""
    call = (
        LLMCall.objects.filter(mission_id=mission_id, fingerprint=fingerprint, status=LLMCall.Status.OK)
        .exclude(response=None)
        .only("response")
        .first()
    )
    return call.response if call else None


def llm_call_record_cache_hit(
    *,
    mission_id: int,
    profile: ModelProfile,
    purpose: str,
    fingerprint: str,
    cycle_id=None,
    step_id=None,
    agent_id=None,
) -> LLMCall:
    """A replayed answer costs nothing, but is still in the ledger."""
    now = timezone.now()
    return LLMCall.objects.create(
        mission_id=mission_id,
        cycle_id=cycle_id,
        step_id=step_id,
        agent_id=agent_id,
        model_profile=profile,
        model_name=profile.resolved_model_name(),
        purpose=purpose,
        status=LLMCall.Status.CACHE_HIT,
        fingerprint=fingerprint,
        finished_at=now,
    )


def llm_call_settle(
    *,
    call: LLMCall,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    latency_ms: int,
    response: dict | None = None,
) -> LLMCall:
    """Record the real usage and cost (and the answer, for replay), and release the reservation."""
    cost = call.model_profile.cost_usd(
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cached_tokens=cached_tokens
    )
    return _close(
        call,
        status=LLMCall.Status.OK,
        cost=cost,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        latency_ms=latency_ms,
        response=response,
    )


def llm_call_fail(*, call: LLMCall, error: str, latency_ms: int) -> LLMCall:
    """A failed call costs nothing here (providers do not bill failed requests); release the reservation."""
    return _close(call, status=LLMCall.Status.ERROR, cost=Decimal(0), error=error[:2000], latency_ms=latency_ms)


def _close(call: LLMCall, *, status: str, cost: Decimal, **fields) -> LLMCall:
    with transaction.atomic():
        mission = Mission.objects.select_for_update().get(pk=call.mission_id)
        mission.reserved_usd = max(mission.reserved_usd - call.reserved_usd, Decimal(0))
        mission.spent_usd += cost
        mission.save(update_fields=["reserved_usd", "spent_usd", "updated_at"])
        call.status = status
        call.cost_usd = cost
        call.finished_at = timezone.now()
        for name, value in fields.items():
            setattr(call, name, value)
        call.save()
    return call


def agent_message_record(
    *,
    mission_id: int,
    source: str,
    content: str,
    kind: str = AgentMessage.Kind.TEXT,
    data: dict | None = None,
    cycle_id: int | None = None,
    step_id: int | None = None,
    agent_id: int | None = None,
) -> AgentMessage:
    return AgentMessage.objects.create(
        mission_id=mission_id,
        cycle_id=cycle_id,
        step_id=step_id,
        agent_id=agent_id,
        kind=kind,
        source=source,
        content=content[:20000],
        data=data or {},
    )


def model_profile_check(*, profile: ModelProfile) -> dict:
    """Probe the endpoint and store what it accepts; returns the probe result.

    The capability flags change only when plain completion worked: an
    unreachable server says nothing about what it would accept.
    """
    result = probe_endpoint(profile)
    found = result["capabilities"]
    profile.probe_result = result
    profile.probed_at = timezone.now()
    fields = ["probe_result", "probed_at"]
    if found["plain"]["ok"]:
        for capability, (field, _) in DOWNGRADES.items():
            setattr(profile, field, found[capability]["ok"])
            fields.append(field)
    profile.save(update_fields=fields)
    return result


def model_profile_downgrade(*, profile: ModelProfile, capability: str, reason: str, mission_id: int) -> bool:
    """Record that the endpoint refused ``capability`` at run time; True for the call that changed the profile.

    1. Lock the profile row; if the flag is already off, another call got here first: change nothing.
    2. Turn the flag off and note the refusal in ``probe_result``, so the admin shows it.
    3. Tell the mission in an event (only once, from the call that made the change).
    The in-memory ``profile`` is updated either way, so its next call uses the lower mode.
    """
    field, instead = DOWNGRADES[capability]
    setattr(profile, field, False)
    with transaction.atomic():
        row = ModelProfile.objects.select_for_update().get(pk=profile.pk)
        if not getattr(row, field):
            return False
        setattr(row, field, False)
        found = dict(row.probe_result or {})
        found["capabilities"] = {
            **found.get("capabilities", {}),
            capability: {"ok": False, "detail": f"refused at run time: {reason[:300]}"},
        }
        row.probe_result = found
        row.save(update_fields=[field, "probe_result"])
        mission = Mission.objects.get(pk=mission_id)
        event_record(
            mission=mission,
            kind=Event.Kind.ERROR,
            message=f"Model profile {profile.name} refused {CAPABILITIES[capability]}; {instead}. ({reason[:200]})",
            data={"profile": profile.name, "downgrade": capability},
        )
    return True
