import json
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from missions.inputs import ACCEPTANCE_MAX, REQUEST_MAX, TITLE_MAX, budget_parse
from missions.models import Mission, MissionTemplate
from missions.selectors import mission_steps, user_can_file_missions
from missions.services import DuplicateMissionError, budget_needs_confirmation, mission_submit
from projects.models import Project


def _variables(pairs: list[str]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"--var takes NAME=VALUE, got {pair!r}.")
        variables[name.strip()] = value
    return variables


def mission_summary(mission: Mission) -> dict:
    """What scripts need to know about a mission, as plain JSON."""
    mission.refresh_from_db()
    return {
        "code": str(mission.code),
        "title": mission.title,
        "status": mission.status,
        "budget_usd": str(mission.budget_usd),
        "spent_usd": str(mission.spent_usd),
        "simulated_model": mission.uses_simulated_model,
        "project": mission.project.slug if mission.project_id else None,
        "base_sha": mission.base_sha,
        "branch": mission.deploy_branch,
        "pushed_sha": mission.pushed_sha,
        "deployed_sha": mission.deployed_sha,
        "artifact": mission.artifact_path,
        "failure_reason": mission.failure_reason,
        "steps": [
            {"key": s.key, "title": s.title, "status": s.status, "commit": s.commit_sha, "error": s.error}
            for s in mission_steps(mission)
        ],
        "test_runs": [
            {
                "step": r.step.key if r.step else None,
                "passed": r.passed,
                "failed": r.failed,
                "errors": r.errors,
                "isolation": r.isolation,
            }
            for r in mission.test_runs.select_related("step")
        ],
        "open_gates": [{"kind": g.kind, "question": g.question} for g in mission.gates.filter(status="pending")],
    }


class Command(BaseCommand):
    help = "File a mission exactly as the form does; optionally wait for it to finish or stop at a gate."

    def add_arguments(self, parser):
        parser.add_argument("--requester", required=True, help="Username of the product manager filing it.")
        parser.add_argument("--title", default="", help=f"At most {TITLE_MAX} characters.")
        parser.add_argument(
            "--request",
            default="",
            help=f"At most {REQUEST_MAX:,} characters; with --template, added to its request as notes.",
        )
        parser.add_argument("--acceptance", default="", help=f"At most {ACCEPTANCE_MAX:,} characters.")
        parser.add_argument("--project", help="Slug of the project (repository) to work on; default: none.")
        parser.add_argument("--template", help="Template slug.")
        parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
        parser.add_argument("--budget", default=str(settings.DEFAULT_MISSION_BUDGET_USD), help="Dollars, e.g. 5.00.")
        parser.add_argument(
            "--confirm-budget",
            action="store_true",
            help="Required for a budget above BUDGET_CONFIRM_ABOVE_USD.",
        )
        parser.add_argument("--priority", default=Mission.Priority.NORMAL, choices=Mission.Priority.values)
        parser.add_argument("--consensus", choices=MissionTemplate.ConsensusRule.values, default="")
        parser.add_argument("--mode", choices=MissionTemplate.ConversationMode.values, default="")
        parser.add_argument("--deadlock", choices=MissionTemplate.DeadlockPolicy.values, default="")
        parser.add_argument("--plan-approval", action="store_true", help="A reviewer approves the plan first.")
        parser.add_argument(
            "--no-deploy-approval", action="store_true", help="Deploy without asking a reviewer (default: ask)."
        )
        parser.add_argument(
            "--allow-duplicate",
            action="store_true",
            help="File it even if you filed the same mission in the last 10 minutes.",
        )
        parser.add_argument("--wait", action="store_true", help="Block until finished or waiting on a gate.")
        parser.add_argument("--timeout", type=float, default=600, help="Seconds to wait at most (with --wait).")
        parser.add_argument("--json", action="store_true", help="Print the mission as JSON.")

    def handle(self, *args, **options):
        User = get_user_model()
        try:
            requester = User.objects.get(username=options["requester"])
        except User.DoesNotExist:
            raise CommandError(f"No user {options['requester']!r}.") from None
        if not user_can_file_missions(requester):
            raise CommandError(f"{requester} may not file missions: add them to the Product managers group.")
        template = None
        if options["template"]:
            template = MissionTemplate.objects.filter(slug=options["template"], is_active=True).first()
            if template is None:
                slugs = ", ".join(MissionTemplate.objects.values_list("slug", flat=True))
                raise CommandError(f"No template {options['template']!r}. Known: {slugs}.")
        project = None
        if options["project"]:
            project = Project.objects.open_to(requester).filter(slug=options["project"]).first()
            if project is None:
                slugs = ", ".join(Project.objects.open_to(requester).values_list("slug", flat=True)) or "none"
                raise CommandError(
                    f"No project {options['project']!r} that {requester} may file against. Known: {slugs}."
                )
        try:
            budget = budget_parse(str(options["budget"]))
        except ValueError as error:
            raise CommandError(f"--budget: {error}") from None
        if budget_needs_confirmation(budget) and not options["confirm_budget"]:
            raise CommandError(
                f"--budget {budget} is above ${settings.BUDGET_CONFIRM_ABOVE_USD}: add --confirm-budget if you mean it."
            )
        try:
            mission = mission_submit(
                requester=requester,
                title=options["title"],
                request=options["request"],
                acceptance_criteria=options["acceptance"],
                template=template,
                variables=_variables(options["var"]),
                budget_usd=budget,
                budget_confirmed=options["confirm_budget"],
                refuse_duplicates=not options["allow_duplicate"],
                priority=options["priority"],
                require_plan_approval=options["plan_approval"],
                require_deploy_approval=not options["no_deploy_approval"],
                consensus_rule=options["consensus"],
                conversation_mode=options["mode"],
                deadlock_policy=options["deadlock"],
                project=project,
            )
        except DuplicateMissionError as error:
            raise CommandError(f"{error} Add --allow-duplicate to file it again.") from None
        except ValueError as error:
            raise CommandError(str(error)) from None
        if options["wait"]:
            self._wait(mission, options["timeout"])
        if options["json"]:
            self.stdout.write(json.dumps(mission_summary(mission), indent=2))
        else:
            mission.refresh_from_db()
            self.stdout.write(f"{mission.code} {mission.status} {mission.title}")

    def _wait(self, mission: Mission, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mission.refresh_from_db()
            if mission.is_finished or mission.is_waiting:
                return
            time.sleep(0.5)
        raise CommandError(f"Mission {mission.code} is still {mission.status} after {timeout:.0f}s.")
