"""`cmat budget ...` and `cmat alerts ...`: limits on spend, enforced by the hooks."""

from __future__ import annotations

import time
from pathlib import Path

import click

from cmat import clock, paths
from cmat.budgets.config import (
    PROJECT_PERIODS,
    SCOPES,
)
from cmat.cli.by_a_person import by_a_person
from cmat.cli.options import Amount, Choice, output_options, project_option
from cmat.cli.output import echo, emit_json, styled, table, times_in, wrapped
from cmat.errors import BUDGET_SPENT, OK, PROBLEMS_FOUND, leave
from cmat.money import usd

BAR_WIDTH = 10
COUNT_KEYS = ["budgets", "token_count"]


@click.group()
def budget() -> None:
    """Budgets on spend: set them, see where you stand, override them for a while.

    The UserPromptSubmit and PreToolUse hooks (cmat hooks install) enforce them inside
    Claude Code: an exhausted budget refuses new prompts and denies tool calls.
    """


def _scoped(function):
    for option in reversed([
        click.option("--id", "key_id", help="The task or session (default: every one)."),
        click.option("--name", "key_name", help="The enhancement (default: every one)."),
        click.option("--agent", "key_agent",
                     help="For run and run-tokens: the agent (CMAT's assigned agent, or a "
                          "subagent type such as Explore; default: every agent)."),
        click.option("--app", "key_app", metavar="APP",
                     help="For app-daily, app-weekly and app-monthly: the coding agent whose "
                          "spend it counts (claude-code, codex, gemini-cli, opencode), or a "
                          "provider's (provider:openai)."),
        click.option("--period", type=click.Choice(PROJECT_PERIODS),
                     help="For a project budget."),
        click.option("--user", is_flag=True, help="Write the user's config."),
        click.option("--in-project", is_flag=True, help="Write the project's .claude/cmat.toml."),
        click.option("--team", is_flag=True,
                     help="For team-daily, team-weekly and team-monthly: the team database's "
                          "budget, enforced by every member's hooks."),
        click.option("--to", "team_url", metavar="URL",
                     help="With --team: the team database (default: CMAT_TEAM_URL, "
                          "team.url)."),
        click.option("--project", "project", is_flag=False, flag_value="", default=None,
                     metavar="[DIR]",
                     help="Alone, after daily, monthly, total or daily-tokens: make it this "
                          "project's budget. DIR names the project (default: "
                          "$CLAUDE_PROJECT_DIR, else the nearest ancestor holding .claude/, "
                          "else the current directory)."),
    ]):
        function = option(function)
    return function


def _team_budget(scope: str, team: bool, url: str | None, amount: float | None) -> bool:
    """Set (or remove) a team budget in the team database; False when `scope` is not one."""
    from cmat.budgets.scopes import is_team_scope

    if not is_team_scope(scope, team):
        return False
    if amount is not None and amount < 0:
        raise click.UsageError("a budget is 0 or more")
    from cmat.team.budgets import set_team_budget
    from cmat.team.connect import describe, team_url

    target = team_url(url)
    set_team_budget(target, scope, amount, refuse_loosening=by_a_person)
    echo(f"{scope} = {amount} (in {describe(target)})" if amount is not None
         else f"Removed {scope} from {describe(target)}")
    return True


def _token_count(ctx, param, value: str | None) -> str | None:
    """--count takes budgets.token_count's names; io and cache are its older spellings."""
    from cmat.budgets.config import TOKEN_COUNTS

    value = {"io": "input+output", "cache": "all"}.get(value, value)
    if value is not None and value not in TOKEN_COUNTS:
        raise click.BadParameter(f"{value!r} is not one of {', '.join(TOKEN_COUNTS)}")
    return value


@budget.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("scope", type=Choice(SCOPES), metavar="SCOPE")
@click.argument("amount", type=Amount())
@_scoped
@click.option("--count", metavar="[input+output|all]", callback=_token_count,
              help="For token budgets: count input + output tokens (the default), or all of "
                   "them, cache writes and reads too; the same names as the config's "
                   "budgets.token_count. Applies to every token budget.")
