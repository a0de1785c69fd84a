"""Benchmark: a team's history through `cmat sync` into PostgreSQL, and team reports on it.

50 users x 2 machines x 6 months, 100,000 requests a ledger (10 million in all) by default:
each machine's ledger is generated (rows as a scan would store them, with random ids shaped
like Claude's, a fifth of the sessions attributed to tasks), then each is pushed by the sync
`cmat sync` runs, one after the other.

The whole history is synced `--rounds` times, each time into a new database on the same
server. The first round on a server that has not yet written `max_wal_size` of write-ahead
log creates its log's files as it goes; later rounds recycle them, as a server in use does.
Each round's rate is printed. `--rounds 1` syncs once, into the database of `--to` itself
(for a user who may not create databases).

Prints the sync throughput and the latency of the team monthly report by user, project and
task: the first run (cold) and the median of four more (warm). Targets: sync >= 50,000
rows/s; the monthly report by project under 1 s.

    python -m benchmarks.team [--users 50] [--machines 2] [--months 6] [--per-ledger 100000]
                              [--rounds 2] [--to URL]    (default: a server started here)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

MODELS = ("claude-opus-4-6", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001",
          "claude-sonnet-5-5")
PROJECTS = ("web", "api", "infra", "mobile", "data", "docs")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def claude_id(prefix: str, length: int, rng: random.Random) -> str:
    """An id shaped like Claude's message and request ids: random, so that they land all over
    the team database's indexes as real ones do (ids in order would flatter every insert)."""
    return prefix + "".join(rng.choices(BASE62, k=length))


def generate(path: Path, user: str, machine: str, rows: int, months: int, rng: random.Random,
             catalog) -> None:
    """A ledger of `rows` requests over the last `months`, priced by the catalog."""
    from cmat.ledger import Ledger
    from cmat.pricing import stored_cost
    from cmat.usage import TokenCounts

    now = time.time()
    start = now - months * 30 * 86400
    entries = {model: catalog.get_by_pattern(model) for model in MODELS}
    session, session_rows, sessions = None, 0, []
    batch = []
    with Ledger(path) as ledger:
        for _ in range(rows):
            if session_rows == 0:
                session = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                session_rows = rng.randint(20, 400)
                sessions.append(session)
                project = f"/home/{user}/{rng.choice(PROJECTS)}"
                ts = start + rng.random() * (now - start - 86400)
            session_rows -= 1
            ts += rng.uniform(5, 120)
            model = MODELS[rng.randrange(len(MODELS))]
            tokens = TokenCounts(rng.randint(1, 50), rng.randint(50, 4000),
                                 rng.randint(0, 5000), 0, rng.randint(0, 150_000))
            cost = stored_cost(entries[model], ts, tokens)
            batch.append((claude_id("msg_01", 22, rng), claude_id("req_011C", 20, rng), session,
                          ts, project, model,
                          "main", None, 0, tokens.input, tokens.output, tokens.cache_creation,
                          0, tokens.cache_read, 0, None, cost, "bench", None, None, machine,
                          user))
            if len(batch) == 20_000:
                with ledger.transaction():
                    ledger.insert_rows(batch)
                batch = []
        with ledger.transaction():
            if batch:
                ledger.insert_rows(batch)
            for number, name in enumerate(sessions[::5]):
                ledger.attribute(name, project_dir=f"/home/{user}/web", transcript_path=None,
                                 task_id=f"task_{user}_{number % 40}", enhancement=f"e{number % 7}",
                                 agent=("architect", "coder", "reviewer")[number % 3],
                                 recorded_by="bench", task_type="implementation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--machines", type=int, default=2)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--per-ledger", type=int, default=100_000)
    parser.add_argument("--to", dest="url")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from cmat.catalog import ModelService

    with server(args.url) as (url, root):
        run(args, root, url, ModelService())


