"""Model answers: harmless deviations are normalised, real mistakes still fail validation."""

import pytest
from pydantic import ValidationError

from agents.schemas import PlanDraft, PlanReview, PlanStepDraft, PlanVote, SpecialistDesign


def _step(key="core", depends_on=(), **fields) -> dict:
    return {
        "key": key,
        "title": "A step",
        "kind": "codegen",
        "role": "developer",
        "instructions": "Do it with tests.",
        "depends_on": list(depends_on),
        "acceptance": ["tests pass"],
        "estimated_tokens": 100,
        **fields,
    }


def _plan(*steps: dict) -> PlanDraft:
    return PlanDraft.model_validate({"summary": "A plan.", "steps": list(steps)})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("core", "core"),
        ("Step 1", "step_1"),
        ("  API-Layer ", "api_layer"),
        ("Write   the__Tests!", "write_the_tests"),
        ("1st", "step_1st"),
        ("Données", "donnees"),
        ("x" * 60, "x" * 40),
    ],
)
def test_it_normalises_step_keys_to_the_key_pattern(given, expected):
    assert PlanStepDraft.model_validate(_step(key=given)).key == expected


@pytest.mark.parametrize("given", ["", "  ", "!!!", 7])
def test_it_still_refuses_keys_with_nothing_to_keep(given):
    with pytest.raises(ValidationError):
        PlanStepDraft.model_validate(_step(key=given))


@pytest.mark.parametrize(
    "steps",
    [
        # Renamed to migrate_db / migrate_db_2, deploy's dependency on "migrate-db" would point at "Migrate DB".
        [_step("Migrate DB"), _step("migrate-db"), _step("Deploy", depends_on=["migrate-db"])],
        [_step("core"), _step("core")],
    ],
)
def test_it_refuses_keys_that_normalise_alike_so_the_repair_round_fixes_them(steps):
    """Distinct raw keys that become one key are a validation error naming them, not a silent re-wiring."""
    with pytest.raises(ValidationError, match="step keys must be distinct after normalisation") as error:
        _plan(*steps)
    assert "all become the key" in str(error.value)


def test_it_still_accepts_one_step_key_written_differently_in_a_dependency():
    """One step keyed "Migrate DB" and a dependency written "migrate-db" mean the same step: accepted."""
    plan = _plan(_step("Migrate DB"), _step("Deploy", depends_on=["migrate-db"]))
    assert [s.key for s in plan.steps] == ["migrate_db", "deploy"]
    assert plan.steps[1].depends_on == ["migrate_db"] and plan.notes == []


def test_it_drops_unknown_and_self_dependencies_with_a_note():
    """A dependency that names no other step is dropped (and noted); a known one written differently is kept once."""
    plan = _plan(_step("core"), _step("docs", depends_on=["Core", "core", "setup", "docs"]))
    assert plan.steps[1].depends_on == ["core"]
    assert plan.notes == [
        "Step docs depended on setup, docs, which is no other step of the plan: the dependency was dropped."
    ]


def test_it_still_refuses_a_dependency_on_a_later_step():
    """Pointing at a step that comes later is a real graph error (it could be a cycle): the model must fix it."""
    with pytest.raises(ValidationError, match="which are not earlier steps"):
        _plan(_step("core", depends_on=["docs"]), _step("docs"))


@pytest.mark.parametrize(
    ("model", "field", "given", "expected"),
    [
        (PlanVote, "stance", "Approve ", "approve"),
        (PlanVote, "stance", " OBJECT", "object"),
        (PlanVote, "stance", "Abstain\n", "abstain"),
        (PlanReview, "verdict", "REJECT", "reject"),
        (PlanReview, "verdict", " Approve", "approve"),
        (PlanStepDraft, "kind", " CodeGen ", "codegen"),
        (PlanStepDraft, "kind", "Docs", "docs"),
    ],
)
def test_it_trims_and_folds_case_in_enum_values(model, field, given, expected):
    base = {
        PlanVote: {"stance": "approve", "rationale": "Fine.", "amendments": []},
        PlanReview: {"verdict": "approve", "findings": []},
        PlanStepDraft: _step(),
    }[model]
    assert getattr(model.model_validate({**base, field: given}), field) == expected


@pytest.mark.parametrize("given", ["approved", "yes", "", 1])
def test_it_still_refuses_enum_values_that_mean_something_else(given):
    with pytest.raises(ValidationError):
        PlanVote.model_validate({"stance": given, "rationale": "Fine.", "amendments": []})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("accessibility-expert", "accessibility-expert"),
        (" Security Auditor ", "security-auditor"),
        ("ML_Ops", "ml-ops"),
    ],
)
def test_it_normalises_a_specialist_name(given, expected):
    design = {"name": given, "title": "T", "role": "r", "system_prompt": "You review things carefully.", "tools": []}
    assert SpecialistDesign.model_validate(design).name == expected
