"""`cmat live`: the full-screen view, driven for real in tmux, and its screen drawn alone."""

import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

from rich.console import Console

from cmat import clock
from cmat.blocks import cut_blocks
from cmat.live import Snapshot, render
from tests.helpers import child_env, need
from tests.transcript_factory import TranscriptBuilder, write_session


def stamp(offset: float) -> str:
    return datetime.fromtimestamp(clock.now() + offset, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z")


def screen_text(snapshot: Snapshot, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))
    console.print(render(snapshot))
    return console.export_text()


def snapshot(official=None, allowance=None) -> Snapshot:
    now = clock.now()
    (block,) = cut_blocks([(now - 600, now - 60, "claude-opus-4-6", 2, 10, 7_600, 0, 0, 0.19, 2)],
                          now)
    return Snapshot(now, block, official, allowance,
                    "pro preset", 0.19, 1.0, [("sess-1234567", "/home/me/app", now - 60, 0.19)])


def test_the_screen_fits_80_columns_and_names_where_its_figure_comes_from():
    text = screen_text(snapshot(allowance=19_000))
    assert max(map(len, text.splitlines())) <= 80
    assert "~40% (estimate)" in text and "opus-4-6" in text and "sess-123" in text
    assert "Today $0.19 of $1.00 daily budget (19%)" in text
    official = {"five_hour": {"used_percent": 63.0, "resets_at": clock.now() + 3600},
                "seven_day": None, "observed_at": clock.now()}
    assert "63% (Claude Code)" in screen_text(snapshot(official, 19_000))
    assert "of the time (no plan set)" in screen_text(snapshot())
    wide = screen_text(snapshot(allowance=19_000), width=120)  # the box fills a wider screen
    assert max(map(len, wide.splitlines())) == 120


def test_a_projects_name_or_model_id_cannot_draw_on_the_screen():
    """A folder's name is the transcript's text: rich would read "[link=...]" in it as its
    markup and pass escape sequences on; the screen shows them as text."""
    now = clock.now()
    (block,) = cut_blocks([(now - 600, now - 60, "m[blink]\x1b[2J", 2, 10, 7_600, 0, 0, 0.19,
                            2)], now)
    shown = Snapshot(now, block, None, None, "pro preset", 0.19, 1.0,
                     [("sess-1234567", "/home/me/[red]app\x1b[1A", now - 60, 0.19)])
    console = Console(width=100, force_terminal=True, file=open("/dev/null", "w"), record=True)
    console.print(render(shown))
    drawn = console.export_text(styles=True)
    assert "[red]app\\x1b[1A" in drawn and "m[blink]\\x1b[2J" in drawn
    assert "\x1b[2J" not in drawn and "\x1b[1A" not in drawn


class Terminal:
    """A real terminal: tmux on a server of its own (its own socket), so that one test's
    terminal closing, which ends a shared server with its last session, never takes another
    test's terminal with it."""

    def __init__(self, columns: int, rows: int, env: dict, args: list[str], then: str):
        self.name = f"cmat-test-{uuid.uuid4().hex[:8]}"
        command = " ".join([
            "env", *[f"{key}='{value}'" for key, value in env.items()
                     if key in ("HOME", "PYTHONPATH", "CLAUDE_CONFIG_DIR", "NO_COLOR")
                     or key.startswith("XDG_")],
            sys.executable, "-m", "cmat", *args, f"; {then}; sleep 60"])
        started = self._tmux("new-session", "-d", "-s", self.name, "-x", str(columns),
                             "-y", str(rows), command)
        assert started.returncode == 0, started.stderr

    def _tmux(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.name, *args], capture_output=True, text=True)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-t", self.name, "-p").stdout

    def keys(self, keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, keys)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._tmux("kill-server")


