"""`cmat costs ...`: price sessions, record them against tasks, show what tasks cost."""

from __future__ import annotations

import time
from pathlib import Path

import click

from cmat import clock, paths
from cmat.cli.options import options, output_options, project_option, team_connection
from cmat.cli.output import (
    count,
    echo,
    emit_json,
    local_minute,
    show_session,
    summary_text,
    table,
    times_in,
)
from cmat.errors import NotFound
from cmat.money import usd


@click.group()
def costs() -> None:
    """Price sessions and record them against tasks."""


@costs.command()
@click.argument("task_id")
@click.argument("transcript_path", type=click.Path(path_type=Path))
@click.argument("session_id", required=False)
@click.option("--override-limit", is_flag=True,
              help="Do not fail when a budget of the task is exhausted; only warn.")
@project_option
@output_options
def extract(task_id: str, transcript_path: Path, session_id: str | None, override_limit: bool,
            project: Path | None, as_json: bool) -> None:
    """Record a session against TASK_ID: what the SessionEnd hook does.

    Imports TRANSCRIPT_PATH and the session's subagent transcripts into the ledger (only
    what is new since the last import; each API request once), attributes the session to the
    task, and writes the task's totals over all its sessions into CMAT's cost_* fields of the
    queue. Recording the same session again adds only what it gained since. SESSION, when
    given, must be the session the file holds.

    For a task run on another coding agent, TRANSCRIPT_PATH is that agent's log: a Codex CLI
    rollout, a Gemini CLI chat, or OpenCode's opencode.db with the SESSION (ses_...) named.

    The figures are always recorded. Then, when a budget that applies to the task is
    exhausted, the command exits with status 11 so that an orchestrator stops, unless
    --override-limit (or CMAT_OVERRIDE_LIMIT=1, or a `cmat budget override`).
    """
    from cmat.attribution import extract as run_extract

    resolved = paths.project_dir(project)
    result = run_extract(resolved, task_id, transcript_path, session_id)
    if as_json:
        emit_json(result)
    else:
        echo(f"Recorded session {result['session_id']} for task {task_id}: "
             f"{usd(result['session_total_usd'])} over "
             f"{count(result['session_requests'], 'request')} "
             f"({count(result['new_requests'])} new)")
        echo(f"Task total over {count(len(result['sessions']), 'session')}: "
             f"{usd(result['total_usd'])}")
        if result["queue_lagging"]:
            echo("cmat: warning: the task queue could not be written now; it catches up "
                 "at the next session recorded (cmat costs sync)", err=True)
    _check_budgets(resolved, task_id, result["session_id"], override_limit)


def _check_budgets(project: Path, task_id: str, session_id: str, override: bool) -> None:
    from cmat.budgets.limits import exhausted_now
    from cmat.errors import BudgetExhausted
    from cmat.ledger import Ledger

    with Ledger() as ledger:
        exhausted = exhausted_now(project, ledger, clock.now(), session_id, task_id)
    if not exhausted:
        return
    message = "; ".join(s.exhausted_message().replace("\n", " / ") for s in exhausted)
    if override:
        echo(f"cmat: warning: {message}", err=True)
        return
    raise BudgetExhausted(message, "pass --override-limit to record without failing")


@costs.command()
@project_option
@click.option("--settle", metavar="SECONDS,...",
              help="Write them again at each of these moments (seconds from now), e.g. 2,8: "
                   "the SessionEnd hook does so after CMAT's own hook, which runs beside "
                   "cmat's and writes CMAT's figure last.")
@output_options
def sync(project: Path | None, settle: str | None, as_json: bool) -> None:
    """Write every task's figures from the ledger into the project's queue now.

    The hooks do this on every record; run it after the queue was restored from a backup,
    or rewritten by a tool that dropped cmat's figures.
    """
    from cmat.catalog import ModelService
    from cmat.ledger import Ledger
    from cmat.tasks.costs import sync_queue

    moments = [0.0]
    if settle:
        try:
            moments += sorted(float(part) for part in settle.split(",") if part.strip())
        except ValueError:
            raise click.BadParameter("seconds separated by commas, such as 2,8",
                                     param_hint="--settle") from None
    resolved = paths.project_dir(project)
    started = time.monotonic()
    with Ledger() as ledger:
        for moment in moments:
            time.sleep(max(0.0, moment - (time.monotonic() - started)))
            sync_queue(resolved, ledger, ModelService(resolved), raise_errors=True)
        tasks = ledger.project_tasks(str(resolved))
    if as_json:
        emit_json({"tasks": tasks})
    else:
        echo(f"{count(len(tasks), 'task')} of {resolved} match the ledger")


