"""Add a project from a script exactly as the Projects page does (mirror, stats, baseline)."""

import json

from django.core.management.base import BaseCommand, CommandError

from projects.models import DEFAULT_TEST_COMMAND
from projects.services import ProjectError, project_add


class Command(BaseCommand):
    help = "Mirror a repository, run its test command once as the baseline, and add it as a project."

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True)
        parser.add_argument("--url", required=True, help="https://, ssh://, git@host:path, file:// or a local path")
        parser.add_argument("--name", default="", help="default: the slug")
        parser.add_argument("--branch", default="main")
        parser.add_argument("--test-command", default=DEFAULT_TEST_COMMAND)
        parser.add_argument("--setup-command", default="")
        parser.add_argument("--push-url", default="")
        parser.add_argument("--json", action="store_true", help="print the project and its baseline as JSON")

    def handle(self, *args, **options):
        try:
            project = project_add(
                name=options["name"] or options["slug"],
                slug=options["slug"],
                git_url=options["url"],
                default_branch=options["branch"],
                test_command=options["test_command"],
                setup_command=options["setup_command"],
                push_url=options["push_url"],
            )
        except ProjectError as error:
            raise CommandError(str(error)) from None
        baseline = project.current_baseline()
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "slug": project.slug,
                        "head_sha": project.head_sha,
                        "file_count": project.file_count,
                        "languages": project.languages,
                        "baseline": {
                            "verdict": baseline.verdict,
                            "passed": baseline.passed,
                            "failed": baseline.failed,
                            "errors": baseline.errors,
                            "skipped": baseline.skipped,
                            "duration_s": round(baseline.duration_s, 3),
                        },
                    }
                )
            )
            return
        self.stdout.write(
            f"Added {project.slug} at {project.head_sha[:10]} ({project.file_count} files); baseline "
            f"{baseline.verdict}: {baseline.passed} passed, {baseline.failed} failed, {baseline.errors} errors."
        )
