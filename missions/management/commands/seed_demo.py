import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from agents.seed import seed_agents, seed_model_profile
from missions.seed import seed_templates
from missions.selectors import PRODUCT_MANAGERS_GROUP, REVIEWERS_GROUP

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
