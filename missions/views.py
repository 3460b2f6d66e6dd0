import csv
from pathlib import Path

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.text import slugify
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from agents import selectors as agent_selectors
from audit.exports import csv_safe
from missions import control, selectors
from missions.changes import ChangeError, NoBranchError, NoChangeError, mission_archive, mission_patch
from missions.forms import MissionForm
from missions.models import Mission, MissionTemplate
from missions.services import DuplicateMissionError, MissionError, mission_cancel, mission_submit

PAGE_SIZE = 20


def mission_list(request):
    status = request.GET.get("status", "")
    if status not in Mission.Status.values:
        status = ""
    query = request.GET.get("q", "").strip()[:200]
    missions = selectors.mission_list_for_user(request.user, status=status, query=query)
    page = Paginator(missions, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "status": status,
        "query": query,
        "statuses": Mission.Status.choices,
        "pager_params": "".join(f"{urlencode({k: v})}&" for k, v in (("status", status), ("q", query)) if v),
    }
    fragment = request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request
    response = render(request, "missions/list.html#results" if fragment else "missions/list.html", context)
    patch_vary_headers(response, ["HX-Request"])  # the same URL serves a page or a fragment
    return response


def _chosen_template(slug: str | None) -> MissionTemplate | None:
    if not slug:
        return None
    return MissionTemplate.objects.filter(slug=slug, is_active=True).first()


def mission_new(request):
    """File a mission; "Preview" (a button, or htmx as the form changes) shows exactly what would be filed."""
    if not selectors.user_can_file_missions(request.user):
        raise PermissionDenied("Only product managers can file missions.")
    source = request.POST if request.method == "POST" else request.GET
    template = _chosen_template(source.get("template"))
    preview = preview_note = None
    if request.method == "POST" and "pick" not in request.POST:
        form = MissionForm(request.POST, template=template, user=request.user)
        previewing = "preview" in request.POST
        valid = form.is_valid()
        if previewing and form.can_preview() or valid and form.preview_is_stale():
            preview = {**form.composed, "budget_usd": form.cleaned_data["budget_usd"], "digest": form.digest()}
            if not previewing:
                preview_note = "The mission changed after the preview: check it below and file again."
        elif valid:
            mission = _submit(request, form)
            if mission is not None:
                messages.success(request, "Mission filed. The C-suite is on it.")
                return redirect(mission)
        if previewing and request.htmx:
            # The live preview informs; only a preview asked for with the button binds what is filed,
            # so a quick click on "File mission" is never refused for a preview still on its way.
            return render(request, "missions/new.html#preview", {"form": form, "preview": preview, "live": True})
    else:
        # A template pick (htmx or the no-JS "Use template" button) re-renders with its variables.
        form = MissionForm(
            initial=source.dict() if request.method == "POST" else None, template=template, user=request.user
        )
    templates = MissionTemplate.objects.filter(is_active=True)
    context = {"form": form, "templates": templates, "chosen": template, "preview": preview}
    context["preview_note"] = preview_note
    if request.htmx and request.method == "GET":
        return render(request, "missions/new.html#template-fields", context)
    return render(request, "missions/new.html", context, status=400 if form.errors else 200)


def _submit(request, form: MissionForm) -> Mission | None:
    """File the form's mission, or put the service's refusal on the form and return None."""
    try:
        return mission_submit(requester=request.user, **form.submit_arguments())
    except DuplicateMissionError as error:
        existing = error.mission
        form.add_error(
            None,
            format_html(
                'You filed this same mission {} ago: <a href="{}">{}</a>. It is not filed twice; '
                "change the request to file a different one.",
                timesince(existing.created_at),
                existing.get_absolute_url(),
                existing.title,
            ),
        )
    except ValueError as error:
        form.add_error(None, str(error))
    return None


def mission_detail(request, code):
    mission = selectors.mission_for_user(request.user, code)
    context = selectors.mission_detail(mission)
    context["can_cancel"] = selectors.user_can_cancel(request.user, mission)
    return render(request, "missions/detail.html", context)


LEDGER_COLUMNS = (
    "when", "purpose", "phase", "step", "agent", "model", "status", "attempt",
    "prompt_tokens", "cached_tokens", "completion_tokens",
    "price_input_per_mtok", "price_cached_input_per_mtok", "price_output_per_mtok", "cost_usd", "latency_ms",
)  # fmt: skip


def mission_costs(request, code):
    """Where the mission's money went: by phase, step and agent, and model; the ledger call by call (CSV too)."""
    mission = selectors.mission_for_user(request.user, code)
    if request.GET.get("format") == "csv":
        # Every call, not the page's first LEDGER_LIMIT: the download must add up to the mission's spend.
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="mission-{mission.code}-ledger.csv"'
        writer = csv.writer(response)
        writer.writerow(LEDGER_COLUMNS)
        for call in agent_selectors.mission_ledger(mission, limit=None).iterator(chunk_size=500):
            writer.writerow(csv_safe(value) for value in _ledger_row(call))
        return response
    calls = list(agent_selectors.mission_ledger(mission))
    context = {
        "mission": mission,
        "calls": calls,
        "by_phase": _named(agent_selectors.mission_spend_by_phase(mission), "phase"),
        "by_agent_step": _named(agent_selectors.mission_spend_by_agent_and_step(mission), "agent__title", "step__key"),
        "by_model": _named(agent_selectors.mission_spend_by_model(mission), "model_name"),
        "ledger_limit": len(calls) == agent_selectors.LEDGER_LIMIT,
        "phase_labels": ["Phase"],
        "agent_step_labels": ["Agent", "Step"],
        "model_labels": ["Model"],
    }
    return render(request, "missions/costs.html", context)