def set_budget(scope: str, amount: float, key_id: str | None, key_name: str | None,
               key_agent: str | None, key_app: str | None, period: str | None, user: bool,
               in_project: bool,
               team: bool, team_url: str | None, project: str | None,
               count: str | None) -> None:
    """Set a budget: AMOUNT in USD (50, '$50' quoted, 1,500); tokens for daily-tokens and
    run-tokens; sessions for concurrent-agents.

    A limit of 0 means nothing may be spent: it blocks work in its scope at once (a freeze).
    To remove a budget, use `cmat budget unset`.

    \b
    Examples:
      cmat budget set daily 50                      all projects, per day
      cmat budget set daily 20 --project            this project, per day
      cmat budget set total 1000                    lifetime, all projects (--project: this one)
      cmat budget set daily-tokens 2000000          input + output tokens a day
      cmat budget set task 5                        every task of this project
      cmat budget set task 12 --id task_1767031596_45196
      cmat budget set enhancement 40 --name add-power-function
      cmat budget set session 10                    every session
      cmat budget set run 5                         every run: a session, or one subagent
      cmat budget set run 10 --agent architect      runs of the architect agent
      cmat budget set run-tokens 100000 --agent Explore
      cmat budget set app-daily 5 --app codex       Codex CLI's spend, per day
      cmat budget set app-monthly 100 --app provider:openai
      cmat budget set concurrent-agents 5           sessions at work at once
      cmat budget set team-monthly 5000 --team      the whole team (in the team database)

    A run over its limit has its next tool call denied (a subagent's only its own); a
    session started while concurrent-agents sessions are at work has its first prompt held.
    Token budgets count input + output tokens unless --count all. The daily, weekly, monthly
    and total budgets count every coding agent's spend; an app budget one agent's or
    provider's, and denies Claude Code's tool calls only when Claude Code's spend counts
    towards it (app claude-code, provider:anthropic); the others are reported and alerted on.

    User-wide scopes (daily, weekly, monthly, total, daily-tokens, concurrent-agents, app-*)
    go to the user's config, the others to the project's .claude/cmat.toml, unless --user or
    --in-project says otherwise.
    """
    from cmat.budgets.edit import edit_config, set_value, value_at
    from cmat.budgets.scopes import place

    if _team_budget(scope, team, team_url, amount):
        _say_if_not_enforced(project)
        return
    placed = place(scope, period=period, key_id=key_id, key_name=key_name,
                   key_agent=key_agent, key_app=key_app, user=user, in_project=in_project,
                   project=project, count=count)
    value = int(amount) if placed.whole else amount
    name = ".".join(placed.keys)

    # Loosening is judged on the value each edit replaces, read under the file's lock. The
    # count goes first: were the limit refused after it, nothing looser would be left.
    def set_count(document: dict) -> None:
        if count == "input+output" and value_at(document, COUNT_KEYS) == "all":
            by_a_person("counting fewer tokens (--count input+output)")
        set_value(document, COUNT_KEYS, count)

    def set_limit(document: dict) -> None:
        before = value_at(document, placed.keys)
        if isinstance(before, (int, float)) and value > before:
            by_a_person(f"raising {name} from {before} to {value}")
        set_value(document, placed.keys, value)

    if count:
        edit_config(paths.user_config_file(), set_count)
        echo(f"budgets.token_count = {count!r} (in {paths.user_config_file()})")
    edit_config(placed.file, set_limit)
    echo(f"{name} = {value} (in {placed.file})")
    if value == 0:
        echo("note: a limit of 0 means nothing may be spent: work in its scope is "
             f"blocked at once. To remove the budget instead: cmat budget unset {scope}. "
             "(A shell reads $50 unquoted as 0: write 50, or '$50'.)")
    _say_if_not_enforced(project)


