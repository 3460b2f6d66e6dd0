"""The peer reviews of a step on the mission page: the last round's comments next to the lines of its diff."""

from django import template

from reviews.peer import annotated_diff

register = template.Library()


@register.filter
def last_round(reviews) -> list:
    """The reviews of a step's latest round (their comments are anchored to the diff the step shows now)."""
    reviews = list(reviews)
    if not reviews:
        return []
    newest = max(review.round for review in reviews)
    return [review for review in reviews if review.round == newest]


@register.simple_tag
def review_diff(step) -> list[dict]:
    """Rows of the step's diff with the latest round's comments (see reviews.peer.annotated_diff)."""
    diff = (step.output or {}).get("diff") or ""
    return annotated_diff(str(diff), last_round(step.reviews.all())) if diff else []
