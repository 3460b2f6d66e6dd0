"""change_summary on a real git repository, and the diff rendered as escaped, coloured HTML."""

import json
import re

import pytest
from django.template import Context, Template

from agents.runtime.workspace import Workspace
from missions import changes
from missions.changes import ChangeError, change_summary
from missions.templatetags.diffs import comparison_rows

CORE = "def one():\n    return 1\n\n\ndef two():\n    return 2\n"


@pytest.fixture
def repo(tmp_path) -> Workspace:
    """A repository with a base commit holding a few files."""
    workspace = Workspace(tmp_path / "repo")
    workspace.init()
    workspace.write_file("app/core.py", CORE)
    workspace.write_file("app/old_name.py", "".join(f"line {n}\n" for n in range(20)))
    workspace.write_file("obsolete.txt", "a\nb\nc\n")
    workspace.commit("Base")
    return workspace


def _by_path(summary: dict) -> dict:
    return {f["path"]: f for f in summary["files"]}


def test_it_lists_added_modified_deleted_and_renamed_files_with_their_counts_and_the_commits(repo):
    """Each changed file has its status and +/- counts; a rename is paired with its old path; commits are listed."""
    base = repo.head()
    repo.write_file("app/core.py", CORE.replace("return 2\n", "return 22\n") + "\n\ndef three():\n    return 3\n")
    repo.commit("Change core")
    repo.write_file("app/new_name.py", "".join(f"line {n}\n" for n in range(20)) + "line 20\n")
    (repo.root / "app" / "old_name.py").unlink()
    (repo.root / "obsolete.txt").unlink()
    repo.write_file("docs/guide with space.md", "# Guide\nHello\n")
    head = repo.commit("Rename, delete, add")

    summary = change_summary(repo, base, head)

    assert summary["base"] == base and summary["head"] == head
    files = _by_path(summary)
    assert {p: (f["status"], f["added"], f["removed"]) for p, f in files.items()} == {
        "app/core.py": ("modified", 5, 1),
        "app/new_name.py": ("renamed", 1, 0),
        "docs/guide with space.md": ("added", 2, 0),
        "obsolete.txt": ("deleted", 0, 3),
    }
    assert files["app/new_name.py"]["old_path"] == "app/old_name.py"
    assert "+    return 22" in files["app/core.py"]["patch"] and "-    return 2\n" in files["app/core.py"]["patch"]
    assert "rename from app/old_name.py" in files["app/new_name.py"]["patch"]
    assert "+Hello" in files["docs/guide with space.md"]["patch"]
    assert (summary["added"], summary["removed"], summary["files_total"]) == (8, 4, 4)
    assert [c["subject"] for c in summary["commits"]] == ["Rename, delete, add", "Change core"]
    assert summary["commits"][0]["sha"] == head and summary["commits"][0]["author"] == "Mission Orchestrator"
    assert not summary["truncated"] and not any(f["truncated"] or f["binary"] for f in summary["files"])
    assert json.loads(json.dumps(summary)) == summary  # fits a gate's JSON as it is


