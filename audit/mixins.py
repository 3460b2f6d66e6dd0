"""``AuditedAdmin``: every add, change and delete through a ModelAdmin becomes an ``AuditEntry``.

It hooks the admin's own log calls (``log_addition``, ``log_change``, ``log_deletions``), which every admin
path goes through — the change form, the password form, bulk delete — after Django's LogEntry is written
and inside the same transaction. ``save_model`` only keeps the values the form is about to overwrite.
It also refuses to delete an object that append-only records (events, ledger rows, ...) refer to: they
would be deleted or rewritten with it, which the database refuses on PostgreSQL.
"""

import json

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.db import models

from audit.models import AuditEntry
from audit.services import audit_changes, audit_record, audit_values


def append_only_models() -> tuple[type[models.Model], ...]:
    from agents.models import LLMCall
    from missions.models import Event, TestRun, Vote
    from reviews.models import PeerReview

    return (Event, Vote, PeerReview, TestRun, LLMCall, AuditEntry)


def append_only_references(model: type[models.Model], objs) -> list[str]:
    """Why ``objs`` cannot be deleted: the append-only records that refer to them (PROTECT ones the admin finds)."""
    kept = append_only_models()
    found = []
    for relation in model._meta.related_objects:
        if relation.related_model not in kept or relation.on_delete is models.PROTECT:
            continue
        count = relation.related_model._default_manager.filter(**{f"{relation.field.name}__in": objs}).count()
        if count:
            name = relation.related_model._meta.verbose_name_plural
            found.append(f"{count} {name} refer to it; they are append-only and are kept")
    return found


class AuditedAdmin(admin.ModelAdmin):
    def save_model(self, request, obj, form, change):
        obj._audit_fields = list(form.changed_data) if form is not None else []
        if change and obj.pk:
            before = type(obj)._default_manager.get(pk=obj.pk)
            obj._audit_before = audit_values(before, obj._audit_fields)
        super().save_model(request, obj, form, change)

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        self._audit(request, obj, AuditEntry.Action.ADD, entry)
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        self._audit(request, obj, AuditEntry.Action.CHANGE, entry)
        return entry

    def log_deletions(self, request, queryset):
        entries = super().log_deletions(request, queryset)
        for obj in queryset:
            names = [f.name for f in obj._meta.concrete_fields if not f.primary_key]
            audit_record(
                actor=request.user,
                action=AuditEntry.Action.DELETE,
                obj=obj,
                changes={name: {"from": value} for name, value in audit_values(obj, names).items()},
            )
        return entries

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed, [*protected, *append_only_references(self.model, objs)]

    def _audit(self, request, obj, action: str, entry: LogEntry | None) -> None:
        fields = getattr(obj, "_audit_fields", None)
        if fields is None:  # a form that is not the change form (the password form): what Django logged
            fields = _logged_fields(entry)
        after = audit_values(obj, fields)
        audit_record(
            actor=request.user,
            action=action,
            obj=obj,
            changes=audit_changes(getattr(obj, "_audit_before", None), after),
            message=entry.get_change_message() if entry else "",
        )


def _logged_fields(entry: LogEntry | None) -> list[str]:
    """The field labels Django's own log entry names as changed (for the password form: "Password")."""
    try:
        parts = json.loads(entry.change_message) if entry and entry.change_message else []
    except ValueError:
        return []
    return [label for part in parts for label in part.get("changed", {}).get("fields", [])]
