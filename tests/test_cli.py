import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cmat import paths
from cmat.cli import cli
from tests.cli_reference import render
from tests.helpers import FIXTURES, REPO, child_env, cli_run, real_fixture
from tests.transcript_factory import TranscriptBuilder, reference_cost, write_session

TOKEN_KEYS = {"input", "output", "cache_creation", "cache_creation_1h", "cache_read"}


@pytest.fixture
def run(project):
    runner = CliRunner()

    def invoke(*args, code=0):
        result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == code, result.output + result.stderr
        return result

    return invoke


@pytest.fixture
def transcript(tmp_path):
    builder = TranscriptBuilder(session_id="sess-1")
    builder.response(model="claude-opus-4-6", input=6, output=4274, write_1h=88965, read=237683)
    builder.response(model="claude-haiku-4-5-20251001", output=10)
    return builder, write_session(tmp_path, builder)


def check_shape(report):
    assert set(report["tokens"]) == TOKEN_KEYS
    for key in ("total_usd", "web_search_requests", "requests", "models", "skipped_lines",
                "unpriced_models"):
        assert key in report
    for model in report["models"]:
        assert set(model) >= {"model", "name", "total_usd", "tokens", "requests"}


def test_queue_add_extract_show_enhancement_end_to_end(run, transcript):
    builder, path = transcript
    task_id = run("queue", "add", "Build it", "--enhancement", "feat", "--agent", "dev").output.strip()
    extracted = json.loads(run("costs", "extract", task_id, path, "--json").output)
    check_shape(extracted)
    assert extracted["task_id"] == task_id and extracted["session_id"] == "sess-1"
    assert extracted["total_usd"] == pytest.approx(builder.expected_cost, rel=1e-12)
    shown = json.loads(run("costs", "show", task_id, "--json").output)
    check_shape(shown)
    assert shown["sessions"][0]["session_id"] == "sess-1"
    text = run("costs", "show", task_id).output
    assert "4,274" in text and f"${builder.expected_cost:,.2f}" in text
    assert "Claude Opus 4.6" in text and "Claude Haiku 4.5" in text  # per-model rows
    session_row = text.splitlines()[-3].split()  # then one row per session, the zone
    assert text.splitlines()[-1].startswith("Times in ")
    assert session_row[0] == "sess-1" and session_row[-1] == f"${builder.expected_cost:,.2f}"
    enhancement = json.loads(run("costs", "enhancement", "feat", "--json").output)
    check_shape(enhancement)
    assert enhancement["tasks"][0]["task_id"] == task_id
    assert task_id in run("costs", "enhancement", "feat").output
    assert task_id in run("queue", "list").output
    assert json.loads(run("queue", "show", task_id, "--json").output)["id"] == task_id


def test_costs_enhancement_without_a_name_lists_every_enhancement(run, transcript):
    builder, path = transcript
    assert "no task of the queue belongs to an enhancement" in run(
        "costs", "enhancement", code=3).stderr
    first = run("queue", "add", "Build it", "--enhancement", "feat").output.strip()
    run("queue", "add", "Plan it", "--enhancement", "later")
    run("queue", "add", "No enhancement")
    run("costs", "extract", first, path)
    listed = json.loads(run("costs", "enhancement", "--json").output)
    check_shape(listed)
    assert [(e["enhancement"], e["tasks"], e["sessions"]) for e in listed["enhancements"]] == [
        ("feat", 1, 1), ("later", 1, 0)]  # in the order of their first task
    assert listed["enhancements"][0]["total_usd"] == pytest.approx(builder.expected_cost)
    assert listed["total_usd"] == pytest.approx(builder.expected_cost)
    lines = run("costs", "enhancement").output.splitlines()
    assert lines[2].split()[:3] == ["feat", "1", "1"] and lines[3].split()[-1] == "$0.00"
    assert lines[4].split()[0] == "Total"
    assert lines[4].split()[-1] == f"${builder.expected_cost:,.2f}"


