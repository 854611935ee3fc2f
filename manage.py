#!/usr/bin/env python
"""ivr-cbt's command line. Run `python manage.py --help` for the commands."""

from flask.cli import FlaskGroup

from ivr_cbt import create_app
from ivr_cbt.cli import COMMANDS

cli = FlaskGroup(create_app=create_app, help="ivr-cbt: telephone CBT check-ins, feedback and simulation.")
for command in COMMANDS:
    cli.add_command(command)

if __name__ == "__main__":
    cli()
