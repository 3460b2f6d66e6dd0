"""The shapes we ask models to answer in. Model output is untrusted: it is parsed into these and nothing else.

Harmless deviations are accepted rather than sent back: step keys are
normalised to the key pattern ("Step 1" -> "step_1"; two keys that become
one are sent back, as a dependency could not say which it meant), enum values are
trimmed and case-folded ("Approve " -> "approve"), and a dependency on a
step that does not exist is dropped with a note for the validation cycle.
"""

import re
import unicodedata
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from missions.inputs import MAX_BUDGET_USD

STEP_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
STEP_KEY_MAX = 40


def _slug(value: str, separator: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()  # "é" -> "e"
    return re.sub(r"[^a-z0-9]+", separator, ascii_text.lower()).strip(separator)


def normalise_step_key(value: Any) -> Any:
    """ASCII lowercase, runs of other characters to one underscore, a letter first: "Step 1" -> "step_1"."""
    if not isinstance(value, str):
        return value
    key = _slug(value, "_")
    if key[:1].isdigit():
        key = f"step_{key}"
    return key[:STEP_KEY_MAX].rstrip("_")


def fold_enum(value: Any) -> Any:
    """ " Approve" -> "approve", "Request-Changes" -> "request_changes"; anything else is left to validation."""
    if not isinstance(value, str):
        return value
    return re.sub(r"[\s-]+", "_", value.strip()).lower()


class PlanStepDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=STEP_KEY_PATTERN, description="Short identifier, lowercase, e.g. core")
    title: str = Field(min_length=1, max_length=200)
    kind: Literal["codegen", "review", "test", "docs", "deploy", "custom"]
    role: str = Field(min_length=1, max_length=60, description="The role that should do it, e.g. developer")
    instructions: str = Field(min_length=1, max_length=4000)
    depends_on: list[str] = Field(max_length=20)
    acceptance: list[str] = Field(max_length=20)
    estimated_tokens: int = Field(ge=0, le=1_000_000)

    @field_validator("key", mode="before")
    @classmethod
    def normalise_key(cls, value: Any) -> Any:
        return normalise_step_key(value)

    @field_validator("kind", mode="before")
    @classmethod
    def fold_kind(cls, value: Any) -> Any:
        return fold_enum(value)

    @field_validator("depends_on", mode="before")
    @classmethod
    def normalise_dependencies(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        names = [normalise_step_key(name) for name in value]
        return list(dict.fromkeys(names))  # the same dependency twice is once

    @field_validator("role")
    @classmethod
    def normalise_role(cls, value: str) -> str:
        return value.strip().lower().replace(" ", "_")


class PlanDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, max_length=4000)
    steps: list[PlanStepDraft] = Field(min_length=1, max_length=12)
    # What was changed to accept the answer; the validation cycle reports it. Not part of the schema.
    _notes: list[str] = PrivateAttr(default_factory=list)

    @field_validator("steps", mode="before")
    @classmethod
    def refuse_keys_that_normalise_alike(cls, value: Any) -> Any:
        """Two steps whose keys normalise to one key are sent back: a dependency cannot say which one it meant.

        Renaming one (``key_2``) would silently point a dependency written as either spelling at the first.
        """
        if not isinstance(value, list) or not all(isinstance(step, dict) for step in value):
            return value
        spellings: dict[Any, list[Any]] = {}
        for step in value:
            spellings.setdefault(normalise_step_key(step.get("key")), []).append(step.get("key"))
        clashes = [
            f"{', '.join(repr(raw) for raw in raws)} all become the key {key!r}"
            for key, raws in spellings.items()
            if isinstance(key, str) and key and len(raws) > 1
        ]
        if clashes:
            raise ValueError(
                "step keys must be distinct after normalisation: "
                + "; ".join(clashes)
                + ". Give every step a key of its own and name it the same way in depends_on."
            )
        return value

    @model_validator(mode="after")
    def check_graph(self) -> "PlanDraft":
        keys = [s.key for s in self.steps]
        if len(set(keys)) != len(keys):
            raise ValueError("step keys must be unique")
        for step in self.steps:  # a name that is no other step's key can only be dropped
            unknown = [d for d in step.depends_on if d not in keys or d == step.key]
            if unknown:
                step.depends_on = [d for d in step.depends_on if d not in unknown]
                self._notes.append(
                    f"Step {step.key} depended on {', '.join(unknown)}, which is no other step of the plan: "
                    "the dependency was dropped."
                )
        known: set[str] = set()
        for step in self.steps:  # dependencies must come earlier: this also rules out cycles
            later = [d for d in step.depends_on if d not in known]
            if later:
                raise ValueError(f"step {step.key!r} depends on {later}, which are not earlier steps")
            known.add(step.key)
        return self

    @property
    def notes(self) -> list[str]:
        return list(self._notes)


class PlanVote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stance: Literal["approve", "object", "abstain"]
    rationale: str = Field(min_length=1, max_length=4000)
    amendments: list[str] = Field(max_length=20)

    @field_validator("stance", mode="before")
    @classmethod
    def fold_stance(cls, value: Any) -> Any:
        return fold_enum(value)


class PlanReview(BaseModel):
    """The validator agent's verdict on a plan; findings go back to the C-suite."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["approve", "reject"]
    findings: list[str] = Field(max_length=20)

    @field_validator("verdict", mode="before")
    @classmethod
    def fold_verdict(cls, value: Any) -> Any:
        return fold_enum(value)


class SpecialistDesign(BaseModel):
    """A new agent designed by a model. Only these fields are taken; tools are checked against the allow-list."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,50}$")
    title: str = Field(min_length=1, max_length=120)
    role: str = Field(min_length=1, max_length=60)
    system_prompt: str = Field(min_length=20, max_length=4000)
    tools: list[str] = Field(max_length=10)

    @field_validator("name", mode="before")
    @classmethod
    def normalise_name(cls, value: Any) -> Any:
        """ "Security Auditor" -> "security-auditor"; the pattern still decides what is acceptable."""
        return _slug(value, "-") if isinstance(value, str) else value


class BudgetProposal(BaseModel):
    """The CFO's proposed budget increase for a mission that ran out: how much, and why in a few sentences."""

    model_config = ConfigDict(extra="forbid")

    increase_usd: Decimal = Field(gt=0, le=MAX_BUDGET_USD, decimal_places=2, description="US dollars, e.g. 2.50")
    rationale: str = Field(min_length=1, max_length=600)

    @field_validator("rationale")
    @classmethod
    def one_paragraph(cls, value: str) -> str:
        """Control characters out, whitespace runs to one space: it is shown on the gate as plain text."""
        cleaned = " ".join("".join(c if c.isprintable() else " " for c in value).split())
        if not cleaned:
            raise ValueError("the rationale is empty")
        return cleaned


class ReviewComment(BaseModel):
    """One line comment: ``line`` is a line number of the new version of ``path`` as the diff shows it."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=500)
    line: int = Field(ge=1, le=10_000_000)
    body: str = Field(min_length=1, max_length=2000)


class StepReview(BaseModel):
    """A reviewer agent's verdict on one step's change. Comments are checked against the diff afterwards."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["approve", "request_changes", "reject"]
    score: int = Field(ge=1, le=5, description="1 (unacceptable) to 5 (excellent)")
    summary: str = Field(min_length=1, max_length=2000)
    comments: list[ReviewComment] = Field(max_length=30)

    @field_validator("verdict", mode="before")
    @classmethod
    def fold_verdict(cls, value: Any) -> Any:
        return fold_enum(value)
