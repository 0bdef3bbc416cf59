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


def usable_pairs(model, pairs: set[tuple[int, int | None]]) -> set[tuple[int, int | None]]:
    """Which (resource id, user id) pairs pass ``usable_by``: the same rule, for many pairs in
    three queries (resources' groups, users, users' groups), for code that checks thousands."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    resource_groups: dict[int, set[int]] = {pk: set() for pk, _ in pairs}
    through = model.allowed_groups.through
    resource_field = f"{model._meta.model_name}_id"
    for resource, group in through.objects.filter(
        **{f"{resource_field}__in": resource_groups.keys()}
    ).values_list(resource_field, "group_id"):
        resource_groups[resource].add(group)
    users = {
        pk: (active, superuser, set())
        for pk, active, superuser in User.objects.filter(
            pk__in={user for _, user in pairs if user is not None}
        ).values_list("pk", "is_active", "is_superuser")
    }
    for user, group in User.groups.through.objects.filter(user_id__in=users.keys()).values_list(
        "user_id", "group_id"
    ):
        users[user][2].add(group)

    def usable(resource: int, user: int | None) -> bool:
        if user not in users or not users[user][0]:
            return False
        groups = resource_groups[resource]
        return users[user][1] or not groups or bool(groups & users[user][2])

    return {pair for pair in pairs if usable(*pair)}
