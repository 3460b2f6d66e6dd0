from django.apps import AppConfig


class MissionsConfig(AppConfig):
    name = "missions"

    def ready(self):
        from django.contrib.auth.signals import user_logged_out

        user_logged_out.connect(_close_sockets_on_logout, dispatch_uid="close_sockets_on_logout")


def _close_sockets_on_logout(sender, request, user, **kwargs):
    """Live pages are authorised per session; end them when the session ends."""
    if user is None:
        return
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from orchestrator_site.websocket import user_group

    try:
        async_to_sync(get_channel_layer().group_send)(user_group(user.pk), {"type": "session.ended"})
    except Exception:  # the channel layer being down must not break logging out
        import logging

        logging.getLogger(__name__).warning("could not close the sockets of %s", user, exc_info=True)
