"""The one permission module: every query and check of project access goes through here.

Actions: ``view`` (reader), ``run`` (operator), ``change`` and ``delete`` (what the model's
``write_action`` says; editor by default), ``code`` (editor with the coder profile) and
``admin`` (project admin). A model tells how to reach its project with ``project_path``
("" for Project itself, "project", "scenario__project", …).

Users with the reader profile never hold more than the reader role, whatever their memberships.
"""

from __future__ import annotations

import functools

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Max, Model, Q, QuerySet
from django.http import Http404

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_kind
from apps.projects.models import Membership, Project, Role
from apps.system import rows

ACTIONS = ("view", "run", "change", "delete", "code", "admin")
_ROLE_FOR_ACTION = {
    "view": Role.READER,
    "run": Role.OPERATOR,
    "change": Role.EDITOR,
    "code": Role.EDITOR,
    "admin": Role.ADMIN,
}


def _required(model: type[Model], action: str) -> Role:
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r}; expected one of {ACTIONS}.")
    if action in ("change", "delete"):
        action = getattr(model, "write_action", "change")
    return _ROLE_FOR_ACTION[action]


def _allowed_by_profile(user, action: str, role: Role) -> bool:
    kind = profile_kind(user)
    if kind == ProfileKind.READER and role > Role.READER:
        return False
    return action != "code" or kind == ProfileKind.CODER


def _memberships(user) -> QuerySet[Membership]:
    return Membership.objects.filter(Q(user=user) | Q(group__user=user))


def _project_field(model: type[Model]) -> str:
    path = getattr(model, "project_path", None)
    if path is None:
        raise TypeError(f"{model.__name__} has no project_path; it cannot be permission-scoped.")
    return f"{path}__in" if path else "pk__in"


def for_user(queryset: QuerySet, user, action: str = "view") -> QuerySet:
    """The rows of ``queryset`` on which ``user`` may perform ``action``."""
    if user and user.is_active and user.is_superuser:
        _required(queryset.model, action)  # still reject unknown actions
        return queryset
    projects = projects_for(user, action, queryset.model).values("pk")
    return queryset.filter(**{_project_field(queryset.model): projects})


# Set on a Project that visible_project() fetched: the pk of the user who may view it.
_VIEWABLE_BY = "_cadenza_viewable_by"


def visible_project(user, key: str) -> Project:
    """The project ``user`` may view (``for_user(…, "view")``), or Http404.

    Every call of the API under /projects/{key}/ starts here, so it is one plain query with
    its SQL written once: the ORM took ~1.5 ms of CPU to build the same membership subquery
    on every request (bench/api.py). Viewing needs any membership, direct or through a
    group, whatever the profile; tests/projects and tests/security pin it to ``for_user``.
    """
    if not (user and user.is_authenticated and user.is_active):
        raise Http404("No Project matches the given query.")
    if user.is_superuser:
        found = list(Project.objects.filter(key=key))
    else:
        found = _visible_project(key, user.pk)
    if not found:
        raise Http404("No Project matches the given query.")
    project = found[0]
    project.__dict__[_VIEWABLE_BY] = user.pk
    return project


def _visible_project(key: str, user_id: int) -> list[Project]:
    sql, layout = _visible_sql()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # planning took 4× executing (0.09, 0.02 ms)
            rows.execute_prepared(cursor, "visible_project", sql, [key, user_id, user_id])
        else:
            cursor.execute(sql, [key, user_id, user_id])
        row = cursor.fetchone()
    return [] if row is None else rows.instances(row, layout)[0]


@functools.cache
def _visible_sql() -> tuple[str, rows.Layout]:
    quote = connection.ops.quote_name
    membership = quote(Membership._meta.db_table)
    user_groups = quote(Membership.user.field.related_model.groups.through._meta.db_table)
    columns, layout = rows.select_list([(Project, "p")])
    sql = (
        f'SELECT {columns} FROM {quote(Project._meta.db_table)} p WHERE p."key" = %s AND '
        f'EXISTS (SELECT 1 FROM {membership} m WHERE m."project_id" = p."id" AND '
        f'(m."user_id" = %s OR m."group_id" IN '
        f'(SELECT "group_id" FROM {user_groups} WHERE "user_id" = %s)))'
    )
    return sql, layout


