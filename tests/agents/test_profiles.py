"""Model profiles: keys only from the allowed environment variables, never read otherwise, and never echoed."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from agents.errors import ModelUnavailable
from agents.models import ModelProfile
from agents.runtime.clients import model_client_for
from agents.runtime.metering import _as_run_error

REFUSED = [
    "AWS_SECRET_ACCESS_KEY",
    "GITHUB_TOKEN",
    "HF_TOKEN",
    "AZURE_OPENAI_KEY",
    "SECRET_KEY",
    "DJANGO_SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "llm_api_key",
    "PATH",
    "",
]


@pytest.mark.parametrize("name", ["LLM_API_KEY", "OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "GROQ_LLM_API_KEY"])
def test_it_accepts_the_default_key_variables(db, name):
    """By default: LLM_API_KEY, OPENAI_API_KEY, AZURE_OPENAI_API_KEY and any name ending in _LLM_API_KEY."""
    ModelProfile(name="p", api_key_env=name).full_clean()


@pytest.mark.parametrize("name", REFUSED)
def test_it_refuses_other_variables_as_keys(db, name, monkeypatch):
    """A profile cannot be pointed at a cloud, git or Django secret to send it to its endpoint."""
    profile = ModelProfile(name="p", api_key_env=name)
    with pytest.raises(ValidationError) as caught:
        profile.full_clean()
    assert "api_key_env" in caught.value.message_dict
    if name:
        assert f"{name} is not an allowed key variable" in caught.value.message_dict["api_key_env"][0]
        monkeypatch.setenv(name, "super-secret-value")
    assert profile.api_key() == ModelProfile.NO_KEY  # even if saved past the validator


def test_it_follows_the_allow_list_setting(db, settings):
    """LLM_KEY_ENV_ALLOWED decides: a listed name is accepted, the defaults are then refused."""
    settings.LLM_KEY_ENV_ALLOWED = ["HF_TOKEN", "MY_*_KEY"]
    ModelProfile(name="p", api_key_env="HF_TOKEN").full_clean()
    ModelProfile(name="q", api_key_env="MY_VLLM_KEY").full_clean()
    with pytest.raises(ValidationError):
        ModelProfile(name="r", api_key_env="OPENAI_API_KEY").full_clean()


def test_it_refuses_a_disallowed_key_variable_in_the_admin(admin_client):
    """The admin form shows the error on the field and saves nothing."""
    form = {
        "name": "leaky",
        "provider": "openai_compatible",
        "base_url": "https://collector.example/v1",
        "model_name": "m",
        "api_key_env": "AWS_SECRET_ACCESS_KEY",
        "price_input_per_mtok": "0.1",
        "price_cached_input_per_mtok": "0.1",
        "price_output_per_mtok": "0.1",
        "context_window": "1000",
        "max_output_tokens": "100",
    }
    response = admin_client.post(reverse("admin:agents_modelprofile_add"), form)
    assert response.status_code == 200
    assert (
        "AWS_SECRET_ACCESS_KEY is not an allowed key variable"
        in response.context["adminform"].form.errors["api_key_env"][0]
    )
    assert not ModelProfile.objects.filter(name="leaky").exists()
    response = admin_client.post(reverse("admin:agents_modelprofile_add"), {**form, "api_key_env": "OPENAI_API_KEY"})
    assert response.status_code == 302
    assert ModelProfile.objects.filter(name="leaky").exists()


def test_it_refuses_a_disallowed_key_variable_at_call_time(db, monkeypatch):
    """A row saved past the validator gets no client: a clear error naming the setting, and no key is sent."""
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_the-real-token")
    profile = ModelProfile.objects.create(name="p", base_url="https://collector.example/v1")
    ModelProfile.objects.filter(pk=profile.pk).update(api_key_env="GITHUB_TOKEN")
    profile.refresh_from_db()
    with pytest.raises(ModelUnavailable) as caught:
        model_client_for(profile)
    message = str(caught.value)
    assert "names GITHUB_TOKEN as its key variable" in message and "LLM_KEY_ENV_ALLOWED" in message
    assert "ghp_the-real-token" not in message


def test_it_builds_a_client_with_an_allowed_key(db, monkeypatch):
    """An allowed variable is read at call time and handed to the client."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-allowed")
    profile = ModelProfile.objects.create(name="p", base_url="https://api.example/v1", api_key_env="OPENAI_API_KEY")
    assert profile.api_key() == "sk-allowed"
    assert model_client_for(profile) is not None


def test_it_redacts_the_key_from_provider_errors():
    error = _as_run_error(RuntimeError("Incorrect API key provided: sk-abcdef123456"), "sk-abcdef123456")
    assert "sk-abcdef123456" not in str(error) and "***" in str(error)
