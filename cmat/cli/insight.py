"""`cmat optimize` and `cmat estimate`: what to change to spend less, and what the next task
or prompt will cost."""

from __future__ import annotations

import time
from pathlib import Path

import click

from cmat import clock
from cmat.cli.options import output_options
from cmat.cli.output import count, echo, emit_json, terminal_width
from cmat.cli.report import options, scan_first, scan_options
from cmat.money import usd

period_options = [
    click.option("--period", default="30d", show_default=True, metavar="Nd|all",
                 help="The last N days, or all of the history."),
    click.option("--since", metavar="DAY",
                 help="From this day on, local time (YYYY-MM-DD or YYYYMMDD; YYYY-MM: its "
                      "first)."),
    click.option("--until", metavar="DAY",
                 help="Up to this day, included (YYYY-MM-DD or YYYYMMDD; YYYY-MM: its last)."),
]


@click.command()
@options(period_options)
@click.option("--project", "project_filter", metavar="DIR|TEXT",
              help="Only this project: a folder, or text found in the working directory.")
@click.option("--task", metavar="ID", help="Only the sessions of this task.")
@click.option("--enhancement", metavar="NAME", help="Only the sessions of this enhancement.")
@output_options
@options(scan_options)
def optimize(period: str, since: str | None, until: str | None, project_filter: str | None,
             task: str | None, enhancement: str | None, as_json: bool, no_scan: bool,
             extra_paths: tuple[Path, ...], quiet: bool) -> None:
    """What to change to spend less, with the dollars each change would have saved.

    Each saving is the period's own requests priced again as they would have been billed
    after the change: the same work on a cheaper model (where that model did the same kind
    of work), cache writes kept for an hour (or not), prompts kept under a long-prompt tier;
    and the cost of responses and subagent runs that were thrown away, and of sessions far
    above their agent's usual. Suggestions are ranked by dollars; savings of two suggestions
    may overlap, so their total is an upper bound. A cheaper model is a candidate to try,
    not a promise of the same quality.
    """
    from cmat.insight.optimize import optimize as suggest
    from cmat.periods import local_zone, recent_window
    from cmat.reports import project_filter as match_project

    start, end = recent_window(period, since, until, local_zone(), clock.now())
    ledger, models = scan_first(no_scan, extra_paths, quiet)
    with ledger:
        found = suggest(ledger, models, start, end, match_project(project_filter), task,
                        enhancement)
    if as_json:
        emit_json(found)
        return
    echo(_text(found))


def _text(found: dict) -> str:
    import textwrap

    width = min(terminal_width() or 100, 100)
    since = time.strftime("%Y-%m-%d", time.localtime(found["since"])) if found["since"] \
        else "the start"
    if not found["requests"]:
        return (f"No usage recorded since {since}: --period all looks at the whole history."
                if found["since"] else "No usage recorded.")
    lines = [f"Potential savings since {since}: {usd(found['potential_savings_usd'])} of "
             f"{usd(found['cost_usd'])} spent over {count(found['requests'], 'request')}"]
    if not found["suggestions"]:
        lines.append("No suggestion: nothing in this period would have cost less another way.")
    else:
        lines.append("(two suggestions may save on the same requests: the total is an upper "
                     "bound)")
    for rank, suggestion in enumerate(found["suggestions"], 1):
        head = f"{rank:>2}. {usd(suggestion['savings_usd']):>10}  "
        indent = " " * len(head)
        lines.append("")
        lines += textwrap.wrap(suggestion["title"], width, initial_indent=head,
                               subsequent_indent=indent)
        lines += textwrap.wrap(suggestion["action"], width, initial_indent=indent,
                               subsequent_indent=indent)
        evidence = suggestion["evidence"]
        said = [f"{count(evidence['requests'], 'request')}",
                f"{count(len(evidence['sessions']), 'session')} ({_some(evidence['sessions'], 8)})"]
        if evidence["tasks"]:
            said.append(f"tasks {_some(evidence['tasks'], 30)}")
        if evidence["agents"]:
            said.append(f"agents {_some(evidence['agents'], 20)}")
        lines += textwrap.wrap("Evidence: " + "; ".join(said), width, initial_indent=indent,
                               subsequent_indent=indent)
    ratios = found["cache_hit_ratio_by_project"]
    if ratios:
        lines.append("\nCache hit ratio (share of prompts read from cache), costliest "
                     "projects first:")
        for row in ratios[:5]:
            name = (row["project"] or "?").rstrip("/").rsplit("/", 1)[-1]
            lines.append(f"  {name[:40]:<40} {row['cache_hit_ratio']:>5.0%}  "
                         f"{usd(row['cost_usd'])}")
    if found["api_error_lines"]:
        lines.append(f"\nAPI error lines: {found['api_error_lines']} in "
                     f"{count(len(found['sessions_with_api_errors']), 'session')} (not billed)")
    return "\n".join(lines)


