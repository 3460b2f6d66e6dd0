"""Decide what the simulated model answers, from the request body alone.

Everything here is a pure function of the chat-completions request dict so the
demo and the tests get the same answer every time. The HTTP layer
(``server.py``) adds ids, faults and transport; this module only knows roles:

* ``plan_draft``  - structured plan JSON (response_format named ``PlanDraft``)
* ``plan_vote``   - structured vote JSON (response_format named ``PlanVote``)
* ``plan_review`` - structured review JSON (response_format named ``PlanReview``)
* ``specialist``  - a designed agent (response_format named ``SpecialistDesign``)
* ``budget_proposal`` - the CFO's budget increase (``BudgetProposal``): the budget again (or the call that did
  not fit), naming the top spender
* ``step_review`` - a peer review of a step's diff (response_format named ``StepReview``), anchored to the
  first added line of the diff; a ``[sim-review: ...]`` marker in the mission request scripts it
* ``codegen``     - a scripted tool-calling loop when ``write_file`` is offered
  (on a brief with a repository map, plans and code steps come from ``existing_repo``)
* ``chat``        - a short acknowledgement for anything else

Tests can override the default answer per request with a script rule (kept by
the server); ``scripted_reply`` turns a rule's ``reply`` into the answer. A
codegen conversation started with a ``fail_then_fix`` or ``always_fail``
variant is recognised on later turns by the ``# sim:buggy <variant>`` marker
in the module the assistant wrote earlier, so the responder stays stateless.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any

Body = dict[str, Any]
Message = dict[str, Any]

FALLBACK_MISSION = "the mission"
FALLBACK_KEY = "feature"
CHAT_PREFIX = "Acknowledged: "
_TOOLING_NAMES = frozenset({"pytest", "_pytest", "conftest", "pluggy"})

_MISSION_RE = re.compile(r"^\s*Mission:\s*(?P<title>.+?)\s*$", re.MULTILINE)
_TEMPLATE_RE = re.compile(r"^\s*Template:\s*(?P<slug>\S+)\s*$", re.MULTILINE)
_ROLE_NEEDED_RE = re.compile(r"^\s*Role needed:\s*(?P<role>.+?)\s*$", re.MULTILINE)
_AMENDMENTS_HEADER = "Amendments to merge:"
_STEP_RE = re.compile(
    r"^\s*Step:\s*(?P<key>[^\s—–:]+)\s*(?:(?:[—–:]|--?)\s*(?P<title>.*?))?\s*$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asks for; ids are assigned by the server."""

    name: str
    arguments: str


@dataclass(frozen=True)
class Reply:
    """The assistant turn the responder decided on."""

    role: str
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = field(default_factory=tuple)
    truncated: bool = False

    @property
    def finish_reason(self) -> str:
        """ "length" for an answer cut at max_tokens, else "tool_calls" whenever the turn carries calls (as OpenAI)."""
        if self.truncated:
            return "length"
        return "tool_calls" if self.tool_calls else "stop"


# --------------------------------------------------------------------------- text helpers


def message_text(message: Message) -> str:
    """Text a message contributes to the prompt: content plus tool-call name/args."""
    content = message.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    else:
        text = ""
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        text += str(function.get("name", "")) + str(function.get("arguments", ""))
    return text


def _messages(body: Body) -> list[Message]:
    return [m for m in body.get("messages") or [] if isinstance(m, dict)]


def _texts_by_role(body: Body, *roles: str) -> list[str]:
    return [message_text(m) for m in _messages(body) if m.get("role") in roles]


def last_user_text(body: Body) -> str:
    """The latest user turn; that is where briefs and mission lines live."""
    users = _texts_by_role(body, "user")
    return users[-1] if users else ""


def system_text(body: Body) -> str:
    """The first system (or newer "developer") message, which names the persona."""
    systems = _texts_by_role(body, "system", "developer")
    return systems[0] if systems else ""


def mission_title(body: Body) -> str:
    """Title from a ``Mission: <title>`` line in the last user message."""
    match = _MISSION_RE.search(last_user_text(body))
    return match.group("title") if match else FALLBACK_MISSION


# --------------------------------------------------------------------------- usage


def _quarter(text: str) -> int:
    return math.ceil(len(text) / 4)


def tool_calls_json(tool_calls: tuple[ToolCall, ...]) -> str:
    """Canonical text of a tool-call turn, used for completion token counting."""
    return json.dumps([{"name": c.name, "arguments": c.arguments} for c in tool_calls])


def prompt_tokens(body: Body) -> int:
    """ceil(len/4)+4 per message, plus ceil(len(tools json)/4); stays under bytes+8."""
    total = sum(_quarter(message_text(m)) + 4 for m in _messages(body))
    if body.get("tools"):
        total += _quarter(json.dumps(body["tools"]))
    return total


