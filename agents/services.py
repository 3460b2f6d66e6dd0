"""Writes for the cost ledger and the transcript."""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.errors import BudgetExceeded, MissionStopped
from agents.models import AgentMessage, LLMCall, ModelProfile, priced_usd
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
    2. Refuse when the mission has stopped or is paused (this is how a cancel or a pause reaches a running step:
       the tool call under way finishes, the model call after it is refused).
    3. Refuse when the upper-bound cost does not fit what is left of the budget.
    4. Add the bound to ``reserved_usd`` and write a pending LLMCall that keeps the bounds: the call must send
       ``max_output_tokens`` as its max_tokens, and it is never billed above them (``llm_call_settle``).
    """
    estimate = profile.cost_usd(prompt_tokens=prompt_token_bound, completion_tokens=max_output_tokens)
    with transaction.atomic():
        mission = Mission.objects.select_for_update().get(pk=mission_id)
        if mission.is_finished or mission.status == Mission.Status.PAUSED:
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
            prompt_token_bound=prompt_token_bound,
            max_output_tokens=max_output_tokens,
            fingerprint=fingerprint,
            **profile.unit_prices,
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
        **profile.unit_prices,
    )


def llm_call_settle(
    *,
    call: LLMCall,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    cached_tokens: int = 0,
    output_bytes: int = 0,
    cut_off: bool = False,
    latency_ms: int,
    response: dict | None = None,
    error: str = "",
) -> LLMCall:
    """Bill the call at its truthful usage, never above its reservation, and release the reservation.

    1. Usage the server reported (``prompt_tokens``/``completion_tokens``) is billed up to the reservation's
       bounds: the prompt bound and the max_tokens the call sent.
    2. Without a report (None: the client cut the answer off, or the server sends no usage) the prompt is billed
       at its bound and the answer at the UTF-8 size of what arrived (a token covers at least one byte), capped.
    3. A report above a bound, or an answer cut off because the server ignored max_tokens (``cut_off``), is an
       overrun: flagged on the row with the reported numbers, and told on the mission's timeline.
    A call closed with an ``error`` (an unusable, cut-off answer) is still billed, but never replayed.
    """
    prompt_bound, output_bound = call.prompt_token_bound, call.max_output_tokens
    reported = prompt_tokens is not None and completion_tokens is not None
    if reported:
        billed_prompt, billed_completion = min(prompt_tokens, prompt_bound), min(completion_tokens, output_bound)
        overrun = cut_off or prompt_tokens > prompt_bound or completion_tokens > output_bound
    else:
        billed_prompt, billed_completion = prompt_bound, min(output_bytes, output_bound)
        overrun = cut_off
    billed_cached = min(cached_tokens, billed_prompt)
    # At the prices of the reservation (a call reserved before they were kept: the profile's).
    cost = priced_usd(
        call.unit_prices or call.model_profile.unit_prices,
        prompt_tokens=billed_prompt,
        completion_tokens=billed_completion,
        cached_tokens=billed_cached,
    )
    with transaction.atomic():
        closed = _close(
            call,
            status=LLMCall.Status.ERROR if error else LLMCall.Status.OK,
            cost=min(cost, call.reserved_usd),
            prompt_tokens=billed_prompt,
            completion_tokens=billed_completion,
            cached_tokens=billed_cached,
            reported_prompt_tokens=prompt_tokens,
            reported_completion_tokens=completion_tokens,
            overrun=overrun,
            latency_ms=latency_ms,
            response=None if error else response,
            error=error[:2000],
        )
        if overrun:
            _overrun_record(closed, reported=reported, output_bytes=output_bytes, cut_off=cut_off)
    return closed


def _overrun_record(call: LLMCall, *, reported: bool, output_bytes: int, cut_off: bool) -> None:
    if cut_off:
        what = (
            f"ignored max_tokens={call.max_output_tokens} and kept sending; the answer was cut off "
            f"after {output_bytes} bytes"
        )
    else:
        what = (
            f"reported {call.reported_prompt_tokens} prompt and {call.reported_completion_tokens} completion tokens "
            f"for a call reserved for at most {call.prompt_token_bound} and {call.max_output_tokens}"
        )
    event_record(
        mission=call.mission,
        kind=Event.Kind.COST,
        message=f"Budget overrun stopped: the model server {what}. Billed ${call.cost_usd} "
        f"({call.prompt_tokens} prompt + {call.completion_tokens} completion tokens, within the reservation) "
        f"for {call.purpose}.",
        data={
            "llm_call": call.pk,
            "overrun": True,
            "cut_off": cut_off,
            "reported": reported,
            "reported_prompt_tokens": call.reported_prompt_tokens,
            "reported_completion_tokens": call.reported_completion_tokens,
            "billed_prompt_tokens": call.prompt_tokens,
            "billed_completion_tokens": call.completion_tokens,
            "cost_usd": str(call.cost_usd),
        },
    )


def llm_call_fail(*, call: LLMCall, error: str, latency_ms: int) -> LLMCall:
    """A failed call costs nothing here (providers do not bill failed requests); release the reservation."""
    return _close(call, status=LLMCall.Status.ERROR, cost=Decimal(0), error=error[:2000], latency_ms=latency_ms)


def llm_call_release_stale(*, older_than_s: int | None = None) -> int:
    """Release the reservations of calls whose worker died mid-call (a reaper step); returns how many.

    A call still pending after ``LLM_RESERVATION_STALE_S`` cannot be running any more: the metering wrapper
    gives up on every call after ``LLM_CALL_DEADLINE_S``, which is shorter. Its reservation goes back to the
    mission at no cost (what the provider billed, if anything, is unknown), the row is closed as an error and
    the mission's timeline says so.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.LLM_RESERVATION_STALE_S if older_than_s is None else older_than_s)
    released = 0
    for call in LLMCall.objects.filter(status=LLMCall.Status.PENDING, created_at__lt=cutoff).select_related("mission"):
        with transaction.atomic():
            mission = Mission.objects.select_for_update().get(pk=call.mission_id)
            # Under the mission lock, as every close is: a call that settled meanwhile is left alone.
            if not LLMCall.objects.filter(pk=call.pk, status=LLMCall.Status.PENDING).update(
                status=LLMCall.Status.ERROR,
                error="Abandoned: its worker stopped before the call finished; the reservation was released.",
                finished_at=now,
            ):
                continue
            mission.reserved_usd = max(mission.reserved_usd - call.reserved_usd, Decimal(0))
            mission.save(update_fields=["reserved_usd", "updated_at"])
            event_record(
                mission=mission,
                kind=Event.Kind.COST,
                message=f"Released the ${call.reserved_usd} reserved for a {call.purpose} call whose worker stopped "
                "before it finished.",
                data={"llm_call": call.pk, "released_usd": str(call.reserved_usd)},
            )
            released += 1
    return released


