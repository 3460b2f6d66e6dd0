"""The simulated model on an existing repository: briefs that carry a repository map.

Still a pure function of the request body. The plan and the code come from the mission's request
words (template variables are substituted into the request) and from the map: the module to change
is the non-test module whose path and symbols share most words with the request. A code step then
works the way real coding agents do: ``search_code`` for a word of the request, ``read_file`` on the
module, ``edit_file`` to add a small function to it, a test file for it, ``run_tests``, ``commit``.

A bug fix is planned test-first: step ``reproduce_<name>`` adds a regression test that fails until
the fix lands (marked ``xfail(strict=True)``, so the suite stays green and the step can be accepted),
step ``fix_<name>`` adds the code and removes the marker, so the same test now has to pass.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from agents.sim import responder as r

MAP_HEADER = "=== Repository map ==="  # as missions/repomap.py writes it
MAX_NAME = 25  # leaves room for the reproduce_/fix_ prefixes within a 40-character step key
NAME_WORDS = 3
_REQUEST_RE = re.compile(r"^\s*Request:\s*(?P<text>.+?)\s*$", re.MULTILINE)
_KIND_RE = re.compile(r"^\s*Kind:\s*(?P<kind>\w+)\s*$", re.MULTILINE)
_MODULE_LINE_RE = re.compile(r"^  (?P<path>\S+\.py)(?: \((?P<note>[^)]*)\))?$")
_SYMBOL_LINE_RE = re.compile(r"^ {4,6}(?:async def|def|class) (?P<name>\w+)")  # top level, then methods
_SYMPTOM_RE = re.compile(r"fix the bug where (?P<symptom>.+?)(?:\.\s|\.?$)", re.IGNORECASE)
XFAIL_PREFIX = "@pytest.mark.xfail(strict=True"
STOPWORDS = frozenset(
    """a an the to of for in on and or with add adds fix fixes bug where that this these is are be been it its
    as by from should when make makes new please steps reproduce expected support allow let so we i our my
    show shows into at can will not has have do does more also any all each every same some than then there
    their them they up out use using via want would like need needs get gets give gives only just very""".split()
)


def carries_map(body: r.Body) -> bool:
    """Whether the conversation's brief has a repository map (a mission on a project)."""
    return any(MAP_HEADER in text for text in r._texts_by_role(body, "user"))


def plans_step(body: r.Body) -> bool:
    """Whether the step is one of the steps ``plan_draft`` makes for this request.

    Only those are worked by editing existing modules: that plan is sequential, so two of its steps never
    append to one file at once. A step of some other plan (a script rule, a human's amendment) may run in
    parallel with its siblings, so it writes new modules as on an empty repository.
    """
    name = feature_name(request_text(body))
    return r.parse_brief(body).key in {name, f"{name}_edge_cases"[:40], f"reproduce_{name}", f"fix_{name}"}


# --------------------------------------------------------------------------- reading the brief


def request_text(body: r.Body) -> str:
    """The mission's request (the ``Request:`` line of the newest brief that has one)."""
    for text in reversed(r._texts_by_role(body, "user")):
        found = _REQUEST_RE.search(text)
        if found:
            return found.group("text")
    return r.mission_title(body)


def request_words(text: str) -> list[str]:
    """Lowercase ASCII words of the request that carry meaning, in order, each once."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    words = [w for w in re.findall(r"[a-z][a-z0-9]*", ascii_text) if w not in STOPWORDS and len(w) > 1]
    return list(dict.fromkeys(words))


def feature_name(text: str) -> str:
    """A Python function name from the request's first meaningful words, e.g. ``low_stock_warning``."""
    name = ""
    for word in request_words(text)[:NAME_WORDS]:
        candidate = f"{name}_{word}" if name else word
        if len(candidate) > MAX_NAME:
            break
        name = candidate
    return name or "change"


@dataclass(frozen=True)
class Module:
    path: str
    symbols: tuple[str, ...]

    @property
    def import_name(self) -> str:
        path = self.path.removeprefix("src/").removesuffix(".py")
        return path.replace("/", ".").removesuffix(".__init__")

    @property
    def stem(self) -> str:
        return self.path.rsplit("/", 1)[-1].removesuffix(".py")


def map_modules(body: r.Body) -> list[Module]:
    """The non-test Python modules the map outlines, with their top-level and method names."""
    brief = next((t for t in reversed(r._texts_by_role(body, "user")) if MAP_HEADER in t), "")
    lines = brief.splitlines()
    if "Python symbols:" not in lines:
        return []
    modules: list[Module] = []
    for line in lines[lines.index("Python symbols:") + 1 :]:
        if not line.startswith("  "):
            break
        if found := _MODULE_LINE_RE.match(line):
            modules.append(Module(path=found.group("path"), symbols=()))
        elif (symbol := _SYMBOL_LINE_RE.match(line)) and modules:
            last = modules[-1]
            modules[-1] = Module(path=last.path, symbols=(*last.symbols, symbol.group("name")))
    return [m for m in modules if not _is_test(m.path)]


