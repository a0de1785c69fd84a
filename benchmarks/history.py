"""Benchmark: reports over a whole history, cmat against ccusage, in one run.

    python -m benchmarks.make_history /tmp/history          # once: 1.2 GB
    python -m benchmarks.history /tmp/history [--ccusage PATH]

Times, side by side:
- cold: `cmat report daily --json` on an empty ledger (with the compiled scanner, and in
  pure Python), the table the README's first command prints (80 columns), and
  `ccusage daily --json --offline`
  (npm ccusage@20.0.24 with @ccusage/ccusage-linux-x64@20.0.24, when found), in turns, a
  median of `--repeat` runs each, with the history already in the page cache; a cold run
  ends when its report is printed, and the next run waits for the indexes it left to a
  process of its own (how long they took is printed, not added);
- warm: the same cmat report again with nothing changed, and after appending 1 MB to one file;
- blocks: `cmat blocks --json` warm (cut from the whole history on every run) beside
  `ccusage blocks --json --offline`, in turns;
- peak memory: PSS of the whole process tree (workers' shared pages counted once), from one
  more cold run of each tool, sampled every 10 ms; the timed runs are not sampled.
It also compares the token totals of both tools.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.harness import compile_bytecode
from tests.helpers import wait_for_indexes_built
from tests.transcript_factory import write_random_session


def _tree_memory_kb(root: int) -> int:
    """Proportional set size of a process and its descendants: pages a forked worker shares
    with its parent are counted once, split between them, not once per process as RSS does."""
    total = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as children:
                    stack.extend(int(c) for c in children.read().split())
        except (OSError, ValueError):
            continue
    return total


def measure(cmd: list[str], env: dict, sample: bool = True) -> tuple[float, float, bytes]:
    """Wall seconds, peak memory (PSS, MB) of the process tree, and stdout. Without
    `sample`, memory is not looked at (0): reading a process's smaps_rollup every 10 ms
    takes CPU from it on a 2-core machine, and its memory map's lock from its page faults,
    and the more processes a tool runs, the more so."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read()))
    reader.start()
    while sample and process.poll() is None:
        peak = max(peak, _tree_memory_kb(process.pid))
        time.sleep(0.01)
    process.wait()
    reader.join()
    wall = time.perf_counter() - start
    if process.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {process.stderr.read().decode()[-2000:]}")
    return wall, peak / 1024, output[0]


