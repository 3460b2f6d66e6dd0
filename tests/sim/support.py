"""Helpers shared by the end-to-end sim tests: tool definitions, control-endpoint calls, a codegen driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai

from agents.sim.server import SimServer

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} tool",
            "parameters": {
                "type": "object",
                "properties": props,
                "required": list(props),
            },
        },
    }
    for name, props in (
        ("write_file", {"path": {"type": "string"}, "content": {"type": "string"}}),
        ("run_tests", {}),
        ("commit", {"message": {"type": "string"}}),
    )
]


def schema_format(name: str) -> dict[str, Any]:
    """A json_schema response_format naming ``name``, like agents.runtime.structured sends."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": {"type": "object"}, "strict": False}}


PLAN_DRAFT_SCHEMA = schema_format("PlanDraft")
PLAN_VOTE_SCHEMA = schema_format("PlanVote")
PLAN_REVIEW_SCHEMA = schema_format("PlanReview")
SPECIALIST_SCHEMA = schema_format("SpecialistDesign")


def http(sim: SimServer, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    """Tiny urllib helper for control endpoints; returns (status, parsed JSON)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(sim.url + path, data=data, method=method)  # noqa: S310 - local sim URL
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local sim URL
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def queue_faults(sim: SimServer, *faults: dict[str, Any]) -> None:
    status, payload = http(sim, "POST", "/_sim/faults", {"faults": list(faults)})
    assert status == 200, payload


def script(sim: SimServer, *rules: dict[str, Any]) -> None:
    status, payload = http(sim, "POST", "/_sim/script", {"rules": list(rules)})
    assert status == 200, payload


def script_rules(sim: SimServer) -> list[dict[str, Any]]:
    status, payload = http(sim, "GET", "/_sim/script")
    assert status == 200
    return payload["rules"]


def calls(sim: SimServer) -> list[dict[str, Any]]:
    status, payload = http(sim, "GET", "/_sim/calls")
    assert status == 200
    return payload["calls"]


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def codegen_turns(
    client: openai.OpenAI, brief: str, run_tool: Callable[[str, dict[str, Any]], str], turns: int = 5
) -> tuple[list[str | None], list[Any], str | None]:
    """Drive the tool loop: returns (tool name or None per turn, tool calls made, final text)."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a developer."},
        *user(brief),
    ]
    names: list[str | None] = []
    made: list[Any] = []
    final = None
    for _ in range(turns):
        response = client.chat.completions.create(model="sim-1", messages=messages, tools=TOOLS)
        message = response.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            assert response.choices[0].finish_reason == "stop"
            names.append(None)
            final = message.content
            continue
        assert response.choices[0].finish_reason == "tool_calls"
        assert len(message.tool_calls) == 1
        call = message.tool_calls[0]
        names.append(call.function.name)
        made.append(call)
        result = run_tool(call.function.name, json.loads(call.function.arguments))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return names, made, final


def run_pytest(cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m pytest -q`` in ``cwd`` with this interpreter, outside the project's Django settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
