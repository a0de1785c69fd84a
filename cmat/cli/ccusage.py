"""ccusage's spellings: its options and commands as its users type them, each run as cmat
runs it or refused with what to do instead, never met with click's bare "no such option"
(every option of ccusage 20.0.24's reports and blocks; listed in docs/pricing.md, "Coming
from ccusage"). Hidden from --help: cmat's own names are the ones it teaches."""

from __future__ import annotations

import click

from cmat.usage import APPS


def _refused_unless(accepted, hint: str):
    """The callback of a ccusage option cmat takes only where `accepted(value)` (a value
    cmat does anyway); any other value is refused with `hint`, what to do instead (click's
    "no such option" would leave its users guessing)."""
    def check(_context, _parameter, value) -> None:
        if value is not None and not accepted(value):
            raise click.UsageError(hint)
    return check


def _refused(hint: str):
    """The callback of a ccusage option cmat has no use for: given, refused with `hint`."""
    return _refused_unless(lambda value: not value, hint)


def _accepted(*names: str, help: str):
    """A ccusage flag with nothing to do in cmat: taken, and nothing done."""
    return click.option(*names, is_flag=True, hidden=True, expose_value=False, help=help)


# `--agent codex`, as other tools spell it: what this one calls it.
_other_agent = _refused_unless(
    lambda _: False, "reports take the coding agent as --app (" + ", ".join(APPS)
    + "); --by app groups by it, and --by agent by the subagent's type")
# ccusage's --mode: auto and calculate are what cmat always does.
_calculated_only = _refused_unless(
    lambda mode: mode != "display",
    "cmat computes every cost from its catalog, never from a transcript's costUSD (Claude "
    "Code wrote it only before 1.0.9): leave out --mode display")
# ccusage's --start-of-week: cmat's weeks start on Monday.
_iso_weeks_only = _refused_unless(
    lambda day: day.lower() == "monday",
    "cmat's weeks are ISO weeks, from Monday (as ccusage's weekly report across agents): "
    "leave out --start-of-week")
# ccusage's --speed (`ccusage codex daily`): cmat prices Codex at the standard tier.
_standard_speed_only = _refused_unless(
    lambda speed: speed.lower() in ("auto", "standard"),
    "a Codex rollout does not say which service tier served a request, so cmat prices each at "
    "the standard tier (ccusage's fast, and its auto with service_tier = \"fast\" in "
    "config.toml, apply one guess to every request): leave out --speed")
# ccusage's --session-length: a plan's limit is counted in 5-hour windows.
_five_hours_only = _refused_unless(
    lambda hours: hours == 5,
    "a plan's usage limit is counted in 5-hour windows, and so are cmat's blocks: leave out "
    "--session-length")


# On every ccusage command cmat has: the reports and blocks.
ccusage_options = [
    click.option("--offline/--no-offline", "-O", default=None, hidden=True, expose_value=False,
                 help="ccusage's; cmat's prices are its catalog's, never fetched."),
    click.option("--mode", "-m", type=click.Choice(["auto", "calculate", "display"]),
                 hidden=True, expose_value=False, callback=_calculated_only),
    _accepted("--single-thread", help="ccusage's; cmat chooses its processes by the read's size."),
    click.option("--debug", "-d", "--debug-samples", is_flag=False, flag_value="5",
                 hidden=True, expose_value=False, callback=_refused(
                     "cmat prices every request from its catalog, never from a transcript's "
                     "costUSD, so there is no mismatch to show: 'cmat models check' names "
                     "the models priced from an unconfirmed source or not at all")),
    click.option("--config", hidden=True, expose_value=False, callback=_refused(
        "cmat does not read ccusage's configuration file: give the options on the command "
        "line (cmat's own settings, budgets and alerts, are in ~/.config/cmat/config.toml)")),
]
ccusage_grouping = [
    click.option("--breakdown", "-b", is_flag=True, hidden=True, help="--by model"),
    click.option("--instances", "-i", is_flag=True, hidden=True, help="--by project"),
]
# ccusage 20's reports across agents: daily, weekly, monthly and session.
ccusage_reports = [
    _accepted("--all", help="ccusage's; cmat's reports hold every agent's usage already."),
    click.option("--by-agent", is_flag=True, hidden=True, help="--by app"),
    click.option("--no-cost", is_flag=True, hidden=True, help="No cost columns in the table."),
    click.option("--sections", hidden=True, expose_value=False, callback=_refused(
        "cmat prints one report a command, each quick after the first: run 'cmat daily', "
        "'cmat weekly', 'cmat monthly' or 'cmat session' for each")),
    click.option("--project-aliases", hidden=True, expose_value=False, callback=_refused(
        "cmat names each project by its folder: --project takes any text found in it")),
    click.option("--speed", hidden=True, expose_value=False, callback=_standard_speed_only),
]
ccusage_weeks = [
    click.option("--start-of-week", "-w", hidden=True, expose_value=False,
                 callback=_iso_weeks_only),
]
# Other tools' spelling of --app (`--agent codex`).
other_agent_option = click.option("--agent", hidden=True, expose_value=False,
                                  callback=_other_agent)
ccusage_one_session = [
    click.option("--id", "-i", "session_id", hidden=True,
                 help="One session's totals: from its transcript, else from the ledger."),
]
ccusage_blocks = [
    click.option("--compact", is_flag=True, hidden=True, expose_value=False,
                 help="ccusage's; the block table is narrow already."),
    click.option("--session-length", "-n", type=float, hidden=True, expose_value=False,
                 callback=_five_hours_only),
    click.option("--live", is_flag=True, hidden=True, expose_value=False, callback=_refused(
        "the live view of the block under way is a command of its own: cmat live")),
]
