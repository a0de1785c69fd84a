"""Locked, atomic file writes: every file cmat rewrites goes through here.

A writer takes an exclusive `flock` on a lock file in cmat's state folder, re-reads the current
content, writes the new content to a temporary file in the same directory, fsyncs it and
renames it over the original. Readers never see a half-written file and concurrent writers
never lose each other's updates.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cmat import paths
from cmat.errors import LockTimeout

DEFAULT_LOCK_TIMEOUT = 30.0


def lock_file(path: Path) -> Path:
    """The lock of `path`: a file in cmat's state folder, never beside the file itself (a task
    queue, Claude Code's settings, a project's config: folders that belong to others)."""
    import hashlib  # deferred, like tempfile below: what a hook that writes nothing skips

    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:20]
    return paths.state_home() / "locks" / f"{path.name}-{digest}.lock"


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive lock on `path` (by way of its lock file) for the `with` block."""
    lock_path = lock_file(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask
    try:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"{path} is locked by another process", "try again once it has finished"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def new_file_mode(executable: bool = False) -> int:
    """The mode a file created now gets: read-write (and executable) as the umask allows."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if executable else 0o666) & ~umask


def atomic_write_bytes(path: Path, data: bytes, executable: bool = False,
                       unless_changed_from: bytes | None | bool = False) -> bool:
    """Replace `path` with `data` so that readers see either the old or the new file, whole.

    An existing file keeps its mode; a new one gets what the umask allows (a config holding
    a webhook secret is as private as the user's umask makes it). A symbolic link is written
    through: its target changes, the link stays.

    With `unless_changed_from` (the bytes the change was computed from, None for no file),
    the file is read once more just before the rename, after the slow part (the fsync), and
    nothing is written if another writer that takes no lock changed it meanwhile: returns
    False then, True when written.
    """
    keep = None if unless_changed_from is False else \
        (lambda target: _current(target) == unless_changed_from)
    with atomic_output(path, executable, keep) as (handle, written):
        handle.write(data)
    return written[0]


@contextlib.contextmanager
def atomic_output(path: Path, executable: bool = False,
                  keep: Callable[[Path], bool] | None = None):
    """Write a file that replaces `path` whole when the block ends, as atomic_write_bytes
    does, from a binary handle: for output too large to hold in memory. Yields (handle,
    written): written[0] says, after the block, whether the file was replaced (`keep`, given
    the path, may refuse it at the last moment); an error in the block leaves `path` as it
    was."""
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = new_file_mode(executable)
    fd, tmp = _new_temporary(path)
    written = [False]
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle, written
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if keep is not None and not keep(path):
            os.unlink(tmp)
            return
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)
    written[0] = True


def _new_temporary(path: Path) -> tuple[int, str]:
    """A new file beside `path` (a hidden name of its own), open for writing, mode 0600: as
    tempfile.mkstemp makes it, without that module's import (5 ms, paid by every hook that
    writes a task queue and by every first run, which writes the catalog's cache)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = os.path.join(path.parent, f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:  # 48 random bits taken already: draw again
            continue
    raise FileExistsError(f"no free name for a temporary file beside {path}")


@contextlib.contextmanager
def user_output(path: Path):
    """A file the user named for cmat to write (`ledger export --output`, `report --html`),
    as atomic_output writes it: a regular file is replaced whole, a new file is made. Anything
    else is refused before a byte is written: a device, a FIFO or a socket (as root, a rename
    over /dev/null would replace the device with a file), or a folder."""
    import stat

    from cmat.errors import UsageError

    try:
        mode = os.stat(path).st_mode  # through a link: what would be replaced is its target
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    if mode is not None and not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise UsageError(f"{path} is {kind}", "name a file to write (new or existing)")
    with atomic_output(path) as (handle, written):
        yield handle, written


def _current(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse, which only costs durability.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
