"""Every benchmark of `make bench` runs at its smallest size, so the harness does not rot between real runs."""

import json
import sys
from pathlib import Path

import pytest
from django.db import connection

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # the benchmarks import bench/common.py as `common`, as the harness does

import harness  # noqa: E402 - bench/harness.py

MACHINE_FIELDS = {"cpu_count", "cpu_model", "ram_gb", "python", "os", "load_avg_1m", "load_avg_1m_after"}
RESULT_FIELDS = {"benchmark", "title", "goal", "smoke", "date", "commit", "database", "machine", "size"}
RESULT_FIELDS |= {"figures", "goal_met", "gaps", "details"}
FIGURE_FIELDS = {"name", "value", "unit", "goal", "goal_op", "met"}


def _written(name: str, out_dir: Path) -> dict:
    result = harness.benchmark_run(name, smoke=True)
    path = harness.result_write(result, out_dir)
    assert path == out_dir / f"{name}.json"
    return json.loads(path.read_text())


def _check(result: dict, name: str, goal_figures: set[str]) -> None:
    assert RESULT_FIELDS <= set(result), RESULT_FIELDS - set(result)
    assert (result["benchmark"], result["smoke"], result["database"]) == (name, True, connection.vendor)
    assert MACHINE_FIELDS <= set(result["machine"]) and result["machine"]["cpu_count"] >= 1
    assert len(result["commit"].removesuffix("-dirty")) == 40
    assert all(FIGURE_FIELDS <= set(row) for row in result["figures"])
    assert all(isinstance(row["value"], int | float) for row in result["figures"])
    with_goals = {row["name"] for row in result["figures"] if row["goal"] is not None}
    assert with_goals == goal_figures
    unmet = [row for row in result["figures"] if row["met"] is False]
    assert result["gaps"] == [f"{row['name']}: {row['gap']}" for row in unmet] and all(row["gap"] for row in unmet)
    assert result["goal_met"] == (not unmet if goal_figures else None)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_measures_orchestration_overhead_per_step_and_mission(tmp_path):
    """One mission through a real worker: the step and mission overheads, with the model and sandbox time taken out."""
    result = _written("overhead", tmp_path)
    _check(result, "overhead", {"step overhead p50"})
    steps = result["details"]["steps"]
    assert [row["step"] for row in steps] == ["core", "api"]
    for row in steps:
        assert row["model_calls"] > 0 and row["test_runs"] > 0 and row["events"] > 0
        assert row["overhead_ms"] == pytest.approx(row["wall_ms"] - row["model_ms"] - row["sandbox_ms"], abs=0.2)
    assert result["details"]["missions"][0]["phase_ms"]["executing"] > 0


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_measures_a_parallel_plan_against_its_critical_path_and_serial_sum(tmp_path):
    """Independent steps at concurrency 2: the wall time's ratios to the longest step and to their sum."""
    result = _written("parallel", tmp_path)
    _check(result, "parallel", {"wall / critical path at -c 2", "wall / serial sum at -c 2"})
    (mission,) = result["details"]["missions"]["c2"]
    assert mission["steps"] == 2
    assert mission["critical_path_ms"] <= mission["best_schedule_ms"] <= mission["serial_sum_ms"]
    assert mission["wall_over_serial"] == pytest.approx(mission["execution_wall_ms"] / mission["serial_sum_ms"], 0.01)


@pytest.mark.parametrize(
    ("durations", "slots", "best"),
    [
        ([5, 5, 5, 5], 2, 10),
        ([3, 3, 2, 2, 2], 2, 6),  # 3+3 and 2+2+2, not the longest-first greedy 3+2+2 / 3+2
        ([7, 5, 4, 3, 3], 2, 11),
        ([6, 5, 4, 3], 4, 6),
        ([6, 5, 4, 3], 1, 18),
    ],
)
def test_it_finds_the_best_schedule_of_independent_steps(durations, slots, best):
    """The floor of a parallel plan on a few workers: the shortest makespan, found exhaustively."""
    import parallel

    assert parallel.best_schedule_ms(durations, slots) == best


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "goals"),
    [("gate_queue", {"response median", "queries per page"}), ("live_updates", set())],
)
def test_it_runs_the_page_benchmarks_through_the_harness(tmp_path, name, goals):
    """The approval queue and live-update benchmarks write harness results too."""
    _check(_written(name, tmp_path), name, goals)


