"""The standard company: the C-suite, the validator and the standard roster, plus the default model profile."""

from django.conf import settings

from agents.models import AgentSpec, ModelProfile
from agents.runtime.tools import TOOL_NAMES

C_SUITE = [
    ("ceo", "Chief Executive Officer (CEO)", "scope, priority and the value to the customer"),
    ("cto", "Chief Technology Officer (CTO)", "the technical plan: its steps, their order and how each is tested"),
    ("cfo", "Chief Financial Officer (CFO)", "cost against the mission's budget"),
    ("cro", "Chief Risk Officer (CRO)", "security, compliance and failure modes"),
]

ROSTER = [
    ("pm", "Product Manager", "turning requests into clear, testable requirements"),
    ("developer", "Developer", "writing correct, small Python modules with pytest tests"),
    ("qa", "QA Engineer", "writing thorough pytest suites that catch regressions"),
    ("security", "Security Engineer", "finding and fixing vulnerabilities, with tests that prove the fix"),
    ("docs", "Technical Writer", "clear documentation with runnable, tested examples"),
    ("architect", "Software Architect", "module boundaries and interfaces"),
    ("research", "Researcher", "comparing options and summarising evidence"),
    ("devops", "DevOps Engineer", "build, deployment and operability"),
    ("data", "Data Engineer", "schemas, migrations and data quality"),
]


def seed_model_profile() -> ModelProfile:
    """The default profile follows the LLM_* settings; prices are those of a small hosted model."""
    profile, _ = ModelProfile.objects.get_or_create(
        name="default",
        defaults={
            "provider": ModelProfile.Provider.OPENAI_COMPATIBLE,
            "api_key_env": "LLM_API_KEY",
            "is_default": True,
        },
    )
    if not ModelProfile.objects.filter(is_default=True).exists():
        ModelProfile.objects.filter(pk=profile.pk).update(is_default=True)
    return profile


def seed_agents(profile: ModelProfile) -> int:
    created = 0
    for role, title, focus in C_SUITE:
        prompt = (
            f"You are the {title} of a software company run by AI agents. "
            f"In plan deliberations you speak for {focus}. Be concrete and brief."
        )
        _, was_created = AgentSpec.objects.get_or_create(
            name=role,
            defaults={
                "role": role,
                "title": title,
                "system_prompt": prompt,
                "model_profile": profile,
                "is_c_suite": True,
                "tools": [],
            },
        )
        created += was_created
    _, was_created = AgentSpec.objects.get_or_create(
        name="validator",
        defaults={
            "role": "validator",
            "title": "Plan Validator",
            "system_prompt": (
                "You are the Plan Validator. You check plans for gaps: untested code, missing roles, cost over budget."
            ),
            "model_profile": profile,
            "tools": [],
        },
    )
    created += was_created
    _, was_created = AgentSpec.objects.get_or_create(
        name="agent-manager",
        defaults={
            "role": "agent_manager",
            "title": "Agent Manager",
            "system_prompt": (
                "You are the Agent Manager. When a plan needs a role no agent covers, you design a specialist: "
                "a name, a title, a focused system prompt and the fewest tools it needs from the allow-list."
            ),
            "model_profile": profile,
            "tools": [],
        },
    )
    created += was_created
    for role, title, focus in ROSTER:
        prompt = (
            f"You are the {title} of a software company run by AI agents; your strength is {focus}. "
            "You work in a git repository through your tools only: list_files, read_file, write_file, "
            "run_tests (pytest in a sandbox) and commit. Write the code and its tests, run the tests until "
            "they pass, commit, then reply with a short summary."
        )
        _, was_created = AgentSpec.objects.get_or_create(
            name=role,
            defaults={
                "role": role,
                "title": title,
                "system_prompt": prompt,
                "model_profile": profile,
                "tools": list(TOOL_NAMES),
            },
        )
        created += was_created
    return created


def model_configuration_summary() -> str:
    if settings.LLM_SIMULATED:
        return f"simulated model server at {settings.LLM_BASE_URL or '(not started)'}"
    return f"{settings.LLM_MODEL} at {settings.LLM_BASE_URL}"
