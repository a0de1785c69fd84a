"""`cmat blocks`: the 5-hour windows of a Claude subscription's usage limit."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click

from cmat import clock
from cmat.blocks import short_model
from cmat.cli.ccusage import ccusage_blocks, ccusage_options
from cmat.cli.options import colour_option, json_or_ccusage_option
from cmat.cli.output import count, echo, emit_json, styled, table
from cmat.cli.report import options, scan_first, scan_options
from cmat.money import usd
from cmat.periods import iso_utc
from cmat.plans import duration


@click.command()
@click.option("--active", "-a", is_flag=True, help="Only the block under way, in detail.")
@click.option("--recent", "-r", is_flag=True,
              help="Only the blocks of the last 3 days, and the one under way.")
@click.option("--since", "-s",
              help="Blocks starting on or after this day, local (YYYY-MM-DD or YYYYMMDD; "
                   "YYYY-MM: its first day).")
@click.option("--until", "-u",
              help="Blocks starting on or before this day, local (YYYY-MM-DD or YYYYMMDD; "
                   "YYYY-MM: its last day).")
@click.option("--token-limit", "-t", metavar="N|max",
              help="Tokens a block may use: a number, or 'max' for your largest block before "
                   "the one under way. "
                   "Adds the share used, and the projected share of the active block.")
@click.option("--last", "last", type=click.IntRange(min=1), metavar="N",
              help="Only the N most recent blocks (and the gaps between them).")
@click.option("--order", "-o", type=click.Choice(["asc", "desc"]), default="asc",
              show_default=True, help="Oldest or newest block first.")
@click.option("--breakdown", "-b", is_flag=True, help="Each block's tokens and cost by model.")
@click.option("--timezone", "-z", "timezone_name", metavar="IANA",
              help="Time zone for the times and days shown (default: the machine's).")
@json_or_ccusage_option()
@colour_option
@options(scan_options, ccusage_options, ccusage_blocks)
def blocks(active: bool, recent: bool, since: str | None, until: str | None,
           token_limit: str | None, last: int | None, order: str, breakdown: bool,
           timezone_name: str | None, as_json: str | None, no_scan: bool,
           extra_paths: tuple[Path, ...], quiet: bool) -> None:
    """Your Claude Code usage in 5-hour blocks, the windows a Pro or Max plan's limit is
    counted in (other agents' requests are not in them).

    A block starts at the first request after the previous one ended (floored to the hour)
    and lasts 5 hours; silences longer than that are shown as gaps. For the block under way:
    the burn rate (tokens a minute, dollars an hour), the projection to its end if that rate
    holds, and the time left. Blocks are cut from cmat's own record, so they are an estimate
    of Claude's windows; Claude Code's own figures, when it gives them, are in `cmat limits`.
    """
    from cmat.blocks import RECENT_DAYS, block_json, ccusage_block, cut_blocks
    from cmat.blocks import token_limit as parse_limit
    from cmat.periods import parse_day, zone

    first, final = parse_day(since, "since"), parse_day(until, "until")
    tz = zone(timezone_name)
    ledger, _ = scan_first(no_scan, extra_paths, quiet)
    now = clock.now()
    with ledger:
        cut = cut_blocks(ledger.cached(["blocks"], ledger.block_usage), now)
    limit = parse_limit(token_limit, cut)
    chosen = [b for b in cut
              if (not active or b.active)
              and (not recent or b.active or b.start >= now - RECENT_DAYS * 86400)
              and (first is None or _day(b.start, tz) >= first)
              and (final is None or _day(b.start, tz) <= final)]
    if last:
        chosen = _last_blocks(chosen, last)
    if order == "desc":
        chosen.reverse()
    if as_json == "ccusage":
        emit_json({"blocks": [ccusage_block(b, now, limit) for b in chosen],
                   **({"message": "No active block"} if active and not chosen else {})})
        return
    if as_json:
        emit_json({"blocks": [block_json(b, now, limit, breakdown) for b in chosen],
                   "now": iso_utc(now)})
        return
    if not cut and not active:  # a history of other agents alone, or none
        echo("No Claude Code usage recorded: blocks are the 5-hour windows of Claude's plans,"
             " cut from Claude Code's requests alone (every agent's spend: cmat report daily"
             " --by app).")
        return
    if not chosen:
        echo("No active block: nothing was used in the last 5 hours." if active
             else "No usage recorded in this range.")
        return
    echo(_table(chosen, now, limit, tz, breakdown))
    current = next((b for b in chosen if b.active), None)
    if current is not None:
        echo("\n" + _active_text(current, now, limit, tz))


def _last_blocks(chosen: list, count: int) -> list:
    """The `count` most recent blocks of `chosen` (oldest first), with the gaps between them."""
    used = [index for index, block in enumerate(chosen) if not block.gap]
    return chosen[used[max(len(used) - count, 0)]:] if used else []


def _day(ts: float, tz) -> date:
    return datetime.fromtimestamp(ts, tz).date()


def _clock(ts: float, tz) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M")


def _table(chosen: list, now: float, limit: int | None, tz, breakdown: bool) -> str:
    headers = ["Start", "Status", "Models", "Tokens", *(["%"] if limit else []), "Cost"]
    rows = []
    for block in chosen:
        if block.gap:
            rows.append([styled(cell, "dim") for cell in [
                _clock(block.start, tz), f"gap {duration(block.end - block.start)}", "-", "-",
                *(["-"] if limit else []), "-"]])
            continue
        status = (styled(f"ACTIVE, {duration(block.end - now)} left", "green") if block.active
                  else duration(block.last_request - block.start))
        rows.append([_clock(block.start, tz), status,
                     ", ".join(short_model(m) for m in block.models[:2])
                     + (f" +{len(block.models) - 2}" if len(block.models) > 2 else ""),
                     count(block.total_tokens),
                     *([f"{block.total_tokens / limit * 100:.0f}%"] if limit else []),
                     usd(block.cost_usd, block.unpriced_requests)])
        if breakdown:
            rows += [["", "", f"  {short_model(model)}", count(tokens),
                      *([f"{tokens / limit * 100:.0f}%"] if limit else []),
                      usd(cost, unpriced)]
                     for model, (tokens, cost, unpriced) in block.per_model.items()]
    return table(rows, headers, numeric_from=3)


def _active_text(block, now: float, limit: int | None, tz) -> str:
    from cmat.blocks import limit_status

    lines = [f"Active block: {_clock(block.start, tz)} to {_clock(block.end, tz)} "
             f"({duration(block.end - now)} left)"]
    rate = block.burn_rate()
    if rate:
        lines.append(f"Burn rate: {count(round(rate['tokens_per_minute']))} tokens/min, "
                     f"{usd(rate['cost_per_hour'])}/hour")
    projection = block.projection(now)
    if projection:
        lines.append(f"Projected at the end: {count(projection['total_tokens'])} tokens, "
                     f"{usd(projection['cost_usd'])}")
    if limit:
        used = f"Limit: {count(limit)} tokens, {block.total_tokens / limit * 100:.0f}% used"
        if projection:
            used += (f", {projection['total_tokens'] / limit * 100:.0f}% projected "
                     f"({limit_status(projection['total_tokens'], limit)})")
        lines.append(used)
    return "\n".join(lines)
