"""Text that came from outside (an enhancement name, a task id, a model id, a path) shown
where one line is one record (the hook log, an email subject, an environment variable), or
in a CSV cell a spreadsheet opens.

A CR or LF there would forge a second log line or a second mail header; a NUL cannot be
passed in an environment variable at all; a cell that starts like a formula is run as one.
Standard library only: the hook log uses it.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls and Unicode's own line and paragraph separators.
_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """`text` with every control character shown as an escape (`\\r`, `\\n`, `\\x00`): what it
    said stays readable, and it can no longer start a line of its own."""
    return _BREAKING.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


# What starts a formula in a spreadsheet (OWASP's list for CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell):
    """A CSV cell a spreadsheet shows as text: one starting like a formula (a project path, a
    task or enhancement name anybody could choose) gets a leading apostrophe, as OWASP advises
    for CSV injection. Numbers are left as they are (a negative number is no formula)."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell
