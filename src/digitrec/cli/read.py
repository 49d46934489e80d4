"""`digitrec read`: not built yet (see the open issues)."""

import click

from digitrec.errors import DigitrecError


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def read(args):
    """Not available yet in this version."""
    raise DigitrecError("'digitrec read' is not available yet in this version")
