"""Cross-check: cmat's 5-hour blocks against ccusage's on the same history, block by block.

    python -m benchmarks.blocks_crosscheck [HISTORY] [--ccusage PATH] [--mb 200]

HISTORY is a Claude Code configuration folder (with projects/); without one, a multi-week
history of --mb megabytes is generated (benchmarks.make_history). Both tools read it with an
empty ledger; the script prints how many blocks each found and every block whose start, end,
gap flag or token totals differ. ccusage: npm install --prefix benchmarks/out ccusage@20.0.24
@ccusage/ccusage-linux-x64@20.0.24.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from benchmarks.history import find_ccusage
from benchmarks.make_history import generate


def _seconds(text: str) -> float:
    """Whole seconds are compared: cmat prints them, ccusage milliseconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def cmat_blocks(history: Path, scratch: Path) -> list[tuple]:
    env = dict(os.environ, CLAUDE_CONFIG_DIR=str(history), CMAT_LEDGER=str(scratch / "l.db"),
               XDG_CACHE_HOME=str(scratch), TZ="UTC")
    out = subprocess.run([sys.executable, "-m", "cmat", "blocks", "--json", "-q"], env=env,
                         check=True, capture_output=True).stdout
    return [(int(_seconds(b["start"])), int(_seconds(b["end"])), b["gap"],
             tuple(b["tokens"][k] for k in ("input", "output", "cache_creation", "cache_read")))
            for b in json.loads(out)["blocks"]]


def ccusage_blocks(ccusage: str, history: Path, scratch: Path) -> list[tuple]:
    env = dict(os.environ, CLAUDE_CONFIG_DIR=str(history), HOME=str(scratch), TZ="UTC")
    out = subprocess.run([ccusage, "blocks", "--json", "--offline"], env=env, check=True,
                         capture_output=True).stdout
    return [(int(_seconds(b["startTime"])), int(_seconds(b["endTime"])), b["isGap"],
             tuple(b["tokenCounts"][k] for k in ("inputTokens", "outputTokens",
                                                  "cacheCreationInputTokens",
                                                  "cacheReadInputTokens")))
            for b in json.loads(out)["blocks"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("history", type=Path, nargs="?")
    parser.add_argument("--ccusage")
    parser.add_argument("--mb", type=float, default=200)
    args = parser.parse_args()
    ccusage = find_ccusage(args.ccusage)
    if ccusage is None:
        raise SystemExit("ccusage not found: see this script's docstring")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        history = args.history
        if history is None:
            history = scratch / "history"
            made = generate(history, int(args.mb * 1e6), seed=3)
            print(f"generated {made['bytes'] / 1e6:.0f} MB in {made['sessions']} sessions")
        mine, theirs = cmat_blocks(history, scratch), ccusage_blocks(ccusage, history, scratch)
    print(f"blocks: cmat {len(mine)}, ccusage {len(theirs)}")
    differing = [(a, b) for a, b in zip(mine, theirs) if a != b]
    for ours, other in differing[:20]:
        print(f"  cmat {ours}\n  ccusage {other}")
    agree = len(mine) == len(theirs) and not differing
    print("every block agrees: start, end, gap and token totals" if agree
          else f"{len(differing)} blocks differ")


if __name__ == "__main__":
    main()
