"""Admin for projects and memberships, and ProjectScopedAdmin, the base every app's admin uses.

Staff users who are not superusers see and edit exactly what the permission module allows;
Django's per-model permissions are not consulted.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from apps.projects import permissions
from apps.projects.models import Membership, Project, Role
from apps.projects.services import membership_delete, membership_validate, project_create


class ProjectScopedAdmin(admin.ModelAdmin):
    """Scope an admin to the user's projects; the model declares ``project_path``."""

    project_field = "project"  # the form field that picks the project, if any

    def get_queryset(self, request):
        return permissions.for_user(super().get_queryset(request), request.user, "view")

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Django redirects to the index with "doesn't exist"; non-members get a plain 404,
        # the same answer as for an object that really does not exist.
        raise Http404

    def has_module_permission(self, request):
        return permissions.projects_for(request.user, "view", self.model).exists()

    def has_view_permission(self, request, obj=None):
        if obj is None:
            return self.has_module_permission(request)
        return permissions.can(request.user, "view", obj)

    def has_add_permission(self, request):
        return permissions.projects_for(request.user, "change", self.model).exists()

    def has_change_permission(self, request, obj=None):
        if obj is None:
            return permissions.projects_for(request.user, "change", self.model).exists()
        return permissions.can(request.user, "change", obj)

    def has_delete_permission(self, request, obj=None):
        if obj is None:
            return permissions.projects_for(request.user, "delete", self.model).exists()
        return permissions.can(request.user, "delete", obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == self.project_field:
            kwargs["queryset"] = permissions.projects_for(request.user, "change", self.model)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        # The admin wraps this in a transaction: re-check after the write, so nobody can
        # move an object into a project they may not edit.
        super().save_model(request, obj, form, change)
        if not permissions.can(request.user, "change", obj):
            raise PermissionDenied


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["project", "user", "group", "role"]

    def clean(self):
        data = super().clean()
        project = data.get("project") or getattr(self.instance, "project", None)
        if project is not None and "role" in data:
            try:
                membership_validate(
                    project=project,
                    user=data.get("user"),
                    group=data.get("group"),
                    role=data["role"],
                    instance=self.instance,
                )
            except ValidationError as error:
                self._update_errors(error)
        return data


class MembershipFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        kept = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        had_admin = self.instance.pk and self.instance.memberships.filter(role=Role.ADMIN).exists()
        if had_admin and not any(data.get("role") == Role.ADMIN for data in kept):
            raise ValidationError("A project keeps at least one admin.")


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipForm
    extra = 0
    formset = MembershipFormSet

    def has_view_permission(self, request, obj=None):
        return obj is None or permissions.can(request.user, "view", obj)

    def has_add_permission(self, request, obj=None):
        return obj is not None and permissions.can(request.user, "admin", obj)

    has_change_permission = has_add_permission
    has_delete_permission = has_add_permission


@admin.register(Project)
class ProjectAdmin(ProjectScopedAdmin):
    list_display = ["key", "name", "updated_at"]
    search_fields = ["key", "name"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        return ["key"] if obj else []

    def has_add_permission(self, request):
        return permissions.can_create_projects(request.user)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        created = project_create(
            user=request.user,
            key=obj.key,
            name=obj.name,
            description=obj.description,
            variables=obj.variables,
        )
        obj.pk, obj.created_at, obj.updated_at = created.pk, created.created_at, created.updated_at


@admin.register(Membership)
class MembershipAdmin(ProjectScopedAdmin):
    form = MembershipForm
    list_display = ["project", "user", "group", "role"]
    list_filter = ["role", ("project", admin.RelatedOnlyFieldListFilter)]

    def delete_model(self, request, obj):
        self.delete_queryset(request, [obj])

    def delete_queryset(self, request, queryset):
        for membership in queryset:
            try:
                membership_delete(membership)
            except ValidationError as error:
                self.message_user(request, f"{membership}: {error.messages[0]}", messages.ERROR)
