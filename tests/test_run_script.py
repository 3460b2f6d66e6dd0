"""`make run`'s supervisor: a worker or beat that exits is restarted with a backoff; daphne exiting stops all."""

import importlib.util
import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run(monkeypatch):
    """scripts/run.py as a module, with no children yet and a fast, small restart budget."""
    spec = importlib.util.spec_from_file_location("run_script", ROOT / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESTART_LIMIT", 3)
    yield module
    module.stop_all()


def _exits(code: int) -> list[str]:
    return [sys.executable, "-c", f"raise SystemExit({code})"]


LIVES = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_it_restarts_a_worker_that_exits_with_a_backoff_then_gives_up(run, capsys):
    """A worker that keeps dying is started again RESTART_LIMIT times, waiting longer each time; the web lives on."""
    web = run.start("web", LIVES)
    run.start("worker", _exits(3))
    run.supervise(poll_s=0.02, backoff_base_s=0.1)
    lines = [line for line in capsys.readouterr().out.splitlines() if "worker exited" in line]
    assert lines == [
        "[run] worker exited with 3; restarting it in 0.1s (restart 1 of 3 within 600s).",
        "[run] worker exited with 3; restarting it in 0.2s (restart 2 of 3 within 600s).",
        "[run] worker exited with 3; restarting it in 0.4s (restart 3 of 3 within 600s).",
        "[run] worker exited with 3, the 4th time within 600s; stopping.",
    ]
    assert web.poll() is None, "the web server was stopped while the worker was being restarted"
    worker = next(child for child in run.children if child.name == "worker")
    gaps = [b - a for a, b in zip(worker.restarts, list(worker.restarts)[1:], strict=False)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2, f"no backoff between restarts: {gaps}"


def test_it_stops_everything_when_the_web_server_exits(run, capsys):
    """daphne exiting is not restarted: supervise returns at once and says why."""
    run.start("worker", LIVES)
    run.start("web", _exits(1))
    run.supervise(poll_s=0.02)
    assert "[run] web exited with 1; stopping." in capsys.readouterr().out


def test_it_starts_the_simulated_model_as_slow_as_asked(run):
    """With no model configured the sim starts, waiting SIM_LATENCY_MS before every answer and
    SIM_CHUNK_DELAY_MS before each streamed piece of text, so answers visibly stream."""
    env = {"PATH": os.environ["PATH"], "SIM_LATENCY_MS": "5", "SIM_CHUNK_DELAY_MS": "120"}
    run.ensure_model(env)
    assert env["LLM_SIMULATED"] == "1"
    root = env["LLM_BASE_URL"].removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/_sim/latency", timeout=5) as response:  # noqa: S310 - the local sim
        assert json.loads(response.read()) == {"latency_ms": 5.0, "chunk_delay_ms": 120.0, "roles": None}


def test_it_starts_the_worker_with_worker_concurrency_processes(run):
    """The worker's command line carries -c WORKER_CONCURRENCY and consumes this instance's queue."""
    env = {"WORKER_CONCURRENCY": "7", "CELERY_QUEUE": "mo-elsewhere"}
    argv = run.worker_argv(env, concurrency=run.worker_concurrency(env))
    assert argv[argv.index("-c") + 1] == "7"
    assert argv[argv.index("-Q") + 1] == "mo-elsewhere"


@pytest.mark.parametrize(("cpus", "expected"), [(1, 4), (2, 4), (3, 6), (6, 12), (8, 16), (64, 16)])
def test_it_defaults_worker_concurrency_to_twice_the_cpus_from_4_to_16(run, monkeypatch, cpus, expected):
    """Unset or empty, WORKER_CONCURRENCY is 2 x the CPUs this process may use, at least 4, at most 16."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    for env in ({}, {"WORKER_CONCURRENCY": ""}):
        assert run.worker_concurrency(env) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "[run] WORKER_CONCURRENCY must be between 1 and 64, got 0."),
        ("65", "[run] WORKER_CONCURRENCY must be between 1 and 64, got 65."),
        ("-2", "[run] WORKER_CONCURRENCY must be between 1 and 64, got -2."),
        ("four", "[run] WORKER_CONCURRENCY must be a whole number, got 'four'."),
        ("2.5", "[run] WORKER_CONCURRENCY must be a whole number, got '2.5'."),
    ],
)
def test_it_refuses_a_bad_worker_concurrency_before_starting_anything(run, monkeypatch, value, message):
    """A bad WORKER_CONCURRENCY stops make run at once with a message naming it; nothing was started."""
    monkeypatch.setenv("WORKER_CONCURRENCY", value)
    with pytest.raises(SystemExit) as stopped:
        run.main()
    assert stopped.value.code == message
    assert run.children == []


def test_it_accepts_the_worker_concurrency_bounds(run):
    """1 and 64 are allowed."""
    assert [run.worker_concurrency({"WORKER_CONCURRENCY": v}) for v in ("1", "64", " 12 ")] == [1, 64, 12]
