"""End-to-end tests of the simulated model server through the real ``openai`` client.

Plain pytest (no Django): run with ``.venv/bin/pytest tests/sim -q -p no:django``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from agents.sim.server import SimServer

from .support import (
    PLAN_DRAFT_SCHEMA,
    PLAN_VOTE_SCHEMA,
    TOOLS,
    calls,
    codegen_turns,
    http,
    queue_faults,
    run_pytest,
    user,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


class DraftStep(BaseModel):
    key: str
    title: str
    kind: str
    role: str
    instructions: str
    depends_on: list[str]
    acceptance: list[str]
    estimated_tokens: int


class PlanDraft(BaseModel):
    summary: str
    steps: list[DraftStep]


# --------------------------------------------------------------------------- basic endpoints


def test_models_and_healthz(sim: SimServer, client: openai.OpenAI) -> None:
    assert http(sim, "GET", "/healthz") == (200, {"ok": True})
    status, payload = http(sim, "GET", "/v1/models")
    assert status == 200
    assert payload == {
        "object": "list",
        "data": [{"id": "sim-1", "object": "model", "owned_by": "mission-orchestrator"}],
    }
    assert [m.id for m in client.models.list()] == ["sim-1"]


def test_plain_chat_shape_and_request_id(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="my-model", messages=user("hello sim, how are you?"))
    completion = raw.parse()
    n = completion.id.removeprefix("chatcmpl-sim-")
    assert n.isdigit()
    assert raw.headers["x-request-id"] == f"sim-{n}"
    assert completion.object == "chat.completion"
    assert completion.model == "my-model"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Acknowledged: hello sim, how are you?"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens_details.cached_tokens == 0


def test_chat_truncates_echo_to_80_chars(client: openai.OpenAI) -> None:
    text = "x" * 50 + "y" * 50
    completion = client.chat.completions.create(model="sim-1", messages=user(text))
    assert completion.choices[0].message.content == "Acknowledged: " + text[:80]


def test_usage_follows_documented_formula(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "abcdefgh"},
        {"role": "user", "content": "hello"},
    ]
    completion = client.chat.completions.create(model="sim-1", messages=messages)
    content = completion.choices[0].message.content
    assert completion.usage.prompt_tokens == (2 + 4) + (2 + 4)
    assert completion.usage.completion_tokens == -(-len(content) // 4) + 1
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


# --------------------------------------------------------------------------- planning roles


def test_plan_draft_json_schema_parses(client: openai.OpenAI) -> None:
    brief = "Draft a plan.\nMission: Inventory tracker\nBudget: 10000 tokens"
    completion = client.chat.completions.create(model="sim-1", messages=user(brief), response_format=PLAN_DRAFT_SCHEMA)
    plan = PlanDraft.model_validate_json(completion.choices[0].message.content)
    assert [s.key for s in plan.steps] == ["core", "api"]
    core, api = plan.steps
    assert core.depends_on == [] and api.depends_on == ["core"]
    assert {s.kind for s in plan.steps} == {"codegen"} and {s.role for s in plan.steps} == {"developer"}
    assert all("Inventory tracker" in s.title and "Inventory tracker" in s.instructions for s in plan.steps)
    assert all(s.acceptance and 1000 <= s.estimated_tokens <= 5000 for s in plan.steps)
    assert "Inventory tracker" in plan.summary


def test_plan_draft_via_client_parse_helper(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(model="sim-1", messages=user("Mission: Shop"), response_format=PlanDraft)
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, PlanDraft)
    assert parsed.steps[1].title == "API layer for Shop"


def test_plan_draft_json_object_mode_and_fallback_title(sim: SimServer, client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "Reply with a PlanDraft JSON object."},
        *user("no mission line"),
    ]
    completion = client.chat.completions.create(
        model="sim-1", messages=messages, response_format={"type": "json_object"}
    )
    plan = json.loads(completion.choices[0].message.content)
    assert plan["steps"][0]["title"] == "Core logic for the mission"
    assert calls(sim)[-1]["role"] == "plan_draft"


def vote(client: openai.OpenAI, persona: str, mission: str = "Payments") -> dict[str, Any]:
    messages = [
        {"role": "system", "content": persona},
        *user(f"Mission: {mission}\nPlan: ..."),
    ]
    completion = client.chat.completions.create(model="sim-1", messages=messages, response_format=PLAN_VOTE_SCHEMA)
    return json.loads(completion.choices[0].message.content)


def test_plan_vote_rationale_depends_on_role(client: openai.OpenAI) -> None:
    cto = vote(
        client,
        "You are the Chief Technology Officer (CTO) of the board. Vote on the plan.",
    )
    cfo = vote(client, "You are the Chief Financial Officer (CFO). Vote on the plan.")
    for answer in (cto, cfo):
        assert answer["stance"] == "approve"
        assert answer["amendments"] == []
        assert "Payments" in answer["rationale"]
    assert cto["rationale"] != cfo["rationale"]
    assert "CTO" in cto["rationale"] and "technical" in cto["rationale"]
    assert "CFO" in cfo["rationale"] and "budget" in cfo["rationale"]


def test_plan_vote_unknown_role_is_generic(client: openai.OpenAI) -> None:
    answer = vote(client, "You are a careful reviewer.")
    assert answer["stance"] == "approve"
    assert not re.search(r"\bC[ETFR]O\b", answer["rationale"])


# --------------------------------------------------------------------------- codegen


def test_codegen_sequence_over_five_turns(client: openai.OpenAI) -> None:
    fake_results = {
        "write_file": "ok",
        "run_tests": "collected 3 items\n\n7 passed in 0.42s",
        "commit": "done",
    }
    brief = "Mission: Billing\nStep: ledger — Ledger entries"
    names, made, final = codegen_turns(client, brief, lambda name, args: fake_results[name])
    assert names == ["write_file", "write_file", "run_tests", "commit", None]
    args = [json.loads(c.function.arguments) for c in made]
    assert args[0]["path"] == "ledger.py" and args[1]["path"] == "test_ledger.py"
    assert args[2] == {}
    assert args[3] == {"message": "ledger: Ledger entries"}
    assert len({c.id for c in made}) == 4 and all(c.id.startswith("call_") for c in made)
    assert "ledger.py" in final and "test_ledger.py" in final
    assert "7 passed in 0.42s" in final


def test_generated_code_really_passes_pytest(client: openai.OpenAI, tmp_path: Path) -> None:
    """The module and tests the sim writes must be valid, passing pytest code, even for hostile titles."""
    nasty = 'Ünïcode """ \'quotes\' \\ back\\slash {braces} __KEY__'

    def run_tool(name: str, args: dict[str, Any]) -> str:
        if name == "write_file":
            (tmp_path / args["path"]).write_text(args["content"], encoding="utf-8")
            return f"wrote {args['path']}"
        if name == "run_tests":
            proc = run_pytest(tmp_path)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            return proc.stdout
        return "committed"

    for key in ("core", "api"):
        names, _, final = codegen_turns(client, f"Mission: {nasty}\nStep: {key} — Title for {nasty}", run_tool)
        assert names == ["write_file", "write_file", "run_tests", "commit", None]
        assert (tmp_path / f"{key}.py").exists() and (tmp_path / f"test_{key}.py").exists()
        assert re.search(r"\d+ passed", final), final
    passed = int(re.search(r"(\d+) passed", final).group(1))
    assert passed >= 6  # both steps' tests (3+ each) ran in the final run


