"""agent_markdown: model output rendered as Markdown, with no way to inject live HTML."""

from html.parser import HTMLParser

import pytest
from django.template import Context, Template
from django.utils.safestring import SafeString
from pygments.token import STANDARD_TYPES

from missions.templatetags.agent_output import agent_markdown

PYGMENTS_CLASSES = set(STANDARD_TYPES.values()) | {"highlight"}


class _Elements(HTMLParser):
    """Collects (tag, attrs) of every element in a fragment."""

    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def _elements(html: str) -> list[tuple[str, dict]]:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


ATTACKS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "<svg onload=alert(1)>",
    "<iframe src=https://evil.example></iframe>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<javascript:alert(1)>",
    "![x](https://evil.example/pixel.png)",
    '[t](https://example.com "x\\" onmouseover=\\"alert(1)")',
    "```\n</code></pre><script>alert(1)</script>\n```",
    "`<script>alert(1)</script>`",
    "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    '<span style="position:fixed;inset:0">cover</span>',
    '<span onclick="alert(1)" class="k">x</span>',
    "```python\n</code></pre><script>alert(1)</script><img src=x onerror=alert(1)>\n```",
    '```html\n<script>alert(1)</script><a href="javascript:alert(1)">x</a>\n```',
    "```javascript\ndocument.location = 'javascript:alert(1)'\n```",
    '```"><script>alert(1)</script>\nx\n```',
    "```python onclick=alert(1)\nx = 1\n```",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_it_never_outputs_live_html(text):
    """Whatever the model writes, the output has no script, no event handler, no style and no non-http link."""
    elements = _elements(agent_markdown(text))
    for tag, attrs in elements:
        assert tag in {
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
        }, tag
        assert not any(name.startswith("on") or name in {"style", "src"} for name in attrs), attrs
        if "class" in attrs:  # only Pygments' token classes, on its spans and its block
            assert tag in {"span", "pre"} and set(attrs["class"].split()) <= PYGMENTS_CLASSES, (tag, attrs)
        if tag == "a":
            assert attrs["href"].startswith(("http://", "https://")), attrs


def test_it_escapes_script_tags_as_text():
    """A <script> tag shows as text instead of running."""
    html = agent_markdown("Try <script>alert(1)</script> now")
    assert html == "<p>Try &lt;script&gt;alert(1)&lt;/script&gt; now</p>\n"


def test_it_drops_javascript_links():
    """A javascript: link is not a link."""
    html = agent_markdown("[click me](javascript:alert(document.cookie))")
    assert "<a" not in html
    assert 'href="javascript' not in html.lower()


def test_it_escapes_event_handler_attributes():
    """An <img onerror> is shown as text, not an element."""
    html = agent_markdown('<img src="x" onerror="alert(1)">')
    assert "<img" not in html
    assert "&lt;img" in html


@pytest.mark.parametrize("fence", ["```", "```no-such-language", "```autoit", "```fan"])
def test_it_keeps_code_blocks_escaped(fence):
    """Fenced code without a language of ours stays a plain code block, with markup inside escaped: the model
    names the language, and some of Pygments' lexers take seconds on a crafted message (autoit, fan)."""
    html = agent_markdown(f"{fence}\nif a < b:\n    print('<b>hi</b>')\n```")
    assert html == "<pre><code>if a &lt; b:\n    print('&lt;b&gt;hi&lt;/b&gt;')\n</code></pre>\n"


def test_it_highlights_fenced_code_with_a_language():
    """A python fence gets Pygments' token spans inside <pre class="highlight">, its markup still escaped."""
    html = agent_markdown("```python\nif a < b:\n    print('<b>hi</b>')\n```")
    assert html.startswith('<pre class="highlight"><code><span class="k">if</span> <span class="n">a</span>')
    assert '<span class="o">&lt;</span>' in html
    assert "&lt;b&gt;hi&lt;/b&gt;" in html and "<b>" not in html
    assert [tag for tag, _ in _elements(html)] == ["pre", "code"] + ["span"] * (len(_elements(html)) - 2)


def test_it_leaves_a_long_fence_plain():
    """Past HIGHLIGHT_MAX_CHARS a fence is not highlighted: a page re-renders the transcript on every event."""
    from missions.templatetags.agent_output import HIGHLIGHT_MAX_CHARS

    code = "x = 1\n" * (HIGHLIGHT_MAX_CHARS // 6 + 1)
    assert agent_markdown(f"```python\n{code}```").startswith("<pre><code>x = 1\n")
    assert agent_markdown(f"```Python\n{code[:600]}```").startswith('<pre class="highlight">')


def test_it_keeps_single_line_breaks_and_lists():
    """A newline inside a paragraph is a line break; numbered and bulleted lists stay lists."""
    html = agent_markdown("First line\nsecond line\n\n1. one\n2. two\n\n- a\n  - nested")
    assert "<p>First line<br>\nsecond line</p>" in html
    assert "<ol>\n<li>one</li>\n<li>two</li>\n</ol>" in html
    assert "<ul>\n<li>a\n<ul>\n<li>nested</li>" in html


def test_it_escapes_raw_spans_with_style_or_handlers():
    """Raw <span style> or <span onclick> in the text is shown as text, not kept as an element."""
    html = agent_markdown('<span style="color:red" onclick="alert(1)">x</span>')
    assert "<span" not in html
    assert "&lt;span style=" in html


def test_it_keeps_inline_code_emphasis_and_lists():
    """Emphasis, strong text, inline code and lists survive."""
    html = agent_markdown("*really* **done**, see `tests.py`\n\n- one\n- two")
    assert "<em>really</em>" in html
    assert "<strong>done</strong>" in html
    assert "<code>tests.py</code>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html


def test_it_keeps_tables_and_quotes():
    """Tables and block quotes are allowed."""
    html = agent_markdown("> quoted\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<blockquote>\n<p>quoted</p>\n</blockquote>" in html
    assert "<th>a</th>" in html and "<td>2</td>" in html


def test_it_keeps_http_links_with_a_safe_rel():
    """http(s) links stay, marked noopener noreferrer nofollow."""
    html = agent_markdown("[docs](https://example.com/a?b=1&c=2)")
    assert html == '<p><a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer nofollow">docs</a></p>\n'


@pytest.mark.parametrize("text", ["", None])
def test_it_renders_nothing_for_no_text(text):
    """Empty or missing text renders as nothing."""
    assert agent_markdown(text) == ""


def test_it_is_marked_safe_for_templates():
    """The filter's result is safe, so templates do not escape the sanitised markup a second time."""
    assert isinstance(agent_markdown("**x**"), SafeString)
    rendered = Template("{% load agent_output %}{{ text|agent_markdown }}").render(Context({"text": "**x** <b>y</b>"}))
    assert rendered == "<p><strong>x</strong> &lt;b&gt;y&lt;/b&gt;</p>\n"
