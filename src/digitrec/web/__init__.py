"""The HTTP API and the drawing page: `create_app(recognizer)` wires routes around a loaded Recognizer."""

from digitrec.web.app import create_app

__all__ = ["create_app"]
