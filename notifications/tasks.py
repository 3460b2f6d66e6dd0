"""Thin Celery tasks: mail is sent here, never in a web request or a worker's transaction."""

from smtplib import SMTPException

from celery import shared_task

from notifications.services import notification_email_send


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(SMTPException, OSError),  # a mail server that is down or refuses for now
    retry_backoff=30,
    retry_backoff_max=600,
    max_retries=5,
)
def send_notification_email(user_id: int, subject: str, body: str) -> None:
    notification_email_send(user_id=user_id, subject=subject, body=body)
