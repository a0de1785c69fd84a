"""Fixtures every test file may use; shared helpers that are not fixtures are in helpers.py."""

import pytest
from hypothesis import settings

from cmat.claude import hook_environment
from tests.helpers import need, real_fixture
from tests.transcript_factory import TranscriptBuilder

# No deadline for any property test: a deadline is a timed assertion, which a loaded 2-core
# machine fails (a test of OpenCode databases took 562 ms against the default 200 ms).
settings.register_profile("cmat", deadline=None)
settings.load_profile("cmat")

_ISOLATED = ("HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME")
_CLEARED = ("CLAUDE_PROJECT_DIR", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "OPENCODE_DATA_DIR",
            "CMAT_MODELS",
            "CMAT_LEDGER",
            "CMAT_CURRENT_TASK_ID", "CMAT_OVERRIDE_LIMIT", "CMAT_DEBUG", "NO_COLOR",
            "CMAT_MACHINE", "CMAT_USER", "CMAT_TEAM_URL", "PGPASSWORD",
            "CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT")  # a test is in no Claude Code session


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty home and XDG folders: none can touch the real ones."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in _ISOLATED[1:]:
        monkeypatch.setenv(name, str(home / name.lower()))
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    # This machine's managed settings, if it has any, are not the test's.
    monkeypatch.setattr(hook_environment, "MANAGED_SETTINGS", str(home / "managed-settings.json"))
    return home


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder (with .claude/) that is also the current directory."""
    root = tmp_path / "project"
    (root / ".claude").mkdir(parents=True)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def builder():
    return TranscriptBuilder()


@pytest.fixture
def real_history(tmp_path, monkeypatch, project):
    """Claude Code's folder holding three real transcripts, in three projects."""
    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    for index, name in enumerate(("b25638d7", "1af7fc5e", "5c0375b4")):
        source = real_fixture(name)
        target = config / "projects" / f"-p{index}" / source.name
        target.parent.mkdir(parents=True)
        target.write_bytes(source.read_bytes())
    return config


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session: the one CMAT_TEST_PG names (CI starts it),
    else one started here (and stopped at the end). Its folder is not under pytest's: the
    server's user must reach it, and every pytest run that starts sets pytest's own folder
    back to its owner alone, which would cut a server under it off mid-run."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from tests import pg_server

    given = os.environ.get("CMAT_TEST_PG")
    if given:
        yield given
        return
    need(pg_server.binaries() is not None,
         "needs PostgreSQL (apt-get install postgresql; CI installs it)", "CMAT_TEAM_TESTS")
    folder = Path(tempfile.mkdtemp(prefix="cmat-test-pg-"))
    folder.chmod(0o755)
    try:
        yield pg_server.start(folder)
    finally:
        pg_server.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def team_db(postgres, request):
    """A fresh, empty database on that server, for one test: its conninfo. Dropped after the
    test with the member roles made for it (test_team.member_role: named after the
    database's last six characters), so that a server given by CMAT_TEST_PG does not fill
    with them."""
    import re
    import uuid

    import psycopg

    name = "t_" + re.sub(r"\W", "_", request.node.name)[:40].lower() + "_" + uuid.uuid4().hex[:6]
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield re.sub(r"dbname=\S+", f"dbname={name}", postgres)
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for (role,) in admin.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
                                     (f"%\\_{name[-6:]}",)).fetchall():
            admin.execute(f'DROP ROLE "{role}"')
