"""Atomic writes: whole files, their modes kept, no temporary file left behind."""

from __future__ import annotations

import os

import pytest

from cmat import fileio
from cmat.fileio import atomic_output, atomic_write_bytes


def test_a_file_is_replaced_whole_and_keeps_its_mode(tmp_path):
    path = tmp_path / "queue.json"
    path.write_bytes(b"old")
    path.chmod(0o640)
    assert atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["queue.json"]


def test_a_new_file_gets_what_the_umask_allows(tmp_path):
    umask = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "new.json", b"{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o640


def test_an_error_while_writing_leaves_the_file_as_it_was_and_no_temporary(tmp_path):
    path = tmp_path / "queue.json"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(path) as (handle, _):
        handle.write(b"half")
        raise RuntimeError("stopped")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["queue.json"]


def test_a_temporary_name_already_taken_is_drawn_again(tmp_path, monkeypatch):
    path = tmp_path / "queue.json"
    draws = iter([b"\x01" * 6, b"\x01" * 6, b"\x02" * 6])
    monkeypatch.setattr(fileio.os, "urandom", lambda size: next(draws))
    first = fileio._new_temporary(path)
    second = fileio._new_temporary(path)  # the first name exists: not opened again
    for fd, _ in (first, second):
        os.close(fd)
    assert first[1] == str(tmp_path / f".queue.json.{'01' * 6}.tmp")
    assert second[1] == str(tmp_path / f".queue.json.{'02' * 6}.tmp")
    assert os.stat(first[1]).st_mode & 0o777 == 0o600


def test_a_link_where_the_temporary_would_go_is_never_followed(tmp_path, monkeypatch):
    target = tmp_path / "elsewhere"
    taken = tmp_path / f".queue.json.{'03' * 6}.tmp"
    taken.symlink_to(target)
    draws = iter([b"\x03" * 6, b"\x04" * 6])
    monkeypatch.setattr(fileio.os, "urandom", lambda size: next(draws))
    fd, name = fileio._new_temporary(tmp_path / "queue.json")
    os.close(fd)
    assert name.endswith(f"{'04' * 6}.tmp")
    assert not target.exists()
