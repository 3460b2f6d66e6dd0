"""Settings for Mission Orchestrator, read from the environment.

Development is the default. ``PRODUCTION=1`` turns on the hardened mode in
which ``manage.py check --deploy`` is clean: it requires SECRET_KEY and
ALLOWED_HOSTS and forces DEBUG off.
"""

import os
import secrets
import socket
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from orchestrator_site.env import (
    env_bool,
    env_choice,
    env_decimal,
    env_email_url,
    env_int,
    env_ip_networks,
    env_list,
    env_str,
    env_url,
    env_worker_concurrency,
    redact_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent


def _owner_only(path: Path, mode: int) -> None:
    """Take group and world access away from ``path``: it holds sessions, password hashes, keys and code."""
    try:
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except PermissionError:
        warnings.warn(f"Cannot restrict {path} to mode {mode:o}: it belongs to another user.", stacklevel=2)


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _owner_only(path, 0o700)
    return path


def _private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if missing (SQLite gives its -wal and -shm files the same mode)."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    _owner_only(path, 0o600)


def _private_sqlite(path: Path) -> None:
    """The database file (sessions, password hashes) and its WAL files are the owner's alone."""
    if not path.is_absolute() or not path.parent.is_dir():
        return  # ":memory:", or a directory SQLite will complain about itself
    _private_file(path)
    for sidecar in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        if sidecar.exists():
            _owner_only(sidecar, 0o600)


DATA_DIR = _private_dir(Path(env_str("DATA_DIR", str(BASE_DIR / "data"))).resolve())

PRODUCTION = env_bool("PRODUCTION", False)
DEBUG = False if PRODUCTION else env_bool("DEBUG", False)


def _secret_key() -> str:
    """Use SECRET_KEY; in development keep a generated key in DATA_DIR so logins survive restarts."""
    key = env_str("SECRET_KEY", "")
    if key:
        if PRODUCTION and len(key) < 50:
            raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters in production.")
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY is required when PRODUCTION=1.")
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        _private_file(key_file)  # 0600 before the key is in it
        key_file.write_text(secrets.token_urlsafe(64))
    _owner_only(key_file, 0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when PRODUCTION=1.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "channels",
    "django_htmx",
    "template_partials",
    "missions",
    "agents",
    "reviews",
    "projects",
    "notifications",
    "audit",
    "home",
    "reports",
    "telemetry",
    "api",
    "ninja",  # serves the API docs with its bundled Swagger UI files instead of a CDN
    "axes",
]

MIDDLEWARE = [
    "telemetry.tracing.TracingMiddleware",  # first, so the request span covers everything; off without OTEL_*
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "orchestrator_site.errors.MethodNotAllowedPageMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a locked-out login into the lockout page
]
# A refused form post (missing or stale CSRF token) gets a styled page that says what to do.
CSRF_FAILURE_VIEW = "orchestrator_site.errors.csrf_failure"

ROOT_URLCONF = "orchestrator_site.urls"
ASGI_APPLICATION = "orchestrator_site.asgi.application"
WSGI_APPLICATION = "orchestrator_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "builtins": ["template_partials.templatetags.partials"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "missions.context_processors.roles",
                "notifications.context_processors.gate_badge",
            ],
        },
    }
]

# --- Database: PostgreSQL via DATABASE_URL; SQLite (WAL) on a bare machine.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'orchestrator.sqlite3'}")
if not DATABASE_URL.startswith(("postgres://", "postgresql://", "sqlite://")):
    raise ImproperlyConfigured(
        f"DATABASE_URL must be a postgres:// or sqlite:// URL, got {redact_url(DATABASE_URL)!r}."
    )
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0, minimum=0))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker write at the same time: WAL lets readers
    # go on, IMMEDIATE transactions plus a busy timeout queue the writers.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
    _private_sqlite(Path(DATABASES["default"]["NAME"]))