def team_source(connection):
    """The team database as the reports' source, or None (the local ledger) without one."""
    if connection is None:
        return None
    from cmat.team.reports import TeamSource

    return TeamSource(connection)


TEAM_OPTIONS = (
    click.option("--team", is_flag=True,
                 help="Every machine's sessions, from the team database (where `cmat sync` "
                      "sends them)."),
    click.option("--to", "team_url", metavar="URL",
                 help="With --team: the team database (default: CMAT_TEAM_URL, team.url)."))


@costs.command()
@click.argument("task_id")
@project_option
@options(TEAM_OPTIONS)
@output_options
def show(task_id: str, project: Path | None, team: bool, team_url: str | None,
         as_json: bool) -> None:
    """What TASK_ID has cost so far, over all its recorded sessions: from this machine's
    ledger, or with --team from every machine's synced to the team database."""
    from cmat.tasks.costs import task_report

    with team_connection(team, team_url, project) as connection:
        report = task_report(paths.project_dir(project), task_id, team_source(connection))
    if as_json:
        emit_json(report)
        return
    echo(f"Task:         {task_id}" + (f"  {report['title']}" if report.get("title") else ""))
    if report.get("enhancement"):
        echo(f"Enhancement:  {report['enhancement']}")
    echo(f"Status:       {report.get('status') or '-'}")
    echo(f"Sessions:     {len(report['sessions'])}")
    echo()
    if not report["sessions"]:
        echo("No costs recorded yet. Record a session with: "
             f"cmat costs extract {task_id} TRANSCRIPT.jsonl")
        say_not_counted([report["queue_figures_not_counted"]])
        return
    echo(summary_text(report))
    echo()
    echo(table([_session_row(session) for session in report["sessions"]],
               ["Session", "Started", "Requests", "Cost"], numeric_from=2))
    echo(f"\n{times_in()}")


def _session_row(session: dict) -> list[str]:
    """A task's session: its start in local time, requests and cost; a session whose
    requests were compacted into rollups is said to be (they are in the totals above; the
    ledger's rollups keep no session, the team database's do)."""
    started = local_minute(session["started"]) if session["started"] else "compacted"
    if not session["requests"]:
        return [session["session_id"], started, "-", "-"]
    return [session["session_id"], started, count(session["requests"]),
            usd(session["total_usd"])]


@costs.command()
@click.argument("name", required=False)
@project_option
@options(TEAM_OPTIONS)
@output_options
def enhancement(name: str | None, project: Path | None, team: bool, team_url: str | None,
                as_json: bool) -> None:
    """What the tasks of enhancement NAME have cost, task by task.

    Without NAME, every enhancement of the queue, each with its tasks' total.
    """
    from cmat.tasks.costs import enhancement_report, enhancements_report

    with team_connection(team, team_url, project) as connection:
        if name is None:
            listed = enhancements_report(paths.project_dir(project), team_source(connection))
        else:
            report = enhancement_report(paths.project_dir(project), name,
                                        team_source(connection))
    if name is None:
        _print_enhancements(listed, as_json)
        return
    if as_json:
        emit_json(report)
        return
    if not report["tasks"]:
        raise NotFound(f"no tasks belong to enhancement {name!r}",
                       "a task belongs to it through metadata.enhancement_title")
    echo(f"Enhancement: {name}  ({count(len(report['tasks']), 'task')})")
    echo()
    rows = [[t["task_id"], (t["title"] or "")[:40], t["status"] or "-", t["agent"] or "-",
             count(t["sessions"]), count(t["tokens"]["input"] + t["tokens"]["cache_creation"]
                                         + t["tokens"]["cache_read"]),
             count(t["tokens"]["output"]), usd(t["total_usd"])] for t in report["tasks"]]
    rows.append(["Total", "", "", "", count(sum(t["sessions"] for t in report["tasks"])),
                 count(report["tokens"]["input"] + report["tokens"]["cache_creation"]
                       + report["tokens"]["cache_read"]),
                 count(report["tokens"]["output"]), usd(report["total_usd"])])
    echo(table(rows, ["Task", "Title", "Status", "Agent", "Sessions", "Input (all)", "Output",
                      "Cost"], numeric_from=4))
    echo()
    echo(summary_text(report))
    say_not_counted([task["queue_figures_not_counted"] for task in report["tasks"]])


