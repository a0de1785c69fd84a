"""Benchmark: `cmat hook pre-tool-use` as Claude Code runs it before every tool call (the real
script, JSON on stdin), and `cmat hook prompt-submit` before every prompt, with budgets set,
a 1 GB history in the ledger and a 50 MB running session that grows a little between calls.
Interpreter start-up included. Side by side, in turns: `python -c pass`, the bare
interpreter. Target: median <= 2x the bare interpreter's. It also says how many checks ran in
full (the headroom cache answers the others, cmat/claude/headroom.py). --concurrency adds a
concurrency limit: the session is then recorded as at work by a full check at least once
a minute. --run-limits adds per-run limits and a concurrency limit (the cache then answers
the main thread's calls only: a subagent's run has a limit of its own). --busy-ledger has another session record
new requests in the ledger between calls (as its own checks, a report or the dashboard do),
so that every check also reads what was written since.

    python -m benchmarks.budget_check [--history-gb 1.0] [--session-mb 50] [--runs 25]
                                      [--concurrency] [--run-limits] [--busy-ledger]
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
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
    args = live_arguments(__doc__, 50, ("--concurrency", "also a concurrency limit"),
                          ("--run-limits", "also per-run and concurrency limits"),
                          ("--busy-ledger", "another session writes the ledger between calls"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env, project = project_with_history(root, args.history_gb, seed=2)
        user_config(env, "[budgets]\ndaily = 100000\nmonthly = 1000000\n"
                    + ("concurrent_agents = 5\n" if args.concurrency or args.run_limits
                       else "")
                    + ("[budgets.run]\ndefault = 50000\n"
                       "[budgets.run_tokens]\ndefault = 1000000000\n" if args.run_limits else "")
                    + "[budgets.session]\ndefault = 50000\n[budgets.project]\ndaily = 50000\n")
        running = running_session(root / "running", "running-session", args.session_mb, seed=5)
        rng = random.Random(6)
        stdin = json.dumps({"session_id": "running-session", "transcript_path": str(running),
                            "hook_event_name": "PreToolUse", "tool_name": "Bash",
                            "tool_input": {"command": "ls"}}).encode()
        script = REPO / "hooks" / "on-pre-tool-use-budget.sh"

        prompt = REPO / "hooks" / "on-prompt-submit-budget.sh"
        prompt_stdin = json.dumps({"session_id": "running-session",
                                   "transcript_path": str(running),
                                   "hook_event_name": "UserPromptSubmit",
                                   "prompt": "carry on"}).encode()
        cache = Path(env["XDG_CACHE_HOME"]) / "cmat" / "headroom"

        def written() -> float:
            return max((p.stat().st_mtime_ns for p in cache.glob("*")), default=0)

        first = timed_run([str(script)], stdin, env)  # imports the whole running session
        bare, runs, prompts = [], [], []
        full = 0
        growth = root / "growth.jsonl"
        for _ in range(args.runs):
            write_random_session(growth, 8_000, "running-session", rng, start_ts=time.time())
            with open(running, "ab") as out:  # the session grows between tool calls
                out.write(growth.read_bytes())
            if args.busy_ledger:
                other = Path(env["CLAUDE_CONFIG_DIR"]) / "projects" / "-other" / "other.jsonl"
                write_random_session(growth, 4_000, "other-session", rng, start_ts=time.time())
                other.parent.mkdir(parents=True, exist_ok=True)
                with open(other, "ab") as out:
                    out.write(growth.read_bytes())
                subprocess.run([sys.executable, "-m", "cmat", "scan", "--quiet"], env=env,
                               check=True, stdout=subprocess.DEVNULL)
            bare.append(timed_run([sys.executable, "-c", "pass"], b"", env))
            before = written()
            runs.append(timed_run([str(script)], stdin, env))
            full += written() != before
            prompts.append(timed_run([str(prompt)], prompt_stdin, env))
    baseline = statistics.median(w for w, _ in bare) * 1000
    limits = (", with run and concurrency limits" if args.run_limits else
              ", with a concurrency limit" if args.concurrency else "") + (
        ", another session writing the ledger between calls" if args.busy_ledger else "")
    print(f"cold: first call, importing the whole running session: {first[0] * 1000:.0f} ms")
    print(summary("bare interpreter, python -c pass", bare, float("inf")).split(" (target")[0])
    print(summary(f"warm: pre-tool-use check{limits}, {args.history_gb:g} GB ledger history, "
                  f"{args.session_mb:g} MB running session growing ~8 KB per call", runs,
                  2 * baseline))
    print(f"  of which {full} of {len(runs)} ran in full (the cache answered the others)")
    print(summary("warm: prompt-submit check, same session", prompts, 2 * baseline))


if __name__ == "__main__":
    main()
