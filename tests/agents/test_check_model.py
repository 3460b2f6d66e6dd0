"""Check model: probe a profile's endpoint with tiny requests and store what it accepts (CLI and admin)."""

import json
import time

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from agents.models import LLMCall, ModelProfile
from agents.runtime.probe import CAPABILITIES
from agents.seed import seed_model_profile
from agents.sim.server import LLAMA_CPP_CAPABILITIES
from tests.live import free_port

LLAMA_JSON_SCHEMA_REFUSAL = 'response_format type must be one of "text" or "json_object", but got: json_schema'


@pytest.fixture
def profile(db, sim):
    return seed_model_profile()


def _check(name: str, *flags: str) -> list[str]:
    from io import StringIO

    out = StringIO()
    call_command("check_model", name, *flags, stdout=out)
    return out.getvalue().splitlines()


def test_it_finds_every_capability_on_the_simulator_and_stores_it(profile, sim):
    """Against the bundled sim every probe passes; the result and its time are on the profile; nothing is billed."""
    lines = _check("default")
    rows = {line.split()[0]: line.split()[1] for line in lines[1:-1]}
    assert rows == dict.fromkeys(CAPABILITIES, "ok")
    profile.refresh_from_db()
    assert profile.probed_at is not None
    assert all(found["ok"] for found in profile.probe_result["capabilities"].values())
    assert (profile.supports_json_schema, profile.supports_json_mode, profile.supports_tools) == (True, True, True)
    assert lines[-1] == "Structured answers will use: json_schema."
    sent = sim.calls()
    assert len(sent) == 6 and {c["status"] for c in sent} == {200}  # usage is read off the plain answer
    assert not LLMCall.objects.exists()


def test_it_records_what_a_llama_cpp_like_server_refuses(profile, sim):
    """JSON schema and stream usage are refused (with the server's reason); the profile falls back to JSON mode."""
    sim.set_capabilities(**LLAMA_CPP_CAPABILITIES)
    result = json.loads("\n".join(_check("default", "--json")))
    found = result["capabilities"]
    assert result["profile"] == "default"
    assert {name for name, f in found.items() if not f["ok"]} == {"json_schema", "stream_usage"}
    assert found["json_schema"]["detail"] == f"HTTP 400: {LLAMA_JSON_SCHEMA_REFUSAL}"
    assert found["stream_usage"]["detail"] == "the stream ended without a usage chunk"
    profile.refresh_from_db()
    assert (profile.supports_json_schema, profile.supports_json_mode, profile.supports_tools) == (False, True, True)
    assert profile.structured_mode == "json_mode"
    assert profile.probe_result["capabilities"] == found


def test_it_prints_one_line_per_capability_with_the_reason(profile, sim):
    sim.set_capabilities(tools=False, json_object=False)
    lines = _check("default")
    assert lines[0].startswith("default: ")
    by_name = {line.split()[0]: line for line in lines[1:-1]}
    assert list(by_name) == list(CAPABILITIES)
    assert by_name["tools"].split()[1] == "refused" and "tools param requires --jinja flag" in by_name["tools"]
    assert by_name["json_mode"].split()[1] == "refused" and "HTTP 400" in by_name["json_mode"]
    assert by_name["plain"].split()[1] == "ok"
    profile.refresh_from_db()
    assert (profile.supports_json_schema, profile.supports_json_mode, profile.supports_tools) == (True, False, False)


def test_it_exits_non_zero_when_plain_completion_fails_and_keeps_the_flags(db):
    """An unreachable server fails the command; it says nothing about capabilities, so the flags stay."""
    ModelProfile.objects.create(name="offline", base_url=f"http://127.0.0.1:{free_port()}/v1", model_name="m")
    with pytest.raises(CommandError, match="Plain completion failed: failed: APIConnectionError"):
        _check("offline")
    profile = ModelProfile.objects.get(name="offline")
    assert profile.probe_result["capabilities"]["plain"]["ok"] is False
    assert profile.probe_result["capabilities"]["tools"]["detail"] == "not checked: plain completion failed"
    assert (profile.supports_json_schema, profile.supports_json_mode, profile.supports_tools) == (True, True, True)


def test_it_names_the_profiles_when_the_name_is_unknown(profile):
    with pytest.raises(CommandError, match=r"No model profile named 'nope' \(profiles: default\)"):
        _check("nope")


def test_it_checks_a_model_from_the_admin_and_shows_the_result(admin_client, profile, sim):
    """The admin action probes the selected profiles, says what was refused, and the change page shows the table."""
    sim.set_capabilities(json_schema=False)
    response = admin_client.post(
        reverse("admin:agents_modelprofile_changelist"),
        {"action": "check_model", "_selected_action": [profile.pk]},
        follow=True,
    )
    text = response.content.decode()
    assert "Default: works, but refused json_schema: HTTP 400" in text  # the admin capitalises it
    assert "Structured answers use json_mode." in text
    profile.refresh_from_db()
    assert profile.supports_json_schema is False and profile.probed_at is not None
    page = admin_client.get(reverse("admin:agents_modelprofile_change", args=[profile.pk])).content.decode()
    assert "Last model check" in page
    assert "<th>JSON schema (response_format json_schema)</th><td>refused</td>" in page


def test_it_gives_up_on_a_silent_server_after_the_check_timeout(profile, sim, settings):
    """A server that never answers costs one MODEL_CHECK_TIMEOUT_S, not a model call's timeout per probe."""
    settings.MODEL_CHECK_TIMEOUT_S = 1
    sim.add_faults({"kind": "timeout", "seconds": 10})
    started = time.monotonic()
    with pytest.raises(CommandError, match="Plain completion failed: failed: APITimeoutError"):
        _check("default")
    assert time.monotonic() - started < 5
    assert len(sim.calls()) == 1  # nothing else is tried once plain completion failed
