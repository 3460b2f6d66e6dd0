"""What a step may commit, and which changes alter how its tests run."""

from __future__ import annotations

import os
import shutil
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from agents.runtime.workspace import Workspace, WorkspaceError


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace(tmp_path / "ws")
    workspace.init()
    return workspace


def _fifo(root: Path) -> None:
    os.mkfifo(root / "pipe")


def _socket(root: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    sock.close()


def _device(root: Path) -> None:
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))


def _absolute_link(root: Path) -> None:
    (root / "passwd").symlink_to("/etc/passwd")


def _relative_link_out(root: Path) -> None:
    (root / "pkg").mkdir()
    (root / "pkg" / "up").symlink_to("../../outside")


def _link_out_through_a_link(root: Path) -> None:
    """Reads as staying inside, but ``sub/d`` is the root itself, so ``sub/d/..`` is its parent."""
    (root / "sub").mkdir()
    (root / "sub" / "d").symlink_to("..")
    (root / "up").symlink_to("sub/d/..")


def _deep_link_out_through_a_link(root: Path) -> None:
    (root / "sub").mkdir()
    (root / "sub" / "d").symlink_to("..")
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "deep").symlink_to("../../sub/d/../..")


def _link_into_git(root: Path) -> None:
    (root / "cfg").symlink_to(".git/config")


def _dangling_link_out(root: Path) -> None:
    (root / "sub").mkdir()
    (root / "sub" / "d").symlink_to("..")
    (root / "gone").symlink_to("sub/d/../no-such-dir/file")


REFUSED: dict[str, tuple[Callable[[Path], None], str]] = {
    "symlink_out_through_a_symlink": (_link_out_through_a_link, "up is a symlink pointing outside the repository"),
    "deep_symlink_out_through_a_symlink": (
        _deep_link_out_through_a_link,
        "a/b/deep is a symlink pointing outside the repository (../../sub/d/../..)",
    ),
    "symlink_into_git": (_link_into_git, "cfg is a symlink pointing into .git (.git/config)"),
    "dangling_symlink_out": (_dangling_link_out, "gone is a symlink pointing outside the repository"),
    "fifo": (_fifo, "pipe is a FIFO"),
    "socket": (_socket, "sock is a socket"),
    "device": (_device, "null is a device file"),
    "absolute_symlink": (_absolute_link, "passwd is a symlink pointing outside the repository (/etc/passwd)"),
    "relative_symlink_out": (_relative_link_out, "pkg/up is a symlink pointing outside the repository (../../outside)"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_it_refuses_to_commit_what_could_escape(ws: Workspace, name: str) -> None:
    """Special files and symlinks leaving the repository are refused, named in the message; nothing is committed."""
    plant, message = REFUSED[name]
    plant(ws.root)
    before = ws.head()
    with pytest.raises(WorkspaceError, match="Refused to commit") as error:
        ws.commit("planted")
    assert message in str(error.value)
    assert ws.head() == before


def test_it_commits_symlinks_that_stay_inside(ws: Workspace) -> None:
    """A relative symlink to a file of the repository is ordinary content."""
    ws.write_file("src/real.py", "x = 1\n")
    (ws.root / "alias.py").symlink_to("src/real.py")
    assert ws.commit("alias") is not None
    assert "alias.py" in ws.changed_files(ws.head())


def test_it_strips_setuid_and_setgid_bits_before_committing(ws: Workspace) -> None:
    """A setuid copy of a shell in the workspace loses the bit on disk, not only in git."""
    shell = ws.root / "sh"
    shutil.copy("/usr/bin/dash", shell)
    shell.chmod(0o6755)
    assert ws.commit("add a shell") is not None
    assert stat.S_IMODE(shell.stat().st_mode) == 0o755


CONFIG_CHANGES = {
    "conftest_at_root": ("conftest.py", "import pytest\n", True),
    "conftest_in_a_package": ("tests/unit/conftest.py", "\n", True),
    "pytest_ini": ("pytest.ini", "[pytest]\naddopts = -p no:warnings\n", True),
    "tox_ini_pytest_section": ("tox.ini", "[tox]\nenvlist = py311\n[pytest]\naddopts = -x\n", True),
    "setup_cfg_pytest_section": ("setup.cfg", "[metadata]\nname = x\n[tool:pytest]\naddopts = -q\n", True),
    "pyproject_pytest_section": ("pyproject.toml", "[tool.pytest.ini_options]\naddopts = '-p myplugin'\n", True),
    "pyproject_plugin_entry_point": ("pyproject.toml", "[project.entry-points.pytest11]\nx = 'x'\n", True),
    "plugin_in_a_test_module": ("test_app.py", "pytest_plugins = ['evil']\n\ndef test_a():\n    pass\n", True),
    "pytest_internals": ("test_app.py", "import _pytest.runner\n", True),
    "shadowing_pytest": ("pytest.py", "print('12 passed')\n", True),
    "path_file": ("evil.pth", "import os\n", True),
    "plain_test_module": ("test_app.py", "def test_pytest_is_fine():\n    assert True\n", False),
    "tox_ini_without_pytest": ("tox.ini", "[tox]\nenvlist = py311\n", False),
    "pyproject_without_pytest": ("pyproject.toml", "[project]\nname = 'app'\n", False),
    "application_code": ("app/models.py", "class Model:\n    pass\n", False),
}


@pytest.mark.parametrize("name", list(CONFIG_CHANGES))
def test_it_detects_changes_to_how_tests_run(ws: Workspace, name: str) -> None:
    """A change adding or editing test configuration or plugins is reported by path; ordinary code is not."""
    path, content, alters = CONFIG_CHANGES[name]
    base = ws.head()
    ws.write_file(path, content)
    ws.commit(name)
    assert ws.test_config_changes(base) == ([path] if alters else [])


def test_it_detects_removing_test_configuration(ws: Workspace) -> None:
    """Deleting a pytest section (or a conftest) alters how tests run just as adding one does."""
    ws.write_file("setup.cfg", "[tool:pytest]\naddopts = --strict-markers\n")
    ws.write_file("conftest.py", "\n")
    base = ws.commit("config")
    ws.write_file("setup.cfg", "[metadata]\nname = app\n")
    (ws.root / "conftest.py").unlink()
    ws.commit("drop config")
    assert ws.test_config_changes(base) == ["conftest.py", "setup.cfg"]


def test_it_refuses_to_run_git_on_a_repository_config_that_could_run_commands(ws: Workspace) -> None:
    """A filter driver planted in .git/config (with a .gitattributes using it) is never run by host git."""
    proof = ws.root.parent / "filter-ran"
    with open(ws.root / ".git" / "config", "a") as config:
        config.write(f'[filter "x"]\n\tclean = sh -c "touch {proof}; cat"\n')
    ws.write_file(".gitattributes", "* filter=x\n")
    ws.write_file("a.txt", "hi\n")
    with pytest.raises(WorkspaceError, match=r"settings the product never writes \(filter\.x\.clean\)"):
        ws.commit("filtered")
    assert not proof.exists()


def test_clones_and_merges_pass_the_config_check(ws: Workspace, tmp_path: Path) -> None:
    """The keys the product itself writes (identity, origin, branch tracking) are not refused."""
    clone = ws.clone_to(tmp_path / "clone")
    clone.write_file("b.txt", "b\n")
    clone.commit("b")
    ws.merge_from(clone, "merge b")
    assert "b.txt" in ws.list_files()
