"""Model output streamed to the mission's channel group while the call runs, through the metering wrapper.

Real HTTP to the simulated model (streaming with a delay per piece of text), the real channel layer.
"""

import asyncio
import logging
import time
from decimal import Decimal
from itertools import pairwise

import pytest
from asgiref.sync import async_to_sync
from autogen_core.models import SystemMessage, UserMessage
from channels.layers import get_channel_layer
from pydantic import BaseModel

from agents.models import LLMCall, ModelProfile
from agents.runtime.clients import model_client_for
from agents.runtime.metering import CallContext, MeteredChatCompletionClient
from missions.models import Mission
from missions.streams import StreamTarget, partial_json_string, stream_target_for

pytestmark = pytest.mark.django_db(transaction=True)

# 90 words: 30 pieces of three words as the sim streams them.
ANSWER = " ".join(f"word{n}" for n in range(90)) + "\n<script>alert(1)</script> done."
CHUNK_DELAY_MS = 40


class Verdict(BaseModel):
    ok: bool
    rationale: str = ""


@pytest.fixture
def profile(db, sim):
    return ModelProfile.objects.create(name="streamed", max_output_tokens=400)


@pytest.fixture
def mission(db, pm):
    return Mission.objects.create(requester=pm, title="Streamed", request="r", budget_usd=Decimal("1.00"))


def _call(profile, mission, *, stream=True, field="", **kwargs):
    """One create() with the mission's group listened to; returns the result, the (time, message) pairs heard
    on the group, and how long the call took."""
    layer = get_channel_layer()
    target = StreamTarget(group=mission.group_name, agent="Developer", step="core", field=field) if stream else None
    context = CallContext(mission_id=mission.pk, purpose="test", stream=target)
    messages = [SystemMessage(content="You are terse."), UserMessage(content="Say it.", source="engine")]

    async def run():
        channel = await layer.new_channel()
        await layer.group_add(mission.group_name, channel)
        heard = []

        async def listen():
            while True:
                message = await layer.receive(channel)
                heard.append((time.monotonic(), message))

        listener = asyncio.ensure_future(listen())
        client = MeteredChatCompletionClient(model_client_for(profile), profile=profile, context=context)
        started = time.monotonic()
        try:
            result = await client.create(messages, **kwargs)
        finally:
            took = time.monotonic() - started
            await client.close()
        await asyncio.sleep(0.5)  # the last message is on its way
        listener.cancel()
        await asyncio.wait([listener])
        await layer.group_discard(mission.group_name, channel)
        return result, heard, took

    return async_to_sync(run)()


def test_it_streams_the_text_so_far_throttled_and_settles_the_call_as_before(profile, mission, sim, settings):
    """A 30-piece answer arrives as a handful of messages at most one per interval, each holding the text so far;
    the last says done and holds all of it; the ledger row is billed from the stream's usage as without
    streaming."""
    settings.MODEL_STREAM_INTERVAL_MS = 200
    sim.script({"role": "chat", "reply": {"text": ANSWER}})
    sim.set_chunk_delay(CHUNK_DELAY_MS, roles=["chat"])
    result, heard, took = _call(profile, mission)

    assert result.content == ANSWER
    messages = [m for _, m in heard]
    assert all(m["type"] == "mission.stream" for m in messages)
    assert {(m["call"], m["agent"], m["step"]) for m in messages} == {(messages[0]["call"], "Developer", "core")}
    updates, final = messages[:-1], messages[-1]
    assert final["done"] is True and final["text"] == ANSWER
    assert not any(m["done"] for m in updates)
    # About one message per 200 ms of a ~1.2 s answer, far fewer than its 30 pieces.
    assert 3 <= len(updates) <= took / 0.2 + 2, [m["text"][-20:] for m in updates]
    texts = [m["text"] for m in updates]
    assert all(len(earlier) < len(later) and later.startswith(earlier) for earlier, later in pairwise(texts))
    assert ANSWER.startswith(texts[-1])
    gaps = [b - a for (a, _), (b, _) in pairwise(heard[:-1])]
    assert min(gaps) >= 0.15, gaps

    (call,) = LLMCall.objects.filter(mission=mission)
    (logged,) = sim.calls()
    assert final["call"] == call.pk
    assert call.status == LLMCall.Status.OK and logged["stream"] is True
    assert (call.prompt_tokens, call.completion_tokens) == (
        logged["usage"]["prompt_tokens"],
        logged["usage"]["completion_tokens"],
    )
    mission.refresh_from_db()
    assert mission.spent_usd == call.cost_usd > 0 and mission.reserved_usd == 0


