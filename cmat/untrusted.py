"""One way to read a file cmat did not write itself: a transcript, a task queue, a project's
`.claude/cmat.toml` or `.claude/data/models.json`, the current-task marker, Claude Code's
settings, a spool file, a subagent's `.meta.json`.

Such a file may be a FIFO (opening it waits for a writer: a hook would hang), a device
(`/dev/zero` never ends), a `/proc` file, a symbolic link another user planted, or simply huge.
So every one is opened here, the same way (docs/security.md):

- `O_NONBLOCK`, so that opening a FIFO cannot wait; then `fstat` on the open descriptor (not
  the path, which may change in between): only a regular file is read;
- a symbolic link is followed only when it belongs to the user (or root): another local
  user's link into a shared folder is refused;
- at most `limit` bytes are read (`open_untrusted` streams, for transcripts of any size).

A file that is absent gives None; one refused raises `Unreadable`, which callers treat as
absent *and say so* (the hook log, a note on stderr): never as a reason to skip a check.
Standard library only, and not even pathlib: the hooks and the status line read through here.
"""

from __future__ import annotations

import errno
import os
import stat

from cmat.errors import CmatError

TYPE_CHECKING = False  # typing and pathlib cost a hook 12 ms: paths are opened as `os` takes them
if TYPE_CHECKING:
    from pathlib import Path

SMALL_FILE_LIMIT = 4 * 1024 * 1024  # a queue, a config, a marker, settings: far below this


class Unreadable(CmatError):
    """A file cmat did not write that is not safe or not possible to read (a FIFO, a device,
    another user's link, too large, no permission)."""

    exit_code = 6


KERNEL_FOLDERS = ("/proc/", "/sys/")  # regular files in name only: endless or live


def _open_flags(path: Path) -> int:
    """The flags to open `path` with: O_NOFOLLOW unless it is a link the user may follow (a
    link swapped in after this look is then refused by the kernel, not followed)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return flags | os.O_NOFOLLOW
    except OSError as exc:
        raise Unreadable(f"{path}: {exc.strerror}") from None
    if not stat.S_ISLNK(st.st_mode):
        return flags | os.O_NOFOLLOW
    if st.st_uid not in (os.getuid(), 0):
        raise Unreadable(f"{path} is a symbolic link owned by another user (uid {st.st_uid})",
                         "cmat follows only your own links")
    if os.path.realpath(path).startswith(KERNEL_FOLDERS):
        raise Unreadable(f"{path} leads into {os.path.realpath(path)}, not a file")
    return flags


def open_untrusted(path: Path | str):
    """A binary handle on `path` if it is a regular file; None if it does not exist."""
    if os.path.abspath(path).startswith(KERNEL_FOLDERS):
        raise Unreadable(f"{path} is a kernel file, not a file cmat reads")
    try:
        fd = os.open(path, _open_flags(path))
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise Unreadable(f"{path} is a directory, not a file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Unreadable(f"{path} became a symbolic link while it was opened") from None
        raise Unreadable(f"cannot read {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise Unreadable(f"{path} is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise Unreadable(f"{path} is not a regular file ({_kind(mode)})")
        os.set_blocking(fd, True)  # a regular file: reads never wait anyway
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_untrusted(path: Path | str, limit: int = SMALL_FILE_LIMIT,
                   offset: int = 0) -> bytes | None:
    """The whole content of a small file cmat did not write (from byte `offset` on); None
    if it does not exist. Raises Unreadable for anything else than a regular file with at
    most `limit` bytes to read."""
    handle = open_untrusted(path)
    if handle is None:
        return None
    with handle:
        handle.seek(offset)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise Unreadable(f"{path} is larger than {limit:,} bytes", "is it the right file?")
    return data


def read_untrusted_text(path: Path | str, limit: int = SMALL_FILE_LIMIT) -> str | None:
    """As read_untrusted, decoded as UTF-8 (invalid bytes refused, not guessed at)."""
    data = read_untrusted(path, limit)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"{path} is not UTF-8 text (byte {exc.start})") from None


def read_untrusted_json(path: Path | str, limit: int = SMALL_FILE_LIMIT):
    """As read_untrusted_text, parsed as JSON (None if the file does not exist, or holds
    nothing but white space). Text that is not JSON, or is nested deeper than the parser
    goes (a crafted file would otherwise end the command with a RecursionError), raises
    Unreadable."""
    import json

    text = read_untrusted_text(path, limit)
    if text is None or not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise Unreadable(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise Unreadable(f"{path} is nested too deeply to be JSON cmat reads") from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"
