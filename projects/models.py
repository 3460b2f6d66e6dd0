"""A project is a product's git repository that missions work on, mirrored on the server."""

from pathlib import Path

from django.conf import settings
from django.db import models
from django.urls import reverse

DEFAULT_TEST_COMMAND = "python -m pytest -q"


class ProjectQuerySet(models.QuerySet):
    def open_to(self, user):
        """Active, mirrored projects ``user`` may file missions against (the rule of Project.may_file)."""
        ready = self.filter(is_active=True).exclude(head_sha="")
        if user.is_staff:
            return ready
        return ready.filter(models.Q(restricted=False) | models.Q(members=user)).distinct()


class Project(models.Model):
    """A repository missions are filed against: where it comes from, how it is tested, where work goes."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    git_url = models.CharField(
        max_length=500, help_text="https://, ssh://, git@host:path, file:// or a local path of the repository."
    )
    default_branch = models.CharField(max_length=120, default="main")
    test_command = models.CharField(max_length=500, default=DEFAULT_TEST_COMMAND)
    setup_command = models.CharField(
        max_length=500,
        blank=True,
        help_text="Runs once per base commit, with network, e.g. `pip install -e .`. Staff only.",
    )
    push_url = models.CharField(
        max_length=500, blank=True, help_text="Where approved work is pushed; empty: the repository's own URL."
    )
    merge_after_approval = models.BooleanField(
        default=False, help_text="After a deploy approval, also merge the mission branch into the default branch."
    )
    restricted = models.BooleanField(
        default=False, help_text="Only the members below may file missions; otherwise every product manager may."
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="projects")
    # What the mirror showed when it was last fetched.
    head_sha = models.CharField(max_length=40, blank=True)
    file_count = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    languages = models.JSONField(default=dict, blank=True)  # {"Python": 12, "Markdown": 2}: files per language
    mirrored_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("projects:detail", args=[self.slug])

    @property
    def push_target(self) -> str:
        return self.push_url or self.git_url

    @property
    def mirror_path(self) -> Path:
        """The server's bare mirror of the repository (a pure copy of upstream: a fetch may prune it)."""
        return settings.MIRRORS_DIR / f"{self.slug}.git"

    def current_baseline(self) -> "Baseline | None":
        """The baseline at the mirrored HEAD (what missions filed now are compared with)."""
        return self.baselines.filter(sha=self.head_sha).first() if self.head_sha else None

    def may_file(self, user) -> bool:
        """Whether ``user`` may file missions against this project."""
        if not (self.is_active and user.is_authenticated):
            return False
        return not self.restricted or user.is_staff or self.members.filter(pk=user.pk).exists()


class Baseline(models.Model):
    """The project's own test command run once at a commit: what every mission's test runs are compared with."""

    class Verdict(models.TextChoices):
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        ERRORED = "errored", "Errored"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="baselines")
    sha = models.CharField(max_length=40)
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    duration_s = models.FloatField(default=0)
    isolation = models.CharField(max_length=20, blank=True)
    tests = models.JSONField(default=list, blank=True)  # [{"nodeid", "outcome"}]
    log = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["project", "sha"], name="one_baseline_per_commit")]

    def __str__(self) -> str:
        return f"{self.project} @ {self.sha[:10]}: {self.get_verdict_display()}"
