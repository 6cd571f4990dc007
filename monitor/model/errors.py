"""Errors raised while resolving or loading a model spec."""


class ModelSpecError(Exception):
    """A model spec that cannot be loaded. The message is one line that names what is
    missing and how to get it; the CLI prints it without a traceback."""
