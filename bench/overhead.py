"""Benchmark 1 (issue 11), orchestration overhead: what a mission costs beyond its model calls and test runs.

With the simulated model at zero latency, N missions (the sim's default plan: core, then api) run end to
end, one after another, through a real Celery worker (prefork, concurrency 2 as ``make run``). Per step:
wall time (claimed → succeeded) minus model time (the ledger's ``latency_ms`` of the step's calls) minus
sandbox time (its test runs' ``duration_s``); per mission the same from filing to finished. A second,
smaller pass runs with a ``git`` wrapper on the worker's PATH that logs every git subprocess, to show how
much of the rest is git. Run through the harness: ``make bench`` or ``python bench/harness.py overhead``.
"""

import os
import stat
import tempfile
from decimal import Decimal
from pathlib import Path

from common import Worker, figure, mission_wait, percentile, seed_company

GOAL_STEP_P50_MS = 25
CONCURRENCY = 2
GIT_WRAPPER = """#!/bin/bash
# Logs start, end (seconds) and the git command of every call, then passes the exit status on.
start=$EPOCHREALTIME
{git} "$@"
status=$?
echo "$start $EPOCHREALTIME $1" >> "$BENCH_GIT_LOG"
exit $status
"""


def _ms(delta) -> float:
    return delta.total_seconds() * 1000


def _missions_run(user, count: int, *, label: str) -> list:
    from missions.models import Mission
    from missions.services import mission_submit

    missions = []
    for n in range(count):
        mission = mission_submit(
            requester=user,
            title=f"Overhead {label} {n}",
            request="Benchmark the orchestration overhead",
            budget_usd=Decimal("3.00"),
            require_deploy_approval=False,
        )
        status = mission_wait(mission)
        if status != Mission.Status.COMPLETED:
            raise RuntimeError(f"mission {mission.code} ended {status}: {mission.failure_reason}")
        missions.append(mission)
    return missions


def step_rows(missions: list) -> list[dict]:
    """Per step: wall, model and sandbox milliseconds, the overhead they leave, and what happened meanwhile."""
    from django.db.models import Count, Sum

    from missions.models import Event, Step

    rows = []
    steps = Step.objects.filter(plan__mission__in=missions).select_related("plan__mission")
    steps = steps.annotate(model_ms=Sum("llmcall__latency_ms"), calls=Count("llmcall", distinct=True))
    for step in steps:
        sandbox_ms = sum(run.duration_s for run in step.test_runs.all()) * 1000
        wall_ms = _ms(step.finished_at - step.started_at)
        model_ms = float(step.model_ms or 0)
        events = Event.objects.filter(
            mission=step.plan.mission, created_at__gte=step.started_at, created_at__lte=step.finished_at
        ).count()
        rows.append(
            {
                "step": step.key,
                "wall_ms": round(wall_ms, 1),
                "model_ms": model_ms,
                "sandbox_ms": round(sandbox_ms, 1),
                "overhead_ms": round(wall_ms - model_ms - sandbox_ms, 1),
                "model_calls": step.calls,
                "test_runs": step.test_runs.count(),
                "events": events,
            }
        )
    return rows


def mission_rows(missions: list) -> list[dict]:
    """Per mission: filing to finished, minus all its model and sandbox time; its phases' wall times."""
    from django.db.models import Sum

    from missions.models import Event

    rows = []
    for mission in missions:
        mission.refresh_from_db()
        wall_ms = _ms(mission.finished_at - mission.created_at)
        model_ms = float(mission.llm_calls.aggregate(total=Sum("latency_ms"))["total"] or 0)
        sandbox_ms = sum(run.duration_s for run in mission.test_runs.all()) * 1000
        # Each status event opens a phase that lasts until the next one.
        marks = [((e.data or {}).get("status"), e.created_at) for e in mission.events.filter(kind=Event.Kind.STATUS)]
        marks = [(status, at) for status, at in marks if status]
        phases = {status: round(_ms(marks[i + 1][1] - at), 1) for i, (status, at) in enumerate(marks[:-1])}
        rows.append(
            {
                "mission": str(mission.code),
                "wall_ms": round(wall_ms, 1),
                "model_ms": model_ms,
                "sandbox_ms": round(sandbox_ms, 1),
                "overhead_ms": round(wall_ms - model_ms - sandbox_ms, 1),
                "model_calls": mission.llm_calls.count(),
                "events": mission.events.count(),
                "phase_ms": phases,
            }
        )
    return rows


