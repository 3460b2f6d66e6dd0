"""Render a patch as coloured HTML on the server: Pygments' diff lexer, one span per line kind.

The patch is text a model wrote. Pygments escapes every token it emits (``<`` becomes ``&lt;``), and the
result is the only markup on the page that is marked safe here: a test checks that ``<script>`` in a diff
line comes out escaped.
"""

from functools import lru_cache

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

from missions.changes import diff_rows

register = template.Library()

# Classes diff-gi (added line), diff-gd (removed), diff-gu (hunk header), diff-gh (file header): static/css/app.css.
_FORMATTER = HtmlFormatter(nowrap=True, classprefix="diff-")
_LEXER = DiffLexer(stripnl=False, ensurenl=True)


@lru_cache(maxsize=64)  # the live page re-renders the gates on every event; a patch stays the same
def _highlighted(patch: str) -> str:
    return highlight(patch, _LEXER, _FORMATTER)


@register.simple_tag
def render_diff(patch: str) -> str:
    if not patch:
        return ""
    html = _highlighted(str(patch))
    return mark_safe(f'<pre class="diff-code">{html}</pre>')  # noqa: S308 - every token escaped by Pygments


_COMPARISON = (
    ("regressed", "Regressed: passed at the base, fail now"),
    ("fixed", "Fixed: failed at the base, pass now"),
    ("new", "New tests"),
    ("still_failing", "Failing at the base too (not blocking)"),
)
MAX_NAMES = 50


@register.filter
def comparison_rows(run) -> list[dict]:
    """A test run's comparison with the baseline (TestRun.comparison) as rows to list; [] when it has none."""
    comparison = getattr(run, "comparison", None)
    if not isinstance(comparison, dict):
        return []
    rows = []
    for key, label in _COMPARISON:
        names = comparison.get(key) or []
        if isinstance(names, list) and names:
            shown = [n.get("nodeid", "") if isinstance(n, dict) else str(n) for n in names[:MAX_NAMES]]
            rows.append({"key": key, "label": label, "count": len(names), "names": shown})
    return rows


_ROW_CLASS = {"add": "diff-gi", "del": "diff-gd", "hunk": "diff-gu", "file": "diff-gh", "meta": "diff-gh", "ctx": ""}


@register.simple_tag
def render_diff_lines(patch: str, comments=(), *anchor_parts, path: str = "") -> str:
    """A diff as a table of numbered lines, each line's review comments right under it.

    ``comments`` have ``path``, ``line``, ``body`` and ``author_label`` (a reviewer's GateComment or an agent's
    comment); a comment shows under the row of its file and line, or after the table if the diff does not
    show that line. ``path`` names the file of a one-file patch (git may quote odd names in its headers).
    ``anchor_parts`` make the row ids (``d-<parts>-L<n>``). Every text is escaped by format_html.
    """
    if not patch:
        return ""
    anchor = "-".join(["d", *(str(part) for part in anchor_parts)]) if anchor_parts else ""
    waiting: dict[tuple[str, int | None], list] = {}
    for comment in comments:
        waiting.setdefault((path or comment.path, comment.line), []).append(comment)
    rows = []
    for row in diff_rows(str(patch)):
        number, where = row["new"], path or row["path"]
        row_id = format_html(' id="{}-L{}"', anchor, number) if anchor and number and path else ""
        rows.append(
            format_html(
                '<tr class="{}"{}><td class="ln">{}</td><td class="ln"{}>{}</td><td class="code">{}</td></tr>',
                _ROW_CLASS[row["kind"]],
                row_id,
                row["old"] or "",
                format_html(' data-line="{}" title="Comment on line {}"', number, number) if number else "",
                number or "",
                row["text"],
            )
        )
        for comment in waiting.pop((where, number), []) if number else []:
            rows.append(_comment_row(comment))
    rest = "".join(_comment_row(c) for group in waiting.values() for c in group)  # whole-file, or lines not shown
    return format_html(
        '<div class="diff-table-wrap"><table class="diff-lines">{}{}</table></div>',
        mark_safe("".join(rows)),  # noqa: S308 - every row built by format_html above
        mark_safe(rest),  # noqa: S308 - the same
    )


def _comment_row(comment) -> str:
    where = f"line {comment.line}" if comment.line else "the file"
    if comment.path and not comment.line:
        where = f"the file {comment.path}"
    return format_html(
        (
            '<tr class="diff-comment"><td colspan="3"><div class="line-comment"><strong>{}</strong> on {}: {}</div>'
            "</td></tr>"
        ),
        comment.author_label,
        where,
        comment.body,
    )
