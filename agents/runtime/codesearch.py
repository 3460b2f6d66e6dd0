"""Regex search over a workspace's text files, bounded in matches, output, bytes and time.

Python's ``re`` has no timeout and keeps the GIL while it backtracks, so a thread cannot bound a
catastrophic pattern such as ``(a+)+$``: the matching runs in a short-lived child process that is
killed when SEARCH_TIMEOUT_S is up. The parent reads the files (with the workspace's path checks) and
hands the child only text; the child imports nothing but ``json`` and ``re``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

MAX_MATCHES = 50
MAX_OUTPUT_CHARS = 8_000
MAX_SHOWN_CHARS = 200  # of each matching line
MAX_MATCHED_CHARS = 2_000  # of each line searched: minified files would make every search slow
MAX_FILE_BYTES = 1_000_000  # larger files are skipped (and counted in the answer)
SCAN_LIMIT_BYTES = 4_000_000  # in all: a huge tree is searched in part, and the answer says so
MAX_PATTERN_CHARS = 500
SEARCH_TIMEOUT_S = 5.0
BINARY_SNIFF_BYTES = 8_192

# Runs in the child: {"pattern", "files": [[path, text]], "limit", "width"} on stdin, matches on stdout.
_CHILD = r"""
import json, re, sys
job = json.load(sys.stdin)
rx = re.compile(job["pattern"])
found = []
for path, text in job["files"]:
    for number, line in enumerate(text.splitlines(), 1):
        if rx.search(line[: job["width"]]):
            found.append([path, number, line])
            if len(found) > job["limit"]:
                json.dump(found, sys.stdout)
                sys.exit(0)
json.dump(found, sys.stdout)
"""


class SearchError(ValueError):
    """The search was refused or could not finish; the message is for the model."""


@dataclass(frozen=True)
class Match:
    path: str
    line: int
    text: str


def compile_pattern(pattern: str) -> re.Pattern:
    """The compiled pattern, or a SearchError saying what is wrong with it."""
    if not isinstance(pattern, str) or not pattern:
        raise SearchError("The pattern is empty: give a Python regular expression, e.g. 'def quantity'.")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise SearchError(f"The pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN_CHARS}.")
    try:
        return re.compile(pattern)
    except re.error as error:
        raise SearchError(f"Not a valid Python regular expression ({error}): {pattern!r}.") from None


def glob_regex(glob: str) -> re.Pattern:
    """A path glob as a regex: ``**/`` any folders (or none), ``*`` and ``?`` within one name.

    A glob without a ``/`` matches a file name in any folder (``*.py``); a folder matches what is in it.
    """
    if not isinstance(glob, str) or not glob.strip() or "\0" in glob:
        raise SearchError("The path_glob is empty: use '**/*' for every file.")
    glob = glob.strip().rstrip("/")
    if glob.startswith(("/", "\\")) or ".." in glob.replace("\\", "/").split("/"):
        raise SearchError(f"Refused path_glob {glob!r}: use a pattern relative to the workspace, without '..'.")
    if "/" not in glob:
        glob = "**/" + glob
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out) + r"(?:/.*)?\Z")


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:BINARY_SNIFF_BYTES]


def match_lines(pattern: str, files: list[tuple[str, str]]) -> tuple[list[Match], bool]:
    """(at most MAX_MATCHES matches in file order, whether there were more); SearchError on a timeout."""
    compile_pattern(pattern)  # a clear error before a process is started
    job = json.dumps({"pattern": pattern, "files": files, "limit": MAX_MATCHES, "width": MAX_MATCHED_CHARS})
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": tempfile.gettempdir()}
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _CHILD],
            input=job.encode("utf-8"),
            capture_output=True,
            timeout=SEARCH_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SearchError(
            f"The search for {pattern!r} took longer than {SEARCH_TIMEOUT_S:.0f}s and was stopped: "
            "simplify the pattern (avoid nested repetition such as (a+)+) or narrow path_glob."
        ) from None
    if proc.returncode != 0:
        raise SearchError(f"The search failed: {proc.stderr.decode('utf-8', errors='replace').strip()[-500:]}")
    rows = json.loads(proc.stdout)
    matches = [Match(path=str(p), line=int(n), text=str(t)) for p, n, t in rows[:MAX_MATCHES]]
    return matches, len(rows) > MAX_MATCHES


def format_matches(pattern: str, glob: str, matches: list[Match], *, more: bool, notes: list[str]) -> str:
    """``path:line: text`` rows within MAX_OUTPUT_CHARS, saying when and why results were cut."""
    if not matches:
        return "\n".join([f"No matches for {pattern!r} in {glob!r}.", *notes])
    rows, size, shown = [], 0, 0
    for match in matches:
        text = match.text.strip()
        if len(text) > MAX_SHOWN_CHARS:
            text = text[: MAX_SHOWN_CHARS - 3] + "..."
        row = f"{match.path}:{match.line}: {text}"
        if size + len(row) + 1 > MAX_OUTPUT_CHARS:
            break
        rows.append(row)
        size += len(row) + 1
        shown += 1
    if more or shown < len(matches):
        total = f"more than {len(matches)}" if more else str(len(matches))
        notes = [f"[results cut: showing {shown} of {total} matches; narrow the pattern or path_glob]", *notes]
    return "\n".join(rows + notes)
