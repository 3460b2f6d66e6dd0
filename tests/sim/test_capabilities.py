"""The sim can play a smaller server: capabilities switched off per test refuse as llama.cpp's server does."""

from __future__ import annotations

import openai
import pytest

from agents.sim.server import LLAMA_CPP_CAPABILITIES, SimServer

from .support import PLAN_VOTE_SCHEMA, TOOLS, calls, http, user


def _set(sim: SimServer, **changes: bool) -> None:
    status, payload = http(sim, "POST", "/_sim/capabilities", changes)
    assert status == 200, payload


def test_it_refuses_json_schema_like_llama_cpp_and_still_takes_json_mode(sim: SimServer, client: openai.OpenAI):
    """With json_schema off, a json_schema request is a 400 in llama.cpp's error shape; json_object still works."""
    _set(sim, **LLAMA_CPP_CAPABILITIES)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="sim-1", messages=user("vote"), response_format=PLAN_VOTE_SCHEMA)
    assert refused.value.status_code == 400
    assert refused.value.body == {
        "code": 400,
        "message": 'response_format type must be one of "text" or "json_object", but got: json_schema',
        "type": "invalid_request_error",
    }
    answer = client.chat.completions.create(
        model="sim-1",
        messages=user("Answer with only a JSON object matching the schema PlanVote."),
        response_format={"type": "json_object"},
    )
    assert answer.choices[0].message.content.startswith("{")
    assert [(c["status"], c["role"]) for c in calls(sim)] == [(400, "plan_vote"), (200, "plan_vote")]


def test_it_leaves_usage_out_of_streams_when_stream_usage_is_off(sim: SimServer, client: openai.OpenAI):
    _set(sim, stream_usage=False)
    chunks = list(
        client.chat.completions.create(
            model="sim-1", messages=user("hello"), stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks and all(c.usage is None for c in chunks)
    assert client.chat.completions.create(model="sim-1", messages=user("hello")).usage is not None


def test_it_leaves_usage_out_of_answers_when_usage_is_off(sim: SimServer, client: openai.OpenAI):
    _set(sim, usage=False)
    assert client.chat.completions.create(model="sim-1", messages=user("hello")).usage is None


def test_it_refuses_tools_like_llama_cpp_without_jinja(sim: SimServer, client: openai.OpenAI):
    _set(sim, tools=False)
    with pytest.raises(openai.InternalServerError, match="tools param requires --jinja flag"):
        client.chat.completions.create(model="sim-1", messages=user("build it"), tools=TOOLS)
    assert client.chat.completions.create(model="sim-1", messages=user("hello")).choices[0].message.content


def test_it_restores_every_capability_on_delete_and_refuses_unknown_names(sim: SimServer, client: openai.OpenAI):
    _set(sim, json_schema=False, json_object=False)
    assert http(sim, "GET", "/_sim/capabilities")[1]["capabilities"]["json_object"] is False
    assert http(sim, "POST", "/_sim/capabilities", {"grammar": False})[0] == 400
    assert http(sim, "POST", "/_sim/capabilities", {"tools": "no"})[0] == 400
    assert http(sim, "DELETE", "/_sim/capabilities") == (200, {"ok": True})
    assert all(http(sim, "GET", "/_sim/capabilities")[1]["capabilities"].values())
    client.chat.completions.create(model="sim-1", messages=user("vote"), response_format=PLAN_VOTE_SCHEMA)
