"""The one wrapper every model call passes through: reserve, call, settle.

Before a call it reserves an upper bound of its cost against the mission's
budget; afterwards it writes the real usage into the ledger and releases the
reservation. The reservation is a hard bound: the call sends its output bound
as ``max_tokens``, the answer is read as a stream and reading stops once the
server has sent more than that (``OutputMeter``), and the ledger never bills
more than the reservation, whatever usage the server reports.

Token counts are bounded without tiktoken (which downloads its encodings at
run time): a byte-level BPE token covers at least one byte, so UTF-8 size is an
upper bound (used for the prompt, and for an answer with no usage report); and
every token is at least one streamed chunk's worth or one pre-token piece
(``_PIECE``), a lower bound that says when a server has run past max_tokens.
That bound counts a 20 000-letter chunk as one token, so the answer's size is
bounded too: no honest answer averages more than MAX_BYTES_PER_TOKEN bytes.
"""

import asyncio
import contextvars
import hashlib
import json
import re
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import openai
from asgiref.sync import sync_to_async
from autogen_core import CancellationToken, FunctionCall
from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage, ModelInfo, RequestUsage
from autogen_core.tools import Tool, ToolSchema
from django.conf import settings
from openai import LengthFinishReasonError
from openai.types.chat import ChatCompletionChunk
from pydantic import BaseModel

from agents import services
from agents.errors import AgentRunError, ModelOutputError, ModelUnavailable
from agents.models import ModelProfile
from missions.streams import ModelStream, StreamTarget
from telemetry.tracing import span

PER_MESSAGE_OVERHEAD = 8
# What an honest answer of max_tokens tokens can weigh, per token, on average. Prose and code are 3-5 bytes a
# token, base64 and random letters 1-3, CJK 3-9 (a 3-byte character, up to three merged into a token); only long
# whitespace or repeated-symbol tokens go higher, and never for a whole answer. 32 leaves room for all of them,
# and still cuts a runaway server at a few kilobytes per hundred tokens reserved instead of megabytes.
MAX_BYTES_PER_TOKEN = 32
NO_KEY = ModelProfile.NO_KEY
LLM_RETRY_BASE_S = 0.5  # the first retry without a Retry-After waits this long, each next one twice as long


@dataclass(frozen=True)
class CallContext:
    """What a model call is for: every ledger row is attributable to these."""

    mission_id: int
    purpose: str
    cycle_id: int | None = None
    step_id: int | None = None
    agent_id: int | None = None
    # A lower output bound than the profile's, for a call whose answer is known to be short (a cheaper reservation).
    max_output_tokens: int | None = None
    # Where the answer's text streams while it is written (live mission pages); None: nowhere.
    stream: StreamTarget | None = None


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


# A coarsening of the pre-tokenizers of GPT-style BPE tokenizers (tiktoken's cl100k/o200k, Llama 3, Qwen): a word
# with one leading non-letter and a contraction, up to three digits, a run of symbols, a run of spaces. BPE never
# merges across pre-tokens, so every piece here is at least one token.
_PIECE = re.compile(r"(?:[^\r\n\w]|_)?[^\W\d_]+(?:'[a-z]{1,2})?|\d{1,3}| ?(?:[^\s\w]|_)+[\r\n]*|\s+", re.IGNORECASE)

# The meter of the call being made; the bounded clients (agents.runtime.clients) read it when a stream starts.
OUTPUT_METER: contextvars.ContextVar["OutputMeter | None"] = contextvars.ContextVar("output_meter", default=None)