def _say_if_not_enforced(project: str | Path | None) -> None:
    from cmat.claude.install import not_enforced_note

    note = not_enforced_note(Path(project) if project else None)
    if note:
        echo(wrapped("note: ", note))


@budget.command("unset")
@click.argument("scope", type=Choice(SCOPES), metavar="SCOPE")
@_scoped
def unset_budget(scope: str, key_id: str | None, key_name: str | None, key_agent: str | None,
                 key_app: str | None, period: str | None, user: bool, in_project: bool,
                 team: bool, team_url: str | None, project: str | None) -> None:
    """Remove a budget."""
    from cmat.budgets.edit import edit_config, unset_value, value_at
    from cmat.budgets.scopes import place

    if _team_budget(scope, team, team_url, None):
        return
    placed = place(scope, period=period, key_id=key_id, key_name=key_name,
                   key_agent=key_agent, key_app=key_app, user=user, in_project=in_project,
                   project=project)
    removed: list[bool] = []

    def unset(document: dict) -> None:  # judged under the file's lock, as set_budget's
        if value_at(document, placed.keys) is not None:
            by_a_person(f"removing {'.'.join(placed.keys)}")
        removed.append(unset_value(document, placed.keys))

    edit_config(placed.file, unset)
    echo(f"Removed {'.'.join(placed.keys)} from {placed.file}" if removed[0]
         else f"{'.'.join(placed.keys)} was not set in {placed.file}")


@budget.command()
@project_option
@output_options
def show(project: Path | None, as_json: bool) -> None:
    """The budgets in force here: the user's config with the project's over it."""
    from cmat.budgets.alerts import redact_url
    from cmat.budgets.config import load_config

    config = load_config(paths.project_dir(project))
    webhook = redact_url(config.webhook) if config.webhook else None
    email = config.email
    data = {"sources": config.sources, "timezone": config.timezone,
            "global_usd": config.global_usd, "daily_tokens": config.daily_tokens,
            "token_count": config.token_count, "concurrent_agents": config.concurrent_agents,
            "active_minutes": config.active_minutes, "project_usd": config.project_usd,
            "project_tokens": config.project_tokens, "keyed": config.keyed,
            "alerts": {"thresholds": list(config.thresholds), "webhook": webhook,
                       "command": list(config.command) if config.command else None,
                       "email": {"host": email.host, "port": email.port, "from": email.sender,
                                 "to": list(email.to), "starttls": email.starttls}
                       if email else None,
                       "channels": {name: list(at) for name, at in config.channels.items()},
                       "messages": {str(k): v for k, v in config.messages.items()}},
            "ignored": config.ignored}
    if as_json:
        emit_json(data)
        return
    if not config.has_budgets:
        echo("No budgets set. Set one with: cmat budget set daily 50")
    tokens = f"tokens ({config.token_count})"
    for period, limit in config.global_usd.items():
        echo(f"{period:<18} {usd(limit)} (all projects)")
    if config.daily_tokens is not None:
        echo(f"{'daily-tokens':<18} {config.daily_tokens:,} {tokens}, all projects")
    for period, limit in config.project_usd.items():
        echo(f"{'project ' + period:<18} {usd(limit)}")
    for period, limit in config.project_tokens.items():
        echo(f"{'project ' + period + '-tokens':<18} {int(limit):,} {tokens}")
    for scope, limits in config.keyed.items():
        for key, limit in limits.items():
            who = "every " + ("run" if scope.startswith("run") else scope) \
                if key == "default" else key
            amount = f"{int(limit):,} {tokens}" if scope == "run_tokens" else usd(limit)
            echo(f"{scope.replace('_', '-'):<18} {amount} ({who})")
    if config.concurrent_agents is not None:
        echo(f"{'concurrent-agents':<18} {config.concurrent_agents} sessions at work "
             f"(idle after {config.active_minutes} min)")
    channels = "; ".join(
        f"{name} at {', '.join(f'{t}%' for t in at)}" for name, at in config.channels.items())
    echo(f"\nAlerts at {', '.join(f'{t}%' for t in config.thresholds)} in Claude Code"
         + (f"; {channels}" if channels else "")
         + (f"\nWebhook {webhook}" if webhook else "")
         + (f"\nCommand {' '.join(config.command)}" if config.command else "")
         + (f"\nEmail to {', '.join(email.to)} via {email.host}:{email.port}"
            if email else ""))
    echo("Config: " + (", ".join(config.sources) or "none yet"))
    for note in config.ignored:
        echo(f"note: {note}")


