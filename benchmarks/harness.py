"""Fast writer of realistic Claude Code transcripts for benchmarks.

Bytes in real transcripts are dominated by tool results (user lines) and assistant content;
each response is written as several lines repeating its usage, as Claude Code does.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import orjson

MODELS = ["claude-sonnet-4-5-20250929", "claude-opus-4-6", "claude-haiku-4-5-20251001",
          "claude-opus-4-7", "claude-sonnet-4-20250514"]
_FILLER = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor " * 400)


def _text(rng: random.Random, mean_bytes: int) -> str:
    size = max(20, int(rng.lognormvariate(0, 1.0) * mean_bytes))
    start = rng.randrange(0, 1000)
    return (_FILLER * (size // len(_FILLER) + 1))[start:start + size]


def write_session(path: Path, target_bytes: int, session_id: str, rng: random.Random, *,
                  cwd: str = "/home/user/project", start_ts: float = 1767225600.0,
                  sidechain: bool = False, agent_id: str | None = None,
                  model: str | None = None) -> int:
    """Write one transcript of about `target_bytes`; returns the number of API requests."""
    from datetime import datetime, timezone

    path.parent.mkdir(parents=True, exist_ok=True)
    written = requests = 0
    ts = start_ts
    model = model or rng.choice(MODELS)
    envelope = {"isSidechain": sidechain, "userType": "external", "cwd": cwd,
                "sessionId": session_id, "version": "2.1.42", "gitBranch": "main"}
    if agent_id:
        envelope["agentId"] = agent_id
    with open(path, "wb") as out:
        while written < target_bytes:
            ts += rng.uniform(2, 40)
            stamp = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            user = {**envelope, "type": "user", "uuid": str(uuid.UUID(int=rng.getrandbits(128))),
                    "timestamp": stamp,
                    "message": {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_x",
                         "content": _text(rng, 6000)}]}}
            line = orjson.dumps(user) + b"\n"
            out.write(line)
            written += len(line)
            message_id = f"msg_{rng.getrandbits(96):024x}"
            request_id = f"req_{rng.getrandbits(96):024x}"
            read = rng.randint(10_000, 150_000)
            write_1h = rng.randint(0, 5000)
            output = rng.randint(20, 3000)
            blocks = rng.randint(1, 4)
            input_tokens = rng.randint(1, 50)  # one per response: only output grows as it streams
            for block in range(blocks):
                usage = {"input_tokens": input_tokens,
                         "cache_creation_input_tokens": write_1h,
                         "cache_read_input_tokens": read,
                         "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                            "ephemeral_1h_input_tokens": write_1h},
                         "output_tokens": output if block == blocks - 1 else 1 + block,
                         "service_tier": "standard",
                         "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0}}
                assistant = {**envelope, "type": "assistant", "requestId": request_id,
                             "uuid": str(uuid.UUID(int=rng.getrandbits(128))), "timestamp": stamp,
                             "message": {"id": message_id, "type": "message", "role": "assistant",
                                         "model": model,
                                         "content": [{"type": "text", "text": _text(rng, 800)}],
                                         "stop_reason": None if block < blocks - 1 else "tool_use",
                                         "usage": usage}}
                line = orjson.dumps(assistant) + b"\n"
                out.write(line)
                written += len(line)
            requests += 1
    return requests


def write_session_with_subagents(folder: Path, session_id: str, main_bytes: int,
                                 subagent_bytes: int, subagents: int, rng: random.Random,
                                 **kwargs) -> Path:
    main = folder / f"{session_id}.jsonl"
    write_session(main, main_bytes, session_id, rng, **kwargs)
    for index in range(subagents):
        agent_id = f"a{rng.getrandbits(64):016x}"
        target = folder / session_id / "subagents" / f"agent-{agent_id}.jsonl"
        write_session(target, subagent_bytes // subagents, session_id, rng, sidechain=True,
                      agent_id=agent_id, model="claude-haiku-4-5-20251001", **kwargs)
        target.with_name(f"agent-{agent_id}.meta.json").write_bytes(
            orjson.dumps({"agentType": rng.choice(["Explore", "general-purpose", "Plan"])}))
    return main


def compile_bytecode() -> None:
    """Compile cmat to bytecode, as `pip install` does: measured runs must not include
    compiling modules from source (which happens in a checkout where PYTHONDONTWRITEBYTECODE
    is set, and only once elsewhere)."""
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "cmat"), quiet=1)


def bench_project(root: Path) -> dict:
    """An empty project under `root` and an environment that keeps cmat's files inside root."""
    import os

    compile_bytecode()
    project = root / "project"
    (project / ".claude").mkdir(parents=True)
    return dict(os.environ, CLAUDE_PROJECT_DIR=str(project), HOME=str(root / "home"),
                XDG_CACHE_HOME=str(root / "cache"), XDG_DATA_HOME=str(root / "data"),
                XDG_CONFIG_HOME=str(root / "config"), XDG_STATE_HOME=str(root / "state"))


def user_config(env: dict, text: str) -> None:
    """Write the benchmark user's cmat config (user-wide budgets live only there)."""
    path = Path(env["XDG_CONFIG_HOME"]) / "cmat" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def add_task(env: dict, title: str = "benchmark") -> str:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "cmat", "queue", "add", title], env=env,
                          check=True, capture_output=True, text=True).stdout.strip()


def project_with_history(root: Path, history_gb: float, seed: int) -> tuple[dict, Path]:
    """A benchmark project whose ledger already holds a generated history of `history_gb`."""
    import subprocess
    import sys

    from make_history import generate

    env = bench_project(root)
    env.update(CLAUDE_CONFIG_DIR=str(root / "claude"), CMAT_PYTHON=sys.executable)
    print(f"generating a {history_gb:g} GB history and importing it ...", flush=True)
    generate(root / "claude", int(history_gb * 1e9), seed=seed)
    subprocess.run([sys.executable, "-m", "cmat", "scan", "--quiet"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return env, Path(env["CLAUDE_PROJECT_DIR"])


def live_arguments(description: str, session_mb: float):
    """The options of the benchmarks that run against a history and a live session."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--history-gb", type=float, default=1.0)
    parser.add_argument("--session-mb", type=float, default=session_mb)
    parser.add_argument("--runs", type=int, default=25)
    return parser.parse_args()


def timed_run(cmd: list, stdin: bytes, env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `cmd`. CPU time (user + system, this process's
    children) does not grow when a shared machine lends the core to someone else."""
    import resource
    import subprocess
    import time

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, input=stdin, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def summary(label: str, runs: list[tuple[float, float]], target_ms: float) -> str:
    import statistics

    walls = sorted(w for w, _ in runs)
    cpu = statistics.median(c for _, c in runs)
    return (f"{label}: median {statistics.median(walls) * 1000:.0f} ms wall "
            f"(p90 {walls[int(len(walls) * 0.9)] * 1000:.0f} ms), {cpu * 1000:.0f} ms CPU, "
            f"over {len(runs)} runs (target median < {target_ms:g} ms)")
