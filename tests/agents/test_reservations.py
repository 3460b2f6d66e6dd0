"""Budget reservations: held while a call runs, released by the reaper when its worker died, never twice."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from agents.errors import BudgetExceeded
from agents.models import LLMCall, ModelProfile
from agents.services import llm_call_reserve, llm_call_settle
from missions import engine
from missions.events import event_record
from missions.models import Event, Mission


@pytest.fixture
def profile(db):
    return ModelProfile.objects.create(name="reserving", max_output_tokens=1000)


@pytest.fixture
def mission(pm):
    mission = Mission.objects.create(
        requester=pm, title="m", request="r", budget_usd=Decimal("1.00"), status=Mission.Status.EXECUTING
    )
    event_record(mission=mission, kind=Event.Kind.STATUS, message="alive")  # not quiet: the reaper leaves it be
    return mission


def _reserve(mission, profile, *, age_s=0):
    call = llm_call_reserve(
        mission_id=mission.pk,
        profile=profile,
        model_name="sim-1",
        purpose="step:codegen",
        prompt_token_bound=2000,
        max_output_tokens=profile.max_output_tokens,
    )
    LLMCall.objects.filter(pk=call.pk).update(created_at=timezone.now() - timedelta(seconds=age_s))
    return call


def test_it_releases_the_reservation_of_a_call_whose_worker_died(mission, profile, settings):
    """A call pending past LLM_RESERVATION_STALE_S is closed at no cost and its reservation returns to the mission;
    a call still within the threshold keeps its reservation."""
    settings.LLM_RESERVATION_STALE_S = 700
    dead = _reserve(mission, profile, age_s=701)
    live = _reserve(mission, profile, age_s=650)
    mission.refresh_from_db()
    assert mission.reserved_usd == dead.reserved_usd + live.reserved_usd > 0

    assert engine.reap_stalled() == {"steps_requeued": 0, "missions_advanced": 0}

    mission.refresh_from_db()
    dead.refresh_from_db()
    live.refresh_from_db()
    assert mission.reserved_usd == live.reserved_usd and mission.spent_usd == 0
    assert dead.status == LLMCall.Status.ERROR and dead.cost_usd == 0 and "worker stopped" in dead.error
    assert live.status == LLMCall.Status.PENDING
    event = mission.events.get(kind=Event.Kind.COST)
    assert f"Released the ${dead.reserved_usd} reserved" in event.message and event.data["llm_call"] == dead.pk

    engine.reap_stalled()  # nothing more to release
    mission.refresh_from_db()
    assert mission.reserved_usd == live.reserved_usd and mission.events.filter(kind=Event.Kind.COST).count() == 1


def test_a_released_reservation_frees_the_budget_for_the_next_call(mission, profile, settings):
    """While a dead call's reservation is held the budget refuses the next call; once released it fits."""
    settings.LLM_RESERVATION_STALE_S = 700
    profile.max_output_tokens = 10_000  # $0.0063 per call at the default prices: one fits in $0.01
    profile.save()
    mission.budget_usd = Decimal("0.01")
    mission.save()
    _reserve(mission, profile, age_s=3600)
    with pytest.raises(BudgetExceeded):
        _reserve(mission, profile)
    engine.reap_stalled()
    assert _reserve(mission, profile).status == LLMCall.Status.PENDING


def test_a_call_that_settles_after_its_release_is_billed_but_not_released_twice(mission, profile):
    """A call the reaper took for dead that answers after all is billed; the reservation is not subtracted again."""
    late = _reserve(mission, profile, age_s=3600)
    other = _reserve(mission, profile)
    engine.reap_stalled()
    settled = llm_call_settle(call=late, prompt_tokens=100, completion_tokens=50, latency_ms=1)
    mission.refresh_from_db()
    assert settled.status == LLMCall.Status.OK and settled.cost_usd > 0
    assert mission.reserved_usd == other.reserved_usd
    assert mission.spent_usd == sum(c.cost_usd for c in LLMCall.objects.filter(mission=mission)) == settled.cost_usd


def test_it_bills_a_call_at_the_unit_prices_of_its_reservation(mission, profile):
    """The ledger row keeps the profile's prices when the call was reserved; an admin changing them mid-call
    changes neither that call's cost nor the prices the report shows for it, only the next call's."""
    profile.price_input_per_mtok, profile.price_cached_input_per_mtok = Decimal("2.0000"), Decimal("1.0000")
    profile.price_output_per_mtok = Decimal("8.0000")
    profile.save()
    call = _reserve(mission, profile)
    ModelProfile.objects.filter(pk=profile.pk).update(price_input_per_mtok=100, price_output_per_mtok=400)
    call.model_profile.refresh_from_db()

    settled = llm_call_settle(call=call, prompt_tokens=1000, completion_tokens=500, cached_tokens=400, latency_ms=5)

    # 600 uncached × $2 + 400 cached × $1 + 500 out × $8, per million tokens.
    assert settled.cost_usd == Decimal("0.005600")
    assert settled.unit_prices == {
        "price_input_per_mtok": Decimal("2.0000"),
        "price_cached_input_per_mtok": Decimal("1.0000"),
        "price_output_per_mtok": Decimal("8.0000"),
    }
    assert _reserve(mission, call.model_profile).price_output_per_mtok == Decimal("400.0000")
