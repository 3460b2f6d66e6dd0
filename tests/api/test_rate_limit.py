"""Each token gets API_RATE_LIMIT requests per fixed window of API_RATE_WINDOW_S, counted in Redis; then a 429."""

from unittest import mock

import pytest
import redis
from django.test import override_settings

from tests.api.conftest import bearer, secret_for
from tests.live import settings_load

URL = "/api/v1/missions"
NOW = 1_800_000_030.0  # 30 s into a 60 s window (1_800_000_000 is a multiple of 60)


@pytest.fixture
def clock():
    with mock.patch("api.ratelimit._now", return_value=NOW) as now:
        yield now


@override_settings(API_RATE_LIMIT=3, API_RATE_WINDOW_S=60)
def test_it_answers_429_with_retry_after_past_the_limit(client, pm, clock):
    """The fourth request in the window is refused until the window ends; the next window starts afresh."""
    secret = secret_for(pm)
    assert [client.get(URL, headers=bearer(secret)).status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get(URL, headers=bearer(secret))
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"
    assert refused.json() == {"detail": "Too many requests for this token: try again in 30 s."}
    clock.return_value = NOW + 30
    assert client.get(URL, headers=bearer(secret)).status_code == 200


@override_settings(API_RATE_LIMIT=1, API_RATE_WINDOW_S=60)
def test_it_counts_each_token_on_its_own(client, pm, clock):
    """Another token, even of the same person, has its own count; a bad token is refused before it is counted."""
    first, second = secret_for(pm, "a"), secret_for(pm, "b")
    assert client.get(URL, headers=bearer(first)).status_code == 200
    assert client.get(URL, headers=bearer(first)).status_code == 429
    assert client.get(URL, headers=bearer(second)).status_code == 200


@override_settings(API_RATE_LIMIT=1, API_RATE_WINDOW_S=60)
def test_it_lets_requests_through_when_redis_is_down(client, pm, clock):
    """Rate limiting protects capacity; an outage of Redis must not lock every script out."""
    secret = secret_for(pm)
    broken = mock.Mock()
    broken.pipeline.return_value.execute.side_effect = redis.ConnectionError("down")
    with mock.patch("api.ratelimit._redis", return_value=broken):
        assert [client.get(URL, headers=bearer(secret)).status_code for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"API_RATE_LIMIT": "many"}, "API_RATE_LIMIT must be a whole number, got 'many'."),
        ({"API_RATE_LIMIT": "0"}, "API_RATE_LIMIT must be at least 1, got 0."),
        ({"API_RATE_WINDOW_S": "0"}, "API_RATE_WINDOW_S must be between 1 and 86400, got 0."),
    ],
)
def test_it_stops_start_up_on_a_bad_rate_setting(env, message):
    result = settings_load(env)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {message}" in result.stderr
