"""The simulated model on an existing repository: plans from the request, code changed with edit_file.

The unit tests drive the pure responder with the real tools (StepTools over a git copy of
examples/sample-inventory, tests run in the sandbox); the last test runs a whole mission through the
engine, the Celery worker and the simulated model over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agents.runtime.sandbox import PytestResult, SandboxLimits
from agents.runtime.tools import TOOL_NAMES, StepTools
from agents.runtime.workspace import Workspace
from agents.sim import existing_repo, responder
from missions.repomap import MAP_HEADER, repo_map

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample-inventory"
FEATURE = "Add a low stock warning to the stock report"
BUG = "Fix the bug where the total value ignores removed items. Steps to reproduce: remove stock. Expected: less."


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def sample_repo(dest: Path) -> Path:
    """A git repository holding a copy of the sample (never a commit in examples/)."""
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    git("init", "-q", "-b", "main", cwd=dest)
    git("add", "-A", cwd=dest)
    git("-c", "user.name=PM", "-c", "user.email=pm@example.com", "commit", "-q", "-m", "Sample inventory", cwd=dest)
    return dest


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace(sample_repo(tmp_path / "inventory"))
    workspace.init()
    return workspace


def plan_brief(root: Path, request: str, template: str = "feature_implementation") -> str:
    return (
        f"Mission: Stock work\nPriority: Normal\nRequest: {request}\nBudget: $3.00\nTemplate: {template}\n\n"
        f"Draft the plan as PlanDraft.\n\nThe steps change this existing repository:\n{repo_map(root)}"
    )


def step_brief(root: Path, request: str, step: dict[str, Any]) -> str:
    return "\n".join(
        [
            "Mission: Stock work",
            "Priority: Normal",
            f"Request: {request}",
            f"Step: {step['key']} — {step['title']}",
            f"Kind: {step['kind']}",
            f"Instructions: {step['instructions']}",
            repo_map(root, test_command="python -m pytest -q"),
            "Work in this existing repository with your tools.",
        ]
    )


def draft(brief: str) -> dict[str, Any]:
    schema = {"type": "json_schema", "json_schema": {"name": "PlanDraft"}}
    return json.loads(
        responder.respond({"messages": [{"role": "user", "content": brief}], "response_format": schema}).content
    )


def run_step(ws: Workspace, brief: str, limit: int = 12) -> tuple[list[tuple[str, dict]], str, StepTools]:
    """Let the responder drive real tools until it answers with text: (calls made, final text, tools)."""

    async def on_test_run(result: PytestResult) -> None:
        return None

    tools = StepTools(ws, limits=SandboxLimits(timeout_s=120), on_test_run=on_test_run)
    offered = [{"type": "function", "function": {"name": name}} for name in TOOL_NAMES]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a developer."},
        {"role": "user", "content": brief},
    ]
    made: list[tuple[str, dict]] = []
    for turn in range(limit):
        reply = responder.respond({"messages": messages, "tools": offered})
        if not reply.tool_calls:
            return made, reply.content or "", tools
        (call,) = reply.tool_calls
        args = json.loads(call.arguments)
        made.append((call.name, args))
        result = asyncio.run(getattr(tools, call.name)(**args))
        messages.append(
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": f"c{turn}", "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": f"c{turn}", "content": result})
    raise AssertionError(f"no final answer after {limit} turns: {[name for name, _ in made]}")


def test_it_plans_from_the_request_and_the_module_it_matches(ws: Workspace) -> None:
    """A feature plan names a function after the request and extends the module whose symbols match it."""
    plan = draft(plan_brief(ws.root, FEATURE))
    keys = [s["key"] for s in plan["steps"]]
    assert keys == ["low_stock_warning", "low_stock_warning_edge_cases"]
    assert plan["steps"][0]["kind"] == "codegen" and plan["steps"][1]["depends_on"] == ["low_stock_warning"]
    assert "inventory/report.py" in plan["steps"][0]["instructions"] and FEATURE in plan["steps"][0]["instructions"]
    other = draft(plan_brief(ws.root, "Support bulk import of items from a CSV file"))
    assert [s["key"] for s in other["steps"]][0] == "bulk_import_items"
    assert other != plan  # two requests, two plans


def test_a_bug_fix_plan_first_adds_a_failing_test(ws: Workspace) -> None:
    """Template bug_fix: reproduce with a regression test first, then fix where the symptom's words live."""
    steps = draft(plan_brief(ws.root, BUG, template="bug_fix"))["steps"]
    assert [(s["key"], s["kind"]) for s in steps] == [
        ("reproduce_total_value_ignores", "test"),
        ("fix_total_value_ignores", "codegen"),
    ]
    assert steps[0]["title"] == "Reproduce: the total value ignores removed items"
    assert "xfail(strict=True)" in steps[0]["instructions"] and "inventory/stock.py" in steps[1]["title"]
    assert steps[1]["depends_on"] == ["reproduce_total_value_ignores"]


