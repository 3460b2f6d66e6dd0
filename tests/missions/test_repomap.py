"""The repository map: a compact, bounded outline of a real git repository, for planning and step briefs."""

from __future__ import annotations

import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from missions import briefs
from missions.repomap import MAP_FOOTER, MAP_HEADER, mission_repo_map, repo_map
from missions.services import mission_submit
from projects.models import Baseline
from tests.projects.conftest import product, project  # noqa: F401 - fixtures

STOCK = '''"""Stock levels."""

from dataclasses import dataclass


@dataclass
class Item:
    sku: str
    name: str


class Inventory(Base, metaclass=Meta):
    def __init__(self, items: dict[str, int] | None = None) -> None:
        self.items = items or {}

    def add(self, sku: str, count: int = 1) -> None:
        self.items[sku] = self.items.get(sku, 0) + count

    def _private(self):
        return 1


async def load(path: str, *, strict: bool = False) -> "Inventory":
    raise NotImplementedError


def format_row(sku, count, *args, width: int = 10, **options) -> str:
    return f"{sku:<{width}}{count}"
'''


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def commit_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    git("init", "-q", "-b", "main", cwd=root)
    git("add", "-A", cwd=root)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "tree", cwd=root)
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    readme = "# Inventory\n\nTrack stock.\n" + "".join(f"line {i}\n" for i in range(60))
    return commit_tree(
        tmp_path / "repo",
        {
            "README.md": readme,
            "inventory/__init__.py": "",
            "inventory/stock.py": STOCK,
            "inventory/broken.py": "def half(:\n",
            "inventory/nul.py": b"x = 1\0\n",
            "assets/logo.png": b"\x89PNG\r\n\x1a\n\0\0\0binary",
            "tests/test_stock.py": "def test_a():\n    pass\n\n\nclass TestB:\n    def test_c(self):\n        pass\n",
            "pyproject.toml": "[project]\nname = 'inventory'\n",
        },
    )


def test_it_lists_files_languages_symbols_and_signatures(repo: Path) -> None:
    """Tree with sizes, language mix, top-level classes/functions with one-line signatures, methods one level."""
    text = repo_map(repo, test_command="python -m pytest -q", baseline="3 passed, 0 failed, 0 errors at abc1234")
    lines = text.splitlines()
    assert lines[0] == MAP_HEADER and lines[-1] == MAP_FOOTER
    assert lines[1] == "Files: 8 tracked, " + lines[1].split(", ", 1)[1]
    assert "Languages: Python 5, Markdown 1, Other 1, TOML 1." in lines[1]
    assert "Test command: python -m pytest -q" in lines
    assert "Baseline: 3 passed, 0 failed, 0 errors at abc1234" in lines
    package = len(STOCK) + len("def half(:\n") + len("x = 1\0\n")
    assert f"  inventory/ (4 files, {package} B)" in lines and f"    stock.py ({len(STOCK)} B)" in lines
    assert "    logo.png (17 B)" in lines  # a binary file is listed, never read
    for signature in (
        "    class Item",
        "    class Inventory(Base, metaclass=Meta)",
        "      def __init__(self, items: dict[str, int] | None=None) -> None",
        "      def add(self, sku: str, count: int=1) -> None",
        "    async def load(path: str, *, strict: bool=False) -> 'Inventory'",
        "    def format_row(sku, count, *args, width: int=10, **options) -> str",
    ):
        assert signature in lines, signature
    assert not any("_private" in line for line in lines)
    assert "  tests/test_stock.py: 2 test(s)" in lines


def test_it_survives_files_that_do_not_parse(repo: Path) -> None:
    """A syntax error or a NUL byte lists the file without symbols; the rest of the map is intact."""
    lines = repo_map(repo).splitlines()
    assert "  inventory/broken.py (does not parse: SyntaxError at line 1)" in lines
    assert "  inventory/nul.py (does not parse: SyntaxError)" in lines
    assert "    def format_row(sku, count, *args, width: int=10, **options) -> str" in lines


def test_it_shows_the_start_of_the_readme(repo: Path) -> None:
    """The README's first 40 lines, then how many were left out."""
    lines = repo_map(repo).splitlines()
    start = lines.index("README.md (first 40 lines):")
    assert lines[start + 1 : start + 4] == ["  # Inventory", "  ", "  Track stock."]
    assert "  line 36" in lines and "  line 37" not in lines
    assert "  … 23 more line(s)" in lines


def test_it_is_deterministic_and_lists_only_tracked_files(repo: Path) -> None:
    """Two maps of one commit are equal; untracked files are not in it; nothing in the tree is executed."""
    (repo / "untracked.py").write_text("raise SystemExit('executed!')\n")
    assert repo_map(repo) == repo_map(repo)
    assert "untracked.py" not in repo_map(repo)


def test_it_stays_within_its_limit_on_a_big_tree(tmp_path: Path) -> None:
    """Thousands of files: big folders collapse, Python files beyond the budget are counted, the limit holds."""
    files: dict[str, str | bytes] = {"README.md": "# Big\n"}
    for package in range(12):
        for module in range(40):
            files[f"pkg{package:02}/mod{module:02}.py"] = "".join(
                f"def function_{n}(argument_{n}: int) -> int:\n    return argument_{n}\n\n" for n in range(5)
            )
    for n in range(800):
        files[f"data/records/{n:04}.json"] = "{}\n"
    root = commit_tree(tmp_path / "big", files)
    for limit in (6000, 2500):
        text = repo_map(root, test_command="pytest", limit_chars=limit)
        assert len(text) <= limit, (limit, len(text))
        assert text.startswith(MAP_HEADER) and text.endswith(MAP_FOOTER)
        assert "Files: 1281 tracked" in text
        assert "  data/ (800 files, " in text  # collapsed to one line
        assert "more Python file(s) not shown" in text
        assert "def function_0(argument_0: int) -> int" in text


def test_a_mission_without_a_project_has_no_map_and_its_briefs_do_not_change(pm) -> None:
    """Missions on an empty repository keep today's briefs, byte for byte (their answers replay by text)."""
    mission = mission_submit(requester=pm, title="Add a farewell", request="Say goodbye", budget_usd=Decimal("1"))
    assert mission_repo_map(mission) == ""
    assert briefs.plan_request_brief(mission, ["developer"], repo_map="") == briefs.plan_request_brief(
        mission, ["developer"]
    )
    assert MAP_HEADER not in briefs.plan_request_brief(mission, ["developer"])


def test_a_mission_on_a_project_maps_its_base_with_test_command_and_baseline(pm, project, settings, tmp_path) -> None:  # noqa: F811
    """The map comes from the mission branch (the project's HEAD) and names its test command and baseline."""
    settings.WORKSPACES_DIR = tmp_path / "workspaces"
    settings.WORKSPACES_DIR.mkdir()
    Baseline.objects.create(project=project, sha=project.head_sha, verdict="passed", passed=1)
    mission = mission_submit(
        requester=pm, title="Add a farewell", request="Say goodbye", budget_usd=Decimal("1"), project=project
    )
    text = mission_repo_map(mission)
    assert text.startswith(MAP_HEADER)
    assert "    def greet(name: str) -> str" in text.splitlines()
    assert "Test command: python -m pytest -q" in text
    assert f"Baseline: 1 passed, 0 failed, 0 errors at {project.head_sha[:7]} (passed)" in text
    assert list(settings.WORKSPACES_DIR.iterdir()) == []  # the checkout for the map is gone
    brief = briefs.plan_request_brief(mission, ["developer"], repo_map=text)
    assert text in brief and "existing repository" in brief
