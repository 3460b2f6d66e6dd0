"""Styled error pages beyond Django's own 403/404/500 handlers: a refused method (405) and a CSRF failure."""

from django.http import HttpResponseNotAllowed
from django.shortcuts import render


class MethodNotAllowedPageMiddleware:
    """Give the empty 405 of ``require_POST`` and class-based views a page that says what happened."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if isinstance(response, HttpResponseNotAllowed) and not response.content:
            allowed = response.get("Allow", "")
            page = render(request, "405.html", {"allowed": allowed, "method": request.method}, status=405)
            page["Allow"] = allowed
            return page
        return response


def csrf_failure(request, reason: str = ""):
    """A form posted without a valid CSRF token (an old tab, cleared cookies): say how to retry."""
    return render(request, "403_csrf.html", {"reason": reason}, status=403)
