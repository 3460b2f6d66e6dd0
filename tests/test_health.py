"""/healthz: database, Redis and the worker heartbeat, as JSON, with 503 when one is down."""

import time

import pytest
import redis
from django.conf import settings as django_settings

from missions.tasks import record_heartbeat


@pytest.fixture
def heartbeat_key(settings):
    """A heartbeat key of the tests' own, so a real worker's heartbeat can neither help nor be clobbered."""
    settings.HEARTBEAT_KEY = "mo-test:worker:heartbeat"
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    client.delete(settings.HEARTBEAT_KEY)
    yield client
    client.delete(settings.HEARTBEAT_KEY)


def test_it_is_healthy_with_a_fresh_heartbeat(client, db, heartbeat_key):
    """With the database, Redis and a fresh heartbeat, /healthz answers 200 and every check ok."""
    record_heartbeat()
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["database"] == {"ok": True}
    assert body["redis"] == {"ok": True}
    assert body["worker"]["ok"] is True
    assert 0 <= body["worker"]["age_s"] < 5


def test_it_writes_the_heartbeat_with_an_expiry(db, heartbeat_key, settings):
    """record_heartbeat stores the current time under the key and lets it expire on its own."""
    record_heartbeat()
    assert abs(float(heartbeat_key.get(settings.HEARTBEAT_KEY)) - time.time()) < 5
    assert 0 < heartbeat_key.ttl(settings.HEARTBEAT_KEY) <= settings.HEARTBEAT_MAX_AGE_S * 2


def test_it_is_not_cached(client, db, heartbeat_key):
    """Monitoring must see the present state: the answer forbids caching."""
    response = client.get("/healthz")
    assert "no-cache" in response["Cache-Control"]
    assert "max-age=0" in response["Cache-Control"]


def test_it_needs_no_login(client, db, heartbeat_key):
    """An anonymous probe gets the health JSON, not a login redirect."""
    record_heartbeat()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_it_is_unhealthy_without_a_heartbeat(client, db, heartbeat_key):
    """No heartbeat (no worker or no beat) is a 503 with the worker check failing."""
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert body["database"] == {"ok": True}
    assert body["redis"] == {"ok": True}
    assert body["worker"] == {"ok": False, "error": "no heartbeat"}


def test_it_is_unhealthy_with_an_old_heartbeat(client, db, heartbeat_key, settings):
    """A heartbeat older than HEARTBEAT_MAX_AGE_S is a 503 giving its age."""
    heartbeat_key.set(settings.HEARTBEAT_KEY, str(time.time() - settings.HEARTBEAT_MAX_AGE_S - 60))
    response = client.get("/healthz")
    assert response.status_code == 503
    worker = response.json()["worker"]
    assert worker["ok"] is False
    assert worker["age_s"] >= settings.HEARTBEAT_MAX_AGE_S + 59


def test_it_is_unhealthy_when_redis_is_unreachable(client, db, heartbeat_key, settings):
    """With Redis down, both the Redis and the worker checks fail: 503."""
    record_heartbeat()  # on the real Redis: must not count once Redis is unreachable
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert body["redis"] == {"ok": False, "error": "ConnectionError"}
    assert body["worker"] == {"ok": False, "error": "redis unavailable"}
    assert body["database"] == {"ok": True}


def test_it_reports_a_database_failure(client, db, heartbeat_key, monkeypatch):
    """A database that cannot answer SELECT 1 is a 503 naming the error type, not a 500."""
    from django.db import OperationalError

    from orchestrator_site import health

    class BrokenCursor:
        def __enter__(self):
            raise OperationalError("database is gone")

        def __exit__(self, *exc):
            return False

    record_heartbeat()
    with monkeypatch.context() as patch:
        patch.setattr(health.connection, "cursor", lambda: BrokenCursor())
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == {"ok": False, "error": "OperationalError"}


@pytest.fixture
def silent_redis(settings):
    """A port that accepts connections and never answers, like a Redis host that froze or a dead NAT entry."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    settings.REDIS_URL = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    yield
    listener.close()


def _finishes_within(seconds: float, fn) -> tuple[bool, object]:
    import threading

    outcome = {}

    def run():
        try:
            outcome["value"] = fn()
        except Exception as error:
            outcome["value"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive(), outcome.get("value")


def test_it_gives_up_on_a_redis_that_never_answers(client, db, silent_redis):
    """The heartbeat and /healthz fail within seconds on a silent Redis instead of hanging the worker or the page."""
    finished, error = _finishes_within(10, record_heartbeat)
    assert finished, "record_heartbeat hung on a Redis that never answers"
    assert isinstance(error, redis.TimeoutError)
    finished, response = _finishes_within(10, lambda: client.get("/healthz"))
    assert finished, "/healthz hung on a Redis that never answers"
    assert response.status_code == 503
    assert response.json()["redis"] == {"ok": False, "error": "TimeoutError"}
