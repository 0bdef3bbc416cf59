"""/api/v1/license/: anyone signed in reads the edition and seats; superusers install."""

from __future__ import annotations

from rest_framework.test import APIClient

from apps.accounts.models import InstalledLicense
from tests.accounts.conftest import tamper

URL = "/api/v1/license/"


def test_anonymous_is_refused(db):
    assert APIClient().get(URL).status_code in (401, 403)
    assert APIClient().post(URL, {"document": "{}"}).status_code in (401, 403)


def test_any_user_reads_the_edition_and_seats(cast, api, install_license):
    install_license("team", seats={"designer": 10, "coder": 1})

    response = api(cast["reader"]).get(URL)

    assert response.status_code == 200
    body = response.json()
    assert (body["edition"], body["status"], body["licensee"]) == ("team", "active", "ACME")
    assert body["expires_at"] == "2099-01-01"
    assert "trigger.dataset_change" in body["features"]
    # The cast: five designers, no coder or reader rows (the superuser has no profile row).
    assert body["seats"] == {
        "reader": {"limit": None, "used": 0},
        "designer": {"limit": 10, "used": 5},
        "coder": {"limit": 1, "used": 0},
    }


def test_without_a_license_the_api_says_community(cast, api):
    body = api(cast["outsider"]).get(URL).json()
    assert (body["edition"], body["status"]) == ("community", "none")
    assert body["seats"]["coder"] == {"limit": None, "used": 0}


def test_non_superuser_cannot_install(cast, api, issue_license):
    response = api(cast["owner"]).post(URL, {"document": issue_license("enterprise")})
    assert response.status_code == 403
    assert not InstalledLicense.objects.exists()


def test_superuser_install_with_a_bad_document_is_a_400_on_document(cast, api, issue_license):
    document = tamper(issue_license("team"), edition="enterprise")

    response = api(cast["superuser"]).post(URL, {"document": document})

    assert response.status_code == 400
    assert "signature is not valid" in response.json()["document"][0]
    assert not InstalledLicense.objects.exists()


def test_superuser_install_without_a_document_is_a_400_on_document(cast, api):
    response = api(cast["superuser"]).post(URL, {})
    assert response.status_code == 400
    assert "document" in response.json()


def test_superuser_installs_a_good_document(cast, api, issue_license):
    response = api(cast["superuser"]).post(URL, {"document": issue_license("enterprise")})

    assert response.status_code == 200
    assert response.json()["edition"] == "enterprise"
    installed = InstalledLicense.objects.get()
    assert (installed.edition, installed.installed_by) == ("enterprise", cast["superuser"])
    assert api(cast["reader"]).get(URL).json()["edition"] == "enterprise"
