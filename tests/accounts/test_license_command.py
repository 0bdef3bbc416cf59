"""`manage.py license`: make a key pair, issue a document, install it, show the edition."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from apps.accounts.license import active_license
from apps.accounts.models import InstalledLicense
from tests.accounts.conftest import tamper


def run(*args: str) -> str:
    out = StringIO()
    call_command("license", *args, stdout=out)
    return out.getvalue()


def keygen(path: Path) -> str:
    """Write a private key to ``path``; return the public key the command printed."""
    name, _, public_key = run("keygen", "--out", str(path)).strip().partition("=")
    assert name == "CADENZA_LICENSE_PUBLIC_KEY"
    return public_key


def issue_team(private_key: Path) -> str:
    return run(
        "issue",
        "--private-key",
        str(private_key),
        "--edition",
        "team",
        "--licensee",
        "ACME",
        "--expires",
        "2099-01-01",
        "--seats",
        "designer=5",
    )


def test_keygen_issue_install_show(db, tmp_path):
    private_key = tmp_path / "vendor.pem"
    public_key = keygen(private_key)
    assert private_key.stat().st_mode & 0o077 == 0  # only the owner may read a private key
    document = tmp_path / "acme.license"
    document.write_text(issue_team(private_key))
    payload = json.loads(document.read_text())["payload"]
    assert (payload["edition"], payload["licensee"], payload["seats"]) == (
        "team",
        "ACME",
        {"designer": 5},
    )

    with override_settings(CADENZA_LICENSE_PUBLIC_KEY=public_key):
        assert "Installed: team — ACME" in run("install", str(document))
        shown = run("show")
        current = active_license()

    assert shown.startswith("team: Team edition licensed to ACME until 2099-01-01")
    assert current.seats == {"designer": 5}


def test_show_without_a_license_prints_community(db):
    assert run("show").startswith("community:")


def test_install_refuses_a_tampered_file(db, tmp_path):
    private_key = tmp_path / "vendor.pem"
    public_key = keygen(private_key)
    document = tmp_path / "acme.license"
    document.write_text(tamper(issue_team(private_key), seats={"designer": 500}))

    with override_settings(CADENZA_LICENSE_PUBLIC_KEY=public_key):
        with pytest.raises(CommandError, match="signature is not valid"):
            run("install", str(document))
    assert not InstalledLicense.objects.exists()


def test_install_refuses_a_missing_file(db, tmp_path):
    with pytest.raises(CommandError, match="is not a file"):
        run("install", str(tmp_path / "nowhere.license"))


def test_keygen_refuses_to_overwrite_a_private_key(tmp_path):
    private_key = tmp_path / "vendor.pem"
    keygen(private_key)
    before = private_key.read_bytes()
    with pytest.raises(CommandError, match="refusing to overwrite"):
        run("keygen", "--out", str(private_key))
    assert private_key.read_bytes() == before


def test_issue_refuses_bad_seats(tmp_path):
    private_key = tmp_path / "vendor.pem"
    keygen(private_key)
    with pytest.raises(CommandError, match="PROFILE=COUNT"):
        run(
            "issue",
            "--private-key",
            str(private_key),
            "--edition",
            "team",
            "--licensee",
            "ACME",
            "--seats",
            "designer=many",
        )
    with pytest.raises(CommandError, match="Seats must map"):
        run(
            "issue",
            "--private-key",
            str(private_key),
            "--edition",
            "team",
            "--licensee",
            "ACME",
            "--seats",
            "admin=3",
        )