def completion_tokens(reply: Reply) -> int:
    """ceil(len/4)+1 of the content, or of the canonical tool-call text when the turn carries calls."""
    output = tool_calls_json(reply.tool_calls) if reply.tool_calls else (reply.content or "")
    return _quarter(output) + 1


def limit_output(reply: Reply, max_tokens: int) -> Reply:
    """The reply cut to at most ``max_tokens`` completion tokens, as a real server does (finish reason "length").

    Text is cut at the end; tool calls are dropped from the end and the last one kept has its
    arguments cut mid-JSON - exactly the broken call a client gets from a real truncated answer.
    """
    if completion_tokens(reply) <= max_tokens:
        return reply
    if not reply.tool_calls:
        content = (reply.content or "")[: max(max_tokens - 1, 0) * 4]
        return Reply(role=reply.role, content=content, truncated=True)
    calls = list(reply.tool_calls)
    while calls:
        last = calls.pop()
        if completion_tokens(_cut_last(reply, calls, last, 0)) <= max_tokens:
            low, high = 0, len(last.arguments)  # the longest prefix of the arguments that fits
            while low < high:
                middle = (low + high + 1) // 2
                fits = completion_tokens(_cut_last(reply, calls, last, middle)) <= max_tokens
                low, high = (middle, high) if fits else (low, middle - 1)
            return _cut_last(reply, calls, last, low)
    return Reply(role=reply.role, content="", truncated=True)


def _cut_last(reply: Reply, kept: list[ToolCall], last: ToolCall, length: int) -> Reply:
    calls = (*kept, ToolCall(name=last.name, arguments=last.arguments[:length]))
    return Reply(role=reply.role, content=reply.content, tool_calls=calls, truncated=True)


def usage_for(body: Body, reply: Reply) -> dict[str, Any]:
    """Deterministic OpenAI-shaped usage block for a request/reply pair."""
    prompt = prompt_tokens(body)
    completion = completion_tokens(reply)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


# --------------------------------------------------------------------------- role detection


SCHEMA_ROLES = {
    "PlanDraft": "plan_draft",
    "PlanVote": "plan_vote",
    "PlanReview": "plan_review",
    "SpecialistDesign": "specialist",
    "BudgetProposal": "budget_proposal",
    "StepReview": "step_review",
}
JSON_ROLES = tuple(SCHEMA_ROLES.values())
ROLES = (*JSON_ROLES, "codegen", "chat")


def _last_named_schema(text: str) -> str | None:
    """The schema name mentioned last in ``text`` (prompts end with "matching the schema X")."""
    positions = {name: text.rfind(name) for name in SCHEMA_ROLES}
    best = max(positions, key=lambda name: positions[name])
    return best if positions[best] >= 0 else None


def _schema_name(body: Body) -> str | None:
    """Which structured output is requested: json_schema name, or a name mentioned in json_object mode.

    In json_object mode the last user message decides (it carries the request and, on a
    repair turn, the schema name again); otherwise the whole conversation. Within a text
    the name mentioned last wins, so a review brief that quotes a "PlanDraft" but asks for
    a "PlanReview" is a review.
    """
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        return (response_format.get("json_schema") or {}).get("name")
    if kind == "json_object":
        return _last_named_schema(last_user_text(body)) or _last_named_schema(conversation_text(body))
    return None


def conversation_text(body: Body) -> str:
    """Every message's text joined by newlines: what a script rule's ``match`` is searched in."""
    return "\n".join(message_text(m) for m in _messages(body))


def is_conversation_start(body: Body) -> bool:
    """True before any tool has answered: the request that opens a codegen conversation."""
    return not any(m.get("role") == "tool" for m in _messages(body))


def _offers_tool(body: Body, name: str) -> bool:
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and (tool.get("function") or {}).get("name") == name:
            return True
    return False


def detect_role(body: Body) -> str:
    """A structured-output role (by schema name), then codegen, then chat - checked in that order."""
    schema = _schema_name(body)
    if schema in SCHEMA_ROLES:
        return SCHEMA_ROLES[schema]
    if _offers_tool(body, "write_file") and body.get("tool_choice") != "none":
        return "codegen"
    return "chat"


def respond(body: Body, script: dict[str, Any] | None = None) -> Reply:
    """Entry point: the assistant turn for a validated chat-completions body.

    ``script`` is the ``reply`` of a script rule the server matched for this request.
    """
    role = detect_role(body)
    if script is not None:
        return scripted_reply(role, body, script)
    return _ROLE_HANDLERS[role](body)


# --------------------------------------------------------------------------- scripted replies