def _git_trace(sim, user, count: int) -> dict:
    """Missions run with a logging git wrapper first on the worker's PATH: git calls and time per mission."""
    import shutil

    real_git = shutil.which("git")
    with tempfile.TemporaryDirectory(prefix="bench-git-") as scratch:
        wrapper = Path(scratch) / "git"
        wrapper.write_text(GIT_WRAPPER.format(git=real_git))
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        log = Path(scratch) / "git.log"
        log.touch()
        path = f"{scratch}{os.pathsep}{os.environ.get('PATH', '')}"
        with Worker(llm_base_url=sim.base_url, concurrency=CONCURRENCY, PATH=path, BENCH_GIT_LOG=str(log)):
            log.write_text("")  # from here on: only the traced missions' calls
            _missions_run(user, count, label="git trace")
        lines = [line.split() for line in log.read_text().splitlines() if line.strip()]
    commands: dict[str, int] = {}
    total_ms = 0.0
    for start, end, *command in lines:
        total_ms += (float(end) - float(start)) * 1000
        name = command[0] if command else "?"
        commands[name] = commands.get(name, 0) + 1
    return {
        "missions": count,
        "git_calls_per_mission": round(len(lines) / count, 1),
        "git_ms_per_mission": round(total_ms / count, 1),
        "first_argument_counts": dict(sorted(commands.items(), key=lambda item: -item[1])),
        "note": "git's first argument (often -C or a subcommand); the wrapper's own bash start is not counted",
    }


def run(*, smoke: bool = False) -> dict:
    from agents.sim.server import SimServer

    missions_n, warmup, traced = (1, 0, 0) if smoke else (20, 2, 3)
    user = seed_company()
    with SimServer(latency_ms=0) as sim:
        with Worker(llm_base_url=sim.base_url, concurrency=CONCURRENCY):
            _missions_run(user, warmup, label="warm-up")  # the worker's children import and connect lazily
            missions = _missions_run(user, missions_n, label="measured")
        git = _git_trace(sim, user, traced) if traced else None
    steps, per_mission = step_rows(missions), mission_rows(missions)
    step_over = [row["overhead_ms"] for row in steps]
    mission_over = [row["overhead_ms"] for row in per_mission]
    step_p50 = percentile(step_over, 50)
    median = sorted(steps, key=lambda row: row["overhead_ms"])[len(steps) // 2]
    where = (
        f"a median step: {median['wall_ms']:.0f} ms wall = {median['model_ms']:.0f} ms model "
        f"({median['model_calls']} calls) + {median['sandbox_ms']:.0f} ms sandbox + {median['overhead_ms']:.0f} ms "
        f"else, with {median['events']} events"
    )
    if git:
        where += f"; {git['git_calls_per_mission']:.0f} git calls taking {git['git_ms_per_mission']:.0f} ms a mission"
    gap = f"{step_p50:.0f} ms per step p50, {step_p50 / GOAL_STEP_P50_MS:.1f}× the goal (see where the time goes)"
    figures = [
        figure("step overhead p50", step_p50, "ms", goal=GOAL_STEP_P50_MS, gap=gap),
        figure("step overhead p90", percentile(step_over, 90), "ms"),
        figure("mission overhead p50", percentile(mission_over, 50), "ms"),
        figure("mission overhead p90", percentile(mission_over, 90), "ms"),
        figure("mission wall p50", percentile([row["wall_ms"] for row in per_mission], 50), "ms"),
        figure(
            "overhead share of mission wall p50",
            percentile([100 * row["overhead_ms"] / row["wall_ms"] for row in per_mission], 50),
            "%",
        ),
        figure("events per step p50", percentile([row["events"] for row in steps], 50), "events"),
        figure("model calls per step p50", percentile([row["model_calls"] for row in steps], 50), "calls"),
    ]
    if git:
        figures += [
            figure("git subprocesses per mission", git["git_calls_per_mission"], "calls"),
            figure("git time per mission", git["git_ms_per_mission"], "ms"),
        ]
    return {
        "title": "Orchestration overhead",
        "goal": f"≤ {GOAL_STEP_P50_MS} ms per step p50 beyond model and sandbox time (simulated model, 0 ms latency)",
        "size": {"missions": missions_n, "warmup_missions": warmup, "worker_concurrency": CONCURRENCY},
        "figures": figures,
        "details": {"where_time_goes": where, "git_trace": git, "steps": steps, "missions": per_mission},
    }
