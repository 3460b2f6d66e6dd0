"""The metering wrapper through its public create(), against the simulated server over HTTP.

The reservation is a hard bound: max_tokens is always sent, an answer from a server that ignores it is cut off
while it streams, and the ledger never bills more than was reserved, whatever usage the server reports.
"""

import random
import string
import time
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from autogen_core.models import SystemMessage, UserMessage
from pydantic import BaseModel

from agents.errors import ModelOutputError, ModelUnavailable
from agents.models import LLMCall, ModelProfile
from agents.runtime.clients import model_client_for
from agents.runtime.metering import CallContext, MeteredChatCompletionClient
from missions.models import Event, Mission
from tests.conftest import wait_for

LONG_TEXT = "word " * 3000
WRITE_FILE = {
    "name": "write_file",
    "description": "Write a file.",
    "parameters": {
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
    },
}
CODEGEN_BRIEF = "Mission: Metering\nStep: core — Core module"


class PlanVote(BaseModel):
    stance: str
    rationale: str


@pytest.fixture
def profile(db, sim):
    return ModelProfile.objects.create(name="metered", max_output_tokens=64)


@pytest.fixture
def mission(db, pm):
    return Mission.objects.create(requester=pm, title="Metered", request="r", budget_usd=Decimal("1.00"))


def _create(profile, mission, text="hello", **kwargs):
    client = MeteredChatCompletionClient(
        model_client_for(profile), profile=profile, context=CallContext(mission_id=mission.pk, purpose="test")
    )
    messages = [SystemMessage(content="You are terse."), UserMessage(content=text, source="engine")]

    async def call():
        try:
            return await client.create(messages, **kwargs)
        finally:
            await client.close()

    return async_to_sync(call)()


def _ledger(mission):
    mission.refresh_from_db()
    calls = list(LLMCall.objects.filter(mission=mission))
    assert mission.spent_usd == sum(c.cost_usd for c in calls)
    assert mission.reserved_usd == 0
    return calls


def test_it_sends_max_tokens_streams_and_bills_the_reported_usage(profile, mission, sim):
    """Every request carries the reservation's output bound and streams; honest usage is billed as reported."""
    result = _create(profile, mission)
    (logged,) = sim.calls()
    assert logged["max_tokens"] == 64 and logged["stream"] is True
    (call,) = _ledger(mission)
    assert (call.prompt_tokens, call.completion_tokens) == (
        logged["usage"]["prompt_tokens"],
        logged["usage"]["completion_tokens"],
    )
    assert (call.reported_prompt_tokens, call.reported_completion_tokens) == (
        call.prompt_tokens,
        call.completion_tokens,
    )
    assert call.status == LLMCall.Status.OK and not call.overrun
    assert Decimal(0) < call.cost_usd < call.reserved_usd
    assert result.usage.completion_tokens == call.completion_tokens and result.content


def test_it_cuts_off_a_server_that_ignores_max_tokens(profile, mission, sim):
    """A runaway text answer is cut at the limit: the caller gets it marked "length", billed within the reservation,
    the download stops (the server sees the hang-up), and the overrun is on the row and the timeline."""
    sim.script({"role": "chat", "reply": {"text": LONG_TEXT * 20}})
    sim.add_faults({"kind": "ignore_max_tokens"})
    result = _create(profile, mission)
    assert result.finish_reason == "length"
    assert len(result.content) < 64 * 8  # the limit plus the last chunk, not the 60 000 words sent
    (call,) = _ledger(mission)
    assert call.status == LLMCall.Status.OK and call.overrun
    assert call.completion_tokens <= 64 and call.cost_usd <= call.reserved_usd
    assert call.reported_completion_tokens is None  # the usage chunk never came: the stream was cut first
    event = Event.objects.get(mission=mission, kind=Event.Kind.COST)
    assert "ignored max_tokens=64" in event.message and event.data["llm_call"] == call.pk
    # The server notices the hang-up when its next write fails, a moment after the client has gone.
    wait_for(lambda: sim.calls()[0].get("aborted"), timeout=10, interval=0.05, message="the sim to see the hang-up")


