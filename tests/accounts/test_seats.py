"""Seats: a license caps how many active users hold each profile, in the service and the admin."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from apps.accounts.models import Profile, ProfileKind
from apps.accounts.services import profile_assign
from tests.conftest import make_user

SEAT_ERROR = "All 1 coder seats of the license are taken."


@pytest.fixture
def one_coder_seat(install_license):
    install_license("team", seats={"coder": 1})


def test_first_user_gets_the_seat_and_the_second_is_refused(one_coder_seat):
    ann, ben = make_user("ann"), make_user("ben")

    assert profile_assign(user=ann, kind=ProfileKind.CODER).kind == ProfileKind.CODER
    with pytest.raises(ValidationError) as refused:
        profile_assign(user=ben, kind=ProfileKind.CODER)

    assert refused.value.message_dict == {"kind": [SEAT_ERROR]}
    assert Profile.objects.get(user=ben).kind == ProfileKind.DESIGNER


def test_the_holder_may_be_given_the_same_profile_again(one_coder_seat):
    ann = make_user("ann")
    profile_assign(user=ann, kind=ProfileKind.CODER)
    assert profile_assign(user=ann, kind=ProfileKind.CODER).kind == ProfileKind.CODER
    assert Profile.objects.filter(kind=ProfileKind.CODER).count() == 1


def test_a_seat_given_up_can_be_taken(one_coder_seat):
    ann, ben = make_user("ann"), make_user("ben")
    profile_assign(user=ann, kind=ProfileKind.CODER)
    profile_assign(user=ann, kind=ProfileKind.DESIGNER)
    assert profile_assign(user=ben, kind=ProfileKind.CODER).kind == ProfileKind.CODER


def test_inactive_users_hold_no_seat(one_coder_seat):
    ann, ben = make_user("ann"), make_user("ben")
    profile_assign(user=ann, kind=ProfileKind.CODER)
    ann.is_active = False
    ann.save(update_fields=["is_active"])
    assert profile_assign(user=ben, kind=ProfileKind.CODER).kind == ProfileKind.CODER


def test_profiles_without_a_limit_are_unlimited(one_coder_seat):
    for name in ("ann", "ben", "cid"):
        assert profile_assign(user=make_user(name), kind=ProfileKind.READER).kind == "reader"


# --- The user admin (CadenzaUserAdmin with ProfileInline) --------------------------------------


class _BrowserForm(HTMLParser):
    """What a browser would submit from the form with ``form_id``, left as rendered."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id, self.inside = form_id, False
        self.data: dict[str, list[str]] = {}
        self._select: str | None = None
        self._select_options: list[str] = []
        self._select_chosen = False
        self._select_multiple = False
        self._textarea: str | None = None
        self._text: list[str] = []

    def _add(self, name: str, value: str) -> None:
        self.data.setdefault(name, []).append(value)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == self.form_id
        if not self.inside or "disabled" in attrs:
            return
        name = attrs.get("name")
        if tag == "input" and name:
            kind = attrs.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in attrs:
                    self._add(name, attrs.get("value") or "on")
            elif kind not in ("submit", "button", "image", "reset", "file"):
                self._add(name, attrs.get("value") or "")
        elif tag == "select" and name:
            self._select, self._select_options = name, []
            self._select_chosen, self._select_multiple = False, "multiple" in attrs
        elif tag == "option" and self._select:
            self._select_options.append(attrs.get("value", ""))
            if "selected" in attrs:
                self._add(self._select, attrs.get("value", ""))
                self._select_chosen = True
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select:
            # A single select with nothing marked selected submits its first option.
            if not (self._select_chosen or self._select_multiple) and self._select_options:
                self._add(self._select, self._select_options[0])
            self._select = None
        elif tag == "textarea" and self._textarea:
            self._add(self._textarea, "".join(self._text).removeprefix("\n"))
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self._text.append(data)


def form_data(response, form_id: str) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code
    parser = _BrowserForm(form_id)
    parser.feed(response.content.decode())
    assert parser.data, f"no form #{form_id} on the page"
    return parser.data


def change_profile_in_admin(client, user, kind: str):
    url = f"/admin/auth/user/{user.pk}/change/"
    data = form_data(client.get(url), "user_form")
    assert data["cadenza_profile-0-kind"] == [Profile.objects.get(user=user).kind]
    data["cadenza_profile-0-kind"] = [kind]
    return client.post(url, data)


def inline_errors(response) -> list[str]:
    return [
        str(error)
        for inline in response.context["inline_admin_formsets"]
        for form_errors in inline.formset.errors
        for errors in form_errors.values()
        for error in errors
    ]


def test_admin_saves_a_profile_while_seats_remain(client, cast, one_coder_seat):
    client.force_login(cast["superuser"])
    response = change_profile_in_admin(client, cast["editor"], ProfileKind.CODER)
    assert response.status_code == 302, inline_errors(response)
    assert Profile.objects.get(user=cast["editor"]).kind == ProfileKind.CODER
    entry = LogEntry.objects.get(object_id=str(cast["editor"].pk))
    assert "profile" in entry.get_change_message().lower()


def test_admin_user_form_shows_the_seat_error_instead_of_saving(client, cast, one_coder_seat):
    profile_assign(user=cast["owner"], kind=ProfileKind.CODER)
    client.force_login(cast["superuser"])

    response = change_profile_in_admin(client, cast["editor"], ProfileKind.CODER)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {}
    assert inline_errors(response) == [SEAT_ERROR]
    assert SEAT_ERROR in response.content.decode()
    assert Profile.objects.get(user=cast["editor"]).kind == ProfileKind.DESIGNER


def test_admin_lets_the_holder_keep_the_seat_while_editing_other_fields(
    client, cast, one_coder_seat
):
    profile_assign(user=cast["owner"], kind=ProfileKind.CODER)
    client.force_login(cast["superuser"])
    url = f"/admin/auth/user/{cast['owner'].pk}/change/"
    data = form_data(client.get(url), "user_form")
    data["first_name"] = ["Alice"]

    response = client.post(url, data)

    assert response.status_code == 302
    cast["owner"].refresh_from_db()
    assert cast["owner"].first_name == "Alice"
    assert Profile.objects.get(user=cast["owner"]).kind == ProfileKind.CODER


def add_user_in_admin(client, username: str, kind: str):
    data = form_data(client.get("/admin/auth/user/add/"), "user_form")
    data.update(
        username=[username],
        password1=["a long enough pass phrase"],
        password2=["a long enough pass phrase"],
        **{"cadenza_profile-0-kind": [kind]},
    )
    return client.post("/admin/auth/user/add/", data)


def test_admin_adds_a_user_with_a_profile_while_seats_remain(client, cast, one_coder_seat):
    client.force_login(cast["superuser"])
    response = add_user_in_admin(client, "dora", ProfileKind.CODER)
    assert response.status_code == 302, inline_errors(response)
    assert Profile.objects.get(user__username="dora").kind == ProfileKind.CODER


def test_admin_add_user_form_refuses_a_profile_without_a_seat(client, cast, one_coder_seat):
    profile_assign(user=cast["owner"], kind=ProfileKind.CODER)
    client.force_login(cast["superuser"])

    response = add_user_in_admin(client, "dora", ProfileKind.CODER)

    assert response.status_code == 200
    assert inline_errors(response) == [SEAT_ERROR]
    assert not get_user_model().objects.filter(username="dora").exists()
