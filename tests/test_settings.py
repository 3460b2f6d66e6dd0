"""Settings from the environment: typed readers that fail loudly, and the hardened production mode."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from orchestrator_site.env import env_bool, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
NAME = "MO_TEST_SETTING"


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)


# --- env_str --------------------------------------------------------------------------------------


def test_it_reads_strings_with_a_default(monkeypatch):
    """env_str returns the value, or the default when unset."""
    assert env_str(NAME, "fallback") == "fallback"
    monkeypatch.setenv(NAME, "given")
    assert env_str(NAME, "fallback") == "given"


def test_it_requires_a_string_without_default():
    """env_str without a default raises ImproperlyConfigured naming the variable."""
    with pytest.raises(ImproperlyConfigured, match=f"The environment variable {NAME} is required."):
        env_str(NAME)


# --- env_bool -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" on ", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("off", False),
        ("", False),
    ],
)
def test_it_parses_booleans(monkeypatch, value, expected):
    """env_bool accepts 1/0, true/false, yes/no, on/off in any case; empty means false."""
    monkeypatch.setenv(NAME, value)
    assert env_bool(NAME, not expected) is expected


def test_it_defaults_booleans():
    """An unset boolean takes its default."""
    assert env_bool(NAME, True) is True
    assert env_bool(NAME, False) is False


@pytest.mark.parametrize("value", ["maybe", "2", "tru", "y"])
def test_it_rejects_bad_booleans(monkeypatch, value):
    """Anything else is an error naming the variable and the value."""
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ImproperlyConfigured) as caught:
        env_bool(NAME, False)
    assert str(caught.value) == f"{NAME} must be a boolean (1/0, true/false, yes/no), got {value!r}."


# --- env_int --------------------------------------------------------------------------------------


def test_it_parses_integers(monkeypatch):
    """env_int parses whole numbers; unset or blank takes the default."""
    assert env_int(NAME, 7) == 7
    monkeypatch.setenv(NAME, "  ")
    assert env_int(NAME, 7) == 7
    monkeypatch.setenv(NAME, " 42 ")
    assert env_int(NAME, 7, minimum=1, maximum=100) == 42


@pytest.mark.parametrize("value", ["abc", "1.5", "1e3", "0x10"])
def test_it_rejects_non_integers(monkeypatch, value):
    """A value that is not a whole number is an error naming the variable."""
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ImproperlyConfigured) as caught:
        env_int(NAME, 1)
    assert str(caught.value) == f"{NAME} must be a whole number, got {value!r}."


@pytest.mark.parametrize("value", ["0", "65536", "-1"])
def test_it_rejects_integers_out_of_range(monkeypatch, value):
    """A number outside [minimum, maximum] is an error giving the range."""
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ImproperlyConfigured) as caught:
        env_int(NAME, 8000, minimum=1, maximum=65535)
    assert str(caught.value) == f"{NAME} must be between 1 and 65535, got {int(value)}."


def test_it_accepts_the_bounds(monkeypatch):
    """The minimum and maximum themselves are allowed."""
    monkeypatch.setenv(NAME, "1")
    assert env_int(NAME, 8000, minimum=1, maximum=65535) == 1
    monkeypatch.setenv(NAME, "65535")
    assert env_int(NAME, 8000, minimum=1, maximum=65535) == 65535


@pytest.mark.parametrize(
    ("bounds", "value", "phrase"), [({"minimum": 30}, "10", "at least 30"), ({"maximum": 10}, "11", "at most 10")]
)
def test_it_states_a_one_sided_bound_plainly(monkeypatch, bounds, value, phrase):
    """With only a minimum (or only a maximum) the message states that bound, never "None"."""
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ImproperlyConfigured) as caught:
        env_int(NAME, 900, **bounds)
    assert "None" not in str(caught.value)
    assert phrase in str(caught.value)


# --- env_list -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.com", ["example.com"]),
        ("a.example, b.example ,,", ["a.example", "b.example"]),
        ("", []),
        (" , ", []),
    ],
)
def test_it_parses_lists(monkeypatch, value, expected):
    """env_list splits on commas, trims, and drops empty items."""
    monkeypatch.setenv(NAME, value)
    assert env_list(NAME, ["default"]) == expected


def test_it_defaults_lists():
    """An unset list takes its default."""
    assert env_list(NAME, ["localhost"]) == ["localhost"]


# --- env_url --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["redis://127.0.0.1:6379/0", "rediss://cache.example:6380/1", "unix:///run/redis.sock"]
)
def test_it_accepts_urls_with_allowed_schemes(monkeypatch, value):
    """A URL whose scheme is allowed is returned as is."""
    monkeypatch.setenv(NAME, f" {value} ")
    assert env_url(NAME, "redis://default", schemes=("redis", "rediss", "unix")) == value


def test_it_defaults_urls():
    """An unset URL takes its default (which is checked too)."""
    assert env_url(NAME, "redis://127.0.0.1:6379/0", schemes=("redis",)) == "redis://127.0.0.1:6379/0"
    with pytest.raises(ImproperlyConfigured):
        env_url(NAME, "127.0.0.1:6379", schemes=("redis",))


@pytest.mark.parametrize("value", ["http://127.0.0.1:6379", "127.0.0.1:6379", "", "REDIS//host", "redis:/host"])
def test_it_rejects_urls_with_other_schemes(monkeypatch, value):
    """A URL without an allowed scheme is an error listing the schemes."""
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ImproperlyConfigured) as caught:
        env_url(NAME, "redis://default", schemes=("redis", "rediss"))
    assert str(caught.value).startswith(f"{NAME} must be a URL with one of the schemes redis, rediss, got ")


def test_it_does_not_echo_passwords_in_url_errors(monkeypatch):
    """A rejected URL's password is not repeated in the error, which ends up in logs."""
    monkeypatch.setenv(NAME, "http://user:hunter2-secret@cache.example:6379/0")
    with pytest.raises(ImproperlyConfigured) as caught:
        env_url(NAME, "redis://default", schemes=("redis",))
    assert NAME in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)