def test_codegen_retries_a_call_whose_arguments_were_broken(sim: SimServer, client: openai.OpenAI) -> None:
    queue_faults(sim, {"kind": "bad_tool_args"})
    messages = [*user("Mission: M\nStep: core — Core")]
    first = client.chat.completions.create(model="sim-1", messages=messages, tools=TOOLS).choices[0].message
    with pytest.raises(json.JSONDecodeError):
        json.loads(first.tool_calls[0].function.arguments)
    messages += [first.model_dump(exclude_none=True)]
    messages += [
        {
            "role": "tool",
            "tool_call_id": first.tool_calls[0].id,
            "content": "error: bad JSON",
        }
    ]
    second = client.chat.completions.create(model="sim-1", messages=messages, tools=TOOLS).choices[0].message
    assert json.loads(second.tool_calls[0].function.arguments)["path"] == "core.py"


# --------------------------------------------------------------------------- streaming


def collect_stream(client: openai.OpenAI, **kwargs: Any) -> tuple[str, list[Any], dict[int, dict[str, str]]]:
    """(content, chunks, tool calls by index) from a streamed completion."""
    stream = client.chat.completions.create(model="sim-1", stream=True, **kwargs)
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    tools: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = tools.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] = call.id or entry["id"]
            entry["name"] = (call.function.name if call.function else None) or entry["name"]
            entry["arguments"] += (call.function.arguments if call.function else None) or ""
    return content, chunks, tools


