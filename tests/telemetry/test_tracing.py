"""OpenTelemetry traces: one trace per mission from the filing request through Celery tasks, model calls and
sandbox runs, exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set; nothing at all otherwise."""

import gzip
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.test import Client
from django.urls import reverse
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider

from missions.models import Mission
from telemetry import tracing
from tests.browser.conftest import _database_url
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == "/v1/traces":
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            self.server.requests.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def otlp(monkeypatch):
    """A tiny OTLP/HTTP collector; tracing on in this process while the test runs, off again after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "mo-test")
    yield server, endpoint
    tracing.shutdown_tracing()
    server.shutdown()


def _spans(server) -> list[dict]:
    spans = []
    for request in list(server.requests):
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: a.value.string_value or a.value.int_value for a in span.attributes}
                    spans.append(
                        {
                            "name": span.name,
                            "trace": span.trace_id.hex(),
                            "id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                            "service": service,
                            "attributes": attributes,
                        }
                    )
    return spans


@pytest.fixture
def traced_worker(otlp, sim):
    """A real prefork Celery worker process on the test queue and database, with tracing on."""
    from orchestrator_site.celery import app

    app.control.purge()
    env = dict(
        os.environ,
        DATABASE_URL=_database_url(),
        LLM_BASE_URL=sim.base_url,
        LLM_SIMULATED="1",
        REDIS_URL=settings.REDIS_URL,
        CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        CHANNELS_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        DATA_DIR=str(settings.DATA_DIR),
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp[1],
    )
    argv = [sys.executable, "-m", "celery", "-A", "orchestrator_site", "worker", "-P", "prefork", "-c", "1"]
    argv += ["-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "--without-mingle", "--without-gossip", "-l", "WARNING"]
    worker = subprocess.Popen(argv, cwd=ROOT, env=env)
    yield worker
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_traces_a_mission_from_the_request_to_the_sandbox(company, pm, otlp, traced_worker):
    """Filing a mission over HTTP starts a trace that the worker's tasks, the model calls and the sandbox runs
    continue: one trace id, each span naming the mission."""
    server, _ = otlp
    client = Client()
    client.force_login(pm)
    response = client.post(
        reverse("missions:new"),
        {
            "template": "",
            "title": "Traced",
            "request": "Add a health page.",
            "priority": "normal",
            "budget_usd": "3.50",
        },
    )
    assert response.status_code == 302, response.content
    mission = Mission.objects.get(title="Traced")

    def finished():
        mission.refresh_from_db()
        return mission.status if mission.is_finished else None

    assert wait_for(finished, timeout=180, message="the mission to finish") == Mission.Status.COMPLETED, (
        mission.failure_reason
    )
    tracing.shutdown_tracing()  # this process's request span is exported now
    code = str(mission.code)

    def chain():
        spans = _spans(server)
        names = {s["name"].split(" ")[0] for s in spans}
        return spans if {"POST", "celery", "llm.call", "sandbox.run"} <= names else None

    spans = wait_for(chain, timeout=30, message="request, task, model call and sandbox spans")
    request_span = next(s for s in spans if s["name"] == "POST missions/new/")
    assert request_span["service"] == "mo-test"
    assert request_span["attributes"]["mission.code"] == code
    mission_spans = [s for s in spans if s["trace"] == request_span["trace"]]
    # The trace context crossed the broker: the first task's parent is the request.
    children = [s["name"] for s in mission_spans if s["parent"] == request_span["id"]]
    assert "celery missions.tasks.advance_mission" in children, children
    for name in ("celery missions.tasks.run_step", "llm.call", "sandbox.run"):
        chosen = [s for s in mission_spans if s["name"] == name]
        assert chosen, f"no {name} span in the mission's trace: {sorted({s['name'] for s in spans})}"
        assert all(s["attributes"].get("mission.code") == code for s in chosen), chosen
    assert {s["trace"] for s in spans if s["attributes"].get("mission.code") == code} == {request_span["trace"]}


def test_it_sets_nothing_up_when_tracing_is_off(monkeypatch, client, pm):
    """Without OTEL_EXPORTER_OTLP_ENDPOINT: the middleware removes itself, no SDK provider or exporter exists,
    spans are None, and requests work as before."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    with pytest.raises(MiddlewareNotUsed):
        tracing.TracingMiddleware(lambda request: None)
    assert tracing.setup_tracing() is False
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    with tracing.span("sandbox.run", mission_code="m") as opened:
        assert opened is None
    client.force_login(pm)
    assert client.get(reverse("missions:list")).status_code == 200
    assert tracing._provider is None