def _is_test(path: str) -> bool:
    parts = path.split("/")
    return parts[-1].startswith("test_") or any(p in ("tests", "test") for p in parts[:-1])


def tests_path(body: r.Body, name: str) -> str:
    """Where the new tests go: in tests/ when it is a package, else at the root.

    The sandbox keeps the working directory off sys.path, so a tests/ folder without __init__.py has
    only pytest's own path insertion; a test module at the root puts the root (and the package) on it.
    """
    brief = next((t for t in reversed(r._texts_by_role(body, "user")) if MAP_HEADER in t), "")
    package = re.search(r"^  tests/__init__\.py\b", brief, re.MULTILINE)
    return f"tests/test_{name}.py" if package else f"test_{name}.py"


def pick_module(body: r.Body, text: str) -> tuple[Module | None, str]:
    """(the module sharing most words with the request, the word to search for)."""
    words = request_words(text)
    best, best_key, best_word = None, None, ""
    for number, module in enumerate(map_modules(body)):
        tokens = {module.stem, *module.stem.split("_")}
        for symbol in module.symbols:
            tokens |= {symbol.lower(), *symbol.lower().split("_")}
        shared = [w for w in words if w in tokens or w.rstrip("s") in tokens]
        # More shared words first; then a module over a package's __init__, then more symbols, then map order.
        key = (len(shared), module.stem != "__init__", len(module.symbols), -number)
        if best_key is None or key > best_key:
            best, best_key, best_word = module, key, (shared[0] if shared else "")
    if best is None:
        return None, words[0] if words else "def"
    return best, best_word or (best.symbols[0] if best.symbols else best.stem)


# --------------------------------------------------------------------------- plan


def plan_draft(body: r.Body) -> r.Reply:
    """A plan on the project's code: names, titles and instructions from the request and the chosen module.

    Bug fixes (template ``bug_fix``) first add a failing regression test, then fix; features add the
    code with its tests, then edge-case tests. Amendments become acceptance checks of the first step.
    """
    title, text = r.mission_title(body), request_text(body)
    name = feature_name(text)
    symptom = _SYMPTOM_RE.search(text)
    problem = symptom.group("symptom") if symptom else text
    tests = tests_path(body, name)
    module, _ = pick_module(body, text)
    where = module.path if module else "the package"
    template = r._TEMPLATE_RE.search(r.last_user_text(body))
    slug = template.group("slug").strip().lower() if template else ""
    role = r.template_role(body)
    merged = r.amendments(body)
    suite = "the project's whole test suite passes"
    if slug == "bug_fix":
        steps = [
            _step(
                f"reproduce_{name}",
                f"Reproduce: {_cut(problem, 150)}",
                "test",
                role,
                f"Add a regression test in {tests} that reproduces the bug ({_cut(problem, 300)}) "
                f"against {where}; mark it xfail(strict=True) until the fix lands.",
                [],
                ["the regression test fails on the current code", suite],
            ),
            _step(
                f"fix_{name}",
                f"Fix {name.replace('_', ' ')} in {where}",
                "codegen",
                role,
                f"Fix the bug in {where} with edit_file, remove the xfail marker from {tests} "
                "so the regression test must pass, and keep every existing test green.",
                [f"reproduce_{name}"],
                ["the regression test passes", suite],
            ),
        ]
        summary = f"Fix {title} test-first in {where}: a failing regression test, then the fix."
    else:
        steps = [
            _step(
                name,
                f"Add {name} to {where}",
                "codegen",
                role,
                f"Extend the existing module {where} with {name}() for: {_cut(text, 300)}. Change it with "
                f"edit_file, add tests in {tests} and keep the existing suite green.",
                [],
                ["existing modules are extended, not replaced", suite],
            ),
            _step(
                f"{name}_edge_cases"[:40],
                f"Edge cases of {name}",
                "test",
                "developer",
                f"Add edge-case tests for {name}() from ${{{name}.files}} to {tests}.",
                [name],
                [suite],
            ),
        ]
        summary = f"Deliver {title} in {where}: {name}() with its tests, then its edge cases."
    steps[0]["acceptance"] += merged[: r.MAX_ACCEPTANCE - len(steps[0]["acceptance"])]
    if merged:
        summary = _cut(f"{summary} Revised for: {'; '.join(merged)}.", r.MAX_SUMMARY)
    return r.Reply(role="plan_draft", content=json.dumps({"summary": summary, "steps": steps}))


