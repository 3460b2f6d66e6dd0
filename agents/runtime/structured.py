"""Ask a model for an answer in a given pydantic shape, with one repair round."""

import json
from typing import TypeVar

from autogen_core.models import AssistantMessage, SystemMessage, UserMessage
from pydantic import BaseModel, ValidationError

from agents.errors import ModelOutputError
from agents.models import ModelProfile
from agents.runtime.clients import model_client_for
from agents.runtime.metering import CallContext, MeteredChatCompletionClient

T = TypeVar("T", bound=BaseModel)


def _response_format(output_type: type[BaseModel]) -> dict:
    return {
        "type": "json_schema",
        "json_schema": {"name": output_type.__name__, "schema": output_type.model_json_schema(), "strict": False},
    }


def _describe_errors(error: ValidationError | ValueError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in error.errors()[:10])
    return str(error)


async def ask_structured(
    *, profile: ModelProfile, system_prompt: str, prompt: str, output_type: type[T], context: CallContext
) -> T:
    """Return the model's answer parsed into ``output_type``.

    Profiles with structured output get a JSON schema response format;
    others get JSON mode with the schema in the prompt. An answer that does
    not validate is sent back once with the errors; a second bad answer is
    a ModelOutputError with a readable reason.
    """
    client = MeteredChatCompletionClient(model_client_for(profile), profile=profile, context=context)
    name = output_type.__name__
    if profile.supports_json_schema:
        kwargs = {"extra_create_args": {"response_format": _response_format(output_type)}}
    else:
        schema = json.dumps(output_type.model_json_schema())
        prompt += f"\n\nAnswer with only a JSON object matching the schema {name}: {schema}"
        kwargs = {"json_output": True}
    messages = [SystemMessage(content=system_prompt), UserMessage(content=prompt, source="engine")]
    try:
        for attempt in (1, 2):
            result = await client.create(messages, **kwargs)
            content = result.content if isinstance(result.content, str) else ""
            try:
                return output_type.model_validate_json(content)
            except (ValidationError, ValueError) as error:
                problem = _describe_errors(error) if content else "the answer was empty or a tool call"
                if attempt == 2:
                    raise ModelOutputError(f"The model's {name} answer was invalid twice: {problem}") from error
                messages += [
                    AssistantMessage(content=content or "(no text)", source="model"),
                    UserMessage(
                        content=f"Your answer did not match the schema {name}: {problem}. "
                        "Answer again with only the corrected JSON object.",
                        source="engine",
                    ),
                ]
    finally:
        await client.close()
    raise AssertionError("unreachable")
