from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import render

from audit import selectors
from audit.exports import export_response
from missions.selectors import mission_for_user

PAGE_SIZE = 50
FORMATS = ("json", "csv")


def mission_audit(request, code):
    """Everything that happened on one mission, for whoever may see the mission."""
    mission = mission_for_user(request.user, code)
    keys = selectors.mission_audit_keys(mission)
    title, filename = f"Audit: {mission.title}", f"audit-{mission.code}"
    return _audit_page(request, keys, title=title, filename=filename, mission=mission)


def site_audit(request):
    """What people did across the site, for admins."""
    if not selectors.user_may_see_site_audit(request.user):
        raise PermissionDenied("The site audit is for admins.")
    return _audit_page(request, selectors.site_audit_keys(), title="Site audit", filename="audit-site", mission=None)


def _audit_page(request, keys, *, title: str, filename: str, mission):
    fmt = request.GET.get("format", "")
    if fmt in FORMATS:
        return export_response(request, selectors.audit_rows_all(keys), fmt=fmt, filename=filename)
    page = Paginator(keys, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "rows": selectors.audit_rows(page.object_list), "title": title, "mission": mission}
    return render(request, "audit/audit.html", context)