CODEGEN_VARIANTS = ("fail_then_fix", "always_fail", "tamper_tests", "break_after_tests")
# tamper_tests: an adversarial agent hides its bug behind a conftest.py that reports every failure as a pass.
TAMPERING_CONFTEST = (
    "import pytest\n\n\n"
    "@pytest.hookimpl(hookwrapper=True)\n"
    "def pytest_runtest_makereport(item, call):\n"
    "    outcome = yield\n"
    "    report = outcome.get_result()\n"
    "    if report.failed:\n"
    '        report.outcome = "passed"\n'
)
CONTENT_REPLY_KEYS = ("json", "raw", "text")
BUGGY_MARKER = "# sim:buggy"
_VARIANT_RE = re.compile(re.escape(BUGGY_MARKER) + r" (?P<variant>" + "|".join(CODEGEN_VARIANTS) + r")\b")


def reply_kind(reply: Any) -> str:
    """The single key of a script reply (json, raw, text or variant); ValueError if malformed."""
    if not isinstance(reply, dict) or len(reply) != 1:
        raise ValueError(f"reply must be an object with exactly one of json, raw, text, variant: {reply!r}")
    (kind,) = reply
    if kind == "variant":
        if reply[kind] not in CODEGEN_VARIANTS:
            raise ValueError(f"variant must be one of {list(CODEGEN_VARIANTS)}: {reply[kind]!r}")
    elif kind in ("raw", "text"):
        if not isinstance(reply[kind], str):
            raise ValueError(f"reply {kind!r} must be a string")
    elif kind != "json":
        raise ValueError(f"reply must be an object with exactly one of json, raw, text, variant: {reply!r}")
    return kind


def scripted_reply(role: str, body: Body, reply: dict[str, Any]) -> Reply:
    """A script rule's answer: ``json`` is serialised, ``raw``/``text`` sent verbatim, ``variant`` drives codegen."""
    kind = reply_kind(reply)
    if kind == "variant":
        return codegen(body, variant=reply["variant"])
    if kind == "json":
        return Reply(role=role, content=json.dumps(reply["json"]))
    return Reply(role=role, content=reply[kind])


# --------------------------------------------------------------------------- plan_draft


TEMPLATE_ROLES = {
    "feature_implementation": "developer",
    "api_endpoint": "developer",
    "bug_fix": "developer",
    "code_review": "developer",
    "test_suite": "developer",
    "security_audit": "security",
    "documentation": "docs",
    "database_migration": "data",
}
MAX_ACCEPTANCE = 20
MAX_SUMMARY = 4000


def template_role(body: Body) -> str:
    """Role of the main step from a ``Template: <slug>`` line (developer when absent or unknown)."""
    match = _TEMPLATE_RE.search(last_user_text(body))
    return TEMPLATE_ROLES.get(match.group("slug").strip().lower(), "developer") if match else "developer"


def amendments(body: Body) -> list[str]:
    """The ``- <text>`` lines right after an ``Amendments to merge:`` line in the last user message."""
    lines = last_user_text(body).splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == _AMENDMENTS_HEADER]
    if not starts:
        return []
    found = []
    for line in lines[starts[0] + 1 :]:
        stripped = line.strip()
        if not stripped.startswith("-"):
            break
        text = stripped[1:].strip()
        if text:
            found.append(text)
    return found


def plan_draft(body: Body) -> Reply:
    """A two-step plan (core, then api) naming the mission; core's role follows the template.

    Amendments listed in the brief become acceptance checks of ``core`` and are named at
    the end of the summary, so a revised plan visibly differs from the first draft.
    """
    from agents.sim import existing_repo

    if existing_repo.carries_map(body):  # a mission on a project: plan against its code
        return existing_repo.plan_draft(body)
    title = mission_title(body)
    merged = amendments(body)
    core_acceptance = ["tests pass", "functions are pure and documented"]
    core_acceptance += merged[: MAX_ACCEPTANCE - len(core_acceptance)]
    summary = f"Deliver {title} in two steps: a tested core module, then an API layer on top of it."
    if merged:
        summary += f" Revised for: {'; '.join(merged)}."
        if len(summary) > MAX_SUMMARY:  # PlanDraft caps the summary; only absurdly long amendments get here
            summary = summary[: MAX_SUMMARY - 3] + "..."
    plan = {
        "summary": summary,
        "steps": [
            {
                "key": "core",
                "title": f"Core logic for {title}",
                "kind": "codegen",
                "role": template_role(body),
                "instructions": f"Implement the core logic for {title} as small pure functions with pytest tests.",
                "depends_on": [],
                "acceptance": core_acceptance,
                "estimated_tokens": 2000,
            },
            {
                "key": "api",
                "title": f"API layer for {title}",
                "kind": "codegen",
                "role": "developer",
                "instructions": f"Expose the core logic of {title} through small request/response helpers with tests.",
                "depends_on": ["core"],
                "acceptance": ["tests pass", "responses are JSON-serialisable"],
                "estimated_tokens": 2200,
            },
        ],
    }
    return Reply(role="plan_draft", content=json.dumps(plan))


# --------------------------------------------------------------------------- plan_vote

