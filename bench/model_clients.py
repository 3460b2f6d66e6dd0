"""Issue 11 hotspot: what building a model client costs per call, with a new SSL context each time and shared.

In one process, like one worker child: the simulated model server (zero latency) in a thread, the mission's
profile pointed at it, and for each mode N clients built and closed (``model_client_for``), then N calls,
each in its own ``asyncio.run`` (a Celery task runs its own event loop) with a client built for it. Mode
``fresh`` forgets the process's SSL contexts before every client, which is what every call paid before
they were shared (``ssl.create_default_context``); mode ``shared`` is today's. Run through the harness:
``python bench/harness.py model_clients`` (or ``make bench``).
"""

import asyncio
import statistics
import time

from common import figure

CLIENTS = 200
CALLS = 100
GOAL_SHARED_BUILD_MS = 2.0  # our goal, not the issue's: building a client must not cost a TLS setup


def _build_ms(profile, n: int, *, fresh: bool) -> list[float]:
    from agents.runtime import clients

    times = []
    for _ in range(n):
        if fresh:
            clients._forget_ssl_contexts()
        start = time.perf_counter()
        client = clients.model_client_for(profile)
        times.append((time.perf_counter() - start) * 1000)
        asyncio.run(client.close())
    return times


def _call_ms(profile, n: int, *, fresh: bool) -> list[float]:
    from autogen_core.models import UserMessage

    from agents.runtime import clients

    async def one() -> None:
        client = clients.model_client_for(profile)
        try:
            await client.create([UserMessage(content="Say hello.", source="bench")])
        finally:
            await client.close()

    times = []
    for _ in range(n):
        if fresh:
            clients._forget_ssl_contexts()
        start = time.perf_counter()
        asyncio.run(one())
        times.append((time.perf_counter() - start) * 1000)
    return times


def run(*, smoke: bool = False) -> dict:
    from agents.models import ModelProfile
    from agents.runtime import clients
    from agents.sim.server import SimServer

    n_clients, n_calls = (5, 3) if smoke else (CLIENTS, CALLS)
    details = {}
    with SimServer(port=0, latency_ms=0) as sim:
        profile = ModelProfile(name="bench", base_url=sim.base_url, model_name="sim")
        _build_ms(profile, 3, fresh=False)  # imports, first connection
        for mode in ("fresh", "shared"):
            clients._forget_ssl_contexts()  # the shared mode builds its one context itself
            built = clients.SSL_CONTEXTS_BUILT
            fresh = mode == "fresh"
            build = _build_ms(profile, n_clients, fresh=fresh)
            calls = _call_ms(profile, n_calls, fresh=fresh)
            details[mode] = {
                "build_ms_median": round(statistics.median(build), 3),
                "build_ms_mean": round(statistics.mean(build), 3),
                "call_ms_median": round(statistics.median(calls), 3),
                "call_ms_mean": round(statistics.mean(calls), 3),
                "ssl_contexts_built": clients.SSL_CONTEXTS_BUILT - built,
            }
    fresh, shared = details["fresh"], details["shared"]
    return {
        "title": "Model clients: a new SSL context per call vs one per worker process and server",
        "goal": "reuse clients per worker and profile (issue 11, first hotspot); building one ≤ 2 ms (ours)",
        "size": {"clients": n_clients, "calls": n_calls},
        "figures": [
            figure("client build, fresh SSL context (before), median", fresh["build_ms_median"], "ms"),
            figure(
                "client build, shared SSL context, median",
                shared["build_ms_median"],
                "ms",
                goal=GOAL_SHARED_BUILD_MS,
                gap="a slow or loaded machine; the SSL context is no longer part of it",
            ),
            figure("call with its own loop and client, fresh (before), median", fresh["call_ms_median"], "ms"),
            figure("call with its own loop and client, shared, median", shared["call_ms_median"], "ms"),
            figure("SSL contexts built for all shared clients and calls", shared["ssl_contexts_built"], "contexts"),
        ],
        "details": details,
    }
