"""A real PostgreSQL server for the team tests: `initdb` and `pg_ctl` on a folder of its own,
listening only on a Unix socket there, run as an unprivileged user (PostgreSQL refuses root).

    python -m tests.pg_server start DIR     prints the conninfo to use (CMAT_TEST_PG)
    python -m tests.pg_server stop DIR
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

DATABASE = "cmat_test"


def binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates + ([str(Path(found).parent)] if found else []):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "postgres").exists():
            return Path(folder)
    return None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def start(folder: Path) -> str:
    """Start a server in `folder` (created, handed to the postgres user when run as root);
    returns its conninfo."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    folder.mkdir(parents=True, exist_ok=True)
    data, socket_dir = folder / "data", folder / "socket"
    socket_dir.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(socket_dir, "postgres")
    run = dict(check=True, capture_output=True, text=True)
    subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                                    "--auth=trust", "-E", "UTF8", "--no-sync"]), **run)
    subprocess.run(_as_server_user([
        str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w",
        "-o", f"-k {socket_dir} -c listen_addresses='' -c fsync=off "
              "-c synchronous_commit=off -c max_wal_size=4GB -c shared_buffers=1GB", "start"]),
        **run)
    subprocess.run(_as_server_user([str(bin_dir / "createdb"), "-h", str(socket_dir), "-U",
                                    "postgres", DATABASE]), **run)
    return f"host={socket_dir} dbname={DATABASE} user=postgres"


def stop(folder: Path) -> None:
    bin_dir = binaries()
    if bin_dir is None or not (folder / "data").exists():
        return
    subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(folder / "data"),
                                    "-m", "fast", "-w", "stop"]), capture_output=True)


if __name__ == "__main__":
    action, where = sys.argv[1], Path(sys.argv[2])
    if action == "start":
        print(start(where))
    else:
        stop(where)