_ROLE_NAMES = {
    "chief executive officer": "CEO",
    "chief technology officer": "CTO",
    "chief financial officer": "CFO",
    "chief risk officer": "CRO",
}

_RATIONALES = {
    "CEO": "As CEO: the plan keeps the scope of {title} tight and ships user-visible value in two small steps.",
    "CTO": "As CTO: the plan for {title} is technically sound - a tested core first, then an API built on it.",
    "CFO": "As CFO: the estimated token cost of {title} is modest and fits within the budget; spend stays visible.",
    "CRO": "As CRO: the risks of {title} are contained - every step has tests as acceptance and the API waits on core.",
}

_PERSONA_RE = re.compile(r"You are\s+(?:the\s+|an?\s+)?(?P<name>[^.,;:\n(]+)(?:\((?P<abbr>[A-Za-z]{2,6})\))?")
_ACRONYM_RE = re.compile(r"\b(CEO|CTO|CFO|CRO)\b")


def voter_role(body: Body) -> tuple[str | None, str | None]:
    """(acronym, display name) of the voting persona, e.g. ("CTO", "Chief Technology Officer")."""
    match = _PERSONA_RE.search(system_text(body))
    if not match:
        return None, None
    name = match.group("name").strip()
    abbr = (match.group("abbr") or "").upper() or None
    for full, short in _ROLE_NAMES.items():
        if abbr is None and full in name.lower():
            abbr = short
    acronym = _ACRONYM_RE.search(name)
    if abbr is None and acronym:
        abbr = acronym.group(1)
    return abbr, name


def plan_vote(body: Body) -> Reply:
    """Always approve, with a rationale written from the voter's point of view."""
    title = mission_title(body)
    abbr, name = voter_role(body)
    if abbr in _RATIONALES:
        rationale = _RATIONALES[abbr].format(title=title)
    elif name:
        rationale = f"As {name}: the plan for {title} is clear, small and testable; no objections."
    else:
        rationale = f"The plan for {title} is clear, small and testable; no objections."
    vote = {"stance": "approve", "rationale": rationale, "amendments": []}
    return Reply(role="plan_vote", content=json.dumps(vote))


# --------------------------------------------------------------------------- plan_review


def plan_review(body: Body) -> Reply:
    """Approve with no findings."""
    return Reply(role="plan_review", content=json.dumps({"verdict": "approve", "findings": []}))


# --------------------------------------------------------------------------- specialist

SPECIALIST_TOOLS = ("list_files", "read_file", "search_code", "edit_file", "write_file", "run_tests", "commit")
FALLBACK_SPECIALIST_ROLE = "specialist"
MAX_ROLE = 60
MAX_NAME = 51


def needed_role(body: Body) -> str:
    """Role from a ``Role needed: <role>`` line in the last user message, normalised like PlanStepDraft.role."""
    match = _ROLE_NEEDED_RE.search(last_user_text(body))
    raw = match.group("role") if match else ""
    role = re.sub(r"[^a-z0-9_]+", "_", raw.strip().lower().replace(" ", "_")).strip("_")
    return role[:MAX_ROLE].rstrip("_") or FALLBACK_SPECIALIST_ROLE


def specialist_name(role: str) -> str:
    """``<role with dashes>-specialist``, kept within SpecialistDesign's ``^[a-z][a-z0-9-]{1,50}$``."""
    slug = re.sub(r"^[^a-z]+", "", role.replace("_", "-"))
    suffix = "specialist"
    if slug.endswith(suffix):
        slug = slug[: -len(suffix)].rstrip("-")
    slug = slug[: MAX_NAME - len(suffix) - 1].rstrip("-")
    return f"{slug}-{suffix}" if slug else suffix


def specialist(body: Body) -> Reply:
    """Design an execution agent for the needed role, e.g. ``accessibility-specialist``."""
    role = needed_role(body)
    words = role.replace("_", " ")
    name = specialist_name(role)
    title = words.title() if words.endswith("specialist") else f"{words.title()} Specialist"
    system_prompt = (
        f"You are the {title} of the mission team, an expert in {words} work. "
        f"You take the steps that need {words} expertise and carry them out carefully and completely. "
        "Work only through your tools: use list_files and read_file to understand the repository, "
        "and write_file to change it. For every change write pytest tests alongside the code, "
        "call run_tests and fix the code until they pass, then commit with a clear message. "
        "Finish with a short summary of what you did and anything the team should know."
    )
    design = {
        "name": name,
        "title": title,
        "role": role,
        "system_prompt": system_prompt,
        "tools": list(SPECIALIST_TOOLS),
    }
    return Reply(role="specialist", content=json.dumps(design))


# --------------------------------------------------------------------------- codegen


