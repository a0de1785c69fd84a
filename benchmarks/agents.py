"""Benchmark: a mixed history (Claude Code, Codex CLI, Gemini CLI, OpenCode), cmat against
ccusage on the same files, in one run.

    python -m benchmarks.agents [--claude-gb 0.3] [--codex-mb 100] [--gemini-mb 20]
                                [--opencode-steps 20000] [--repeat 3] [--ccusage PATH]

Writes each agent's logs where the agent keeps them, under one temporary HOME (Claude Code's
transcripts from benchmarks/make_history.py; the others from the writers the tests use,
tests/transcript_factory.py, with text of a realistic size around the usage), then prints:
- cold: `cmat report daily --json` on an empty ledger and `ccusage daily --json --offline`
  (every agent it detects), in turns, the median of `--repeat` runs each, page cache warm;
- warm: the same cmat report again with nothing changed, and after one more OpenCode step;
  then, once a long Codex session's rollout (`--codex-long-mb`) and a long Gemini CLI chat
  in its `.jsonl` form (`--gemini-long-mb`) were read, after each of `--repeat` more
  requests appended to it (as the agent writes them while a session goes on);
- each agent's requests, tokens and cost in both tools (`ccusage AGENT daily`), and where
  they differ, why (docs/agents.md): ccusage counts Gemini CLI's cached tokens inside input
  a second time and leaves out thoughts, and reads OpenCode's message (its last step) rather
  than each step.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import compile_bytecode
from benchmarks.history import find_ccusage, measure, median_run, read_all
from benchmarks.make_history import generate
from tests.helpers import wait_for_indexes_built
from tests.transcript_factory import CodexRollout, OpenCodeStore

DAY = 86400
START = "2026-01-05T09:00:00"
CODEX_MODELS = ("gpt-5-codex", "gpt-5.1-codex-max", "gpt-5.5")
GEMINI_MODELS = ("gemini-2.5-pro", "gemini-2.5-flash")
OPENCODE_MODELS = (("claude-sonnet-4-5", "anthropic"), ("gpt-5.1-codex", "openai"))
FILLER = "lorem ipsum dolor sit amet " * 40  # a tool's output, a reply's text: ~1 KB


def codex_history(home: Path, megabytes: float, rng: random.Random) -> int:
    """Rollouts of `megabytes` in all under `home`/sessions; returns how many requests."""
    written = requests = session = 0
    while written < megabytes * 1e6:
        session += 1
        day = 5 + session % 60
        rollout = CodexRollout(f"0199{session:04x}-0000-7000-8000-{session:012x}",
                               start=f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T10:00:00")
        rollout.turn(rng.choice(CODEX_MODELS))
        for _ in range(rng.randint(20, 150)):
            context = rng.randint(8_000, 180_000)
            rollout.request(context, cached=int(context * rng.uniform(0.5, 0.95)),
                            output=rng.randint(50, 3_000), reasoning=rng.randint(0, 40),
                            repeat=rng.random() < 0.5)
            rollout.lines.append({"timestamp": "2026-01-05T10:00:00.000Z",
                                  "type": "response_item",
                                  "payload": {"type": "message", "content": FILLER * 3}})
            requests += 1
        path = rollout.write(home / "sessions" / "2026" / f"rollout-{session:05d}.jsonl")
        written += path.stat().st_size
    return requests


def long_codex_rollout(codex_home: Path, megabytes: float, rng: random.Random
                       ) -> tuple[Path, Callable[[], bytes]]:
    """One long session's rollout of `megabytes` under `codex_home`/sessions, and what
    makes the line of its next request, as Codex appends it."""
    rollout = CodexRollout("0199ffff-0000-7000-8000-00000000ffff", start="2026-03-02T08:00:00")
    rollout.turn(rng.choice(CODEX_MODELS))
    path = codex_home / "sessions" / "2026" / "03" / "02" / f"rollout-{rollout.session_id}.jsonl"
    written = 0
    while written < megabytes * 1e6:
        context = rng.randint(8_000, 180_000)
        before = len(rollout.lines)
        rollout.request(context, cached=int(context * 0.8), output=rng.randint(50, 3_000),
                        repeat=rng.random() < 0.5)
        rollout.lines.append({"timestamp": "2026-03-02T10:00:00.000Z", "type": "response_item",
                              "payload": {"type": "message", "content": FILLER * 3}})
        written += sum(len(json.dumps(line)) + 1 for line in rollout.lines[before:])

    def next_request() -> bytes:
        rollout.request(20_000, cached=15_000, output=300)
        return json.dumps(rollout.lines[-1], separators=(",", ":")).encode() + b"\n"

    return rollout.write(path), next_request


def long_gemini_chat(home: Path, megabytes: float) -> tuple[Path, Callable[[], bytes]]:
    """One long `.jsonl` chat of `megabytes` under `home`/.gemini, each reply written first
    without its tokens and again with them, as Gemini CLI writes it; and what makes the
    lines of its next reply."""
    project_hash = hashlib.sha256(b"/home/dev/long-chat").hexdigest()
    folder = home / ".gemini" / "tmp" / project_hash / "chats"
    folder.mkdir(parents=True, exist_ok=True)
    replies = itertools.count()

    def reply() -> list[dict]:
        """A reply, written first without its tokens and again with them."""
        message = {"id": f"g{next(replies)}", "type": "gemini", "content": FILLER * 4,
                   "timestamp": "2026-02-28T10:00:30.000Z", "model": GEMINI_MODELS[0],
                   "tokens": {"input": 40_000, "cached": 30_000, "output": 400,
                              "thoughts": 100, "tool": 0}}
        return [{**message, "tokens": None}, message]

    lines = [{"sessionId": "long-chat", "projectHash": project_hash,
              "startTime": "2026-02-28T10:00:00.000Z"}]
    written = 0
    while written < megabytes * 1e6:
        lines += [{"id": f"u{len(lines)}", "type": "user", "content": FILLER * 2,
                   "timestamp": "2026-02-28T10:00:00.000Z"}, *reply()]
        written += sum(len(json.dumps(line)) + 1 for line in lines[-3:])
    path = folder / "session-2026-02-28T10-00-longchat.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path, lambda: "".join(json.dumps(line) + "\n" for line in reply()).encode()


def grown_runs(cmat: list[str], env: dict, path: Path, next_line: Callable[[], bytes],
               repeat: int) -> list:
    """The report once `path` was read, after each of `repeat` lines appended to it."""
    measure(cmat, env)  # read once, as the session went on
    runs = []
    for _ in range(repeat):
        with path.open("ab") as handle:
            handle.write(next_line())
        runs.append(measure(cmat, env))
    return runs


def print_run(label: str, runs: list) -> None:
    wall, peak, _ = median_run(runs)
    print(f"{label:<46}{wall:>8.2f}s{peak:>10.0f}MB   all: "
          f"{', '.join(f'{run[0]:.2f}' for run in runs)}")


def gemini_history(home: Path, megabytes: float, rng: random.Random) -> int:
    """Chat files of `megabytes` in all under `home`/.gemini, shaped as Gemini CLI writes
    them (in the folder of their project's hash, which they name); returns how many
    requests."""
    project_hash = hashlib.sha256(b"/home/dev/benchmark").hexdigest()
    folder = home / ".gemini" / "tmp" / project_hash / "chats"
    folder.mkdir(parents=True, exist_ok=True)
    written = requests = chat = 0
    while written < megabytes * 1e6:
        chat += 1
        messages = []
        for index in range(rng.randint(10, 80)):
            prompt = rng.randint(5_000, 120_000)
            messages += [{"id": f"u{index}", "type": "user", "content": FILLER,
                          "timestamp": f"2026-02-{1 + chat % 28:02d}T10:00:00.000Z"},
                         {"id": f"g{index}", "type": "gemini", "content": FILLER * 2,
                          "timestamp": f"2026-02-{1 + chat % 28:02d}T10:00:30.000Z",
                          "model": rng.choice(GEMINI_MODELS),
                          "tokens": {"input": prompt, "cached": int(prompt * 0.7),
                                     "output": rng.randint(50, 2_000),
                                     "thoughts": rng.randint(0, 800), "tool": 0}}]
            requests += 1
        path = folder / f"session-{chat:05d}.json"
        path.write_text(json.dumps({
            "sessionId": f"chat-{chat}", "projectHash": project_hash,
            "startTime": messages[0]["timestamp"], "lastUpdated": messages[-1]["timestamp"],
            "messages": messages}))
        written += path.stat().st_size
    return requests


def opencode_history(data: Path, steps: int, rng: random.Random) -> OpenCodeStore:
    """OpenCode's database under `data` with `steps` requests, a few per reply."""
    store = OpenCodeStore(data / "opencode.db", start="2026-03-01T09:00:00")
    done = session = 0
    store.db.execute("BEGIN")
    while done < steps:
        session += 1
        store.session(f"ses_{session:05d}")
        for _ in range(rng.randint(5, 40)):
            model, provider = rng.choice(OPENCODE_MODELS)
            reply = store.message(f"ses_{session:05d}", model, provider)
            for _ in range(rng.randint(1, 4)):
                context = rng.randint(2_000, 60_000)
                store.step(reply, rng.randint(100, 3_000), rng.randint(50, 2_000),
                           reasoning=rng.randint(0, 500), read=context,
                           write=rng.randint(0, 5_000))
                done += 1
    store.db.execute("COMMIT")
    return store


def per_agent_ccusage(ccusage: str, env: dict) -> dict:
    """Each agent's requests-free totals as ccusage counts them: tokens and cost."""
    found = {}
    for agent in ("claude", "codex", "gemini", "opencode"):
        result = subprocess.run([ccusage, agent, "daily", "--json", "--offline"], env=env,
                                capture_output=True, text=True)
        totals = json.loads(result.stdout or "{}").get("totals") or {}
        found[agent] = (totals.get("inputTokens", 0), totals.get("outputTokens", 0),
                        totals.get("cacheReadTokens", 0),
                        totals.get("totalCost", totals.get("costUSD", 0.0)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claude-gb", type=float, default=0.3)
    parser.add_argument("--codex-mb", type=float, default=100)
    parser.add_argument("--gemini-mb", type=float, default=20)
    parser.add_argument("--opencode-steps", type=int, default=20_000)
    parser.add_argument("--codex-long-mb", type=float, default=30)
    parser.add_argument("--gemini-long-mb", type=float, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ccusage", help="path to the ccusage executable")
    args = parser.parse_args()
    compile_bytecode()
    ccusage = find_ccusage(args.ccusage)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = root / "home"
        print("generating the history ...", flush=True)
        generate(root / "claude", int(args.claude_gb * 1e9), seed=1)
        codex_requests = codex_history(home / ".codex", args.codex_mb, rng)
        gemini_requests = gemini_history(home, args.gemini_mb, rng)
        store = opencode_history(home / ".local" / "share" / "opencode",
                                 args.opencode_steps, rng)
        files = [p for p in root.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        ledger = root / "ledger.db"
        env = dict(os.environ, HOME=str(home), CLAUDE_CONFIG_DIR=str(root / "claude"),
                   TZ="UTC", CMAT_LEDGER=str(ledger), XDG_CACHE_HOME=str(root / "cache"),
                   XDG_DATA_HOME=str(home / ".local" / "share"))
        env.pop("CODEX_HOME", None)
        env.pop("OPENCODE_DATA_DIR", None)
        cmat = [sys.executable, "-m", "cmat", "report", "daily", "--json", "--quiet"]
        read_all(files)
        colds, theirs_runs = [], []
        for _ in range(args.repeat):
            for stale in root.glob("ledger.db*"):
                stale.unlink()
            colds.append(measure(cmat, env))
            wait_for_indexes_built(ledger)
            if ccusage:
                theirs_runs.append(measure([ccusage, "daily", "--json", "--offline"], env))
        cold, warm = median_run(colds), measure(cmat, env)
        reply = store.message("ses_00001", "claude-sonnet-4-5", "anthropic")
        store.step(reply, 1_000, 200, read=20_000)  # OpenCode goes on meanwhile
        store.db.close()
        grown = measure(cmat, env)
        codex_grown = grown_runs(cmat, env, *long_codex_rollout(
            home / ".codex", args.codex_long_mb, rng), args.repeat)
        gemini_grown = grown_runs(cmat, env, *long_gemini_chat(home, args.gemini_long_mb),
                                  args.repeat)
        by_app = json.loads(subprocess.run(
            [*cmat, "--by", "app", "--no-scan"], env=env, capture_output=True,
            text=True).stdout)
        theirs = median_run(theirs_runs) if theirs_runs else None
        per_agent = per_agent_ccusage(ccusage, env) if ccusage else {}
    print(f"history: {size / 1e9:.2f} GB in {len(files)} files: Claude Code "
          f"{args.claude_gb:g} GB, Codex {codex_requests:,} requests, Gemini CLI "
          f"{gemini_requests:,}, OpenCode {args.opencode_steps:,}; 2 cores; cold runs: "
          f"median of {args.repeat}, taken in turns, page cache warm")
    print(f"{'run':<46}{'wall':>9}{'peak PSS':>12}")
    print(f"{'cmat cold (empty ledger), every agent':<46}{cold[0]:>8.2f}s{cold[1]:>10.0f}MB"
          f"   all: {', '.join(f'{run[0]:.2f}' for run in colds)}")
    if theirs:
        print(f"{'ccusage daily --offline, every agent':<46}{theirs[0]:>8.2f}s"
              f"{theirs[1]:>10.0f}MB   all: {', '.join(f'{r[0]:.2f}' for r in theirs_runs)}")
    print(f"{'cmat warm (nothing changed)':<46}{warm[0]:>8.2f}s{warm[1]:>10.0f}MB")
    print(f"{'cmat warm (one OpenCode step more)':<46}{grown[0]:>8.2f}s{grown[1]:>10.0f}MB")
    print_run(f"cmat warm (one request more, {args.codex_long_mb:g} MB rollout)", codex_grown)
    print_run(f"cmat warm (one reply more, {args.gemini_long_mb:g} MB Gemini chat)",
              gemini_grown)
    if theirs:
        print(f"cold ratio cmat/ccusage: {cold[0] / theirs[0]:.2f} (target <= 1.0)")
    names = {"claude-code": "claude", "codex": "codex", "gemini-cli": "gemini",
             "opencode": "opencode"}
    print(f"{'agent':<13}{'requests':>10}{'cmat input':>14}{'output':>12}{'cache read':>14}"
          f"{'USD':>10}   {'ccusage input':>14}{'output':>12}{'cache read':>14}{'USD':>10}")
    mine: dict[str, list] = {}
    for row in by_app["rows"]:  # a row per day and app: summed per app
        sums = mine.setdefault(row["app"], [0, 0, 0, 0, 0.0])
        for index, value in enumerate((row["requests"], row["tokens"]["input"],
                                       row["tokens"]["output"], row["tokens"]["cache_read"],
                                       row["total_usd"])):
            sums[index] += value
    for app, (requests, input_tokens, output, cache_read, usd) in sorted(mine.items()):
        theirs_row = per_agent.get(names.get(app, ""), (0, 0, 0, 0.0))
        print(f"{app:<13}{requests:>10,}{input_tokens:>14,}{output:>12,}{cache_read:>14,}"
              f"{usd:>10.2f}   {theirs_row[0]:>14,}{theirs_row[1]:>12,}{theirs_row[2]:>14,}"
              f"{theirs_row[3]:>10.2f}")
    if not ccusage:
        print("ccusage not found: npm install --prefix benchmarks/out ccusage@20.0.24 "
              "@ccusage/ccusage-linux-x64@20.0.24")


if __name__ == "__main__":
    main()
