"""Tests that need a Debian package skip only where it truly cannot be had, and never in CI.

`make test` installs what it can (scripts/system-deps.sh); what is still missing
is named once in the summary by ``tests/conftest.py``.
"""

import os

import pytest

SKIP_PREFIX = "missing system package"


def require_package(package: str, usable: bool, detail: str = "") -> None:
    """Skip (or, under CI, fail) the calling test when ``package`` is not usable here."""
    if usable:
        return
    reason = f"{SKIP_PREFIX} {package}" + (f": {detail}" if detail else "")
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide {package} ({reason}).", pytrace=False)
    pytest.skip(reason)


def missing_packages_line(skip_reasons: list[str]) -> str:
    """One summary line: which packages were missing and how many tests skipped for each."""
    counts: dict[str, int] = {}
    for reason in skip_reasons:
        if reason.startswith(SKIP_PREFIX + " "):
            package = reason[len(SKIP_PREFIX) + 1 :].split(":", 1)[0].strip()
            counts[package] = counts.get(package, 0) + 1
    if not counts:
        return ""
    parts = ", ".join(f"{package} ({n} tests)" for package, n in sorted(counts.items()))
    return f"Skipped for missing system packages: {parts}. Install with: apt-get install {' '.join(sorted(counts))}"
