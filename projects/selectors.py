"""Reads for the Projects pages."""

from django.shortcuts import get_object_or_404

from missions.models import Mission
from projects.models import Project

MISSIONS_SHOWN = 50


def project_list() -> list[Project]:
    """Every project, each with ``baseline`` (its current one) attached."""
    projects = list(Project.objects.prefetch_related("baselines"))
    for project in projects:
        project.baseline = next((b for b in project.baselines.all() if b.sha == project.head_sha), None)
    return projects


def project_get(slug: str) -> Project:
    return get_object_or_404(Project, slug=slug)


def project_missions(project: Project):
    return Mission.objects.filter(project=project).select_related("requester").order_by("-created_at")[:MISSIONS_SHOWN]
