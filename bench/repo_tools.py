"""Benchmark: the code tools and the repository map on a big repository stay bounded in time and output.

Run: .venv/bin/python bench/repo_tools.py
Writes bench/results/repo_tools.json. Builds a throwaway git repository (2,000 Python modules, ~4 MB) in a
temporary directory: the map a planner gets, a search an agent makes (an ordinary and a catastrophic
regex), a ranged read of a big module, and the change summary of a 300-file change for the deploy gate.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")

import django  # noqa: E402

django.setup()

from agents.runtime.codesearch import SearchError  # noqa: E402
from agents.runtime.workspace import Workspace  # noqa: E402
from missions.changes import change_summary  # noqa: E402
from missions.repomap import repo_map  # noqa: E402

MODULES = 2_000
REPEATS = 3


def _module(n: int) -> str:
    funcs = "".join(
        f"def handler_{n}_{k}(request, *, retries: int = 3) -> dict:\n    return {{'k': {k}}}\n\n" for k in range(15)
    )
    return f'"""Module {n}."""\n\n\nclass Service{n}:\n    def run(self, x):\n        return x\n\n\n{funcs}'


def _timed(fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "repo")
        ws.init()
        for n in range(MODULES):
            path = ws.root / "pkg" / f"sub{n // 100}" / f"mod{n}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_module(n))
        (ws.root / "big.py").write_text("".join(f"def f{n}(x):\n    return x + {n}\n" for n in range(40_000)))
        (ws.root / "pkg" / "evil.txt").write_text("a" * 40 + "!\n")  # (a+)+$ backtracks 2**40 ways on it
        base = ws.commit("A big repository")
        size = sum(p.stat().st_size for p in ws.root.rglob("*.py"))
        for n in range(300):  # a change touching 300 files
            path = ws.root / "pkg" / f"sub{n // 100}" / f"mod{n}.py"
            path.write_text(path.read_text().replace("return x\n", "return x * 2\n", 1))
        head = ws.commit("Touch 300 modules")
        subprocess.run(["git", "-C", str(ws.root), "gc", "-q"], check=False)

        results = {}
        seconds, text = _timed(lambda: repo_map(ws.root, test_command="python -m pytest -q", baseline="-"))
        results["repo_map"] = {"median_s": round(seconds, 4), "chars": len(text)}
        seconds, text = _timed(lambda: ws.search_code(r"def handler_1999_\d+", "**/*.py"))
        results["search_code_plain"] = {"median_s": round(seconds, 4), "chars": len(text)}

        def catastrophic() -> str:  # (a+)+$ backtracks 2**40 ways on evil.txt: the child is killed
            try:
                return ws.search_code(r"(a+)+$", "**/*")
            except SearchError as error:
                return f"SearchError: {error}"

        seconds, text = _timed(catastrophic)
        results["search_code_catastrophic"] = {"median_s": round(seconds, 4), "answer": text[:120]}
        seconds, text = _timed(lambda: ws.read_lines("big.py", 30_000, 31_000))
        results["read_file_range_in_80k_lines"] = {"median_s": round(seconds, 4), "chars": len(text)}
        seconds, change = _timed(lambda: change_summary(ws, base, head))
        results["change_summary_300_files"] = {
            "median_s": round(seconds, 4),
            "files": len(change["files"]),
            "patch_chars": sum(len(f["patch"]) for f in change["files"]),
            "truncated": change["truncated"],
        }
    out = {
        "what": "code tools and repository map on a generated repository",
        "modules": MODULES,
        "python_bytes": size,
        "repeats": REPEATS,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "results": results,
    }
    dest = ROOT / "bench" / "results" / "repo_tools.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
