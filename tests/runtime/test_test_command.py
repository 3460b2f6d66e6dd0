"""A project's own test command and its setup command, run in the real sandbox (bubblewrap)."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.runtime.sandbox import (
    SandboxError,
    SandboxLimits,
    run_pytest,
    run_setup_command,
    run_test_command,
)
from tests.sandbox_support import require_bwrap

TESTS = """
    def test_good():
        assert 1 + 1 == 2

    def test_bad():
        assert "left" == "right"
"""

# A package the setup command installs into the environment (a .pth pointing at a directory there).
SETUP = (
    "site=$(python -c \"import sysconfig; print(sysconfig.get_paths()['purelib'])\") && "
    'mkdir -p "$VIRTUAL_ENV/pkgs/localpkg" && '
    "printf 'ANSWER = 42\\n' > \"$VIRTUAL_ENV/pkgs/localpkg/__init__.py\" && "
    'echo "$VIRTUAL_ENV/pkgs" > "$site/localpkg.pth"'
)

USES_ENV = """
    import os
    from pathlib import Path

    import localpkg

    def test_package_from_the_environment_is_importable():
        assert localpkg.ANSWER == 42

    def test_the_environment_is_read_only():
        target = Path(os.environ["VIRTUAL_ENV"]) / "planted.py"
        target.write_text("x = 1")
"""

CONNECT = """
    import socket

    def test_connect():
        socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
"""


@pytest.fixture(autouse=True)
def _bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    require_bwrap()
    monkeypatch.setenv("SANDBOX_BACKEND", "bwrap")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "checkout"
    path.mkdir()
    return path


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An environment made once by a setup command that installs ``localpkg``."""
    require_bwrap()
    checkout = tmp_path_factory.mktemp("setup-checkout")
    env = tmp_path_factory.mktemp("envs") / "env"
    run_setup_command(checkout, SETUP, env_dir=env, limits=SandboxLimits(timeout_s=120))
    return env


def write(workdir: Path, name: str, code: str) -> None:
    (workdir / name).parent.mkdir(parents=True, exist_ok=True)
    (workdir / name).write_text(textwrap.dedent(code))


def outcomes(result) -> dict[str, str]:
    return {test.nodeid: test.outcome for test in result.tests}


@pytest.mark.parametrize("command", ["python -m pytest -q", "pytest -q test_mixed.py", "python3 -m pytest"])
def test_it_reports_each_test_of_a_pytest_command(workdir: Path, command: str) -> None:
    """Every way of naming pytest runs it with a JUnit report: one outcome per test."""
    write(workdir, "test_mixed.py", TESTS)
    result = run_test_command(workdir, command)
    assert outcomes(result) == {"test_mixed.py::test_good": "passed", "test_mixed.py::test_bad": "failed"}
    assert (result.passed, result.failed, result.errors) == (1, 1, 0)
    assert result.isolation == "bwrap"
    assert "Warning" not in result.log  # nothing of how the product starts pytest shows in the project's log


def test_it_passes_pytest_arguments_through(workdir: Path) -> None:
    """Arguments after pytest select tests as they would on the command line."""
    write(workdir, "test_mixed.py", TESTS)
    result = run_test_command(workdir, "python -m pytest -q -k good")
    assert outcomes(result) == {"test_mixed.py::test_good": "passed"}


def test_run_pytest_is_the_default_command(workdir: Path) -> None:
    """run_pytest(workdir) is run_test_command(workdir, "python -m pytest -q")."""
    write(workdir, "test_mixed.py", TESTS)
    assert outcomes(run_pytest(workdir)) == outcomes(run_test_command(workdir, "python -m pytest -q"))


@pytest.mark.parametrize(
    ("command", "counts"),
    [("true", (1, 0, 0)), ("sh -c 'exit 3'", (0, 1, 0)), ("no-such-command --flag", (0, 0, 1))],
)
def test_it_judges_another_command_by_its_exit_code(workdir: Path, command: str, counts: tuple) -> None:
    """A non-pytest command has no per-test list: exit 0 passes, another code fails, no such program errors."""
    result = run_test_command(workdir, command)
    assert (result.passed, result.failed, result.errors) == counts
    assert result.tests == []


def test_it_stops_a_hanging_test_command(workdir: Path) -> None:
    """A command that runs past the time limit is an error, with the reason in the log."""
    result = run_test_command(workdir, "sleep 30", limits=SandboxLimits(timeout_s=1))
    assert result.timed_out and result.errors == 1
    assert "timeout" in result.log


@pytest.mark.parametrize(
    ("command", "message"),
    [("", "The command is empty."), ("   ", "The command is empty."), ("pytest 'unclosed", "cannot be parsed")],
)
def test_it_refuses_an_empty_or_unparsable_command(workdir: Path, command: str, message: str) -> None:
    with pytest.raises(SandboxError, match=message):
        run_test_command(workdir, command)


