from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_kind
from apps.projects.models import Membership, Project, Role


@transaction.atomic
def project_create(*, user, key: str, name: str, description: str = "", variables=None) -> Project:
    """Create a project; its creator becomes its first admin."""
    project = Project(key=key, name=name, description=description, variables=variables or {})
    project.full_clean()
    project.save()
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    user.__dict__.pop("_cadenza_roles", None)
    return project


@transaction.atomic
def project_delete(project: Project) -> None:
    """Delete a project and everything in it. A saved model protects its dataset (deleting a
    dataset must not drop the models trained on it), so the project's models go first."""
    project.models.all().delete()
    project.delete()


def membership_validate(*, project: Project, user, group, role: int, instance=None) -> None:
    """Raise ValidationError (naming the field) for a membership that may not exist."""
    if (user is None) == (group is None):
        raise ValidationError({"user": "Name either a user or a group (exactly one)."})
    if user is not None and role > Role.READER and profile_kind(user) == ProfileKind.READER:
        raise ValidationError(
            {"role": f"{user} has the reader profile and can only be a project reader."}
        )
    if instance is not None and instance.pk and instance.role == Role.ADMIN and role < Role.ADMIN:
        _refuse_last_admin(project, instance)


def _refuse_last_admin(project: Project, leaving: Membership) -> None:
    others = project.memberships.filter(role=Role.ADMIN).exclude(pk=leaving.pk)
    if not others.exists():
        raise ValidationError({"role": "A project keeps at least one admin."})


def membership_delete(membership: Membership) -> None:
    with transaction.atomic():
        if membership.role == Role.ADMIN:
            _refuse_last_admin(membership.project, membership)
        membership.delete()