def _bar(percent: float) -> str:
    filled = min(BAR_WIDTH, int(round(percent / 100 * BAR_WIDTH)))
    return "#" * filled + "." * (BAR_WIDTH - filled)


@budget.command()
@project_option
@click.option("--no-scan", is_flag=True, help="Use the ledger as it is.")
@output_options
def status(project: Path | None, no_scan: bool, as_json: bool) -> None:
    """Every budget: spent, limit, percent, remaining, when it resets.

    Exits 11 when any budget is exhausted (for scripts and CI).
    """
    from cmat.budgets.limits import status_report
    from cmat.claude.install import note_enforcement
    from cmat.cli.report import scan_first

    resolved = paths.project_dir(project)
    ledger, _ = scan_first(no_scan, (), quiet=True)
    with ledger:
        report = note_enforcement(status_report(resolved, ledger, clock.now()), resolved)
    for note in report["ignored"]:
        echo(f"cmat: note: {note}", err=True)
    if as_json:
        emit_json(report)
        leave(BUDGET_SPENT if report["exhausted"] else OK)
    if not report["budgets"] and not report["concurrency"]:
        echo("No budgets apply here. Set one with: cmat budget set daily 50")
        leave(OK)
    from cmat.colour import percent_level

    rows = []
    for b in report["budgets"]:
        amount = usd if b["unit"] == "usd" else (lambda v: f"{int(v):,}")
        state = ("overridden" if b["overridden"] else "EXHAUSTED") if b["exhausted"] else ""
        reset = b["reset_at"][5:16].replace("T", " ") if b["reset_at"] else "-"
        level = percent_level(b["percent"], report["thresholds"])
        rows.append([b["label"], amount(b["spent"]), amount(b["limit"]),
                     styled(f"{b['percent']:.0f}%", level), amount(b["remaining"]), reset,
                     styled(_bar(b["percent"]), level), styled(state, "bold red")])
    concurrency = report["concurrency"]
    if concurrency:
        percent = concurrency["running"] / max(concurrency["limit"], 1) * 100
        level = "exhausted" if concurrency["full"] else percent_level(percent,
                                                                      report["thresholds"])
        rows.append([concurrency["label"], str(concurrency["running"]),
                     str(concurrency["limit"]), styled(f"{percent:.0f}%", level),
                     str(max(concurrency["limit"] - concurrency["running"], 0)), "-",
                     styled(_bar(percent), level),
                     styled("FULL" if concurrency["full"] else "", "bold red")])
    headers = ["Budget", "Spent", "Limit", "Used", "Left", "Resets", "", ""]
    if not any(b["exhausted"] for b in report["budgets"]) and not (
            concurrency and concurrency["full"]):
        headers, rows = headers[:-1], [row[:-1] for row in rows]  # no state to show
    echo(table(rows, headers, numeric_from=1))
    if concurrency and concurrency["sessions"]:
        from cmat.budgets.concurrency import Running

        now = clock.now()
        echo("\nAt work: " + "; ".join(
            Running(**s).describe(now) for s in concurrency["sessions"]))
    echo(f"\n{times_in(report['timezone'])}")
    for o in report["overrides"]:
        echo(f"Override of {o['scope']} until "
             f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(o['until']))} by {o['by']}"
             + (f": {o['reason']}" if o["reason"] else ""))
    if report["not_enforced"]:
        echo(wrapped("Not enforced here: ", report["not_enforced"]))
    leave(BUDGET_SPENT if report["exhausted"] else OK)


