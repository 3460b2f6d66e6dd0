"""The plan as an inline SVG picture, laid out on the server (missions/dag.py)."""

from django import template

from missions.dag import layered_layout

register = template.Library()


@register.inclusion_tag("missions/_dag.html")
def plan_dag(steps) -> dict:
    return {"dag": layered_layout(steps)}
