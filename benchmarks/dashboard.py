"""Benchmark: the dashboard under many API requests at once, on a real history.

    python -m benchmarks.dashboard [--history-gb 0.3] [--clients 200] [--rounds 3]

Starts `cmat dashboard` on a generated history (imported first), then `--rounds` times sends
`--clients` requests at once, spread over what the page reads (usage by model, by project,
by task; budgets, alerts, blocks, suggestions), each on its own connection, and prints how
many were answered, how many failed or timed out (120 s), and the latency of the answered
ones. Targets: every request answered, p99 under 2 s.
"""

from __future__ import annotations

import argparse
import http.client
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.harness import project_with_history, user_config

PATHS = ("/api/v1/usage?period=daily&by=model", "/api/v1/usage?period=monthly&by=project",
         "/api/v1/usage?period=monthly&by=task", "/api/v1/usage?period=monthly&by=app",
         "/api/v1/budgets", "/api/v1/alerts", "/api/v1/blocks",
         "/api/v1/suggestions?period=30d")
TIMEOUT_SECONDS = 120


def get(port: int, path: str) -> tuple[int | None, float]:
    """(status or None when it failed, seconds) of one request on a connection of its own."""
    started = time.perf_counter()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_SECONDS)
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        connection.close()
        return response.status, time.perf_counter() - started
    except OSError:
        return None, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history-gb", type=float, default=0.3)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env, project = project_with_history(Path(tmp), args.history_gb, seed=4)
        user_config(env, "[budgets]\ndaily = 500\nmonthly = 5000\n")
        server = subprocess.Popen([sys.executable, "-m", "cmat", "dashboard", "--port", "0",
                                   "--project", str(project)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            port = int(re.search(r":(\d+)/", server.stdout.readline()).group(1))
            get(port, PATHS[0])  # the first answer also scans: not what is measured
            results: list[tuple[int | None, float]] = []
            rounds = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                with ThreadPoolExecutor(max_workers=args.clients) as pool:
                    found = list(pool.map(lambda i: get(port, PATHS[i % len(PATHS)]),
                                          range(args.clients)))
                rounds.append(time.perf_counter() - started)
                results += found
        finally:
            server.terminate()
            server.wait(timeout=10)
    answered = sorted(seconds for status, seconds in results if status == 200)
    failed = len(results) - len(answered)
    p99 = answered[min(len(answered) - 1, int(len(answered) * 0.99))] if answered else 0.0
    print(f"{args.clients} requests at once, {args.rounds} rounds, {args.history_gb:g} GB "
          f"history, 2 cores; paths: {len(PATHS)} of the page's, in turn")
    print(f"answered {len(answered)} of {len(results)}, failed or timed out {failed} "
          f"(target: all answered{'' if not failed else ': not met'})")
    if answered:
        print(f"latency: median {statistics.median(answered):.2f} s, "
              f"p90 {answered[int(len(answered) * 0.9)]:.2f} s, p99 {p99:.2f} s, "
              f"max {answered[-1]:.2f} s (target p99 < 2 s{': not met' if p99 >= 2 else ''})")
    print("each round took: " + ", ".join(f"{seconds:.2f} s" for seconds in rounds))


if __name__ == "__main__":
    main()
