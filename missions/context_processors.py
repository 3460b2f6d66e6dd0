"""What every page needs to know about the user: which parts of the product they may use."""

from django.utils.functional import SimpleLazyObject

from missions.selectors import user_can_file_missions, user_is_reviewer


def roles(request) -> dict:
    """``can_file_missions`` and ``is_reviewer`` for the navigation; evaluated only when a page asks."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"can_file_missions": False, "is_reviewer": False}
    return {
        "can_file_missions": SimpleLazyObject(lambda: user_can_file_missions(user)),
        "is_reviewer": SimpleLazyObject(lambda: user_is_reviewer(user)),
    }
