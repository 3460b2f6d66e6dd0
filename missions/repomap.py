"""A compact, bounded map of a repository for planning and step briefs, instead of whole files.

It shows the tracked files with sizes (big folders collapsed), the language mix, the top-level classes
and functions of each Python file with one-line signatures (from ``ast``: nothing is ever executed),
a README excerpt, the test command and the baseline. The text is a pure function of the commit and
the arguments, so a brief that carries it replays from the ledger like any other.
"""

from __future__ import annotations

import ast
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from agents.runtime.workspace import Workspace, WorkspaceError

logger = logging.getLogger(__name__)

MAP_HEADER = "=== Repository map ==="  # agents/sim/responder.py recognises a project brief by it
MAP_FOOTER = "=== End of repository map ==="
DEFAULT_LIMIT_CHARS = 6000
README_LINES = 40
README_LINE_CHARS = 160
SIGNATURE_CHARS = 120
PARSE_LIMIT_BYTES = 200_000
PARSE_LIMIT_FILES = 300
COLLAPSE_STEPS = (12, 4, 0)  # a folder with more files than this is one line; tried in turn until it fits

LANGUAGES = {
    ".py": "Python",
    ".pyi": "Python",
    ".md": "Markdown",
    ".rst": "reStructuredText",
    ".txt": "Text",
    ".toml": "TOML",
    ".cfg": "Config",
    ".ini": "Config",
    ".json": "JSON",
    ".yml": "YAML",
    ".yaml": "YAML",
    ".js": "JavaScript",
    ".mjs": "JavaScript",
    ".ts": "TypeScript",
    ".tsx": "TypeScript",
    ".html": "HTML",
    ".css": "CSS",
    ".sh": "Shell",
    ".go": "Go",
    ".rs": "Rust",
    ".java": "Java",
    ".rb": "Ruby",
    ".c": "C",
    ".h": "C",
    ".cpp": "C++",
    ".sql": "SQL",
}


@dataclass(frozen=True)
class TrackedFile:
    path: str
    size: int

    @property
    def language(self) -> str:
        return LANGUAGES.get(PurePosixPath(self.path).suffix.lower(), "Other")


