"""Build AutoGen model clients from ModelProfile rows."""

import asyncio
import contextlib
import os
import ssl
import threading
from collections.abc import AsyncGenerator

from autogen_core.models import ChatCompletionClient, ModelInfo
from autogen_ext.models.openai import AzureOpenAIChatCompletionClient, OpenAIChatCompletionClient
from django.conf import settings
from openai import NOT_GIVEN, DefaultAsyncHttpxClient
from openai.types.chat import ChatCompletionChunk

from agents.errors import ModelUnavailable
from agents.models import ModelProfile, api_key_env_allowed
from agents.runtime.metering import OUTPUT_METER


class _MeteredStreams:
    """Reads every streamed answer through the current call's OutputMeter and hangs up once it says stop.

    AutoGen assembles tool calls inside ``create_stream`` and yields only text, so the chunks are metered
    where it reads them: its two chunk readers (plain and structured output), overridden here (autogen-ext
    0.7.x; the wrapper's tests fail if a release renames them). Closing the response stops the download,
    so a server that ignores max_tokens cannot push the answer (or its bill) past the reservation.
    """

    async def _create_stream_chunks(
        self, tool_params, oai_messages, create_args, cancellation_token
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        meter = OUTPUT_METER.get()
        future = asyncio.ensure_future(
            self._client.chat.completions.create(
                messages=oai_messages,
                stream=True,
                tools=tool_params if len(tool_params) > 0 else NOT_GIVEN,
                **create_args,
            )
        )
        if cancellation_token is not None:
            cancellation_token.link_future(future)
        stream = await future
        try:
            while True:
                chunk_future = asyncio.ensure_future(anext(stream))
                if cancellation_token is not None:
                    cancellation_token.link_future(chunk_future)
                try:
                    chunk = await chunk_future
                except StopAsyncIteration:
                    break
                stop = meter is not None and meter.feed(chunk)
                yield chunk
                if stop:
                    break
        finally:
            await stream.close()

    async def _create_stream_chunks_beta_client(self, *args, **kwargs) -> AsyncGenerator[ChatCompletionChunk, None]:
        meter = OUTPUT_METER.get()
        chunks = super()._create_stream_chunks_beta_client(*args, **kwargs)
        try:
            async for chunk in chunks:
                stop = meter is not None and meter.feed(chunk)
                yield chunk
                if stop:
                    break
        finally:
            await chunks.aclose()  # leaves the beta stream's context, which closes the response


class MeteredOpenAIClient(_MeteredStreams, OpenAIChatCompletionClient):
    """OpenAIChatCompletionClient whose streams the metering wrapper can bound."""


class MeteredAzureOpenAIClient(_MeteredStreams, AzureOpenAIChatCompletionClient):
    """AzureOpenAIChatCompletionClient whose streams the metering wrapper can bound."""


# One SSL context per worker process and model server, built on first use. ``ssl.create_default_context``
# (loading the CA store) was ~20 ms of every client built; the httpx client on top of it stays per call, so
# it is never shared between event loops (a Celery task runs its own loop) and closing a client cannot close
# another's. Keyed by the process too and cleared in a forked child: a prefork child builds its own.
_SSL_CONTEXTS: dict[tuple, ssl.SSLContext] = {}
_SSL_LOCK = threading.Lock()
SSL_CONTEXTS_BUILT = 0  # how many this process built (tests and the benchmark read it)


def _forget_ssl_contexts() -> None:
    global _SSL_LOCK
    _SSL_CONTEXTS.clear()
    _SSL_LOCK = threading.Lock()  # a lock held by another thread at fork time would never be released here


os.register_at_fork(after_in_child=_forget_ssl_contexts)


def ssl_context_for(base_url: str) -> ssl.SSLContext:
    """The process's SSL context for a model server, built as httpx builds its default one.

    The key is the server and what the default context is read from (``SSL_CERT_FILE`` / ``SSL_CERT_DIR``),
    never a key or other secret: a changed base URL or CA setting gets a new context.
    """
    global SSL_CONTEXTS_BUILT
    key = (os.getpid(), base_url, os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", ""))
    context = _SSL_CONTEXTS.get(key)
    if context is None:
        with _SSL_LOCK:
            context = _SSL_CONTEXTS.get(key)
            if context is None:
                context = httpx_ssl_context()
                _SSL_CONTEXTS[key] = context
                SSL_CONTEXTS_BUILT += 1
    return context


def httpx_ssl_context() -> ssl.SSLContext:
    """A new default SSL context, exactly as the SDK's httpx client would build it (``verify=True``)."""
    from openai import _base_client

    httpx = getattr(_base_client, "httpx2", None) or _base_client.httpx  # the SDK's own (httpx2 since 3.x)
    return httpx.create_ssl_context(verify=True, trust_env=True)


class _CallHttpClient(DefaultAsyncHttpxClient):
    """The SDK's default async httpx client (its limits, redirects, timeout), closed when dropped unclosed."""

    def __del__(self) -> None:
        if self.is_closed:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: the connections go with the object
            asyncio.get_running_loop().create_task(self.aclose())


def http_client_for(base_url: str) -> DefaultAsyncHttpxClient:
    """A new httpx client for one model client, on the process's shared SSL context for ``base_url``."""
    return _CallHttpClient(verify=ssl_context_for(base_url), base_url=base_url, timeout=settings.LLM_TIMEOUT_S)


def model_info_for(profile: ModelProfile) -> ModelInfo:
    return ModelInfo(
        vision=False,
        function_calling=profile.supports_tools,
        json_output=True,
        structured_output=profile.supports_json_schema,
        family="unknown",
    )


def model_client_for(profile: ModelProfile, *, parallel_tool_calls: bool | None = None) -> ChatCompletionClient:
    """An OpenAI-compatible (or Azure) client for the profile; the key comes from the environment.

    ``parallel_tool_calls=False`` asks the server for at most one tool call per answer (sent only when given).
    """
    base_url = profile.resolved_base_url()
    if not base_url:
        raise ModelUnavailable(
            "No model server is configured: set LLM_BASE_URL (or the profile's base URL), "
            "or start the bundled simulated server with `make run`."
        )
    if not api_key_env_allowed(profile.api_key_env):
        # Checked again here: a row written past the admin (a shell, a fixture) must not send that variable either.
        raise ModelUnavailable(
            f"Model profile {profile.name} names {profile.api_key_env} as its key variable, which "
            "LLM_KEY_ENV_ALLOWED does not allow; the variable was not read. Change the profile or the setting."
        )
    common = {
        "model_info": model_info_for(profile),
        "api_key": profile.api_key(),
        "max_tokens": profile.max_output_tokens,
        "timeout": settings.LLM_TIMEOUT_S,
        "max_retries": 0,  # the metering wrapper retries, each request under its own reservation
        "temperature": 0,
        "http_client": http_client_for(base_url),
    }
    if parallel_tool_calls is not None:
        common["parallel_tool_calls"] = parallel_tool_calls
    if profile.provider == ModelProfile.Provider.AZURE_OPENAI:
        return MeteredAzureOpenAIClient(
            model=profile.resolved_model_name(),
            azure_endpoint=base_url,
            azure_deployment=profile.resolved_model_name(),
            api_version=os.environ.get("AZURE_OPENAI_API_VERSION", "2024-10-21"),
            **common,
        )
    return MeteredOpenAIClient(model=profile.resolved_model_name(), base_url=base_url, **common)
