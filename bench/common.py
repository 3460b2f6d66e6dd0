"""What the benchmarks share: summary figures, the machine they ran on, figures with goals, real workers.

A benchmark module under bench/ exposes ``run(*, smoke: bool = False) -> dict`` returning ``title``,
``goal`` (the issue's words), ``figures`` (from ``figure``), optional ``gaps`` and ``details``; the
harness (bench/harness.py) adds the machine, the database, the date and the commit and writes the JSON.
Django is set up by the caller (the harness or pytest) before these helpers touch the database.
"""

import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stats(values: list[float]) -> dict:
    """Median, 95th percentile and maximum, in the values' unit, rounded to microseconds of a millisecond."""
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3),
        "max": round(ordered[-1], 3),
    }


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between the closest ranks; one value is its own."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 3)


def figure(
    name: str, value: float, unit: str, *, goal: float | None = None, at_most: bool = True, gap: str = ""
) -> dict:
    """One measured figure; with a goal, whether it is met (``at_most``: value ≤ goal, else ≥) and why not."""
    met = None if goal is None else (value <= goal if at_most else value >= goal)
    row = {"name": name, "value": value, "unit": unit, "goal": goal, "goal_op": "<=" if at_most else ">=", "met": met}
    if met is False:
        row["gap"] = gap or "not met; no reason recorded"
    return row


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def git_commit() -> str:
    """HEAD of the checkout the benchmark ran from, with ``-dirty`` when it had uncommitted changes."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def machine() -> dict:
    """What the figures depend on: CPUs, memory, Python, OS."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gb": _ram_gb(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "load_avg_1m": round(os.getloadavg()[0], 2),  # other work on a shared machine slows the figures
    }


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def database_url() -> str:
    """The database Django uses here (the test database under pytest), as a URL for a worker process."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def seed_company(username: str = "bench-pm"):
    """The seeded company (profile, agents, templates) and a requester for the benchmark's missions."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from agents.seed import seed_agents, seed_model_profile
    from missions.seed import seed_templates
    from missions.selectors import PRODUCT_MANAGERS_GROUP

    seed_agents(seed_model_profile())
    seed_templates()
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.groups.add(Group.objects.get_or_create(name=PRODUCT_MANAGERS_GROUP)[0])
    return user


class Worker:
    """A real Celery worker process on this process's queue, database and data dir, the given model server.

    ``env`` overrides its environment (e.g. a PATH with a git wrapper). Use as a context manager: it
    returns once the worker answers a ping, and stops it on exit.
    """

    def __init__(self, *, llm_base_url: str, concurrency: int, log: Path | None = None, **env: str) -> None:
        from django.conf import settings

        self.node = f"bench-{uuid.uuid4().hex[:8]}"
        self.env = dict(
            os.environ,
            DATABASE_URL=database_url(),
            LLM_BASE_URL=llm_base_url,
            LLM_SIMULATED="1",
            LLM_MAX_RETRIES="0",
            REDIS_URL=settings.REDIS_URL,
            CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
            CHANNELS_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
            DATA_DIR=str(settings.DATA_DIR),
            **env,
        )
        self.argv = [sys.executable, "-m", "celery", "-A", "orchestrator_site", "worker", "-P", "prefork"]
        self.argv += ["-c", str(concurrency), "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "-n", f"{self.node}@%h"]
        self.argv += ["--without-mingle", "--without-gossip", "-l", "WARNING"]
        self.log = log
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Worker":
        output = self.log.open("ab") if self.log else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT if self.log else None
            )
        finally:
            if self.log:
                output.close()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout_s: float = 60) -> None:
        from orchestrator_site.celery import app

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the benchmark's worker exited with {self.process.returncode}")
            replies = app.control.ping(timeout=0.5) or []
            if any(name.split("@", 1)[0] == self.node for reply in replies for name in reply):
                return
        raise RuntimeError(f"the benchmark's worker did not answer within {timeout_s:.0f}s")

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def mission_wait(mission, *, timeout_s: float = 300) -> str:
    """Block until the mission is finished or waits on a person; its status (raises on a timeout)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        mission.refresh_from_db()
        if mission.is_finished or mission.is_waiting:
            return mission.status
        time.sleep(0.1)
    raise RuntimeError(f"mission {mission.code} did not settle within {timeout_s:.0f}s (status {mission.status})")