def test_it_refuses_a_tool_call_cut_mid_way_by_the_wrapper(profile, mission, sim):
    """A tool call from a server that ignores max_tokens is cut mid-arguments: a clear error, not a broken call;
    what the limit allows is still billed."""
    profile.max_output_tokens = 30
    profile.save()
    sim.add_faults({"kind": "ignore_max_tokens"})
    with pytest.raises(ModelOutputError, match=r"ignored the output limit \(max_tokens=30\)"):
        _create(profile, mission, CODEGEN_BRIEF, tools=[WRITE_FILE])
    (call,) = _ledger(mission)
    assert call.status == LLMCall.Status.ERROR and call.overrun and call.response is None
    assert Decimal(0) < call.cost_usd <= call.reserved_usd and call.completion_tokens <= 30


def test_it_refuses_a_tool_call_an_honest_server_cut_at_the_limit(profile, mission, sim):
    """A server that honours max_tokens cuts the call itself ("length"): the same clear error, no overrun."""
    profile.max_output_tokens = 30
    profile.save()
    with pytest.raises(ModelOutputError, match="reached the output limit"):
        _create(profile, mission, CODEGEN_BRIEF, tools=[WRITE_FILE])
    (call,) = _ledger(mission)
    assert call.status == LLMCall.Status.ERROR and not call.overrun
    assert sim.calls()[0]["finish_reason"] == "length"


def test_it_refuses_structured_output_cut_at_the_limit(profile, mission, sim):
    """A structured (pydantic) answer cut at max_tokens is a clear error too, not the SDK's LengthFinishReasonError."""
    profile.max_output_tokens = 5
    profile.save()
    sim.script({"role": "plan_vote", "reply": {"json": {"stance": "approve", "rationale": LONG_TEXT}}})
    with pytest.raises(ModelOutputError, match="reached the output limit"):
        _create(profile, mission, "Vote on the plan. Answer matching the schema PlanVote.", json_output=PlanVote)
    (call,) = _ledger(mission)
    assert call.status == LLMCall.Status.ERROR and call.cost_usd <= call.reserved_usd


def test_it_never_bills_more_than_the_reservation_when_usage_is_over_reported(profile, mission, sim):
    """A server reporting 1000x its usage is billed at the reservation's bounds; the lie is kept and shown."""
    sim.add_faults({"kind": "overreport_usage", "factor": 1000})
    _create(profile, mission)
    (call,) = _ledger(mission)
    logged = sim.calls()[0]["usage"]
    assert (call.reported_prompt_tokens, call.reported_completion_tokens) == (
        logged["prompt_tokens"],
        logged["completion_tokens"],
    )
    assert (call.prompt_tokens, call.completion_tokens) == (call.prompt_token_bound, call.max_output_tokens)
    assert call.cost_usd == call.reserved_usd and call.overrun and call.status == LLMCall.Status.OK
    event = Event.objects.get(mission=mission, kind=Event.Kind.COST)
    assert f"reported {logged['prompt_tokens']} prompt and {logged['completion_tokens']} completion" in event.message


def test_it_still_replays_a_paid_answer_from_the_ledger(profile, mission, sim):
    """The same request for the same work is answered from the ledger: one server call, a $0 cache hit."""
    first = _create(profile, mission, "same question")
    second = _create(profile, mission, "same question")
    assert second.content == first.content and second.cached
    assert len(sim.calls()) == 1
    statuses = sorted(c.status for c in _ledger(mission))
    assert statuses == [LLMCall.Status.CACHE_HIT, LLMCall.Status.OK]


def test_it_gives_up_on_a_call_at_its_wall_clock_deadline(profile, mission, sim, settings):
    """A call that takes longer than LLM_CALL_DEADLINE_S fails with that reason and releases its reservation, so a
    reservation still pending after LLM_RESERVATION_STALE_S can only belong to a dead worker."""
    settings.LLM_CALL_DEADLINE_S = 1
    sim.add_faults({"kind": "timeout", "seconds": 5})
    with pytest.raises(ModelUnavailable, match="LLM_CALL_DEADLINE_S=1s"):
        _create(profile, mission)
    (call,) = _ledger(mission)
    assert call.status == LLMCall.Status.ERROR and call.cost_usd == 0


def test_it_bills_the_part_of_an_answer_that_came_before_the_server_hung_up(profile, mission, sim):
    """A stream that breaks halfway fails the call with the reason, but what arrived is billed (the server made it,
    and bills it), within the reservation."""
    sim.script({"role": "chat", "reply": {"text": "word " * 40}})
    sim.add_faults({"kind": "drop_stream"})
    with pytest.raises(ModelUnavailable, match="The model call failed"):
        _create(profile, mission)
    (call,) = _ledger(mission)
    assert call.status == LLMCall.Status.ERROR and call.error and call.response is None
    assert Decimal(0) < call.cost_usd <= call.reserved_usd
    assert 0 < call.completion_tokens <= 64 and call.prompt_tokens == call.prompt_token_bound


