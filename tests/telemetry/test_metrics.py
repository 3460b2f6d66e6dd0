"""/metrics: Prometheus text computed from the database at scrape time, behind a token and/or an allow-list."""

import ipaddress
from datetime import timedelta
from decimal import Decimal

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents.models import LLMCall
from missions.models import Mission, Plan, Step
from reviews.models import ApprovalGate

TOKEN = "s3cret-metrics-token-0123456789"
QUEUE = "mo-telemetry-test-queue"


@pytest.fixture
def open_metrics(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []
    return {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


def _samples(response) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}."""
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def _call(mission, *, model, purpose, status=LLMCall.Status.OK, latency_ms=0, cost="0", **tokens):
    return LLMCall.objects.create(
        mission=mission,
        model_name=model,
        purpose=purpose,
        status=status,
        latency_ms=latency_ms,
        cost_usd=Decimal(cost),
        **tokens,
    )


@pytest.fixture
def rows(pm):
    """Missions in three states, five model calls, three finished steps, gates pending and decided."""
    now = timezone.now()
    running = Mission.objects.create(
        requester=pm, title="A", request="r", budget_usd=5, status=Mission.Status.EXECUTING
    )
    Mission.objects.create(requester=pm, title="B", request="r", budget_usd=5, status=Mission.Status.EXECUTING)
    done = Mission.objects.create(requester=pm, title="C", request="r", budget_usd=5, status=Mission.Status.COMPLETED)
    _call(
        running,
        model="sim-1",
        purpose="plan_draft",
        latency_ms=80,
        cost="0.010000",
        prompt_tokens=100,
        cached_tokens=40,
        completion_tokens=50,
    )
    _call(
        running,
        model="sim-1",
        purpose="plan_draft",
        latency_ms=700,
        cost="0.020000",
        prompt_tokens=200,
        completion_tokens=60,
    )
    _call(running, model="sim-1", purpose="plan_draft", status=LLMCall.Status.ERROR, latency_ms=3000)
    _call(running, model="sim-1", purpose="plan_draft", status=LLMCall.Status.PENDING, latency_ms=0)
    _call(
        done,
        model="big",
        purpose="step:codegen",
        latency_ms=45_000,
        cost="1.500000",
        prompt_tokens=1000,
        completion_tokens=500,
    )
    plan = Plan.objects.create(mission=running, version=1)
    for key, seconds, status in (("a", 3, "succeeded"), ("b", 40, "succeeded"), ("c", 4000, "failed")):
        Step.objects.create(
            plan=plan,
            key=key,
            title=key,
            role="d",
            status=status,
            started_at=now,
            finished_at=now + timedelta(seconds=seconds),
        )
    Step.objects.create(plan=plan, key="d", title="d", role="d", status="running", started_at=now)
    pending = ApprovalGate.objects.create(mission=running, kind="plan", question="q")
    ApprovalGate.objects.filter(pk=pending.pk).update(requested_at=now - timedelta(seconds=600))
    decided = ApprovalGate.objects.create(mission=done, kind="deploy", question="q", status="approved", decided_by=pm)
    ApprovalGate.objects.filter(pk=decided.pk).update(
        requested_at=now - timedelta(seconds=1000), decided_at=now - timedelta(seconds=800)
    )


def test_it_reports_the_database_figures_exactly(client, db, rows, open_metrics, settings):
    """Counts, token sums, costs and SQL-computed histogram buckets match the hand-made rows; the queue depth
    is the Redis list's length."""
    settings.CELERY_TASK_DEFAULT_QUEUE = QUEUE
    broker = redis.Redis.from_url(django_settings.REDIS_URL)
    broker.delete(QUEUE)
    broker.rpush(QUEUE, "t1", "t2", "t3")
    try:
        samples = _samples(client.get("/metrics", **open_metrics))
    finally:
        broker.delete(QUEUE)

    def value(name, **labels):
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("mo_missions", status="executing") == 2
    assert value("mo_missions", status="completed") == 1
    assert value("mo_llm_calls_total", model="sim-1", purpose="plan_draft", status="ok") == 2
    assert value("mo_llm_calls_total", model="sim-1", purpose="plan_draft", status="error") == 1
    assert value("mo_llm_calls_total", model="sim-1", purpose="plan_draft", status="pending") == 1
    assert value("mo_llm_tokens_total", model="sim-1", purpose="plan_draft", kind="input") == 300
    assert value("mo_llm_tokens_total", model="sim-1", purpose="plan_draft", kind="cached") == 40
    assert value("mo_llm_tokens_total", model="sim-1", purpose="plan_draft", kind="output") == 110
    assert value("mo_llm_cost_usd_total", model="sim-1", purpose="plan_draft") == pytest.approx(0.03)
    assert value("mo_llm_cost_usd_total", model="big", purpose="step:codegen") == pytest.approx(1.5)
    # Settled calls only (the pending one is not a latency yet): 80 ms, 700 ms, 3 s.
    latency = {"model": "sim-1", "purpose": "plan_draft"}
    assert value("mo_llm_call_latency_seconds_bucket", le="0.1", **latency) == 1
    assert value("mo_llm_call_latency_seconds_bucket", le="0.5", **latency) == 1
    assert value("mo_llm_call_latency_seconds_bucket", le="1.0", **latency) == 2
    assert value("mo_llm_call_latency_seconds_bucket", le="5.0", **latency) == 3
    assert value("mo_llm_call_latency_seconds_bucket", le="+Inf", **latency) == 3
    assert value("mo_llm_call_latency_seconds_count", **latency) == 3
    assert value("mo_llm_call_latency_seconds_sum", **latency) == pytest.approx(3.78)
    assert value("mo_llm_call_latency_seconds_bucket", le="30.0", model="big", purpose="step:codegen") == 0
    assert value("mo_llm_call_latency_seconds_bucket", le="60.0", model="big", purpose="step:codegen") == 1
    # Finished steps only: 3 s and 40 s succeeded, 4000 s failed; the running one is left out.
    assert value("mo_step_duration_seconds_bucket", le="5.0", kind="codegen", status="succeeded") == 1
    assert value("mo_step_duration_seconds_bucket", le="30.0", kind="codegen", status="succeeded") == 1
    assert value("mo_step_duration_seconds_bucket", le="60.0", kind="codegen", status="succeeded") == 2
    assert value("mo_step_duration_seconds_sum", kind="codegen", status="succeeded") == pytest.approx(43)
    assert value("mo_step_duration_seconds_bucket", le="3600.0", kind="codegen", status="failed") == 0
    assert value("mo_step_duration_seconds_bucket", le="+Inf", kind="codegen", status="failed") == 1
    assert ("mo_step_duration_seconds_count", (("kind", "codegen"), ("status", "running"))) not in samples
    assert value("mo_gates_pending", kind="plan") == 1
    assert value("mo_gate_oldest_pending_age_seconds", kind="plan") == pytest.approx(600, abs=30)
    assert value("mo_gate_wait_seconds_bucket", le="60.0", kind="deploy") == 0
    assert value("mo_gate_wait_seconds_bucket", le="300.0", kind="deploy") == 1
    assert value("mo_gate_wait_seconds_sum", kind="deploy") == pytest.approx(200)
    assert ("mo_gate_wait_seconds_count", (("kind", "plan"),)) not in samples
    assert value("mo_celery_queue_depth", queue=QUEUE) == 3


def test_it_runs_a_fixed_number_of_queries(client, db, pm, open_metrics, django_assert_max_num_queries):
    """A scrape costs five queries whether the ledger has a few rows or many."""
    mission = Mission.objects.create(requester=pm, title="A", request="r", budget_usd=5)
    LLMCall.objects.bulk_create(
        LLMCall(mission=mission, model_name=f"m{i % 7}", purpose=f"p{i % 5}", status="ok", latency_ms=i)
        for i in range(300)
    )
    with django_assert_max_num_queries(5):
        response = client.get("/metrics", **open_metrics)
    assert response.status_code == 200
    assert b'mo_llm_calls_total{model="m6",purpose="p4",status="ok"}' in response.content


@pytest.mark.parametrize(
    ("token", "allowed", "header", "remote", "status"),
    [
        ("", [], None, "127.0.0.1", 403),  # closed by default
        (TOKEN, [], None, "127.0.0.1", 401),
        (TOKEN, [], "Bearer wrong-token-wrong-token!!", "127.0.0.1", 401),
        (TOKEN, [], f"Basic {TOKEN}", "127.0.0.1", 401),
        (TOKEN, [], f"Bearer {TOKEN}", "127.0.0.1", 200),
        (TOKEN, [], f"bearer {TOKEN}", "10.1.2.3", 200),
        ("", ["10.0.0.0/8"], None, "10.1.2.3", 200),
        ("", ["10.0.0.0/8", "192.168.1.7/32"], None, "192.168.1.7", 200),
        ("", ["10.0.0.0/8"], None, "192.168.1.7", 403),
        ("", ["::1/128"], None, "::1", 200),
        (TOKEN, ["10.0.0.0/8"], f"Bearer {TOKEN}", "10.1.2.3", 200),  # both set: both required
        (TOKEN, ["10.0.0.0/8"], None, "10.1.2.3", 401),
        (TOKEN, ["10.0.0.0/8"], f"Bearer {TOKEN}", "192.168.1.7", 403),
    ],
)
def test_it_lets_in_only_what_the_settings_allow(client, db, settings, token, allowed, header, remote, status):
    """No token and no allow-list: 403. Token: a matching bearer header or 401. Allow-list: an address inside
    it or 403. Both: both. No login is ever asked for (no redirect)."""
    settings.METRICS_TOKEN = token
    settings.METRICS_ALLOWED_IPS = [ipaddress.ip_network(a) for a in allowed]
    extra = {"REMOTE_ADDR": remote}
    if header is not None:
        extra["HTTP_AUTHORIZATION"] = header
    response = client.get("/metrics", **extra)
    assert response.status_code == status
    if status == 200:
        assert response["Content-Type"].startswith("text/plain; version=")
        assert b"# TYPE mo_missions gauge" in response.content
    if status == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'


def test_it_refuses_other_methods(client, db, open_metrics):
    """Scrapes are GETs; a POST is refused."""
    assert client.post("/metrics", **open_metrics).status_code == 405
