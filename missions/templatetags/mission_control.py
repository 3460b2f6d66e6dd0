"""The pause / resume / retry / clone buttons a user may see, for the page and the live re-render alike."""

from django import template

from missions.control import clone_needs_confirmation, mission_actions

register = template.Library()


@register.simple_tag
def mission_controls(user, mission) -> dict:
    """``{% mission_controls user mission as controls %}``: which actions to offer, and whether cloning asks
    to confirm the budget."""
    return {**mission_actions(user, mission), "confirm_budget": clone_needs_confirmation(mission)}
