"""EMAIL_URL: one URL for Django's mail settings, read by a typed helper that fails loudly on bad values."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from orchestrator_site.env import env_email_url

BASE_DIR = Path(__file__).resolve().parents[2]
NAME = "MO_TEST_EMAIL_URL"
SMTP = "django.core.mail.backends.smtp.EmailBackend"
SCHEMES = "smtp://, smtp+tls://, smtp+ssl://, console://, locmem://"


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "smtp://mailer:s3cret@mail.example.com:2525",
            {"EMAIL_HOST": "mail.example.com", "EMAIL_PORT": 2525, "EMAIL_HOST_USER": "mailer",
             "EMAIL_HOST_PASSWORD": "s3cret", "EMAIL_USE_TLS": False, "EMAIL_USE_SSL": False},
        ),
        (
            "smtp+tls://me%40example.com:p%3Ass@smtp.example.com",
            {"EMAIL_HOST": "smtp.example.com", "EMAIL_PORT": 587, "EMAIL_HOST_USER": "me@example.com",
             "EMAIL_HOST_PASSWORD": "p:ss", "EMAIL_USE_TLS": True, "EMAIL_USE_SSL": False},
        ),
        (
            "smtp+ssl://smtp.example.com",
            {"EMAIL_HOST": "smtp.example.com", "EMAIL_PORT": 465, "EMAIL_HOST_USER": "",
             "EMAIL_HOST_PASSWORD": "", "EMAIL_USE_TLS": False, "EMAIL_USE_SSL": True},
        ),
        (
            "smtp://localhost",
            {"EMAIL_HOST": "localhost", "EMAIL_PORT": 25, "EMAIL_HOST_USER": "",
             "EMAIL_HOST_PASSWORD": "", "EMAIL_USE_TLS": False, "EMAIL_USE_SSL": False},
        ),
    ],
)  # fmt: skip
def test_it_parses_smtp_urls(monkeypatch, value, expected):
    """User and password are percent-decoded; the port defaults to 25, 587 (STARTTLS) or 465 (TLS)."""
    monkeypatch.setenv(NAME, value)
    assert env_email_url(NAME) == {"EMAIL_BACKEND": SMTP, **expected}


@pytest.mark.parametrize(
    ("value", "backend"),
    [
        ("console://", "django.core.mail.backends.console.EmailBackend"),
        ("locmem://", "django.core.mail.backends.locmem.EmailBackend"),
        ("CONSOLE://", "django.core.mail.backends.console.EmailBackend"),
    ],
)
def test_it_parses_local_backends(monkeypatch, value, backend):
    monkeypatch.setenv(NAME, value)
    assert env_email_url(NAME) == {"EMAIL_BACKEND": backend}


@pytest.mark.parametrize("value", [None, "", "   "])
def test_it_means_no_mail_when_unset_or_empty(monkeypatch, value):
    if value is not None:
        monkeypatch.setenv(NAME, value)
    assert env_email_url(NAME) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("mail.example.com", f"{NAME} must start with one of {SCHEMES}, got 'mail.example.com'."),
        ("imap://u:hunter2@mail.example.com", f"{NAME} must start with one of {SCHEMES}, got 'imap://u:***@mail.example.com'."),
        ("smtp://", f"{NAME} needs a host (smtp://user:password@host:port), got 'smtp://'."),
        ("smtp://u:hunter2@mail.example.com:port", f"{NAME} has a port that is not a number from 1 to 65535: 'smtp://u:***@mail.example.com:port'."),
        ("smtp://mail.example.com:70000", f"{NAME} has a port that is not a number from 1 to 65535: 'smtp://mail.example.com:70000'."),
        ("smtp://mail.example.com:0", f"{NAME} has a port that is not a number from 1 to 65535: 'smtp://mail.example.com:0'."),
        ("smtp://:hunter2@mail.example.com", f"{NAME} has a password but no user name: 'smtp://:***@mail.example.com'."),
        ("smtp://mail.example.com/inbox", f"{NAME} takes no path or options (write smtp+tls:// for TLS), got 'smtp://mail.example.com/inbox'."),
        ("smtp://mail.example.com?tls=1", f"{NAME} takes no path or options (write smtp+tls:// for TLS), got 'smtp://mail.example.com?tls=1'."),
        ("console://localhost", f"{NAME}: console:// takes no host, path or options, got 'console://localhost'."),
    ],
)  # fmt: skip
def test_it_refuses_bad_values_with_a_clear_message(monkeypatch, value, message):
    """Each mistake is named, and the password never appears in the message."""
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ImproperlyConfigured) as raised:
        env_email_url(NAME)
    assert str(raised.value) == message
    assert "hunter2" not in str(raised.value)


def _settings_value(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_") and k != "SITE_URL"}
    environment.update(env)
    program = f"import django; django.setup(); from django.conf import settings; print(repr(({code})))"
    return subprocess.run(
        [sys.executable, "-c", program], cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=60
    )


def test_it_turns_mail_on_only_when_configured():
    """No EMAIL_URL and no EMAIL_HOST: notifications by mail are off; either one turns them on."""
    code = "settings.EMAIL_NOTIFICATIONS, settings.EMAIL_BACKEND, settings.SITE_URL"
    off = _settings_value(code)
    assert off.stdout.strip() == "(False, 'django.core.mail.backends.smtp.EmailBackend', 'http://localhost:8000')", (
        off.stderr
    )
    on = _settings_value(code, EMAIL_URL="console://", SITE_URL="https://mo.example.com/")
    assert on.stdout.strip() == "(True, 'django.core.mail.backends.console.EmailBackend', 'https://mo.example.com')"
    host = _settings_value(
        "settings.EMAIL_NOTIFICATIONS, settings.EMAIL_HOST, settings.EMAIL_PORT",
        EMAIL_HOST="mx.example.com",
        EMAIL_PORT="2525",
    )
    assert host.stdout.strip() == "(True, 'mx.example.com', 2525)", host.stderr


def test_it_stops_at_start_up_on_a_bad_email_url():
    result = _settings_value("1", EMAIL_URL="smtp://u:hunter2@host:port")
    assert result.returncode != 0
    assert "EMAIL_URL has a port that is not a number from 1 to 65535: 'smtp://u:***@host:port'." in result.stderr
    assert "hunter2" not in result.stderr