@dataclass(frozen=True)
class Brief:
    """What a codegen brief tells us: mission title, step key and step title."""

    mission: str
    key: str
    step_title: str

    @property
    def module(self) -> str:
        """Module name; avoids shadowing stdlib/pytest when imported from cwd."""
        clashes = self.key in sys.stdlib_module_names or self.key in _TOOLING_NAMES
        return f"{self.key}_step" if clashes else self.key


def _identifier(raw: str) -> str:
    """Coerce a step key into a Python identifier (fallback ``feature``)."""
    if raw.isidentifier():
        return raw
    cleaned = re.sub(r"\W+", "_", raw).strip("_").lower()
    if not cleaned:
        return FALLBACK_KEY
    return cleaned if cleaned.isidentifier() else f"step_{cleaned}"


def parse_brief(body: Body) -> Brief:
    """Read ``Mission:``/``Step:`` lines from the newest user message that has them."""
    users = _texts_by_role(body, "user")
    mission, key, step_title = FALLBACK_MISSION, FALLBACK_KEY, ""
    for text in reversed(users):
        step = _STEP_RE.search(text)
        if step or _MISSION_RE.search(text):
            found = _MISSION_RE.search(text)
            mission = found.group("title") if found else mission
            if step:
                key, step_title = (
                    _identifier(step.group("key")),
                    step.group("title") or "",
                )
            break
    return Brief(mission=mission, key=key, step_title=step_title or f"{key} for {mission}")


