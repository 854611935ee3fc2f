#!/usr/bin/env python
"""ivr-cbt's command line (the same as the installed ``ivr-cbt`` command). Run `python manage.py --help`."""

from ivr_cbt.manage import cli

if __name__ == "__main__":
    cli()