def test_it_streams_only_the_named_field_of_a_json_answer(profile, mission, sim, settings):
    """Of a JSON answer (a vote) the page sees only the field the target names, decoded, as it grows; a JSON
    answer with no field named is shown once parsed, and a call made for no page streams nowhere."""
    settings.MODEL_STREAM_INTERVAL_MS = 100
    rationale = " ".join(f"reason{n}" for n in range(30)) + ' "quoted"\nnext line — ok'
    verdict = {"ok": True, "rationale": rationale}
    sim.script({"role": "chat", "reply": {"json": verdict}})
    sim.set_chunk_delay(CHUNK_DELAY_MS, roles=["chat"])
    result, heard, _ = _call(profile, mission, json_output=Verdict, field="rationale")
    assert Verdict.model_validate_json(result.content) == Verdict(**verdict)
    texts = [m["text"] for _, m in heard]
    assert len(texts) >= 3 and texts[-1] == rationale and heard[-1][1]["done"]
    assert all(rationale.startswith(text) for text in texts)

    _, heard, _ = _call(profile, mission, json_output=Verdict)
    assert heard == []
    sim.state.clear_script()
    sim.script({"role": "chat", "reply": {"text": ANSWER}})
    result, heard, _ = _call(profile, mission, stream=False)
    assert heard == [] and result.content == ANSWER


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ('{"ok": true, "rationale": "fine so far', "fine so far"),
        ('{"rationale" : "done", "other": "x"}', "done"),
        ('{"rationale": "a \\"quote\\" and \\n a line', 'a "quote" and \n a line'),
        ('{"rationale": "cut escape \\', "cut escape "),
        ('{"rationale": "cut unicode \\u00', "cut unicode "),
        ('{"rationale": "\\u00e9t\\u00e9 \\ud83d!', "été \ufffd!"),
        ('{"ok": true, "ratio', ""),
        ('{"other": "rationale"}', ""),
    ],
    ids=["open", "closed", "escapes", "cut-escape", "cut-unicode", "unicode-and-lone-surrogate", "key-cut", "absent"],
)
def test_it_reads_a_field_of_json_still_being_written(raw, shown):
    assert partial_json_string(raw, "rationale") == shown


class BrokenLayer:
    def __init__(self, hang: bool):
        self.hang = hang
        self.sends = 0

    async def group_send(self, group, message):
        self.sends += 1
        if self.hang:
            await asyncio.sleep(3600)
        raise ConnectionError("channel layer is down")


@pytest.mark.parametrize("hang", [False, True], ids=["failing", "hanging"])
def test_it_keeps_the_call_whole_and_quick_when_the_channel_layer_fails(
    profile, mission, sim, monkeypatch, caplog, hang
):
    """A channel layer that raises or never answers costs one try and a warning: the call answers, is billed,
    and takes well under the publish timeout longer than it would."""
    layer = BrokenLayer(hang)
    monkeypatch.setattr("missions.streams.get_channel_layer", lambda: layer)
    sim.script({"role": "chat", "reply": {"text": ANSWER}})
    sim.set_chunk_delay(10, roles=["chat"])
    with caplog.at_level(logging.WARNING, logger="missions.streams"):
        result, _, took = _call(profile, mission)
    assert result.content == ANSWER
    assert layer.sends == 1
    assert took < 1.0, took  # 30 pieces × 10 ms, plus at most a quarter second waiting on the layer
    (call,) = LLMCall.objects.filter(mission=mission)
    assert call.status == LLMCall.Status.OK and call.completion_tokens > 0
    assert [r.getMessage().split(" after ")[0] for r in caplog.records] == [
        f"could not stream model call {call.pk} to {mission.group_name}"
    ]


def test_it_streams_only_when_model_stream_is_on(mission, settings):
    """MODEL_STREAM=0 gives the engine no target, so no call streams."""
    assert stream_target_for(mission, agent="Developer", step="core") == StreamTarget(
        group=mission.group_name, agent="Developer", step="core"
    )
    settings.MODEL_STREAM = False
    assert stream_target_for(mission, agent="Developer", step="core") is None
