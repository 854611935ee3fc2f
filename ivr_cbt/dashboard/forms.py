"""The dashboard's forms (WTForms via Flask-WTF: every one carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import EmailField, PasswordField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from ivr_cbt.dashboard.accounts import PASSWORD_MAX, PASSWORD_MIN
from ivr_cbt.dashboard.alert_queue import NOTE_MAX
from ivr_cbt.models import UserRole

ROLES = [SelectChoice(r.value, r.value) for r in UserRole]


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=PASSWORD_MAX)])


class ButtonForm(FlaskForm):
    """A form that is only a button (log out, deactivate): the CSRF token is the whole point."""


class AcknowledgeForm(FlaskForm):
    note = TextAreaField("Note", validators=[DataRequired(), Length(max=NOTE_MAX)])


class NewUserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    role = SelectField("Role", choices=ROLES)
    password = PasswordField(
        "Initial password", validators=[DataRequired(), Length(min=PASSWORD_MIN, max=PASSWORD_MAX)]
    )


class PasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(min=PASSWORD_MIN, max=PASSWORD_MAX)])


class AssignForm(FlaskForm):
    therapist = SelectField("Therapist", coerce=str, validators=[Optional()])


# The feedback queue. The review services check the values themselves (and say why in plain words),
# so these forms carry the CSRF token and the fields, nothing more.


class SegmentsForm(FlaskForm):
    segments = TextAreaField("Segments (JSON)")


class TextForm(FlaskForm):
    text = TextAreaField("Your message")


class RecordingForm(FlaskForm):
    audio = FileField("Recording (WAV or MP3)")
