"""License documents: what verifies, what is refused, and what the active license becomes."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone

from apps.accounts.license import (
    EDITION_FEATURES,
    LicenseError,
    active_license,
    canonical,
    license_install,
    verify,
)
from apps.accounts.models import InstalledLicense
from tests.accounts.conftest import FAR_FUTURE, tamper


def test_no_license_means_community(db):
    current = active_license()
    assert (current.edition, current.status) == ("community", "none")
    assert current.features == EDITION_FEATURES["community"]
    assert current.seat_limit("coder") is None


def test_valid_document_verifies_and_becomes_the_active_license(db, issue_license):
    document = issue_license("team", features=["beta.reports"], seats={"designer": 5, "coder": 1})
    assert verify(document)["edition"] == "team"

    installed = license_install(document)

    assert (installed.edition, installed.licensee, installed.expires_at) == (
        "team",
        "ACME",
        FAR_FUTURE,
    )
    current = active_license()
    assert (current.edition, current.status, current.licensee) == ("team", "active", "ACME")
    assert current.expires_at == FAR_FUTURE
    assert current.features == EDITION_FEATURES["team"] | {"beta.reports"}
    assert not current.has("trigger.custom_python")
    assert current.seats == {"designer": 5, "coder": 1}
    assert current.seat_limit("reader") is None


def test_the_newest_installed_license_is_the_active_one(db, install_license):
    install_license("team")
    install_license("enterprise", licensee="ACME Group")
    current = active_license()
    assert (current.edition, current.licensee) == ("enterprise", "ACME Group")


def test_tampered_document_is_refused(db, issue_license):
    document = tamper(issue_license("team", seats={"coder": 1}), seats={"coder": 100})
    with pytest.raises(LicenseError, match="signature is not valid"):
        verify(document)
    with pytest.raises(LicenseError, match="signature is not valid"):
        license_install(document)
    assert not InstalledLicense.objects.exists()


def test_tampered_row_in_the_database_falls_back_to_community(db, issue_license):
    """Editing the stored document by hand does not upgrade the installation."""
    InstalledLicense.objects.create(
        document=tamper(issue_license("team"), edition="enterprise"),
        edition="enterprise",
        licensee="ACME",
    )
    current = active_license()
    assert (current.edition, current.status) == ("community", "invalid")
    assert "signature is not valid" in current.message


def test_document_signed_with_another_key_is_refused(db, issue_license):
    document = issue_license("enterprise", key=Ed25519PrivateKey.generate())
    with pytest.raises(LicenseError, match="signature is not valid"):
        verify(document)
    with pytest.raises(LicenseError):
        license_install(document)
    assert active_license().edition == "community"


def test_expired_license_cannot_be_installed(db, issue_license):
    yesterday = timezone.localdate() - timedelta(days=1)
    document = issue_license("team", expires_at=yesterday)
    assert verify(document)["expires_at"] == yesterday.isoformat()  # well signed, only late
    with pytest.raises(LicenseError, match=f"expired on {yesterday}"):
        license_install(document)
    assert not InstalledLicense.objects.exists()


def test_installed_license_that_has_since_expired_falls_back_to_community(db, install_license):
    last_day = timezone.localdate() + timedelta(days=30)
    install_license("enterprise", expires_at=last_day)

    assert active_license(today=last_day).edition == "enterprise"
    expired = active_license(today=last_day + timedelta(days=1))
    assert (expired.edition, expired.status) == ("community", "expired")
    assert expired.features == EDITION_FEATURES["community"]
    assert f"expired on {last_day}" in expired.message


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("", "not a license document"),
        ("this is not JSON", "not a license document"),
        ("null", "not a license document"),
        ("[1, 2]", "not a license document"),
        ('"payload"', "not a license document"),
        ('{"payload": {"edition": "team"}}', "not a license document"),
        ('{"payload": {}, "signature": 42}', "not a license document"),
        ('{"payload": "team", "signature": "AAAA"}', "payload is not an object"),
        ('{"payload": {"edition": "team"}, "signature": "not base64!"}', "not a license document"),
        ('{"payload": {"edition": "team"}, "signature": "AAAA"}', "signature is not valid"),
    ],
)
def test_garbage_is_refused_with_a_clear_error(license_key, document, reason):
    with pytest.raises(LicenseError, match=reason):
        verify(document)


def _signed(private_key: Ed25519PrivateKey, payload: dict) -> str:
    signature = base64.b64encode(private_key.sign(canonical(payload))).decode()
    return json.dumps({"payload": payload, "signature": signature})


GOOD_PAYLOAD = {"edition": "team", "licensee": "ACME", "expires_at": "2099-01-01", "seats": {}}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"edition": "platinum"}, "Unknown edition"),
        ({"licensee": "  "}, "names no licensee"),
        ({"expires_at": "next year"}, "Bad expiry date"),
        ({"expires_at": 20990101}, "Bad expiry date"),
        ({"seats": {"designer": -1}}, "Seats must map"),
        ({"seats": {"admin": 3}}, "Seats must map"),
        ({"seats": ["designer"]}, "Seats must map"),
    ],
)
def test_correctly_signed_but_malformed_payload_is_refused(license_key, changes, reason):
    """Even the right key cannot make a nonsensical license usable."""
    with pytest.raises(LicenseError, match=reason):
        verify(_signed(license_key, {**GOOD_PAYLOAD, **changes}))


def test_well_formed_payload_signed_by_hand_verifies(license_key):
    """The counterpart of the test above: the hand-made signing is right."""
    assert verify(_signed(license_key, GOOD_PAYLOAD))["licensee"] == "ACME"


def test_no_public_key_configured_refuses_every_document(db, issue_license, settings):
    document = issue_license("team")
    settings.CADENZA_LICENSE_PUBLIC_KEY = None
    with pytest.raises(LicenseError, match="No license public key is configured"):
        license_install(document)