def test_queue_takes_cmat_s_own_arguments(run):
    """CMAT's `queue complete ID RESULT`, `queue fail ID ERROR`, `queue list TYPE`."""
    done, failed, waiting = (run("queue", "add", title).output.strip()
                             for title in ("Done", "Failed", "Waiting"))
    run("queue", "complete", done, "READY_FOR_TESTING")
    run("queue", "fail", failed, "--result", "tests fail")
    assert json.loads(run("queue", "show", done, "--json").output)["result"] == "READY_FOR_TESTING"
    assert "given twice" in run("queue", "fail", waiting, "a", "--result", "b", code=2).stderr
    assert json.loads(run("queue", "show", waiting, "--json").output)["status"] == "pending"
    dropped = run("queue", "add", "Dropped").output.strip()
    run("queue", "cancel", dropped, "not needed")
    assert json.loads(run("queue", "show", dropped, "--json").output)["result"] == "not needed"
    assert [t["id"] for t in json.loads(run("queue", "list", "cancelled", "--json").output)
            ] == [dropped]
    listed = {status: [task["id"] for task in json.loads(run("queue", "list", status,
                                                                "--json").output)]
              for status in ("completed", "failed", "pending", "all")}
    assert listed == {"completed": [done], "failed": [failed], "pending": [waiting],
                      "all": [done, failed, waiting, dropped]}
    assert "given twice" in run("queue", "list", "failed", "--status", "pending", code=2).stderr
    assert run("queue", "status").output.splitlines() == [
        "1 pending, 1 completed, 1 failed, 1 cancelled",
        "No current task: sessions are recorded untracked (cmat queue start TASK_ID)"]
    run("queue", "start", waiting)
    status = json.loads(run("queue", "status", "--json").output)
    assert status["current"] == waiting and status["counts"]["active"] == 1


def test_queue_add_takes_cmat_s_own_order(run):
    """CMAT's `queue add TITLE AGENT PRIORITY TYPE SOURCE DESC [AUTO_COMPLETE AUTO_CHAIN
    ENHANCEMENT]`: the enhancement from a source in enhancements/NAME/, as CMAT reads it."""
    task_id = run("queue", "add", "Implement power", "implementer", "high", "implementation",
                  "enhancements/add-power/add-power.md", "Add pow()", "true").output.strip()
    task = json.loads(run("queue", "show", task_id, "--json").output)
    assert (task["assigned_agent"], task["priority"], task["task_type"], task["description"],
            task["source_file"], task["auto_complete"], task["auto_chain"]) == (
        "implementer", "high", "implementation", "Add pow()",
        "enhancements/add-power/add-power.md", True, False)
    assert task["metadata"] == {"enhancement_title": "add-power"}
    plain = json.loads(run("queue", "show", run("queue", "add", "Plain", "", "", "", "", "", "",
                                                "--priority", "normal").output.strip(),
                           "--json").output)  # CMAT passes "" for what it leaves out
    assert (plain["priority"], plain["task_type"], plain["source_file"]) == (
        "normal", "implementation", None)
    for args, said in ((["x", "dev", "--agent", "qa"], "given twice"),
                       (["x", "dev", "high", "testing", "s.md", "d", "maybe"], "true or false"),
                       (["x", *"abcdefghi"], "9 arguments after the title")):
        assert said in run("queue", "add", *args, code=2).stderr
    assert len(json.loads(run("queue", "list", "--json").output)) == 2


def test_queue_add_takes_cmat_v10_s_own_form_and_rerun_puts_a_task_back(run, project):
    """CMAT v10's `queue add AGENT TITLE SOURCE [--auto-chain] [--model ID]` and `queue
    rerun ID`, in a CMAT project."""
    agents = project / ".claude" / "agents"
    agents.mkdir(parents=True)
    for name in ("implementer", "architect"):
        (agents / f"{name}.md").write_text(f"# {name}\n")
    (agents / "agents.json").write_text(json.dumps({"agents": [
        {"agent-file": "implementer", "role": "Implementer"},
        {"agent-file": "architect", "role": "technical_design"}]}))
    task_id = run("queue", "add", "implementer", "Add pow()", "enhancements/power/power.md",
                  "--auto-chain", "--model", "claude-sonnet-4-5").output.strip()
    task = json.loads(run("queue", "show", task_id, "--json").output)
    assert (task["title"], task["assigned_agent"], task["priority"], task["task_type"],
            task["description"], task["source_file"], task["auto_complete"],
            task["auto_chain"]) == ("Add pow()", "implementer", "normal", "implementation",
                                    "Add pow()", "enhancements/power/power.md", True, True)
    assert task["metadata"] == {"enhancement_title": "power",
                                "requested_model": "claude-sonnet-4-5"}
    shown = run("queue", "show", task_id).output.splitlines()
    assert {"auto_chain: yes", "started: -", "  requested_model: claude-sonnet-4-5"} <= set(shown)
    design = json.loads(run("queue", "show", run("queue", "add", "architect", "Design", "")
                            .output.strip(), "--json").output)
    assert (design["task_type"], design["auto_chain"], design["source_file"]) == (
        "analysis", False, None)  # a role CMAT v10 does not map: its "analysis"
    # cmat.sh's order still: TITLE AGENT PRIORITY; a word that is no priority is refused there
    assert run("queue", "add", "Fix", "implementer", "urgent", code=2).stderr.count("priority")
    refused = run("queue", "rerun", task_id, code=2).stderr
    assert "only a completed, failed or cancelled task is run again" in refused
    run("queue", "start", task_id)
    run("queue", "fail", task_id, "tests fail")
    assert run("queue", "rerun", task_id).output.strip() == f"{task_id} is pending"
    again = json.loads(run("queue", "show", task_id, "--json").output)
    assert (again["status"], again["started"], again["completed"], again["result"]) == (
        "pending", None, None, None)
    assert again["metadata"] == task["metadata"]
    run("queue", "cancel", task_id)
    run("queue", "rerun", task_id, "--start")
    assert json.loads(run("queue", "status", "--json").output)["current"] == task_id