def _named(rows: list[dict], *keys: str) -> list[dict]:
    """Each row with the values it is grouped by as ``names``, in order, for one table template."""
    return [{**row, "names": [row[key] for key in keys]} for row in rows]


def _ledger_row(call) -> tuple:
    phase = call.cycle.kind if call.cycle else ("execution" if call.step_id else "other")
    return (
        call.created_at.isoformat(),
        call.purpose,
        phase,
        call.step.key if call.step else "",
        call.agent.title if call.agent else "",
        call.model_name,
        call.status,
        call.attempt,
        call.prompt_tokens,
        call.cached_tokens,
        call.completion_tokens,
        call.price_input_per_mtok,
        call.price_cached_input_per_mtok,
        call.price_output_per_mtok,
        call.cost_usd,
        call.latency_ms,
    )


@require_POST
def mission_cancel_view(request, code):
    mission = selectors.mission_for_user(request.user, code)
    if mission.requester_id != request.user.pk and not request.user.is_staff:
        raise PermissionDenied("Only the requester can cancel this mission.")
    try:
        mission_cancel(mission=mission, by=request.user)
    except MissionError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Mission cancelled.")
    if request.htmx:  # the button re-rendered live posts through htmx; follow with a full page load
        return HttpResponseClientRedirect(mission.get_absolute_url())
    return redirect(mission)


def _control_view(request, code, action, done: str):
    """Run ``action(mission=..., by=...)`` for the PM who filed the mission or an admin; others get a 403."""
    mission = selectors.mission_for_user(request.user, code)
    if not control.user_may_control(request.user, mission):
        raise PermissionDenied("Only the PM who filed this mission, or an admin, can do that.")
    try:
        action(mission=mission, by=request.user)
    except MissionError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, done)
    return _back_to(request, mission)


def _back_to(request, mission: Mission):
    if request.htmx:  # the button re-rendered live posts through htmx; follow with a full page load
        return HttpResponseClientRedirect(mission.get_absolute_url())
    return redirect(mission)


@require_POST
def mission_pause_view(request, code):
    return _control_view(
        request, code, control.mission_pause, "Mission paused: running steps stop after their current tool call."
    )


@require_POST
def mission_resume_view(request, code):
    return _control_view(request, code, control.mission_resume, "Mission resumed where it stopped.")


@require_POST
def mission_retry_view(request, code):
    return _control_view(request, code, control.mission_retry, "Retrying from the failed step.")


@require_POST
def mission_clone_view(request, code):
    """File a copy of a mission the user can see, as that user (who must be allowed to file it)."""
    mission = selectors.mission_for_user(request.user, code)
    if not selectors.user_can_file_missions(request.user):
        raise PermissionDenied("Only product managers can file missions.")
    try:
        clone = control.mission_clone(
            mission=mission, by=request.user, budget_confirmed=request.POST.get("confirm_budget") == "1"
        )
    except (MissionError, ValueError) as error:
        messages.error(request, f"Not cloned: {error}")
        return _back_to(request, mission)
    messages.success(request, "Mission cloned and filed.")
    return _back_to(request, clone)


def mission_artifact(request, code):
    """The archive of what was deployed, for anyone who may see the mission.

    The worker that deployed it kept a copy on its own disk; on another host it is made from the git store.
    """
    mission = selectors.mission_for_user(request.user, code)
    if not mission.deployed_sha:
        raise Http404("This mission has no deployed archive.")
    filename = f"{slugify(mission.title) or 'mission'}-{mission.code}.zip"
    path = Path(mission.artifact_path) if mission.artifact_path else None
    if path is not None and path.is_file():
        return FileResponse(path.open("rb"), as_attachment=True, filename=filename)
    try:
        data = mission_archive(mission, mission.deployed_sha)
    except ChangeError as error:
        return HttpResponse(str(error), status=503, content_type="text/plain; charset=utf-8")
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def mission_change_patch(request, code):
    """The mission's change as ``git format-patch`` output, computed from the git store (not this host's disk)."""
    return _change_download(request, code, mission_patch, "text/x-patch", "patch")


def mission_change_zip(request, code):
    """The mission branch's tree as a zip, computed from the git store."""
    return _change_download(request, code, mission_archive, "application/zip", "zip")


def _change_download(request, code, read, content_type: str, extension: str) -> HttpResponse:
    mission = selectors.mission_for_user(request.user, code)
    try:
        data = read(mission)
    except NoBranchError as error:
        raise Http404(str(error)) from None
    except NoChangeError as error:
        return HttpResponse(str(error), status=409, content_type="text/plain; charset=utf-8")
    except ChangeError as error:
        return HttpResponse(str(error), status=503, content_type="text/plain; charset=utf-8")
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{mission.code}.{extension}"'
    return response