# --- The whole settings module, in a fresh process --------------------------------------------------


def _production_env(**changes) -> dict:
    env = dict(os.environ)
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"):
        env.pop(name, None)
    env.update(PRODUCTION="1", SECRET_KEY=secrets.token_urlsafe(45), ALLOWED_HOSTS="example.com")
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _manage(*args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_it_passes_the_deploy_check_in_production():
    """PRODUCTION=1 with a long SECRET_KEY and ALLOWED_HOSTS makes `check --deploy` clean."""
    env = _production_env()
    assert len(env["SECRET_KEY"]) == 60
    result = _manage("check", "--deploy", env=env)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_it_forces_debug_off_in_production():
    """DEBUG=1 is ignored in production, so the deploy check stays clean."""
    result = _manage("check", "--deploy", env=_production_env(DEBUG="1"))
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_it_flags_development_settings_in_the_deploy_check():
    """Without PRODUCTION the deploy check does complain (the check is not vacuous)."""
    env = _production_env(PRODUCTION=None, SECRET_KEY=None)
    result = _manage("check", "--deploy", env=env)
    output = result.stdout + result.stderr
    assert "security.W004" in output  # no HSTS
    assert "security.W008" in output  # no SSL redirect


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"SECRET_KEY": None}, "SECRET_KEY is required when PRODUCTION=1."),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be at least 50 characters in production."),
        ({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS is required when PRODUCTION=1."),
        ({"ALLOWED_HOSTS": " , "}, "ALLOWED_HOSTS is required when PRODUCTION=1."),
        ({"PRODUCTION": "sure"}, "PRODUCTION must be a boolean"),
        ({"PORT": "eighty"}, "PORT must be a whole number, got 'eighty'."),
        (
            {"REDIS_URL": "http://127.0.0.1:6379/0"},
            "REDIS_URL must be a URL with one of the schemes redis, rediss, unix",
        ),
        ({"DATABASE_URL": "mysql://db/app"}, "DATABASE_URL must be a postgres:// or sqlite:// URL"),
        ({"SANDBOX_MEMORY_MB": "lots"}, "SANDBOX_MEMORY_MB must be a whole number, got 'lots'."),
        ({"GIT_TIMEOUT_S": "1"}, "GIT_TIMEOUT_S"),
        ({"REVIEW_MAX_ROUNDS": "0"}, "REVIEW_MAX_ROUNDS must be between 1 and 10, got 0."),
        ({"WORKER_CONCURRENCY": "65"}, "WORKER_CONCURRENCY must be between 1 and 64, got 65."),
    ],
)
def test_it_refuses_to_start_when_misconfigured(changes, message):
    """A missing or malformed setting stops `manage.py check` with ImproperlyConfigured naming it."""
    result = _manage("check", env=_production_env(**changes))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_it_sets_the_concurrency_of_a_worker_started_without_c():
    """A `celery worker` with no -c (docker compose's) runs WORKER_CONCURRENCY processes, read by the settings."""
    code = "from orchestrator_site.celery import app; print(app.conf.worker_concurrency)"
    env = _production_env(WORKER_CONCURRENCY="5", DJANGO_SETTINGS_MODULE="orchestrator_site.settings")
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip() == "5", result.stderr