@budget.command()
@project_option
@click.option("--task", "task_id", metavar="ID",
              help="The task about to run (default: the current one, if any).")
@click.option("--start", is_flag=True,
              help="Also refuse when every concurrent-agents slot is taken, so that starting "
                   "another agent session now would exceed it.")
@click.option("--estimate", is_flag=True,
              help="Also refuse when the estimated 90th percentile cost of the task (cmat "
                   "estimate, from past tasks like it) exceeds what a budget has left.")
@click.option("--no-scan", is_flag=True, help="Use the ledger as it is.")
@output_options
def check(project: Path | None, task_id: str | None, start: bool, estimate: bool,
          no_scan: bool, as_json: bool) -> None:
    """Whether work may go on here: exit 0 if so, 11 if a budget stands in the way.

    For orchestrators, before starting an agent: a budget that applies (user-wide, this
    project's, the task's and its enhancement's) is exhausted and not overridden; with
    --estimate, one has less left than the task will likely cost (its estimated 90th
    percentile); with --start, as many sessions are at work as concurrent-agents allows
    (queue the run).
    """
    from cmat.budgets import concurrency
    from cmat.budgets.config import load_config
    from cmat.budgets.limits import exhausted_now, overridden
    from cmat.cli.report import scan_first

    resolved = paths.project_dir(project)
    config = load_config(resolved)
    ledger, _ = scan_first(no_scan, (), quiet=True)
    now = clock.now()
    likely = None
    with ledger:
        exhausted = exhausted_now(resolved, ledger, now, None, task_id)
        if estimate:
            likely = _likely_cost(resolved, ledger, task_id)
            if likely and likely["p90_usd"] is not None:
                from cmat.budgets.limits import short_of

                known = {s.budget.key for s in exhausted}
                exhausted += [s for s in short_of(resolved, ledger, now, task_id,
                                                             likely["p90_usd"])
                              if s.budget.key not in known]
        at_work = concurrency.running(ledger, config, now) if start else []
        full = start and config.concurrent_agents is not None \
            and len(at_work) >= config.concurrent_agents \
            and not overridden(ledger, "concurrent-agents", now)
    reasons = [s.exhausted_message() if s.exhausted else
               f"{s.budget.label}: {s.amount(s.remaining)} left, less than the task's "
               f"estimated 90th percentile {usd(likely['p90_usd'])} (from "
               f"{likely['tasks']} past tasks)" for s in exhausted]
    if full:
        reasons.append(concurrency.held_message(at_work, config, now))
    if as_json:
        emit_json({"ok": not reasons, "estimate": likely,
                   "exhausted": [s.to_json() for s in exhausted],
                   "concurrency": {"limit": config.concurrent_agents, "running": len(at_work),
                                   "full": full} if start else None, "reasons": reasons})
    else:
        echo("\n\n".join(reasons) if reasons else "ok: no budget stands in the way")
    leave(BUDGET_SPENT if reasons else OK)


def _likely_cost(project: Path, ledger, task_id: str | None) -> dict | None:
    """The estimate of a task about to run, from its agent, task type and enhancement."""
    from cmat.catalog import ModelService
    from cmat.errors import CmatError
    from cmat.insight.estimate import estimate_for_task

    try:
        estimated = estimate_for_task(ledger, ModelService(project), project, task_id)
    except CmatError:
        return None  # a task the queue lacks: checked against what is spent, not estimated
    if estimated is None:
        return None
    task_id, found = estimated
    return {"task": task_id, "tasks": found.tasks, "median_usd": found.median_usd,
            "p90_usd": found.p90_usd, "match": found.match, "notes": found.notes}