def _done_calls(body: Body) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, name, args) of earlier tool calls whose arguments parsed; broken ones get redone."""
    done = []
    for message in _messages(body):
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            try:
                args = json.loads(function.get("arguments") or "{}")
            except (TypeError, ValueError):
                continue
            done.append(
                (
                    str(call.get("id", "")),
                    str(function.get("name", "")),
                    args if isinstance(args, dict) else {},
                )
            )
    return done


def _tool_output(body: Body, call_id: str) -> str:
    """Content of the tool message answering ``call_id``."""
    for message in _messages(body):
        if message.get("role") == "tool" and message.get("tool_call_id") == call_id:
            return message_text(message)
    return ""


def _short(text: str, limit: int = 120) -> str:
    """Last non-empty line (pytest's summary line), trimmed."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else "no output"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def codegen(body: Body, variant: str | None = None) -> Reply:
    """Scripted loop: write module, write tests, run_tests, commit, then summarise.

    With a variant (given by a script rule on the first turn, or recognised from the
    ``# sim:buggy`` marker on later turns) the first module has a bug; see ``_codegen_variant``.
    """
    brief = parse_brief(body)
    variant = variant or conversation_variant(body)
    if variant is not None:
        return _codegen_variant(body, brief, variant)
    from agents.sim import existing_repo

    if existing_repo.conflicted_files(body):  # a resolve step after the default branch moved
        return existing_repo.resolve_conflicts(body)
    offered = all(_offers_tool(body, tool) for tool in ("search_code", "edit_file"))
    if offered and existing_repo.carries_map(body) and existing_repo.plans_step(body):
        return existing_repo.codegen(body)
    return default_codegen(body, brief)


def default_codegen(body: Body, brief: Brief) -> Reply:
    """Write a new module and its tests, run them, commit, summarise: the loop for an empty repository."""
    done = _done_calls(body)
    names = [name for _, name, _ in done]
    for name, args in _codegen_script(brief, revised=revision_note(body)):
        if name == "write_file":
            if any(a.get("path") == args["path"] for _, n, a in done if n == name):
                continue
        elif name in names or not _offers_tool(body, name):
            continue
        return Reply(
            role="codegen",
            tool_calls=(ToolCall(name=name, arguments=json.dumps(args)),),
        )
    return Reply(role="codegen", content=_codegen_summary(body, brief, done))


def conversation_variant(body: Body) -> str | None:
    """The variant named by a ``# sim:buggy <variant>`` marker in an earlier write_file call.

    The raw argument text is searched, so a call whose JSON was cut (bad_tool_args) still counts.
    """
    for message in _messages(body):
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            if function.get("name") == "write_file":
                match = _VARIANT_RE.search(str(function.get("arguments") or ""))
                if match:
                    return match.group("variant")
    return None


def tests_failed(output: str) -> bool:
    """Did a run_tests result report failure? The engine's results start with FAILED or PASSED;
    raw pytest output counts as failed when its summary has failures or errors."""
    text = output.lstrip()
    if text.startswith("FAILED"):
        return True
    if text.startswith("PASSED"):
        return False
    return bool(re.search(r"\b[1-9]\d* (?:failed|errors?)\b", output))


def buggy_source(module_source: str, variant: str) -> str:
    """The module with a marker comment on top and a wrong ``describe()`` at the end (its test fails)."""
    marker = f"{BUGGY_MARKER} {variant}: deliberate bug, describe() returns the wrong text\n"
    bug = (
        "\n\ndef describe() -> str:\n"
        '    """Deliberately wrong: the simulated model made a mistake."""\n'
        '    return "not " + STEP_KEY\n'
    )
    return marker + module_source + bug


def _codegen_variant(body: Body, brief: Brief, variant: str) -> Reply:
    """fail_then_fix: buggy module, tests, run (fails), correct module, run, commit, summary.
    always_fail: buggy module, tests, then run and rewrite the buggy module forever.
    tamper_tests: buggy module, tests, a conftest.py turning failures into passes, run ("passes"), commit.
    break_after_tests: correct module, tests, run (passes), then the buggy module, commit, without running again.

    Each turn is derived from the calls already made, like the default loop.
    """
    done = _done_calls(body)
    module_path, test_path = f"{brief.module}.py", f"test_{brief.module}.py"
    module_source, test_source = generated_sources(brief)
    buggy = buggy_source(module_source, variant)
    first = (
        f"{BUGGY_MARKER} {variant}: correct until edited\n{module_source}" if variant == "break_after_tests" else buggy
    )

    def call(name: str, args: dict[str, Any]) -> Reply:
        return Reply(role="codegen", tool_calls=(ToolCall(name=name, arguments=json.dumps(args)),))

    writes = [(i, args) for i, (_, name, args) in enumerate(done) if name == "write_file"]
    module_writes = [(i, str(args.get("content", ""))) for i, args in writes if args.get("path") == module_path]
    if not module_writes:
        return call("write_file", {"path": module_path, "content": first})
    if not any(args.get("path") == test_path for _, args in writes):
        return call("write_file", {"path": test_path, "content": test_source})
    if variant == "tamper_tests" and not any(args.get("path") == "conftest.py" for _, args in writes):
        return call("write_file", {"path": "conftest.py", "content": TAMPERING_CONFTEST})
    runs = [(i, call_id) for i, (call_id, name, _) in enumerate(done) if name == "run_tests"]
    if variant == "break_after_tests" and runs and len(module_writes) == 1:
        return call("write_file", {"path": module_path, "content": buggy})  # an edit after the green run
    if _offers_tool(body, "run_tests") and not (variant == "break_after_tests" and runs):
        if not runs or module_writes[-1][0] > runs[-1][0]:
            return call("run_tests", {})
        if tests_failed(_tool_output(body, runs[-1][1])):
            if variant == "always_fail":
                return call("write_file", {"path": module_path, "content": buggy})
            if all(BUGGY_MARKER in content for _, content in module_writes):
                return call("write_file", {"path": module_path, "content": module_source})
            # The fix was written and the tests still fail: stop trying, like the default loop would.
    names = [name for _, name, _ in done]
    if "commit" not in names and _offers_tool(body, "commit"):
        return call("commit", {"message": f"{brief.key}: {brief.step_title}"})
    summary = _codegen_summary(body, brief, done)
    if variant == "fail_then_fix" and BUGGY_MARKER not in module_writes[-1][1]:
        summary += f" Fixed a bug in {module_path} after a failing test run."
    return Reply(role="codegen", content=summary)


def _codegen_script(brief: Brief, revised: str = "") -> list[tuple[str, dict[str, Any]]]:
    module_source, test_source = generated_sources(brief)
    if revised:  # a revision after review: the same module with a note on top, so the change is visible
        module_source = f"# {revised}\n{module_source}"
    return [
        ("write_file", {"path": f"{brief.module}.py", "content": module_source}),
        ("write_file", {"path": f"test_{brief.module}.py", "content": test_source}),
        ("run_tests", {}),
        ("commit", {"message": f"{brief.key}: {brief.step_title}"}),
    ]


def _codegen_summary(body: Body, brief: Brief, done: list[tuple[str, str, dict[str, Any]]]) -> str:
    paths = list(
        dict.fromkeys(str(args.get("path")) for _, name, args in done if name == "write_file" and args.get("path"))
    )
    runs = [call_id for call_id, name, _ in done if name == "run_tests"]
    outcome = _short(_tool_output(body, runs[-1])) if runs else "not run"
    files = " and ".join(paths) if paths else "no files"
    return f"Step {brief.key} ({brief.step_title}) done: wrote {files}; tests: {outcome}."


# --------------------------------------------------------------------------- generated code

_TEXT_MODULE = '''__DOC__

MISSION = __MISSION__
STEP_KEY = __KEY__
STEP_TITLE = __TITLE__


def slugify(text: str) -> str:
    """Turn free text into a lowercase, dash-separated identifier."""
    words = "".join(ch.lower() if ch.isalnum() else " " for ch in text).split()
    return "-".join(words)


def word_count(text: str) -> int:
    """Count whitespace-separated words, ignoring repeated spaces."""
    return len(text.split())


def chunk(items: list, size: int) -> list[list]:
    """Split items into consecutive lists of at most ``size`` elements."""
    if size < 1:
        raise ValueError("size must be positive")
    return [items[i : i + size] for i in range(0, len(items), size)]


def describe() -> str:
    """One-line description of this step, for logs and summaries."""
    return f"{STEP_KEY}: {STEP_TITLE}"
'''

_TEXT_TESTS = '''"""Tests for the __NAME__ module."""

import pytest

import __NAME__


def test_slugify_lowercases_and_dashes():
    assert __NAME__.slugify("Hello, World!") == "hello-world"


def test_slugify_of_blank_is_empty():
    assert __NAME__.slugify("   ") == ""


def test_word_count_ignores_extra_spaces():
    assert __NAME__.word_count("one  two three ") == 3


def test_chunk_splits_evenly_and_keeps_rest():
    assert __NAME__.chunk([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]


def test_chunk_rejects_non_positive_size():
    with pytest.raises(ValueError):
        __NAME__.chunk([1], 0)


def test_describe_names_the_step():
    assert __NAME__.describe() == __DESCRIPTION__
    assert __NAME__.MISSION == __MISSION__
'''

_API_MODULE = '''__DOC__

MISSION = __MISSION__
STEP_KEY = __KEY__
STEP_TITLE = __TITLE__


def make_response(status: int, data: dict) -> dict:
    """Wrap data in a JSON-style envelope with an ok flag."""
    return {"status": status, "ok": 200 <= status < 300, "data": data}


def parse_query(query: str) -> dict:
    """Parse ``a=1&b=2`` into a dict; later keys win and blanks are skipped."""
    result = {}
    for part in query.lstrip("?").split("&"):
        if part:
            key, _, value = part.partition("=")
            result[key] = value
    return result


def route_key(method: str, path: str) -> str:
    """Normalise a route into ``METHOD /path`` for lookup tables."""
    return f"{method.upper()} /{path.strip('/')}"


def describe() -> str:
    """One-line description of this step, for logs and summaries."""
    return f"{STEP_KEY}: {STEP_TITLE}"
'''

_API_TESTS = '''"""Tests for the __NAME__ module."""

import __NAME__


def test_make_response_marks_success():
    assert __NAME__.make_response(200, {"x": 1}) == {"status": 200, "ok": True, "data": {"x": 1}}


def test_make_response_marks_errors():
    assert __NAME__.make_response(404, {})["ok"] is False


def test_parse_query_handles_blanks_and_repeats():
    assert __NAME__.parse_query("?a=1&&b=&a=2") == {"a": "2", "b": ""}


def test_route_key_normalises_slashes():
    assert __NAME__.route_key("get", "/items/") == "GET /items"


def test_describe_names_the_step():
    assert __NAME__.describe() == __DESCRIPTION__
    assert __NAME__.MISSION == __MISSION__
'''

_API_WORDS = ("api", "http", "route", "endpoint", "view", "server", "web", "rest")
_PLACEHOLDER_RE = re.compile(r"__(DOC|MISSION|KEY|TITLE|NAME|DESCRIPTION)__")


def _fill(template: str, values: dict[str, str]) -> str:
    """Single-pass substitution so titles containing placeholders stay inert."""
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)


