"""What every open registry (models, optimizers) asks of a name registered at run time."""

import re

from tf_assign2.errors import UsageError

NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def check_new_name(call, what, name, registry, built_in, replace):
    """Refuse a name that is no short lowercase word (it becomes a flag value and part of folder names),
    a built-in one, or one already registered unless ``replace`` says to replace your own."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UsageError(f"{call} {name!r}: expected a short lowercase name (letters, digits, _)")
    if name in built_in or (name in registry and not replace):
        hint = "it is built in" if name in built_in else "pass replace=True to replace your own registration"
        raise UsageError(f"{call} {name!r}: {what} of that name is already registered ({hint})")
