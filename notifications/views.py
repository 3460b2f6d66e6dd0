from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render

from api.selectors import api_tokens_for_user
from notifications.selectors import notification_preference
from notifications.services import notification_preference_set


def profile(request):
    """The user's notification settings (mail on or off; the live badge and toasts are always on) and API tokens."""
    if request.method == "POST":
        email = request.POST.get("email") == "on"
        notification_preference_set(user=request.user, email=email)
        messages.success(request, f"Email notifications are {'on' if email else 'off'}.")
        return redirect("notifications:profile")
    return render(request, "notifications/profile.html", profile_context(request))


def profile_context(request) -> dict:
    """What the profile page shows; the API's token views render it too (with a new secret, once)."""
    return {
        "preference": notification_preference(request.user),
        "email_configured": settings.EMAIL_NOTIFICATIONS,
        "api_tokens": list(api_tokens_for_user(request.user)),
    }
