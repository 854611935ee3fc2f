"""The ``ivr-cbt`` command (also ``python manage.py``): Flask's CLI over ``create_app`` with the project's commands."""

from flask.cli import FlaskGroup

from ivr_cbt import create_app
from ivr_cbt.cli import COMMANDS

cli = FlaskGroup(create_app=create_app, help="ivr-cbt: telephone CBT check-ins, feedback and simulation.")
for command in COMMANDS:
    cli.add_command(command)
