from django import template

from missions.inputs import GATE_COMMENT_MAX
from missions.selectors import plan_review
from reviews.gates import gate_can_decide, gate_decisions, revisable_steps
from reviews.models import ApprovalGate

register = template.Library()


@register.inclusion_tag("reviews/decision_form.html", takes_context=True)
def gate_decision_form(context, gate, next_page=""):
    """The decision buttons for a gate, shown only to a reviewer allowed to decide it."""
    user = context.get("user")
    allowed = user is not None and gate_can_decide(user, gate)
    return {
        "gate": gate,
        "allowed": allowed,
        "choices": [(d.value, d.label) for d in gate_decisions(gate)],
        "next_page": next_page,
        # On the mission page only: the queue lists many gates and offers "a new step" (one query less per row).
        "steps": revisable_steps(gate) if allowed and not next_page and gate.kind == ApprovalGate.Kind.DEPLOY else [],
        "comment_max": GATE_COMMENT_MAX,
        "csrf_token": context.get("csrf_token"),
    }


@register.simple_tag(takes_context=True)
def gate_can_comment(context, gate) -> bool:
    """Whether the viewer may add line comments to this gate's change (whoever may decide it)."""
    user = context.get("user")
    return bool(user is not None and gate.kind == ApprovalGate.Kind.DEPLOY and gate_can_decide(user, gate))


@register.simple_tag
def gate_file_comments(gate, path: str, agent_comments=()) -> list:
    """The comments on one file of the gate's change: the agents' (on the steps' diffs, so a line may have
    moved since if a later step changed the file) and the people's (prefetched with the gate)."""
    return [c for c in (*agent_comments, *gate.line_comments.all()) if c.path == path]


@register.inclusion_tag("reviews/_plan_review.html")
def plan_gate_review(gate):
    """A pending plan (or deadlock) gate's plan: steps and dependencies, votes per round, changes since the last."""
    return {"review": plan_review(gate.mission, (gate.data or {}).get("plan")), "gate": gate}