@pytest.mark.parametrize(
    "kwargs",
    [
        {"messages": user("please stream this reasonably long sentence back to me in several pieces")},
        {"messages": user("Mission: Streamed"), "response_format": PLAN_VOTE_SCHEMA},
    ],
    ids=["chat", "plan_vote"],
)
def test_streaming_with_usage_matches_non_stream(client: openai.OpenAI, kwargs: dict[str, Any]) -> None:
    plain = client.chat.completions.create(model="sim-1", **kwargs)
    content, chunks, _ = collect_stream(client, stream_options={"include_usage": True}, **kwargs)
    assert content == plain.choices[0].message.content
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 2
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.model_dump() == plain.usage.model_dump()


def test_streaming_without_include_usage_sends_no_usage_chunk(
    client: openai.OpenAI,
) -> None:
    _, chunks, _ = collect_stream(client, messages=user("hi there"))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_streaming_tool_call_reassembles(client: openai.OpenAI) -> None:
    messages = user("Mission: S\nStep: core — Core")
    plain = client.chat.completions.create(model="sim-1", messages=messages, tools=TOOLS).choices[0]
    content, chunks, tools = collect_stream(client, messages=messages, tools=TOOLS)
    assert content == ""
    assert list(tools) == [0]
    assert tools[0]["name"] == "write_file" and tools[0]["id"].startswith("call_")
    assert tools[0]["arguments"] == plain.message.tool_calls[0].function.arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]


# --------------------------------------------------------------------------- faults


def test_fault_429_has_retry_after(sim: SimServer, client: openai.OpenAI) -> None:
    queue_faults(sim, {"kind": "429", "retry_after": 2})
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="sim-1", messages=user("hi"))
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.request_id is not None and info.value.request_id.startswith("sim-")


def test_fault_500(sim: SimServer, client: openai.OpenAI) -> None:
    queue_faults(sim, {"kind": "500"})
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="sim-1", messages=user("hi"))


def test_fault_malformed(sim: SimServer, client: openai.OpenAI) -> None:
    queue_faults(sim, {"kind": "malformed"})
    # openai 3.x surfaces a bare json.JSONDecodeError (a ValueError) for a non-JSON 200 body.
    with pytest.raises((openai.APIError, ValueError)):
        client.chat.completions.create(model="sim-1", messages=user("hi"))


def test_fault_malformed_stream(sim: SimServer, client: openai.OpenAI) -> None:
    queue_faults(sim, {"kind": "malformed"})
    with pytest.raises((openai.APIError, ValueError)):
        collect_stream(client, messages=user("hi"))


