from __future__ import annotations

import base64
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management.base import BaseCommand, CommandError

from apps.accounts import license as licensing


def _seats(values: list[str]) -> dict[str, int]:
    seats = {}
    for item in values:
        kind, _, count = item.partition("=")
        if not count.isdigit():
            raise CommandError(f"--seats {item!r}: use PROFILE=COUNT, e.g. designer=10.")
        seats[kind] = int(count)
    return seats


class Command(BaseCommand):
    help = "Show, install, issue licenses, or make an Ed25519 key pair to issue them with."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="verb", required=True)
        sub.add_parser("show", help="print the active edition")
        install = sub.add_parser("install", help="install a license document")
        install.add_argument("file", type=Path)
        keygen = sub.add_parser("keygen", help="write a private key; print its public key")
        keygen.add_argument("--out", type=Path, required=True, help="private key file (PEM)")
        issue = sub.add_parser("issue", help="sign a license document (printed to stdout)")
        issue.add_argument("--private-key", type=Path, required=True)
        issue.add_argument("--edition", choices=licensing.EDITIONS, required=True)
        issue.add_argument("--licensee", required=True)
        issue.add_argument("--expires", type=date.fromisoformat, help="YYYY-MM-DD")
        issue.add_argument("--feature", action="append", default=[], dest="features")
        issue.add_argument("--seats", nargs="*", default=[], help="PROFILE=COUNT …")

    def handle(self, *args, verb, **options):
        try:
            getattr(self, f"_{verb}")(**options)
        except licensing.LicenseError as error:
            raise CommandError(str(error)) from None

    def _show(self, **options):
        current = licensing.active_license()
        self.stdout.write(f"{current.edition}: {current.message}")

    def _install(self, *, file: Path, **options):
        if not file.is_file():
            raise CommandError(f"{file} is not a file.")
        installed = licensing.license_install(file.read_text())
        self.stdout.write(self.style.SUCCESS(f"Installed: {installed}"))

    def _keygen(self, *, out: Path, **options):
        if out.exists():
            raise CommandError(f"{out} exists; refusing to overwrite a private key.")
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        out.touch(mode=0o600)
        out.write_bytes(pem)
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.stdout.write(f"CADENZA_LICENSE_PUBLIC_KEY={base64.b64encode(public).decode()}")

    def _issue(self, *, private_key: Path, edition, licensee, expires, features, seats, **options):
        if not private_key.is_file():
            raise CommandError(f"{private_key} is not a file.")
        key = licensing.load_private_key(private_key.read_bytes())
        document = licensing.issue(
            key,
            edition=edition,
            licensee=licensee,
            expires_at=expires,
            features=features,
            seats=_seats(seats),
        )
        self.stdout.write(document)
