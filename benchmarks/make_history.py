"""Generate a realistic Claude Code history for benchmarks.

Log-normal file sizes (median ~100 KB, p90 ~650 KB), a few files of 50-90 MB, subagent folders
for about a third of the sessions, responses written as several lines, and resumed sessions
that copy part of an earlier one. 1.2 GB by default.

    python -m benchmarks.make_history OUT_DIR [--gb 1.2] [--seed 1]

OUT_DIR becomes a Claude Code configuration folder: OUT_DIR/projects/<project>/<session>.jsonl
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import sys
import uuid
from pathlib import Path

from tests.transcript_factory import write_random_session, write_random_session_with_subagents

MEDIAN_BYTES = 100_000
P90_BYTES = 650_000
SIGMA = (math.log(P90_BYTES) - math.log(MEDIAN_BYTES)) / 1.2816  # z of the 90th percentile
BIG_FILES_MB = (52, 64, 71, 83, 90)
DAY = 86400.0


def generate(out: Path, total_bytes: int, seed: int) -> dict:
    rng = random.Random(seed)
    projects = [f"-home-user-project-{index}" for index in range(20)]
    start = 1767225600.0  # 2026-01-01
    written = sessions = 0
    big = [int(mb * 1e6) for mb in BIG_FILES_MB if total_bytes > 600e6]
    while written < total_bytes:
        folder = out / "projects" / rng.choice(projects)
        session_id = str(uuid.UUID(int=rng.getrandbits(128)))
        size = big.pop() if big else int(rng.lognormvariate(math.log(MEDIAN_BYTES), SIGMA))
        size = min(size, total_bytes - written + 1000)
        when = start + rng.uniform(0, 90) * DAY
        cwd = "/" + folder.name.strip("-").replace("-", "/")
        if rng.random() < 0.33 and size > 20_000:
            sub = int(size * 0.3)
            main = write_random_session_with_subagents(
                folder, session_id, size - sub, sub, rng.randint(1, 3), rng, cwd=cwd,
                start_ts=when)
        else:
            main = folder / f"{session_id}.jsonl"
            write_random_session(main, size, session_id, rng, cwd=cwd, start_ts=when)
        if rng.random() < 0.05 and size < 2_000_000:  # a resumed session copies the old lines
            resumed = folder / f"{uuid.UUID(int=rng.getrandbits(128))}.jsonl"
            shutil.copyfile(main, resumed)
            written += resumed.stat().st_size
        written += sum(p.stat().st_size for p in main.parent.glob(f"{session_id}*")
                       if p.is_file())
        written += sum(p.stat().st_size for p in (folder / session_id).rglob("*.jsonl"))
        sessions += 1
    return {"bytes": written, "sessions": sessions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--gb", type=float, default=1.2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"{args.out} is not empty")
    made = generate(args.out, int(args.gb * 1e9), args.seed)
    print(f"wrote {made['bytes'] / 1e9:.2f} GB in {made['sessions']} sessions under {args.out}")


if __name__ == "__main__":
    main()