def test_fault_timeout(sim: SimServer) -> None:
    queue_faults(sim, {"kind": "timeout", "seconds": 3})
    slow = openai.OpenAI(api_key="sim", base_url=sim.base_url, max_retries=0, timeout=1)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        slow.chat.completions.create(model="sim-1", messages=user("hi"))
    assert time.monotonic() - started < 2.5
    assert slow.chat.completions.create(model="sim-1", messages=user("after")).choices[0].message.content


def test_fault_timeout_closes_connection_without_response(sim: SimServer) -> None:
    queue_faults(sim, {"kind": "timeout", "seconds": 0.2})
    patient = openai.OpenAI(api_key="sim", base_url=sim.base_url, max_retries=0, timeout=5)
    with pytest.raises(openai.APIConnectionError):
        patient.chat.completions.create(model="sim-1", messages=user("hi"))


def test_fault_bad_tool_args(sim: SimServer, client: openai.OpenAI) -> None:
    queue_faults(sim, {"kind": "bad_tool_args"}, {"kind": "bad_tool_args"})
    message = (
        client.chat.completions.create(model="sim-1", messages=user("Mission: M\nStep: core — Core"), tools=TOOLS)
        .choices[0]
        .message
    )
    assert message.tool_calls[0].function.name == "write_file"
    with pytest.raises(json.JSONDecodeError):
        json.loads(message.tool_calls[0].function.arguments)
    # No tool call in the answer: the fault is used up and the answer is normal.
    plain = client.chat.completions.create(model="sim-1", messages=user("hello"))
    assert plain.choices[0].message.content == "Acknowledged: hello"
    assert http(sim, "GET", "/_sim/faults")[1]["faults"] == []


def test_faults_apply_once_each_in_order(sim: SimServer, client: openai.OpenAI) -> None:
    queue_faults(sim, {"kind": "500"}, {"kind": "429", "retry_after": 1})
    queue_faults(sim, {"kind": "malformed"})
    outcomes = []
    for _ in range(4):
        try:
            client.chat.completions.create(model="sim-1", messages=user("x"))
            outcomes.append("ok")
        except openai.APIStatusError as exc:
            outcomes.append(exc.status_code)
        except ValueError:
            outcomes.append("malformed")
    assert outcomes == [500, 429, "malformed", "ok"]
    log = calls(sim)
    assert [c["status"] for c in log] == [500, 429, 200, 200]
    assert [c["fault"] for c in log] == ["500", "429", "malformed", None]
    assert [c["usage"] is None for c in log] == [True, True, True, False]


def test_delete_faults_clears_queue(sim: SimServer, client: openai.OpenAI) -> None:
    queue_faults(sim, {"kind": "500"})
    assert http(sim, "DELETE", "/_sim/faults") == (200, {"ok": True})
    assert client.chat.completions.create(model="sim-1", messages=user("x")).choices[0].message.content


def test_unknown_fault_kind_is_rejected(sim: SimServer) -> None:
    status, payload = http(sim, "POST", "/_sim/faults", {"faults": [{"kind": "418"}]})
    assert status == 400 and payload["error"]["type"] == "invalid_request_error"
    assert http(sim, "GET", "/_sim/faults")[1]["faults"] == []


# --------------------------------------------------------------------------- call log & errors


def test_call_log_records_usage_the_client_saw(sim: SimServer, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="sim-1", messages=user("Mission: Log"), response_format=PLAN_DRAFT_SCHEMA
    )
    completion = raw.parse()
    _, chunks, _ = collect_stream(client, messages=user("stream me"), stream_options={"include_usage": True})
    log = calls(sim)
    assert [c["role"] for c in log] == ["plan_draft", "chat"]
    assert [c["stream"] for c in log] == [False, True]
    assert log[0]["request_id"] == raw.headers["x-request-id"]
    assert log[0]["n"] + 1 == log[1]["n"]
    assert log[0]["model"] == "sim-1" and log[0]["status"] == 200
    assert log[0]["usage"] == completion.usage.model_dump(exclude_none=True)
    assert log[1]["usage"] == chunks[-1].usage.model_dump(exclude_none=True)
    assert http(sim, "DELETE", "/_sim/calls") == (200, {"ok": True})
    assert calls(sim) == []


