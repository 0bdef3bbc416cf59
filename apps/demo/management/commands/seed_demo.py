from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.demo.definitions import PROJECT
from apps.demo.services import demo_seed


class Command(BaseCommand):
    help = (
        "Create the demo project (idempotent: only what was never seeded; edits and "
        "deletions are kept). Off with CADENZA_DEMO=0."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--owner", help="a superuser's username (default: admin, else the first superuser)"
        )

    def handle(self, *args, owner, **options):
        if not settings.CADENZA_DEMO:
            self.stdout.write("CADENZA_DEMO is off: no demo project.")
            return
        user = self._owner(owner)
        try:
            report = demo_seed(owner=user)
        except ValidationError as error:
            raise CommandError(f"The demo could not be seeded: {error}") from None
        self._print(report)

    def _owner(self, username: str | None):
        users = get_user_model().objects.filter(is_superuser=True, is_active=True)
        if username:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(f"--owner {username}: no active superuser of that name.")
            return user
        # ensure_admin makes "admin" only when no superuser exists: else the first one.
        user = users.filter(username="admin").first() or users.order_by("date_joined").first()
        if user is None:
            raise CommandError("No superuser to own the demo: run `manage.py ensure_admin` first.")
        return user

    def _print(self, report) -> None:
        if report.created:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo project {PROJECT['key']}: created {len(report.created)} object(s)."
                )
            )
        else:
            self.stdout.write(f"Demo project {PROJECT['key']}: nothing to create.")
        for line in report.skipped:
            self.stdout.write(f"  left out: {line}")
        for line in report.notes:
            self.stdout.write(f"  note: {line}")