def test_it_keeps_a_generated_secret_key_in_development(tmp_path):
    """In development without SECRET_KEY, the key is generated once into DATA_DIR (mode 600) and reused."""
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    env = _production_env(PRODUCTION=None, SECRET_KEY=None, DATA_DIR=str(tmp_path), DATABASE_URL=None)
    env["DJANGO_SETTINGS_MODULE"] = "orchestrator_site.settings"
    runs = [
        subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60)
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    key_file = tmp_path / "secret_key"
    assert runs[0].stdout.strip() == runs[1].stdout.strip() == key_file.read_text().strip()
    assert len(key_file.read_text().strip()) >= 50
    assert key_file.stat().st_mode & 0o777 == 0o600


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "existing-world-readable"])
def test_it_keeps_the_data_dir_and_database_private(tmp_path, existing):
    """DATA_DIR, its workspaces and artifacts are 0700; the SQLite file, its WAL files and the secret key 0600.

    An installation from before this rule (0755 directory, 0644 database) is tightened at start-up.
    """
    data_dir = tmp_path / "data"
    database = data_dir / "orchestrator.sqlite3"
    if existing:
        data_dir.mkdir(mode=0o755)
        data_dir.chmod(0o755)
        database.write_bytes(b"")
        database.chmod(0o644)
    env = _production_env(PRODUCTION=None, SECRET_KEY=None, DATA_DIR=str(data_dir), DATABASE_URL=None)
    result = _manage("migrate", "-v", "0", env=env)
    assert result.returncode == 0, result.stderr
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "workspaces") == 0o700
    assert _mode(data_dir / "artifacts") == 0o700
    assert _mode(data_dir / "secret_key") == 0o600
    assert database.stat().st_size > 0  # the migrated database, not a stray empty file
    assert _mode(database) == 0o600
    sidecars = [path for path in data_dir.iterdir() if path.name.startswith(database.name + "-")]
    assert all(_mode(path) == 0o600 for path in sidecars), {path.name: oct(_mode(path)) for path in sidecars}


@pytest.mark.django_db
def test_it_ends_sessions_idle_in_a_transaction_on_postgresql():
    """A hung worker's open transaction is ended by PostgreSQL instead of blocking every other worker."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (DATABASE_URL=postgres://...)")
    with connection.cursor() as cursor:
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        assert cursor.fetchone()[0] == "2min"
