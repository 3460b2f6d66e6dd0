"""Render a patch as coloured HTML on the server: Pygments' diff lexer, one span per line kind.

The patch is text a model wrote. Pygments escapes every token it emits (``<`` becomes ``&lt;``), and the
result is the only markup on the page that is marked safe here: a test checks that ``<script>`` in a diff
line comes out escaped.
"""

from functools import lru_cache

from django import template
from django.utils.safestring import mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

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
