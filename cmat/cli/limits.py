"""`cmat limits`: where you stand against your plan's 5-hour and weekly limits."""

from __future__ import annotations

import click

from cmat import clock
from cmat.cli.options import output_options
from cmat.cli.output import count, echo, emit_json, table
from cmat.money import usd

WEEK_SECONDS = 7 * 86400


@click.command()
@click.option("--plan", type=click.Choice(["pro", "max5", "max20", "custom"]),
              help="Your subscription, for the estimate (default: `plan` in your config).")
@output_options
@click.option("--no-scan", is_flag=True,
              help="Answer from the ledger as it is, without importing new transcript lines.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def limits(plan: str | None, as_json: bool, no_scan: bool, quiet: bool) -> None:
    """Your plan's 5-hour and weekly windows: Claude Code's own figures, and cmat's estimate.

    \b
    Official: the last figures Claude Code gave the status line (Pro and Max plans), with how
      long ago; they need `cmat hooks install --statusline`.
    Estimate: the current 5-hour block's input and output tokens against the plan's
      allowance (presets are community estimates; `custom` is the 90th percentile of your
      own past blocks).
    Weekly: the last 7 days per model family, with the hours each was in use (a family
      is in use until 5 minutes after its latest request) beside the weekly hours
      Anthropic announced for the plan (Sonnet on Pro; Sonnet and Opus on Max).
    """
    from cmat import paths, plans
    from cmat.blocks import active_block, cut_blocks
    from cmat.budgets.config import load_config
    from cmat.cli.report import scan_first

    plan = plan or load_config(paths.project_dir()).plan
    now = clock.now()
    ledger, _ = scan_first(no_scan, (), quiet)
    with ledger:
        block = active_block(ledger, now)
        past = cut_blocks(ledger.block_usage(now - 30 * 86400), now) if plan == "custom" else []
        week = ledger.model_spend(now - WEEK_SECONDS)
        hours = plans.active_hours(ledger.model_times(now - WEEK_SECONDS))
    allowance, basis = plans.plan_tokens(plan, past)
    estimate = plans.block_estimate(block, allowance)
    families: dict[str, dict] = {}
    weekly_hours = plans.WEEKLY_HOURS.get(plan, {})
    for model, inp, out, writes, reads, requests, cost, priced in week:
        name = plans.family(model)
        row = families.setdefault(name, {
            "family": name, "tokens": 0, "requests": 0, "cost_usd": 0.0,
            "unpriced_requests": 0, "active_hours": round(hours.get(name, 0.0), 2),
            "plan_weekly_hours": weekly_hours.get(name)})
        row["tokens"] += inp + out + writes + reads
        row["requests"] += requests
        row["cost_usd"] += cost
        row["unpriced_requests"] += requests - priced
    official = plans.last_known()
    data = {
        "official": official,
        "estimate": {
            "plan": plan, "allowance_tokens": allowance, "basis": basis,
            "block": None if block is None else {
                "start": block.start, "end": block.end,
                "input_output_tokens": block.tokens["input"] + block.tokens["output"],
                "cost_usd": block.cost_usd, "used_percent": estimate},
        },
        "last_7_days": sorted(families.values(), key=lambda r: -r["cost_usd"]),
    }
    if as_json:
        emit_json(data)
        return
    echo(_text(data, now))


def _text(data: dict, now: float) -> str:
    from cmat import plans

    lines = []
    official = data["official"]
    if official:
        age = plans.until(now, official["observed_at"])
        for name, label in (("five_hour", "5-hour"), ("seven_day", "Weekly")):
            window = official[name]
            if window:
                lines.append(f"{label + ' (Claude Code):':<24}"
                             f"{window['used_percent']:.0f}% used, "
                             f"resets in {plans.until(window['resets_at'], now)}")
        lines.append(f"{'':<24}" + ("as of just now" if age == "now" else f"as of {age} ago"))
    else:
        lines.append("Claude Code's own figures: none seen yet. It gives them to the status\n"
                     "line on Pro and Max plans: cmat hooks install --statusline")
    estimate = data["estimate"]
    block = estimate["block"]
    if block is None:
        lines.append(f"{'5-hour (estimate):':<24}no block under way")
    elif block["used_percent"] is None:
        lines.append(f"{'5-hour (estimate):':<24}{count(block['input_output_tokens'])} tokens, "
                     f"{usd(block['cost_usd'])}, resets in {plans.until(block['end'], now)}")
        lines.append(f"{'':<24}{estimate['basis']}")
    else:
        lines.append(f"{'5-hour (estimate):':<24}~{block['used_percent']:.0f}% of "
                     f"{count(estimate['allowance_tokens'])} tokens, resets in "
                     f"{plans.until(block['end'], now)}")
        lines.append(f"{'':<24}{estimate['basis']}")
    rows = [[r["family"], count(r["requests"]), count(r["tokens"]),
             usd(r["cost_usd"], r["unpriced_requests"]), f"{r['active_hours']:.1f}",
             _plan_hours(r["plan_weekly_hours"])] for r in data["last_7_days"]]
    lines.append("\nLast 7 days by model family (hours: in use, and the plan's weekly hours):")
    lines.append(table(rows, ["Model", "Requests", "Tokens", "Cost", "Hours", "Plan"])
                 if rows else "no usage")
    return "\n".join(lines)


def _plan_hours(hours: tuple[int, int] | None) -> str:
    return f"{hours[0]}-{hours[1]} h" if hours else "-"