else:
    # A worker that dies or hangs inside a transaction must not hold its row locks (and every other
    # worker waiting on them) for ever: PostgreSQL ends a session idle in a transaction this long.
    _idle_ms = env_int("DB_IDLE_TRANSACTION_TIMEOUT_S", 120, minimum=0) * 1000
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = f"-c idle_in_transaction_session_timeout={_idle_ms}"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker, channel layer, worker heartbeat.
REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", schemes=("redis", "rediss", "unix"))
# Every Redis client survives a Redis restart or a silent network drop: keepalive and a PING on a
# connection idle for longer than the health-check interval find dead sockets, a short connect timeout
# lets a reconnect fail fast and try again, and no read timeout is shorter than a blocking pop.
REDIS_CONNECTION_OPTIONS = {
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 25,
    "retry_on_timeout": True,
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # An idle socket's receive is a BZPOPMIN of up to 5 s (channels_redis' brpop_timeout), repeated:
            # a read timeout below that tears the socket down ("Timeout reading from ...", every ~6 s under
            # redis-py 8.1).
            # 15 s still notices a server that vanished without closing the connection.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 15, **REDIS_CONNECTION_OPTIONS}],
            "prefix": env_str("CHANNELS_PREFIX", "mo"),
        },
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None  # results are never read: state lives in the database
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Processes per worker (`celery worker` without -c reads it; make run passes it as -c); see env.py for the default.
CELERY_WORKER_CONCURRENCY = env_worker_concurrency()
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "orchestrator")
# A worker waits out a Redis outage of any length instead of exiting after 100 attempts (Celery's default).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A running step keeps running through a broker reconnect (its ack is lost, so it is delivered again
# after the visibility timeout, and the second delivery finds the work done).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Enqueuing the next phase rides out a Redis restart (about 20 s of retries) instead of failing the task
# that finished a step; past that the reaper starts the quiet mission again.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 10, "interval_start": 0, "interval_step": 0.5, "interval_max": 3}
# Work of missions already under way runs before the first task of a mission just filed
# (missions.services.mission_start): a burst of new missions must not hold up steps and gates of missions
# people are already waiting for. The Redis transport keeps one list per priority step, `<queue>` for 0 and
# `<queue>\x06\x169` for 9, and every worker's BRPOP names them in that order, so a waiting task of 0 is
# always taken first (0 is Redis' highest priority). Running tasks are not interrupted: with
# WORKER_CONCURRENCY processes busy planning new missions, the next free one takes the started work.
# (Mission.priority, the requester's label, takes no part in this.)
TASK_PRIORITY_UNDER_WAY = 0
TASK_PRIORITY_NEW_MISSION = 9
CELERY_TASK_DEFAULT_PRIORITY = TASK_PRIORITY_UNDER_WAY
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "priority_steps": [TASK_PRIORITY_UNDER_WAY, TASK_PRIORITY_NEW_MISSION],
    # As Celery's "Redis Message Priorities" asks; with one queue it changes nothing, with several it keeps -Q's order.
    "queue_order_strategy": "priority",
    # Longer than the longest step, so a slow step is not delivered twice.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60),
    # Bounds a publish or ack on a dead connection; the worker's own BRPOP waits 1 s (kombu's brpop_timeout).
    "socket_timeout": 10,
    **REDIS_CONNECTION_OPTIONS,
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep our log format, with the mission code on every line
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {"task": "missions.tasks.record_heartbeat", "schedule": 10.0},
    "reap-stalled-work": {"task": "missions.tasks.reap_stalled", "schedule": 60.0},
}
HEARTBEAT_KEY = f"{CELERY_TASK_DEFAULT_QUEUE}:worker:heartbeat"  # per instance: its own queue's workers
HEARTBEAT_MAX_AGE_S = 45

# --- Models. With no LLM_BASE_URL, `make run` starts the simulated server and sets it.
LLM_BASE_URL = env_str("LLM_BASE_URL", "")
if LLM_BASE_URL:
    LLM_BASE_URL = env_url("LLM_BASE_URL", "", schemes=("http", "https"))
