"""The tools an execution agent calls over its mission's git workspace.

Every tool validates its arguments and answers a bad call with an error
text for the model, instead of failing the step. AutoGen runs all tool calls
of one model message concurrently, so the tools of one workspace take turns
(a lock): no host-side file access or commit ever overlaps a live sandbox run.
"""

import asyncio
import fcntl
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from pathlib import Path

from autogen_core.tools import FunctionTool

from agents.runtime.codesearch import SearchError
from agents.runtime.sandbox import PytestResult, SandboxError, SandboxLimits, run_pytest
from agents.runtime.workspace import Workspace, WorkspaceError

TOOL_NAMES = ("list_files", "read_file", "search_code", "edit_file", "write_file", "run_tests", "commit")


def _green(result: PytestResult) -> tuple[bool, str]:
    """Without a baseline: tests ran and none failed."""
    return bool(result.passed) and not (result.failed or result.errors or result.timed_out), ""


@contextmanager
def workspace_lock(root: Path):
    """Serialise git operations of parallel steps on one workspace."""
    lock_path = root / ".git" / "mo.lock"
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class StepTools:
    """Tools bound to one step's workspace; remembers the commits and test runs it made."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        limits: SandboxLimits,
        on_test_run: Callable[[PytestResult], Awaitable[None]],
        allowed: tuple[str, ...] = TOOL_NAMES,
        runner: Callable[[Path, SandboxLimits], PytestResult] | None = None,
        judge: Callable[[PytestResult], tuple[bool, str]] | None = None,
    ) -> None:
        self.workspace = workspace
        self.limits = limits
        self.on_test_run = on_test_run
        # How tests run (a project's own command) and what counts as green (against its baseline).
        self.runner = runner or (lambda root, limits: run_pytest(root, limits=limits))
        self.judge = judge or _green
        self.allowed = [name for name in TOOL_NAMES if name in allowed]
        self.commits: list[str] = []
        self.files_written: list[str] = []
        self.last_test: PytestResult | None = None
        self.last_test_tree = ""  # the working tree that last run tested (Workspace.worktree_id)
        # While a sandbox run is live its code owns the tree and can swap paths under the host's feet.
        self._turn = asyncio.Lock()

    async def list_files(self, path: str = ".") -> str:
        """List the files in the repository (or below a folder of it)."""
        try:
            async with self._turn:
                files = await asyncio.to_thread(self.workspace.list_files, path)
        except WorkspaceError as error:
            return f"Error: {error}"
        return "\n".join(files) if files else "(no files)"

    async def read_file(self, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
        """Read a text file of the repository; with start_line and/or end_line, only those lines, numbered."""
        try:
            async with self._turn:
                if start_line is None and end_line is None:
                    return await asyncio.to_thread(self.workspace.read_file, path)
                return await asyncio.to_thread(self.workspace.read_lines, path, start_line, end_line)
        except WorkspaceError as error:
            if "read limit" in str(error):  # a big module: it can still be read in parts
                return f"Error: {error} Read it in parts with start_line and end_line (search_code finds where)."
            return f"Error: {error}"

    async def search_code(self, pattern: str, path_glob: str = "**/*") -> str:
        """Search the repository's text files for a Python regular expression; answers path:line: text rows."""
        try:
            async with self._turn:
                return await asyncio.to_thread(self.workspace.search_code, pattern, path_glob)
        except (WorkspaceError, SearchError) as error:
            return f"Error: {error}"

    async def edit_file(self, path: str, old: str, new: str) -> str:
        """Replace the exact text old, which must occur once in the file, with new; the rest stays as it is."""
        try:
            async with self._turn:
                size = await asyncio.to_thread(self.workspace.edit_file, path, old, new)
        except WorkspaceError as error:
            return f"Error: {error}"
        if path not in self.files_written:
            self.files_written.append(path)
        return f"Edited {path}: replaced 1 occurrence ({size} bytes now)."

    async def write_file(self, path: str, content: str) -> str:
        """Create or replace a text file in the repository (relative path)."""
        try:
            async with self._turn:
                size = await asyncio.to_thread(self.workspace.write_file, path, content)
        except WorkspaceError as error:
            return f"Error: {error}"
        if path not in self.files_written:
            self.files_written.append(path)
        return f"Wrote {size} bytes to {path}."

    async def run_tests(self) -> str:
        """Run the repository's pytest tests in the sandbox and report the results."""
        try:
            result = await self.test_run()
        except (SandboxError, WorkspaceError) as error:
            return f"Error: the sandbox could not run the tests: {error}"
        ok, reason = self.judge(result)
        head = (
            f"{'PASSED' if ok else 'FAILED'}: {result.passed} passed, {result.failed} failed, {result.errors} errors, "
            f"{result.skipped} skipped in {result.duration_s:.1f}s ({result.isolation} sandbox)"
        )
        if ok:
            return head + (f"\n{reason}" if reason else "")
        return f"{head}\n{reason}\n{result.log[-3000:]}"

    async def test_run(self) -> PytestResult:
        """Run the tests, remembering which tree they ran on; the engine calls this for its own acceptance run."""

        def _tree() -> str:
            with workspace_lock(self.workspace.root):
                return self.workspace.worktree_id()

        async with self._turn:
            tree = await asyncio.to_thread(_tree)
            result = await asyncio.to_thread(self.runner, self.workspace.root, self.limits)
        self.last_test, self.last_test_tree = result, tree
        await self.on_test_run(result)
        return result

    async def commit(self, message: str) -> str:
        """Commit every change in the repository with the given message."""
        if not message.strip():
            return "Error: the commit message must not be empty."

        def _commit() -> str | None:
            with workspace_lock(self.workspace.root):
                return self.workspace.commit(message)

        try:
            async with self._turn:
                sha = await asyncio.to_thread(_commit)
        except WorkspaceError as error:
            return f"Error: {error}"
        if sha is None:
            return "Nothing to commit: the working tree has no changes."
        self.commits.append(sha)
        return f"Committed {sha[:12]}."

    def function_tools(self) -> list[FunctionTool]:
        return [
            FunctionTool(getattr(self, name), description=getattr(self, name).__doc__, name=name)
            for name in self.allowed
        ]
