"""OpenTelemetry traces of a mission: HTTP request → Celery task → model call → sandbox run.

On only when OTEL_EXPORTER_OTLP_ENDPOINT is set (OTLP over HTTP, batched). Off, no SDK provider is set up and
``span()`` yields None without touching OpenTelemetry, so the default costs one boolean test per span. Every span
carries ``mission.code`` when the work is about a mission (from the logging context, the same tag logs carry).
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from orchestrator_site.logging import current_mission

log = logging.getLogger(__name__)
TRACER_NAME = "mission-orchestrator"
_provider = None  # the SDK TracerProvider once set up in this process


def tracing_enabled() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())


def setup_tracing() -> bool:
    """Set up the SDK provider and OTLP/HTTP exporter once per process; False when tracing is off."""
    global _provider
    if not tracing_enabled():
        return False
    if _provider is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or "mission-orchestrator"
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        # The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT itself and posts to <endpoint>/v1/traces.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        # Our own provider, not OpenTelemetry's global one: only our spans are exported (not the libraries'),
        # and shutdown_tracing() can end it.
        _provider = provider
    return True


def shutdown_tracing() -> None:
    """Export what is buffered and stop (a process that ends, or a test that turned tracing on)."""
    global _provider
    if _provider is not None:
        provider, _provider = _provider, None
        provider.shutdown()


def _tracer():
    return _provider.get_tracer(TRACER_NAME)


def _attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    mission = attrs.pop("mission_code", None) or current_mission()
    clean = {k.replace("_", "."): v for k, v in attrs.items() if v is not None}
    if mission and mission != "-":
        clean["mission.code"] = str(mission)
    return clean


@contextmanager
def span(name: str, *, current: bool = True, **attrs: Any) -> Iterator[Any]:
    """A span around the block (None when tracing is off). ``model_name="x"`` becomes attribute ``model.name``.

    ``current=False`` does not make it the parent of spans started inside: for async generators, whose
    resumptions may run in another context, where detaching a context would fail.
    """
    if _provider is None:
        yield None
        return
    from opentelemetry import trace

    tracer = _tracer()
    if current:
        with tracer.start_as_current_span(name, attributes=_attributes(attrs)) as opened:
            yield opened
    else:
        opened = tracer.start_span(name, attributes=_attributes(attrs))
        try:
            yield opened
        except GeneratorExit:
            raise  # a consumer that stopped reading early: not a failure
        except BaseException as error:
            opened.record_exception(error)
            opened.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
            raise
        finally:
            opened.end()


def tag_current_span(code: str) -> None:
    """Name the mission on the span the current work runs in (nothing when tracing is off)."""
    if _provider is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attribute("mission.code", code)


class TracingMiddleware:
    """One server span per request, continuing a caller's trace (W3C traceparent). First in MIDDLEWARE."""

    def __init__(self, get_response) -> None:
        if not setup_tracing():
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from opentelemetry import context, trace
        from opentelemetry.propagate import extract

        token = context.attach(extract(request.headers))
        try:
            tracer = _tracer()
            attributes = {"http.request.method": request.method, "url.path": request.path}
            with tracer.start_as_current_span(
                f"{request.method} {request.path}", kind=trace.SpanKind.SERVER, attributes=attributes
            ) as opened:
                response = self.get_response(request)
                match = getattr(request, "resolver_match", None)
                if match is not None:
                    opened.update_name(f"{request.method} {match.route or request.path}")
                code = _mission_code(match, response)
                if code:
                    opened.set_attribute("mission.code", code)
                opened.set_attribute("http.response.status_code", response.status_code)
                return response
        finally:
            context.detach(token)


def _mission_code(match: Any, response: HttpResponse) -> str | None:
    """The mission a request was about: its URL's ``code``, or the mission page a form redirected to (filing)."""
    if match is not None and match.kwargs.get("code"):
        return str(match.kwargs["code"])
    location = response.get("Location", "") if 300 <= response.status_code < 400 else ""
    if location.startswith("/"):
        try:
            target = resolve(location.split("?", 1)[0])
        except Resolver404:
            return None
        if target.kwargs.get("code"):
            return str(target.kwargs["code"])
    return None


# --- Celery: the publisher puts the trace context in the message headers, the worker continues it.
_task_spans: dict[str, tuple[Any, Any]] = {}  # task id -> (span, context token)


def _inject_headers(headers: dict | None = None, **_: Any) -> None:
    if _provider is None or headers is None:
        return
    from opentelemetry.propagate import inject

    inject(headers)


def _start_task_span(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if _provider is None or task is None or task_id is None:
        return
    from opentelemetry import context, trace
    from opentelemetry.propagate import extract

    request = task.request
    carrier = {key: value for key, value in (request.headers or {}).items() if isinstance(value, str)}
    for key in ("traceparent", "tracestate"):  # Celery may also put custom headers on the request itself
        if isinstance(getattr(request, key, None), str):
            carrier[key] = getattr(request, key)
    parent = extract(carrier)
    opened = _tracer().start_span(
        f"celery {task.name}", context=parent, kind=trace.SpanKind.CONSUMER, attributes={"celery.task": task.name}
    )
    token = context.attach(trace.set_span_in_context(opened, parent))
    _task_spans[task_id] = (opened, token)


def _end_task_span(task_id: str | None = None, **_: Any) -> None:
    entry = _task_spans.pop(task_id or "", None)
    if entry is None:
        return
    from opentelemetry import context

    opened, token = entry
    opened.end()
    try:
        context.detach(token)
    except Exception as error:  # ended in another context than it began: the span is ended all the same
        log.debug("tracing: task context not detached: %s", error)


def _setup_in_worker(**_: Any) -> None:
    setup_tracing()


def _setup_in_pool_process(**_: Any) -> None:
    """A forked pool process starts its own provider: the exporter thread of the parent's did not survive."""
    global _provider
    _provider = None
    setup_tracing()


def _shutdown_in_pool_process(**_: Any) -> None:
    shutdown_tracing()


def connect_celery_signals() -> None:
    from celery.signals import (
        before_task_publish,
        task_postrun,
        task_prerun,
        worker_init,
        worker_process_init,
        worker_process_shutdown,
        worker_shutdown,
    )

    before_task_publish.connect(_inject_headers, weak=False)
    task_prerun.connect(_start_task_span, weak=False)
    task_postrun.connect(_end_task_span, weak=False)
    worker_init.connect(_setup_in_worker, weak=False)  # solo and thread pools run tasks in this process
    worker_process_init.connect(_setup_in_pool_process, weak=False)
    worker_process_shutdown.connect(_shutdown_in_pool_process, weak=False)
    worker_shutdown.connect(_shutdown_in_pool_process, weak=False)
