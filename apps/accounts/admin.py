from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from apps.accounts.license import (
    LicenseError,
    active_license,
    license_install,
    license_validate,
)
from apps.accounts.models import ApiToken, InstalledLicense, Profile
from apps.accounts.services import profile_assign, profile_check_seat, token_create

User = get_user_model()


class ProfileForm(forms.ModelForm):
    class Meta:
        model = Profile
        fields = ["kind"]

    def clean_kind(self):
        kind = self.cleaned_data["kind"]
        user = self.instance.user if self.instance.user_id else User()
        try:
            profile_check_seat(user=user, kind=kind)
        except ValidationError as error:
            raise ValidationError(error.message_dict["kind"]) from None
        return kind


class ProfileInline(admin.StackedInline):
    model = Profile
    form = ProfileForm
    can_delete = False
    verbose_name_plural = "Cadenza profile"


admin.site.unregister(User)


@admin.register(User)
class CadenzaUserAdmin(UserAdmin):
    inlines = [ProfileInline]

    def save_formset(self, request, form, formset, change):
        if formset.model is not Profile:
            return super().save_formset(request, form, formset, change)
        # Through the service, which re-checks the seats under a lock. The admin's change
        # message reads what formset.save() would have recorded, so record it here too.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for profile_form in formset.forms:
            if profile_form.has_changed() or not profile_form.instance.pk:
                kind = profile_form.cleaned_data.get("kind")
                if kind:
                    existed = bool(profile_form.instance.pk)
                    profile = profile_assign(user=form.instance, kind=kind)
                    if existed:
                        formset.changed_objects.append((profile, profile_form.changed_data))
                    else:
                        formset.new_objects.append(profile)


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["name", "expires_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Everyone manages their own tokens; superusers see all (to revoke)."""

    form = ApiTokenForm
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at"]
    readonly_fields = ["user", "prefix", "created_at", "last_used_at"]

    def get_queryset(self, request):
        tokens = super().get_queryset(request)
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    has_view_permission = has_add_permission = has_delete_permission = (
        lambda self, request, obj=None: self.has_module_permission(request)
    )

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        token, key = token_create(user=request.user, name=obj.name, expires_at=obj.expires_at)
        obj.pk = token.pk
        messages.warning(
            request, f"Your new token (copy it now, it will not be shown again): {key}"
        )


class LicenseInstallForm(forms.ModelForm):
    class Meta:
        model = InstalledLicense
        fields = ["document"]

    def clean_document(self):
        document = self.cleaned_data["document"]
        try:
            license_validate(document)
        except LicenseError as error:
            raise ValidationError(str(error)) from None
        return document


@admin.register(InstalledLicense)
class InstalledLicenseAdmin(admin.ModelAdmin):
    form = LicenseInstallForm
    list_display = ["edition", "licensee", "expires_at", "installed_at", "installed_by"]

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    has_view_permission = has_add_permission = has_delete_permission = (
        lambda self, request, obj=None: self.has_module_permission(request)
    )

    def has_change_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        current = active_license()
        level = messages.INFO if current.status in ("active", "none") else messages.ERROR
        self.message_user(request, format_html("<b>Active:</b> {}", current.message), level)
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        try:
            installed = license_install(obj.document, user=request.user)
        except LicenseError as error:  # e.g. expired since the form was validated
            raise ValidationError(str(error)) from None
        obj.pk = installed.pk
