import json

from django.core.management.base import BaseCommand, CommandError

from agents.models import ModelProfile
from agents.runtime.probe import CAPABILITIES
from agents.services import model_profile_check


class Command(BaseCommand):
    help = (
        "Probe a model profile's endpoint with tiny requests (plain, JSON schema, JSON mode, tools, streaming, "
        "usage) and store what it accepts on the profile. Exits 1 if plain completion fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("profile", help="The model profile's name, e.g. default.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options):
        profile = ModelProfile.objects.filter(name=options["profile"]).first()
        if profile is None:
            names = ", ".join(ModelProfile.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No model profile named {options['profile']!r} (profiles: {names}).")
        result = model_profile_check(profile=profile)
        found = result["capabilities"]
        if options["json"]:
            self.stdout.write(json.dumps({"profile": profile.name, **result}, indent=2))
        else:
            self.stdout.write(
                f"{profile.name}: {result['model'] or '(no model)'} at {result['base_url'] or '(no URL)'}"
            )
            width = max(map(len, CAPABILITIES))
            for name in CAPABILITIES:
                verdict = "ok" if found[name]["ok"] else "refused"
                self.stdout.write(f"{name:<{width}}  {verdict:<7}  {found[name]['detail']}")
            self.stdout.write(f"Structured answers will use: {profile.structured_mode}.")
        if not found["plain"]["ok"]:
            raise CommandError(f"Plain completion failed: {found['plain']['detail']}")