def test_the_environment_is_importable_and_read_only(workdir: Path, env_dir: Path) -> None:
    """With env_dir, its packages import and pytest comes from it; writing into it fails."""
    write(workdir, "test_env.py", USES_ENV)
    result = run_test_command(workdir, "python -m pytest -q", env_dir=env_dir)
    assert outcomes(result) == {
        "test_env.py::test_package_from_the_environment_is_importable": "passed",
        "test_env.py::test_the_environment_is_read_only": "failed",
    }, result.log
    assert "Read-only file system" in result.log
    assert not (env_dir / "planted.py").exists()


def test_a_non_pytest_command_finds_the_environment_first_on_path(workdir: Path, env_dir: Path) -> None:
    """PATH starts with env_dir/bin and VIRTUAL_ENV names it."""
    command = f'sh -c \'test "$(command -v python)" = "{env_dir}/bin/python" && test "$VIRTUAL_ENV" = "{env_dir}"\''
    assert run_test_command(workdir, command, env_dir=env_dir).passed == 1
    assert run_test_command(workdir, command).failed == 1


def test_the_test_run_has_no_network_but_setup_does(workdir: Path, env_dir: Path, listener: int) -> None:
    """The same connection fails in a test run and succeeds in a setup command."""
    write(workdir, "test_net.py", CONNECT.format(port=listener))
    result = run_test_command(workdir, "python -m pytest -q", env_dir=env_dir)
    assert outcomes(result) == {"test_net.py::test_connect": "failed"}
    probe = f"python -c \"import socket; socket.create_connection(('127.0.0.1', {listener}), timeout=3).close()\""
    setup_env = workdir.parent / "net-env"
    run_setup_command(workdir, probe, env_dir=setup_env, limits=SandboxLimits(timeout_s=60))


def test_a_setup_run_gets_the_workers_package_index_settings_and_nothing_else(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip in a setup command finds the same index, CA bundle and proxy as the worker's own pip; other
    variables of the worker (a secret) stay out."""
    monkeypatch.setenv("PIP_INDEX_URL", "https://pypi.mirror.example/simple")
    monkeypatch.setenv("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("WORKER_SECRET", "do-not-pass")
    env_dir = tmp_path / "env"
    seen = 'printf "%s|%s|%s" "$PIP_INDEX_URL" "$PIP_CERT" "${WORKER_SECRET:-none}" > "$VIRTUAL_ENV/seen"'
    run_setup_command(workdir, seen, env_dir=env_dir, limits=SandboxLimits(timeout_s=60))
    assert (
        env_dir / "seen"
    ).read_text() == "https://pypi.mirror.example/simple|/etc/ssl/certs/ca-certificates.crt|none"


def test_a_failing_setup_says_why(workdir: Path, tmp_path: Path) -> None:
    """A setup command that exits non-zero raises with its exit code and output."""
    with pytest.raises(SandboxError) as caught:
        run_setup_command(
            workdir, "echo resolving deps; exit 7", env_dir=tmp_path / "env", limits=SandboxLimits(timeout_s=60)
        )
    assert "The setup command failed (exit code 7)" in str(caught.value)
    assert "resolving deps" in str(caught.value)


def test_a_hanging_setup_is_stopped(workdir: Path, tmp_path: Path) -> None:
    """A setup command past its time limit is killed and reported."""
    with pytest.raises(SandboxError, match="stopped after its 2s time limit"):
        run_setup_command(workdir, "sleep 60", env_dir=tmp_path / "env", limits=SandboxLimits(timeout_s=2))


def test_an_empty_setup_command_is_refused(workdir: Path, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="The setup command is empty."):
        run_setup_command(workdir, "  ", env_dir=tmp_path / "env", limits=SandboxLimits())


def test_a_setup_that_leaves_special_files_in_the_environment_is_refused(workdir: Path, tmp_path: Path) -> None:
    """Device files, FIFOs and sockets have no place in an environment later runs mount; the run is refused."""
    make_socket = "import os, socket; socket.socket(socket.AF_UNIX).bind(os.environ['VIRTUAL_ENV'] + '/lib/sock')"
    with pytest.raises(SandboxError, match=r"left 1 device file\(s\), FIFO\(s\) or socket\(s\).*: lib/sock\."):
        run_setup_command(
            workdir, f'python -c "{make_socket}"', env_dir=tmp_path / "env", limits=SandboxLimits(timeout_s=60)
        )


def test_a_src_layout_package_imports_from_its_tests_without_an_install(workdir: Path) -> None:
    """Many projects keep their package in src/ and install it before testing; the run finds it there."""
    write(workdir, "src/widgets/__init__.py", "SIZE = 3\n")
    write(workdir, "tests/test_widgets.py", "from widgets import SIZE\n\ndef test_size():\n    assert SIZE == 3\n")
    result = run_test_command(workdir, "python -m pytest -q")
    assert outcomes(result) == {"tests/test_widgets.py::test_size": "passed"}, result.log