def _close(call: LLMCall, *, status: str, cost: Decimal, **fields) -> LLMCall:
    with transaction.atomic():
        mission = Mission.objects.select_for_update().get(pk=call.mission_id)
        # The reaper may have released the reservation of a call it took for dead; never release it twice.
        held = LLMCall.objects.filter(pk=call.pk, status=LLMCall.Status.PENDING).exists()
        if held:
            mission.reserved_usd = max(mission.reserved_usd - call.reserved_usd, Decimal(0))
        mission.spent_usd += cost
        mission.save(update_fields=["reserved_usd", "spent_usd", "updated_at"])
        if cost > 0 and mission.budget_warning_due:
            _budget_warning_record(mission)
        call.mission = mission
        call.status = status
        call.cost_usd = cost
        call.finished_at = timezone.now()
        for name, value in fields.items():
            setattr(call, name, value)
        call.save()
    return call


def _budget_warning_record(mission: Mission) -> None:
    """Warn once per budget level that settled spend has reached 80 % of it; runs in the settle's transaction.

    Settled spend, not spend plus reservations: a reservation is a worst case that is mostly given back, and
    warning on it would cry wolf for money that was never spent. The conditional UPDATE is the claim: of two
    settles that both see the spend past 80 %, only the one that moves ``budget_warned_at_usd`` to this budget
    records the warning (the mission row lock already orders them; the UPDATE keeps it true without it).
    """
    claimed = (
        Mission.objects.filter(pk=mission.pk)
        .exclude(budget_warned_at_usd=mission.budget_usd)
        .update(budget_warned_at_usd=mission.budget_usd)
    )
    if not claimed:
        return
    mission.budget_warned_at_usd = mission.budget_usd
    percent = int(mission.spent_usd * 100 / mission.budget_usd)
    event_record(
        mission=mission,
        kind=Event.Kind.COST,
        message=f"Budget warning: ${mission.spent_usd:.4f} of the ${mission.budget_usd} budget is spent ({percent} %).",
        data={
            "budget_warning": True,
            "spent_usd": str(mission.spent_usd),
            "budget_usd": str(mission.budget_usd),
            "percent": percent,
        },
    )
    from notifications.services import Kind, notify  # notifications sits above agents: imported where used

    notify(
        user=mission.requester,
        kind=Kind.WARNING,
        message=f"{percent} % of the ${mission.budget_usd} budget is spent.",
        url=mission.get_absolute_url(),
        mission=mission,
    )


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