@dataclass
class OutputMeter:
    """Counts what a streamed answer delivers and says when the server has sent more than ``limit`` tokens.

    ``tokens_at_least`` is a lower bound (a chunk that carries output carries at least one token, and so does
    every pre-token piece), so an honest server that stops at max_tokens is never cut off; the margin past the
    limit allows for tokenizers the pieces fit less well (billing stays capped at the limit all the same).
    A few huge chunks of one long "word" each keep that count low, so more than MAX_BYTES_PER_TOKEN bytes per
    allowed token also cuts the answer off. ``output_bytes`` is an upper bound, billed when the server reports
    no usage.
    """

    limit: int
    chunks: int = 0
    pieces: int = 0
    output_bytes: int = 0
    usage: Any = None  # the stream's usage chunk (openai CompletionUsage), if one came
    cut_off: bool = False
    fed: bool = False
    _tail: str = ""

    @property
    def tokens_at_least(self) -> int:
        return max(self.chunks, self.pieces + (1 if self._tail else 0))

    def feed(self, chunk: ChatCompletionChunk) -> bool:
        """Count one chunk; True when the answer has run past the limit and reading must stop."""
        self.fed = True
        if chunk.usage is not None:
            self.usage = chunk.usage
        text = "".join(_delta_texts(chunk))
        if text:
            self.chunks += 1
            self.output_bytes += len(text.encode())
            # The last piece may continue in the next chunk: count it once it is complete.
            pieces = _PIECE.findall(self._tail + text)
            self.pieces += max(len(pieces) - 1, 0)
            self._tail = pieces[-1] if pieces else ""
        allowed = self.limit + self.limit // 8 + 8
        if self.tokens_at_least > allowed or self.output_bytes > allowed * MAX_BYTES_PER_TOKEN:
            self.cut_off = True
        return self.cut_off


