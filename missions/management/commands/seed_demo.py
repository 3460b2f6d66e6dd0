import os
import secrets
import shutil
import subprocess

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from agents.seed import seed_agents, seed_model_profile
from missions.seed import seed_templates
from missions.selectors import PRODUCT_MANAGERS_GROUP, REVIEWERS_GROUP
from projects.models import Project
from projects.services import ProjectError, project_add

DEMO_PROJECT_SLUG = "sample-inventory"
DEMO_PROJECT_SOURCE = settings.BASE_DIR / "examples" / "sample-inventory"

DEMO_USERS = [
    ("pm", PRODUCT_MANAGERS_GROUP, False),
    ("reviewer", REVIEWERS_GROUP, False),
    ("admin", None, True),
]


class Command(BaseCommand):
    help = "Create (idempotently) the demo users, groups, agents, default model profile and templates."

    def handle(self, *args, **options):
        password = os.environ.get("DEMO_PASSWORD", "")
        generated = not password
        with transaction.atomic():
            groups = {
                name: Group.objects.get_or_create(name=name)[0] for name in (PRODUCT_MANAGERS_GROUP, REVIEWERS_GROUP)
            }
            created_users = self._users(groups, password)
            profile = seed_model_profile()
            agents = seed_agents(profile)
            templates = seed_templates()
        self.stdout.write(f"Seeded: {agents} new agents, {templates} new templates, profile '{profile.name}'.")
        for username, secret in created_users:
            shown = secret if generated else "(DEMO_PASSWORD)"
            self.stdout.write(f"Created user {username} with password {shown}")
        if not created_users:
            self.stdout.write("Demo users already exist; their passwords are unchanged.")
        self.stdout.write(self._demo_project())

    def _demo_project(self) -> str:
        """The sample repository as a project, so a first mission works on an existing codebase."""
        if Project.objects.filter(slug=DEMO_PROJECT_SLUG).exists():
            return f"Demo project {DEMO_PROJECT_SLUG} already exists."
        repo = settings.DATA_DIR / "demo" / DEMO_PROJECT_SLUG  # stands in for the product team's own remote
        orphan = settings.MIRRORS_DIR / f"{DEMO_PROJECT_SLUG}.git"
        shutil.rmtree(orphan, ignore_errors=True)  # no project owns it (a database made afresh): a pure copy
        try:
            if not (repo / ".git").is_dir():
                _demo_repository(repo)
            project = project_add(
                name="Sample inventory",
                slug=DEMO_PROJECT_SLUG,
                git_url=str(repo),
                created_by=get_user_model().objects.filter(is_superuser=True).order_by("pk").first(),
            )
        except (ProjectError, OSError, subprocess.CalledProcessError) as error:
            return f"Demo project not added: {error}"
        baseline = project.baselines.first()
        return (
            f"Demo project {project.slug} from {repo}: {project.file_count} files, "
            f"baseline {baseline.get_verdict_display().lower()} ({baseline.passed} passed)."
        )

    def _users(self, groups, password):
        User = get_user_model()
        created = []
        for username, group, is_admin in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                continue
            secret = password or secrets.token_urlsafe(12)
            if is_admin:
                user = User.objects.create_superuser(
                    username=username, email=f"{username}@example.com", password=secret
                )
            else:
                user = User.objects.create_user(username=username, email=f"{username}@example.com", password=secret)
                user.groups.add(groups[group])
            created.append((username, secret))
        admin_perms = Permission.objects.filter(content_type__app_label__in=["missions", "agents", "reviews"])
        groups[REVIEWERS_GROUP].permissions.add(*admin_perms.filter(codename__startswith="view_"))
        return created


def _demo_repository(repo) -> None:
    """Copy the shipped sample into a git repository of its own, with one commit on main."""
    shutil.rmtree(repo, ignore_errors=True)
    shutil.copytree(DEMO_PROJECT_SOURCE, repo, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(repo),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Sample Inventory team",
        "GIT_AUTHOR_EMAIL": "team@example.com",
        "GIT_COMMITTER_NAME": "Sample Inventory team",
        "GIT_COMMITTER_EMAIL": "team@example.com",
    }
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "Sample inventory 1.0")):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
