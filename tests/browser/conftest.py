"""A live server for the browser: a real daphne process on the test database, plus Debian's chromium."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.live import free_port, wait_for_port
from tests.system import require_package

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def live_url(transactional_db, sim):
    """daphne serving HTTP and websockets against the test database, the sim as its model."""
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=_database_url(),
        LLM_BASE_URL=sim.base_url,
        LLM_SIMULATED="1",
        REDIS_URL=settings.REDIS_URL,
        CHANNELS_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        DATA_DIR=str(settings.DATA_DIR),
    )
    web = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "orchestrator_site.asgi:application"],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_for_port(port, web)
        yield f"http://127.0.0.1:{port}"
    finally:
        web.terminate()
        web.wait(timeout=10)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    require_package("chromium", executable is not None, "Debian's chromium drives the browser tests")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
