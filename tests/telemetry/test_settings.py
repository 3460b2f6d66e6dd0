"""Telemetry settings fail loudly at start-up, naming the variable and what is wrong."""

import pytest

from tests.live import settings_load


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
    result = settings_load(env)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {message}" in result.stderr


def test_it_starts_with_good_values():
    """A 16-character token, addresses and networks of both families, and LOG_FORMAT=json start fine."""
    result = settings_load(
        {"METRICS_TOKEN": "x" * 16, "METRICS_ALLOWED_IPS": "127.0.0.1, 10.0.0.0/8, ::1", "LOG_FORMAT": "json"}
    )
    assert result.returncode == 0, result.stderr
