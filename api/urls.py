from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.urls import include, path, re_path

from api.api import api

DOCS = {"openapi-json", "openapi-view"}


@login_not_required
def not_found(request, *args, **kwargs):
    return JsonResponse({"detail": f"There is no API endpoint {request.path}."}, status=404)


patterns, ninja_app, namespace = api.urls
# Operations authenticate by bearer token themselves and answer 401 JSON: the site's login redirect is for pages.
# The docs and the schema stay behind the site login like every page.
for pattern in patterns:
    if pattern.name not in DOCS:
        pattern.callback.login_required = False
# ninja's root view raises a 404 that Django renders as a page; ours answers JSON (and keeps its name).
patterns = [p for p in patterns if p.name != "api-root"] + [path("", not_found, name="api-root")]

urlpatterns = [
    path("", include((patterns, ninja_app), namespace=namespace)),
    re_path(r"^.*$", not_found),
]
