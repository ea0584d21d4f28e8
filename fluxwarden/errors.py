"""The error every entry point turns into one line and exit code 2: a value the user gave cannot be used.

It lives outside ``fluxwarden.cli`` so that lower layers (``kubeclient``) can raise it without importing
the CLI, and imports nothing, so the console script can catch it before any command is loaded.
"""


class UsageError(Exception):
    """A flag, environment variable or file named by one has a value fluxwarden cannot use."""
