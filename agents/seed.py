"""The standard company: the C-suite, the validator and the standard roster, plus the default model profile."""

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


STAFF = [
    (
        "validator",
        "validator",
        "Plan Validator",
        "You are the Plan Validator. You check plans for gaps: untested code, missing roles, cost over budget.",
    ),
    (
        "agent-manager",
        "agent_manager",
        "Agent Manager",
        "You are the Agent Manager. When a plan needs a role no agent covers, you design a specialist: "
        "a name, a title, a focused system prompt and the fewest tools it needs from the allow-list.",
    ),
    # The default peer reviewers of every step (missions.models.DEFAULT_REVIEWERS). They read a diff and answer
    # with a StepReview; they have no tools.
    (
        "code-reviewer",
        "code_reviewer",
        "Code Reviewer",
        "You are the Code Reviewer. You review one step's change: is it correct, readable, tested and limited "
        "to what the step asked for? Anchor each comment to a file and a line of the diff. Approve good work; "
        "request changes for what the author can fix; reject only work that must not ship.",
    ),
    (
        "security-reviewer",
        "security_reviewer",
        "Security Reviewer",
        "You are the Security Reviewer. You review one step's change for vulnerabilities: injection, unsafe "
        "deserialisation, secrets in code, missing input validation, unsafe file or shell access. Anchor each "
        "comment to a file and a line of the diff. Approve safe work; request changes for fixable risks; "
        "reject a change that is dangerous by design.",
    ),
]


def seed_agents(profile: ModelProfile) -> int:
    """Create the company's agents that do not exist yet (edits made in the admin are kept); returns how many."""
    specs = [(role, role, title, _c_suite_prompt(title, focus), [], True) for role, title, focus in C_SUITE]
    specs += [(name, role, title, prompt, [], False) for name, role, title, prompt in STAFF]
    specs += [
        (role, role, title, _worker_prompt(title, focus), list(TOOL_NAMES), False) for role, title, focus in ROSTER
    ]
    created = 0
    for name, role, title, prompt, tools, c_suite in specs:
        _, was_created = AgentSpec.objects.get_or_create(
            name=name,
            defaults={
                "role": role,
                "title": title,
                "system_prompt": prompt,
                "model_profile": profile,
                "is_c_suite": c_suite,
                "tools": tools,
            },
        )
        created += was_created
    return created


def _c_suite_prompt(title: str, focus: str) -> str:
    return (
        f"You are the {title} of a software company run by AI agents. "
        f"In plan deliberations you speak for {focus}. Be concrete and brief."
    )


def _worker_prompt(title: str, focus: str) -> str:
    return (
        f"You are the {title} of a software company run by AI agents; your strength is {focus}. "
        "You work in a git repository through your tools only: list_files, search_code, read_file "
        "(a line range of a long file), edit_file (an exact, unique replacement in an existing file), "
        "write_file, run_tests (pytest in a sandbox) and commit. Write the code and its tests, run the "
        "tests until they pass, commit, then reply with a short summary."
    )