@contextlib.contextmanager
def server(url: str | None):
    """(the server's conninfo, a folder for the run's files): `url`'s, or a server started
    in that folder and stopped after."""
    from tests import pg_server

    with tempfile.TemporaryDirectory(prefix="cmat-team-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # the server runs as another user
        if url is not None:
            yield url, root
            return
        started = pg_server.start(root / "postgres")
        try:
            yield started, root
        finally:
            pg_server.stop(root / "postgres")


def run(args, root: Path, url: str, catalog) -> None:
    from cmat.ledger import Ledger
    from cmat.team.connect import connect
    from cmat.team.sync import sync

    rng = random.Random(11)
    ledgers = []
    started = time.monotonic()
    for user_index in range(args.users):
        for machine_index in range(args.machines):
            user, machine = f"user{user_index:02d}", f"box{user_index:02d}-{machine_index}"
            path = root / f"{machine}.db"
            generate(path, user, machine, args.per_ledger, args.months, rng, catalog)
            ledgers.append((path, user, machine))
    total = len(ledgers) * args.per_ledger
    print(f"generated {len(ledgers)} ledgers, {total:,} requests, in "
          f"{time.monotonic() - started:.0f} s", flush=True)
    databases = RoundDatabases(url)  # dropped however the run ends
    try:
        for number in range(1, args.rounds + 1):
            target = databases.next(number) if args.rounds > 1 else url
            os.environ["XDG_STATE_HOME"] = str(root / f"state-{number}")
            os.environ["XDG_CONFIG_HOME"] = str(root / f"config-{number}")
            sent, seconds = 0, 0.0
            for path, user, machine in ledgers:
                os.environ.update(CMAT_MACHINE=machine, CMAT_USER=user)
                with Ledger(path) as ledger:
                    result = sync(ledger, target)
                sent += result.requests
                seconds += result.seconds
            rate = sent / seconds
            print(f"sync round {number} of {args.rounds}: {sent:,} requests in {seconds:.0f} s:"
                  f" {rate:,.0f} rows/s (target >= 50,000{': not met' if rate < 50_000 else ''})",
                  flush=True)
        team_reports(connect(target))
    finally:
        databases.drop()


class RoundDatabases:
    """A new database on the server for each round of the sync, the one before dropped (10 M
    requests take gigabytes); the last kept for the reports until `drop`."""

    def __init__(self, url: str):
        self.url = url
        self.names: list[str] = []

    def next(self, number: int) -> str:
        import psycopg
        from psycopg.conninfo import make_conninfo

        with psycopg.connect(self.url, autocommit=True) as admin:
            if self.names:
                admin.execute(f"DROP DATABASE {self.names.pop()}")
            name = f"cmat_bench_round_{number}"
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
            admin.execute(f"CREATE DATABASE {name}")
        self.names.append(name)
        return make_conninfo(self.url, dbname=name)

    def drop(self) -> None:
        import psycopg

        if self.names:
            with psycopg.connect(self.url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE {self.names.pop()} WITH (FORCE)")


def team_reports(connection) -> None:
    """The server's settings, and the team monthly report's latency by user, project, task."""
    from cmat.periods import zone
    from cmat.reports import ReportQuery
    from cmat.team.reports import team_report

    try:
        settings = ", ".join(f"{name} {connection.execute(f'SHOW {name}').fetchone()[0]}"
                             for name in ("server_version", "shared_buffers", "fsync"))
        print(f"server: {settings}; cmat sync sets synchronous_commit off for itself",
              flush=True)
        connection.execute("VACUUM ANALYZE")
        for by in ("user", "project", "task"):
            timings = []
            for _ in range(5):
                begun = time.perf_counter()
                report = team_report(connection, ReportQuery("monthly", tz=zone("UTC"),
                                                             by=(by,)))
                timings.append(time.perf_counter() - begun)
            warm = statistics.median(timings[1:])
            target = (f" (target < 1 s{': not met' if warm >= 1 else ''})"
                      if by == "project" else "")
            print(f"team monthly report by {by}: cold {timings[0]:.3f} s, warm median "
                  f"{warm:.3f} s, {len(report['rows'])} rows, "
                  f"${report['total']['total_usd']:,.0f}{target}", flush=True)
    finally:
        connection.close()


if __name__ == "__main__":
    main()
