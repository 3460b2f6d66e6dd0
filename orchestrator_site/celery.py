import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")

app = Celery("orchestrator")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _connect_signals(sender, **kwargs):
    from celery.signals import worker_ready

    @worker_ready.connect(weak=False)
    def _first_heartbeat(**_):
        """Report the worker alive at once instead of waiting for the first beat."""
        from missions.tasks import record_heartbeat

        record_heartbeat()
