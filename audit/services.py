"""Write audit entries for admin changes, never with a secret in them."""

import re

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from audit.models import AuditEntry

# A field whose name holds one of these is recorded as changed, never with its value: a password, its
# hash, a token. Model profiles keep only the NAME of the variable holding a key (api_key_env), which is
# not a secret and is shown like any other field.
SECRET_PARTS = ("password", "secret", "token")
VALUE_MAX = 500


def field_is_secret(name: str) -> bool:
    return any(part in name.lower() for part in SECRET_PARTS)


def audit_values(obj: models.Model, names: list[str]) -> dict[str, object]:
    """The JSON-safe values of ``obj``'s fields ``names`` (a secret as "[hidden]"; form-only fields skipped)."""
    values: dict[str, object] = {}
    for name in names:
        if field_is_secret(name):
            values[name] = "[hidden]"
            continue
        try:
            field = obj._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if field.many_to_many:
            values[name] = sorted(str(related) for related in getattr(obj, name).all()) if obj.pk else []
        elif field.is_relation:
            related = getattr(obj, name, None)
            values[name] = None if related is None else str(related)[:VALUE_MAX]
        else:
            value = field.value_from_object(obj)
            if isinstance(value, bool | int | float | type(None)):
                values[name] = value
            else:
                values[name] = _without_credentials(str(value))[:VALUE_MAX]
    return values


_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def _without_credentials(value: str) -> str:
    """A URL's user and password (a token in a git remote, say) never reach an audit row, which is forever."""
    return _URL_USERINFO.sub(r"\g<scheme>***@", value)


def audit_changes(before: dict[str, object] | None, after: dict[str, object]) -> dict[str, dict]:
    """{"field": {"from": old, "to": new}}; a secret field only says it changed."""
    changes = {}
    for name, value in after.items():
        if field_is_secret(name):
            changes[name] = {"changed": True}
        elif before is None:
            changes[name] = {"to": value}
        elif before.get(name) != value:
            changes[name] = {"from": before.get(name), "to": value}
    return changes


def audit_record(
    *,
    actor: AbstractBaseUser | None,
    action: str,
    obj: models.Model,
    changes: dict | None = None,
    message: str = "",
    object_repr: str | None = None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        content_type=ContentType.objects.get_for_model(obj, for_concrete_model=False),
        object_id=str(obj.pk),
        object_repr=(object_repr if object_repr is not None else str(obj))[:200],
        changes=changes or {},
        message=message[:2000],
    )