def test_it_flags_a_binary_file_and_gives_no_patch(repo):
    """A file with NUL bytes is 'binary': no counts, no patch text, nothing of its bytes in the summary."""
    base = repo.head()
    (repo.root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    head = repo.commit("Add a logo")

    (logo,) = change_summary(repo, base, head)["files"]

    assert logo == {
        "path": "logo.png",
        "old_path": "logo.png",
        "status": "added",
        "added": 0,
        "removed": 0,
        "binary": True,
        "truncated": False,
        "patch": "",
    }


def test_it_caps_a_huge_file_and_the_total_and_says_so(repo):
    """A file's patch is cut at the per-file cap on a line break; past the total cap patches are left out."""
    base = repo.head()
    repo.write_file("big.txt", "".join(f"{n:06d} {'x' * 90}\n" for n in range(1000)))  # ~100 KB
    for n in range(12):
        repo.write_file(f"mid/{n:02d}.txt", "".join(f"{n} {i} {'y' * 90}\n" for i in range(380)))  # ~37 KB each
    head = repo.commit("Large change")

    summary = change_summary(repo, base, head)

    files = _by_path(summary)
    big = files["big.txt"]
    assert big["truncated"] and big["added"] == 1000
    assert len(big["patch"].encode()) <= changes.MAX_FILE_PATCH_BYTES and big["patch"].endswith("\n")
    assert summary["truncated"]
    total = sum(len(f["patch"].encode()) for f in summary["files"])
    assert total <= changes.MAX_TOTAL_PATCH_BYTES
    assert files["mid/11.txt"]["truncated"] and files["mid/11.txt"]["patch"] == ""  # the budget ran out
    assert files["mid/00.txt"]["patch"] and not files["mid/00.txt"]["truncated"]


def test_it_lists_at_most_max_files_and_counts_the_rest(repo, monkeypatch):
    """Past MAX_FILES, files are not listed but still counted in the totals."""
    monkeypatch.setattr(changes, "MAX_FILES", 5)
    base = repo.head()
    for n in range(8):
        repo.write_file(f"many/{n}.txt", "one\ntwo\n")
    head = repo.commit("Many files")

    summary = change_summary(repo, base, head)

    assert len(summary["files"]) == 5 and summary["files_total"] == 8 and summary["files_omitted"] == 3
    assert summary["added"] == 16 and summary["truncated"]


def test_it_does_not_diff_a_file_larger_than_the_blob_limit(repo, monkeypatch):
    """A side larger than MAX_BLOB_BYTES is counted but never diffed into memory."""
    monkeypatch.setattr(changes, "MAX_BLOB_BYTES", 1_000)
    base = repo.head()
    repo.write_file("data.csv", "a,b\n" * 600)
    head = repo.commit("Data")

    (data,) = change_summary(repo, base, head)["files"]

    assert (data["added"], data["truncated"], data["patch"]) == (600, True, "")


@pytest.mark.parametrize("rev", ["", "--output=/tmp/x", "no-such-ref", "HEAD~99"])
def test_it_refuses_a_revision_that_is_not_a_commit(repo, rev):
    """Option-like or unknown revisions are a clear error, never a git option."""
    with pytest.raises(ChangeError, match="Not a commit"):
        change_summary(repo, rev, repo.head())


# --- rendering ------------------------------------------------------------------------------------

PATCH = (
    "diff --git a/page.html b/page.html\n"
    "--- a/page.html\n"
    "+++ b/page.html\n"
    "@@ -1,2 +1,2 @@\n"
    " <p>same</p>\n"
    '-<script>alert("old")</script>\n'
    "+<img src=x onerror=alert(1)><script>alert(1)</script>\n"
)


def _render(patch: str) -> str:
    return Template("{% load diffs %}{% render_diff patch %}").render(Context({"patch": patch}))


def test_it_colours_added_removed_and_hunk_lines():
    """Added, removed and hunk lines each get their own class inside one <pre>."""
    html = _render(PATCH)
    assert html.startswith('<pre class="diff-code">') and html.endswith("</pre>")
    assert re.search(r'<span class="diff-gi">\+&lt;img', html)
    assert re.search(r'<span class="diff-gd">-&lt;script&gt;', html)
    assert '<span class="diff-gu">@@ -1,2 +1,2 @@</span>' in html


def test_it_escapes_html_in_the_patch():
    """The patch is model-written: no tag from it survives as markup."""
    html = _render(PATCH)
    assert "<script" not in html and "<img" not in html and "<p>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert set(re.findall(r"<(\w+)", html)) == {"pre", "span"}


def test_it_renders_nothing_for_an_empty_patch():
    assert _render("") == ""


class _Run:
    def __init__(self, comparison):
        self.comparison = comparison


def test_it_turns_a_test_comparison_into_rows_and_ignores_junk():
    """Known keys in order, names from strings or dicts; anything else is left out."""
    rows = comparison_rows(_Run({"fixed": ["t::b"], "regressed": [{"nodeid": "t::a"}], "new": "junk", "other": [1]}))
    assert [(r["key"], r["count"], r["names"]) for r in rows] == [("regressed", 1, ["t::a"]), ("fixed", 1, ["t::b"])]
    assert comparison_rows(None) == [] and comparison_rows(_Run("junk")) == []


def test_an_attribute_cannot_hide_source_as_binary_nor_show_binary_as_text(repo):
    """git's own binary test decides: ``-diff`` on a source file still shows its patch; ``diff`` forced on
    a file with NUL bytes does not put those bytes in the page."""
    base = repo.head()
    repo.write_file(".gitattributes", "*.py -diff\n*.bin diff\n")
    repo.write_file("app/core.py", CORE + "\n\ndef backdoor():\n    return 'open'\n")
    (repo.root / "blob.bin").write_bytes(b"abc\x00def\n" * 10)
    head = repo.commit("Hide a change")

    files = _by_path(change_summary(repo, base, head))

    core = files["app/core.py"]
    assert (core["binary"], core["added"], core["removed"]) == (False, 4, 0)
    assert "+def backdoor():" in core["patch"]
    assert files["blob.bin"]["binary"] and files["blob.bin"]["patch"] == ""
