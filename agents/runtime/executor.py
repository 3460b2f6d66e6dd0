"""Run an execution agent by function calling until it reports back."""

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import TaskResult
from autogen_agentchat.messages import TextMessage, ToolCallExecutionEvent, ToolCallRequestEvent, ToolCallSummaryMessage

from agents.models import ModelProfile
from agents.runtime.metering import CallContext
from agents.runtime.structured import fallback_client_for
from agents.runtime.tools import StepTools

# on_message(kind, content, data) records a transcript entry.
MessageSink = Callable[[str, str, dict], Awaitable[None]]


@dataclass
class AgentReport:
    final_text: str
    stop_reason: str


def agent_name(name: str) -> str:
    """AutoGen needs agent names that are Python identifiers."""
    cleaned = re.sub(r"\W", "_", name)
    return cleaned if cleaned[:1].isalpha() else f"agent_{cleaned}"


async def run_tool_agent(
    *,
    profile: ModelProfile,
    name: str,
    system_prompt: str,
    brief: str,
    tools: StepTools,
    context: CallContext,
    on_message: MessageSink,
    max_iterations: int,
) -> AgentReport:
    """Let the agent call tools until it answers in text (or hits the iteration limit).

    Each tool call and result is recorded as it happens, so the mission page
    shows the work live.
    """
    # One tool call per answer: AutoGen would run a message's calls concurrently (the tools also take turns).
    client = fallback_client_for(profile, context, parallel_tool_calls=False)  # a refusal of tools is one clear error
    agent = AssistantAgent(
        name=agent_name(name),
        model_client=client,
        tools=tools.function_tools(),
        system_message=system_prompt,
        max_tool_iterations=max_iterations,
        reflect_on_tool_use=False,
    )
    final_text, stop_reason = "", ""
    try:
        async for item in agent.run_stream(task=brief):
            if isinstance(item, TaskResult):
                stop_reason = item.stop_reason or ""
            elif isinstance(item, ToolCallRequestEvent):
                for call in item.content:
                    await on_message("tool_call", f"{call.name}({_short_args(call.arguments)})", {"tool": call.name})
            elif isinstance(item, ToolCallExecutionEvent):
                for result in item.content:
                    await on_message(
                        "tool_result", result.content, {"tool": result.name, "is_error": bool(result.is_error)}
                    )
            elif isinstance(item, TextMessage | ToolCallSummaryMessage):
                final_text = item.content
                if isinstance(item, TextMessage):
                    await on_message("text", item.content, {"from": item.source})
    finally:
        await client.close()
    return AgentReport(final_text=final_text, stop_reason=stop_reason)


def _short_args(arguments: str) -> str:
    """Show a tool call's arguments without dumping whole file contents into the timeline."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments[:120]
    if not isinstance(parsed, dict):
        return arguments[:120]
    shown = {k: (v if not isinstance(v, str) or len(v) <= 60 else f"<{len(v)} chars>") for k, v in parsed.items()}
    return ", ".join(f"{k}={v!r}" for k, v in shown.items())
