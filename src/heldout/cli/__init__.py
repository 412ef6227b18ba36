"""The ``heldout`` command line. The only part of heldout that prints."""

from heldout.cli._app import app, main

__all__ = ["app", "main"]