def test_without_a_map_the_plan_is_the_same_as_before(ws: Workspace) -> None:
    """Missions on an empty repository keep today's core/api plan (their answers replay from the ledger)."""
    plan = draft("Mission: Stock work\nRequest: " + FEATURE + "\nTemplate: feature_implementation\n")
    assert [s["key"] for s in plan["steps"]] == ["core", "api"]
    assert MAP_HEADER not in plan_brief(ws.root, FEATURE).split("Draft the plan")[0]


def test_it_changes_an_existing_module_with_edit_file_and_adds_a_test(ws: Workspace) -> None:
    """search_code, read_file, edit_file on the module, a new test file, run_tests, commit; the suite passes."""
    original = (ws.root / "inventory" / "report.py").read_text()
    step = draft(plan_brief(ws.root, FEATURE))["steps"][0]
    made, final, tools = run_step(ws, step_brief(ws.root, FEATURE, step))
    assert [name for name, _ in made] == ["search_code", "read_file", "edit_file", "write_file", "run_tests", "commit"]
    assert made[0][1] == {"pattern": "stock", "path_glob": "**/*.py"}
    assert made[2][1]["path"] == "inventory/report.py" and made[3][1]["path"] == "tests/test_low_stock_warning.py"
    changed = (ws.root / "inventory" / "report.py").read_text()
    assert changed.startswith(original) and "def low_stock_warning(text: str) -> str:" in changed
    assert tools.last_test.failed == 0 and tools.last_test.errors == 0 and tools.last_test.passed == 18
    assert git("status", "--porcelain", cwd=ws.root) == ""
    assert "edited inventory/report.py with edit_file" in final and "18 passed" in final


def test_the_edge_case_step_extends_the_test_file_with_edit_file(ws: Workspace) -> None:
    """A test step reads the feature's test file and appends a case to it, leaving what was there."""
    first, second = draft(plan_brief(ws.root, FEATURE))["steps"]
    run_step(ws, step_brief(ws.root, FEATURE, first))
    before = (ws.root / "tests" / "test_low_stock_warning.py").read_text()
    made, _, tools = run_step(ws, step_brief(ws.root, FEATURE, second))
    assert [name for name, _ in made] == ["search_code", "read_file", "edit_file", "run_tests", "commit"]
    after = (ws.root / "tests" / "test_low_stock_warning.py").read_text()
    assert after.startswith(before) and "def test_low_stock_warning_keeps_inner_spacing" in after
    assert tools.last_test.passed == 19 and not (tools.last_test.failed or tools.last_test.errors)


def test_a_bug_fix_reproduces_with_an_xfail_test_then_the_fix_makes_it_pass(ws: Workspace) -> None:
    """The regression test fails (xfail) before the fix; the fix step removes the marker and the test passes."""
    reproduce, fix = draft(plan_brief(ws.root, BUG, template="bug_fix"))["steps"]
    made, _, tools = run_step(ws, step_brief(ws.root, BUG, reproduce))
    assert [name for name, _ in made] == ["search_code", "read_file", "write_file", "run_tests", "commit"]
    assert tools.last_test.passed == 16 and tools.last_test.skipped == 1  # the xfailed regression test
    made, _, tools = run_step(ws, step_brief(ws.root, BUG, fix))
    assert [name for name, _ in made] == [
        "search_code",
        "read_file",
        "edit_file",
        "read_file",
        "edit_file",
        "run_tests",
        "commit",
    ]
    assert made[2][1]["path"] == "inventory/stock.py" and made[4][1]["new"] == ""
    assert "xfail" not in (ws.root / "tests" / "test_total_value_ignores.py").read_text()
    assert tools.last_test.passed == 17 and not (tools.last_test.failed or tools.last_test.errors)


def test_new_tests_go_to_the_root_when_tests_is_not_a_package(ws: Workspace) -> None:
    """Without tests/__init__.py only a root test module puts the package on sys.path in the sandbox."""
    git("rm", "-q", "tests/__init__.py", cwd=ws.root)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "flat tests", cwd=ws.root)
    step = draft(plan_brief(ws.root, FEATURE))["steps"][0]
    assert "add tests in test_low_stock_warning.py and" in step["instructions"]
    made, _, tools = run_step(ws, step_brief(ws.root, FEATURE, step))
    assert made[3] == ("write_file", {"path": "test_low_stock_warning.py", "content": made[3][1]["content"]})
    assert tools.last_test.passed == 18 and not (tools.last_test.failed or tools.last_test.errors)


