"""Render untrusted model output: Markdown without raw HTML, then an allow-list sanitizer."""

import nh3
from django import template
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

register = template.Library()

# breaks: a single newline is a line break, so a brief written line by line reads as lines.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable("table")
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
}


@register.filter
def agent_markdown(text: str) -> str:
    html = _markdown.render(text or "")
    safe = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href"}},
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(safe)  # noqa: S308 - sanitised by nh3 just above
