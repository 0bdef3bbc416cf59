from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from apps.accounts import license as licensing
from apps.triggers.models import Trigger
from apps.triggers.services import trigger_save
from tests.flow.conftest import files_connection, pg_connection  # noqa: F401


@pytest.fixture
def edition(settings, db):
    """Install a license of the given edition (signed with a key trusted for the test)."""
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    import base64

    settings.CADENZA_LICENSE_PUBLIC_KEY = base64.b64encode(raw).decode()

    def install(name: str):
        document = licensing.issue(key, edition=name, licensee="Test", expires_at=None)
        return licensing.license_install(document)

    return install


@pytest.fixture
def make_trigger(cast):
    def make(scenario, kind, params, user=None, **fields):
        trigger = Trigger(
            scenario=scenario, name=fields.pop("name", kind), kind=kind, params=params, **fields
        )
        return trigger_save(trigger, user=user or cast["owner"])

    return make
