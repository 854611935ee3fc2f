"""Accounts and assignments: the command line and the admin pages."""

from __future__ import annotations

import pytest

from ivr_cbt.models import LoginSession, Patient, User

from ..helpers import audit_actions, rows
from .conftest import CHEAP_HASHER, PASSWORD, assignments, login, post_form

ADD_PATIENT = ["patients", "add", "--name", "Dana Example", "--phone", "+12025550142", "--pin", "2580"]
ADD_PATIENT += ["--timezone", "America/Denver"]


def test_users_add_reads_the_password_from_standard_input(app, runner):
    result = runner.invoke(
        args=["users", "add", "--email", "New.Person@Clinic.example", "--role", "therapist", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    user_id = int(result.output.strip().splitlines()[-1])
    (user,) = rows(app, User, User.id == user_id)
    assert (user.email, user.role, user.active) == ("new.person@clinic.example", "therapist", True)
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    assert login(app.test_client(), "new.person@clinic.example").status_code == 302
    assert "user_created" in audit_actions(app)


def test_users_add_prompts_twice_for_the_password(app, runner):
    result = runner.invoke(
        args=["users", "add", "--email", "ad@clinic.example", "--role", "admin"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output and PASSWORD not in result.output
    assert [u.role for u in rows(app, User)] == ["admin"]


@pytest.mark.parametrize(
    "args, password, message",
    [
        (["--email", "x@clinic.example", "--role", "therapist"], "short", "password must be 12 to 256 characters"),
        (["--email", "not-an-email", "--role", "therapist"], PASSWORD, "email must look like name@example.org"),
        (["--email", "tara@clinic.example", "--role", "therapist"], PASSWORD, "already exists"),
        (["--email", "x@clinic.example", "--role", "owner"], PASSWORD, "Invalid value for '--role'"),
    ],
)
def test_users_add_refuses_bad_values(app, runner, therapist, args, password, message):
    result = runner.invoke(args=["users", "add", *args, "--password-stdin"], input=password + "\n")
    assert result.exit_code != 0 and message in result.output
    assert len(rows(app, User)) == 1


def test_users_list_shows_accounts_without_secrets(runner, therapist, admin):
    result = runner.invoke(args=["users", "list"])
    assert result.output.splitlines() == [
        f"{therapist.id}\ttara@clinic.example\ttherapist\tactive",
        f"{admin.id}\tada@clinic.example\tadmin\tactive",
    ]


def test_the_argon2_parameters_are_the_library_defaults_in_production(make_app):
    app = make_app()
    hasher = app.extensions["dashboard"].hasher
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (3, 65536, 4)
    assert hasher.hash("x").startswith("$argon2id$")


def test_patients_add_assigns_the_therapist(app, runner, therapist):
    result = runner.invoke(args=[*ADD_PATIENT, "--therapist", "Tara@clinic.example"])
    assert result.exit_code == 0, result.output
    patient_id = int(result.output.strip().splitlines()[-1])
    assert assignments(app) == [(patient_id, therapist.id)]
    assert audit_actions(app, patient_id) == ["patient_enrolled", "patient_assigned"]


@pytest.mark.parametrize("email", ["nobody@clinic.example", "ada@clinic.example"])
def test_patients_add_refuses_an_unknown_therapist_and_enrols_nobody(app, runner, admin, email):
    result = runner.invoke(args=[*ADD_PATIENT, "--therapist", email])
    assert result.exit_code == 1 and "no active therapist account" in result.output
    assert rows(app, Patient) == []


# --- admin pages ---------------------------------------------------------------------------------


def test_an_admin_adds_an_account(app, admin_client):
    data = {"email": "nina@clinic.example", "role": "therapist", "password": PASSWORD}
    assert post_form(admin_client, "/admin/users", data, page="/admin/users").status_code == 303
    assert "Added nina@clinic.example (therapist)." in admin_client.get("/admin/users").get_data(as_text=True)
    assert login(app.test_client(), "nina@clinic.example").status_code == 302


def test_an_admin_deactivates_an_account_and_signs_it_out_everywhere(app, admin_client, signed_in, therapist):
    assert signed_in.get("/").status_code == 200
    response = post_form(admin_client, f"/admin/users/{therapist.id}/active", {"active": "0"}, page="/admin/users")
    assert response.status_code == 303
    assert signed_in.get("/").status_code == 302
    assert login(app.test_client(), therapist.email).status_code == 401
    assert {s.end_reason for s in rows(app, LoginSession, LoginSession.user_id == therapist.id)} == {"deactivated"}
    post_form(admin_client, f"/admin/users/{therapist.id}/active", {"active": "1"}, page="/admin/users")
    assert login(app.test_client(), therapist.email).status_code == 302


def test_an_admin_cannot_deactivate_themself(app, admin_client, admin):
    post_form(admin_client, f"/admin/users/{admin.id}/active", {"active": "0"}, page="/admin/users")
    assert rows(app, User, User.id == admin.id)[0].active is True
    assert admin_client.get("/admin/users").status_code == 200


def test_an_admin_sets_a_new_password(app, admin_client, signed_in, therapist):
    new = "a brand new passphrase"
    post_form(admin_client, f"/admin/users/{therapist.id}/password", {"password": new}, page="/admin/users")
    assert signed_in.get("/").status_code == 302  # signed out everywhere
    assert login(app.test_client(), therapist.email).status_code == 401
    assert login(app.test_client(), therapist.email, new).status_code == 302
    too_short = post_form(admin_client, f"/admin/users/{therapist.id}/password", {"password": "x"}, page="/admin/users")
    assert too_short.status_code == 303 and login(app.test_client(), therapist.email, new).status_code == 302


def test_an_admin_assigns_and_unassigns_patients(app, admin_client, therapist, sign_in, add_patient, call):
    patient = add_patient(name="Una Assigned")
    call(patient, "1234,5,7,4200#,3,1,2")
    page = admin_client.get("/admin/assignments").get_data(as_text=True)
    assert 'class="unassigned" data-patient-id' in page and "Una Assigned" in page
    post_form(admin_client, f"/admin/assignments/{patient}", {"therapist": str(therapist.id)}, page="/admin/users")
    client = sign_in(therapist)
    assert client.get(f"/patients/{patient}").status_code == 200
    post_form(admin_client, f"/admin/assignments/{patient}", {"therapist": ""}, page="/admin/users")
    assert client.get(f"/patients/{patient}").status_code == 404
    assert assignments(app) == []


def test_patients_cannot_be_assigned_to_an_admin_or_a_missing_patient(app, admin_client, admin, add_patient):
    patient = add_patient()
    response = post_form(
        admin_client, f"/admin/assignments/{patient}", {"therapist": str(admin.id)}, page="/admin/users"
    )
    assert response.status_code == 400 and assignments(app) == []
    assert post_form(admin_client, "/admin/assignments/9999", {"therapist": ""}, page="/admin/users").status_code == 404


def test_a_rehash_happens_when_the_argon2_parameters_change(make_app, add_user):
    from argon2 import PasswordHasher

    account = add_user("re@clinic.example")
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    app = make_app(PASSWORD_HASHER=stronger)
    assert login(app.test_client(), account.email).status_code == 302
    (user,) = rows(app, User, User.id == account.id)
    assert "t=2" in user.password_hash and not stronger.check_needs_rehash(user.password_hash)
    assert CHEAP_HASHER.check_needs_rehash(user.password_hash)
