"""Model profiles: keys only from key-like environment variables, and never echoed."""

import pytest
from django.core.exceptions import ValidationError

from agents.models import ModelProfile
from agents.runtime.metering import _as_run_error


@pytest.mark.parametrize("name", ["LLM_API_KEY", "OPENAI_API_KEY", "AZURE_OPENAI_KEY", "HF_TOKEN"])
def test_it_accepts_key_like_variable_names(db, name):
    ModelProfile(name="p", api_key_env=name).full_clean()


@pytest.mark.parametrize(
    "name", ["SECRET_KEY", "DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "llm_api_key", "PATH"]
)
def test_it_refuses_other_variables_as_keys(db, name, monkeypatch):
    """A profile cannot be pointed at SECRET_KEY or DATABASE_URL to send them to its endpoint."""
    profile = ModelProfile(name="p", api_key_env=name)
    with pytest.raises(ValidationError, match="_API_KEY, _KEY or _TOKEN"):
        profile.full_clean()
    monkeypatch.setenv(name, "super-secret-value")
    assert profile.api_key() == ModelProfile.NO_KEY  # even if saved past the validator


def test_it_redacts_the_key_from_provider_errors():
    error = _as_run_error(RuntimeError("Incorrect API key provided: sk-abcdef123456"), "sk-abcdef123456")
    assert "sk-abcdef123456" not in str(error) and "***" in str(error)