@pytest.mark.parametrize("args", [["report", "monthly", "--html", "-q", "--no-scan"],
                                  ["ledger", "export", "-o", "--since", "2026-01-01"]])
def test_an_option_typed_after_a_file_option_is_no_file_to_write(run, project, args):
    said = run(*args, code=2).stderr
    assert "looks like an option, not a file to write" in said
    assert not any(path.name.startswith("-") for path in project.iterdir())


def test_costs_session_prints_exact_cost_of_a_real_transcript(run):
    path = real_fixture("b25638d7")
    report = json.loads(run("costs", "session", path, "--json").output)
    check_shape(report)
    requests, expected = reference_cost(path)  # the naive re-implementation, not cmat's code
    assert (report["requests"], report["total_usd"]) == (requests, pytest.approx(expected))
    ccusage = json.loads((REPO / "tests" / "fixtures" / "ccusage-reports.json").read_text())
    day = next(d for d in ccusage["daily"]["daily"] if d["period"] == "2025-09-29")
    assert day["totalCost"] == pytest.approx(expected)  # ccusage 20.0.24: its one session
    text = run("costs", "session", path).output
    assert "$0.56" in text


def test_costs_session_defaults_to_the_latest_transcript(run, tmp_path, monkeypatch, transcript):
    builder, _ = transcript
    config = tmp_path / "claude"
    write_session(config / "projects" / "-home-user-project", builder)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    assert "sess-1" in run("costs", "session").output


def test_costs_session_without_any_history_says_where_it_looked(run):
    result = run("costs", "session", code=3)
    assert "no Claude Code transcripts found" in result.stderr
    assert "'cmat session' lists every agent's sessions" in result.stderr


@pytest.mark.parametrize("args, code, message", [
    (["costs", "show", "task_nope"], 3, "no task 'task_nope'"),
    (["costs", "extract", "task_nope", "x.jsonl"], 3, "no task"),
    (["costs", "session", "missing.jsonl"], 6, "does not exist"),
    (["costs", "enhancement", "nothing"], 3, "no tasks belong"),
    (["models", "show", "gpt-4o"], 3, "unknown model"),
])
def test_errors_are_one_line_with_an_exit_code(run, args, code, message):
    result = run(*args, code=code)
    assert message in result.stderr
    assert result.stderr.startswith("cmat: error:") and result.stderr.count("\n") == 1


@pytest.mark.parametrize("content", [b"# Notes\n\nnot a transcript\n", b'{\n  "name": "x"\n}\n',
                                     b"day,cost\n2026-12-01,3.20\n"])
def test_a_file_that_is_no_transcript_is_refused_and_nothing_recorded(run, tmp_path, content):
    given = tmp_path / "notes.jsonl"
    given.write_bytes(content)
    task_id = run("queue", "add", "Build it").output.strip()
    assert "not a Claude Code transcript" in run("costs", "session", given, code=6).stderr
    assert "not a Claude Code transcript" in run("costs", "extract", task_id, given,
                                                 code=6).stderr
    assert json.loads(run("costs", "show", task_id, "--json").output)["sessions"] == []


@pytest.mark.parametrize("content", [b"", b'{"type":"user","sessionId":"s-0"', b'\n{"type":"user"}\n'])
def test_a_session_just_begun_is_priced_at_nothing(run, tmp_path, content):
    given = tmp_path / "s-0.jsonl"
    given.write_bytes(content)
    assert json.loads(run("costs", "session", given, "--json").output)["total_usd"] == 0