def test_it_cuts_off_a_runaway_answer_sent_in_huge_chunks(profile, mission, sim):
    """100 chunks of 20 000 random letters (2 MB, one "word" each) against max_tokens=100: cut at the first chunks
    by the answer's size and billed within the reservation. (Whether the server sees the hang-up depends on how
    much of 2 MB the loopback socket buffers had already taken, so that is asserted only in the test above.)"""
    profile.max_output_tokens = 100
    profile.save()
    letters = random.Random(7).choices(string.ascii_letters, k=2_000_000)
    sim.script({"role": "chat", "reply": {"text": "".join(letters)}})
    sim.add_faults({"kind": "ignore_max_tokens", "chunk_chars": 20_000})
    result = _create(profile, mission)
    assert result.finish_reason == "length"
    assert len(result.content) <= 20_000  # the first chunk already weighs more than 100 tokens can
    (call,) = _ledger(mission)
    assert call.overrun and call.completion_tokens <= 100 and call.cost_usd <= call.reserved_usd


def test_it_does_not_cut_off_an_honest_answer_in_big_chunks(profile, mission, sim):
    """A server that stops at max_tokens is never cut, however few and large its chunks are."""
    profile.max_output_tokens = 100
    profile.save()
    sim.script({"role": "chat", "reply": {"text": "壱弐参四伍 " * 2000}})
    sim.add_faults({"kind": "chunked", "chunk_chars": 400})
    result = _create(profile, mission)
    (call,) = _ledger(mission)
    assert result.finish_reason == "length" and not call.overrun
    assert sim.calls()[0]["finish_reason"] == "length" and not sim.calls()[0].get("aborted")


def test_it_retries_a_refused_request_under_a_new_reservation_honouring_retry_after(profile, mission, sim, settings):
    """A 429 (with Retry-After) and a 503 before the answer: each request has its own ledger row and reservation,
    so one reservation never pays for several requests; the waits honour Retry-After."""
    settings.LLM_MAX_RETRIES = 2
    sim.add_faults({"kind": "429", "retry_after": 1}, {"kind": "500", "status": 503})
    started = time.monotonic()
    result = _create(profile, mission)
    assert result.content and time.monotonic() - started >= 1
    assert [c["status"] for c in sim.calls()] == [429, 503, 200]
    calls = sorted(_ledger(mission), key=lambda c: c.pk)
    assert [c.status for c in calls] == [LLMCall.Status.ERROR, LLMCall.Status.ERROR, LLMCall.Status.OK]
    assert "429" in calls[0].error and calls[0].cost_usd == calls[1].cost_usd == 0


def test_it_gives_up_after_llm_max_retries_with_the_servers_reason(profile, mission, sim, settings):
    """Three 500s with LLM_MAX_RETRIES=2: three requests, three failed ledger rows, then the reason."""
    settings.LLM_MAX_RETRIES = 2
    sim.add_faults({"kind": "500", "times": 3})
    with pytest.raises(ModelUnavailable, match="The model call failed"):
        _create(profile, mission)
    assert len(sim.calls()) == 3
    assert [c.status for c in _ledger(mission)] == [LLMCall.Status.ERROR] * 3


@pytest.mark.parametrize("status", [400, 401, 404])
def test_it_does_not_retry_a_request_the_server_rejected(profile, mission, sim, settings, status):
    """A client error is an answer: sent once, however many retries are allowed."""
    settings.LLM_MAX_RETRIES = 2
    sim.add_faults({"kind": "500", "status": status})
    with pytest.raises(ModelUnavailable):
        _create(profile, mission)
    assert len(sim.calls()) == 1


def test_it_does_not_retry_a_timed_out_request_the_server_may_have_billed(profile, mission, sim, settings):
    """A request that timed out may have run (and been billed) on the server: it is not sent again by the wrapper
    or the client, so its one reservation is the only one spent on it."""
    settings.LLM_MAX_RETRIES = 2
    settings.LLM_TIMEOUT_S = 1
    sim.add_faults({"kind": "timeout", "seconds": 3, "times": 3})
    with pytest.raises(ModelUnavailable):
        _create(profile, mission)
    assert len(sim.calls()) == 1
    (call,) = _ledger(mission)
    assert call.status == LLMCall.Status.ERROR