def repo_map(
    workspace_root: Path, *, test_command: str = "", baseline: str = "", limit_chars: int = DEFAULT_LIMIT_CHARS
) -> str:
    """The map of the commit checked out at ``workspace_root``, at most ``limit_chars`` characters.

    1. List the files git tracks at HEAD with their sizes (git's own record: no file is opened for it).
    2. Header lines: counts, languages, test command, baseline. They always fit.
    3. Share what is left between the README excerpt, the tree and the Python symbols; a section that
       needs less leaves its share to the next, and each one shrinks (collapsed folders, no methods,
       fewer files) until it fits.
    """
    workspace = Workspace(workspace_root)
    files = tracked_files(workspace)
    head = [MAP_HEADER, _summary_line(files)]
    if test_command:
        head.append(f"Test command: {test_command}")
    if baseline:
        head.append(f"Baseline: {baseline}")
    budget = max(limit_chars - sum(len(line) + 1 for line in head) - len(MAP_FOOTER) - 1, 0)
    readme = _fit_lines(_readme_lines(workspace, files), min(budget // 4, 1600))
    budget -= _size(readme)
    tree = _fit_tree(files, budget * 2 // 5)
    budget -= _size(tree)
    symbols = _fit_symbols(workspace, files, budget)
    text = "\n".join([*head, *tree, *symbols, *readme, MAP_FOOTER])
    return text if len(text) <= limit_chars else text[: max(limit_chars - 1, 0)] + "…"


def tracked_files(workspace: Workspace) -> list[TrackedFile]:
    """Regular files and links git tracks at HEAD, sorted by path (submodules left out)."""
    out = workspace._git("ls-tree", "-r", "-l", "-z", "--full-tree", "HEAD")
    found = []
    for record in out.split("\0"):
        meta, _, path = record.partition("\t")
        fields = meta.split()
        if len(fields) == 4 and fields[1] == "blob":
            found.append(TrackedFile(path=path, size=int(fields[3]) if fields[3].isdigit() else 0))
    return sorted(found, key=lambda f: f.path)


def is_test_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    name = parts[-1]
    return name.startswith("test_") or name.endswith("_test.py") or any(p in ("tests", "test") for p in parts[:-1])


# ------------------------------------------------------------------ sections


def _summary_line(files: list[TrackedFile]) -> str:
    languages = Counter(f.language for f in files)
    mix = ", ".join(f"{name} {count}" for name, count in sorted(languages.items(), key=lambda kv: (-kv[1], kv[0])))
    total = sum(f.size for f in files)
    return f"Files: {len(files)} tracked, {_human(total)}. Languages: {mix or 'none'}."


def _fit_tree(files: list[TrackedFile], budget: int) -> list[str]:
    for collapse in COLLAPSE_STEPS:
        lines = ["Tree:", *_tree_lines(files, collapse)]
        if _size(lines) <= budget:
            return lines
    return _fit_lines(lines, budget)


def _tree_lines(files: list[TrackedFile], collapse: int) -> list[str]:
    """Indented tree; a folder holding more than ``collapse`` files (at any depth) is summarised on one line."""
    lines: list[str] = []

    def walk(prefix: tuple[str, ...], members: list[TrackedFile], depth: int) -> None:
        folders: dict[str, list[TrackedFile]] = {}
        for f in members:
            parts = PurePosixPath(f.path).parts[len(prefix) :]
            if len(parts) == 1:
                lines.append(f"{'  ' * depth}{parts[0]} ({_human(f.size)})")
            else:
                folders.setdefault(parts[0], []).append(f)
        for name, inside in sorted(folders.items()):
            size = _human(sum(f.size for f in inside))
            if len(inside) > collapse:
                kinds = Counter(PurePosixPath(f.path).suffix or PurePosixPath(f.path).name for f in inside)
                mix = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1])[:3])
                lines.append(f"{'  ' * depth}{name}/ ({len(inside)} files, {size}: {mix})")
            else:
                lines.append(f"{'  ' * depth}{name}/ ({len(inside)} files, {size})")
                walk((*prefix, name), inside, depth + 1)

    walk((), files, 1)
    return lines


def _fit_symbols(workspace: Workspace, files: list[TrackedFile], budget: int) -> list[str]:
    """Code modules first (with methods while they fit), then tests as counts; cut at a file boundary."""
    python = [f for f in files if f.path.endswith(".py")]
    code = [f for f in python if not is_test_path(f.path)][:PARSE_LIMIT_FILES]
    tests = [f for f in python if is_test_path(f.path)][:PARSE_LIMIT_FILES]
    parsed = {f.path: _parse(workspace, f) for f in code + tests}
    test_lines = [[_test_line(f.path, parsed[f.path])] for f in tests]
    full = [_module_block(f.path, parsed[f.path], methods=True) for f in code] + test_lines
    lines = _fit_blocks(["Python symbols:"], full, budget)
    if len(lines) - 1 == sum(len(block) for block in full):
        return lines
    brief = [_module_block(f.path, parsed[f.path], methods=False) for f in code] + test_lines
    return _fit_blocks(["Python symbols:"], brief, budget)


def _fit_blocks(head: list[str], blocks: list[list[str]], budget: int) -> list[str]:
    """Whole blocks while they fit, then a line saying how many were left out ([] when even that does not fit)."""
    if not blocks:
        return []
    lines = list(head)
    for number, block in enumerate(blocks):
        more = f"  … {len(blocks) - number} more Python file(s) not shown"
        if _size(lines) + _size(block) + len(more) + 1 > budget:
            lines.append(more)
            break
        lines += block
    return lines if _size(lines) <= budget else []


def _module_block(path: str, tree: ast.Module | str, *, methods: bool) -> list[str]:
    if isinstance(tree, str):
        return [f"  {path} ({tree})"]
    lines = [f"  {path}"]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines.append("    " + _signature(node))
        elif isinstance(node, ast.ClassDef):
            bases = ", ".join([*(_unparse(b) for b in node.bases), *(_unparse(k) for k in node.keywords)])
            lines.append(_cut(f"    class {node.name}" + (f"({bases})" if bases else "")))
            if methods:
                lines += [
                    "      " + _signature(item)
                    for item in node.body
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and (not item.name.startswith("_") or item.name == "__init__")
                ]
    return lines