def test_corrupt_queue_is_refused_untouched(run, project, transcript):
    queue = project / ".claude" / "data" / "task_queue.json"
    queue.parent.mkdir(parents=True)
    queue.write_text("{oops")
    result = run("costs", "extract", "t1", transcript[1], code=5)
    assert "not valid JSON" in result.stderr and queue.read_text() == "{oops"


def test_unpriced_model_is_explained(run, tmp_path):
    builder = TranscriptBuilder()
    builder.response(model="claude-nova-9")
    text = run("costs", "session", write_session(tmp_path, builder)).output
    assert "claude-nova-9" in text and "cmat models add" in text


def test_models_commands(run, project):
    listing = run("models", "list").output
    assert "claude-sonnet-4-5-20250929" in listing and "* claude-sonnet-5-5" in listing
    data = json.loads(run("models", "list", "--json").output)
    assert len(data["models"]) >= 24
    sourced = run("models", "list", "--sources").output
    assert "claude-opus-5-5 (checked 2026-11-23, built-in):" in sourced
    assert "https://platform.claude.com/docs/en/models/opus-5-5/overview" in sourced
    shown = json.loads(run("models", "show", "us.anthropic.claude-opus-4-1-20250805-v1:0",
                           "--json").output)
    assert shown["id"] == "claude-opus-4-1-20250805"
    text = run("models", "show", "gpt-5.5").output  # no max_tokens or release date known
    assert "max_tokens:     -\n" in text and "released:       -\n" in text
    assert "is_default:     no\n" in text and "None" not in text
    assert "written to" in run("models", "set-default", "claude-opus-4-6").output
    assert "* claude-opus-4-6" in run("models", "list").output
    assert "catalog OK" in run("models", "validate").output
    run("models", "add", "claude-nova-9", "--input", "2", "--output", "8")
    assert json.loads(run("models", "show", "claude-nova-9-20991231", "--json").output)[
        "pricing"]["cache_write_1h"] == 4
    assert json.loads(run("models", "show", "--json").output)["id"] == "claude-opus-4-6"


def test_models_validate_reports_a_broken_layer(run, project):
    layer = project / ".claude" / "data" / "models.json"
    layer.parent.mkdir(parents=True)
    layer.write_text(json.dumps({"models": [{"id": "x", "name": "x", "pattern": "(",
                                             "pricing": {"input": 1}}]}))
    result = run("models", "validate", "--json", code=1)
    assert not json.loads(result.output)["ok"]


