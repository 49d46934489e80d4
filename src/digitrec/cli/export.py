"""`digitrec export`: not built yet (see the open issues)."""

import click

from digitrec.errors import DigitrecError


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def export(args):
    """Not available yet in this version."""
    raise DigitrecError("'digitrec export' is not available yet in this version")
