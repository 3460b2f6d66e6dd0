"""A capability refusal downgrades a shared profile for good, so only a real refusal counts as one.

Through ``ask_structured`` against the sim: a transient 5xx that happens to mention ``response_format`` fails the
call and leaves the profile as it was; a 400 (or 422/501) saying the same is a refusal and downgrades it once.
"""

from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from pydantic import BaseModel

from agents.errors import ModelUnavailable
from agents.models import ModelProfile
from agents.runtime.metering import CallContext
from agents.runtime.structured import ask_structured
from missions.models import Mission

REFUSAL_TEXT = 'response_format type must be one of "text" or "json_object", but got: json_schema'


class PlanVote(BaseModel):
    stance: str
    rationale: str
    amendments: list[str]


@pytest.fixture
def profile(db, sim):
    return ModelProfile.objects.create(name="shared", max_output_tokens=256)


@pytest.fixture
def mission(db, pm):
    return Mission.objects.create(requester=pm, title="Refusals", request="r", budget_usd=Decimal("1.00"))


def _ask(profile, mission) -> PlanVote:
    return async_to_sync(ask_structured)(
        profile=profile,
        system_prompt="You vote.",
        prompt="Vote on the plan.",
        output_type=PlanVote,
        context=CallContext(mission_id=mission.pk, purpose="plan_vote"),
    )


@pytest.mark.parametrize("status", [500, 502, 503])
def test_it_does_not_downgrade_a_profile_for_a_server_error_that_mentions_response_format(
    profile, mission, sim, status
):
    """A 5xx is as often transient: the call fails with the reason and every mission keeps JSON schema."""
    sim.add_faults({"kind": "500", "status": status, "message": f"backend crashed while handling {REFUSAL_TEXT}"})
    with pytest.raises(ModelUnavailable, match="backend crashed"):
        _ask(profile, mission)
    profile.refresh_from_db()
    assert profile.supports_json_schema and profile.supports_json_mode
    assert not mission.events.filter(data__downgrade="json_schema").exists()


def test_it_still_downgrades_once_for_a_refusal_with_a_client_error_status(profile, mission, sim):
    """The same words with a 400 (llama.cpp's refusal) are the server refusing the mode: downgraded, answered."""
    sim.set_capabilities(json_schema=False)
    assert _ask(profile, mission).stance
    profile.refresh_from_db()
    assert not profile.supports_json_schema and profile.supports_json_mode
    assert [c["status"] for c in sim.calls()] == [400, 200]