def generated_sources(brief: Brief) -> tuple[str, str]:
    """(module source, test source); every embedded title goes through repr()."""
    api_like = any(word in brief.key.lower() for word in _API_WORDS)
    module_template, test_template = (_API_MODULE, _API_TESTS) if api_like else (_TEXT_MODULE, _TEXT_TESTS)
    doc = f"{brief.step_title} (step {brief.key!s}) for mission {brief.mission}."
    values = {
        "DOC": repr(doc),
        "MISSION": repr(brief.mission),
        "KEY": repr(brief.key),
        "TITLE": repr(brief.step_title),
        "NAME": brief.module,
        "DESCRIPTION": repr(f"{brief.key}: {brief.step_title}"),
    }
    return _fill(module_template, values), _fill(test_template, values)


# --------------------------------------------------------------------------- budget_proposal

_BUDGET_RE = re.compile(r"^\s*Budget:\s*\$(?P<amount>\d+(?:\.\d+)?)\s*$", re.MULTILINE)
_NEEDED_RE = re.compile(r"may cost up to \$(?P<amount>\d+(?:\.\d+)?)")
_SPENDER_RE = re.compile(r"^Spend per agent:\n- (?P<agent>[^\n:]+): \$(?P<cost>[\d.]+)", re.MULTILINE)


