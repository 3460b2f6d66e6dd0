"""Login throttling: wrong passwords lock the account and the address for a while, with a page that says so."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD

LOGIN = "/login/"
LIMIT = 3  # the real limit is checked below; a lower one keeps these tests quick


@pytest.fixture(autouse=True)
def _quick(settings):
    """A fast hasher (every wrong password costs a full hash) and a low limit, before the personas exist."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.AXES_FAILURE_LIMIT = LIMIT


def _login(username: str, password: str, *, address: str = "127.0.0.1", client: Client | None = None):
    client = client or Client(REMOTE_ADDR=address)
    return client, client.post(LOGIN, {"username": username, "password": password})


def _logged_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def _fail(times: int, *, username: str = "pm", addresses: list[str] | None = None) -> None:
    for n in range(times):
        address = addresses[n % len(addresses)] if addresses else "127.0.0.1"
        _, response = _login(username, f"wrong password {n}", address=address)
        assert response.status_code in (200, 429)


def test_it_uses_sensible_limits():
    """Between 5 and 10 failures, a cool-off of at least 15 minutes, counted per account and per address."""
    from orchestrator_site import settings as configured  # the module, untouched by the fixture above

    assert 5 <= configured.AXES_FAILURE_LIMIT <= 10
    assert configured.AXES_COOLOFF_TIME >= timedelta(minutes=15)
    assert set(configured.AXES_LOCKOUT_PARAMETERS) == {"ip_address", "username"}


def test_it_logs_in_with_the_right_password(pm):
    """Below the limit, the right password works through the login form."""
    _fail(LIMIT - 1)
    client, response = _login("pm", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_it_locks_an_account_after_too_many_wrong_passwords(pm):
    """At the limit the right password no longer works, and the page says why and how to get unlocked."""
    _fail(LIMIT, addresses=[f"10.0.0.{n}" for n in range(1, 40)])
    client, response = _login("pm", PASSWORD, address="10.9.9.9")  # a fresh address: the account itself is locked
    assert response.status_code == 429
    assert not _logged_in(client)
    body = response.content.decode()
    assert "Login locked" in body and "Too many failed logins" in body
    assert f"locked for {settings.AXES_COOLOFF_TIME.seconds // 60} minutes" in body
    assert "ask an administrator to unlock it" in body
    assert PASSWORD not in body


def test_it_locks_an_address_trying_many_accounts(pm, other_pm):
    """Guessing across accounts from one address locks that address, not the accounts elsewhere."""
    for n in range(LIMIT):
        _login(f"someone{n}", "guess")
    client, response = _login("pm", PASSWORD)
    assert response.status_code == 429 and not _logged_in(client)
    client, response = _login("other_pm", PASSWORD, address="192.0.2.7")
    assert response.status_code == 302 and _logged_in(client)


def test_it_unlocks_after_the_cool_off(pm):
    """Once the cool-off has passed since the failures, the right password works again."""
    _fail(LIMIT)
    assert _login("pm", PASSWORD)[1].status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    client, response = _login("pm", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_it_lets_an_admin_unlock_an_account(pm, admin_client):
    """Deleting the account's access attempts in the admin lifts the lock at once."""
    _fail(LIMIT)
    assert _login("pm", PASSWORD)[1].status_code == 429
    changelist = admin_client.get(reverse("admin:axes_accessattempt_changelist"), {"q": "pm"})
    assert changelist.status_code == 200
    attempts = list(AccessAttempt.objects.filter(username="pm").values_list("pk", flat=True))
    assert attempts
    response = admin_client.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "delete_selected", "_selected_action": attempts, "post": "yes"},
    )
    assert response.status_code == 302
    client, response = _login("pm", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_it_throttles_the_admin_login_too(pm):
    """The admin's login form is counted and locked like the site's."""
    client = Client()
    for n in range(LIMIT):
        client.post(reverse("admin:login"), {"username": "pm", "password": f"wrong {n}"})
    response = client.post(reverse("admin:login"), {"username": "pm", "password": PASSWORD})
    assert response.status_code == 429


@pytest.mark.parametrize("how", ["force_login", "login"])
def test_it_keeps_test_logins_working(pm, how):
    """force_login and Client.login (given a request, as Axes needs) still log the personas in."""
    from django.http import HttpRequest

    client = Client()
    if how == "force_login":
        client.force_login(pm)
    else:
        request = HttpRequest()
        request.META["REMOTE_ADDR"] = "127.0.0.1"
        assert client.login(request=request, username="pm", password=PASSWORD)
    assert client.get(reverse("missions:list")).status_code == 200
