"""Cross-check: the same edge-case transcripts priced by cmat and by ccusage, case by case.

    python -m benchmarks.crosscheck [--ccusage PATH]

Each case is one session of a few requests; the expected figure comes from the pricing rules
(README, "How costs are computed"), computed independently of cmat.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
from benchmarks.history import find_ccusage
from tests.transcript_factory import TranscriptBuilder, write_session

SONNET = "claude-sonnet-4-5-20250929"


def cases() -> dict[str, TranscriptBuilder]:
    built = {}

    def case(name, build):
        builder = TranscriptBuilder(session_id=name)
        build(builder)
        built[name] = builder

    case("streamed lines (3 per response)", lambda b: [b.response(output=900, blocks=3)
                                                       for _ in range(3)])
    case("1-hour cache writes", lambda b: b.response(write_1h=100_000, output=100))
    case("long context: 150k read + 60k write", lambda b: b.response(
        input=10, read=150_000, write_5m=60_000, output=2000))
    case("long context: 210k uncached input", lambda b: b.response(input=210_000, output=2000))
    case("web searches (5)", lambda b: b.response(searches=5, output=100))
    case("fast mode (Opus 4.6)", lambda b: b.response(model="claude-opus-4-6", speed="fast",
                                                      input=1000, output=1000))
    case("sidechain replay", lambda b: b.replay(b.response(output=300)))
    case("Haiku 4.5", lambda b: b.response(model="claude-haiku-4-5-20251001", input=1000,
                                           output=1000, write_5m=1000, read=1000))
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ccusage")
    args = parser.parse_args()
    ccusage = find_ccusage(args.ccusage)
    print(f"{'case':<40}{'expected':>12}{'cmat':>12}{'ccusage':>12}")
    for name, builder in cases().items():
        with tempfile.TemporaryDirectory() as tmp:
            path = write_session(Path(tmp) / "projects" / "-case", builder)
            env = dict(os.environ, CLAUDE_CONFIG_DIR=tmp, HOME=tmp, XDG_CACHE_HOME=tmp)
            mine = json.loads(subprocess.run(
                [sys.executable, "-m", "cmat", "costs", "session", str(path), "--json"],
                env=env, capture_output=True, check=True).stdout)["total_usd"]
            theirs = None
            if ccusage:
                data = json.loads(subprocess.run([ccusage, "daily", "--json", "--offline"],
                                                 env=env, capture_output=True,
                                                 check=True).stdout)
                theirs = sum(day["totalCost"] for day in data["daily"])
        shown = f"{theirs:>12.6f}" if theirs is not None else f"{'-':>12}"
        print(f"{name:<40}{builder.expected_cost:>12.6f}{mine:>12.6f}{shown}")


if __name__ == "__main__":
    main()
