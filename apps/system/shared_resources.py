"""What admin-defined shared resources (data connections, messaging channels) have in common:
secrets encrypted at rest, and use restricted to chosen groups.

The model declares ``secrets_encrypted`` (TextField) and ``allowed_groups`` (M2M to Group).
"""

from __future__ import annotations

from apps.system.encryption import decrypt_json, encrypt_json


class SharedResource:
    @property
    def secrets(self) -> dict:
        return decrypt_json(self.secrets_encrypted)

    @secrets.setter
    def secrets(self, values: dict) -> None:
        self.secrets_encrypted = encrypt_json(values)

    def usable_by(self, user) -> bool:
        """Superusers always; others if no group is chosen or they belong to one of them."""
        if user is None or not user.is_active:
            return False
        if user.is_superuser:
            return True
        groups = list(self.allowed_groups.values_list("pk", flat=True))
        return not groups or user.groups.filter(pk__in=groups).exists()
