"""Render untrusted model output: Markdown without raw HTML, fenced code highlighted by Pygments, then an
allow-list sanitizer over all of it (so the highlighter's output is checked too)."""

from functools import lru_cache

import nh3
from django import template
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

register = template.Library()

# Classes only (static/css/pygments.css colours them under .highlight); no <pre> or <div> of its own.
_formatter = HtmlFormatter(nowrap=True)


# The model names the language, so it could pick any of Pygments' ~600 lexers, some of which take time growing
# with the square of the input (autoit, fan: tens of seconds for one message). Only these common, linear ones,
# and only fences small enough to read on a page, are highlighted; the rest stay plain (still escaped).
HIGHLIGHTED_LANGUAGES = frozenset(
    "python py python3 javascript js typescript ts bash sh shell json yaml yml toml ini cfg html xml css sql "
    "diff patch go rust rs java c cpp ruby rb php".split()
)
HIGHLIGHT_MAX_CHARS = 4000


def _highlight(code: str, language: str, _attrs: str) -> str:
    """A small fence in a language of ours becomes <pre class="highlight">; anything else ("") stays plain."""
    if language.lower() not in HIGHLIGHTED_LANGUAGES or len(code) > HIGHLIGHT_MAX_CHARS:
        return ""
    try:
        lexer = get_lexer_by_name(language.lower())
    except ClassNotFound:
        return ""
    return f'<pre class="highlight"><code>{highlight(code, lexer, _formatter)}</code></pre>'


# breaks: a single newline is a line break, so a brief written line by line reads as lines.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True, "highlight": _highlight})
_markdown.enable("table")
_ALLOWED_TAGS = {
    "h1",
    "h2",
    "p",
    "br",
    "strong",
    "em",
    "code",
    "pre",
    "ul",
    "ol",
    "li",
    "blockquote",
    "h3",
    "h4",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "a",
    "span",
}
# The only classes that survive: Pygments' token classes on spans and the highlight block's own.
_ALLOWED_CLASSES = {"span": {name for name in STANDARD_TYPES.values() if name}, "pre": {"highlight"}}


@register.filter
def agent_markdown(text: str) -> str:
    return mark_safe(_render(text or ""))  # noqa: S308 - sanitised by nh3 in _render


@lru_cache(maxsize=512)
def _render(text: str) -> str:
    """Cached: a live page re-renders the whole transcript on every event, and old messages never change."""
    html = _markdown.render(text)
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href"}},
        allowed_classes=_ALLOWED_CLASSES,
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer nofollow",
    )
