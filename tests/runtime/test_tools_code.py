"""The code tools an agent uses on an existing repository: search_code, ranged read_file, edit_file.

Called through StepTools, as the model calls them: every refusal is an ``Error:`` answer, never an exception.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from agents.runtime import codesearch
from agents.runtime.sandbox import PytestResult, SandboxLimits
from agents.runtime.tools import TOOL_NAMES, StepTools
from agents.runtime.workspace import LARGE_FILE_BYTES, Workspace

MODULE = (
    '"""Stock levels."""\r\n'  # a CRLF line and a non-ASCII one: an edit must keep both as they are
    "\n"
    "\n"
    "class Inventory:\n"
    "    def add(self, sku: str, count: int) -> None:\n"
    "        self.items[sku] = self.items.get(sku, 0) + count\n"
    "\n"
    "    def remove(self, sku: str, count: int) -> None:\n"
    "        self.items[sku] = self.items.get(sku, 0) - count\n"
    "\n"
    "# Prix en euros — ü\n"
)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace(tmp_path / "ws")
    workspace.init()
    workspace.write_file("inventory/stock.py", MODULE)
    return workspace


@pytest.fixture
def tools(ws: Workspace) -> StepTools:
    async def on_test_run(result: PytestResult) -> None:
        return None

    return StepTools(ws, limits=SandboxLimits(), on_test_run=on_test_run)


def call(tools: StepTools, name: str, **args) -> str:
    return asyncio.run(getattr(tools, name)(**args))


def test_it_offers_the_code_tools_to_the_model(tools: StepTools) -> None:
    """search_code and edit_file are tools like the others, and read_file takes an optional line range."""
    assert {"search_code", "edit_file"} <= set(TOOL_NAMES)
    schemas = {tool.name: tool.schema["parameters"] for tool in tools.function_tools()}
    assert schemas["search_code"]["required"] == ["pattern"]
    assert schemas["edit_file"]["required"] == ["path", "old", "new"]
    assert schemas["read_file"]["required"] == ["path"]
    assert {"start_line", "end_line"} <= set(schemas["read_file"]["properties"])


@pytest.mark.parametrize("bad", ["../x.py", "/etc/passwd", "inventory/../../x.py", ".git/config", "link/stock.py"])
def test_it_refuses_paths_outside_the_workspace_for_every_code_tool(
    ws: Workspace, tools: StepTools, tmp_path: Path, bad: str
) -> None:
    """Traversal, absolute paths, .git and a symlink to a folder outside are refused by read_file and edit_file."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "stock.py").write_text("secret = 1\n")
    os.symlink(outside, ws.root / "link")
    for name, args in (
        ("read_file", {"path": bad, "start_line": 1, "end_line": 1}),
        ("edit_file", {"path": bad, "old": "secret", "new": "pwned"}),
    ):
        answer = call(tools, name, **args)
        assert answer.startswith("Error: "), (name, answer)
    assert (outside / "stock.py").read_text() == "secret = 1\n"


@pytest.mark.parametrize("glob", ["../*", "/etc/*", "inventory/../../*"])
def test_it_refuses_a_search_glob_that_leaves_the_workspace(tools: StepTools, glob: str) -> None:
    """search_code takes a pattern relative to the workspace only."""
    answer = call(tools, "search_code", pattern="root", path_glob=glob)
    assert answer.startswith("Error: Refused path_glob"), answer