def _test_line(path: str, tree: ast.Module | str) -> str:
    if isinstance(tree, str):
        return f"  {path} ({tree})"
    count = 0
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            count += 1
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            count += sum(
                isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test")
                for item in node.body
            )
    return f"  {path}: {count} test(s)"


def _parse(workspace: Workspace, f: TrackedFile) -> ast.Module | str:
    """The module's syntax tree, or why it has no symbols (too big, unreadable, does not parse)."""
    if f.size > PARSE_LIMIT_BYTES:
        return f"{_human(f.size)}, too big to outline"
    try:
        source = workspace.read_file(f.path, max_bytes=PARSE_LIMIT_BYTES)
    except WorkspaceError:
        return "not readable"
    try:
        return ast.parse(source, filename=f.path)
    except SyntaxError as error:
        where = f" at line {error.lineno}" if error.lineno else ""
        return f"does not parse: {type(error).__name__}{where}"
    except (ValueError, RecursionError, MemoryError) as error:  # NUL bytes, absurd nesting
        return f"does not parse: {type(error).__name__}"


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {_unparse(node.returns)}" if node.returns is not None else ""
    return _cut(f"{prefix} {node.name}({_unparse(node.args)}){returns}")


def _unparse(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except (ValueError, RecursionError):
        return "…"


def _readme_lines(workspace: Workspace, files: list[TrackedFile]) -> list[str]:
    top = [f for f in files if "/" not in f.path and f.path.lower().startswith("readme")]
    if not top:
        return []
    readme = top[0]
    try:
        text = workspace.read_file(readme.path, max_bytes=64_000)
    except WorkspaceError:
        return []
    lines = text.splitlines()
    excerpt = [_cut("  " + line.rstrip(), README_LINE_CHARS) for line in lines[:README_LINES]]
    if len(lines) > README_LINES:
        excerpt.append(f"  … {len(lines) - README_LINES} more line(s)")
    return [f"{readme.path} (first {min(len(lines), README_LINES)} lines):", *excerpt]


# ------------------------------------------------------------------ helpers


def _fit_lines(lines: list[str], budget: int) -> list[str]:
    """The first lines that fit in ``budget`` characters, with a marker when some were left out."""
    if _size(lines) <= budget:
        return lines
    kept, used = [], 0
    for line in lines:
        if used + len(line) + 1 + 12 > budget:
            break
        kept.append(line)
        used += len(line) + 1
    return [*kept, "  … (cut)"] if kept else []


def _size(lines: list[str]) -> int:
    return sum(len(line) + 1 for line in lines)


def _cut(text: str, limit: int = SIGNATURE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _human(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


# ------------------------------------------------------------------ missions


def mission_repo_map(mission, workspace: Workspace | None = None) -> str:
    """The map a mission's briefs carry: '' without a project, so those briefs stay exactly as they were.

    ``workspace`` is a checkout the caller has already (a step's clone); otherwise the mission branch is
    checked out for the map and removed again. A map that cannot be built is a line saying why, not a failure.
    """
    if not mission.project_id:
        return ""
    from missions.repository import mission_checkout

    project = mission.project
    options = {"test_command": project.test_command, "baseline": baseline_text(mission)}
    if workspace is not None:
        return repo_map(workspace.root, **options)
    try:
        with mission_checkout(mission, "map") as checkout:
            return repo_map(checkout.root, **options)
    except WorkspaceError as error:
        logger.warning("mission %s: no repository map: %s", mission.code, error)
        return f"(The repository map could not be built: {error})"


def baseline_text(mission) -> str:
    """What the project's tests did at the mission's base commit, e.g. '15 passed, 0 failed, 0 errors at abc1234'."""
    base = mission.base_sha[:7] or "?"
    found = mission.project.baselines.filter(sha=mission.base_sha).first() if mission.base_sha else None
    if found is None:
        return f"not recorded at {base}"
    verdict = found.get_verdict_display().lower()
    return f"{found.passed} passed, {found.failed} failed, {found.errors} errors at {base} ({verdict})"
