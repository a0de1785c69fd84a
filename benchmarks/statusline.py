"""Benchmark: `cmat statusline` as Claude Code runs it every few seconds (the real script,
JSON on stdin), warm: a 1 GB history in the ledger and a running session that has already
been imported and grows a little between refreshes. Interpreter start-up included.
Target: median under 50 ms.

    python -m benchmarks.statusline [--history-gb 1.0] [--session-mb 20] [--runs 25]
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

from benchmarks.harness import live_arguments, project_with_history, summary, timed_run, user_config
from tests.transcript_factory import write_random_session, write_random_session_with_subagents

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    args = live_arguments(__doc__, session_mb=20)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env, project = project_with_history(root, args.history_gb, seed=3)
        user_config(env, "[budgets]\ndaily = 1000\n")
        rng = random.Random(6)
        running = write_random_session_with_subagents(
            root / "running", "running", int(args.session_mb * 0.8e6),
            int(args.session_mb * 0.2e6), 2, rng, start_ts=time.time() - 1800)
        stdin = json.dumps({  # what Claude Code sends a Max subscriber's status line
            "session_id": "running", "transcript_path": str(running),
            "cost": {"total_cost_usd": 1.0},
            "model": {"id": "claude-opus-4-6", "display_name": "Opus 4.6 (1M context)"},
            "context_window": {"used_percentage": 42, "context_window_size": 1_000_000},
            "rate_limits": {"five_hour": {"used_percentage": 37, "resets_at": time.time() + 7800},
                            "seven_day": {"used_percentage": 12,
                                          "resets_at": time.time() + 300_000}}}).encode()
        script = REPO / "hooks" / "cmat-statusline.sh"

        def refresh() -> tuple[float, float]:
            return timed_run([str(script)], stdin, env)

        first = refresh()
        unchanged = [refresh() for _ in range(args.runs)]
        growing = []
        growth = root / "growth.jsonl"
        for _ in range(args.runs):
            write_random_session(growth, 8_000, "running", rng, start_ts=time.time())
            with open(running, "ab") as out:
                out.write(growth.read_bytes())
            growing.append(refresh())
    print(f"cold: first refresh (imports the {args.session_mb:g} MB session): "
          f"{first[0] * 1000:.0f} ms")
    for label, runs in (("unchanged session", unchanged), ("session grew ~8 KB", growing)):
        print(summary(f"warm: statusline, {args.history_gb:g} GB history, {label}", runs, 50))


if __name__ == "__main__":
    main()
