"""The Projects page's forms; the service checks URLs, branches and commands (ProjectError)."""

from django import forms
from django.contrib.auth import get_user_model

from projects.models import DEFAULT_TEST_COMMAND


class ProjectEditForm(forms.Form):
    name = forms.CharField(max_length=120)
    default_branch = forms.CharField(max_length=120, initial="main")
    test_command = forms.CharField(max_length=500, initial=DEFAULT_TEST_COMMAND)
    setup_command = forms.CharField(
        max_length=500,
        required=False,
        help_text="Runs once per base commit in the sandbox, with network (e.g. pip install -e .).",
    )
    push_url = forms.CharField(
        max_length=500, required=False, help_text="Where approved work is pushed; empty: the repository's own URL."
    )
    merge_after_approval = forms.BooleanField(required=False, label="Merge into the default branch after approval")
    restricted = forms.BooleanField(required=False, label="Only members may file missions")
    members = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"), required=False
    )


class ProjectAddForm(ProjectEditForm):
    slug = forms.SlugField(max_length=60)
    git_url = forms.CharField(
        max_length=500, label="Git URL", help_text="https://, ssh://, git@host:path, file:// or an absolute path."
    )
    field_order = ["name", "slug", "git_url", "default_branch", "test_command", "setup_command", "push_url"]
