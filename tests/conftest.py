"""Shared fixtures: personas, the seeded company, the simulated model server, a real Celery worker."""

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from agents.seed import seed_agents, seed_model_profile
from agents.sim.server import SimServer
from missions.seed import seed_templates
from missions.selectors import PRODUCT_MANAGERS_GROUP, REVIEWERS_GROUP
from tests.sandbox_support import fall_back_without_bwrap
from tests.system import missing_packages_line

PASSWORD = "correct horse battery staple"
SANDBOX_NOTE = fall_back_without_bwrap()


def password_logs_in(username: str, password: str) -> bool:
    """Log in through the login form, as a person (and Axes' throttling, which needs the request) would."""
    from django.contrib.auth import SESSION_KEY
    from django.test import Client

    client = Client()
    client.post("/login/", {"username": username, "password": password})
    return SESSION_KEY in client.session


@pytest.fixture
def company(db):
    """The seeded company: default model profile, C-suite and roster agents, the eight templates."""
    profile = seed_model_profile()
    seed_agents(profile)
    seed_templates()
    return profile


def _user(username: str, group: str | None = None):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, email=f"{username}@example.com")
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


@pytest.fixture
def pm(db):
    return _user("pm", PRODUCT_MANAGERS_GROUP)


@pytest.fixture
def reviewer(db):
    return _user("reviewer", REVIEWERS_GROUP)


@pytest.fixture
def outsider(db):
    """Logged in, but neither a product manager nor a reviewer."""
    return _user("outsider")


@pytest.fixture
def other_pm(db):
    return _user("other_pm", PRODUCT_MANAGERS_GROUP)


@pytest.fixture(scope="session")
def sim_server():
    with SimServer() as server:
        yield server


@pytest.fixture
def sim(sim_server, settings):
    """The simulated model server, wired in as the configured model, with a clean call log and no faults."""
    sim_server.state.clear_calls()
    sim_server.state.clear_faults()
    sim_server.state.clear_script()
    sim_server.state.reset_capabilities()
    sim_server.set_latency(0)
    sim_server.set_chunk_delay(0)
    settings.LLM_BASE_URL = sim_server.base_url
    settings.LLM_SIMULATED = True
    settings.LLM_MAX_RETRIES = 0
    return sim_server


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker in this process, consuming the test queue on the real Redis broker."""
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun
    from django.db import connections

    from orchestrator_site.celery import app

    def close_connections(**_):
        connections.close_all()  # as Celery's Django fixup does in a real worker

    task_postrun.connect(close_connections, weak=False)
    app.control.purge()
    with start_worker(
        app, pool="threads", concurrency=4, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
    ):
        yield app
    task_postrun.disconnect(close_connections)


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    """Poll until predicate() is truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"Timed out after {timeout}s waiting for {message}; last value: {value!r}")


def pytest_terminal_summary(terminalreporter):
    """Name the system packages whose absence made tests skip, in one line."""
    reasons = []
    for report in terminalreporter.stats.get("skipped", []):
        if isinstance(report.longrepr, tuple):
            reasons.append(str(report.longrepr[2]).removeprefix("Skipped: "))
    line = missing_packages_line(reasons)
    if line:
        terminalreporter.write_line(line, yellow=True, bold=True)
    if SANDBOX_NOTE:
        terminalreporter.write_line(SANDBOX_NOTE, yellow=True)
