"""Benchmark: `cmat hook pre-tool-use` as Claude Code runs it before every tool call (the real
script, JSON on stdin), with budgets set, a 1 GB history in the ledger and a 50 MB running
session that grows a little between calls. Interpreter start-up included. Target: median
under 80 ms. --run-limits adds per-run limits and a concurrency limit (the session is then
recorded as at work on every call).

    python -m benchmarks.budget_check [--history-gb 1.0] [--session-mb 50] [--runs 25]
                                      [--run-limits]
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
    args = live_arguments(__doc__, 50, ("--run-limits", "also per-run and concurrency limits"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env, project = project_with_history(root, args.history_gb, seed=2)
        user_config(env, "[budgets]\ndaily = 100000\nmonthly = 1000000\n"
                    + ("concurrent_agents = 5\n[budgets.run]\ndefault = 50000\n"
                       "[budgets.run_tokens]\ndefault = 1000000000\n" if args.run_limits else "")
                    + "[budgets.session]\ndefault = 50000\n[budgets.project]\ndaily = 50000\n")
        rng = random.Random(5)
        running = write_random_session_with_subagents(
            root / "running", "running-session", int(args.session_mb * 0.8e6),
            int(args.session_mb * 0.2e6), 2, rng, start_ts=time.time() - 3600)
        stdin = json.dumps({"session_id": "running-session", "transcript_path": str(running),
                            "hook_event_name": "PreToolUse", "tool_name": "Bash",
                            "tool_input": {"command": "ls"}}).encode()
        script = REPO / "hooks" / "on-pre-tool-use-budget.sh"

        def check() -> tuple[float, float]:
            return timed_run([str(script)], stdin, env)

        first = check()  # imports the whole running session
        runs = []
        growth = root / "growth.jsonl"
        for _ in range(args.runs):
            write_random_session(growth, 8_000, "running-session", rng, start_ts=time.time())
            with open(running, "ab") as out:  # the session grows between tool calls
                out.write(growth.read_bytes())
            runs.append(check())
    limits = ", with run and concurrency limits" if args.run_limits else ""
    print(f"cold: first call, importing the whole running session: {first[0] * 1000:.0f} ms")
    print(summary(f"warm: pre-tool-use check{limits}, {args.history_gb:g} GB ledger history, "
                  f"{args.session_mb:g} MB running session growing ~8 KB per call", runs, 80))


if __name__ == "__main__":
    main()
