"""Benchmark: how the times people feel grow with their history. For each size (0.3, 1.2
and 4.8 GB of generated Claude Code history by default) it runs, one after the other:

- `benchmarks.history`: the cold report (empty ledger) beside ccusage, and the warm ones;
- `benchmarks.budget_check`: the check before every tool call and before every prompt,
  beside the bare interpreter;
- `benchmarks.statusline`: the status line refresh, unchanged and after the session grew;

and prints their figures together, size by size, with how each grew from the smallest size.
The team sync and team reports at 10 M requests are `benchmarks.team`'s (CI runs it).

    python -m benchmarks.growth [--sizes 0.3,1.2,4.8] [--runs 15] [--cold-runs 3]

Each size's history is written to a temporary folder and removed before the next (4.8 GB
needs about 12 GB free: the history, the ledger and a copy for the live benchmarks).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

FIGURE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s)\b")


def _run(args: list[str]) -> str:
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    if result.returncode != 0:
        return f"failed: {result.stderr.strip().splitlines()[-1:] or result.returncode}"
    return result.stdout


def _first_ms(text: str, start: str, within: str) -> float | None:
    """The first time (in ms) on the line that starts with `start` and holds `within`."""
    for line in text.splitlines():
        if line.strip().startswith(start) and within in line:
            found = FIGURE.search(line)
            if found:
                value = float(found.group(1))
                return value * 1000 if found.group(2) == "s" else value
    return None


ROWS = (  # (what, benchmark, the start of its line, and what else the line holds)
    ("cold report, empty ledger", "history", "cmat cold", ""),
    ("ccusage daily --offline", "history", "ccusage daily", ""),
    ("warm report, nothing changed", "history", "cmat warm (nothing", ""),
    ("warm report, 1 MB appended", "history", "cmat warm (1 MB", ""),
    ("cmat blocks, warm", "history", "cmat blocks (warm)", ""),
    ("bare interpreter", "budget", "bare interpreter", ""),
    ("budget check before a tool call", "budget", "warm: pre-tool-use", ""),
    ("budget check before a prompt", "budget", "warm: prompt-submit", ""),
    ("status line, session unchanged", "statusline", "warm: statusline", "unchanged"),
    ("status line, session grew", "statusline", "warm: statusline", "grew"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0.3,1.2,4.8")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--cold-runs", type=int, default=3,
                        help="cold runs of each tool, in turns; the median is kept")
    args = parser.parse_args()
    sizes = [float(size) for size in args.sizes.split(",")]
    outputs: dict[float, dict[str, str]] = {}
    for size in sizes:
        print(f"--- {size:g} GB", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            history = Path(tmp) / "history"
            _run(["benchmarks.make_history", str(history), "--gb", str(size)])
            found = {"history": _run(["benchmarks.history", str(history),
                                      "--single-file-gb", "0", "--repeat",
                                      str(args.cold_runs)])}
        found["budget"] = _run(["benchmarks.budget_check", "--history-gb", str(size),
                                "--runs", str(args.runs)])
        found["statusline"] = _run(["benchmarks.statusline", "--history-gb", str(size),
                                    "--runs", str(args.runs)])
        for text in found.values():
            print(text, flush=True)
        outputs[size] = found
    print(f"{'median':<34}" + "".join(f"{f'{size:g} GB':>12}" for size in sizes)
          + f"{'growth':>10}")
    for what, bench, start, within in ROWS:
        figures = [_first_ms(outputs[size][bench], start, within) for size in sizes]
        cells = "".join(f"{value:>10.0f}ms" if value is not None else f"{'-':>12}"
                        for value in figures)
        grew = (f"{figures[-1] / figures[0]:>9.1f}x" if figures[0] and figures[-1]
                else f"{'-':>10}")
        print(f"{what:<34}{cells}{grew}")
    print(f"history grew {sizes[-1] / sizes[0]:g}x")


if __name__ == "__main__":
    main()
