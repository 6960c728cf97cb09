"""The one exception type of ours.

Raise ``UsageError`` with a sentence a user can act on (name the file or flag and
what was expected). The CLI layer turns it into one stderr line and exit code 2.
"""


class UsageError(Exception):
    """Bad input from the user: a flag, a config file, a data folder or file."""
