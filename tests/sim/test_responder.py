"""Unit tests of the pure responder: parsing briefs, personas, usage and generated code."""

from __future__ import annotations

import json

import pytest

from agents.sim import responder
from agents.sim.responder import Reply, ToolCall

TOOLS = [{"type": "function", "function": {"name": n}} for n in ("write_file", "run_tests", "commit")]


def body(*messages: tuple[str, str], **extra: object) -> dict:
    return {
        "model": "sim-1",
        "messages": [{"role": r, "content": c} for r, c in messages],
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "text", "role"),
    [
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "PlanDraft"},
                }
            },
            "x",
            "plan_draft",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "PlanVote"},
                }
            },
            "x",
            "plan_vote",
        ),
        ({"response_format": {"type": "json_object"}}, "give a PlanVote", "plan_vote"),
        ({"response_format": {"type": "json_object"}}, "no schema named", "chat"),
        ({"tools": TOOLS}, "x", "codegen"),
        ({"tools": TOOLS, "tool_choice": "none"}, "x", "chat"),
        ({"tools": TOOLS[1:]}, "x", "chat"),
        ({}, "x", "chat"),
    ],
)
def test_detect_role(extra: dict, text: str, role: str) -> None:
    assert responder.detect_role(body(("user", text), **extra)) == role


@pytest.mark.parametrize(
    ("system", "abbr"),
    [
        ("You are the Chief Technology Officer (CTO) of Acme.", "CTO"),
        ("You are the Chief Executive Officer. Decide.", "CEO"),
        ("You are a chief risk officer reviewing plans", "CRO"),
        ("You are the CFO, watching the budget.", "CFO"),
        ("You are the Head of Design (HoD).", "HOD"),
        ("Just vote.", None),
    ],
)
def test_voter_role(system: str, abbr: str | None) -> None:
    assert responder.voter_role(body(("system", system), ("user", "u")))[0] == abbr


def test_prompt_usage_counts_list_content_tool_calls_and_tools() -> None:
    request = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "abcd"},
                    {"type": "image_url", "image_url": {}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c",
                        "type": "function",
                        "function": {"name": "ab", "arguments": "{}"},
                    }
                ],
            },
        ],
        "tools": [{"a": 1}],
    }
    tools_len = len(json.dumps(request["tools"]))
    assert responder.prompt_tokens(request) == (1 + 4) + (1 + 4) + -(-tools_len // 4)


def test_completion_usage_for_tool_calls_uses_their_json() -> None:
    reply = Reply(role="codegen", tool_calls=(ToolCall("run_tests", "{}"),))
    usage = responder.usage_for({"messages": [{"role": "user", "content": ""}]}, reply)
    expected = -(-len(json.dumps([{"name": "run_tests", "arguments": "{}"}])) // 4) + 1
    assert usage["completion_tokens"] == expected
    assert usage["prompt_tokens"] == 4
    assert usage["total_tokens"] == 4 + expected


@pytest.mark.parametrize("text", ["", "a", "héllo wörld " * 7, "日本語のテキスト" * 3, "x" * 1001])
def test_prompt_tokens_stay_within_client_budget_bound(text: str) -> None:
    request = {
        "messages": [
            {"role": "user", "content": text},
            {"role": "system", "content": text[::-1]},
        ]
    }
    byte_bound = sum(len(m["content"].encode()) + 8 for m in request["messages"])
    assert responder.prompt_tokens(request) <= byte_bound


@pytest.mark.parametrize(
    ("line", "key", "title"),
    [
        ("Step: core — Core logic", "core", "Core logic"),
        ("Step: api_v2 - HTTP layer", "api_v2", "HTTP layer"),
        ("Step: data-layer: Storage", "data_layer", "Storage"),
        ("Step: 2fa — Two factor", "step_2fa", "Two factor"),
        ("no step line at all", "feature", "feature for M"),
    ],
)
def test_parse_brief(line: str, key: str, title: str) -> None:
    brief = responder.parse_brief(body(("user", f"Mission: M\n{line}")))
    assert (brief.mission, brief.key, brief.step_title) == ("M", key, title)


def test_stdlib_named_key_gets_a_non_shadowing_module() -> None:
    reply = responder.respond(body(("user", "Mission: M\nStep: email — Email"), tools=TOOLS))
    assert json.loads(reply.tool_calls[0].arguments)["path"] == "email_step.py"


@pytest.mark.parametrize("key", ["core", "api"])
def test_generated_sources_compile_with_hostile_titles(key: str) -> None:
    hostile = "a \"\"\" b ''' c \\ d {e} __NAME__ \n\x00 \ud800"
    brief = responder.Brief(mission=hostile, key=key, step_title=hostile)
    module, tests = responder.generated_sources(brief)
    namespace: dict = {}
    exec(compile(module, f"{key}.py", "exec"), namespace)  # noqa: S102 - generated code under test
    assert namespace["MISSION"] == hostile
    assert namespace["__doc__"].endswith(f"for mission {hostile}.")
    compile(tests, f"test_{key}.py", "exec")
    assert tests.count("def test_") >= 3


def test_skips_tools_that_are_not_offered() -> None:
    request = body(("user", "Mission: M\nStep: core — C"), tools=TOOLS[:1])
    done = []
    for name in ("write_file", "write_file"):
        reply = responder.respond(request)
        assert reply.tool_calls[0].name == name
        call = {
            "id": f"c{len(done)}",
            "type": "function",
            "function": reply.tool_calls[0].__dict__,
        }
        done.append({"role": "assistant", "content": None, "tool_calls": [call]})
        request["messages"] += [
            done[-1],
            {"role": "tool", "tool_call_id": call["id"], "content": "ok"},
        ]
    final = responder.respond(request)
    assert final.tool_calls == () and "tests: not run" in final.content


@pytest.mark.parametrize(
    ("extra", "text", "role"),
    [
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "PlanReview"}}}, "x", "plan_review"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "SpecialistDesign"}}}, "x", "specialist"),
        ({"response_format": {"type": "json_object"}}, "as SpecialistDesign", "specialist"),
        ({"response_format": {"type": "json_object"}}, "PlanReview of this PlanDraft", "plan_draft"),
        ({"response_format": {"type": "json_object"}}, "the PlanDraft: {}. Answer as PlanReview", "plan_review"),
        ({"response_format": {"type": "json_object"}}, "the PlanDraft: {}. Answer as PlanVote", "plan_vote"),
    ],
)
def test_detect_new_roles_and_last_named_schema(extra: dict, text: str, role: str) -> None:
    assert responder.detect_role(body(("user", text), **extra)) == role