def test_it_never_searches_through_a_symlink_or_into_git(ws: Workspace, tools: StepTools, tmp_path: Path) -> None:
    """A link to a host folder or file is skipped, and .git is never searched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secrets.py").write_text("TOKEN = 'hunter2'\n")
    os.symlink(outside, ws.root / "dir_link")
    os.symlink(outside / "secrets.py", ws.root / "file_link.py")
    assert call(tools, "search_code", pattern="hunter2") == "No matches for 'hunter2' in '**/*'."
    assert call(tools, "search_code", pattern="Initialise workspace|repositoryformatversion") == (
        "No matches for 'Initialise workspace|repositoryformatversion' in '**/*'."
    )


def test_it_finds_matches_as_path_line_text(ws: Workspace, tools: StepTools) -> None:
    """Each match is `path:line: text`; the glob limits the files; binary and big files are skipped."""
    ws.write_file("README.md", "def add is documented here\n")
    (ws.root / "blob.bin").write_bytes(b"\0def add(\0")
    answer = call(tools, "search_code", pattern=r"def (add|remove)\(", path_glob="**/*.py")
    assert answer.splitlines() == [
        "inventory/stock.py:5: def add(self, sku: str, count: int) -> None:",
        "inventory/stock.py:8: def remove(self, sku: str, count: int) -> None:",
    ]
    assert "blob.bin" not in call(tools, "search_code", pattern="def add")
    assert call(tools, "search_code", pattern="def add", path_glob="*.md") == "README.md:1: def add is documented here"
    assert call(tools, "search_code", pattern="def add", path_glob="inventory").startswith("inventory/stock.py:5:")
    (ws.root / "big.py").write_text("def add(\n" * (codesearch.MAX_FILE_BYTES // 9 + 1))
    assert "skipped 1 file(s) over" in call(tools, "search_code", pattern="def add")


def test_it_answers_a_bad_regex_with_a_clear_error(tools: StepTools) -> None:
    """A pattern that does not compile is the model's mistake to fix, not a crash."""
    answer = call(tools, "search_code", pattern="def (add")
    assert answer.startswith("Error: Not a valid Python regular expression (missing ), unterminated subpattern")
    assert call(tools, "search_code", pattern="").startswith("Error: The pattern is empty")


def test_it_bounds_the_number_and_size_of_results(ws: Workspace, tools: StepTools) -> None:
    """At most 50 rows and 8 KB, long lines cut, and the answer says results were cut."""
    ws.write_file("many.py", "".join(f"needle_{i} = 1\n" for i in range(120)))
    answer = call(tools, "search_code", pattern="needle")
    assert len([row for row in answer.splitlines() if row.startswith("many.py:")]) == codesearch.MAX_MATCHES
    assert answer.endswith("[results cut: showing 50 of more than 50 matches; narrow the pattern or path_glob]")
    ws.write_file("many.py", "".join(f"needle_{i} = {'x' * 400}\n" for i in range(120)))
    answer = call(tools, "search_code", pattern="needle")
    rows = [row for row in answer.splitlines() if row.startswith("many.py:")]
    assert 30 < len(rows) < codesearch.MAX_MATCHES
    assert all(len(row) <= len("many.py:100: ") + codesearch.MAX_SHOWN_CHARS for row in rows)
    assert len(answer) <= codesearch.MAX_OUTPUT_CHARS + 200
    assert f"[results cut: showing {len(rows)} of more than 50 matches" in answer


