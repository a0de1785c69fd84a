"""The JSON Claude Code sends a hook or the status line on stdin, and the project it is about.

Standard library only: the status line reads it every few seconds and must start fast.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from cmat import paths

MAX_STDIN_BYTES = 1024 * 1024


class PayloadError(Exception):
    """Stdin holds no usable payload."""


def read_payload(stream) -> dict:
    if stream is None or stream.isatty():
        raise PayloadError("no JSON on stdin (Claude Code sends it)")
    raw = stream.buffer.read(MAX_STDIN_BYTES + 1) if hasattr(stream, "buffer") else stream.read()
    if isinstance(raw, str):
        raw = raw.encode()
    if len(raw) > MAX_STDIN_BYTES:
        raise PayloadError("stdin is larger than 1 MiB: not a hook payload")
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise PayloadError(f"stdin is not JSON ({exc}): {raw[:80]!r}") from None
    if not isinstance(payload, dict):
        raise PayloadError("stdin JSON is not an object")
    return payload


def payload_project(payload: dict) -> Path:
    """$CLAUDE_PROJECT_DIR (set by Claude Code), else the project around the payload's cwd."""
    cwd = payload.get("cwd")
    if not os.environ.get("CLAUDE_PROJECT_DIR") and isinstance(cwd, str) and os.path.isdir(cwd):
        with contextlib.chdir(cwd):
            return paths.project_dir()
    return paths.project_dir()
