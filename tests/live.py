"""Helpers for tests that start real servers on this machine."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    """Block until something accepts connections on the port; fail if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            assert process.poll() is None, f"{process.args[:4]} exited with {process.returncode}"
            time.sleep(0.2)
    raise AssertionError(f"nothing listened on port {port} within {timeout}s")


class RedisServer:
    """A private redis-server on a free port, for tests that stop and restart it (never the shared one).

    Data is kept in an append-only file in ``directory``, so a restart is a restart, not a wipe:
    queued and unacknowledged tasks survive it, as they do on a Redis with persistence.
    """

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is required (apt-get install redis-server)"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        argv += ["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--loglevel", "warning"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "RedisServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def settings_load(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Load the settings in a fresh interpreter with ``env``, as start-up does (to see a bad value refused)."""
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def celery_worker_process(
    *, pool: str = "prefork", log: Path | None = None, node: str | None = None, **env: str
) -> subprocess.Popen:
    """A real Celery worker in its own process, on the test queue, database and data dir; ``env`` overrides.

    Its output goes to ``log`` when given; ``node`` names it (``-n node@%h``) for ``celery_workers_wait``.
    Stop it with ``worker_process_stop``.
    """
    from tests.browser.conftest import _database_url  # here: that conftest imports this module

    base = dict(
        os.environ,
        DATABASE_URL=_database_url(),
        LLM_SIMULATED="1",
        REDIS_URL=settings.REDIS_URL,
        CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        CHANNELS_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        DATA_DIR=str(settings.DATA_DIR),
    )
    argv = [sys.executable, "-m", "celery", "-A", "orchestrator_site", "worker", "-P", pool, "-c", "1"]
    argv += ["-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "--without-mingle", "--without-gossip", "-l", "WARNING"]
    if node:
        argv += ["-n", f"{node}@%h"]
    if log is None:
        return subprocess.Popen(argv, cwd=ROOT, env={**base, **env})
    with log.open("ab") as output:
        return subprocess.Popen(argv, cwd=ROOT, env={**base, **env}, stdout=output, stderr=subprocess.STDOUT)


def celery_workers_wait(nodes: list[str], timeout_s: float = 60) -> None:
    """Until every named worker answers a ping: a test that needs them all must not start before the slowest."""
    from orchestrator_site.celery import app

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5) or []
        answered = {name.split("@", 1)[0] for reply in replies for name in reply}
        if set(nodes) <= answered:
            return
    raise AssertionError(f"workers {nodes} did not all answer within {timeout_s:.0f}s")


def worker_process_stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
