"""What people see, kept as text beside the tests (tests/snapshots/): a change of layout shows
in review as a change of these files. The history is the real fixtures, the clock fixed
(CMAT_NOW) and the zone UTC, so the screens are the same on every machine and day.

After a deliberate change of layout: CMAT_UPDATE_SNAPSHOTS=1 python -m pytest
tests/test_snapshots.py, then read the diff before committing it.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cmat.cli import cli
from tests.helpers import (
    FIXTURES,
    REPO,
    child_env,
    cli_run,
    real_history,
    user_config,
)

SNAPSHOTS = FIXTURES.parent / "snapshots"
NOW = "2026-11-30T12:00:00+00:00"  # after every fixture's last request


def matches_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("CMAT_UPDATE_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no snapshot {path.name}: run with CMAT_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), f"{path.name} changed (CMAT_UPDATE_SNAPSHOTS=1 to accept)"


@pytest.fixture
def fixed_history(tmp_path, monkeypatch, project):
    real_history(tmp_path, monkeypatch)
    monkeypatch.setenv("CMAT_NOW", NOW)
    monkeypatch.setenv("NO_COLOR", "1")
    cli_run("scan", "-q")
    return tmp_path


def _screen(args, columns):
    result = CliRunner().invoke(cli, args, env={"COLUMNS": str(columns)})
    assert result.exit_code in (0, 1), result.output + result.stderr
    return re.sub(r"/tmp/\S+", "<tmp>", result.output)  # where a test's folders happen to be


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("args", [
    ["report", "daily"], ["report", "monthly", "--by", "model"],
    ["report", "session", "--last", "3"], ["blocks"], ["models", "list"]],
    ids=lambda value: "-".join(value) if isinstance(value, list) else str(value))
def test_tables_look_as_they_did(fixed_history, args, columns):
    matches_snapshot(f"{'-'.join(args)}-{columns}", _screen([*args, "--no-scan"]
                                                            if args[0] != "models" else args,
                                                            columns))


@pytest.mark.parametrize("columns", [80, 120])
def test_the_budget_table_looks_as_it_did(fixed_history, columns):
    user_config("[budgets]\ndaily = 1\nweekly = 5\nmonthly = 30\ntotal = 100\n")
    matches_snapshot(f"budget-status-{columns}", _screen(["budget", "status", "--no-scan"],
                                                         columns))


def test_the_status_line_looks_as_it_did(fixed_history, project):
    transcript = next((fixed_history / "claude" / "projects" / "p").glob("*b25638d7*"))
    session = json.loads(transcript.read_text().splitlines()[0]).get("sessionId")
    user_config("[budgets]\ndaily = 1\n")
    payload = {"session_id": session, "transcript_path": str(transcript), "cwd": "/x",
               "model": {"id": "claude-opus-4-1", "display_name": "Opus 4.1"},
               "workspace": {"current_dir": "/x"},
               "context_window": {"used_percentage": 42}}
    result = subprocess.run([str(REPO / "hooks" / "cmat-statusline.sh")],
                            input=json.dumps(payload).encode(), capture_output=True,
                            timeout=60, env=child_env(CLAUDE_PROJECT_DIR=project,
                                                      CMAT_PYTHON=sys.executable))
    assert result.returncode == 0 and result.stderr == b""
    matches_snapshot("statusline", result.stdout.decode())


def test_the_html_report_holds_what_it_did(fixed_history, tmp_path):
    """`report --html`: the page and the figures embedded in it. Chart.js, the page's script
    and its style sheet are cmat's own files, inlined as they are: they stand here as their
    names, and the figures are spread one per line so that a changed figure shows as one."""
    from cmat.dashboard.server import STATIC

    target = tmp_path / "spend.html"
    cli_run("report", "daily", "--since", "2025-09-01", "--until", "2025-09-30", "--no-scan",
            "--html", str(target))
    page = target.read_text()
    for name in ("vendor/chart.umd.min.js", "app.js", "style.css"):
        inlined = (STATIC / name).read_text()
        assert inlined in page, name
        page = page.replace(inlined, f"/* {name} */")
    data = re.search(r"window\.CMAT_DATA = (.*?);</script>", page).group(1)
    figures = json.dumps(json.loads(data), indent=1, sort_keys=True)
    page = page.replace(data, "\n" + figures + "\n")
    matches_snapshot("report-daily-html", re.sub(r"/tmp/\S+?(?=[\"<\s])", "<tmp>", page))