LLM_MODEL = env_str("LLM_MODEL", "sim-1")
LLM_SIMULATED = env_bool("LLM_SIMULATED", not LLM_BASE_URL)
LLM_TIMEOUT_S = env_int("LLM_TIMEOUT_S", 60, minimum=1)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 2, minimum=0, maximum=10)
LLM_RETRY_MAX_WAIT_S = env_int("LLM_RETRY_MAX_WAIT_S", 30, minimum=1, maximum=600)  # caps a server's Retry-After
# Each of the six tiny requests of a model check (admin action, manage.py check_model) waits at most this long.
MODEL_CHECK_TIMEOUT_S = env_int("MODEL_CHECK_TIMEOUT_S", 30, minimum=1)
# One model call (retries and the whole stream included) is abandoned after this long; a reservation still
# pending after LLM_RESERVATION_STALE_S belongs to a call whose worker died, and the reaper releases it.
LLM_CALL_DEADLINE_S = env_int("LLM_CALL_DEADLINE_S", 600, minimum=1)
LLM_RESERVATION_STALE_S = env_int("LLM_RESERVATION_STALE_S", LLM_CALL_DEADLINE_S + 60, minimum=LLM_CALL_DEADLINE_S + 1)
# Execution agents' text streams to the mission page while the model writes it (ephemeral: the stored message
# still arrives as before); at most one update per MODEL_STREAM_INTERVAL_MS per call, so a fast model cannot
# flood the channel layer or the browser.
MODEL_STREAM = env_bool("MODEL_STREAM", True)
MODEL_STREAM_INTERVAL_MS = env_int("MODEL_STREAM_INTERVAL_MS", 200, minimum=50, maximum=10_000)
# LLM_API_KEY is read from the environment at call time (by name, from the
# model profile) and never stored in settings, the database or a page.
# The only variables a profile may name as its key (names, or patterns with *): its editor also picks the URL.
LLM_KEY_ENV_ALLOWED = env_list(
    "LLM_KEY_ENV_ALLOWED", ["*_LLM_API_KEY", "LLM_API_KEY", "OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"]
)

# --- Execution.
WORKSPACES_DIR = _private_dir(DATA_DIR / "workspaces")
ARTIFACTS_DIR = _private_dir(DATA_DIR / "artifacts")
# Where missions' branches live (missions/repository.py). Unset: DATA_DIR/git, for one host. For several hosts,
# a git URL (or a path every host mounts) that all workers and the web process reach: they share nothing else.
GIT_WORKSPACE_URL = env_str("GIT_WORKSPACE_URL", "")
GIT_STORE_DIR = _private_dir(DATA_DIR / "git")
MIRRORS_DIR = _private_dir(DATA_DIR / "mirrors")  # one bare mirror per project, kept by the web process
# Projects (projects/services.py): a setup command's environment per base commit, and limits on adding one.
ENVS_DIR = _private_dir(DATA_DIR / "envs")
PROJECT_CLONE_TIMEOUT_S = env_int("PROJECT_CLONE_TIMEOUT_S", 300, minimum=1)
PROJECT_MAX_MB = env_int("PROJECT_MAX_MB", 500, minimum=1)
PROJECT_SETUP_TIMEOUT_S = env_int("PROJECT_SETUP_TIMEOUT_S", 600, minimum=1)
# A setup command that failed (or was stopped) at a commit is not run again for this long: missions' test
# runs get the remembered reason at once. Adding, changing or refreshing a project always tries again.
PROJECT_SETUP_RETRY_S = env_int("PROJECT_SETUP_RETRY_S", 600, minimum=0)
# Colon-separated directories local repositories (paths, file://) must lie in; empty: any local path.
PROJECT_ALLOWED_ROOTS = [root for root in env_str("PROJECT_ALLOWED_ROOTS", "").split(":") if root.strip()]
# How often a step retries merging its work onto the mission branch when other steps pushed first.
# Names this worker on the steps it claims (which host ran what).
WORKER_NAME = env_str("WORKER_NAME", f"{socket.gethostname()}:{os.getpid()}")
# Read by agents/runtime/workspace.py from the environment; checked here so a bad value stops start-up.
GIT_TIMEOUT_S = env_int("GIT_TIMEOUT_S", 300, minimum=5)
GIT_PUSH_ATTEMPTS = env_int("GIT_PUSH_ATTEMPTS", 8, minimum=1, maximum=50)
# How often a project mission goes back to execution to merge a default branch that moved before a human
# is asked whether to push its branch unmerged.
DEPLOY_RESOLVE_MAX_STEPS = env_int("DEPLOY_RESOLVE_MAX_STEPS", 2, minimum=0, maximum=10)
# Where approved work is pushed: a git URL, or a local path that becomes a bare repository.
DEPLOY_REMOTE = env_str("DEPLOY_REMOTE", str(DATA_DIR / "production.git"))
# Optional command run in the sandbox on the approved tree before it is pushed (e.g. "python -m compileall -q .").
DEPLOY_COMMAND = env_str("DEPLOY_COMMAND", "")
SANDBOX_TIMEOUT_S = env_int("SANDBOX_TIMEOUT_S", 120, minimum=1)
# Read by agents/runtime/sandbox.py per run; checked here so a bad value stops start-up instead of every run.
for _name, _default, _minimum in (
    ("SANDBOX_MEMORY_MB", 2048, 64),
    ("SANDBOX_CPU_S", 120, 1),
    ("SANDBOX_TMP_MB", 128, 1),
    ("SANDBOX_DISK_MB", 200, 1),
    ("SANDBOX_MAX_FILES", 20_000, 1),
):
    env_int(_name, _default, minimum=_minimum)