def find_ccusage(explicit: str | None) -> str | None:
    for candidate in (explicit, os.environ.get("CCUSAGE"),
                      str(Path(__file__).parent / "out" / "node_modules" / ".bin" / "ccusage"),
                      shutil.which("ccusage")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def token_totals_ccusage(data: dict) -> dict:
    rows = data.get("daily", [])
    return {"input": sum(r["inputTokens"] for r in rows),
            "output": sum(r["outputTokens"] for r in rows),
            "cache_creation": sum(r["cacheCreationTokens"] for r in rows),
            "cache_read": sum(r["cacheReadTokens"] for r in rows),
            "total_usd": sum(r["totalCost"] for r in rows)}


def single_file(gb: float) -> tuple[float, float]:
    """Scan one huge transcript into an empty ledger: wall seconds and peak MB."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "projects" / "-big"
        write_random_session(folder / "big.jsonl", int(gb * 1e9), "big", random.Random(9))
        env = dict(os.environ, CLAUDE_CONFIG_DIR=str(Path(tmp) / "none"),
                   CMAT_LEDGER=str(Path(tmp) / "ledger.db"), XDG_CACHE_HOME=tmp, HOME=tmp)
        wall, peak, _ = measure([sys.executable, "-m", "cmat", "scan", "--quiet", "--path",
                                 str(folder.parent)], env)
        wait_for_indexes_built(Path(tmp) / "ledger.db")
    return wall, peak


def read_all(files: list[Path]) -> None:
    """Bring the history into the page cache, so that whichever tool runs first does not pay
    for the disk: "cold" means an empty ledger here, not a cold disk cache."""
    for path in files:
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass


def median_run(runs: list[tuple[float, float, bytes]]) -> tuple[float, float, bytes]:
    """The run of median wall time, and the highest peak memory of all runs (those whose
    memory was sampled)."""
    timed = [run for run in runs if not run[1]] or runs
    ordered = sorted(timed, key=lambda run: run[0])
    wall, _, output = ordered[len(ordered) // 2]
    return wall, max(run[1] for run in runs), output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("history", type=Path, help="a folder made by make_history.py")
    parser.add_argument("--ccusage", help="path to the ccusage executable")
    parser.add_argument("--repeat", type=int, default=3,
                        help="cold runs of each tool, taken in turns; medians are printed")
    parser.add_argument("--single-file-gb", type=float, default=1.0,
                        help="also scan one file this large and report its peak memory (0: skip)")
    args = parser.parse_args()
    compile_bytecode()
    files = list(args.history.rglob("*.jsonl"))
    size = sum(p.stat().st_size for p in files)
    ccusage = find_ccusage(args.ccusage)
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.db"
        env = dict(os.environ, CLAUDE_CONFIG_DIR=str(args.history), TZ="UTC",
                   CMAT_LEDGER=str(ledger), XDG_CACHE_HOME=str(Path(tmp)), HOME=tmp)
        cmat = [sys.executable, "-m", "cmat", "report", "daily", "--json", "--quiet"]
        read_all(files)
        colds, pure_runs, table_runs, theirs_runs, behind = [], [], [], [], []
        pure_env = dict(env, CMAT_PURE_PYTHON="1")
        # The README's first command prints a table fitted to the terminal: COLUMNS says how
        # wide one is when the output goes to a pipe.
        table_command = ([*cmat[:-2], "--quiet"], dict(env, COLUMNS="80"), table_runs)
        # Timed runs in turns, their memory not sampled; then one sampled run of each.
        for sample in [False] * args.repeat + [True]:
            for command, run_env, runs in ((cmat, env, colds), (cmat, pure_env, pure_runs),
                                           table_command):
                for stale in Path(tmp).glob("ledger.db*"):
                    stale.unlink()
                runs.append(measure(command, run_env, sample))
                behind.append(wait_for_indexes_built(ledger))
            if ccusage:
                theirs_runs.append(measure([ccusage, "daily", "--json", "--offline"], env,
                                           sample))
        cold = median_run(colds)
        pure = median_run(pure_runs)
        if json.loads(pure[2])["total"] != json.loads(cold[2])["total"]:
            raise SystemExit("the pure-Python read gave other totals than the compiled one")
        theirs = median_run(theirs_runs) if theirs_runs else None
        warm = measure(cmat, env)
        # Blocks are cut from the whole history on every run: the warm command beside
        # ccusage's (which reads every file again), in turns.
        blocks_runs, their_blocks = [], []
        for _ in range(args.repeat):
            blocks_runs.append(measure([*cmat[:3], "blocks", "--json", "--quiet"], env))
            if ccusage:
                their_blocks.append(measure([ccusage, "blocks", "--json", "--offline"], env))
        target = max(files, key=lambda p: p.stat().st_size)
        backup = Path(tmp) / "backup.jsonl"
        shutil.copyfile(target, backup)
        try:
            appended = Path(tmp) / "append.jsonl"
            write_random_session(appended, 1_000_000, target.stem, random.Random(3))
            with open(target, "ab") as out:
                out.write(appended.read_bytes())
            after_append = measure(cmat, env)
        finally:
            shutil.copyfile(backup, target)
        mine = json.loads(cold[2])["total"]
    single = single_file(args.single_file_gb) if args.single_file_gb else None
    print(f"history: {size / 1e9:.2f} GB in {len(files)} files, 2 cores; "
          f"cold runs: median of {args.repeat}, taken in turns, page cache warm; peak memory"
          f" from one more run of each, sampled (sampling slows a run)")
    print(f"{'run':<44}{'wall':>10}{'peak PSS':>12}")
    print(f"{'cmat cold (empty ledger)':<44}{cold[0]:>9.2f}s{cold[1]:>10.0f}MB"
          f"   all: {', '.join(f'{run[0]:.2f}' for run in colds[:-1])}")
    print(f"{'cmat cold, pure Python (CMAT_PURE_PYTHON=1)':<44}{pure[0]:>9.2f}s"
          f"{pure[1]:>10.0f}MB   all: {', '.join(f'{run[0]:.2f}' for run in pure_runs[:-1])}")
    table = median_run(table_runs)
    print(f"{'cmat cold, the table at 80 columns':<44}{table[0]:>9.2f}s{table[1]:>10.0f}MB"
          f"   all: {', '.join(f'{run[0]:.2f}' for run in table_runs[:-1])}")
    if theirs:
        print(f"{'ccusage daily --offline':<44}{theirs[0]:>9.2f}s{theirs[1]:>10.0f}MB"
              f"   all: {', '.join(f'{run[0]:.2f}' for run in theirs_runs[:-1])}")
    print(f"{'  its indexes, built behind it (not timed)':<44}"
          f"{sorted(behind)[len(behind) // 2]:>9.2f}s   (median; each timed run waits for them)")
    print(f"{'cmat warm (nothing changed)':<44}{warm[0]:>9.2f}s{warm[1]:>10.0f}MB")
    print(f"{'cmat warm (1 MB appended to one file)':<44}{after_append[0]:>9.2f}s"
          f"{after_append[1]:>10.0f}MB")
    blocks = median_run(blocks_runs)
    print(f"{'cmat blocks (warm)':<44}{blocks[0]:>9.2f}s{blocks[1]:>10.0f}MB"
          f"   all: {', '.join(f'{run[0]:.2f}' for run in blocks_runs)}")
    if their_blocks:
        print(f"{'ccusage blocks --offline':<44}{median_run(their_blocks)[0]:>9.2f}s")
    if single:
        print(f"{f'cmat scan of one {args.single_file_gb:g} GB file':<44}{single[0]:>9.2f}s"
              f"{single[1]:>10.0f}MB")
    if theirs:
        print(f"cold ratio cmat/ccusage: {cold[0] / theirs[0]:.2f} (target <= 1.0, then 0.5"
              f"{': not met' if cold[0] > theirs[0] else ''})")
        their_totals = token_totals_ccusage(json.loads(theirs[2]))
        print("totals            cmat              ccusage")
        for key in ("input", "output", "cache_creation", "cache_read"):
            print(f"  {key:<16}{mine['tokens'][key]:>14,}{their_totals[key]:>18,}")
        print(f"  {'cost USD':<16}{mine['total_usd']:>14,.2f}{their_totals['total_usd']:>18,.2f}")
    else:
        print("ccusage not found: npm install --prefix benchmarks/out ccusage@20.0.24 "
              "@ccusage/ccusage-linux-x64@20.0.24")


if __name__ == "__main__":
    main()
