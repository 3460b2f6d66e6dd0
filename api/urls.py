import functools

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponseNotAllowed, JsonResponse
from django.urls import include, path, re_path

from api.api import api

DOCS = {"openapi-json", "openapi-view"}


@login_not_required
def not_found(request, *args, **kwargs):
    return JsonResponse({"detail": f"There is no API endpoint {request.path}."}, status=404)


def _api_view(view):
    """An operation's view, open to the bearer-token check instead of the site login, with a JSON 405."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            response = JsonResponse({"detail": f"{request.method} is not allowed here; use {allowed}."}, status=405)
            response["Allow"] = allowed
        return response

    # Operations authenticate by bearer token themselves and answer 401 JSON: the login redirect is for pages.
    return login_not_required(wrapper)


patterns, ninja_app, namespace = api.urls
# The docs and the schema stay behind the site login, like every page.
patterns = [p if p.name in DOCS else path(str(p.pattern), _api_view(p.callback), name=p.name) for p in patterns]
# ninja's root view raises a 404 that Django renders as a page; ours answers JSON (and keeps its name).
patterns = [p for p in patterns if p.name != "api-root"] + [path("", not_found, name="api-root")]

urlpatterns = [
    path("", include((patterns, ninja_app), namespace=namespace)),
    re_path(r"^.*$", not_found),
]
