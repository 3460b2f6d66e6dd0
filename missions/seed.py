"""The eight standard mission templates."""

from missions.models import MissionTemplate


def _var(name: str, label: str, help_text: str = "", required: bool = True, default: str = "") -> dict:
    return {"name": name, "label": label, "help": help_text, "required": required, "default": default}


TEMPLATES = [
    {
        "slug": "feature_implementation",
        "name": "Feature implementation",
        "description": "Build a new feature end to end, with tests.",
        "title_template": "Implement {{feature}}",
        "request_template": "Implement {{feature}} for {{audience}}. {{details}}",
        "acceptance_template": "{{feature}} works as described and is covered by passing tests.",
        "variables": [
            _var("feature", "Feature", "What to build, in a few words."),
            _var("audience", "For whom", "Who uses it.", default="our users"),
            _var("details", "Details", "Anything else the team should know.", required=False),
        ],
    },
    {
        "slug": "bug_fix",
        "name": "Bug fix",
        "description": "Reproduce a bug with a failing test, then fix it.",
        "title_template": "Fix: {{symptom}}",
        "request_template": "Fix the bug where {{symptom}}. Steps to reproduce: {{steps}}. Expected: {{expected}}.",
        "acceptance_template": "A regression test reproduces the bug and passes after the fix.",
        "variables": [
            _var("symptom", "Symptom", "What goes wrong."),
            _var("steps", "Steps to reproduce"),
            _var("expected", "Expected behaviour"),
        ],
    },
    {
        "slug": "code_review",
        "name": "Code review",
        "description": "Review a module and improve it, keeping behaviour.",
        "title_template": "Review {{component}}",
        "request_template": (
            "Review {{component}} for {{focus}} and apply the improvements, with tests that pin the behaviour."
        ),
        "acceptance_template": "Findings are addressed; behaviour is unchanged and tested.",
        "variables": [_var("component", "Component"), _var("focus", "Focus", default="correctness and readability")],
    },
    {
        "slug": "security_audit",
        "name": "Security audit",
        "description": "Audit a component for vulnerabilities and fix what is found.",
        "title_template": "Security audit of {{component}}",
        "request_template": "Audit {{component}} for {{threats}}. Fix the findings and add tests that prove the fixes.",
        "acceptance_template": "Each finding has a fix and a test.",
        "variables": [
            _var("component", "Component"),
            _var("threats", "Threats", default="injection, auth bypass and data exposure"),
        ],
    },
    {
        "slug": "api_endpoint",
        "name": "API endpoint",
        "description": "Design and build an HTTP API endpoint with validation and tests.",
        "title_template": "API: {{resource}}",
        "request_template": "Build an API for {{resource}} supporting {{operations}}. {{details}}",
        "acceptance_template": "Every operation validates its input and is covered by tests.",
        "variables": [
            _var("resource", "Resource", "What the API is about, e.g. user authentication."),
            _var("operations", "Operations", default="create, read, update and delete"),
            _var("details", "Details", required=False),
        ],
    },
    {
        "slug": "database_migration",
        "name": "Database migration",
        "description": "Change a schema safely, with a reversible migration.",
        "title_template": "Migrate {{table}}: {{change}}",
        "request_template": (
            "Change the {{table}} schema: {{change}}. The migration must be reversible and keep existing data."
        ),
        "acceptance_template": "Forward and backward migrations are tested on sample data.",
        "variables": [_var("table", "Table"), _var("change", "Change")],
    },
    {
        "slug": "test_suite",
        "name": "Test suite",
        "description": "Write a test suite for existing behaviour.",
        "title_template": "Tests for {{component}}",
        "request_template": "Write a test suite for {{component}} covering {{cases}}.",
        "acceptance_template": "The suite passes and covers the listed cases.",
        "variables": [
            _var("component", "Component"),
            _var("cases", "Cases", default="normal use, edge cases and errors"),
        ],
    },
    {
        "slug": "documentation",
        "name": "Documentation",
        "description": "Document a component for a given audience, with runnable examples.",
        "title_template": "Document {{component}}",
        "request_template": "Write documentation of {{component}} for {{audience}}, with examples that are tested.",
        "acceptance_template": "The examples in the documentation run and pass.",
        "variables": [_var("component", "Component"), _var("audience", "Audience", default="new developers")],
    },
]


def seed_templates() -> int:
    """Create or update the standard templates; returns how many were created."""
    created = 0
    for spec in TEMPLATES:
        _, was_created = MissionTemplate.objects.update_or_create(slug=spec["slug"], defaults=spec)
        created += was_created
    return created