def test_json_object_mode_prefers_the_last_user_message() -> None:
    request = body(
        ("user", "Answer as PlanReview"),
        ("assistant", "Here is a PlanVote instead"),
        response_format={"type": "json_object"},
    )
    assert responder.detect_role(request) == "plan_review"
    request["messages"].pop(0)  # no user message names a schema: the whole conversation decides
    assert responder.detect_role(request) == "plan_vote"


@pytest.mark.parametrize(
    ("output", "failed"),
    [
        ("FAILED: 1 passed, 1 failed, 0 errors", True),
        ("  FAILED: 0 passed, 0 failed, 1 errors", True),
        ("PASSED: 6 passed, 0 failed, 0 errors, 0 skipped in 0.1s", False),
        ("..F...\n1 failed, 5 passed in 0.05s", True),
        ("E\n1 error in 0.02s", True),
        ("......\n6 passed in 0.05s", False),
        ("ok", False),
    ],
)
def test_tests_failed(output: str, failed: bool) -> None:
    assert responder.tests_failed(output) is failed


@pytest.mark.parametrize("key", ["core", "api"])
def test_buggy_source_carries_the_marker_and_a_wrong_describe(key: str) -> None:
    brief = responder.Brief(mission="M", key=key, step_title="T")
    module, _ = responder.generated_sources(brief)
    buggy = responder.buggy_source(module, "fail_then_fix")
    assert buggy.startswith("# sim:buggy fail_then_fix")
    good: dict = {}
    bad: dict = {}
    exec(compile(module, f"{key}.py", "exec"), good)  # noqa: S102 - generated code under test
    exec(compile(buggy, f"{key}.py", "exec"), bad)  # noqa: S102 - generated code under test
    assert good["describe"]() == f"{key}: T" != bad["describe"]()
    assert bad["__doc__"] == good["__doc__"]


def test_conversation_variant_reads_only_assistant_write_file_calls() -> None:
    def assistant(name: str, arguments: str) -> dict:
        call = {"id": "c", "type": "function", "function": {"name": name, "arguments": arguments}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}

    marker = '{"path": "core.py", "content": "# sim:buggy always_fail: x'  # cut mid-JSON on purpose
    assert responder.conversation_variant({"messages": [assistant("write_file", marker)]}) == "always_fail"
    assert responder.conversation_variant({"messages": [assistant("commit", marker)]}) is None
    assert responder.conversation_variant({"messages": [{"role": "user", "content": marker}]}) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Amendments to merge:\n- a\n-  b \n\n- c", ["a", "b"]),
        ("x\n  Amendments to merge:\n  - a\nnot a bullet\n- b", ["a"]),
        ("Amendments to merge:\n-\n- a", ["a"]),
        ("Amendments to merge: - inline", []),
        ("- a\n- b", []),
    ],
)
def test_amendments_parsing(text: str, expected: list[str]) -> None:
    assert responder.amendments(body(("user", text))) == expected


def test_scripted_reply_kinds() -> None:
    request = body(("user", "x"))
    assert responder.respond(request, {"json": {"a": [1]}}).content == '{"a": [1]}'
    assert responder.respond(request, {"raw": "{nope"}).content == "{nope"
    assert responder.respond(request, {"text": "hi"}) == Reply(role="chat", content="hi")
    with pytest.raises(ValueError):
        responder.respond(request, {"json": 1, "text": "x"})


@pytest.mark.parametrize(
    ("brief", "increase"),
    [
        ("Budget: $0.02\nWhy it stopped: the next call (x) may cost up to $0.0018, ...", "0.02"),
        ("Budget: $0.01\nWhy it stopped: the next call (x) may cost up to $0.0604, ...", "0.07"),
        ("no figures at all", "1.00"),
    ],
)
def test_it_answers_the_cfo_budget_proposal_with_a_valid_structured_answer(brief: str, increase: str) -> None:
    """The CFO's BudgetProposal: the budget again, or what the refused call needs if more; it names the top spender."""
    from agents.schemas import BudgetProposal

    fmt = {"response_format": {"type": "json_schema", "json_schema": {"name": "BudgetProposal"}}}
    text = f"Mission: M\n{brief}\n\nSpend per agent:\n- Developer: $0.012284 in 5 call(s)\n- CTO: $0.001 in 1 call(s)"
    reply = responder.respond(body(("user", text), **fmt))
    answer = BudgetProposal.model_validate_json(reply.content)
    assert str(answer.increase_usd) == increase
    assert answer.rationale.startswith("As CFO: Developer spent the most ($0.012284).")
