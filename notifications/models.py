from django.conf import settings
from django.db import models


class NotificationPreference(models.Model):
    """What one person wants to be told by mail; no row means the defaults (email on)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_pref")
    email = models.BooleanField(
        default=True,
        help_text="Mail me when a gate needs my decision and when my missions finish (if this server sends mail).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.user}: email {'on' if self.email else 'off'}"
