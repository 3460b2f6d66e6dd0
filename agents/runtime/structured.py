"""Ask a model for an answer in a given pydantic shape, with one repair round.

A profile asks for structured answers in the best mode it supports: a JSON
schema response format, else JSON mode with the schema in the prompt, else
the schema in the prompt alone. A server that refuses the mode in use (as
llama.cpp's server refuses ``response_format: json_schema``) downgrades the
profile once, and the same request is sent again in the lower mode.
"""

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal, TypeVar

import openai
from asgiref.sync import sync_to_async
from autogen_core import CancellationToken
from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    ModelInfo,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel, ValidationError

from agents import services
from agents.errors import ModelOutputError, ModelUnavailable
from agents.models import ModelProfile
from agents.runtime.clients import model_client_for
from agents.runtime.metering import CallContext, MeteredChatCompletionClient

T = TypeVar("T", bound=BaseModel)

CAPABILITY_FIELDS = ["supports_json_schema", "supports_json_mode", "supports_tools"]
# Words a refusal of each capability mentions (llama.cpp: 'response_format type must be one of "text" or
# "json_object", but got: json_schema'; 'tools param requires --jinja flag'). A bare 400 is not enough:
# it is as often an over-long prompt, and retrying in another mode would hide the real error.
REFUSAL_WORDS = {
    "json_schema": ("response_format", "json_schema", "structured output"),
    "json_mode": ("response_format", "json_object", "json mode"),
    "tools": ("tools param", "support tool", "tool choice requires", "unsupported param: tool"),
}
REFUSAL_STATUSES = (400, 422, 501)
# A 500 is as often a transient fault, and a downgrade is permanent for every mission on the profile: only
# llama.cpp's own tools refusal, which it sends as a 500, counts as one.
SERVER_ERROR_REFUSALS = {"tools": ("tools param requires --jinja",)}


def _response_format(output_type: type[BaseModel]) -> dict:
    return {
        "type": "json_schema",
        "json_schema": {"name": output_type.__name__, "schema": output_type.model_json_schema(), "strict": False},
    }


def _describe_errors(error: ValidationError | ValueError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in error.errors()[:10])
    return str(error)


def refused_capability(error: BaseException, capability: str) -> str | None:
    """The server's refusal text, when ``error`` says it does not accept ``capability``; else None."""
    words = REFUSAL_WORDS.get(capability, ())
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, openai.APIStatusError):
            text = str(cause)
            if cause.status_code in REFUSAL_STATUSES:
                return text if any(word in text.lower() for word in words) else None
            known = SERVER_ERROR_REFUSALS.get(capability, ())
            return text if cause.status_code >= 500 and any(word in text for word in known) else None
        cause = cause.__cause__ or cause.__context__
    return None


