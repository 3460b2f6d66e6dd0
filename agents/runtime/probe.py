"""Check what a model endpoint accepts, with a handful of tiny requests.

Each probe is one short chat completion (``max_tokens`` capped at
PROBE_MAX_TOKENS) made with the openai client directly: a check belongs to
no mission, so nothing is reserved or billed. A capability is "ok" when the
server accepts the request and answers; the detail says what came back.
"""

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import openai
from django.conf import settings
from django.utils import timezone

from agents.models import ModelProfile

PROBE_MAX_TOKENS = 24
CAPABILITIES = {
    "plain": "plain completion",
    "json_schema": "JSON schema (response_format json_schema)",
    "json_mode": "JSON mode (response_format json_object)",
    "tools": "tools (a function call)",
    "streaming": "streaming",
    "usage": "usage reported",
    "stream_usage": "usage reported in streams (stream_options include_usage)",
}
PROBE_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}
PING_TOOL = {
    "type": "function",
    "function": {
        "name": "ping",
        "description": "Answer a ping.",
        "parameters": {"type": "object", "properties": {}, "required": []},
    },
}
JSON_PROMPT = 'Answer with only this JSON object: {"ok": true}'


@dataclass(frozen=True)
class Finding:
    ok: bool
    detail: str


def probe_endpoint(profile: ModelProfile) -> dict:
    """Probe the profile's endpoint; returns ``{"checked_at", "model", "base_url", "capabilities": {name: finding}}``.

    When plain completion fails nothing else is tried: the other answers
    would only repeat that the server cannot be used.
    """
    base_url = profile.resolved_base_url()
    model = profile.resolved_model_name()
    found: dict[str, Finding] = {}
    if not base_url:
        found["plain"] = Finding(False, "no base URL: set LLM_BASE_URL or the profile's base URL")
    else:
        client = _client(profile, base_url)
        try:
            _probe_all(client, model, found, secret=profile.api_key())
        finally:
            client.close()
    for name in CAPABILITIES:
        found.setdefault(name, Finding(False, "not checked: plain completion failed"))
    return {
        "checked_at": timezone.now().isoformat(),
        "model": model,
        "base_url": base_url,
        "capabilities": {name: asdict(found[name]) for name in CAPABILITIES},
    }


def _client(profile: ModelProfile, base_url: str) -> openai.OpenAI:
    common = {"api_key": profile.api_key(), "timeout": settings.MODEL_CHECK_TIMEOUT_S, "max_retries": 0}
    if profile.provider == ModelProfile.Provider.AZURE_OPENAI:
        return openai.AzureOpenAI(
            azure_endpoint=base_url,
            azure_deployment=profile.resolved_model_name(),
            api_version=os.environ.get("AZURE_OPENAI_API_VERSION", "2024-10-21"),
            **common,
        )
    return openai.OpenAI(base_url=base_url, **common)


def _probe_all(client: openai.OpenAI, model: str, found: dict[str, Finding], *, secret: str) -> None:
    def ask(**kwargs):
        messages = kwargs.pop("messages", [{"role": "user", "content": "Reply with the word ok."}])
        return client.chat.completions.create(
            model=model, messages=messages, max_tokens=PROBE_MAX_TOKENS, temperature=0, **kwargs
        )

    plain = _attempt(found, "plain", lambda: ask(), secret)
    if plain is None:
        return
    found["plain"] = Finding(True, f"answered {_excerpt(plain.choices[0].message.content if plain.choices else '')}")
    usage = plain.usage
    if usage is not None and usage.prompt_tokens > 0:
        found["usage"] = Finding(True, f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens")
    else:
        found["usage"] = Finding(False, "the answer carried no token usage: costs are estimated from the reservation")

    json_messages = [{"role": "user", "content": JSON_PROMPT}]
    schema_format = {"type": "json_schema", "json_schema": {"name": "Probe", "schema": PROBE_SCHEMA, "strict": True}}
    answer = _attempt(found, "json_schema", lambda: ask(messages=json_messages, response_format=schema_format), secret)
    if answer is not None:
        found["json_schema"] = Finding(True, _json_detail(answer))
    answer = _attempt(
        found, "json_mode", lambda: ask(messages=json_messages, response_format={"type": "json_object"}), secret
    )
    if answer is not None:
        found["json_mode"] = Finding(True, _json_detail(answer))

    tool_messages = [{"role": "user", "content": "Call the ping tool."}]
    answer = _attempt(found, "tools", lambda: ask(messages=tool_messages, tools=[PING_TOOL]), secret)
    if answer is not None:
        calls = (answer.choices[0].message.tool_calls or []) if answer.choices else []
        names = ", ".join(c.function.name for c in calls)
        found["tools"] = Finding(True, f"called {names}" if calls else "accepted; the model answered in text")

    chunks = _attempt(found, "streaming", lambda: list(ask(stream=True)), secret)
    if chunks is not None:
        text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
        found["streaming"] = Finding(bool(chunks), f"{len(chunks)} chunks, {_excerpt(text)}")
    chunks = _attempt(
        found, "stream_usage", lambda: list(ask(stream=True, stream_options={"include_usage": True})), secret
    )
    if chunks is not None:
        usage = next((c.usage for c in reversed(chunks) if c.usage is not None), None)
        if usage is not None:
            found["stream_usage"] = Finding(True, f"{usage.prompt_tokens} prompt + {usage.completion_tokens} tokens")
        else:
            found["stream_usage"] = Finding(False, "the stream ended without a usage chunk")


def _attempt(found: dict[str, Finding], name: str, call: Callable, secret: str):
    """The call's answer, or None with the refusal recorded under ``name``."""
    try:
        return call()
    except openai.APIStatusError as error:
        found[name] = Finding(False, _redact(f"HTTP {error.status_code}: {_error_message(error)}", secret))
    except (openai.APIError, ValueError) as error:  # connection refused, timeout, a body that is not JSON
        found[name] = Finding(False, _redact(f"failed: {type(error).__name__}: {error}", secret))
    return None


def _error_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)[:300]
    return str(error.message)[:300]


def _json_detail(answer) -> str:
    content = (answer.choices[0].message.content or "") if answer.choices else ""
    try:
        json.loads(content)
    except ValueError:
        return f"accepted, but the answer was not JSON: {_excerpt(content)}"
    return "accepted; the answer is JSON"


def _excerpt(text: str | None) -> str:
    text = " ".join((text or "").split())
    return repr(text[:40] + ("…" if len(text) > 40 else ""))


def _redact(text: str, secret: str) -> str:
    if len(secret) >= 4 and secret != ModelProfile.NO_KEY:
        text = text.replace(secret, "***")
    return text