def _step(key, title, kind, role, instructions, depends_on, acceptance) -> dict[str, Any]:
    return {
        "key": key,
        "title": _cut(title, 200),
        "kind": kind,
        "role": role,
        "instructions": _cut(instructions, 4000),
        "depends_on": depends_on,
        "acceptance": acceptance,
        "estimated_tokens": 2500,
    }


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- code


def codegen(body: r.Body) -> r.Reply:
    """The next tool call of a step on an existing repository, derived from the calls made so far.

    Modes, by the step's kind and key: ``reproduce_*`` writes an xfail regression test; a ``test`` step
    extends the feature's test file with edit_file; ``fix_*`` and every other code step add the function
    to the chosen module with edit_file and make its test count (writing it, or dropping the xfail marker).
    """
    brief = r.parse_brief(body)
    text = request_text(body)
    name = feature_name(text)
    module, word = pick_module(body, text)
    kind_line = _KIND_RE.search("\n".join(r._texts_by_role(body, "user")))
    kind = kind_line.group("kind") if kind_line else "codegen"
    test_path = tests_path(body, name)
    done = r._done_calls(body)
    if module is None:  # nothing to extend (the map outlines no module): write a new one as without a map
        return r.default_codegen(body, brief)
    plan = _actions(brief, kind, name, module, word, test_path, text, body, done)
    for tool, args in plan:
        if not _already(done, tool, args) and r._offers_tool(body, tool):
            return r.Reply(role="codegen", tool_calls=(r.ToolCall(name=tool, arguments=json.dumps(args)),))
    return r.Reply(role="codegen", content=_summary(body, brief, done))


def _actions(brief, kind, name, module, word, test_path, text, body, done) -> list[tuple[str, dict[str, Any]]]:
    search = ("search_code", {"pattern": re.escape(word), "path_glob": "**/*.py"})
    read_module = ("read_file", {"path": module.path})
    commit = ("commit", {"message": f"{brief.key}: {brief.step_title}"})
    run = ("run_tests", {})
    if brief.key.startswith("reproduce_"):
        regression = tests_module_source(name, module, text, xfail=True)
        return [search, read_module, ("write_file", {"path": test_path, "content": regression}), run, commit]
    if kind == "test":
        read_tests = ("read_file", {"path": test_path})
        current = _output_of(body, done, "read_file", {"path": test_path})
        if current is None:
            return [search, read_tests]
        if current.startswith("Error"):  # the feature's tests are not there: write them whole
            change = ("write_file", {"path": test_path, "content": tests_module_source(name, module, text)})
        else:
            change = ("edit_file", _append(test_path, current, edge_case_test(name)))
        return [search, read_tests, change, run, commit]
    source = _output_of(body, done, "read_file", {"path": module.path})
    actions = [search, read_module]
    if source is None:
        return actions
    if source.startswith("Error"):
        return [*actions, run, commit]  # nothing to edit: say so in the summary
    actions.append(("edit_file", _append(module.path, source, function_source(name, text, r.mission_title(body)))))
    if brief.key.startswith("fix_"):
        tests = _output_of(body, done, "read_file", {"path": test_path})
        actions.append(("read_file", {"path": test_path}))
        if tests is None:
            return actions
        marker = next((line for line in tests.splitlines(keepends=True) if line.startswith(XFAIL_PREFIX)), "")
        if marker:
            actions.append(("edit_file", {"path": test_path, "old": marker, "new": ""}))
        elif tests.startswith("Error"):
            actions.append(("write_file", {"path": test_path, "content": tests_module_source(name, module, text)}))
    else:
        actions.append(("write_file", {"path": test_path, "content": tests_module_source(name, module, text)}))
    return [*actions, run, commit]


def _already(done, tool: str, args: dict[str, Any]) -> bool:
    """Each planned call is made once: same tool, same path (or, without one, same tool)."""
    for _, name, made in done:
        if name != tool:
            continue
        if "path" not in args or made.get("path") == args["path"]:
            if tool != "edit_file" or made.get("old") == args.get("old"):
                return True
    return False


def _output_of(body, done, tool: str, args: dict[str, Any]) -> str | None:
    """What an earlier call with these arguments answered (None when it was not made)."""
    for call_id, name, made in done:
        if name == tool and all(made.get(k) == v for k, v in args.items()):
            return r._tool_output(body, call_id)
    return None


def _append(path: str, source: str, addition: str) -> dict[str, str]:
    """edit_file arguments that add ``addition`` after the file's end: the shortest unique tail is ``old``."""
    lines = source.splitlines(keepends=True)
    old = source
    for start in range(len(lines) - 1, -1, -1):
        tail = "".join(lines[start:])
        if tail.strip() and source.count(tail) == 1:
            old = tail
            break
    head = old if old.endswith("\n") else old + "\n"
    return {"path": path, "old": old, "new": head + "\n\n" + addition}


