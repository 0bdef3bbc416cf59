"""gate(): what the edition (and, where asked, the user's profile) allows."""

from __future__ import annotations

from apps.accounts.license import gate
from apps.accounts.models import ProfileKind
from tests.conftest import make_user


def test_community_allows_time_trigger(db):
    assert gate("trigger.time").allowed


def test_community_refuses_dataset_change_naming_the_team_edition(db):
    decision = gate("trigger.dataset_change")
    assert not decision.allowed
    assert "Needs the Team edition" in decision.reason
    assert "Community" in decision.reason


def test_team_allows_dataset_change(install_license):
    install_license("team")
    assert gate("trigger.dataset_change").allowed


def test_team_refuses_custom_python_naming_the_enterprise_edition(install_license):
    install_license("team")
    coder = make_user("carol", profile=ProfileKind.CODER)
    decision = gate("trigger.custom_python", profile=ProfileKind.CODER, user=coder)
    assert not decision.allowed
    assert "Needs the Enterprise edition" in decision.reason


def test_enterprise_allows_custom_python_only_for_coders(install_license):
    install_license("enterprise")
    coder = make_user("carol", profile=ProfileKind.CODER)
    designer = make_user("dave", profile=ProfileKind.DESIGNER)
    reader = make_user("rita", profile=ProfileKind.READER)

    assert gate("trigger.custom_python", profile=ProfileKind.CODER, user=coder).allowed
    for user in (designer, reader):
        decision = gate("trigger.custom_python", profile=ProfileKind.CODER, user=user)
        assert not decision.allowed
        assert "coder profile" in decision.reason


def test_feature_granted_by_name_in_the_license(install_license):
    install_license("team", features=["beta.reports"])
    assert gate("beta.reports").allowed
    assert not gate("beta.other").allowed
    assert "'beta.other'" in gate("beta.other").reason