def wait_for(condition, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    return None


def test_the_live_view_draws_updates_as_a_transcript_grows_and_quits_on_q(tmp_path):
    need(shutil.which("tmux"), "needs tmux (apt-get install tmux)")
    history = tmp_path / "claude" / "projects" / "-home-me-app"
    builder = TranscriptBuilder(session_id="live-session", cwd="/home/me/app")
    builder.now = stamp(-120)
    builder.response(model="claude-opus-4-6", output=1_000, blocks=1)
    transcript = write_session(history, builder)
    exit_file = tmp_path / "exit"
    env = child_env(CLAUDE_CONFIG_DIR=tmp_path / "claude", NO_COLOR="1")
    with Terminal(80, 24, env, ["live", "--interval", "0.5"], f"echo $? > {exit_file}") as term:
        first = wait_for(lambda: (lambda screen: screen if "Used 1,010 tokens" in screen
                                  else None)(term.screen()))
        assert first, term.screen()
        assert "cmat live" in first and "live-ses" in first
        assert max(map(len, first.splitlines())) <= 80
        builder.now = stamp(-5)
        builder.response(model="claude-opus-4-6", output=2_000, blocks=1)
        builder.write(transcript)  # the session grew
        assert wait_for(lambda: "Used 3,020 tokens" in term.screen()), term.screen()
        term.keys("q")
        assert wait_for(lambda: exit_file.exists() and exit_file.read_text().strip()), \
            term.screen()
        assert exit_file.read_text().strip() == "0"
        assert "cmat live" not in term.screen()  # screen restored


def test_without_a_terminal_the_screen_is_printed_once(project, tmp_path, monkeypatch):
    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    builder = TranscriptBuilder(session_id="piped-session")
    builder.now = stamp(-120)
    builder.response(model="claude-opus-4-6", output=2000)
    write_session(config / "projects" / "-p", builder)
    result = subprocess.run([sys.executable, "-m", "cmat", "live"], capture_output=True,
                            stdin=subprocess.DEVNULL, timeout=60, env=child_env())
    assert result.returncode == 0 and b"cmat live" in result.stdout
    assert b"piped-s" in result.stdout


def test_an_ended_session_is_no_longer_listed_as_at_work(project, tmp_path):
    from cmat.catalog import ModelService
    from cmat.ingest import scan
    from cmat.ledger import Ledger

    builder = TranscriptBuilder(session_id="ended-session")
    builder.now = stamp(-120)
    builder.response(model="claude-opus-4-6", output=2000)
    write_session(tmp_path / "t", builder)
    with Ledger() as ledger:
        scan(ledger, ModelService(project), [tmp_path / "t"])
        assert [s[0] for s in ledger.recent_sessions(clock.now() - 600, 5)] == ["ended-session"]
        with ledger.transaction():
            ledger.end_live_session("ended-session", clock.now())
        assert ledger.recent_sessions(clock.now() - 600, 5) == []


def _in_tmux(columns: int, args: list[str], env: dict, done_marker: str = "__done__") -> str:
    """`cmat ARGS` run in a real terminal `columns` wide; the screen when it has finished."""
    with Terminal(columns, 50, env, args, f"echo {done_marker}") as term:
        screen = wait_for(lambda: (lambda s: s if done_marker in s else None)(term.screen()))
        assert screen, term.screen()
        return screen.split(done_marker)[0]


def test_tables_in_a_real_terminal_keep_every_row_on_one_line(real_history, project):
    """At 120 columns the session report's ids are never split into pieces; at 80 the budget
    table fits and each budget is one line (rich's tables: cut with an ellipsis, or compact)."""
    from tests.helpers import cli_run, user_config

    need(shutil.which("tmux"), "needs tmux (apt-get install tmux)")

    cli_run("scan", "-q")
    user_config("[budgets]\ndaily = 1\nweekly = 5\nmonthly = 300\ntotal = 1000\n"
                "[budgets.task]\ndefault = 5\n[budgets.session]\ndefault = 2\n")
    env = child_env(CLAUDE_CONFIG_DIR=real_history, NO_COLOR="1")
    sessions = json.loads(cli_run("report", "session", "--last", "5", "--json",
                                  "--no-scan").output)["rows"]
    screen = _in_tmux(120, ["report", "session", "--last", "5", "--no-scan"], env)
    lines = [line for line in screen.splitlines() if line.strip()]
    assert max(map(len, lines)) <= 120
    for row in sessions:  # each session on one line of its own, its id whole or its prefix
        assert sum(row["session"][:8] in line for line in lines) == 1, screen
    assert not any(re.fullmatch(r"\s*[0-9a-f-]{1,7}\s*", line) for line in lines), screen
    screen = _in_tmux(80, ["budget", "status", "--no-scan"], env)
    lines = [line for line in screen.splitlines() if line.strip()]
    assert max(map(len, lines)) <= 80, screen
    for label in ("Daily budget", "Weekly budget", "Monthly budget", "Lifetime budget"):
        assert sum(line.startswith(label[:8]) for line in lines) == 1, screen
