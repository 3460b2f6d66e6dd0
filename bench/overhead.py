"""Benchmark 1 (issue 11), orchestration overhead: what a mission costs beyond its model calls and test runs.

With the simulated model at zero latency, N missions (the sim's default plan: core, then api) run end to
end, one after another, through a real Celery worker (prefork, concurrency 2 as ``make run``). Per step:
wall time (claimed → succeeded) minus model time (the ledger's ``latency_ms`` of the step's calls) minus
sandbox time (its test runs' ``duration_s``); per mission the same from filing to finished. A second,
smaller pass runs with a ``git`` wrapper on the worker's PATH that logs every git subprocess, to show how
much of the rest is git. Run through the harness: ``make bench`` or ``python bench/harness.py overhead``.
"""

import os
import shlex
import stat
import tempfile
from decimal import Decimal
from pathlib import Path

from common import Worker, figure, mission_wait, percentile, seed_company

GOAL_STEP_P50_MS = 25
CONCURRENCY = 2
# Logs start and end (seconds) and the quoted arguments of every call, then passes git's exit status on.
# The log's path is written into the script: the workspace runs git in a clean environment (only PATH kept).
GIT_WRAPPER = """#!/bin/bash
start=$EPOCHREALTIME
{git} "$@"
status=$?
{{ printf '%s %s' "$start" "$EPOCHREALTIME"; printf ' %q' "$@"; echo; }} >> {log}
exit $status
"""
GIT_VALUED_OPTIONS = {"-c", "-C", "--git-dir", "--work-tree", "--namespace"}


def git_subcommand(arguments: list[str]) -> str:
    """The subcommand of a git call (``commit`` in ``git -c a=b -C dir commit -m x``)."""
    skip = False
    for argument in arguments:
        if skip:
            skip = False
        elif argument in GIT_VALUED_OPTIONS:
            skip = True
        elif not argument.startswith("-"):
            return argument
    return "?"


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
    """Per step (its last, successful attempt): wall, model and sandbox milliseconds, the overhead they leave,
    what happened meanwhile, and how long it waited for a worker once it was ready."""
    from django.db.models import Sum

    from agents.models import LLMCall
    from missions.models import Event, Step

    rows = []
    for mission in missions:
        executing = mission.events.filter(kind=Event.Kind.STATUS, data__status="executing").order_by("seq").first()
        steps = {step.key: step for step in Step.objects.filter(plan__mission=mission)}
        for step in steps.values():
            span = {"created_at__gte": step.started_at, "created_at__lte": step.finished_at}
            calls = LLMCall.objects.filter(step=step, **span)  # not an earlier, failed attempt's calls
            model_ms = float(calls.aggregate(total=Sum("latency_ms"))["total"] or 0)
            runs = list(step.test_runs.filter(**span))
            sandbox_ms = sum(run.duration_s for run in runs) * 1000
            wall_ms = _ms(step.finished_at - step.started_at)
            ready_at = max((steps[key].finished_at for key in step.depends_on), default=executing.created_at)
            rows.append(
                {
                    "step": step.key,
                    "attempt": step.attempt,
                    "wall_ms": round(wall_ms, 1),
                    "model_ms": model_ms,
                    "sandbox_ms": round(sandbox_ms, 1),
                    "overhead_ms": round(wall_ms - model_ms - sandbox_ms, 1),
                    "model_calls": calls.count(),
                    "test_runs": len(runs),
                    "events": Event.objects.filter(mission=mission, **span).count(),
                    "ready_to_claimed_ms": round(_ms(step.started_at - ready_at), 1),
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


def git_wrapper_install(directory: Path) -> Path:
    """A logging ``git`` in ``directory`` (put it first on PATH); returns the log it appends to."""
    import shutil

    log = directory / "git.log"
    log.touch()
    wrapper = directory / "git"
    wrapper.write_text(GIT_WRAPPER.format(git=shlex.quote(shutil.which("git")), log=shlex.quote(str(log))))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return log


def git_log_summary(log: Path, missions: int) -> dict:
    """Calls, time and subcommands in a wrapper's log, per mission."""
    commands: dict[str, int] = {}
    calls, total_ms = 0, 0.0
    for line in log.read_text().splitlines():
        start, end, *arguments = line.split()
        calls += 1
        total_ms += (float(end) - float(start)) * 1000
        name = git_subcommand(arguments)
        commands[name] = commands.get(name, 0) + 1
    return {
        "missions": missions,
        "git_calls_per_mission": round(calls / missions, 1),
        "git_ms_per_mission": round(total_ms / missions, 1),
        "subcommands": dict(sorted(commands.items(), key=lambda item: -item[1])),
        "note": "all traced missions together; the wrapper's own bash start is not counted in the time",
    }


def _git_trace(sim, user, count: int) -> dict:
    """Missions run with a logging git wrapper first on the worker's PATH: git calls and time per mission."""
    with tempfile.TemporaryDirectory(prefix="bench-git-") as scratch:
        log = git_wrapper_install(Path(scratch))
        path = f"{scratch}{os.pathsep}{os.environ.get('PATH', '')}"
        with Worker(llm_base_url=sim.base_url, concurrency=CONCURRENCY, PATH=path):
            log.write_text("")  # from here on: only the traced missions' calls
            _missions_run(user, count, label="git trace")
        return git_log_summary(log, count)


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
        f"else, with {median['events']} events; a ready step waits "
        f"{percentile([row['ready_to_claimed_ms'] for row in steps], 50):.0f} ms p50 to be claimed (not in its wall)"
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
        figure("step ready → claimed p50", percentile([row["ready_to_claimed_ms"] for row in steps], 50), "ms"),
        figure("steps that needed a second attempt", sum(row["attempt"] > 1 for row in steps), "steps"),
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