def strip_code_fence(text: str) -> str:
    """Small models often wrap their JSON in a Markdown code fence; the JSON inside is the answer."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and stripped.count("```") == 2:
        body = stripped[3:-3]
        first_line, _, rest = body.partition("\n")
        return (rest if first_line.strip().isalpha() or not first_line.strip() else body).strip()
    return text


def with_schema_in_prompt(messages: Sequence[LLMMessage], output_type: type[BaseModel]) -> list[LLMMessage]:
    """The messages with the schema appended to the last user message (or as a new one)."""
    instruction = (
        f"Answer with only a JSON object matching the schema {output_type.__name__}: "
        f"{json.dumps(output_type.model_json_schema())}"
    )
    messages = list(messages)
    last = messages[-1] if messages else None
    if isinstance(last, UserMessage) and isinstance(last.content, str):
        messages[-1] = UserMessage(content=f"{last.content}\n\n{instruction}", source=last.source)
    else:
        messages.append(UserMessage(content=instruction, source="engine"))
    return messages


async def _refresh_capabilities(profile: ModelProfile) -> None:
    """Another call (or worker) may have downgraded the profile since this row was read."""
    if profile.pk is not None:
        await sync_to_async(profile.refresh_from_db)(fields=CAPABILITY_FIELDS)


class CapabilityFallbackClient(ChatCompletionClient):
    """Wraps the metered client: asks for structured output in the mode the profile supports, and downgrades once.

    A caller asks for a shape with ``json_output=SomeModel`` (as AutoGen's
    AssistantAgent does); this client turns it into the profile's mode. A
    refused call is an error row at $0 in the ledger (the metered client
    settles failures at no cost); its retry is a call of its own.
    """

    def __init__(self, inner: ChatCompletionClient, *, profile: ModelProfile, mission_id: int) -> None:
        self._inner = inner
        self._profile = profile
        self._mission_id = mission_id

    async def _downgrade(self, capability: str, reason: str) -> None:
        await sync_to_async(services.model_profile_downgrade)(
            profile=self._profile, capability=capability, reason=reason, mission_id=self._mission_id
        )

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        await _refresh_capabilities(self._profile)
        wants_shape = isinstance(json_output, type) and issubclass(json_output, BaseModel)
        while True:
            mode = self._profile.structured_mode if wants_shape else None
            sent_messages, sent_json, sent_extra = messages, json_output, dict(extra_create_args)
            if mode == "json_schema":
                sent_json, sent_extra["response_format"] = None, _response_format(json_output)
            elif mode is not None:
                sent_messages = with_schema_in_prompt(messages, json_output)
                sent_json = True if mode == "json_mode" else None
            try:
                result = await self._inner.create(
                    sent_messages,
                    tools=tools,
                    tool_choice=tool_choice,
                    json_output=sent_json,
                    extra_create_args=sent_extra,
                    cancellation_token=cancellation_token,
                )
            except Exception as error:
                if tools and (reason := refused_capability(error, "tools")):
                    await self._downgrade("tools", reason)
                    raise ModelUnavailable(
                        f"The model server refuses tool calls, which execution agents need ({reason[:300]}). "
                        "Start llama.cpp's server with --jinja, or give the agents a profile that supports tools."
                    ) from error
                reason = refused_capability(error, mode) if mode in ("json_schema", "json_mode") else None
                if reason is None:
                    raise
                await self._downgrade(mode, reason)  # the loop sends the same request in the lower mode
                continue
            if wants_shape and isinstance(result.content, str):
                result = result.model_copy(update={"content": strip_code_fence(result.content)})
            return result

    def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        return self._inner.create_stream(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            json_output=json_output,
            extra_create_args=extra_create_args,
            cancellation_token=cancellation_token,
        )

    async def close(self) -> None:
        await self._inner.close()

    def actual_usage(self) -> RequestUsage:
        return self._inner.actual_usage()

    def total_usage(self) -> RequestUsage:
        return self._inner.total_usage()

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return self._inner.count_tokens(messages, tools=tools)

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return self._inner.remaining_tokens(messages, tools=tools)

    @property
    def capabilities(self):  # deprecated in AutoGen, still abstract
        return self._inner.model_info

    @property
    def model_info(self) -> ModelInfo:
        return self._inner.model_info


def fallback_client_for(
    profile: ModelProfile, context: CallContext, *, parallel_tool_calls: bool | None = None
) -> CapabilityFallbackClient:
    """The client every agent uses: metered, and falling back when the server refuses a capability."""
    inner = model_client_for(profile, parallel_tool_calls=parallel_tool_calls)
    metered = MeteredChatCompletionClient(inner, profile=profile, context=context)
    return CapabilityFallbackClient(metered, profile=profile, mission_id=context.mission_id)


async def ask_structured(
    *, profile: ModelProfile, system_prompt: str, prompt: str, output_type: type[T], context: CallContext
) -> T:
    """Return the model's answer parsed into ``output_type``.

    An answer that does not validate is sent back once with the errors; a
    second bad answer is a ModelOutputError with a readable reason.
    """
    client = fallback_client_for(profile, context)
    name = output_type.__name__
    messages = [SystemMessage(content=system_prompt), UserMessage(content=prompt, source="engine")]
    try:
        for attempt in (1, 2):
            result = await client.create(messages, json_output=output_type)
            content = result.content if isinstance(result.content, str) else ""
            try:
                return output_type.model_validate_json(content)
            except (ValidationError, ValueError) as error:
                problem = _describe_errors(error) if content else "the answer was empty or a tool call"
                if attempt == 2:
                    raise ModelOutputError(f"The model's {name} answer was invalid twice: {problem}") from error
                messages += [
                    AssistantMessage(content=content or "(no text)", source="model"),
                    UserMessage(
                        content=f"Your answer did not match the schema {name}: {problem}. "
                        "Answer again with only the corrected JSON object.",
                        source="engine",
                    ),
                ]
    finally:
        await client.close()
    raise AssertionError("unreachable")
