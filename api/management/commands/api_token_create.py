from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from api.services import ApiTokenError, api_token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print its secret (only this once), for scripts."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="The username the token acts as.")
        parser.add_argument("--name", default="command line", help="What the token is for (shown on the profile).")

    def handle(self, *args, user, name, **options):
        account = get_user_model().objects.filter(username=user).first()
        if account is None:
            raise CommandError(f"There is no user {user!r}.")
        try:
            _, secret = api_token_create(user=account, name=name)
        except ApiTokenError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(secret)  # the secret alone, so `TOKEN=$(manage.py api_token_create --user pm)` works