@budget.command()
@click.option("--for", "duration", metavar="DURATION",
              help="How long: 30m, 2h, 1d, 1h30m; 0m ends the override now.")
@click.option("--end", is_flag=True, help="End the override of --scope now (as --for 0m).")
@click.option("--scope", default="all", show_default=True,
              type=Choice(["all", *SCOPES]),
              help="Which budgets to lift.")
@click.option("--reason", help="Why; kept with the override in the ledger.")
def override(duration: str | None, end: bool, scope: str, reason: str | None) -> None:
    """Let work continue past exhausted budgets for a while (recorded with who and when).
    The newest override of a scope decides: `--end` (or `--for 0m`) ends it at once.

    For a single session, CMAT_OVERRIDE_LIMIT=1 in the environment does the same.
    """
    from cmat.budgets.limits import add_override, parse_duration
    from cmat.errors import UsageError
    from cmat.ledger import Ledger

    if end == (duration is not None):
        raise UsageError("give --for DURATION or --end, one of them")
    seconds = 0 if end else parse_duration(duration)
    if seconds:
        by_a_person("an override")
    with Ledger() as ledger:
        until = add_override(ledger, seconds, scope, reason, clock.now())
    if not seconds:
        echo(f"Override of budgets ({scope}) ended: they are enforced again")
        return
    echo(f"Budgets ({scope}) are not enforced until "
         f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(until))}")


@click.group()
def alerts() -> None:
    """Budget alerts: what fired, and their delivery to the webhook or command."""


@alerts.command("list")
@output_options
def list_alerts(as_json: bool) -> None:
    """Alerts that fired, newest first.

    Delivered: yes; no, with the tries so far (a failed channel is tried again later); or -
    for an alert no channel takes (none is configured for its threshold, or a higher one
    fired with it and was sent instead).
    """
    from cmat.ledger import Ledger

    with Ledger() as ledger:
        rows = ledger.alerts()
    if as_json:
        emit_json(rows)
        return
    if not rows:
        echo("No alerts have fired.")
        return
    echo(table([[time.strftime("%Y-%m-%d %H:%M", time.localtime(r["fired_at"])),
                 styled(r["level"], r["level"]), r["message"],
                 "-" if not r["channels"] else "yes" if r["delivered"]
                 else f"no ({r['attempts']} {'try' if r['attempts'] == 1 else 'tries'})"]
                for r in rows],
               ["Fired", "Level", "Alert", "Delivered"], numeric_from=4))
    errors = dict.fromkeys(r["last_error"] for r in rows
                           if r["channels"] and not r["delivered"] and r.get("last_error"))
    for error in errors:  # why a delivery failed, once for each reason
        echo(f"Not delivered: {error}")
    if errors:
        echo("A failed delivery is tried again at later budget checks, or now with: cmat "
             "alerts deliver")
    echo(f"\n{times_in()}")


@alerts.command()
@project_option
@click.option("--quiet", is_flag=True, help="Print nothing (as when run by a hook).")
def deliver(project: Path | None, quiet: bool) -> None:
    """Send undelivered alerts to the configured webhook and command now."""
    from cmat.budgets.alerts import deliver_pending
    from cmat.budgets.config import load_config
    from cmat.ledger import Ledger

    resolved = paths.project_dir(project)
    config = load_config(resolved)
    with Ledger() as ledger:
        delivered, failed = deliver_pending(ledger, config, clock.now())
        if failed:
            from cmat.claude.log import HookLog

            for alert in ledger.failing_alerts():
                HookLog(resolved).write(
                    "WARN", "alerts", f"alert {alert['budget']}@{alert['threshold']}% not "
                                      f"delivered (attempt {alert['attempts']}): "
                                      f"{alert['last_error']}")
    if not quiet:
        echo(f"Delivered {delivered}, failed {failed} (failures are retried later)")
    if failed and not quiet:
        leave(PROBLEMS_FOUND)
