"""Build AutoGen model clients from ModelProfile rows."""

import asyncio
import os
from collections.abc import AsyncGenerator

from autogen_core.models import ChatCompletionClient, ModelInfo
from autogen_ext.models.openai import AzureOpenAIChatCompletionClient, OpenAIChatCompletionClient
from django.conf import settings
from openai import NOT_GIVEN
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