def test_call_log_roles(sim: SimServer, client: openai.OpenAI) -> None:
    vote(client, "You are the Chief Risk Officer (CRO).")
    client.chat.completions.create(model="sim-1", messages=user("Step: x — y"), tools=TOOLS)
    assert [c["role"] for c in calls(sim)] == ["plan_vote", "codegen"]


def test_bad_body_is_400(sim: SimServer, client: openai.OpenAI) -> None:
    status, payload = http(sim, "POST", "/v1/chat/completions", raw=b"this is not json")
    assert status == 400
    assert payload["error"]["type"] == "invalid_request_error" and payload["error"]["message"]
    status, payload = http(sim, "POST", "/v1/chat/completions", {"model": "sim-1"})
    assert status == 400 and "messages" in payload["error"]["message"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="sim-1", messages=[])
    assert [c["status"] for c in calls(sim)] == [400, 400, 400]


def test_latency_delays_completions() -> None:
    with SimServer(latency_ms=300) as slow_sim:
        slow = openai.OpenAI(api_key="sim", base_url=slow_sim.base_url, max_retries=0)
        started = time.monotonic()
        slow.chat.completions.create(model="sim-1", messages=user("x"))
        assert time.monotonic() - started >= 0.3


def test_chunk_delay_spaces_the_streamed_text_of_the_given_roles_only() -> None:
    """``chunk_delay_ms`` waits before each streamed piece of answer text of the roles named: another role's
    answer, a tool call's arguments and a non-streamed answer come at full speed."""
    with SimServer() as slow_sim:
        status, body = http(slow_sim, "POST", "/_sim/latency", {"chunk_delay_ms": 100, "roles": ["chat", "codegen"]})
        assert (status, body) == (
            200,
            {"ok": True, "latency_ms": 0.0, "chunk_delay_ms": 100.0, "roles": ["chat", "codegen"]},
        )
        slow = openai.OpenAI(api_key="sim", base_url=slow_sim.base_url, max_retries=0)
        arrivals = []
        stream = slow.chat.completions.create(model="sim-1", stream=True, messages=user("one two three four five six"))
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic())
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
        assert len(arrivals) >= 3 and min(gaps) >= 0.09, gaps

        for kwargs in (
            {"messages": user("Mission: Fast"), "response_format": PLAN_VOTE_SCHEMA},  # not a role named
            {"messages": user("Mission: M\nStep: core — Core"), "tools": TOOLS},  # a tool call: arguments only
        ):
            started = time.monotonic()
            _, chunks, _ = collect_stream(slow, **kwargs)
            assert len(chunks) > 3 and time.monotonic() - started < 0.3
        started = time.monotonic()
        slow.chat.completions.create(model="sim-1", messages=user("one two three four five six"))
        assert time.monotonic() - started < 0.3

        assert http(slow_sim, "POST", "/_sim/latency", {"roles": "chat"})[0] == 400
        assert http(slow_sim, "GET", "/_sim/latency")[1]["chunk_delay_ms"] == 100.0


# --------------------------------------------------------------------------- command line


def read_line(proc: subprocess.Popen[str], timeout: float = 10) -> str:
    """First stdout line, or "" if none arrives in time (e.g. the sim forgot to flush)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def test_module_entry_point_serves_and_stops() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # the line must be flushed explicitly
    proc = subprocess.Popen(
        [sys.executable, "-m", "agents.sim", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(proc)
        match = re.fullmatch(r"sim listening on (http://127\.0\.0\.1:(\d+)/v1)\n", line)
        assert match, line
        assert int(match.group(2)) > 0
        with urllib.request.urlopen(match.group(1) + "/models", timeout=10) as response:  # noqa: S310 - local sim
            assert json.loads(response.read())["data"][0]["id"] == "sim-1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert proc.stdout.read() == ""
