"""The peer reviews of a step on the mission page: the last round's comments next to the lines of its diff."""

from dataclasses import dataclass

from django import template

register = template.Library()


@dataclass(frozen=True)
class AgentComment:
    """A reviewer agent's line comment, in the shape render_diff_lines shows (as a person's GateComment is)."""

    path: str
    line: int | None
    body: str
    author_label: str


@register.filter
def last_round(reviews) -> list:
    """The reviews of a step's latest round (their comments are anchored to the diff the step shows now)."""
    reviews = list(reviews)
    if not reviews:
        return []
    newest = max(review.round for review in reviews)
    return [review for review in reviews if review.round == newest]


@register.simple_tag
def review_comments(reviews, step_key: str = "") -> list[AgentComment]:
    """The line comments of the latest round of these reviews, labelled with the reviewer, verdict (and step)."""
    on = f" on step {step_key}" if step_key else ""
    return [
        AgentComment(
            path=str(c.get("path", "")),
            line=c.get("line") if isinstance(c.get("line"), int) else None,
            body=str(c.get("body", "")),
            author_label=f"{review.reviewer.title}{on} ({review.get_verdict_display().lower()})",
        )
        for review in last_round(reviews)
        for c in review.comments or []
        if isinstance(c, dict)
    ]


@register.simple_tag
def steps_review_comments(steps) -> list[AgentComment]:
    """Every step's latest-round agent comments, for the deploy gate's whole change (reviews prefetched)."""
    return [comment for step in steps for comment in review_comments(step.reviews.all(), step.key)]
