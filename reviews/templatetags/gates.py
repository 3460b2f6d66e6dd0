from django import template

from missions.inputs import GATE_COMMENT_MAX
from reviews.gates import gate_can_decide, gate_decisions

register = template.Library()


@register.inclusion_tag("reviews/decision_form.html", takes_context=True)
def gate_decision_form(context, gate, next_page=""):
    """The decision buttons for a gate, shown only to a reviewer allowed to decide it."""
    user = context.get("user")
    return {
        "gate": gate,
        "allowed": user is not None and gate_can_decide(user, gate),
        "choices": [(d.value, d.label) for d in gate_decisions(gate)],
        "next_page": next_page,
        "comment_max": GATE_COMMENT_MAX,
        "csrf_token": context.get("csrf_token"),
    }
