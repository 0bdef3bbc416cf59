"""REST API for projects and memberships, and the base classes every project-scoped API uses."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404
from rest_framework import exceptions, serializers, viewsets
from rest_framework.serializers import as_serializer_error

from apps.projects import permissions
from apps.projects.models import Membership, Project, project_key_validator
from apps.projects.services import (
    membership_delete,
    membership_validate,
    project_create,
    project_delete,
)


def raise_api_validation(error: DjangoValidationError):
    raise serializers.ValidationError(as_serializer_error(error)) from None


class ProjectScoped:
    """A viewset mixin for resources under /projects/{project_key}/: 404 for non-members,
    403 for too little role.

    Subclasses set ``queryset`` and ``serializer_class``; reads need ``view``, writes the
    model's write action, and custom actions declare theirs with ``required_action``
    (``@action(..., required_action="run")``). Rows are scoped through the model's
    ``project_path``.
    """

    lookup_value_regex = r"[0-9]+"
    required_action: str | None = None

    def get_project(self) -> Project:
        if not hasattr(self, "_project"):
            key = self.kwargs["project_key"]
            # Not a key at all (a NUL, say, which PostgreSQL refuses in a query): no project.
            if not project_key_validator.regex.match(key):
                raise Http404("No Project matches the given query.")
            self._project = permissions.visible_project(self.request.user, key)
        return self._project

    def get_queryset(self):
        return permissions.in_project(super().get_queryset(), self.request.user, self.get_project())

    def creation_probe(self):
        """An unsaved object of this project, to ask whether the user may create one."""
        return self.queryset.model(project=self.get_project())

    def action_name(self) -> str:
        if self.action in ("list", "retrieve", None) or self.request.method in ("GET", "HEAD"):
            return getattr(self, "required_action", None) or "view"
        if self.action == "destroy":
            return "delete"
        return getattr(self, "required_action", None) or "change"

    def check_object_permissions(self, request, obj):
        super().check_object_permissions(request, obj)
        if not permissions.can(request.user, self.action_name(), obj):
            raise exceptions.PermissionDenied()

    def check_permissions(self, request):
        super().check_permissions(request)
        if self.action == "create":  # before validation: a reader learns nothing from a 400
            if not permissions.can(request.user, "change", self.creation_probe()):
                raise exceptions.PermissionDenied()

    def perform_create(self, serializer):
        project = self.get_project()
        with transaction.atomic():
            instance = serializer.save(project=project)
            if not permissions.can(self.request.user, "change", instance):
                raise exceptions.PermissionDenied()

    def perform_update(self, serializer):
        with transaction.atomic():
            instance = serializer.save()
            if not permissions.can(self.request.user, "change", instance):
                raise exceptions.PermissionDenied()


class ProjectChildViewSet(ProjectScoped, viewsets.ModelViewSet):
    """A full CRUD resource under /projects/{project_key}/ (see ProjectScoped)."""


class ProjectChildReadOnlyViewSet(ProjectScoped, viewsets.ReadOnlyModelViewSet):
    """A read-only resource under /projects/{project_key}/ (custom actions may still write)."""


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your role on the project.")

    class Meta:
        model = Project
        fields = ["key", "name", "description", "variables", "created_at", "updated_at", "role"]
        read_only_fields = ["created_at", "updated_at"]

    def get_role(self, project) -> str | None:
        role = permissions.role_in(self.context["request"].user, project)
        return role.label.lower() if role else None

    def validate_variables(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Project variables must be a JSON object.")
        return value

    def update(self, instance, validated_data):
        if "key" in validated_data and validated_data["key"] != instance.key:
            raise serializers.ValidationError({"key": "A project key cannot change."})
        return super().update(instance, validated_data)


class ProjectViewSet(viewsets.ModelViewSet):
    serializer_class = ProjectSerializer
    lookup_field = "key"
    lookup_value_regex = r"[A-Z][A-Z0-9_]*"

    def get_queryset(self):
        return permissions.for_user(Project.objects.all(), self.request.user, "view")

    def check_object_permissions(self, request, obj):
        super().check_object_permissions(request, obj)
        action = "view" if request.method in ("GET", "HEAD", "OPTIONS") else "admin"
        if not permissions.can(request.user, action, obj):
            raise exceptions.PermissionDenied()

    def check_permissions(self, request):
        super().check_permissions(request)
        if self.action == "create" and not permissions.can_create_projects(request.user):
            raise exceptions.PermissionDenied("Your profile may not create projects.")

    def perform_create(self, serializer):
        try:
            serializer.instance = project_create(
                user=self.request.user, **serializer.validated_data
            )
        except DjangoValidationError as error:
            raise_api_validation(error)

    def perform_destroy(self, instance):
        project_delete(instance)


class MembershipSerializer(serializers.ModelSerializer):
    class Meta:
        model = Membership
        fields = ["id", "user", "group", "role"]

    def validate(self, data):
        project = self.context["view"].get_project()
        instance = self.instance
        merged = {
            "user": data.get("user", instance.user if instance else None),
            "group": data.get("group", instance.group if instance else None),
            "role": data.get("role", instance.role if instance else Membership.role.field.default),
        }
        try:
            membership_validate(project=project, instance=instance, **merged)
        except DjangoValidationError as error:
            raise_api_validation(error)
        duplicates = project.memberships.filter(user=merged["user"], group=merged["group"]).exclude(
            pk=instance.pk if instance else None
        )
        if duplicates.exists():
            field = "user" if merged["user"] else "group"
            raise serializers.ValidationError({field: "Already a member of this project."})
        return data


class MembershipViewSet(ProjectChildViewSet):
    queryset = Membership.objects.select_related("user", "group")
    serializer_class = MembershipSerializer

    def perform_destroy(self, instance):
        try:
            membership_delete(instance)
        except DjangoValidationError as error:
            raise_api_validation(error)
