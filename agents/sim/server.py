"""OpenAI-compatible HTTP front end for the deterministic responder.

Stdlib only so the demo and the test-suite can start it anywhere. Chat
completions go through ``responder.respond``; this module adds the transport:
ids, usage, SSE streaming, a FIFO of injected faults, per-test script rules
that override the default answers, and a call log - all reachable over
``/_sim/*`` so tests in another process can drive it.

Script rules (``POST /_sim/script`` with ``{"rules": [...]}``)::

    {"role": "plan_vote", "match": "Chief Financial Officer", "times": 1,
     "reply": {"json": {"stance": "object", "rationale": "...", "amendments": []}}}

For each completion the first rule of the detected role whose ``match`` (a
case-sensitive substring, optional) occurs in the messages' text answers it;
``times`` counts down and the rule goes at 0. Replies: ``{"json": value}``,
``{"raw": text}`` / ``{"text": text}`` (verbatim content), and for codegen
``{"variant": "fail_then_fix" | "always_fail"}``. Codegen rules are only
considered on a conversation's first request (no tool messages yet); the
variant then carries through the conversation via a marker in the code.

Capabilities (``POST /_sim/capabilities`` with e.g. ``{"json_schema": false}``,
``DELETE`` to restore them all) make the sim refuse what a smaller server
refuses: ``LLAMA_CPP_CAPABILITIES`` behaves like llama.cpp's server (no
``response_format`` json_schema, no usage in streams).

The sim honours ``max_tokens`` / ``max_completion_tokens`` like a real server:
a longer answer is cut and finishes with ``"length"``. Two faults model servers
that cannot be trusted with a budget: ``ignore_max_tokens`` sends the whole
answer whatever the limit, and ``overreport_usage`` (``"factor"``, default 10)
reports that many times the real usage. ``drop_stream`` hangs up halfway
through a streamed answer (a non-streamed one is answered normally). The
``500`` fault takes an optional ``"message"`` and ``"status"`` (another 4xx or 5xx)
for the error body. Any answering fault takes ``"chunk_chars"``: stream the
answer in pieces of that many characters (a server that sends big chunks);
``chunked`` does only that.
Every fault applies to ``"times"`` requests in a row (default 1).

Latency (``POST /_sim/latency`` with ``{"latency_ms": 0, "chunk_delay_ms": 300, "roles": ["codegen"]}``,
``--latency-ms`` / ``--chunk-delay-ms`` on the command line): ``latency_ms`` before every answer;
``chunk_delay_ms`` before each streamed chunk of answer text (not tool-call arguments), for the given roles
only (all when ``roles`` is null), so a test can watch a prose answer arrive piece by piece while the JSON
answers of the rest of a mission stay fast.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from . import responder
from .responder import Reply, ToolCall

MODEL_ID = "sim-1"
MODELS_BODY = {
    "object": "list",
    "data": [{"id": MODEL_ID, "object": "model", "owned_by": "mission-orchestrator"}],
}
FAULT_KINDS = (
    "429",
    "500",
    "timeout",
    "malformed",
    "bad_tool_args",
    "ignore_max_tokens",
    "overreport_usage",
    "drop_stream",
    "chunked",
)
MALFORMED_BODY = b'{"id": "chatcmpl-sim-broken", "choices": [ this is not json'
# What the sim accepts; a test switches some off to play a smaller server.
CAPABILITIES = ("json_schema", "json_object", "tools", "usage", "stream_usage")
LLAMA_CPP_CAPABILITIES = {"json_schema": False, "stream_usage": False}
_WORDS_PER_CHUNK = 3
_ARGS_PER_CHUNK = 48


class BadRequest(ValueError):
    """A request the sim refuses with HTTP 400, like OpenAI would."""


@dataclass
class Completion:
    """Everything needed to render one successful chat completion."""

    n: int
    model: str
    created: int
    reply: Reply
    usage: dict[str, Any]
    chunk_chars: int = 0  # stream in pieces of this many characters (0: a few words a chunk)

    @property
    def id(self) -> str:
        return f"chatcmpl-sim-{self.n}"

    def tool_calls_json(self) -> list[dict[str, Any]]:
        """OpenAI tool_calls list; ids are unique per response number."""
        return [
            {
                "id": _call_id(self.n, i),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for i, c in enumerate(self.reply.tool_calls)
        ]


def _call_id(n: int, index: int) -> str:
    return f"call_{n}" if index == 0 else f"call_{n}_{index}"


class SimState:
    """Thread-safe counters, fault queue, script rules and call log shared by handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = 0
        self._faults: deque[dict[str, Any]] = deque()
        self._rules: list[dict[str, Any]] = []
        self._calls: list[dict[str, Any]] = []
        self._capabilities = dict.fromkeys(CAPABILITIES, True)

    def set_capabilities(self, changes: Any) -> None:
        """Switch capabilities on or off, e.g. ``{"json_schema": False}``; unknown names are refused."""
        if not isinstance(changes, dict) or not all(
            name in CAPABILITIES and isinstance(on, bool) for name, on in changes.items()
        ):
            raise BadRequest(f"capabilities must map names in {list(CAPABILITIES)} to true/false: {changes!r}")
        with self._lock:
            self._capabilities.update(changes)

    def capabilities(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._capabilities)

    def reset_capabilities(self) -> None:
        with self._lock:
            self._capabilities = dict.fromkeys(CAPABILITIES, True)

    def next_n(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def add_faults(self, faults: list[dict[str, Any]]) -> None:
        for fault in faults:
            validate_fault(fault)
        with self._lock:
            self._faults.extend(dict(f) for f in faults)

    def pop_fault(self) -> dict[str, Any] | None:
        """The fault for this request; one with ``times`` left stays at the head of the queue."""
        with self._lock:
            if not self._faults:
                return None
            head = self._faults[0]
            head["times"] = int(head.get("times", 1)) - 1
            if head["times"] <= 0:
                self._faults.popleft()
            return dict(head)

    def pending_faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(f) for f in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def add_rules(self, rules: list[dict[str, Any]]) -> None:
        """Append script rules after validating all of them (none are added if one is bad)."""
        normalised = [validate_rule(rule) for rule in rules]
        with self._lock:
            self._rules.extend(normalised)

    def take_rule(self, role: str, text: str) -> dict[str, Any] | None:
        """Use up one turn of the first rule for ``role`` whose match occurs in ``text``."""
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule["role"] == role and (rule["match"] is None or rule["match"] in text):
                    rule["times"] -= 1
                    if rule["times"] <= 0:
                        del self._rules[index]
                    return copy.deepcopy(rule)
        return None

    def script_rules(self) -> list[dict[str, Any]]:
        """The remaining rules, with their remaining ``times``."""
        with self._lock:
            return copy.deepcopy(self._rules)

    def clear_script(self) -> None:
        with self._lock:
            self._rules.clear()

    def record(self, call: dict[str, Any]) -> None:
        with self._lock:
            self._calls.append(call)

    def calls(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self._calls]

    def mark(self, n: int, **fields: Any) -> None:
        """Add facts learnt after the answer went out (e.g. the client hung up mid-stream) to call ``n``."""
        with self._lock:
            for call in self._calls:
                if call["n"] == n:
                    call.update(fields)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()


def validate_fault(fault: Any) -> None:
    """Reject unknown fault kinds early so a typo in a test fails loudly."""
    if not isinstance(fault, dict) or str(fault.get("kind")) not in FAULT_KINDS:
        raise BadRequest(f"fault must be an object with kind in {list(FAULT_KINDS)}: {fault!r}")
    times = fault.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise BadRequest(f"fault times must be a positive integer: {fault!r}")
    factor = fault.get("factor", 10)
    if not isinstance(factor, int | float) or isinstance(factor, bool) or factor <= 0:
        raise BadRequest(f"fault factor must be a positive number: {fault!r}")
    chunk_chars = fault.get("chunk_chars", 1)
    if not isinstance(chunk_chars, int) or isinstance(chunk_chars, bool) or chunk_chars < 1:
        raise BadRequest(f"fault chunk_chars must be a positive integer: {fault!r}")
    status = fault.get("status", 500)
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise BadRequest(f"fault status must be a 4xx or 5xx code: {fault!r}")


def validate_rule(rule: Any) -> dict[str, Any]:
    """A normalised copy of a script rule; BadRequest explains what is wrong with a bad one."""
    if not isinstance(rule, dict):
        raise BadRequest(f"rule must be an object: {rule!r}")
    unknown = set(rule) - {"role", "match", "times", "reply"}
    if unknown:
        raise BadRequest(f"unknown rule fields {sorted(unknown)}: {rule!r}")
    role = rule.get("role")
    if role not in responder.ROLES:
        raise BadRequest(f"rule role must be one of {list(responder.ROLES)}: {rule!r}")
    match = rule.get("match")
    if match is not None and not isinstance(match, str):
        raise BadRequest(f"rule match must be a string: {rule!r}")
    times = rule.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise BadRequest(f"rule times must be a positive integer: {rule!r}")
    try:
        kind = responder.reply_kind(rule.get("reply"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    if kind == "variant" and role != "codegen":
        raise BadRequest(f"only codegen rules take a variant: {rule!r}")
    return {"role": role, "match": match, "times": times, "reply": copy.deepcopy(rule["reply"])}


def parse_chat_body(raw: bytes) -> dict[str, Any]:
    """Validate the request body the way the sim needs it (JSON object with messages)."""
    try:
        body = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("'messages' must be a non-empty array of message objects")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise BadRequest(f"'{name}' must be a positive integer")
    return body


def max_output_tokens(body: dict[str, Any]) -> int | None:
    """The request's output limit (``max_completion_tokens`` wins, as with OpenAI), or None."""
    return body.get("max_completion_tokens") or body.get("max_tokens")


def overreported(usage: dict[str, Any], factor: float) -> dict[str, Any]:
    """The ``overreport_usage`` fault: a usage block ``factor`` times the truth."""
    prompt = int(usage["prompt_tokens"] * factor)
    completion = int(usage["completion_tokens"] * factor)
    return {**usage, "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI-style error envelope."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def capability_refusal(body: dict[str, Any], capabilities: dict[str, bool]) -> tuple[int, dict[str, Any]] | None:
    """The error a server without some capability answers, in llama.cpp's words and error shape."""
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("json_schema", "json_object") and not capabilities[kind]:
        allowed = " or ".join(f'"{k}"' for k in ("text", "json_object") if k == "text" or capabilities[k])
        message = f"response_format type must be one of {allowed}, but got: {kind}"
        return 400, {"error": {"code": 400, "message": message, "type": "invalid_request_error"}}
    if body.get("tools") and not capabilities["tools"]:
        return 500, {"error": {"code": 500, "message": "tools param requires --jinja flag", "type": "server_error"}}
    return None


def completion_json(c: Completion) -> dict[str, Any]:
    """Non-streaming ``chat.completion`` object."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": c.reply.content,
        "refusal": None,
    }
    if c.reply.tool_calls:
        message["tool_calls"] = c.tool_calls_json()
    return {
        "id": c.id,
        "object": "chat.completion",
        "created": c.created,
        "model": c.model,
        "system_fingerprint": "sim",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": c.reply.finish_reason,
            }
        ],
        "usage": c.usage,
    }


def split_words(text: str, per_chunk: int = _WORDS_PER_CHUNK) -> list[str]:
    """Pieces of a few words each whose concatenation is exactly ``text``."""
    tokens = re.findall(r"\s*\S+\s*|\s+", text)
    return ["".join(tokens[i : i + per_chunk]) for i in range(0, len(tokens), per_chunk)]


def _split_fixed(text: str, size: int = _ARGS_PER_CHUNK) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_chunks(c: Completion, include_usage: bool) -> list[dict[str, Any]]:
    """``chat.completion.chunk`` objects in the order OpenAI sends them."""
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        base = {
            "id": c.id,
            "object": "chat.completion.chunk",
            "created": c.created,
            "model": c.model,
        }
        return {**base, "system_fingerprint": "sim", "choices": [choice], **extra}

    chunks = [chunk({"role": "assistant", "content": "" if not c.reply.tool_calls else None})]
    content = c.reply.content or ""
    pieces = _split_fixed(content, c.chunk_chars) if c.chunk_chars and content else split_words(content)
    chunks += [chunk({"content": piece}) for piece in pieces]
    for index, call in enumerate(c.tool_calls_json()):
        head = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"]},
        }
        head["function"]["arguments"] = ""
        chunks.append(chunk({"tool_calls": [head]}))
        for piece in _split_fixed(call["function"]["arguments"], c.chunk_chars or _ARGS_PER_CHUNK):
            chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    chunks.append(chunk({}, c.reply.finish_reason))
    if include_usage:
        base = {
            "id": c.id,
            "object": "chat.completion.chunk",
            "created": c.created,
            "model": c.model,
        }
        chunks.append({**base, "system_fingerprint": "sim", "choices": [], "usage": c.usage})
    return chunks


def _carries_text(chunk: dict[str, Any]) -> bool:
    return any((choice.get("delta") or {}).get("content") for choice in chunk.get("choices") or ())


def break_tool_args(reply: Reply) -> Reply:
    """The ``bad_tool_args`` fault: cut every call's arguments mid-JSON."""
    if not reply.tool_calls:
        return reply
    broken = tuple(
        ToolCall(name=c.name, arguments=c.arguments[: max(1, len(c.arguments) // 2)]) for c in reply.tool_calls
    )
    return Reply(role=reply.role, content=reply.content, tool_calls=broken)


class SimHandler(BaseHTTPRequestHandler):
    """Routes requests; one instance per request, state lives on the server."""

    protocol_version = "HTTP/1.1"
    server: _SimHTTPServer

    # ------------------------------------------------------------------ plumbing

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; the call log is the record."""

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_bytes(
        self,
        status: int,
        data: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send_json(
            404,
            error_body(f"no route for {self.command} {self.path}", "invalid_request_error"),
        )

    # ------------------------------------------------------------------ routing

    def do_GET(self) -> None:
        path = self._path()
        if path == "/healthz":
            self._send_json(200, {"ok": True})
        elif path in ("/v1/models", "/models"):
            self._send_json(200, MODELS_BODY)
        elif path == "/_sim/calls":
            self._send_json(200, {"calls": self.server.state.calls()})
        elif path == "/_sim/faults":
            self._send_json(200, {"faults": self.server.state.pending_faults()})
        elif path == "/_sim/script":
            self._send_json(200, {"rules": self.server.state.script_rules()})
        elif path == "/_sim/capabilities":
            self._send_json(200, {"capabilities": self.server.state.capabilities()})
        elif path == "/_sim/latency":
            self._send_json(200, self.server.latency())
        else:
            self._not_found()

    def do_POST(self) -> None:
        path = self._path()
        raw = self._read_body()
        if path in ("/v1/chat/completions", "/chat/completions"):
            self._chat_completions(raw)
        elif path == "/_sim/faults":
            self._post_faults(raw)
        elif path == "/_sim/script":
            self._post_script(raw)
        elif path == "/_sim/capabilities":
            self._post_capabilities(raw)
        elif path == "/_sim/latency":
            self._post_latency(raw)
        else:
            self._not_found()

    def do_DELETE(self) -> None:
        path = self._path()
        if path == "/_sim/faults":
            self.server.state.clear_faults()
            self._send_json(200, {"ok": True})
        elif path == "/_sim/calls":
            self.server.state.clear_calls()
            self._send_json(200, {"ok": True})
        elif path == "/_sim/script":
            self.server.state.clear_script()
            self._send_json(200, {"ok": True})
        elif path == "/_sim/capabilities":
            self.server.state.reset_capabilities()
            self._send_json(200, {"ok": True})
        else:
            self._not_found()

    def _post_faults(self, raw: bytes) -> None:
        try:
            faults = (json.loads(raw or b"{}") or {}).get("faults")
            if not isinstance(faults, list):
                raise BadRequest("body must be {'faults': [...]}")
            self.server.state.add_faults(faults)
        except (ValueError, AttributeError) as exc:
            self._send_json(400, error_body(str(exc), "invalid_request_error"))
            return
        self._send_json(200, {"ok": True, "queued": len(self.server.state.pending_faults())})

    def _post_script(self, raw: bytes) -> None:
        try:
            body = json.loads(raw or b"{}")
            rules = body.get("rules") if isinstance(body, dict) else None
            if not isinstance(rules, list):
                raise BadRequest("body must be {'rules': [...]}")
            self.server.state.add_rules(rules)
        except ValueError as exc:
            self._send_json(400, error_body(str(exc), "invalid_request_error"))
            return
        self._send_json(200, {"ok": True, "count": len(self.server.state.script_rules())})

    def _post_capabilities(self, raw: bytes) -> None:
        try:
            self.server.state.set_capabilities(json.loads(raw or b"{}"))
        except ValueError as exc:
            self._send_json(400, error_body(str(exc), "invalid_request_error"))
            return
        self._send_json(200, {"ok": True, "capabilities": self.server.state.capabilities()})

    def _post_latency(self, raw: bytes) -> None:
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise BadRequest("body must be an object")
            roles = body.get("roles")
            if roles is not None and not (isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
                raise BadRequest("roles must be a list of role names or null")
            self.server.set_latency(
                latency_ms=body.get("latency_ms", self.server.latency_ms),
                chunk_delay_ms=body.get("chunk_delay_ms", self.server.chunk_delay_ms),
                roles=roles,
            )
        except (ValueError, TypeError) as exc:
            self._send_json(400, error_body(str(exc), "invalid_request_error"))
            return
        self._send_json(200, {"ok": True, **self.server.latency()})

    # ------------------------------------------------------------------ chat completions

    def _chat_completions(self, raw: bytes) -> None:
        """Validate, wait the configured latency, then apply at most one fault.

        A fault that replaces the answer (429, 500, timeout, malformed) leaves the
        script rules untouched: the request the rule was meant for never got an answer.
        """
        state = self.server.state
        n = state.next_n()
        request_id = f"sim-{n}"
        try:
            body = parse_chat_body(raw)
        except BadRequest as exc:
            self._log(n, None, None, 400, False, None, None)
            self._send_json(
                400,
                error_body(str(exc), "invalid_request_error"),
                {"x-request-id": request_id},
            )
            return
        self.server.pause(self.server.latency_ms / 1000)
        role = responder.detect_role(body)
        model = str(body.get("model") or MODEL_ID)
        stream = bool(body.get("stream"))
        capabilities = state.capabilities()
        refusal = capability_refusal(body, capabilities)
        if refusal is not None:
            self._log(n, model, role, refusal[0], stream, None, None)
            self._send_json(refusal[0], refusal[1], {"x-request-id": request_id})
            return
        fault = state.pop_fault()
        kind = str(fault["kind"]) if fault else None
        if kind in ("429", "500", "timeout", "malformed"):
            self._apply_fault(fault, n, model, role, stream)
            return
        rule = None
        if role != "codegen" or responder.is_conversation_start(body):
            rule = state.take_rule(role, responder.conversation_text(body))
        reply = responder.respond(body, rule["reply"] if rule else None)
        if kind == "bad_tool_args":
            reply = break_tool_args(reply)
        limit = max_output_tokens(body)
        if limit is not None and kind != "ignore_max_tokens":
            reply = responder.limit_output(reply, limit)
        usage = responder.usage_for(body, reply)
        if kind == "overreport_usage":
            usage = overreported(usage, float(fault.get("factor", 10)))
        chunk_chars = int(fault.get("chunk_chars", 0)) if fault else 0
        completion = Completion(n, model, int(time.time()), reply, usage, chunk_chars)
        self._log(
            n,
            model,
            reply.role,
            200,
            stream,
            completion.usage,
            kind,
            scripted=rule is not None,
            parallel_tool_calls=body.get("parallel_tool_calls") if body.get("tools") else None,
        )
        state.mark(n, max_tokens=limit, finish_reason=reply.finish_reason)
        if stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._send_stream(completion, include_usage and capabilities["stream_usage"], drop=kind == "drop_stream")
        else:
            answer = completion_json(completion)
            if not capabilities["usage"]:
                del answer["usage"]
            self._send_json(200, answer, {"x-request-id": request_id})

    def _apply_fault(self, fault: dict[str, Any], n: int, model: str, role: str, stream: bool) -> None:
        kind = str(fault["kind"])
        headers = {"x-request-id": f"sim-{n}"}
        if kind == "429":
            retry_after = fault.get("retry_after", 1)
            self._log(n, model, role, 429, stream, None, kind)
            message = "Rate limit reached for sim-1 (simulated)."
            headers["Retry-After"] = str(retry_after)
            self._send_json(429, error_body(message, "requests", "rate_limit_exceeded"), headers)
        elif kind == "500":
            status = int(fault.get("status", 500))
            self._log(n, model, role, status, stream, None, kind)
            self._send_json(
                status,
                error_body(str(fault.get("message", "The server had an error (simulated).")), "server_error"),
                headers,
            )
        elif kind == "malformed":
            self._log(n, model, role, 200, stream, None, kind)
            if stream:
                self._send_bytes(
                    200,
                    b"data: " + MALFORMED_BODY + b"\n\n",
                    "text/event-stream",
                    headers,
                )
            else:
                self._send_bytes(200, MALFORMED_BODY, "application/json", headers)
        else:
            self._log(n, model, role, None, stream, None, kind)
            self.server.pause(float(fault.get("seconds", 30)))
            self.close_connection = True

    def _send_stream(self, completion: Completion, include_usage: bool, drop: bool = False) -> None:
        """SSE over chunked transfer encoding so keep-alive connections survive; ``drop`` hangs up halfway."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"sim-{completion.n}")
        self.end_headers()
        chunks = stream_chunks(completion, include_usage)
        delay_s = self.server.chunk_delay_s(completion.reply.role)
        events = [(f"data: {json.dumps(c)}\n\n", delay_s if _carries_text(c) else 0) for c in chunks]
        events.append(("data: [DONE]\n\n", 0))
        if drop:
            events = events[: len(events) // 2]
            self.close_connection = True
        try:
            for event, delay in events:
                self.server.pause(delay)
                data = event.encode()
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            if not drop:
                self.wfile.write(b"0\r\n\r\n")
        except ConnectionError:
            # The client stopped reading (e.g. it cut a runaway answer off): note it, as a real server would stop.
            self.server.state.mark(completion.n, aborted=True)
            self.close_connection = True

    def _log(
        self,
        n: int,
        model: str | None,
        role: str | None,
        status: int | None,
        stream: bool,
        usage: dict[str, Any] | None,
        fault: str | None,
        scripted: bool = False,
        parallel_tool_calls: bool | None = None,
    ) -> None:
        """Record before responding so a client that saw the answer also sees the entry.

        ``parallel_tool_calls`` is what a request with tools asked for (None: not sent, or no tools).
        """
        entry = {
            "n": n,
            "request_id": f"sim-{n}",
            "model": model,
            "role": role,
            "status": status,
        }
        entry["parallel_tool_calls"] = parallel_tool_calls
        self.server.state.record({**entry, "stream": stream, "usage": usage, "fault": fault, "scripted": scripted})


class _SimHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying sim state and a stop event that cuts sleeps short."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], latency_ms: float, chunk_delay_ms: float = 0) -> None:
        super().__init__(address, SimHandler)
        self.state = SimState()
        self.latency_ms = latency_ms
        self.chunk_delay_ms = chunk_delay_ms
        self.chunk_delay_roles: frozenset[str] | None = None  # None: every role
        self.stopping = threading.Event()

    def set_latency(self, *, latency_ms: float, chunk_delay_ms: float, roles: list[str] | None) -> None:
        self.latency_ms = max(0.0, float(latency_ms))
        self.chunk_delay_ms = max(0.0, float(chunk_delay_ms))
        self.chunk_delay_roles = None if roles is None else frozenset(roles)

    def latency(self) -> dict[str, Any]:
        roles = None if self.chunk_delay_roles is None else sorted(self.chunk_delay_roles)
        return {"latency_ms": self.latency_ms, "chunk_delay_ms": self.chunk_delay_ms, "roles": roles}

    def chunk_delay_s(self, role: str) -> float:
        if self.chunk_delay_roles is not None and role not in self.chunk_delay_roles:
            return 0.0
        return self.chunk_delay_ms / 1000

    def pause(self, seconds: float) -> None:
        """Sleep that returns early when the server stops."""
        if seconds > 0:
            self.stopping.wait(seconds)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up (e.g. after its own timeout) is normal; report anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class SimServer:
    """In-process handle: ``with SimServer() as sim: OpenAI(base_url=sim.base_url)``."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0, chunk_delay_ms: float = 0
    ) -> None:
        self.host = host
        self._requested_port = port
        self.latency_ms = latency_ms
        self.chunk_delay_ms = chunk_delay_ms
        self._httpd: _SimHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SimServer:
        """Bind and serve on a daemon thread; returns self for chaining."""
        if self._httpd is None:
            self._httpd = _SimHTTPServer((self.host, self._requested_port), self.latency_ms, self.chunk_delay_ms)
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="sim-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and release the port."""
        if self._httpd is None:
            return
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port 0)."""
        if self._httpd is None:
            raise RuntimeError("SimServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Root URL, where ``/healthz`` and ``/_sim/*`` live."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client should use as ``base_url``."""
        return f"{self.url}/v1"

    @property
    def state(self) -> SimState:
        """Direct access to faults, script rules and calls for in-process tests."""
        if self._httpd is None:
            raise RuntimeError("SimServer is not started")
        return self._httpd.state

    def add_faults(self, *faults: dict[str, Any]) -> None:
        """Queue faults, same as ``POST /_sim/faults``."""
        self.state.add_faults(list(faults))

    def calls(self) -> list[dict[str, Any]]:
        """Call log, same as ``GET /_sim/calls``."""
        return self.state.calls()

    def script(self, *rules: dict[str, Any]) -> None:
        """Append script rules, same as ``POST /_sim/script``."""
        self.state.add_rules(list(rules))

    def set_capabilities(self, **changes: bool) -> None:
        """Switch capabilities on or off, same as ``POST /_sim/capabilities``."""
        self.state.set_capabilities(changes)

    def set_latency(self, latency_ms: float) -> None:
        """How long every request waits before it is answered (a slower model), from now on."""
        if self._httpd is None:
            raise RuntimeError("SimServer is not started")
        self.latency_ms = self._httpd.latency_ms = max(0.0, float(latency_ms))

    def set_chunk_delay(self, chunk_delay_ms: float, *, roles: list[str] | None = None) -> None:
        """Wait this long before each streamed piece of answer text of these roles (all: None), from now on."""
        if self._httpd is None:
            raise RuntimeError("SimServer is not started")
        self._httpd.set_latency(latency_ms=self._httpd.latency_ms, chunk_delay_ms=chunk_delay_ms, roles=roles)
        self.chunk_delay_ms = self._httpd.chunk_delay_ms
