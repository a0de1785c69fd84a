"""Colour in terminal output: whether to use it, and how to apply it.

The order of precedence is the common one: `--color always|never` first; then NO_COLOR (any
non-empty value turns colour off, https://no-color.org); then FORCE_COLOR (any value but "0"
turns it on, even into a pipe); else colour only on a terminal that is not "dumb".
"""

from __future__ import annotations

import os

STYLES = {"bold": "1", "dim": "2", "green": "32", "cyan": "36", "yellow": "33", "red": "31",
          "bold red": "1;31"}
LEVEL_STYLES = {"ok": "green", "info": "cyan", "warning": "yellow", "critical": "red",
                "exhausted": "bold red"}  # budget alert levels
ESCAPE = "\033["
ESCAPE_BODY = frozenset("0123456789;")  # what may stand between ESCAPE and its closing "m"


def wanted(mode: str, stream) -> bool:
    """Whether output to `stream` gets colour under `mode` (auto, always, never)."""
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR")
    if force is not None and force != "0":
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def paint(text: str, style: str | None, enabled: bool = True) -> str:
    """`text` in `style` (a STYLES name, or an alert level), or as it is."""
    style = LEVEL_STYLES.get(style, style) if style else None
    if not enabled or not style or not text:
        return text
    return f"\033[{STYLES[style]}m{text}\033[0m"


def visible_length(text: str) -> int:
    """Length as the terminal shows it: colour codes take no room. (Without `re`: the status
    line measures its parts on every refresh, and importing `re` costs more than the rest.)"""
    length, at = len(text), text.find(ESCAPE)
    while at >= 0:
        end = at + len(ESCAPE)
        while end < len(text) and text[end] in ESCAPE_BODY:
            end += 1
        if end < len(text) and text[end] == "m":
            length -= end + 1 - at
            at = text.find(ESCAPE, end + 1)
        else:
            at = text.find(ESCAPE, at + 1)
    return length


def level(threshold: int) -> str:
    """The alert level of a threshold (percent of a limit)."""
    return "info" if threshold < 80 else "warning" if threshold < 95 else "critical"


def percent_level(percent: float, thresholds) -> str:
    """The alert level a share of a limit has reached: ok below every threshold."""
    if percent >= 100:
        return "exhausted"
    reached = [t for t in thresholds if percent >= t]
    return level(max(reached)) if reached else "ok"