def _delta_texts(chunk: ChatCompletionChunk):
    for choice in chunk.choices:
        delta = choice.delta
        yield delta.content or ""
        reasoning = (delta.model_extra or {}).get("reasoning_content")
        if isinstance(reasoning, str):
            yield reasoning
        for call in delta.tool_calls or ():
            if call.function is not None:
                yield (call.function.name or "") + (call.function.arguments or "")


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
            max_output_tokens=min(self._profile.max_output_tokens, self._context.max_output_tokens or 1 << 31),
            cycle_id=self._context.cycle_id,
            step_id=self._context.step_id,
            agent_id=self._context.agent_id,
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
        """The whole answer at once; it is still read as a stream, so the reservation bounds it."""
        result = None
        async for item in self._metered(
            messages, tools, tool_choice, json_output, extra_create_args, cancellation_token
        ):
            if isinstance(item, CreateResult):
                result = item
        assert result is not None  # _metered always ends with a CreateResult or raises
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
        async for item in self._metered(
            messages, tools, tool_choice, json_output, extra_create_args, cancellation_token
        ):
            yield item

    async def _metered(self, messages, tools, tool_choice, json_output, extra_create_args, cancellation_token):
        """Replay or reserve, stream the answer within the reservation, settle; yields text, then the CreateResult.

        1. An identical request this mission already paid for is answered from the ledger.
        2. Reserve the upper bound; BudgetExceeded (the mission pauses) before anything is sent.
        3. Retry a request the server refused before answering (connection refused, 408, 409, 429, 5xx) up to
           LLM_MAX_RETRIES times, honouring Retry-After, each under a new reservation and ledger row: the client
           itself never retries, so one reservation always covers one request. A timed-out request is not
           retried here (the server may have run, and billed, it); the step's own retry starts afresh.
        4. Send the reservation's output bound as max_tokens and ask for a usage chunk; read the answer through an
           OutputMeter, which stops reading once the server has sent more than max_tokens.
        5. Settle: the ledger bills the reported usage capped by the reservation (``llm_call_settle``). A cut-off
           answer that cannot be used (a tool call or JSON cut mid-way) is billed and raised as ModelOutputError;
           so is the part of an answer that arrived before the call failed (the server bills it too).
        """
        fingerprint = request_fingerprint(
            self._context, self._profile.resolved_model_name(), messages, tools, json_output, extra_create_args
        )
        replayed = await self._replay(fingerprint)
        if replayed is not None:
            yield replayed
            return
        deadline = asyncio.get_running_loop().time() + settings.LLM_CALL_DEADLINE_S
        # Not the current span: an async generator may resume in another context (telemetry.tracing.span).
        model = self._profile.resolved_model_name()
        with span("llm.call", current=False, llm_model=model, llm_purpose=self._context.purpose):
            for attempt in range(1, settings.LLM_MAX_RETRIES + 2):
                try:
                    async for item in self._attempt(
                        messages,
                        tools,
                        tool_choice,
                        json_output,
                        extra_create_args,
                        cancellation_token,
                        fingerprint=fingerprint,
                        deadline=deadline,
                        attempt=attempt,
                    ):
                        yield item
                    return
                except _RetryLater as later:
                    await asyncio.sleep(later.wait_s)

    async def _attempt(
        self,
        messages,
        tools,
        tool_choice,
        json_output,
        extra_create_args,
        cancellation_token,
        *,
        fingerprint: str,
        deadline: float,
        attempt: int,
    ):
        """One request under its own reservation and ledger row; raises _RetryLater when another may follow."""
        call = await self._reserve(messages, tools, fingerprint)
        meter = OutputMeter(limit=call.max_output_tokens)
        args = {**extra_create_args, "stream_options": {"include_usage": True}}
        args["max_tokens"] = min(args.get("max_tokens") or call.max_output_tokens, call.max_output_tokens)
        if "max_completion_tokens" in args:
            args["max_completion_tokens"] = min(args["max_completion_tokens"], call.max_output_tokens)
        started = time.monotonic()
        structured = bool(json_output) or "response_format" in args
        # Prose goes to the page as it is written; of a JSON answer (a vote) only the field the target names.
        target = self._context.stream
        live = ModelStream(target, call_id=call.pk) if target and (target.field or not structured) else None
        result = stream = None
        try:
            token = OUTPUT_METER.set(meter)
            try:
                stream = self._inner.create_stream(
                    messages,
                    tools=tools,
                    tool_choice=tool_choice,
                    json_output=json_output,
                    extra_create_args=args,
                    cancellation_token=cancellation_token,
                )
                item = await _next(stream, deadline)  # the client takes the meter as its stream starts
            finally:
                OUTPUT_METER.reset(token)
            while item is not None:
                if isinstance(item, CreateResult):
                    result = item
                else:
                    if live is not None:
                        live.feed(item)
                    yield item
                item = await _next(stream, deadline)
            if result is None:
                raise ModelUnavailable("The model call ended without an answer.")
        except LengthFinishReasonError:
            # The structured-output stream refuses an answer the server cut at max_tokens.
            result = CreateResult(finish_reason="length", content="", usage=RequestUsage(0, 0), cached=False)
        except BaseException as exc:
            if meter.output_bytes:  # part of an answer came before the failure: the server made (and bills) it
                await self._settle_partial(call, meter, exc, started)
                raise _as_run_error(exc, self._profile.api_key()) from exc
            error = await self._fail(call, exc, started)
            if attempt <= settings.LLM_MAX_RETRIES and (wait := _retry_wait(exc, attempt, deadline)) is not None:
                raise _RetryLater(wait) from exc
            raise error from exc
        finally:
            if stream is not None:
                await stream.aclose()  # hangs up at once, also after a timeout
            if live is not None:
                await live.close()  # the page drops the streamed text; the stored answer replaces it
        yield await self._settle(call, result, meter, started, structured=structured)

    async def _settle(
        self, call, result: CreateResult, meter: OutputMeter, started: float, *, structured: bool
    ) -> CreateResult:
        """Write the ledger row; returns the answer with the billed usage, or raises for an unusable cut-off one."""
        usage = meter.usage
        if not meter.fed:  # a client that does not meter its stream: fall back on what the result says
            usage = result.usage if (result.usage.prompt_tokens or result.usage.completion_tokens) else None
            meter.output_bytes = len(_output_text(result).encode())
        truncated = meter.cut_off or result.finish_reason == "length"
        unusable = truncated and (isinstance(result.content, list) or structured or not result.content)
        error = _truncation_message(call.max_output_tokens, meter.cut_off) if unusable else ""
        details = getattr(usage, "prompt_tokens_details", None)
        settled = await sync_to_async(services.llm_call_settle)(
            call=call,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            cached_tokens=(getattr(details, "cached_tokens", 0) or 0) if details else 0,
            output_bytes=meter.output_bytes,
            cut_off=meter.cut_off,
            latency_ms=_elapsed_ms(started),
            response=result.model_dump(mode="json"),
            error=error,
        )
        if unusable:
            raise ModelOutputError(error)
        billed = RequestUsage(prompt_tokens=settled.prompt_tokens, completion_tokens=settled.completion_tokens)
        return result.model_copy(
            update={"usage": billed, "finish_reason": "length" if truncated else result.finish_reason}
        )

    async def _settle_partial(self, call, meter: OutputMeter, exc: BaseException, started: float) -> None:
        """Bill a call that failed mid-answer for what arrived (within the reservation), with the error."""
        usage = meter.usage
        await sync_to_async(services.llm_call_settle)(
            call=call,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            output_bytes=meter.output_bytes,
            cut_off=meter.cut_off,
            latency_ms=_elapsed_ms(started),
            error=_redact(f"{type(exc).__name__}: {exc}", self._profile.api_key()) or type(exc).__name__,
        )

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


class _RetryLater(Exception):
    """The attempt failed before the server answered; the next one may start after ``wait_s``."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(wait_s)
        self.wait_s = wait_s


RETRYABLE_STATUSES = frozenset({408, 409, 429})


def _retry_wait(exc: BaseException, attempt: int, deadline: float) -> float | None:
    """Seconds to wait before retrying a failed request, or None when it must not be retried."""
    if isinstance(exc, openai.APITimeoutError) or not isinstance(exc, openai.APIError):
        return None
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code not in RETRYABLE_STATUSES and exc.status_code < 500:
            return None
        wait = _retry_after_s(exc.response.headers.get("retry-after", ""))
    elif isinstance(exc, openai.APIConnectionError):
        wait = None
    else:
        return None
    if wait is None:
        wait = LLM_RETRY_BASE_S * 2 ** (attempt - 1)
    wait = min(wait, settings.LLM_RETRY_MAX_WAIT_S)
    loop = asyncio.get_running_loop()
    return wait if loop.time() + wait < deadline else None


def _retry_after_s(header: str) -> float | None:
    """A Retry-After header given in seconds (an HTTP date or garbage: None)."""
    try:
        value = float(header)
    except ValueError:
        return None
    return value if 0 <= value < 86_400 else None


async def _next(stream: AsyncGenerator, deadline: float):
    """The stream's next item (None at its end); TimeoutError once the call's wall-clock deadline passed."""
    try:
        async with asyncio.timeout_at(deadline):
            return await anext(stream, None)
    except TimeoutError:
        raise TimeoutError(f"no complete answer within LLM_CALL_DEADLINE_S={settings.LLM_CALL_DEADLINE_S}s") from None


def _output_text(result: CreateResult) -> str:
    if isinstance(result.content, list):
        return "".join(c.name + c.arguments for c in result.content if isinstance(c, FunctionCall))
    return (result.content or "") + (result.thought or "")


def _truncation_message(max_tokens: int, cut_off: bool) -> str:
    if cut_off:
        return (
            f"The model server ignored the output limit (max_tokens={max_tokens}) and kept sending; the answer was "
            "cut off at the limit and cannot be used (a tool call or JSON answer cut mid-way). Only what the "
            "limit allows was billed."
        )
    return (
        f"The model's answer reached the output limit (max_tokens={max_tokens}) and was cut off mid-way (a tool "
        "call or JSON answer); raise the model profile's max output tokens."
    )


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