def test_help_lists_commands_without_importing_them():
    code = ("import sys; from click.testing import CliRunner; from cmat.cli import cli;"
            "r = CliRunner().invoke(cli, ['--help']); assert 'costs' in r.output;"
            "heavy = [m for m in ('pydantic', 'rich', 'cmat.catalog', 'cmat.cli.costs')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_python_dash_m_matches_the_console_script(tmp_path, transcript):
    _, path = transcript
    result = subprocess.run([sys.executable, "-m", "cmat", "costs", "session", str(path),
                             "--json"], env=child_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    check_shape(json.loads(result.stdout))


def test_the_command_reference_is_current():
    assert (REPO / "docs" / "cli.md").read_text() == render(), \
        "docs/cli.md is stale: python -m tests.cli_reference > docs/cli.md"


def test_models_validate_reads_cmats_own_catalog(run, project):
    layer = project / ".claude" / "data" / "models.json"
    layer.parent.mkdir(parents=True)
    layer.write_bytes((FIXTURES / "cmat-v10" / "data_models.json").read_bytes())
    result = run("models", "validate")
    assert "catalog OK" in result.output
    assert "prices claude-haiku-4.5 differently" in result.output
    run("models", "add", "claude-nova-9", "--input", "2", "--output", "8")  # never refused
    assert layer.read_bytes() == (FIXTURES / "cmat-v10" / "data_models.json").read_bytes()


def test_a_report_row_of_an_unknown_model_reads_unpriced(run, project, tmp_path, monkeypatch):
    builder = TranscriptBuilder(session_id="u")
    builder.now = "2026-03-01T10:00:00.000Z"
    builder.response(model="claude-nova-9", output=10)
    builder.now = "2026-03-02T10:00:00.000Z"
    builder.response(model="claude-nova-9", output=10)
    builder.response(model="claude-opus-4-6", output=10)
    write_session(tmp_path / "claude" / "projects" / "-p", builder)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    monkeypatch.setenv("TZ", "UTC")
    table = run("report", "daily").output
    first, second = [line for line in table.splitlines() if line.startswith("2026-03")]
    assert first.endswith("unpriced") and "$0.00" not in first
    assert second.endswith("+?")
    report = json.loads(run("report", "daily", "--json").stdout)
    assert report["total"]["unpriced_requests"] == 2
    assert report["total"]["unpriced_models"] == ["claude-nova-9"]


def test_cmat_alone_prints_help_and_succeeds():
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 0 and "Commands:" in result.output and "blocks" in result.output


@pytest.mark.parametrize("args", [["report", "daily"], ["scan"], ["blocks"], ["costs", "today"]])
def test_no_history_anywhere_says_where_it_looked_and_exits_3(args, tmp_path):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 3
    assert "no Claude Code history found: looked in" in result.stderr
    assert ".claude/projects" in result.stderr


def test_a_reader_that_closes_the_pipe_early_is_no_error(real_history):
    """`cmat ledger export | head -1`: head exits after one line; cmat exits 0, silently."""
    cli_run("scan", "-q")
    process = subprocess.Popen([sys.executable, "-m", "cmat", "ledger", "export", "--format",
                                "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=child_env())
    process.stdout.readline()
    process.stdout.close()  # the reader is gone; the rest no longer fits in the pipe
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 0 and stderr == b""


def test_mistyped_words_get_a_suggestion_and_numbers_a_clear_message(project):
    assert "did you mean daily?" in cli_run("budget", "set", "dayly", "5", code=2).stderr
    assert "0 or more (got -5)" in cli_run("budget", "set", "daily", "-5", code=2).stderr
    assert "0 or more (got nan)" in cli_run("budget", "set", "daily", "nan", code=2).stderr
    assert "'$' is not a number" in cli_run("budget", "set", "daily", "$", code=2).stderr
    assert not (paths.config_home() / "config.toml").exists()  # nothing was written
    assert "did you mean claude-opus" in cli_run("models", "show", "opus", code=3).stderr


def test_an_amount_is_taken_as_people_write_dollars(project):
    assert cli_run("budget", "set", "daily", "$50").output.startswith("budgets.daily = 50.0")
    assert cli_run("budget", "set", "monthly", "1,500").output.startswith(
        "budgets.monthly = 1500.0")
    assert cli_run("budget", "set", "monthly", "$12,345.50").output.startswith(
        "budgets.monthly = 12345.5")
    for fraction in ("1,5", "1,50", "12,3456", ",500"):  # a decimal comma is no thousands
        refused = cli_run("budget", "set", "daily", fraction, code=2).stderr
        assert "a fraction takes a point (1.5)" in refused
    assert "daily = 50.0" in (paths.config_home() / "config.toml").read_text()  # as it was
    said = cli_run("budget", "set", "weekly", "0").output  # what a shell makes of $50 unquoted
    assert "A shell reads $50 unquoted as 0" in said


def test_installations_by_hand_links_work_on_a_fresh_home(tmp_path):
    """INSTALLATION.md's by-hand install, on a home with no ~/.local/bin yet: the venv and
    pip lines are stood in for (the package is this checkout), the rest runs as written."""
    import re

    text = (REPO / "INSTALLATION.md").read_text()
    block = re.search(r"Or by hand:\n\n```bash\n(.*?)```", text, re.S).group(1)
    lines = block.strip().splitlines()
    assert lines[0].startswith("python3 -m venv") and "/pip install " in lines[1]
    venv_bin = tmp_path / ".local" / "share" / "cmat" / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    for name in ("cmat", "cmat-costs"):
        (venv_bin / name).write_text(f"#!/bin/sh\necho {name} ran\n")
        (venv_bin / name).chmod(0o755)
    subprocess.run(["bash", "-euc", "\n".join(lines[2:])], check=True,
                   env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    for name in ("cmat", "cmat-costs"):
        ran = subprocess.run([str(tmp_path / ".local" / "bin" / name)], capture_output=True)
        assert ran.stdout == f"{name} ran\n".encode()


def test_every_help_fits_an_80_column_terminal():
    """Paragraphs are wrapped to the terminal; a block kept as written (click's \\b: examples,
    lists) must fit 80 columns by itself."""

    def commands(command, path):
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from commands(sub, [*path, name])

    for path in commands(cli, []):
        text = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80).output
        wide = [line for line in text.splitlines() if len(line) > 80]
        assert not wide, (path, wide)
