"""Admin changes to site-wide objects (agents, model profiles and prices, templates, projects, users).

What happens on a mission is its ``missions.Event`` log; what an admin changes in the Django admin is an
``AuditEntry``. Both are append-only (see ``audit/migrations/0002_append_only_triggers.py``).
"""

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models


class AuditEntry(models.Model):
    """Who changed which object, when, and which fields (never a password or its hash)."""

    class Action(models.TextChoices):
        ADD = "add", "Added"
        CHANGE = "change", "Changed"
        DELETE = "delete", "Deleted"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    # PROTECT, as on Event: an admin who changed something is deactivated, never deleted.
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=10, choices=Action.choices)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    # {"field": {"from": old, "to": new}}; a secret field is {"field": {"changed": true}} with no values.
    changes = models.JSONField(default=dict, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["content_type", "object_id"])]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.content_type.model} {self.object_repr}"
