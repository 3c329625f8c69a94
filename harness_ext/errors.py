"""The one exception family for unusable input. The CLI prints ``str(err)`` (one line) and exits 2."""


class Fm5Error(ValueError):
    """Unusable input or configuration; the message is one line naming what is wrong and where."""


class UsageError(Fm5Error):
    """Bad arguments or configuration."""
