"""Build AutoGen model clients from ModelProfile rows."""

import os

from autogen_core.models import ChatCompletionClient, ModelInfo
from autogen_ext.models.openai import AzureOpenAIChatCompletionClient, OpenAIChatCompletionClient
from django.conf import settings

from agents.errors import ModelUnavailable
from agents.models import ModelProfile, api_key_env_allowed


def model_info_for(profile: ModelProfile) -> ModelInfo:
    return ModelInfo(
        vision=False,
        function_calling=profile.supports_tools,
        json_output=True,
        structured_output=profile.supports_json_schema,
        family="unknown",
    )


def model_client_for(profile: ModelProfile) -> ChatCompletionClient:
    """An OpenAI-compatible (or Azure) client for the profile; the key comes from the environment."""
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
        "max_retries": settings.LLM_MAX_RETRIES,
        "temperature": 0,
    }
    if profile.provider == ModelProfile.Provider.AZURE_OPENAI:
        return AzureOpenAIChatCompletionClient(
            model=profile.resolved_model_name(),
            azure_endpoint=base_url,
            azure_deployment=profile.resolved_model_name(),
            api_version=os.environ.get("AZURE_OPENAI_API_VERSION", "2024-10-21"),
            **common,
        )
    return OpenAIChatCompletionClient(model=profile.resolved_model_name(), base_url=base_url, **common)
