"""Errors meant for users: the CLI prints the message and exits non-zero, the web answers 4xx."""


class DigitrecError(Exception):
    """Something the user can act on; the message says what and how."""

    exit_code = 1


class DataError(DigitrecError):
    """MNIST could not be fetched, verified or parsed."""


class ImageError(DigitrecError):
    """An input image could not be read or holds no digit."""


class ModelError(DigitrecError):
    """A model file is missing, malformed or of the wrong shape."""
