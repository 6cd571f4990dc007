"""The one error a guard pack raises."""


class PackError(ValueError):
    """A guard pack directory is missing a part, has a malformed file, or belongs to another
    model or SAE; the message is one line saying what to fix."""
