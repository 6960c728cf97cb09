"""Text from run folders and sweep files, made safe for Markdown: what a user named goes into
results.md and REPORT.md as text, never as table structure, HTML or emphasis.

A ``|`` in a run's name split its table row; ``<script>`` in a sweep's description reached the page as
HTML. ``text`` escapes what Markdown would read (on one line); ``code`` makes a code span that holds
any text; ``table`` escapes every cell.
"""

import re

_SPECIAL = re.compile(r"([\\`*\[\]|])")  # underscores stay: GFM reads none inside a word


def text(value):
    """``value`` as literal text on one line: Markdown's characters escaped, HTML's as entities."""
    plain = " ".join(str(value).split())
    plain = plain.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", plain)


def code(value):
    """``value`` as a code span (a path, a command), whatever backticks or pipes it holds."""
    plain = " ".join(str(value).split())
    fence = "`" * (max((len(run) for run in re.findall("`+", plain)), default=0) + 1)
    pad = " " if plain.startswith("`") or plain.endswith("`") else ""
    return f"{fence}{pad}{plain.replace('|', chr(92) + '|')}{pad}{fence}"


def table(header, rows, escape=True):
    """Markdown table lines; every cell escaped unless ``escape`` is False (cells already made safe)."""
    cell = text if escape else str
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
