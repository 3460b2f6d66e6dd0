"""Readable pages: badge colours meet WCAG AA contrast, briefs keep their line breaks, tables stay in their cards."""

import re
from decimal import Decimal
from pathlib import Path

import pytest

from missions.models import Mission, Plan, Step, TestRun
from missions.templatetags.agent_output import agent_markdown

CSS = re.sub(
    r"/\*.*?\*/", "", (Path(__file__).resolve().parent.parent / "static" / "css" / "app.css").read_text(), flags=re.S
)
RULE_RE = re.compile(r"([^{}]+)\{([^{}]*)\}")


def _variables() -> dict[str, str]:
    root = next(body for selector, body in RULE_RE.findall(CSS) if selector.strip() == ":root")
    return dict(re.findall(r"(--[\w-]+)\s*:\s*(#[0-9a-fA-F]{6})", root))


def _colour(value: str, variables: dict[str, str]) -> str:
    value = value.strip()
    if value.startswith("var("):
        return variables[value[4:-1].strip()]
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", value), f"not a #rrggbb colour: {value!r}"
    return value


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _badges() -> list[tuple[str, str, str]]:
    """(selector, text colour, background) of every status pill and badge rule that sets a background."""
    variables = _variables()
    found = []
    for selectors, body in RULE_RE.findall(CSS):
        declarations = dict(
            (name.strip(), value.strip()) for name, _, value in (d.partition(":") for d in body.split(";") if ":" in d)
        )
        if "background" not in declarations:
            continue
        for selector in selectors.split(","):
            selector = selector.strip()
            if re.search(r"\.(status|badge)\b", selector):
                text = _colour(declarations.get("color", "var(--ink)"), variables)
                found.append((selector, text, _colour(declarations["background"], variables)))
    return found


def test_it_computes_contrast_like_wcag():
    """Black on white is 21:1 and a colour on itself 1:1 (the formula the badge test relies on)."""
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#777777") == pytest.approx(1)


def test_it_gives_every_badge_at_least_4_5_to_1_contrast():
    """Status pills and badges (green "Completed" among them) meet WCAG AA for small text."""
    badges = _badges()
    assert any(".status-completed" in selector for selector, _, _ in badges)
    assert len(badges) >= 10
    low = [(s, t, b, round(contrast(t, b), 2)) for s, t, b in badges if contrast(t, b) < 4.5]
    assert not low, low


def test_it_keeps_single_line_breaks_in_agent_markdown():
    """A brief written line by line renders as lines, not one paragraph, and the sanitiser still applies."""
    html = agent_markdown("Goal: tokens\nRisk: replay\n<script>alert(1)</script>")
    assert "Goal: tokens<br" in html and "Risk: replay<br" in html
    assert "<script" not in html


def test_it_wraps_tables_in_a_scrolling_container(client, pm):
    """The plan and test tables sit in an overflow container, so a wide table scrolls inside its card."""
    mission = Mission.objects.create(requester=pm, title="T", request="R", budget_usd=Decimal("1"))
    step = Step.objects.create(plan=Plan.objects.create(mission=mission, version=1), key="core", title="C", role="d")
    TestRun.objects.create(mission=mission, step=step, passed=1, isolation="bwrap")
    client.force_login(pm)
    body = client.get(mission.get_absolute_url()).content.decode()
    assert re.search(r'<div class="table-wrap">\s*<table class="steps">', body)
    assert re.search(r'<div class="table-wrap">\s*<table class="tests">', body)
    assert re.search(r"\.table-wrap\s*\{[^}]*overflow-x:\s*auto", CSS)
    assert re.search(r"td\.long[^{]*\{[^}]*overflow-wrap:\s*anywhere", CSS)