def _result(name: str, figures: list[dict]) -> dict:
    return {
        "benchmark": name,
        "title": name.title(),
        "goal": "as fast as it gets",
        "smoke": False,
        "date": "2026-12-04T21:00:00Z",
        "commit": "a" * 40,
        "database": "postgresql",
        "machine": {"cpu_count": 2, "cpu_model": "Test CPU", "ram_gb": 4.0, "python": "3.11.7", "os": "Linux"},
        "size": {"missions": 3},
        "figures": figures,
        "goal_met": all(row["met"] for row in figures if row["met"] is not None),
        "gaps": [f"{row['name']}: {row['gap']}" for row in figures if row["met"] is False],
        "details": {},
    }


def test_it_renders_a_table_per_benchmark_with_the_gaps_and_what_is_not_built(tmp_path):
    """BENCHMARKS.md: the machine, a row per figure with goal and verdict, the recorded reason of a missed goal."""
    from common import figure

    missed = figure("step overhead p50", 140.0, "ms", goal=25, gap="a new model client per call")
    met = figure("wall / critical path at -c 4", 1.05, "×", goal=1.2)
    (tmp_path / "overhead.json").write_text(json.dumps(_result("overhead", [missed])))
    (tmp_path / "parallel.json").write_text(json.dumps(_result("parallel", [met])))
    (tmp_path / "repo_tools.json").write_text(json.dumps({"what": "hand-run, before the harness"}))
    text = harness.markdown_render(tmp_path)
    assert "Machine: 2 × Test CPU, 4.0 GB RAM, Python 3.11.7, Linux" in text
    assert "| step overhead p50 | 140 ms | ≤ 25 ms | **no** |" in text
    assert "Gaps: step overhead p50: a new model client per call." in text
    assert "| wall / critical path at -c 4 | 1.05× | ≤ 1.2× | yes |" in text
    assert "| 1. Orchestration overhead | built: goal **not** met (see its gaps) |" in text
    assert "| 2. Parallel plans | built: goal met |" in text
    assert "| 6. Burst | not built:" in text
    assert "`bench/results/repo_tools.json`" in text


def test_it_counts_git_calls_through_the_wrapper(tmp_path):
    """The overhead benchmark's git wrapper runs git, passes its exit status on and logs subcommand and time."""
    import os
    import subprocess

    import overhead

    log = overhead.git_wrapper_install(tmp_path)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    repo = tmp_path / "repo"
    wrapper = str(tmp_path / "git")
    subprocess.run([wrapper, "-c", "init.defaultBranch=main", "init", "-q", str(repo)], env=env, check=True)
    failed = subprocess.run([wrapper, "-C", str(repo), "rev-parse", "HEAD"], env=env, capture_output=True)
    assert failed.returncode == 128  # no commit yet: git's own status, not the wrapper's
    summary = overhead.git_log_summary(log, missions=2)
    assert summary["subcommands"] == {"init": 1, "rev-parse": 1}
    assert summary["git_calls_per_mission"] == 1.0 and summary["git_ms_per_mission"] > 0


@pytest.mark.django_db
def test_it_measures_model_clients_with_a_fresh_and_a_shared_ssl_context(tmp_path):
    """A few clients and calls against the simulator, per mode; the shared mode builds one context."""
    result = _written("model_clients", tmp_path)
    _check(result, "model_clients", {"client build, shared SSL context, median"})
    assert result["details"]["shared"]["ssl_contexts_built"] == 1
    assert result["details"]["fresh"]["ssl_contexts_built"] == result["size"]["clients"] + result["size"]["calls"]