def test_without_the_code_tools_the_old_loop_runs(ws: Workspace) -> None:
    """An agent offered only the first five tools (an older roster) writes a new module, as before."""
    brief = step_brief(ws.root, FEATURE, {"key": "core", "title": "Core", "kind": "codegen", "instructions": "x"})
    offered = [{"type": "function", "function": {"name": n}} for n in ("write_file", "run_tests", "commit")]
    reply = responder.respond({"messages": [{"role": "user", "content": brief}], "tools": offered})
    assert reply.tool_calls[0].name == "write_file" and json.loads(reply.tool_calls[0].arguments)["path"] == "core.py"
    assert existing_repo.carries_map({"messages": [{"role": "user", "content": brief}]})


def test_a_step_of_a_plan_it_did_not_write_gets_new_modules(ws: Workspace) -> None:
    """Steps of another plan may run in parallel: they write new modules rather than append to one file."""
    brief = step_brief(ws.root, FEATURE, {"key": "alpha", "title": "Alpha", "kind": "codegen", "instructions": "x"})
    offered = [{"type": "function", "function": {"name": n}} for n in TOOL_NAMES]
    reply = responder.respond({"messages": [{"role": "user", "content": brief}], "tools": offered})
    assert reply.tool_calls[0].name == "write_file" and json.loads(reply.tool_calls[0].arguments)["path"] == "alpha.py"


# --------------------------------------------------------------------------- through the engine


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_mission_on_the_sample_project_edits_a_module_adds_tests_and_keeps_the_suite_green(
    company, pm, sim, celery_worker, settings, tmp_path
):
    """The engine's briefs carry the map; the agent edits inventory/report.py and adds tests; every run is green."""
    from agents.models import AgentMessage
    from missions.models import Mission
    from missions.services import mission_submit
    from projects.models import Baseline, Project
    from tests.conftest import wait_for

    settings.LLM_BASE_URL, settings.LLM_SIMULATED, settings.LLM_MAX_RETRIES = sim.base_url, True, 0  # as tests/conftest
    product = sample_repo(tmp_path / "sample-inventory")
    settings.MIRRORS_DIR = tmp_path / "mirrors"
    settings.GIT_STORE_DIR = tmp_path / "store"
    subprocess.run(
        ["git", "clone", "-q", "--mirror", str(product), str(settings.MIRRORS_DIR / "inventory.git")], check=True
    )
    head = git("rev-parse", "HEAD", cwd=product)
    project = Project.objects.create(name="Inventory", slug="inventory", git_url=str(product), head_sha=head)
    Baseline.objects.create(project=project, sha=head, verdict=Baseline.Verdict.PASSED, passed=16)
    mission = mission_submit(
        requester=pm,
        title="Low stock warning",
        request=FEATURE,
        budget_usd=Decimal("3.00"),
        require_deploy_approval=False,
        project=project,
    )

    def finished():
        mission.refresh_from_db()
        return mission.status if (mission.is_finished or mission.is_waiting) else None

    assert wait_for(finished, timeout=180) == Mission.Status.COMPLETED, mission.failure_reason
    assert list(mission.plans.get().steps.values_list("key", flat=True)) == [
        "low_stock_warning",
        "low_stock_warning_edge_cases",
    ]
    transcript = AgentMessage.objects.filter(step__plan__mission=mission)
    calls = list(transcript.filter(kind=AgentMessage.Kind.TOOL_CALL).values_list("content", flat=True))
    assert any(c.startswith("edit_file(path='inventory/report.py'") for c in calls), calls
    assert any(c.startswith("search_code(pattern='stock'") for c in calls), calls
    results = transcript.filter(kind=AgentMessage.Kind.TOOL_RESULT, data__tool="edit_file")
    assert results.filter(content__startswith="Edited inventory/report.py: replaced 1 occurrence").exists()
    pushed = git("rev-parse", f"refs/heads/{mission.deploy_branch}", cwd=product)
    files = git("ls-tree", "-r", "--name-only", pushed, cwd=product).split()
    assert "tests/test_low_stock_warning.py" in files and "inventory/report.py" in files
    report = git("show", f"{pushed}:inventory/report.py", cwd=product)
    assert report.startswith(git("show", f"{head}:inventory/report.py", cwd=product))
    assert "def low_stock_warning(" in report
    runs = list(mission.test_runs.order_by("pk"))
    assert runs and all(r.failed == 0 and r.errors == 0 for r in runs)
    assert runs[-1].passed == 19  # the project's 16 tests, the step's 2 and the edge case


def test_a_conflict_is_resolved_by_keeping_both_sides_and_the_base_section_is_dropped():
    from agents.sim.existing_repo import keep_both

    text = "a = 1\n<<<<<<< HEAD\nours = 1\n||||||| base\nold = 0\n=======\ntheirs = 2\n>>>>>>> main\nz = 9\n"
    assert keep_both(text) == "a = 1\nours = 1\ntheirs = 2\nz = 9\n"
    assert keep_both("Title\n=======\n") == "Title\n=======\n"  # a heading underline outside a conflict stays
