"""Licenses: Ed25519-signed JSON documents saying what an installation may use.

A document is ``{"payload": {...}, "signature": "<base64>"}``; the signature covers the
canonical JSON of the payload (sorted keys, no spaces). Without a valid installed license
the edition is ``community``. Gates are asked here and nowhere else (DESIGN §4).
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import date

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.utils import timezone

from apps.accounts.models import InstalledLicense, ProfileKind
from apps.accounts.services import profile_kind

EDITIONS = ("community", "team", "enterprise")
_COMMUNITY = frozenset({"trigger.manual", "trigger.time", "trigger.after_scenario"})
_TEAM = _COMMUNITY | {"trigger.dataset_change", "trigger.sql_change"}
EDITION_FEATURES: dict[str, frozenset[str]] = {
    "community": _COMMUNITY,
    "team": frozenset(_TEAM),
    "enterprise": frozenset(_TEAM | {"trigger.custom_python"}),
}
PROFILE_ORDER = [ProfileKind.READER, ProfileKind.DESIGNER, ProfileKind.CODER]


class LicenseError(Exception):
    """A license document that cannot be used, with the reason in plain words."""


@dataclass(frozen=True)
class License:
    edition: str
    licensee: str = ""
    expires_at: date | None = None
    features: frozenset[str] = field(default_factory=frozenset)
    seats: dict[str, int] = field(default_factory=dict)
    status: str = "none"  # none | active | expired | invalid
    message: str = "No license installed: Community edition."

    def has(self, feature: str) -> bool:
        return feature in self.features

    def seat_limit(self, kind: str) -> int | None:
        return self.seats.get(kind)


@dataclass(frozen=True)
class Gate:
    allowed: bool
    reason: str = ""


def canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def load_public_key(text: str | None) -> Ed25519PublicKey:
    if not text:
        raise LicenseError("No license public key is configured (CADENZA_LICENSE_PUBLIC_KEY).")
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except ValueError as error:
        raise LicenseError(f"The license public key cannot be read: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise LicenseError("The license public key is not an Ed25519 key.")
    return key


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise LicenseError(f"The private key cannot be read: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LicenseError("The private key is not an Ed25519 key.")
    return key


def verify(document: str, public_key: Ed25519PublicKey | None = None) -> dict:
    """Return the payload of a well-formed, correctly signed document; raise LicenseError."""
    public_key = public_key or load_public_key(settings.CADENZA_LICENSE_PUBLIC_KEY)
    try:
        wrapper = json.loads(document)
        payload, signature = wrapper["payload"], base64.b64decode(wrapper["signature"])
    except (ValueError, TypeError, KeyError):
        raise LicenseError(
            "This is not a license document (expected payload and signature)."
        ) from None
    if not isinstance(payload, dict):
        raise LicenseError("This is not a license document (the payload is not an object).")
    try:
        public_key.verify(signature, canonical(payload))
    except InvalidSignature:
        raise LicenseError(
            "The license signature is not valid (tampered, or another key)."
        ) from None
    _check_payload(payload)
    return payload


def _check_payload(payload: dict) -> None:
    if payload.get("edition") not in EDITIONS:
        raise LicenseError(f"Unknown edition {payload.get('edition')!r}.")
    if not str(payload.get("licensee", "")).strip():
        raise LicenseError("The license names no licensee.")
    try:
        _expiry(payload)
    except (ValueError, TypeError):  # TypeError: a non-string date, e.g. 20990101
        raise LicenseError(f"Bad expiry date {payload.get('expires_at')!r}.") from None
    seats = payload.get("seats", {})
    if not isinstance(seats, dict) or any(
        k not in ProfileKind.values or not isinstance(v, int) or v < 0 for k, v in seats.items()
    ):
        raise LicenseError("Seats must map profiles (reader/designer/coder) to counts ≥ 0.")


def _expiry(payload: dict) -> date | None:
    value = payload.get("expires_at")
    return date.fromisoformat(value) if value else None


def issue(
    private_key: Ed25519PrivateKey,
    *,
    edition: str,
    licensee: str,
    expires_at: date | None,
    features: list[str] = (),
    seats: dict[str, int] | None = None,
) -> str:
    payload = {
        "id": str(uuid.uuid4()),
        "edition": edition,
        "licensee": licensee,
        "issued_at": timezone.now().date().isoformat(),
        "expires_at": expires_at.isoformat() if expires_at else None,
        "features": sorted(features),
        "seats": seats or {},
    }
    _check_payload(payload)
    signature = base64.b64encode(private_key.sign(canonical(payload))).decode()
    return json.dumps({"payload": payload, "signature": signature}, indent=2, sort_keys=True)


def _from_payload(payload: dict, today: date) -> License:
    edition, expires_at = payload["edition"], _expiry(payload)
    if expires_at and expires_at < today:
        return License(
            "community",
            payload["licensee"],
            expires_at,
            EDITION_FEATURES["community"],
            status="expired",
            message=f"The {edition} license expired on {expires_at}: Community edition applies.",
        )
    features = EDITION_FEATURES[edition] | frozenset(payload.get("features", []))
    until = f" until {expires_at}" if expires_at else ""
    return License(
        edition,
        payload["licensee"],
        expires_at,
        features,
        dict(payload.get("seats", {})),
        status="active",
        message=f"{edition.title()} edition licensed to {payload['licensee']}{until}.",
    )


def active_license(today: date | None = None) -> License:
    installed = InstalledLicense.objects.first()
    community = License("community", features=EDITION_FEATURES["community"])
    if installed is None:
        return community
    try:
        payload = verify(installed.document)
    except LicenseError as error:
        return License(
            "community",
            installed.licensee,
            features=community.features,
            status="invalid",
            message=f"The installed license cannot be used ({error}): Community edition applies.",
        )
    return _from_payload(payload, today or timezone.localdate())


def license_validate(document: str) -> dict:
    """Verify a document for installation: correctly signed and not expired."""
    payload = verify(document)
    expires_at = _expiry(payload)
    if expires_at and expires_at < timezone.localdate():
        raise LicenseError(f"This license expired on {expires_at}.")
    return payload


def license_install(document: str, *, user=None) -> InstalledLicense:
    payload = license_validate(document)
    expires_at = _expiry(payload)
    return InstalledLicense.objects.create(
        document=document.strip(),
        edition=payload["edition"],
        licensee=payload["licensee"],
        expires_at=expires_at,
        installed_by=user if user and user.is_authenticated else None,
    )


def gate(feature: str, *, profile: str | None = None, user=None) -> Gate:
    """May this installation (and this user, if a profile is required) use ``feature``?"""
    current = active_license()
    if not current.has(feature):
        needed = next((e for e in EDITIONS if feature in EDITION_FEATURES[e]), None)
        wanted = f"the {needed.title()} edition" if needed else f"a license with {feature!r}"
        return Gate(False, f"Needs {wanted}; this installation runs {current.edition.title()}.")
    if profile and user is not None:
        if PROFILE_ORDER.index(profile_kind(user)) < PROFILE_ORDER.index(profile):
            return Gate(False, f"Needs the {profile} profile.")
    return Gate(True)