def in_project(queryset: QuerySet, user, project: Project, action: str = "view") -> QuerySet:
    """``for_user(queryset, user, action)``, limited to the rows of ``project``.

    Viewing a project's rows takes what viewing the project takes (the reader role, whatever
    the model and the profile; see ``projects_for``). So when ``visible_project`` fetched
    ``project`` for this user, the project filter is the permission filter: the same
    membership subquery is not compiled and planned a second time.
    """
    path = _project_field(queryset.model).removesuffix("__in")
    rows = queryset.filter(**{path: project})
    _required(queryset.model, action)  # still reject unknown actions
    if action == "view" and project.__dict__.get(_VIEWABLE_BY, _VIEWABLE_BY) == user.pk:
        return rows
    return for_user(rows, user, action)


def viewable_rows_of(user, project: Project) -> int:
    """The pk to filter ``project``'s rows by in SQL written by hand, where ``in_project``
    cannot go: it is the permission filter only for a project that ``visible_project`` fetched
    for this ``user`` (anything else is a programming error, and shows nothing)."""
    if project.__dict__.get(_VIEWABLE_BY, _VIEWABLE_BY) != user.pk:
        raise Http404("No Project matches the given query.")
    return project.pk


def project_of(obj: Model) -> Project:
    if isinstance(obj, Project):
        return obj
    target = obj
    for attr in type(obj).project_path.split("__"):
        target = getattr(target, attr)
    return target


def role_in(user, project: Project) -> Role | None:
    """The user's effective role on a project (None for non-members)."""
    if not (user and user.is_authenticated and user.is_active):
        return None
    if user.is_superuser:
        return Role.ADMIN
    cache = user.__dict__.setdefault("_cadenza_roles", {})
    if project.pk not in cache:
        best = _memberships(user).filter(project=project).aggregate(best=Max("role"))["best"]
        cache[project.pk] = Role(best) if best else None
    role = cache[project.pk]
    if role and profile_kind(user) == ProfileKind.READER:
        return Role.READER
    return role


def can(user, action: str, obj: Model) -> bool:
    """May ``user`` perform ``action`` on ``obj`` (saved or not; it needs its project set)?"""
    required = _required(type(obj), action)
    if user and user.is_active and user.is_superuser:
        return True
    if not _allowed_by_profile(user, action, required):
        return False
    role = role_in(user, project_of(obj))
    return role is not None and role >= required


def forget_roles(user) -> None:
    """Drop the per-request role cache (after memberships changed)."""
    user.__dict__.pop("_cadenza_roles", None)


def get_object_for(queryset: QuerySet, user, action: str, **lookup) -> Model:
    """Fetch one object: 404 if the user cannot see it, 403 if they cannot ``action`` it."""
    try:
        obj = for_user(queryset, user, "view").get(**lookup)
    except (queryset.model.DoesNotExist, ValueError):
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from None
    if action != "view" and not can(user, action, obj):
        raise PermissionDenied(f"You may not {action} this {queryset.model._meta.verbose_name}.")
    return obj


def can_create_projects(user) -> bool:
    if not (user and user.is_authenticated and user.is_active):
        return False
    return user.is_superuser or profile_kind(user) != ProfileKind.READER


def projects_for(user, action: str, model: type[Model] = Project) -> QuerySet[Project]:
    """Projects in which ``user`` may ``action`` objects of ``model`` (e.g. to add one)."""
    projects = Project.objects.all()
    if not (user and user.is_authenticated and user.is_active):
        return projects.none()
    role = _required(model, action)
    if user.is_superuser:
        return projects
    if not _allowed_by_profile(user, action, role):
        return projects.none()
    return projects.filter(pk__in=_memberships(user).filter(role__gte=role).values("project_id"))
