"""What many test files share: where things are, running cmat as a user or as Claude Code
would, and transcripts that cost a given amount today."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmat import clock, paths
from cmat.cli import cli
from tests.transcript_factory import TranscriptBuilder, write_session

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REAL_FIXTURES = FIXTURES / "real"
PROMPT = REPO / "hooks" / "on-prompt-submit-budget.sh"
PRE_TOOL = REPO / "hooks" / "on-pre-tool-use-budget.sh"
OPUS = "claude-opus-4-6"


def need(available, what: str, flag: str = "CMAT_SYSTEM_TESTS") -> None:
    """Skip a test whose part of the system is missing here (`what` says what it needs),
    unless `flag` is set, as CI sets it: there a missing part fails the test, so that no
    test is skipped silently where everything should be."""
    if available:
        return
    if os.environ.get(flag):
        pytest.fail(f"{flag} is set, but this test {what}")
    pytest.skip(what)


def real_fixture(name_part: str) -> Path:
    matches = sorted(REAL_FIXTURES.glob(f"*/*{name_part}*.jsonl"))
    if len(matches) != 1:
        pytest.fail(f"expected one real fixture matching {name_part!r}, found {matches}")
    return matches[0]


def real_history(root: Path, monkeypatch) -> Path:
    """The real fixtures as Claude Code's history under `root`, the way ccusage's outputs in
    tests/fixtures were made over them (without the file whose usage lines ccusage does not
    read, server_tool_use: null); CLAUDE_CONFIG_DIR points there and TZ is UTC."""
    history = root / "claude" / "projects" / "p"
    history.mkdir(parents=True)
    for source in sorted(REAL_FIXTURES.glob("*/*.jsonl")):
        if "sidechain_integrated" not in source.name:
            (history / source.name).write_bytes(source.read_bytes())
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(root / "claude"))
    monkeypatch.setenv("TZ", "UTC")
    return history


def child_env(**extra) -> dict:
    """The environment for a subprocess: the test's isolated one plus `extra`."""
    env = dict(os.environ)
    env.update({k: str(v) for k, v in extra.items()})
    env["PYTHONPATH"] = str(REPO)
    return env


def user_config(text: str) -> Path:
    """Write the user's own cmat config (the only one that may set user-wide budgets)."""
    path = paths.config_home() / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cli_run(*args, code=0, input=None):
    """`cmat ARGS` in this process; asserts its exit code."""
    result = CliRunner().invoke(cli, [str(a) for a in args], input=input,
                                catch_exceptions=False)
    assert result.exit_code == code, result.output + result.stderr
    return result


def earlier_today(seconds: float = 60) -> str:
    """A moment `seconds` before now but still today (local time), however soon after
    midnight now is: "today's spend" must be today's at 00:00:30 too."""
    now = clock.now()
    midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0,
                                                  microsecond=0).timestamp()
    return now_iso(-min(seconds, (now - midnight) / 2))


def noon_days_ago(days: int) -> float:
    """Unix seconds of noon (UTC) `days` days before cmat's now."""
    day = datetime.fromtimestamp(clock.now() - days * 86400, UTC)
    return day.replace(hour=12, minute=0, second=0, microsecond=0).timestamp()


def now_iso(offset: float = 0) -> str:
    """`offset` seconds from cmat's now (CMAT_NOW when a run chooses its time), as Claude Code
    writes a timestamp."""
    moment = datetime.fromtimestamp(clock.now() + offset, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def session_costing(tmp_path, session_id, usd, when=None):
    """A transcript of today whose requests cost about `usd` (Opus 4.6 output at $25/MTok)."""
    builder = TranscriptBuilder(session_id=session_id)
    builder.now = when or earlier_today()
    builder.response(model=OPUS, output=int(usd * 40_000), blocks=1)
    return builder, write_session(tmp_path / "transcripts", builder)


def budget_hook(script, project, payload, **env):
    """Run a budget hook script as Claude Code does; its JSON answer, or None when silent."""
    result = subprocess.run([str(script)], input=json.dumps(payload).encode(),
                            capture_output=True, timeout=60,
                            env=child_env(CLAUDE_PROJECT_DIR=project,
                                          CMAT_PYTHON=sys.executable, **env))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def budget_payload(path, session_id, event="UserPromptSubmit"):
    data = {"session_id": session_id, "transcript_path": str(path), "cwd": "/x",
            "hook_event_name": event}
    if event == "UserPromptSubmit":
        data["prompt"] = "carry on"
    else:
        data.update(tool_name="Bash", tool_input={"command": "ls"})
    return data


def query_plans(ledger, action):
    """What `action` (a call on `ledger`) returned, and SQLite's plan of each statement it
    ran, as one line each."""
    statements: list[str] = []
    ledger.db.set_trace_callback(statements.append)
    try:
        returned = action()
    finally:
        ledger.db.set_trace_callback(None)
    return returned, [" ".join(step[-1] for step in ledger.query("EXPLAIN QUERY PLAN " + sql))
                      for sql in statements]


def request_indexes(ledger) -> list[str]:
    """The names of the requests table's own indexes (a bulk load drops and builds these)."""
    return sorted(row[0] for row in ledger.query(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'requests'"
        " AND sql IS NOT NULL"))


def wait_for_indexes_built(ledger: Path, seconds: float = 60) -> float:
    """Wait for the process a bulk load left the ledger's indexes to (cmat.ledger.indexes);
    how long that took. Read-only: waiting makes no ledger and changes none. The benchmarks
    wait with it too, so that no timed run shares the machine with a build."""
    import contextlib
    import sqlite3
    import time

    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)) as db:
                if db.execute("SELECT count(*) FROM dropped_indexes").fetchone() == (0,):
                    return time.monotonic() - started
        except sqlite3.Error:
            pass  # not made yet
        time.sleep(0.01)
    raise TimeoutError(f"the indexes of {ledger} were not built in {seconds:g} s")


def rounded(value):
    """A report with its dollar figures to 1e-9: sums in another order differ in the last bit."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value
