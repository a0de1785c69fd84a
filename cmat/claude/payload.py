"""The JSON Claude Code sends a hook or the status line on stdin, and the project it is about.

Standard library only: the status line reads it every few seconds and must start fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from cmat import paths
from cmat.claude.events import DRAIN_CHUNK_BYTES, MAX_STDIN_BYTES
from cmat.errors import NotFound


class PayloadError(Exception):
    """Stdin holds no usable payload."""


def read_payload(stream) -> dict:
    """The hook's JSON object. One larger than MAX_STDIN_BYTES (a PreToolUse call writing a
    big file, say) is never held whole: its leading top-level fields, where Claude Code puts
    `session_id`, `transcript_path` and `cwd`, are read from its first MiB, the rest is read
    past, and the payload is marked `_truncated`, so that a budget can still be checked."""
    if stream is None or stream.isatty():
        raise PayloadError("no JSON on stdin (Claude Code sends it)")
    raw = stream.buffer.read(MAX_STDIN_BYTES + 1) if hasattr(stream, "buffer") else stream.read()
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_STDIN_BYTES:
        if hasattr(stream, "buffer"):
            while stream.buffer.read(DRAIN_CHUNK_BYTES):
                pass  # Claude Code's write must not block on a full pipe
        payload = leading_fields(raw[:MAX_STDIN_BYTES])
        payload["_truncated"] = True
    else:
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise PayloadError(f"stdin is not JSON ({exc}): {raw[:80]!r}") from None
        except RecursionError:  # a tool_input nested deeper than a parser goes: read around it
            payload = leading_fields(raw)
            payload["_truncated"] = True
        if not isinstance(payload, dict):
            raise PayloadError("stdin JSON is not an object")
    for key, value in payload.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise PayloadError(f"{key} is not valid text (a lone surrogate)") from None
    return payload


def leading_fields(prefix: bytes, inner: bool = True) -> dict:
    """The top-level fields of a JSON object that are complete within `prefix`, up to the
    first that is not (each value is decoded by the standard library's C scanner). A value
    nested too deeply to decode is stepped over without recursion, and left out: the fields
    a check needs (session, transcript, agent) are flat. An object cut off at the end keeps
    its own leading fields (one level down: a large Write's `tool_input.file_path`)."""
    text = prefix.decode("utf-8", "ignore")
    decoder = json.JSONDecoder()
    found: dict = {}
    position = text.find("{")
    if position < 0:
        raise PayloadError("stdin is not a JSON object")
    position += 1
    while True:
        position = _skip_space(text, position)
        if position >= len(text) or text[position] != '"':
            return found
        try:
            key, position = json.decoder.scanstring(text, position + 1)
            position = _skip_space(text, position)
            if text[position:position + 1] != ":":
                return found
            start = _skip_space(text, position + 1)
            try:
                value, position = decoder.raw_decode(text, start)
            except RecursionError:
                value, position = _TOO_DEEP, _skip_nested(text, start)
            except ValueError:
                if inner and text.startswith("{", start):
                    found[key] = leading_fields(text[start:].encode(), inner=False)
                return found
        except (ValueError, IndexError):
            return found  # cut off here
        position = _skip_space(text, position)
        follows = text[position:position + 1]
        if follows not in (",", "}"):
            return found  # a number or a literal cut off at the end looks whole: it is not
        if value is not _TOO_DEEP:
            found[key] = value
        if follows == "}":
            return found
        position += 1


_TOO_DEEP = object()  # a value stepped over, not decoded
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _skip_nested(text: str, position: int) -> int:
    """Where the array or object starting at `position` ends, found by counting brackets
    outside strings (no recursion, however deep); raises ValueError if it never ends."""
    depth = 0
    for match in _STRUCTURE.finditer(text, position):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                return match.end()
    raise ValueError("unterminated value")


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def payload_project(payload: dict) -> Path:
    """$CLAUDE_PROJECT_DIR (set by Claude Code), else the project around the payload's cwd,
    else around the current directory; the home directory when even that was deleted (the
    session is then recorded without a task, never lost)."""
    cwd = payload.get("cwd")
    try:
        if not os.environ.get("CLAUDE_PROJECT_DIR") and isinstance(cwd, str) and os.path.isdir(cwd):
            with contextlib.chdir(cwd):
                return paths.project_dir()
        return paths.project_dir()
    except NotFound:  # the current directory no longer exists
        return paths.home()