def _print_enhancements(listed: dict, as_json: bool) -> None:
    if as_json:
        emit_json(listed)
        return
    if not listed["enhancements"]:
        raise NotFound("no task of the queue belongs to an enhancement",
                       "a task belongs to one through metadata.enhancement_title")

    def figures(entry: dict) -> list[str]:
        tokens = entry["tokens"]
        return [count(tokens["input"] + tokens["cache_creation"] + tokens["cache_read"]),
                count(tokens["output"]), usd(entry["total_usd"])]

    rows = [[e["enhancement"], count(e["tasks"]), count(e["sessions"]), *figures(e)]
            for e in listed["enhancements"]]
    rows.append(["Total", count(sum(e["tasks"] for e in listed["enhancements"])),
                 count(sum(e["sessions"] for e in listed["enhancements"])), *figures(listed)])
    echo(table(rows, ["Enhancement", "Tasks", "Sessions", "Input (all)", "Output", "Cost"],
               numeric_from=1))
    echo("\nTask by task: cmat costs enhancement NAME")
    say_not_counted([figure for e in listed["enhancements"]
                     for figure in e["queue_figures_not_counted"]])


def say_not_counted(figures: list[dict | None]) -> None:
    """Why a total is not what CMAT's own screens show: cost figures in the queue, written by
    CMAT's own hook for sessions whose transcripts are not on this machine (a template's or
    demo's queue, or one committed elsewhere), are nobody's spend here."""
    left_out = [figure for figure in figures if figure]
    if not left_out:
        return
    if len(left_out) > 1:
        whose = f"{len(left_out)} tasks' sessions that did not run on this machine (their" \
                " transcripts are not here)"
    else:
        whose = f"session {left_out[0]['session_id'] or '(unnamed)'}, which did not run on" \
                " this machine (its transcript is not here)"
    echo(f"\nNot counted: {usd(sum(f['total_usd'] for f in left_out))} in the queue's cost"
         f" fields, written by CMAT's own hook for {whose}.")


@costs.command()
@click.argument("transcript_path", type=click.Path(path_type=Path), required=False)
@click.option("--session-id", help="Session id, when it differs from the transcript's own.")
@output_options
def session(transcript_path: Path | None, session_id: str | None, as_json: bool) -> None:
    """Price one transcript (and its subagents) without recording it anywhere.

    Without TRANSCRIPT_PATH, prices the most recent session Claude Code wrote (under
    $CLAUDE_CONFIG_DIR, ~/.claude or ~/.config/claude). Another agent's log is priced as
    well: a Codex CLI rollout, a Gemini CLI chat, or one session of OpenCode's database
    (named with --session-id). A file that is neither (its first line is not a JSON
    object) is refused with exit status 6.
    """
    from cmat import paths
    from cmat.transcripts.files import latest_session_transcript

    path = transcript_path or latest_session_transcript(paths.transcript_roots())
    if path is None:
        roots = ", ".join(str(r) for r in paths.claude_config_dirs()) \
            or "~/.claude, ~/.config/claude"
        raise NotFound(f"no Claude Code transcripts found (looked in {roots})",
                       "pass a transcript path or another agent's log, or set "
                       "CLAUDE_CONFIG_DIR; 'cmat session' lists every agent's sessions")
    show_session(path, session_id, as_json)


def _add_range_commands() -> None:
    from cmat.cli.report import range_command

    for which, summary in (("today", "What today cost, per model."),
                           ("week", "What this week cost (from Monday), day by day."),
                           ("month", "What this month cost, day by day.")):
        costs.add_command(range_command(which, summary))


_add_range_commands()
