"""Benchmark: `cmat costs extract` on a 100 MB session with 30 MB of subagent files, and the
import time of `cmat --help` and `python -m cmat costs extract`.

Cold and warm are said apart: the first extract reads and stores the whole session (cold,
into a fresh ledger each time); a repeated one finds nothing new (warm). A median over both
would hide the cold figure behind the warm ones.

    python -m benchmarks.extract [--main-mb 100] [--sub-mb 30] [--runs 5]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import add_task, bench_project
from tests.helpers import wait_for_indexes_built
from tests.transcript_factory import write_random_session_with_subagents


def wall(cmd: list[str], env: dict, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def import_ms(cmd: list[str], env: dict, runs: int) -> float:
    """Median total of `-X importtime` over `runs` runs, in ms."""
    totals = []
    for _ in range(runs):
        result = subprocess.run([sys.executable, "-X", "importtime", *cmd], env=env,
                                capture_output=True, text=True, check=True)
        total = 0
        for line in result.stderr.splitlines():
            match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)", line)
            if match and not match.group(2).startswith(" "):
                total += int(match.group(1))
        totals.append(total / 1000)
    return statistics.median(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--main-mb", type=float, default=100)
    parser.add_argument("--sub-mb", type=float, default=30)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = bench_project(root)
        rng = random.Random(42)
        print(f"generating {args.main_mb:g} MB session + {args.sub_mb:g} MB of subagents ...",
              flush=True)
        main = write_random_session_with_subagents(
            root / "transcripts", "bench-session", int(args.main_mb * 1e6),
            int(args.sub_mb * 1e6), 6, rng)
        cmat = [sys.executable, "-m", "cmat"]
        task = add_task(env)
        subprocess.run([*cmat, "models", "list"], env=env, check=True, stdout=subprocess.DEVNULL)
        cold = []
        for run in range(args.runs):  # each into a ledger of its own: every one reads it all
            fresh = dict(env, CMAT_LEDGER=str(root / f"cold-{run}.db"))
            cold += wall([*cmat, "costs", "extract", task, str(main)], fresh, 1)
            wait_for_indexes_built(Path(fresh["CMAT_LEDGER"]))  # not timed: the hook has ended
        warm = wall([*cmat, "costs", "extract", task, str(main)],
                    dict(env, CMAT_LEDGER=str(root / f"cold-{args.runs - 1}.db")), args.runs)
        help_import = import_ms(["-m", "cmat", "--help"], env, args.runs)
        extract_import = import_ms(["-m", "cmat", "costs", "extract", task, str(main)], env, 3)
        help_wall = wall([*cmat, "--help"], env, args.runs)
    for kind, times in (("cold (first import)", cold), ("warm (nothing new)", warm)):
        print(f"costs extract, {args.main_mb:g} MB + {args.sub_mb:g} MB subagents, {kind}: "
              f"median {statistics.median(times):.3f} s, best {min(times):.3f} s "
              f"(target < 0.5 s{': not met' if statistics.median(times) >= 0.5 else ''})")
    print(f"cmat --help: import {help_import:.0f} ms, wall median "
          f"{statistics.median(help_wall) * 1000:.0f} ms (target import < 150 ms)")
    print(f"python -m cmat costs extract: import {extract_import:.0f} ms (target < 150 ms)")


if __name__ == "__main__":
    main()