def test_it_stops_a_catastrophic_regex_in_time(
    ws: Workspace, tools: StepTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exponential backtracking is cut off by the time budget; the worker gets its answer back quickly."""
    monkeypatch.setattr(codesearch, "SEARCH_TIMEOUT_S", 1.0)
    ws.write_file("evil.py", "a" * 40 + "!\n")
    started = time.monotonic()
    answer = call(tools, "search_code", pattern="(a+)+$")
    assert time.monotonic() - started < 10
    assert answer.startswith("Error: The search for '(a+)+$' took longer than 1s and was stopped"), answer


def test_it_reads_a_range_of_lines_numbered_with_the_file_length(tools: StepTools) -> None:
    """A ranged read numbers its lines and says how long the file is; a whole-file read is unchanged."""
    assert call(tools, "read_file", path="inventory/stock.py", start_line=4, end_line=5) == (
        "inventory/stock.py: lines 4-5 of 11\n4\tclass Inventory:\n5\t    def add(self, sku: str, count: int) -> None:"
    )
    assert call(tools, "read_file", path="inventory/stock.py", start_line=11).endswith("11\t# Prix en euros — ü")
    assert call(tools, "read_file", path="inventory/stock.py") == MODULE


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (0, 3, "Lines 0-3 are out of range: 'inventory/stock.py' has 11 lines (1-11)."),
        (5, 12, "Lines 5-12 are out of range: 'inventory/stock.py' has 11 lines (1-11)."),
        (12, None, "Lines 12-11 are out of range"),
        (6, 5, "end_line 5 is before start_line 6."),
    ],
)
def test_it_refuses_a_range_outside_the_file(tools: StepTools, start, end, message: str) -> None:
    """Out of range is a clear error that names the file's size."""
    answer = call(tools, "read_file", path="inventory/stock.py", start_line=start, end_line=end)
    assert answer.startswith(f"Error: {message}"), answer


def test_it_edits_one_occurrence_and_keeps_every_other_byte(ws: Workspace, tools: StepTools) -> None:
    """edit_file replaces exactly the unique text; CRLF, non-ASCII and the rest stay byte-for-byte."""
    before = (ws.root / "inventory/stock.py").read_bytes()
    head = "    def remove(self, sku: str, count: int) -> None:\n"
    old = head + "        self.items[sku] = self.items.get(sku, 0) - count\n"
    new = head + "        self.items[sku] = max(0, self.items[sku] - count)\n"
    answer = call(tools, "edit_file", path="inventory/stock.py", old=old, new=new)
    assert answer.startswith("Edited inventory/stock.py: replaced 1 occurrence")
    assert (ws.root / "inventory/stock.py").read_bytes() == before.replace(old.encode(), new.encode())
    assert tools.files_written == ["inventory/stock.py"]


def test_it_refuses_a_non_unique_old_with_the_count(ws: Workspace, tools: StepTools) -> None:
    """Two matches: nothing changes, and the model hears how many and where, and to add context."""
    before = (ws.root / "inventory/stock.py").read_bytes()
    answer = call(tools, "edit_file", path="inventory/stock.py", old="self.items.get(sku, 0)", new="0")
    assert answer == (
        "Error: The text to replace (old) occurs 2 times in 'inventory/stock.py' (at lines 6, 9): "
        "include more of the surrounding lines so that it matches exactly once."
    )
    assert (ws.root / "inventory/stock.py").read_bytes() == before
    assert tools.files_written == []


def test_it_refuses_a_missing_old_and_points_at_the_closest_line(ws: Workspace, tools: StepTools) -> None:
    """A missing old changes nothing; the error names the line that looks most like it."""
    before = (ws.root / "inventory/stock.py").read_bytes()
    answer = call(tools, "edit_file", path="inventory/stock.py", old="def remove(self, sku, count):", new="x")
    assert answer.startswith("Error: The text to replace (old) was not found in 'inventory/stock.py'. ")
    assert "The closest line is 8: 'def remove(self, sku: str, count: int) -> None:'" in answer
    indented = call(tools, "edit_file", path="inventory/stock.py", old="class Inventory:\n  def add(", new="x")
    assert "Its first line matches line 4; the lines after it differ" in indented
    assert (ws.root / "inventory/stock.py").read_bytes() == before


def test_it_refuses_an_empty_old_and_oversized_results(ws: Workspace, tools: StepTools) -> None:
    """An empty old is an error; an edit whose result is over write_file's cap is refused; a missing file too."""
    assert call(tools, "edit_file", path="inventory/stock.py", old="", new="x").startswith(
        "Error: Refused to edit 'inventory/stock.py': old is empty."
    )
    too_big = call(
        tools, "edit_file", path="inventory/stock.py", old="class Inventory:", new="x" * (LARGE_FILE_BYTES + 1)
    )
    assert too_big.startswith("Error: Refused to write 'inventory/stock.py':") and "exceeds" in too_big
    assert call(tools, "edit_file", path="nope.py", old="a", new="b").startswith("Error: File not found")
    assert (ws.root / "inventory/stock.py").read_bytes() == MODULE.encode()


def test_a_big_module_is_read_in_parts_searched_and_edited_in_place(ws: Workspace, tools: StepTools) -> None:
    """A 600 KB module (over the whole-file read limit) is still workable: the whole read says how to read it,
    a range comes back bounded, search finds the line, and edit_file changes one line of it."""
    rows = [f"def f{n}(x):\n    return x + {n}\n" for n in range(20_000)]
    big = "".join(rows)
    (ws.root / "big.py").write_text(big)
    assert len(big) > 500_000
    assert "Read it in parts with start_line and end_line" in call(tools, "read_file", path="big.py")
    part = call(tools, "read_file", path="big.py", start_line=1, end_line=40_000)
    assert part.startswith("big.py: lines 1-") and "[cut after line" in part and len(part) < 45_000
    assert "big.py:30001: def f15000(x):" in call(tools, "search_code", pattern=r"^def f15000\b")
    assert call(tools, "edit_file", path="big.py", old="    return x + 15000\n", new="    return x - 15000\n")
    edited = (ws.root / "big.py").read_text()
    assert edited == big.replace("    return x + 15000\n", "    return x - 15000\n")
