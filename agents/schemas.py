"""The shapes we ask models to answer in. Model output is untrusted: it is parsed into these and nothing else."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

STEP_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


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

    @field_validator("role")
    @classmethod
    def normalise_role(cls, value: str) -> str:
        return value.strip().lower().replace(" ", "_")


class PlanDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, max_length=4000)
    steps: list[PlanStepDraft] = Field(min_length=1, max_length=12)

    @model_validator(mode="after")
    def check_graph(self) -> "PlanDraft":
        keys = [s.key for s in self.steps]
        if len(set(keys)) != len(keys):
            raise ValueError("step keys must be unique")
        known: set[str] = set()
        for step in self.steps:  # dependencies must come earlier: this also rules out cycles
            unknown = [d for d in step.depends_on if d not in known]
            if unknown:
                raise ValueError(f"step {step.key!r} depends on {unknown}, which are not earlier steps")
            known.add(step.key)
        return self


class PlanVote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stance: Literal["approve", "object", "abstain"]
    rationale: str = Field(min_length=1, max_length=4000)
    amendments: list[str] = Field(max_length=20)


class PlanReview(BaseModel):
    """The validator agent's verdict on a plan; findings go back to the C-suite."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["approve", "reject"]
    findings: list[str] = Field(max_length=20)


class SpecialistDesign(BaseModel):
    """A new agent designed by a model. Only these fields are taken; tools are checked against the allow-list."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,50}$")
    title: str = Field(min_length=1, max_length=120)
    role: str = Field(min_length=1, max_length=60)
    system_prompt: str = Field(min_length=20, max_length=4000)
    tools: list[str] = Field(max_length=10)
