"""The Projects pages: staff only (a setup command runs with network, so only staff may set one)."""

from functools import wraps

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from audit.models import AuditEntry
from audit.services import audit_changes, audit_record, audit_values
from projects import selectors
from projects.forms import ProjectAddForm, ProjectEditForm
from projects.services import ProjectError, project_add, project_refresh, project_update

FIELDS = ("name", "default_branch", "test_command", "setup_command", "push_url", "merge_after_approval", "restricted")
AUDITED = ["slug", "git_url", *FIELDS, "members"]


def staff_required(view):
    """403 for a logged-in non-staff user (LoginRequiredMiddleware sends everyone else to the login page)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only staff manage projects.")
        return view(request, *args, **kwargs)

    return wrapper


@staff_required
def project_list(request):
    return render(request, "projects/list.html", {"projects": selectors.project_list()})


@staff_required
def project_add_view(request):
    form = ProjectAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            project = project_add(
                slug=data["slug"], git_url=data["git_url"], created_by=request.user, **{f: data[f] for f in FIELDS}
            )
        except ProjectError as error:
            form.add_error(None, str(error))
        else:
            if data["members"]:
                project.members.set(data["members"])
            after = audit_values(project, AUDITED)
            audit_record(
                actor=request.user, action=AuditEntry.Action.ADD, obj=project, changes=audit_changes(None, after)
            )
            messages.success(request, f"Added {project.name}: baseline {project.current_baseline().verdict}.")
            return redirect(project)
    return render(request, "projects/form.html", {"form": form, "project": None})


@staff_required
def project_detail(request, slug):
    project = selectors.project_get(slug)
    context = {
        "project": project,
        "baseline": project.current_baseline(),
        "missions": selectors.project_missions(project),
    }
    return render(request, "projects/detail.html", context)


@staff_required
def project_edit(request, slug):
    project = selectors.project_get(slug)
    initial = {f: getattr(project, f) for f in FIELDS} | {"members": project.members.all()}
    form = ProjectEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        before = audit_values(project, AUDITED)
        try:
            project = project_update(project, members=data["members"], **{f: data[f] for f in FIELDS})
        except ProjectError as error:
            form.add_error(None, str(error))
        else:
            changes = audit_changes(before, audit_values(project, AUDITED))
            if changes:
                audit_record(actor=request.user, action=AuditEntry.Action.CHANGE, obj=project, changes=changes)
            messages.success(request, f"Saved {project.name}.")
            return redirect(project)
    return render(request, "projects/form.html", {"form": form, "project": project})


@staff_required
@require_POST
def project_refresh_view(request, slug):
    project = selectors.project_get(slug)
    try:
        project = project_refresh(project)
    except ProjectError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Refreshed {project.name}: HEAD {project.head_sha[:10]}.")
    return redirect(project)
