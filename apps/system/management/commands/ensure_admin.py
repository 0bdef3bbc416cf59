from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first superuser if there is none (password from CADENZA_ADMIN_PASSWORD)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            self.stdout.write("An admin account exists already; log in with it.")
            return
        password = settings.CADENZA_ADMIN_PASSWORD or secrets.token_urlsafe(12)
        users.create_superuser(username=username, email="", password=password)
        self.stdout.write(self.style.SUCCESS(f"Created the admin account: {username}"))
        if settings.CADENZA_ADMIN_PASSWORD:
            self.stdout.write("Its password is the one in CADENZA_ADMIN_PASSWORD.")
        else:
            self.stdout.write(f"Its password (shown once, change it after login): {password}")
