"""scripts/system-deps.sh: `make run`, `make test` and CI install missing Debian packages, or say how.

Each case runs the real script with a PATH of its own: stand-ins for `id`,
`sudo` and `apt-get` record what they were asked, and commands are "installed"
by putting a file of that name on the PATH.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "system-deps.sh"
BASH = shutil.which("bash")


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path: Path):
    """A fake machine: a bin dir, a log of apt-get calls, and a way to run the script on it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"

    def run(mode: str, *, uid=0, installed=("git", "bwrap", "chromium"), apt=True, sudo=False, apt_fails=False):
        for name in installed:
            _stub(bin_dir, name, "exit 0")
        _stub(bin_dir, "id", f"echo {uid}")
        if apt:
            fail = 'if [ "$1" = install ]; then exit 100; fi' if apt_fails else ""
            _stub(bin_dir, "apt-get", f'echo "$*" >> {log}\n{fail}')
        if sudo:
            _stub(bin_dir, "sudo", f'[ "$1" = -n ] && shift; [ $# -eq 0 ] && exit 0; echo "sudo $*" >> {log}; "$@"')
        env = {"PATH": str(bin_dir), "REDIS_URL": "redis://127.0.0.1:1/0", "HOME": str(tmp_path)}
        proc = subprocess.run([BASH, str(SCRIPT), mode], env=env, capture_output=True, text=True, timeout=30)
        calls = log.read_text().splitlines() if log.exists() else []
        return proc, calls

    return run


def test_it_does_nothing_when_everything_is_installed(machine) -> None:
    """With every command present, no package manager is asked anything."""
    proc, calls = machine("test")
    assert proc.returncode == 0, proc.stderr
    assert calls == []


def test_it_installs_missing_packages_as_root(machine) -> None:
    """As root, a missing bwrap and chromium are installed with apt after an update."""
    proc, calls = machine("test", installed=("git",))
    assert proc.returncode == 0, proc.stderr
    assert calls[0] == "update -qq"
    assert calls[1].split()[-2:] == ["bubblewrap", "chromium"]
    assert "Installing Debian packages: bubblewrap chromium" in proc.stdout


def test_it_uses_passwordless_sudo(machine) -> None:
    """Not root but with sudo that needs no password: the install goes through sudo."""
    proc, calls = machine("run", uid=1000, installed=("git",), sudo=True)
    assert proc.returncode == 0, proc.stderr
    assert any(call.startswith("sudo apt-get install") and "bubblewrap" in call for call in calls)


def test_it_stops_with_the_command_when_it_may_not_install(machine) -> None:
    """Not root and no sudo: it stops at once and prints the one command to run."""
    proc, calls = machine("test", uid=1000, installed=("git", "bwrap"))
    assert proc.returncode == 1
    assert "sudo apt-get install -y chromium" in proc.stderr
    assert calls == []


def test_run_mode_does_not_ask_for_chromium(machine) -> None:
    """`make run` needs no browser."""
    proc, calls = machine("run", installed=("git", "bwrap"))
    assert proc.returncode == 0 and calls == []


def test_it_goes_on_without_apt(machine) -> None:
    """Without apt nothing can be installed: it says which packages are missing and goes on."""
    proc, calls = machine("test", installed=("git", "bwrap"), apt=False)
    assert proc.returncode == 0
    assert "Not installed, and no apt-get here to install them: chromium" in proc.stderr


def test_it_can_be_turned_off() -> None:
    """SYSTEM_DEPS=skip skips the check entirely."""
    env = {"PATH": "/nonexistent", "SYSTEM_DEPS": "skip"}
    proc = subprocess.run([BASH, str(SCRIPT), "test"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0


def test_a_failed_install_skips_tests_but_fails_ci(machine) -> None:
    """A package apt cannot install: `make test` goes on (its tests skip), CI stops."""
    proc, _ = machine("test", installed=("git", "bwrap"), apt_fails=True)
    assert proc.returncode == 0
    assert "could not install chromium" in proc.stderr
    proc, _ = machine(
        "ci", installed=("git", "bwrap", "pg_isready", "psql", "pg_ctlcluster", "redis-cli"), apt_fails=True
    )
    assert proc.returncode == 1


def test_it_refuses_an_unknown_mode() -> None:
    proc = subprocess.run([BASH, str(SCRIPT), "deploy"], env=dict(os.environ), capture_output=True, text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr


def test_the_summary_names_missing_packages_in_one_line() -> None:
    """Skips for missing packages are counted per package; other skips are not mentioned."""
    from tests.system import missing_packages_line

    reasons = [
        "missing system package chromium: Debian's chromium drives the browser tests",
        "missing system package bubblewrap: the bwrap executable was not found on PATH.",
        "missing system package chromium",
        "not on this database",
    ]
    assert missing_packages_line(reasons) == (
        "Skipped for missing system packages: bubblewrap (1 tests), chromium (2 tests). "
        "Install with: apt-get install bubblewrap chromium"
    )
    assert missing_packages_line(["not on this database"]) == ""
