"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) from the cryptography library.

The key comes from CADENZA_SECRETS_KEY (a Fernet key), or is derived from SECRET_KEY with
HKDF when that is not set — so rotating SECRET_KEY without CADENZA_SECRETS_KEY makes stored
secrets unreadable, and the error says so.
"""

from __future__ import annotations

import base64
import json
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SecretsUnreadable(Exception):
    pass


@cache
def _fernet(key_material: str) -> Fernet:
    if settings.CADENZA_SECRETS_KEY:
        return Fernet(settings.CADENZA_SECRETS_KEY.encode())
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"cadenza-secrets", info=b"fernet"
    ).derive(key_material.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_json(values: dict) -> str:
    if not values:
        return ""
    return _fernet(settings.SECRET_KEY).encrypt(json.dumps(values).encode()).decode()


def decrypt_json(token: str) -> dict:
    if not token:
        return {}
    try:
        return json.loads(_fernet(settings.SECRET_KEY).decrypt(token.encode()))
    except InvalidToken:
        raise SecretsUnreadable(
            "Stored secrets cannot be decrypted (was SECRET_KEY or CADENZA_SECRETS_KEY changed?)."
        ) from None
