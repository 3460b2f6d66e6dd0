"""Per-test script rules (``/_sim/script``) and the codegen variants, through the real ``openai`` client."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import openai
import pytest

from agents.sim.server import SimServer

from .support import (
    PLAN_DRAFT_SCHEMA,
    PLAN_REVIEW_SCHEMA,
    PLAN_VOTE_SCHEMA,
    TOOLS,
    calls,
    codegen_turns,
    http,
    queue_faults,
    run_pytest,
    script,
    script_rules,
    user,
)

CFO = "You are the Chief Financial Officer (CFO). Guard the budget."
CTO = "You are the Chief Technology Officer (CTO). Judge the engineering."
OBJECTION = {"stance": "object", "rationale": "As CFO: far too expensive.", "amendments": ["Cap spend at $5"]}


def vote(client: openai.OpenAI, persona: str) -> dict[str, Any]:
    messages = [{"role": "system", "content": persona}, *user("Mission: Payments\nDraft plan (JSON): {}")]
    completion = client.chat.completions.create(model="sim-1", messages=messages, response_format=PLAN_VOTE_SCHEMA)
    return json.loads(completion.choices[0].message.content)


def content(client: openai.OpenAI, text: str, **kwargs: Any) -> str | None:
    return client.chat.completions.create(model="sim-1", messages=user(text), **kwargs).choices[0].message.content


# --------------------------------------------------------------------------- rules


def test_vote_rule_matches_only_the_cfo_and_only_times_times(sim: SimServer, client: openai.OpenAI) -> None:
    script(sim, {"role": "plan_vote", "match": "Chief Financial Officer", "times": 2, "reply": {"json": OBJECTION}})
    assert vote(client, CTO)["stance"] == "approve"  # no match: default, rule untouched
    assert script_rules(sim)[0]["times"] == 2
    assert vote(client, CFO) == OBJECTION
    assert vote(client, CFO) == OBJECTION
    after = vote(client, CFO)
    assert after["stance"] == "approve" and "CFO" in after["rationale"]  # defaults resume
    assert script_rules(sim) == []
    log = calls(sim)
    assert [c["role"] for c in log] == ["plan_vote"] * 4
    assert [c["scripted"] for c in log] == [False, True, True, False]


def test_match_is_case_sensitive(sim: SimServer, client: openai.OpenAI) -> None:
    script(sim, {"role": "chat", "match": "Hello", "reply": {"text": "scripted"}})
    assert content(client, "hello there") == "Acknowledged: hello there"
    assert content(client, "Hello there") == "scripted"


def test_raw_reply_is_sent_verbatim_as_invalid_json(sim: SimServer, client: openai.OpenAI) -> None:
    raw = '{"summary": "half a plan", "steps": [ oops'
    script(sim, {"role": "plan_draft", "reply": {"raw": raw}})
    first = content(client, "Mission: Raw", response_format=PLAN_DRAFT_SCHEMA)
    assert first == raw
    with pytest.raises(json.JSONDecodeError):
        json.loads(first)
    repaired = json.loads(content(client, "Mission: Raw", response_format=PLAN_DRAFT_SCHEMA))
    assert [s["key"] for s in repaired["steps"]] == ["core", "api"]
    assert [c["scripted"] for c in calls(sim)] == [True, False]


def test_rules_never_apply_to_another_role(sim: SimServer, client: openai.OpenAI) -> None:
    script(
        sim,
        {"role": "plan_vote", "reply": {"json": OBJECTION}},
        {"role": "chat", "reply": {"text": "scripted chat"}},
        {"role": "codegen", "reply": {"variant": "always_fail"}},
    )
    before = script_rules(sim)
    draft = json.loads(content(client, "Mission: Roles", response_format=PLAN_DRAFT_SCHEMA))
    assert draft["steps"][0]["key"] == "core"
    assert json.loads(content(client, "Mission: Roles", response_format=PLAN_REVIEW_SCHEMA))["verdict"] == "approve"
    assert script_rules(sim) == before  # nothing used up by other roles
    assert content(client, "plain chat") == "scripted chat"
    assert [r["role"] for r in script_rules(sim)] == ["plan_vote", "codegen"]
    assert [c["scripted"] for c in calls(sim)] == [False, False, True]


def test_get_lists_remaining_rules_with_defaults_filled_in(sim: SimServer, client: openai.OpenAI) -> None:
    rules = [
        {"role": "chat", "match": "ping", "times": 3, "reply": {"text": "pong"}},
        {"role": "plan_review", "reply": {"json": {"verdict": "reject", "findings": ["no tests"]}}},
    ]
    script(sim, *rules)
    assert script_rules(sim) == [rules[0], {**rules[1], "match": None, "times": 1}]
    assert content(client, "ping?") == "pong"
    assert [r["times"] for r in script_rules(sim)] == [2, 1]


def test_delete_clears_the_script(sim: SimServer, client: openai.OpenAI) -> None:
    script(sim, {"role": "chat", "times": 5, "reply": {"text": "scripted"}})
    assert http(sim, "DELETE", "/_sim/script") == (200, {"ok": True})
    assert script_rules(sim) == []
    assert content(client, "after delete") == "Acknowledged: after delete"


@pytest.mark.parametrize(
    "bad",
    [
        {"role": "cfo", "reply": {"text": "x"}},
        {"role": "chat"},
        {"role": "chat", "reply": {"text": "x", "raw": "y"}},
        {"role": "chat", "reply": {"html": "x"}},
        {"role": "chat", "reply": {"text": 5}},
        {"role": "chat", "times": 0, "reply": {"text": "x"}},
        {"role": "chat", "times": True, "reply": {"text": "x"}},
        {"role": "chat", "match": 3, "reply": {"text": "x"}},
        {"role": "chat", "reply": {"text": "x"}, "when": "always"},
        {"role": "plan_vote", "reply": {"variant": "fail_then_fix"}},
        {"role": "codegen", "reply": {"variant": "sometimes_fail"}},
        "not a rule",
    ],
)
def test_invalid_rules_are_rejected_and_none_are_added(sim: SimServer, bad: Any) -> None:
    good = {"role": "chat", "reply": {"text": "fine"}}
    status, payload = http(sim, "POST", "/_sim/script", {"rules": [good, bad]})
    assert status == 400 and payload["error"]["type"] == "invalid_request_error", payload
    assert script_rules(sim) == []


def test_post_script_needs_a_rules_list(sim: SimServer) -> None:
    assert http(sim, "POST", "/_sim/script", {"rule": {}})[0] == 400
    assert http(sim, "POST", "/_sim/script", raw=b"not json")[0] == 400
    assert http(sim, "POST", "/_sim/script", {"rules": []}) == (200, {"ok": True, "count": 0})


def test_in_process_script_and_clear(sim: SimServer, client: openai.OpenAI) -> None:
    sim.script({"role": "chat", "times": 2, "reply": {"text": "in-process"}})
    assert sim.state.script_rules()[0]["times"] == 2
    assert content(client, "x") == "in-process"
    sim.state.clear_script()
    assert content(client, "x") == "Acknowledged: x"


def test_a_fault_does_not_use_up_a_rule(sim: SimServer, client: openai.OpenAI) -> None:
    script(sim, {"role": "chat", "reply": {"text": "scripted"}})
    queue_faults(sim, {"kind": "500"})
    with pytest.raises(openai.InternalServerError):
        content(client, "x")
    assert content(client, "x") == "scripted"


def test_scripted_reply_streams_like_any_other(sim: SimServer, client: openai.OpenAI) -> None:
    text = "a scripted answer that is long enough to arrive in several pieces"
    script(sim, {"role": "chat", "reply": {"text": text}})
    chunks = list(client.chat.completions.create(model="sim-1", messages=user("x"), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert calls(sim)[-1]["scripted"] is True and calls(sim)[-1]["stream"] is True


# --------------------------------------------------------------------------- codegen variants


def workspace_tools(root: Path) -> tuple[Any, list[bool], list[str]]:
    """A run_tool that really writes files and runs pytest; reports like agents.runtime.tools (PASSED/FAILED)."""
    outcomes: list[bool] = []
    module_writes: list[str] = []

    def run_tool(name: str, args: dict[str, Any]) -> str:
        if name == "write_file":
            (root / args["path"]).write_text(args["content"], encoding="utf-8")
            if not args["path"].startswith("test_"):
                module_writes.append(args["content"])
            return f"Wrote {len(args['content'])} bytes to {args['path']}."
        if name == "run_tests":
            proc = run_pytest(root)
            outcomes.append(proc.returncode == 0)
            verdict = "PASSED" if proc.returncode == 0 else "FAILED"
            return f"{verdict}: pytest exited with {proc.returncode}\n{proc.stdout[-3000:]}"
        return "Committed 0123456789ab."

    return run_tool, outcomes, module_writes


def test_fail_then_fix_really_fails_then_passes(sim: SimServer, client: openai.OpenAI, tmp_path: Path) -> None:
    script(
        sim,
        {"role": "codegen", "match": "Step: api", "reply": {"variant": "always_fail"}},
        {"role": "codegen", "match": "Step: core", "reply": {"variant": "fail_then_fix"}},
    )
    run_tool, outcomes, module_writes = workspace_tools(tmp_path)
    names, made, final = codegen_turns(client, "Mission: Fixes\nStep: core — Core logic", run_tool, turns=7)
    assert names == ["write_file", "write_file", "run_tests", "write_file", "run_tests", "commit", None]
    assert outcomes == [False, True]
    assert "# sim:buggy fail_then_fix" in module_writes[0] and "# sim:buggy" not in module_writes[1]
    paths = [json.loads(c.function.arguments).get("path") for c in made]
    assert paths[:2] == ["core.py", "test_core.py"] and paths[3] == "core.py"
    assert json.loads(made[5].function.arguments) == {"message": "core: Core logic"}
    assert re.search(r"\d+ passed", final) and "Fixed a bug in core.py" in final
    assert [c["scripted"] for c in calls(sim)] == [True] + [False] * 6
    assert [r["match"] for r in script_rules(sim)] == ["Step: api"]  # the other step's rule is still waiting


def test_fail_then_fix_rule_applies_only_to_one_conversation(sim: SimServer, client: openai.OpenAI) -> None:
    script(sim, {"role": "codegen", "reply": {"variant": "fail_then_fix"}})
    results = {"write_file": "ok", "run_tests": "FAILED: 1 failed, 5 passed", "commit": "done"}
    first = codegen_turns(client, "Mission: M\nStep: core — C", lambda name, args: results[name], turns=4)[0]
    assert first == ["write_file", "write_file", "run_tests", "write_file"]  # fixing after the failed run
    results["run_tests"] = "PASSED: 6 passed"
    second, made, _ = codegen_turns(client, "Mission: M\nStep: core — C", lambda name, args: results[name])
    assert second == ["write_file", "write_file", "run_tests", "commit", None]  # default loop again
    assert "sim:buggy" not in made[0].function.arguments


def test_fail_then_fix_fixes_once_then_stops(sim: SimServer, client: openai.OpenAI) -> None:
    """If the tests still fail after the fix, the loop commits and reports instead of rewriting forever."""
    script(sim, {"role": "codegen", "reply": {"variant": "fail_then_fix"}})
    results = {"write_file": "ok", "run_tests": "FAILED: 0 passed, 0 failed, 1 errors", "commit": "done"}
    names, _, final = codegen_turns(client, "Mission: M\nStep: core — C", lambda name, args: results[name], turns=7)
    assert names == ["write_file", "write_file", "run_tests", "write_file", "run_tests", "commit", None]
    assert "tests: FAILED" in final


def test_always_fail_never_passes(sim: SimServer, client: openai.OpenAI, tmp_path: Path) -> None:
    script(sim, {"role": "codegen", "reply": {"variant": "always_fail"}})
    run_tool, outcomes, module_writes = workspace_tools(tmp_path)
    names, _, final = codegen_turns(client, "Mission: Doomed\nStep: api — API layer", run_tool, turns=8)
    assert final is None and "commit" not in names
    assert names == ["write_file", "write_file", "run_tests", "write_file", "run_tests", "write_file", "run_tests"] + [
        "write_file"
    ]
    assert outcomes == [False, False, False]
    assert len(module_writes) == 4 and all("# sim:buggy always_fail" in m for m in module_writes)


def test_codegen_rules_wait_for_the_next_conversation(sim: SimServer, client: openai.OpenAI) -> None:
    """A codegen rule added mid-conversation is not used by that conversation's later requests."""
    messages = [*user("Mission: M\nStep: core — Core")]
    first = client.chat.completions.create(model="sim-1", messages=messages, tools=TOOLS).choices[0].message
    messages += [
        first.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "ok"},
    ]
    script(sim, {"role": "codegen", "reply": {"variant": "always_fail"}})
    second = client.chat.completions.create(model="sim-1", messages=messages, tools=TOOLS).choices[0].message
    assert json.loads(second.tool_calls[0].function.arguments)["path"] == "test_core.py"
    assert script_rules(sim)[0]["times"] == 1
    fresh = client.chat.completions.create(model="sim-1", messages=messages[:1], tools=TOOLS).choices[0].message
    assert "# sim:buggy always_fail" in fresh.tool_calls[0].function.arguments
    assert script_rules(sim) == []


def test_variant_survives_broken_tool_arguments(sim: SimServer, client: openai.OpenAI) -> None:
    """A bad_tool_args fault cuts the first write; the marker in the raw arguments still names the variant."""
    script(sim, {"role": "codegen", "reply": {"variant": "fail_then_fix"}})
    queue_faults(sim, {"kind": "bad_tool_args"})
    messages = [*user("Mission: M\nStep: core — Core")]
    first = client.chat.completions.create(model="sim-1", messages=messages, tools=TOOLS).choices[0].message
    assert "# sim:buggy fail_then_fix" in first.tool_calls[0].function.arguments
    messages += [
        first.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "error: bad JSON"},
    ]
    second = client.chat.completions.create(model="sim-1", messages=messages, tools=TOOLS).choices[0].message
    args = json.loads(second.tool_calls[0].function.arguments)
    assert args["path"] == "core.py" and args["content"].startswith("# sim:buggy fail_then_fix")
