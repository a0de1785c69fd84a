"""Rendering helpers: numbers, tables and JSON, the same way in every command."""

from __future__ import annotations

import sys
import time

import orjson


def usd(value: float | None, places: int = 4, unpriced: int = 0) -> str:
    """An amount; `unpriced` requests (of models the catalog lacks) make it a lower bound,
    marked `+?`, and an amount that is nothing but unpriced reads "unpriced", never $0."""
    if value is None or (unpriced and not value):
        return "unpriced"
    return f"${value:,.{places}f}" + ("+?" if unpriced else "")


def count(value: int) -> str:
    return f"{value:,}"


def emit_json(data) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def table(rows: list[list], headers: list[str], numeric_from: int = 1) -> str:
    from tabulate import tabulate  # 70 ms to import: only where a table is printed

    align = ["left"] * numeric_from + ["right"] * (len(headers) - numeric_from)
    return tabulate(rows, headers=headers, colalign=align, disable_numparse=True)


def summary_text(report: dict) -> str:
    """Token totals, cost, a per-model table when several models were used, and warnings."""
    tokens = report["tokens"]
    writes = count(tokens["cache_creation"])
    if tokens.get("cache_creation_1h"):
        writes += f" (1-hour: {count(tokens['cache_creation_1h'])})"
    lines = [
        f"Input tokens:        {count(tokens['input'])}",
        f"Output tokens:       {count(tokens['output'])}",
        f"Cache write tokens:  {writes}",
        f"Cache read tokens:   {count(tokens['cache_read'])}",
    ]
    if report.get("web_search_requests"):
        lines.append(f"Web searches:        {count(report['web_search_requests'])}")
    lines.append(f"Requests:            {count(report['requests'])}")
    unpriced = sum(m["requests"] for m in report.get("models", []) if m["total_usd"] is None)
    lines.append(f"Total cost:          {usd(report['total_usd'], unpriced=unpriced)}")
    models = report.get("models", [])
    if len(models) > 1:
        rows = [[m["name"] or m["model"], count(m["requests"]), count(m["tokens"]["input"]),
                 count(m["tokens"]["output"]), count(m["tokens"]["cache_creation"]),
                 count(m["tokens"]["cache_read"]), usd(m["total_usd"])] for m in models]
        lines += ["", table(rows, ["Model", "Requests", "Input", "Output", "Cache write",
                                   "Cache read", "Cost"])]
    for model in report.get("unpriced_models", []):
        lines.append(f"\nwarning: model {model!r} is not in the price catalog; its tokens are "
                     f"counted but not its cost. Add it with: cmat models add {model} "
                     "--input PRICE --output PRICE")
    if report.get("skipped_lines"):
        lines.append(f"\nnote: {report['skipped_lines']} line(s) could not be read and were "
                     "skipped")
    return "\n".join(lines)


class TerminalProgress:
    """A one-line progress bar on stderr, shown only once a scan has run for a while."""

    def __init__(self, delay: float = 0.5):
        self.start = time.monotonic()
        self.delay = delay
        self.shown = False

    def __call__(self, files_done: int, files: int, bytes_done: int, total: int) -> None:
        if time.monotonic() - self.start < self.delay:
            return
        self.shown = True
        fraction = bytes_done / total if total else 1.0
        bar = "#" * int(fraction * 30)
        sys.stderr.write(f"\rscanning transcripts [{bar:<30}] {fraction:4.0%} "
                         f"{files_done}/{files} files, {bytes_done / 1e6:,.0f} MB")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 90 + "\r")
            sys.stderr.flush()
