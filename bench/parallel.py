"""Benchmark 2 (issue 11), parallel plans: four independent steps with 500 ms model latency.

The sim is scripted to draft a plan of four steps with no dependencies; every model answer waits 500 ms.
Each mission runs through a real Celery worker at concurrency 2, then at 4. Execution wall time runs from
the mission entering ``executing`` to its last step succeeding; the critical path is the longest step and
the serial sum the sum of the steps, both as measured in the same mission (so contention on this machine
lengthens them too). Goals: wall / critical path ≤ 1.2 and wall / serial sum ≤ 0.35.
"""

from decimal import Decimal

from common import Worker, figure, mission_wait, percentile, seed_company

STEPS = ("alpha", "beta", "gamma", "delta")
GOAL_CRITICAL = 1.2
GOAL_SERIAL = 0.35


def _plan(keys: tuple[str, ...]) -> dict:
    step = {"kind": "codegen", "role": "developer", "depends_on": [], "acceptance": ["tests pass"]}
    steps = [
        {
            **step,
            "key": key,
            "title": f"Module {key}",
            "instructions": f"Write {key} with tests.",
            "estimated_tokens": 1000,
        }
        for key in keys
    ]
    return {"summary": f"{len(keys)} independent modules side by side.", "steps": steps}


def mission_figures(mission) -> dict:
    """Execution wall, critical path and serial sum of one finished mission, in milliseconds."""
    from missions.models import Event, Step

    executing = mission.events.filter(kind=Event.Kind.STATUS, data__status="executing").order_by("seq").first()
    steps = list(Step.objects.filter(plan__mission=mission, status=Step.Status.SUCCEEDED))
    durations = [(s.finished_at - s.started_at).total_seconds() * 1000 for s in steps]
    wall = (max(s.finished_at for s in steps) - executing.created_at).total_seconds() * 1000
    return {
        "mission": str(mission.code),
        "steps": len(steps),
        "execution_wall_ms": round(wall, 1),
        "critical_path_ms": round(max(durations), 1),
        "serial_sum_ms": round(sum(durations), 1),
        "step_ms": sorted(round(d, 1) for d in durations),
        "wall_over_critical": round(wall / max(durations), 3),
        "wall_over_serial": round(wall / sum(durations), 3),
    }


def run(*, smoke: bool = False, concurrencies: tuple[int, ...] = (2, 4)) -> dict:
    from agents.sim.server import SimServer
    from missions.models import Mission
    from missions.services import mission_submit

    latency_ms, repeats, keys = (50, 1, STEPS[:2]) if smoke else (500, 2, STEPS)
    if smoke:
        concurrencies = concurrencies[:1]
    user = seed_company()
    measured: dict[int, list[dict]] = {}
    with SimServer(latency_ms=latency_ms) as sim:
        for concurrency in concurrencies:
            measured[concurrency] = []
            with Worker(llm_base_url=sim.base_url, concurrency=concurrency):
                for n in range(repeats):
                    sim.script({"role": "plan_draft", "times": 1, "reply": {"json": _plan(keys)}})
                    mission = mission_submit(
                        requester=user,
                        title=f"Parallel c{concurrency} {n}",
                        request=f"{len(keys)} independent modules",
                        budget_usd=Decimal("5.00"),
                        require_deploy_approval=False,
                    )
                    status = mission_wait(mission, timeout_s=600)
                    if status != Mission.Status.COMPLETED:
                        raise RuntimeError(f"mission {mission.code} ended {status}: {mission.failure_reason}")
                    measured[concurrency].append(mission_figures(mission))
    figures = []
    for concurrency, rows in measured.items():
        critical = percentile([row["wall_over_critical"] for row in rows], 50)
        serial = percentile([row["wall_over_serial"] for row in rows], 50)
        slots = f"{len(keys)} independent steps on {concurrency} worker slots"
        reason = (
            f"{slots}: about {len(keys) / concurrency:.1f}× the critical path when the steps take as long as each "
            "other, whatever the engine does"
            if concurrency < len(keys)
            else f"{critical:.2f}× with a slot for every step: dispatch and contention on {_cpus()} CPUs"
        )
        figures.append(
            figure(f"wall / critical path at -c {concurrency}", critical, "×", goal=GOAL_CRITICAL, gap=reason)
        )
        serial_reason = (
            f"{slots}: at best {1 / concurrency:.2f} of the serial sum, whatever the engine does"
            if concurrency < len(keys)
            else f"{serial:.2f} of the serial sum with a slot for every step"
        )
        figures.append(
            figure(f"wall / serial sum at -c {concurrency}", serial, "×", goal=GOAL_SERIAL, gap=serial_reason)
        )
        figures.append(
            figure(
                f"execution wall p50 at -c {concurrency}", percentile([r["execution_wall_ms"] for r in rows], 50), "ms"
            )
        )
        figures.append(
            figure(f"step wall p50 at -c {concurrency}", percentile([d for r in rows for d in r["step_ms"]], 50), "ms")
        )
    return {
        "title": "Parallel plans",
        "goal": f"{len(keys)} independent steps, {latency_ms} ms model latency: execution wall / critical path "
        f"≤ {GOAL_CRITICAL}, / serial sum ≤ {GOAL_SERIAL}, at worker concurrency 2 and 4",
        "size": {"steps": len(keys), "model_latency_ms": latency_ms, "missions_per_concurrency": repeats},
        "figures": figures,
        "details": {"missions": {f"c{c}": rows for c, rows in measured.items()}},
    }


def _cpus() -> int:
    import os

    return os.cpu_count() or 1