def _summary(body: r.Body, brief: r.Brief, done) -> str:
    edited = list(dict.fromkeys(str(a.get("path")) for _, n, a in done if n == "edit_file" and a.get("path")))
    written = list(dict.fromkeys(str(a.get("path")) for _, n, a in done if n == "write_file" and a.get("path")))
    runs = [call_id for call_id, n, _ in done if n == "run_tests"]
    outcome = r._short(r._tool_output(body, runs[-1])) if runs else "not run"
    parts = []
    if edited:
        parts.append(f"edited {' and '.join(edited)} with edit_file")
    if written:
        parts.append(f"wrote {' and '.join(written)}")
    return f"Step {brief.key} ({brief.step_title}) done: {'; '.join(parts) or 'changed nothing'}; tests: {outcome}."


# --------------------------------------------------------------------------- generated code


def label(name: str) -> str:
    return name.replace("_", " ")


def function_source(name: str, text: str, title: str) -> str:
    doc = f"{_cut(text.strip(), 150)} (added for the mission {_cut(title, 80)!r})."
    return (
        f"def {name}(text: str) -> str:\n"
        f"    {doc!r}\n"
        f"    label = {label(name)!r}\n"
        "    text = text.strip()\n"
        '    return f"{label}: {text}" if text else label\n'
    )


def tests_module_source(name: str, module: Module, text: str, *, xfail: bool = False) -> str:
    header = f"# Tests of {name}: {_cut(text.strip(), 100)!r}\n\n"
    if xfail:
        reason = f"reproduces the bug ({_cut(text.strip(), 80)}); the fix removes this marker"
        return (
            header + "import pytest\n\n\n"
            f"{XFAIL_PREFIX}, reason={reason!r})\n"
            f"def test_{name}_labels_the_text():\n"
            f"    from {module.import_name} import {name}\n\n"
            f"    assert {name}('  spare parts ') == {label(name) + ': spare parts'!r}\n"
        )
    return (
        header + f"from {module.import_name} import {name}\n\n\n"
        f"def test_{name}_labels_the_text():\n"
        f"    assert {name}('  spare parts ') == {label(name) + ': spare parts'!r}\n\n\n"
        f"def test_{name}_of_blank_text_is_the_label():\n"
        f"    assert {name}('   ') == {label(name)!r}\n"
    )


def edge_case_test(name: str) -> str:
    return (
        f"def test_{name}_keeps_inner_spacing():\n"
        f"    from_module = {name}('a  b')\n"
        f"    assert from_module == {label(name) + ': a  b'!r}\n"
    )


# --------------------------------------------------------------------------- resolving a merge conflict

_CONFLICTS_RE = re.compile(r"conflicts in (?P<files>[^\n]+?)\. The repository is in the middle of that merge")


def conflicted_files(body: r.Body) -> list[str]:
    """The files a resolve step's brief names as conflicted ([] for any other step)."""
    found = _CONFLICTS_RE.search("\n".join(r._texts_by_role(body, "user")))
    return [name.strip() for name in found.group("files").split(",") if name.strip()] if found else []


def keep_both(text: str) -> str:
    """The file with each conflict resolved by keeping both sides, ours first (the base section dropped)."""
    kept, side = [], None
    for line in text.splitlines(keepends=True):
        if line.startswith("<<<<<<< "):
            side = "ours"
        elif side and line.startswith("||||||| "):
            side = "base"
        elif side and line.rstrip("\r\n") == "=======":
            side = "theirs"
        elif side and line.startswith(">>>>>>> "):
            side = None
        elif side != "base":
            kept.append(line)
    return "".join(kept)


def resolve_conflicts(body: r.Body) -> r.Reply:
    """A resolve step: read each conflicted file, keep both sides, run the whole suite, commit the merge."""
    brief = r.parse_brief(body)
    done = r._done_calls(body)
    actions: list[tuple[str, dict[str, Any]]] = []
    for path in conflicted_files(body):
        actions.append(("read_file", {"path": path}))
        current = _output_of(body, done, "read_file", {"path": path})
        if current is None:
            break
        if not current.startswith("Error"):
            actions.append(("write_file", {"path": path, "content": keep_both(current)}))
    else:
        actions += [("run_tests", {}), ("commit", {"message": f"{brief.key}: keep both sides of the merge"})]
    for tool, args in actions:
        if not _already(done, tool, args) and r._offers_tool(body, tool):
            return r.Reply(role="codegen", tool_calls=(r.ToolCall(name=tool, arguments=json.dumps(args)),))
    files = ", ".join(conflicted_files(body))
    return r.Reply(role="codegen", content=f"Resolved the merge conflicts in {files} by keeping both sides.")
