"""The one wrapper every model call passes through: reserve, call, settle.

Before a call it reserves an upper bound of its cost against the mission's
budget; afterwards it writes the real usage into the ledger and releases the
reservation. Token counts are bounded without tiktoken (which downloads its
encodings at run time): a byte-level BPE token covers at least one byte, so
the UTF-8 size of the serialized messages bounds the prompt tokens.
"""

import hashlib
import json
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from asgiref.sync import sync_to_async
from autogen_core import CancellationToken
from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage, ModelInfo, RequestUsage
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel

from agents import services
from agents.errors import AgentRunError, ModelUnavailable
from agents.models import ModelProfile

PER_MESSAGE_OVERHEAD = 8
NO_KEY = ModelProfile.NO_KEY


@dataclass(frozen=True)
class CallContext:
    """What a model call is for: every ledger row is attributable to these."""

    mission_id: int
    purpose: str
    cycle_id: int | None = None
    step_id: int | None = None
    agent_id: int | None = None


def request_fingerprint(context: CallContext, model: str, messages, tools, json_output, extra_create_args) -> str:
    """Identical requests for the same piece of work get identical fingerprints.

    The cycle and step are part of it: a replay is for re-running the same
    work after a crash, not for a new deliberation that happens to ask the
    same question (and may deserve a different answer).
    """
    payload = {
        "cycle": context.cycle_id,
        "step": context.step_id,
        "model": model,
        "messages": [m.model_dump(mode="json") for m in messages],
        "tools": [t.schema if isinstance(t, Tool) else t for t in tools],
        "json_output": getattr(json_output, "__name__", json_output),
        "extra": extra_create_args,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def prompt_token_bound(messages: Sequence[LLMMessage], tools: Sequence[Tool | ToolSchema] = ()) -> int:
    size = sum(len(m.model_dump_json().encode()) + PER_MESSAGE_OVERHEAD for m in messages)
    schemas = [t.schema if isinstance(t, Tool) else t for t in tools]
    if schemas:
        size += len(json.dumps(schemas, default=str).encode())
    return size


class MeteredChatCompletionClient(ChatCompletionClient):
    """Wraps a real client; refuses calls the budget cannot cover."""

    def __init__(self, inner: ChatCompletionClient, *, profile: ModelProfile, context: CallContext) -> None:
        self._inner = inner
        self._profile = profile
        self._context = context

    async def _reserve(self, messages: Sequence[LLMMessage], tools: Sequence[Tool | ToolSchema], fingerprint: str = ""):
        return await sync_to_async(services.llm_call_reserve)(
            fingerprint=fingerprint,
            mission_id=self._context.mission_id,
            profile=self._profile,
            model_name=self._profile.resolved_model_name(),
            purpose=self._context.purpose,
            prompt_token_bound=prompt_token_bound(messages, tools),
            max_output_tokens=self._profile.max_output_tokens,
            cycle_id=self._context.cycle_id,
            step_id=self._context.step_id,
            agent_id=self._context.agent_id,
        )

    async def _settle(self, call, usage: RequestUsage, started: float, response: dict | None = None) -> None:
        await sync_to_async(services.llm_call_settle)(
            call=call,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            latency_ms=_elapsed_ms(started),
            response=response,
        )

    async def _replay(self, fingerprint: str) -> CreateResult | None:
        """An identical request this mission already paid for (a re-run after a crash) is answered from the ledger."""
        cached = await sync_to_async(services.llm_call_cached_response)(
            mission_id=self._context.mission_id, fingerprint=fingerprint
        )
        if cached is None:
            return None
        await sync_to_async(services.llm_call_record_cache_hit)(
            mission_id=self._context.mission_id,
            profile=self._profile,
            purpose=self._context.purpose,
            fingerprint=fingerprint,
            cycle_id=self._context.cycle_id,
            step_id=self._context.step_id,
            agent_id=self._context.agent_id,
        )
        return CreateResult.model_validate({**cached, "cached": True})

    async def _fail(self, call, exc: BaseException, started: float) -> BaseException:
        """Close the ledger row and release the reservation; returns the error the caller raises."""
        error = _redact(f"{type(exc).__name__}: {exc}", self._profile.api_key())
        await sync_to_async(services.llm_call_fail)(call=call, error=error, latency_ms=_elapsed_ms(started))
        return _as_run_error(exc, self._profile.api_key())

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
        fingerprint = request_fingerprint(
            self._context, self._profile.resolved_model_name(), messages, tools, json_output, extra_create_args
        )
        replayed = await self._replay(fingerprint)
        if replayed is not None:
            return replayed
        call = await self._reserve(messages, tools, fingerprint)
        started = time.monotonic()
        try:
            result = await self._inner.create(
                messages,
                tools=tools,
                tool_choice=tool_choice,
                json_output=json_output,
                extra_create_args=extra_create_args,
                cancellation_token=cancellation_token,
            )
        except BaseException as exc:
            raise await self._fail(call, exc, started) from exc
        await self._settle(call, result.usage, started, response=result.model_dump(mode="json"))
        return result

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        call = await self._reserve(messages, tools)
        started = time.monotonic()
        # Providers report usage in the last chunk only when asked.
        args = {"stream_options": {"include_usage": True}, **extra_create_args}
        try:
            async for chunk in self._inner.create_stream(
                messages,
                tools=tools,
                tool_choice=tool_choice,
                json_output=json_output,
                extra_create_args=args,
                cancellation_token=cancellation_token,
            ):
                if isinstance(chunk, CreateResult):
                    await self._settle(call, chunk.usage, started)
                yield chunk
        except BaseException as exc:
            raise await self._fail(call, exc, started) from exc

    async def close(self) -> None:
        await self._inner.close()

    def actual_usage(self) -> RequestUsage:
        return self._inner.actual_usage()

    def total_usage(self) -> RequestUsage:
        return self._inner.total_usage()

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return prompt_token_bound(messages, tools)

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return self._profile.context_window - prompt_token_bound(messages, tools)

    @property
    def capabilities(self):  # deprecated in AutoGen, still abstract
        return self._inner.model_info

    @property
    def model_info(self) -> ModelInfo:
        return self._inner.model_info


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _redact(text: str, secret: str) -> str:
    """Providers sometimes echo the key they were sent; it must not reach a page or the ledger."""
    if len(secret) >= 4 and secret != NO_KEY:
        text = text.replace(secret, "***")
    return text


def _as_run_error(exc: BaseException, secret: str = "") -> BaseException:
    """Turn client errors into one clear message for the mission page; keep our own errors as they are."""
    if isinstance(exc, AgentRunError) or not isinstance(exc, Exception):
        return exc  # our own errors, and cancellation, pass through unchanged
    text = _redact(str(exc).strip(), secret) or type(exc).__name__
    return ModelUnavailable(f"The model call failed ({type(exc).__name__}): {text[:500]}")