# A running step's lease: its worker renews it every third of this while alive, so a killed worker's
# step is retried after about this long (and the reaper runs every third of it, at most every minute).
STEP_LEASE_S = env_int("STEP_LEASE_S", 90, minimum=5)
CELERY_BEAT_SCHEDULE["reap-stalled-work"]["schedule"] = float(min(60, max(5, STEP_LEASE_S // 3)))
DELIBERATION_MAX_ROUNDS = env_int("DELIBERATION_MAX_ROUNDS", 3, minimum=1, maximum=10)
VALIDATION_MAX_ATTEMPTS = env_int("VALIDATION_MAX_ATTEMPTS", 2, minimum=0, maximum=10)
STEP_MAX_ATTEMPTS = env_int("STEP_MAX_ATTEMPTS", 3, minimum=1, maximum=10)
STEP_RETRY_BASE_S = env_int("STEP_RETRY_BASE_S", 2, minimum=0)
STEP_RETRY_MAX_S = env_int("STEP_RETRY_MAX_S", 120, minimum=0)
STEP_MAX_TOOL_ITERATIONS = env_int("STEP_MAX_TOOL_ITERATIONS", 12, minimum=1, maximum=100)
# Agent peer-review rounds per step: "request changes" sends the step back this many times at most; then a human.
REVIEW_MAX_ROUNDS = env_int("REVIEW_MAX_ROUNDS", 2, minimum=1, maximum=10)
DEFAULT_MISSION_BUDGET_USD = env_decimal("DEFAULT_MISSION_BUDGET_USD", "5.00", minimum="0.01", maximum="10000")
# Filing a mission with a budget above this asks for an explicit confirmation (form checkbox, CLI --confirm-budget).
BUDGET_CONFIRM_ABOVE_USD = env_decimal("BUDGET_CONFIRM_ABOVE_USD", "50", minimum="0", maximum="10000")
SANDBOX_BACKEND = env_choice("SANDBOX_BACKEND", "", choices=("", "bwrap", "docker", "subprocess"))
STALLED_AFTER_S = env_int("STALLED_AFTER_S", 300, minimum=30)

# --- Notifications (notifications/): live badge and toasts always; email only when a mail server is configured,
# by EMAIL_URL (smtp://user:pass@host:port, smtp+tls://, smtp+ssl://, console://, locmem://) or Django's EMAIL_HOST
# and friends. Mails link to SITE_URL: a worker has no request to take the host from.
_email = env_email_url("EMAIL_URL")
if _email is None and env_str("EMAIL_HOST", ""):
    if env_bool("EMAIL_USE_TLS", False) and env_bool("EMAIL_USE_SSL", False):
        raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be on.")
    _email = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": env_str("EMAIL_HOST"),
        "EMAIL_PORT": env_int("EMAIL_PORT", 25, minimum=1, maximum=65535),
        "EMAIL_HOST_USER": env_str("EMAIL_HOST_USER", ""),
        "EMAIL_HOST_PASSWORD": env_str("EMAIL_HOST_PASSWORD", ""),
        "EMAIL_USE_TLS": env_bool("EMAIL_USE_TLS", False),
        "EMAIL_USE_SSL": env_bool("EMAIL_USE_SSL", False),
    }
EMAIL_NOTIFICATIONS = _email is not None
if _email is not None:
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST = _email.get("EMAIL_HOST", "localhost")
    EMAIL_PORT = _email.get("EMAIL_PORT", 25)
    EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
    EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT_S", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Mission Orchestrator <noreply@localhost>")
if PRODUCTION and EMAIL_NOTIFICATIONS and not env_str("SITE_URL", ""):
    raise ImproperlyConfigured(
        "SITE_URL (the address people open, e.g. https://orchestrator.example.com) is required "
        "when PRODUCTION=1 and email is configured: mails link to it."
    )
SITE_URL = env_url("SITE_URL", f"http://localhost:{PORT}", schemes=("http", "https")).rstrip("/")

# --- Auth.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failed logins, the account and, separately, the
# address they came from are locked for LOGIN_COOLOFF_MINUTES; an admin unlocks early under Axes > Access attempts.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1, maximum=100)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
# Each counted on its own: one account tried from many addresses, and many accounts tried from one address.
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_LOCKOUT_CALLABLE = "orchestrator_site.lockout.lockout_response"  # a page, not a bare 429 string
# A successful login does not clear earlier failures: with per-address counting it would let anyone with an
# account wipe the failures their address ran up against someone else's. They expire with the cool-off.
AXES_RESET_ON_SUCCESS = False
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # every failed login, kept for the admin (Axes > Access failures)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# `make test` sets this (and so does the daphne a browser test starts) so that creating
# personas costs nothing; production always hashes properly.
if env_bool("FAST_PASSWORD_HASHER", False) and not PRODUCTION:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
# daphne serves /static/ from the app folders (no collectstatic step to forget); a proxy
# can serve `manage.py collectstatic` output from STATIC_ROOT instead, with SERVE_STATIC=0.
SERVE_STATIC = env_bool("SERVE_STATIC", True)

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from hx-headers, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Telemetry (telemetry/): /metrics is closed unless a bearer token or an address allow-list is set (both set:
# both are required); tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT is set (read by telemetry/tracing.py).
METRICS_TOKEN = env_str("METRICS_TOKEN", "").strip()
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters (or unset).")
METRICS_ALLOWED_IPS = env_ip_networks("METRICS_ALLOWED_IPS")

# --- REST API (api/): requests each token may make per fixed window, counted in Redis (shared by every process).
API_RATE_LIMIT = env_int("API_RATE_LIMIT", 300, minimum=1)
API_RATE_WINDOW_S = env_int("API_RATE_WINDOW_S", 60, minimum=1, maximum=86400)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_FORMAT = env_choice("LOG_FORMAT", "text", choices=("text", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mission": {"()": "orchestrator_site.logging.MissionContextFilter"}},
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(name)s mission=%(mission)s %(message)s"},
        "json": {"()": "orchestrator_site.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "line",
            "filters": ["mission"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "autogen_core": {"level": "WARNING"},
        "autogen_agentchat": {"level": "WARNING"},
        "axes.apps": {"level": "WARNING"},  # a version banner on every start; lockouts still log from "axes"
    },
}
