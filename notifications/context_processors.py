"""The gate badge in the navigation of every page."""

from django.utils.functional import SimpleLazyObject

from notifications.selectors import gate_badge_count


def gate_badge(request) -> dict:
    """``gate_badge``: the number of gates waiting for the user; one COUNT, run only if the page shows it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"gate_badge": 0}
    return {"gate_badge": SimpleLazyObject(lambda: gate_badge_count(user))}
