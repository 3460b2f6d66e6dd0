"""The simulator honours max_tokens like a real server, and has two faults for servers that cannot be trusted."""

from __future__ import annotations

import json
import time

import openai
import pytest

from agents.sim.server import SimServer

from .support import TOOLS, calls, http, queue_faults, script, user

LONG_TEXT = "word " * 400  # about 500 completion tokens by the sim's formula


def test_it_cuts_a_long_text_answer_at_max_tokens(sim: SimServer, client: openai.OpenAI) -> None:
    """A text answer longer than max_tokens is cut, finishes with "length" and reports at most max_tokens."""
    script(sim, {"role": "chat", "reply": {"text": LONG_TEXT}})
    response = client.chat.completions.create(model="sim-1", messages=user("talk"), max_tokens=20)
    choice = response.choices[0]
    assert choice.finish_reason == "length"
    assert LONG_TEXT.startswith(choice.message.content) and len(choice.message.content) <= 19 * 4
    assert response.usage.completion_tokens <= 20
    assert calls(sim)[-1]["max_tokens"] == 20 and calls(sim)[-1]["finish_reason"] == "length"


def test_max_completion_tokens_is_honoured_too(sim: SimServer, client: openai.OpenAI) -> None:
    """The newer parameter name limits the answer the same way."""
    script(sim, {"role": "chat", "reply": {"text": LONG_TEXT}})
    response = client.chat.completions.create(model="sim-1", messages=user("talk"), max_completion_tokens=10)
    assert response.choices[0].finish_reason == "length" and response.usage.completion_tokens <= 10


def test_it_leaves_an_answer_within_the_limit_alone(client: openai.OpenAI) -> None:
    """An answer that fits is sent whole with its usual finish reason."""
    plain = client.chat.completions.create(model="sim-1", messages=user("hello"))
    limited = client.chat.completions.create(model="sim-1", messages=user("hello"), max_tokens=500)
    assert limited.choices[0].message.content == plain.choices[0].message.content
    assert limited.choices[0].finish_reason == "stop"


def test_it_cuts_a_tool_call_mid_arguments_in_a_stream(sim: SimServer, client: openai.OpenAI) -> None:
    """A tool call cut at max_tokens has incomplete JSON arguments and finish reason "length", streamed or not."""
    messages = user("Mission: S\nStep: core — Core")
    whole = client.chat.completions.create(model="sim-1", messages=messages, tools=TOOLS)
    assert whole.usage.completion_tokens > 30
    cut = client.chat.completions.create(model="sim-1", messages=messages, tools=TOOLS, max_tokens=30)
    arguments = cut.choices[0].message.tool_calls[0].function.arguments
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens <= 30
    assert whole.choices[0].message.tool_calls[0].function.arguments.startswith(arguments)
    with pytest.raises(json.JSONDecodeError):
        json.loads(arguments)
    stream = client.chat.completions.create(
        model="sim-1",
        messages=messages,
        tools=TOOLS,
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    streamed = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert streamed == arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage.completion_tokens <= 30


def test_the_ignore_max_tokens_fault_sends_the_whole_answer(sim: SimServer, client: openai.OpenAI) -> None:
    """A server that ignores max_tokens: the whole answer, and usage far above the limit, for ``times`` requests."""
    script(sim, {"role": "chat", "reply": {"text": LONG_TEXT}, "times": 3})
    queue_faults(sim, {"kind": "ignore_max_tokens", "times": 2})
    for _ in range(2):
        response = client.chat.completions.create(model="sim-1", messages=user("talk"), max_tokens=20)
        assert response.choices[0].message.content == LONG_TEXT
        assert response.choices[0].finish_reason == "stop" and response.usage.completion_tokens > 100
    honest = client.chat.completions.create(model="sim-1", messages=user("talk"), max_tokens=20)
    assert honest.choices[0].finish_reason == "length"
    assert [c["fault"] for c in calls(sim)] == ["ignore_max_tokens", "ignore_max_tokens", None]


def test_the_overreport_usage_fault_lies_about_usage(sim: SimServer, client: openai.OpenAI) -> None:
    """A server that over-reports: the same answer, with usage ``factor`` times the truth, in streams too."""
    honest = client.chat.completions.create(model="sim-1", messages=user("hello"))
    queue_faults(sim, {"kind": "overreport_usage", "factor": 50, "times": 2})
    lying = client.chat.completions.create(model="sim-1", messages=user("hello"))
    assert lying.choices[0].message.content == honest.choices[0].message.content
    assert lying.usage.prompt_tokens == honest.usage.prompt_tokens * 50
    assert lying.usage.completion_tokens == honest.usage.completion_tokens * 50
    stream = client.chat.completions.create(
        model="sim-1", messages=user("hello"), stream=True, stream_options={"include_usage": True}
    )
    assert list(stream)[-1].usage.completion_tokens == honest.usage.completion_tokens * 50


def test_it_notes_a_client_that_hung_up_mid_stream(sim: SimServer, client: openai.OpenAI) -> None:
    """A client that stops reading a long stream is seen by the server: the call is marked aborted."""
    script(sim, {"role": "chat", "reply": {"text": "word " * 50_000}})
    queue_faults(sim, {"kind": "ignore_max_tokens"})
    stream = client.chat.completions.create(model="sim-1", messages=user("talk"), max_tokens=5, stream=True)
    for index, _ in enumerate(stream):
        if index == 3:
            break
    stream.close()
    deadline = time.monotonic() + 10
    while not calls(sim)[-1].get("aborted") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls(sim)[-1]["aborted"] is True


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "ignore_max_tokens", "times": 0},
        {"kind": "overreport_usage", "factor": -1},
        {"kind": "500", "times": "x"},
    ],
)
def test_bad_fault_options_are_refused(sim: SimServer, fault: dict) -> None:
    """A typo in a fault's options fails loudly instead of doing something else."""
    status, payload = http(sim, "POST", "/_sim/faults", {"faults": [fault]})
    assert status == 400, payload


def test_a_bad_max_tokens_is_a_400(client: openai.OpenAI) -> None:
    """max_tokens must be a positive integer, as OpenAI says."""
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model="sim-1", messages=user("hello"), max_tokens=0)


def test_the_drop_stream_fault_hangs_up_halfway(sim: SimServer, client: openai.OpenAI) -> None:
    """A streamed answer stops halfway without its end: the client gets part of it, then a connection error."""
    script(sim, {"role": "chat", "reply": {"text": "word " * 40}})
    queue_faults(sim, {"kind": "drop_stream"})
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(model="sim-1", messages=user("talk"), stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert 0 < len("".join(received)) < len("word " * 40)
    assert client.chat.completions.create(model="sim-1", messages=user("again")).choices[0].finish_reason == "stop"
