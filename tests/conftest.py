import os
from pathlib import Path

import pytest

from tests.transcript_factory import TranscriptBuilder

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REAL_FIXTURES = FIXTURES / "real"

_ISOLATED = ("HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME")
_CLEARED = ("CLAUDE_PROJECT_DIR", "CLAUDE_CONFIG_DIR", "CMAT_MODELS", "CMAT_LEDGER",
            "CMAT_CURRENT_TASK_ID", "CMAT_OVERRIDE_LIMIT", "CMAT_DEBUG", "NO_COLOR")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty home and XDG folders: none can touch the real ones."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in _ISOLATED[1:]:
        monkeypatch.setenv(name, str(home / name.lower()))
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
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


def real_fixture(name_part: str) -> Path:
    matches = sorted(REAL_FIXTURES.glob(f"*/*{name_part}*.jsonl"))
    if len(matches) != 1:
        pytest.fail(f"expected one real fixture matching {name_part!r}, found {matches}")
    return matches[0]


def child_env(**extra) -> dict:
    """The environment for a subprocess: the test's isolated one plus `extra`."""
    env = dict(os.environ)
    env.update({k: str(v) for k, v in extra.items()})
    env["PYTHONPATH"] = str(REPO)
    return env


def user_config(text: str) -> Path:
    """Write the user's own cmat config (the only one that may set user-wide budgets)."""
    from cmat import paths

    path = paths.config_home() / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
