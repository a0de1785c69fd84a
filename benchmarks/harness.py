"""What the benchmarks share: a project and an environment of their own, timing, summaries.
Transcripts come from the one writer the tests use (tests/transcript_factory.py).

Run every benchmark from the repository's root as a module: `python -m benchmarks.NAME`.
"""

from __future__ import annotations

from pathlib import Path

from cmat.request import timestamp_seconds


def compile_bytecode() -> None:
    """Compile cmat to bytecode, as `pip install` does: measured runs must not include
    compiling modules from source (which happens in a checkout where PYTHONDONTWRITEBYTECODE
    is set, and only once elsewhere)."""
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "cmat"), quiet=1)


def bench_project(root: Path) -> dict:
    """A project under `root` with cmat's hooks in its settings (which every hook reads
    first) and an environment that keeps cmat's files inside root."""
    import json
    import os

    from cmat.claude.install import target_for, with_hooks

    compile_bytecode()
    project = root / "project"
    (project / ".claude").mkdir(parents=True)
    (project / ".claude" / "settings.json").write_text(
        json.dumps(with_hooks({}, target_for(project, False)), indent=2))
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

    from benchmarks.make_history import generate

    env = bench_project(root)
    env.update(CLAUDE_CONFIG_DIR=str(root / "claude"), CMAT_PYTHON=sys.executable)
    print(f"generating a {history_gb:g} GB history and importing it ...", flush=True)
    generate(root / "claude", int(history_gb * 1e9), seed=seed)
    subprocess.run([sys.executable, "-m", "cmat", "scan", "--quiet"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return env, Path(env["CLAUDE_PROJECT_DIR"])


def running_session(folder: Path, session_id: str, session_mb: float, seed: int) -> Path:
    """A running session of `session_mb` (a fifth of it in two subagents) whose latest lines
    were written a minute ago, as a session being worked in has them: the generator's
    timestamps step forward from a start, so the start is moved back until they end now."""
    import random
    import time

    import orjson

    from tests.transcript_factory import write_random_session_with_subagents

    start = time.time() - 1800
    while True:
        main = write_random_session_with_subagents(
            folder, session_id, int(session_mb * 0.8e6), int(session_mb * 0.2e6), 2,
            random.Random(seed), start_ts=start)
        files = [main, *(folder / session_id / "subagents").glob("*.jsonl")]
        last = max(timestamp_seconds(orjson.loads(path.read_bytes().splitlines()[-1])
                                     ["timestamp"]) for path in files)
        if last <= time.time() - 60:
            return main
        start -= last - time.time() + 60  # the same content (same seed), earlier


def live_arguments(description: str, session_mb: float, *flags: tuple[str, str]):
    """The options of the benchmarks that run against a history and a live session, and
    `flags`: (name, help) of on/off options of one benchmark."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--history-gb", type=float, default=1.0)
    parser.add_argument("--session-mb", type=float, default=session_mb)
    parser.add_argument("--runs", type=int, default=25)
    for name, text in flags:
        parser.add_argument(name, action="store_true", help=text)
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
    median = statistics.median(walls) * 1000
    return (f"{label}: median {median:.0f} ms wall "
            f"(p90 {walls[int(len(walls) * 0.9)] * 1000:.0f} ms), {cpu * 1000:.0f} ms CPU, "
            f"over {len(runs)} runs (target median < {target_ms:.0f} ms"
            f"{': not met' if median >= target_ms else ''})")
