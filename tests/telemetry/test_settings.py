"""Telemetry settings fail loudly at start-up, naming the variable and what is wrong."""

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings


def _start(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Load the settings in a fresh interpreter, as start-up does."""
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings", **env},
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN must be at least 16 characters (or unset)."),
        (
            {"METRICS_ALLOWED_IPS": "10.0.0.0/8, 10.0.0.300"},
            "METRICS_ALLOWED_IPS must be comma-separated IP addresses or CIDR networks (e.g. 10.0.0.0/8), "
            "got '10.0.0.300'.",
        ),
        (
            {"METRICS_ALLOWED_IPS": "10.0.0.1/8"},
            "METRICS_ALLOWED_IPS must be comma-separated IP addresses or CIDR networks (e.g. 10.0.0.0/8), "
            "got '10.0.0.1/8'.",
        ),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of text, json, got 'xml'."),
    ],
)
def test_it_stops_start_up_on_a_bad_value(env, message):
    """A bad METRICS_TOKEN, METRICS_ALLOWED_IPS or LOG_FORMAT stops start-up with a message naming it."""
    result = _start(env)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {message}" in result.stderr


def test_it_starts_with_good_values():
    """A 16-character token, addresses and networks of both families, and LOG_FORMAT=json start fine."""
    result = _start(
        {"METRICS_TOKEN": "x" * 16, "METRICS_ALLOWED_IPS": "127.0.0.1, 10.0.0.0/8, ::1", "LOG_FORMAT": "json"}
    )
    assert result.returncode == 0, result.stderr
