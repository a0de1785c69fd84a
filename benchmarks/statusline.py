"""Benchmark: `cmat statusline` as Claude Code runs it every few seconds (the real script,
JSON on stdin), warm: a 1 GB history in the ledger and a running session that has already
been imported and grows a little between refreshes. Interpreter start-up included; the bare
interpreter (`python -c pass`) measured beside it. Target: median <= 2x the bare interpreter's.

    python -m benchmarks.statusline [--history-gb 1.0] [--session-mb 20] [--runs 25]
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import (
    live_arguments,
    project_with_history,
    running_session,
    summary,
    timed_run,
    user_config,
)
from tests.transcript_factory import write_random_session

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    args = live_arguments(__doc__, session_mb=20)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env, project = project_with_history(root, args.history_gb, seed=3)
        user_config(env, "[budgets]\ndaily = 1000\n")
        running = running_session(root / "running", "running", args.session_mb, seed=6)
        rng = random.Random(7)
        stdin = json.dumps({  # what Claude Code sends a Max subscriber's status line
            "session_id": "running", "transcript_path": str(running),
            "cost": {"total_cost_usd": 1.0},
            "model": {"id": "claude-opus-4-6", "display_name": "Opus 4.6 (1M context)"},
            "context_window": {"used_percentage": 42, "context_window_size": 1_000_000},
            "rate_limits": {"five_hour": {"used_percentage": 37, "resets_at": time.time() + 7800},
                            "seven_day": {"used_percentage": 12,
                                          "resets_at": time.time() + 300_000}}}).encode()
        script = REPO / "hooks" / "cmat-statusline.sh"
        cache = Path(env["XDG_CACHE_HOME"]) / "cmat" / "statusline"
        full = {"unchanged session": 0, "session grew ~8 KB": 0}

        def refresh(label: str = "") -> tuple[float, float]:
            before = [p.stat().st_mtime_ns for p in cache.glob("*")] if cache.is_dir() else []
            timing = timed_run([str(script)], stdin, env)
            if label and [p.stat().st_mtime_ns for p in cache.glob("*")] != before:
                full[label] += 1  # the cache was written again: a full build ran
            return timing

        first = refresh()
        bare = [timed_run([sys.executable, "-c", "pass"], b"", env) for _ in range(args.runs)]
        unchanged = [refresh("unchanged session") for _ in range(args.runs)]
        growing = []
        growth = root / "growth.jsonl"
        for _ in range(args.runs):
            write_random_session(growth, 8_000, "running", rng, start_ts=time.time(),
                                 model="claude-opus-4-6")  # the model the payload names
            with open(running, "ab") as out:
                out.write(growth.read_bytes())
            growing.append(refresh("session grew ~8 KB"))
    baseline = statistics.median(w for w, _ in bare) * 1000
    print(f"cold: first refresh (imports the {args.session_mb:g} MB session): "
          f"{first[0] * 1000:.0f} ms")
    print(summary("bare interpreter, python -c pass", bare, float("inf")).split(" (target")[0])
    for label, runs in (("unchanged session", unchanged), ("session grew ~8 KB", growing)):
        print(summary(f"warm: statusline, {args.history_gb:g} GB history, {label}", runs,
                      2 * baseline))
        print(f"  of which {full[label]} of {len(runs)} were built in full (the cache drew "
              "the others)")


if __name__ == "__main__":
    main()
