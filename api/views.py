"""The profile page's API tokens: create one (its secret shown on this one response) and revoke one."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from api.services import ApiTokenError, api_token_create, api_token_revoke
from notifications.views import profile_context


@never_cache  # the page carries the secret: no cache may keep it
@require_POST
def token_create(request):
    """Render the profile with the new secret instead of redirecting: it never goes into a session or cookie."""
    try:
        token, secret = api_token_create(user=request.user, name=request.POST.get("name", ""))
    except ApiTokenError as error:
        messages.error(request, str(error))
        return redirect("notifications:profile")
    context = profile_context(request) | {"new_token": token, "new_secret": secret}
    return render(request, "notifications/profile.html", context, status=201)


@require_POST
def token_revoke(request, pk):
    try:
        token = api_token_revoke(user=request.user, token_id=pk)
    except ApiTokenError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Token “{token.name}” revoked: it no longer works.")
    return redirect("notifications:profile")
