"""License keys and documents for the accounts tests.

Every test that needs a license gets a fresh Ed25519 key pair; its public half is what the
installation trusts (CADENZA_LICENSE_PUBLIC_KEY), so documents signed with it verify.
"""

from __future__ import annotations

import base64
import json
from datetime import date

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import override_settings

from apps.accounts import license as licensing
from apps.accounts.models import InstalledLicense

FAR_FUTURE = date(2099, 1, 1)


def public_key_text(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode()


def tamper(document: str, **changes) -> str:
    """The document with its payload edited after signing (the signature left as it was)."""
    wrapper = json.loads(document)
    wrapper["payload"].update(changes)
    return json.dumps(wrapper)


@pytest.fixture
def license_key():
    """The vendor's private key; the installation trusts its public half while the test runs."""
    key = Ed25519PrivateKey.generate()
    with override_settings(CADENZA_LICENSE_PUBLIC_KEY=public_key_text(key)):
        yield key


@pytest.fixture
def issue_license(license_key):
    def issue(
        edition: str = "team",
        *,
        licensee: str = "ACME",
        expires_at: date | None = FAR_FUTURE,
        features: list[str] = (),
        seats: dict[str, int] | None = None,
        key: Ed25519PrivateKey | None = None,
    ) -> str:
        return licensing.issue(
            key or license_key,
            edition=edition,
            licensee=licensee,
            expires_at=expires_at,
            features=features,
            seats=seats,
        )

    return issue


@pytest.fixture
def install_license(db, issue_license):
    def install(edition: str = "team", **options) -> InstalledLicense:
        return licensing.license_install(issue_license(edition, **options))

    return install