def _some(values: list[str], cut: int, shown: int = 3) -> str:
    names = [v[:cut] for v in values[:shown]]
    return ", ".join(names) + (f" and {len(values) - shown} more" if len(values) > shown else "")


@click.command()
@click.option("--agent", metavar="NAME", help="The agent the task is for (CMAT's assigned_agent).")
@click.option("--task-type", metavar="TYPE", help="Its task type (analysis, implementation, ...).")
@click.option("--enhancement", metavar="NAME", help="Its enhancement.")
@click.option("--model", metavar="ID",
              help="Price on this model (default: the catalog's default, cmat models "
                   "set-default).")
@click.option("--prompt-file", type=click.File("r"), metavar="FILE|-",
              help="Estimate this prompt instead (- reads standard input).")
@click.option("--output-tokens", type=click.IntRange(min=0), metavar="N",
              help="With --prompt-file: the answer's length (default: your median response).")
@output_options
@options(scan_options)
def estimate(agent: str | None, task_type: str | None, enhancement: str | None,
             model: str | None, prompt_file, output_tokens: int | None, as_json: bool,
             no_scan: bool, extra_paths: tuple[Path, ...], quiet: bool) -> None:
    """What the next task will cost, from your own past tasks; or what a prompt costs.

    A task: the median and 90th percentile of past tasks of the same agent (and task type
    and enhancement, when given), and the number of tasks they rest on; where fewer than
    five match, the match is widened and the answer says how. Also those tasks priced again
    on --model (else the default model).

    A prompt (--prompt-file FILE, or - for standard input): its tokens, estimated from its
    characters at the rate measured on your own transcripts, and the cost of sending it once
    uncached, with an answer of --output-tokens (else your median response). An
    approximation, within ~15 % for English and code.
    """
    ledger, models = scan_first(no_scan, extra_paths, quiet)
    with ledger:
        if prompt_file is not None:
            from cmat.insight.estimate import calibrate, estimate_prompt

            text = prompt_file.read()
            result = estimate_prompt(text, models, calibrate(
                [Path(p) for p in ledger.transcript_paths()]), model, output_tokens,
                ledger.output_per_request())
            if as_json:
                emit_json(result)
            else:
                echo(_prompt_text(result))
            return
        from cmat.insight.estimate import estimate_task

        result = estimate_task(ledger, models, agent, task_type, enhancement, model)
    if as_json:
        emit_json(result.to_json())
        return
    echo(_task_text(result))


def _task_text(result) -> str:
    from cmat.insight.estimate import match_words

    asked = f" of {match_words(result.match)}" if any(result.match.values()) else ""
    lines = [f"Past tasks{asked}: {result.tasks}"]
    if result.tasks:
        lines.append(f"Next task, as recorded: median {usd(result.median_usd)}, "
                     f"90th percentile {usd(result.p90_usd)}")
        if result.model:
            lines.append(f"Priced on {result.model}: median {usd(result.model_median_usd)}, "
                         f"90th percentile {usd(result.model_p90_usd)}")
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def _prompt_text(result: dict) -> str:
    return "\n".join([
        f"~{count(result['tokens'])} tokens ({count(result['characters'])} characters; "
        f"approximate: {result['calibration']})",
        f"Sent once to {result['model_name']}: {usd(result['input_usd'])} input + "
        f"{usd(result['output_usd'])} for {count(result['output_tokens'])} output tokens "
        f"({result['output_basis']}) = {usd(result['total_usd'])}"])