def budget_proposal(body: Body) -> Reply:
    """Double the budget (``Budget: $X`` in the brief; $1.00 without one), or more if the call that did not fit
    ("may cost up to $Y") needs more, naming the agent that spent the most."""
    text = last_user_text(body)
    found, needed = _BUDGET_RE.search(text), _NEEDED_RE.search(text)
    cents = max(1, round(float(found.group("amount")) * 100)) if found else 100
    if needed:
        cents = max(cents, math.ceil(float(needed.group("amount")) * 100))
    amount = f"{cents // 100}.{cents % 100:02d}"
    spender = _SPENDER_RE.search(text)
    top = f"{spender.group('agent')} spent the most (${spender.group('cost')})" if spender else "Nothing was spent yet"
    rationale = f"As CFO: {top}. Adding ${amount} lets the remaining work finish at the rate so far."
    return Reply(role="budget_proposal", content=json.dumps({"increase_usd": amount, "rationale": rationale}))


# --------------------------------------------------------------------------- step_review

# In the mission request: "[sim-review: reject]" rejects every step; "[sim-review: changes-once]" asks for
# changes in round 1 and approves after; "[sim-review: changes]" asks for changes every round.
_REVIEW_MARKER_RE = re.compile(r"\[sim-review:\s*(?P<mode>reject|changes-once|changes)\s*\]")
_REVIEW_ROUND_RE = re.compile(r"^Review round:\s*(?P<round>\d+)", re.MULTILINE)
_REVISION_RE = re.compile(r"^Review round (?P<round>\d+) asked for changes", re.MULTILINE)
_DIFF_HUNK_RE = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<start>\d+)(?:,\d+)? @@")
_REVIEWER_RE = re.compile(r"You are the (?P<title>[A-Z][A-Za-z ]*Reviewer|[A-Z][A-Za-z ]*Specialist)")


def revision_note(body: Body) -> str:
    """ "Revised after review round N." when the codegen brief carries reviewers' change requests, else ""."""
    match = _REVISION_RE.search(last_user_text(body))
    return f"Revised after review round {match.group('round')}." if match else ""


def first_added_line(text: str) -> tuple[str, int] | None:
    """(path, line in the new file) of the first added line of the first file in a unified diff."""
    path, line, in_hunk = None, 0, False
    for raw in text.splitlines():
        if raw.startswith("+++ "):
            target = raw[4:].strip()
            path, in_hunk = (None if target == "/dev/null" else target.removeprefix("b/")), False
            continue
        match = _DIFF_HUNK_RE.match(raw)
        if match:
            line, in_hunk = int(match.group("start")), True
            continue
        if not in_hunk or path is None:
            continue
        if raw.startswith("+"):
            return path, line
        if raw.startswith(" "):
            line += 1
        elif not raw.startswith("-"):
            in_hunk = False
    return None


def step_review(body: Body) -> Reply:
    """Approve (score 4) with one comment on the first added line, unless the request's marker says otherwise."""
    text = last_user_text(body)
    marker = _REVIEW_MARKER_RE.search(text)
    mode = marker.group("mode") if marker else ""
    round_match = _REVIEW_ROUND_RE.search(text)
    round_no = int(round_match.group("round")) if round_match else 1
    persona = _REVIEWER_RE.search(system_text(body))
    who = persona.group("title") if persona else "Reviewer"
    if mode == "reject":
        verdict, score, summary = "reject", 1, f"As {who}: this change must not ship as it is."
        remark = "This line is the start of a change that should not ship."
    elif mode == "changes" or (mode == "changes-once" and round_no == 1):
        verdict, score, summary = "request_changes", 3, f"As {who}: nearly there; please address the comment."
        remark = "Please document this module's purpose in one more line."
    else:
        verdict, score, summary = "approve", 4, f"As {who}: small, tested and clear. Approved."
        remark = "Clear, and covered by the tests."
    anchor = first_added_line(text)
    comments = [{"path": anchor[0], "line": anchor[1], "body": remark}] if anchor else []
    review = {"verdict": verdict, "score": score, "summary": summary, "comments": comments}
    return Reply(role="step_review", content=json.dumps(review))


# --------------------------------------------------------------------------- chat


SPEAKER_CHOICE_RE = re.compile(r"select the next role from \[([^\]]*)\]")


def chat(body: Body) -> Reply:
    """Echo the start of the last user message so callers can see it arrived.

    A group chat's speaker-selection prompt ("select the next role from ['a', 'b']")
    is answered with the first candidate, so selector teams run deterministically.
    """
    text = "\n".join(message_text(m) for m in _messages(body))
    choice = SPEAKER_CHOICE_RE.findall(text)
    if choice:
        names = [n.strip().strip("'\"") for n in choice[-1].split(",") if n.strip()]
        if names:
            return Reply(role="chat", content=names[0])
    text = last_user_text(body) or (message_text(_messages(body)[-1]) if _messages(body) else "")
    return Reply(role="chat", content=CHAT_PREFIX + text[:80])


_ROLE_HANDLERS = {
    "plan_draft": plan_draft,
    "plan_vote": plan_vote,
    "plan_review": plan_review,
    "specialist": specialist,
    "budget_proposal": budget_proposal,
    "step_review": step_review,
    "codegen": codegen,
    "chat": chat,
}
