"""The Prometheus exposition of /metrics: a registry of our own whose one collector reads the database."""

import logging
from collections.abc import Iterator

from django.conf import settings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestrator_site.redis_clients import redis_command_client
from telemetry.selectors import (
    GATE_WAIT_BUCKETS_S,
    LATENCY_BUCKETS_S,
    STEP_BUCKETS_S,
    Histogram,
    metrics_snapshot,
)

log = logging.getLogger(__name__)


def _buckets(bounds: tuple[float, ...], histogram: Histogram) -> list[tuple[str, float]]:
    return [(str(float(b)), c) for b, c in zip(bounds, histogram.counts, strict=True)] + [("+Inf", histogram.count)]


def _queue_depth() -> float | None:
    """Tasks waiting in the Celery queue (a Redis list); None when Redis does not answer."""
    try:
        with redis_command_client(timeout_s=2) as client:
            return float(client.llen(settings.CELERY_TASK_DEFAULT_QUEUE))
    except Exception as error:  # a scrape still reports the database figures
        log.warning("metrics: Redis queue depth unavailable: %s", type(error).__name__)
        return None


class DatabaseCollector(Collector):
    """Reads the figures at scrape time, so every process and host reports the same numbers."""

    def collect(self) -> Iterator[Metric]:
        snapshot = metrics_snapshot()

        missions = GaugeMetricFamily("mo_missions", "Missions by status.", labels=["status"])
        for status, n in snapshot.missions_by_status.items():
            missions.add_metric([status], n)
        yield missions

        calls = CounterMetricFamily("mo_llm_calls", "Model calls in the ledger.", labels=["model", "purpose", "status"])
        tokens = CounterMetricFamily(
            "mo_llm_tokens",
            "Model tokens billed; kind is input, cached (part of input) or output.",
            labels=["model", "purpose", "kind"],
        )
        cost = CounterMetricFamily("mo_llm_cost_usd", "Model cost in US dollars.", labels=["model", "purpose"])
        tokens_by_key: dict[tuple[str, str], list[int]] = {}
        cost_by_key: dict[tuple[str, str], float] = {}
        for row in snapshot.calls:
            key = (row["model_name"], row["purpose"])
            calls.add_metric([*key, row["status"]], row["calls"])
            summed = tokens_by_key.setdefault(key, [0, 0, 0])
            for i, field in enumerate(("tokens_in", "tokens_cached", "tokens_out")):
                summed[i] += row[field] or 0
            cost_by_key[key] = cost_by_key.get(key, 0.0) + float(row["cost"] or 0)
        for key, (tokens_in, tokens_cached, tokens_out) in tokens_by_key.items():
            tokens.add_metric([*key, "input"], tokens_in)
            tokens.add_metric([*key, "cached"], tokens_cached)
            tokens.add_metric([*key, "output"], tokens_out)
            cost.add_metric(list(key), cost_by_key[key])
        yield from (calls, tokens, cost)

        latency = HistogramMetricFamily(
            "mo_llm_call_latency_seconds", "Latency of settled model calls.", labels=["model", "purpose"]
        )
        for key, histogram in snapshot.call_latency.items():
            latency.add_metric(list(key), _buckets(LATENCY_BUCKETS_S, histogram), histogram.sum_s)
        yield latency

        steps = HistogramMetricFamily(
            "mo_step_duration_seconds", "Duration of finished steps, start to finish.", labels=["kind", "status"]
        )
        for key, histogram in snapshot.step_durations.items():
            steps.add_metric(list(key), _buckets(STEP_BUCKETS_S, histogram), histogram.sum_s)
        yield steps

        pending = GaugeMetricFamily("mo_gates_pending", "Approval gates waiting for a person.", labels=["kind"])
        oldest = GaugeMetricFamily(
            "mo_gate_oldest_pending_age_seconds", "How long the oldest pending gate has waited.", labels=["kind"]
        )
        for kind, (n, age_s) in snapshot.gates_pending.items():
            pending.add_metric([kind], n)
            oldest.add_metric([kind], age_s)
        yield from (pending, oldest)

        waits = HistogramMetricFamily(
            "mo_gate_wait_seconds", "Time from a gate's request to its decision.", labels=["kind"]
        )
        for kind, histogram in snapshot.gate_waits.items():
            waits.add_metric([kind], _buckets(GATE_WAIT_BUCKETS_S, histogram), histogram.sum_s)
        yield waits

        depth = _queue_depth()
        if depth is not None:
            queue = GaugeMetricFamily("mo_celery_queue_depth", "Tasks waiting in the Celery queue.", labels=["queue"])
            queue.add_metric([settings.CELERY_TASK_DEFAULT_QUEUE], depth)
            yield queue


def render_metrics() -> bytes:
    """The exposition text; a fresh registry each time keeps the process free of global metric state."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
