from __future__ import annotations

import functools

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from apps.accounts.models import ApiToken, InstalledLicense, Profile, ProfileKind
from apps.system import rows


def profile_kind(user) -> str:
    """The user's profile; superusers count as coders, users without a row as designers."""
    if user.is_superuser:
        return ProfileKind.CODER
    try:
        return user.cadenza_profile.kind
    except Profile.DoesNotExist:
        return ProfileKind.DESIGNER


def seats_used(kind: str, *, exclude_user=None) -> int:
    profiles = Profile.objects.filter(kind=kind, user__is_active=True)
    if exclude_user is not None:
        profiles = profiles.exclude(user=exclude_user)
    return profiles.count()


def profile_check_seat(*, user, kind: str) -> None:
    """Raise ValidationError if giving ``user`` the profile ``kind`` would exceed the seats."""
    from apps.accounts.license import active_license

    if kind not in ProfileKind.values:
        raise ValidationError({"kind": f"Unknown profile {kind!r}."})
    limit = active_license().seat_limit(kind)
    if limit is None or (user.pk and Profile.objects.filter(user=user, kind=kind).exists()):
        return
    if seats_used(kind, exclude_user=user if user.pk else None) >= limit:
        raise ValidationError(
            {"kind": f"All {limit} {kind} seats of the license are taken."}, code="seats"
        )


@transaction.atomic
def profile_assign(*, user, kind: str) -> Profile:
    """Give ``user`` a profile, within the seats the license grants (ValidationError if full)."""
    # Serialise seat counting: concurrent assignments queue on the license row.
    list(InstalledLicense.objects.select_for_update().order_by("-installed_at", "-id")[:1])
    profile_check_seat(user=user, kind=kind)
    profile, _ = Profile.objects.update_or_create(user=user, defaults={"kind": kind})
    user.cadenza_profile = profile  # the caller's user object now tells the truth
    user.__dict__.pop("_cadenza_roles", None)
    return profile


def token_create(*, user, name: str, expires_at=None) -> tuple[ApiToken, str]:
    """Create a token and return it with its key; the key is never retrievable again."""
    key = ApiToken.new_key()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=key[4 : 4 + ApiToken.PREFIX_LENGTH],
        key_hash=ApiToken.hash_key(key),
        expires_at=expires_at,
    )
    return token, key


def token_authenticate(key: str) -> ApiToken | None:
    # Every API request comes through here: one plain lookup by the unique hash (the user's
    # state is checked on the row, not by a join in SQL), with the user's profile, which the
    # permission checks read.
    token = _token_with_user(ApiToken.hash_key(key))
    if token is None:
        return None
    now = timezone.now()
    if not token.user.is_active or (token.expires_at and token.expires_at <= now):
        return None
    # Touch at most once a minute so that a busy script does not write on every request.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def _token_with_user(key_hash: str) -> ApiToken | None:
    """``ApiToken.objects.select_related("user", "user__cadenza_profile").get(key_hash=…)``
    in SQL written once per process: building that query took the ORM more CPU than the
    database took to run it, on every API request (bench/api.py)."""
    sql, layout = _token_sql()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # planning took 5× executing (0.11, 0.02 ms)
            rows.execute_prepared(cursor, "api_token", sql, [key_hash])
        else:
            cursor.execute(sql, [key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    (token, user, profile), _ = rows.instances(row, layout)
    ApiToken._meta.get_field("user").set_cached_value(token, user)
    owner = Profile._meta.get_field("user")
    owner.remote_field.set_cached_value(user, profile)  # None: user.cadenza_profile raises
    if profile is not None:
        owner.set_cached_value(profile, user)
    return token


@functools.cache
def _token_sql() -> tuple[str, rows.Layout]:
    quote = connection.ops.quote_name
    users = get_user_model()
    columns, layout = rows.select_list([(ApiToken, "t"), (users, "u"), (Profile, "p")])
    sql = (
        f"SELECT {columns} FROM {quote(ApiToken._meta.db_table)} t "
        f"JOIN {quote(users._meta.db_table)} u ON u.id = t.user_id "
        f"LEFT JOIN {quote(Profile._meta.db_table)} p ON p.user_id = u.id "
        "WHERE t.key_hash = %s"
    )
    return sql, layout
