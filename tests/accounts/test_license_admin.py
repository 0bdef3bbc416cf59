"""The admin's license page: superusers install signed documents; nobody else gets in."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.accounts.models import InstalledLicense
from tests.accounts.conftest import tamper

ADD_URL = "/admin/accounts/installedlicense/add/"


def test_tampered_document_is_a_form_error(client, cast, issue_license):
    client.force_login(cast["superuser"])
    document = tamper(issue_license("team"), edition="enterprise")

    response = client.post(ADD_URL, {"document": document})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["document"]
    assert "signature is not valid" in errors["document"][0]
    assert not InstalledLicense.objects.exists()


def test_expired_document_is_a_form_error(client, cast, issue_license):
    client.force_login(cast["superuser"])
    document = issue_license("team", expires_at=timezone.localdate() - timedelta(days=1))

    response = client.post(ADD_URL, {"document": document})

    assert response.status_code == 200
    assert "expired" in response.context["adminform"].form.errors["document"][0]
    assert not InstalledLicense.objects.exists()


def test_good_document_is_installed(client, cast, issue_license):
    client.force_login(cast["superuser"])

    response = client.post(ADD_URL, {"document": issue_license("enterprise")})

    assert response.status_code == 302
    installed = InstalledLicense.objects.get()
    assert (installed.edition, installed.licensee) == ("enterprise", "ACME")
    assert installed.installed_by == cast["superuser"]
    changelist = client.get("/admin/accounts/installedlicense/")
    assert "Enterprise edition licensed to ACME" in changelist.content.decode()


def test_staff_who_are_not_superusers_get_403(client, cast, issue_license):
    client.force_login(cast["owner"])
    assert client.get(ADD_URL).status_code == 403
    assert client.post(ADD_URL, {"document": issue_license("enterprise")}).status_code == 403
    assert client.get("/admin/accounts/installedlicense/").status_code == 403
    assert not InstalledLicense.objects.exists()
