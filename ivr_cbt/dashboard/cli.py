"""`manage.py users ...`: dashboard accounts from the command line (thin wrappers around ``accounts``)."""

from __future__ import annotations

import sys

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from ivr_cbt import audit, db
from ivr_cbt.dashboard import accounts
from ivr_cbt.models import User, UserRole


@click.group("users")
def users_group():
    """Dashboard accounts (therapists and admins)."""


@users_group.command("add")
@click.option("--email", required=True, help="Sign-in email (stored lower-case).")
@click.option("--role", type=click.Choice([r.value for r in UserRole]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@with_appcontext
def users_add_command(email, role, password_stdin):
    """Add an account; the password is prompted for (twice) unless given on standard input."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with db.session_scope(current_app) as session:
        try:
            user = accounts.create_user(
                session,
                email=email,
                role=role,
                password=password,
                hasher=current_app.extensions["dashboard"].hasher,
                now=current_app.extensions["clock"].now(),
                actor=audit.cli_actor(),
            )
        except accounts.InvalidAccount as exc:
            raise click.ClickException(f"account not added: {exc}") from None
        user_id = user.id
    click.echo(f"Added {accounts.normalise_email(email)} ({role}).")
    click.echo(user_id)


@users_group.command("list")
@with_appcontext
def users_list_command():
    """List accounts: id, email, role, status."""
    with db.session_scope(current_app) as session:
        for user in session.scalars(sa.select(User).order_by(User.id)):
            click.echo(f"{user.id}\t{user.email}\t{user.role.value}\t{'active' if user.active else 'deactivated'}")
