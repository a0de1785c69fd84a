"""Benchmark: what the newest team schema migration costs a sync and takes to run.

    python -m benchmarks.team_trigger [--rows 4000000] [--batch 50000] [--trials 24]
                                      [--to URL]    (default: a server started here)

A whole sync's rate moves by several per cent from one round to the next on a shared machine,
whatever the schema, so a change to the rollups' trigger is timed on one batch alone: a new
database holds `--rows` requests (random ids, 200 to a session, 100 ledgers), and the same
batch of `--batch` new requests (new sessions) is merged into it again and again, each time
rolled back, with the trigger as the newest migration makes it and as the one before made it,
in turns. Prints each form's median and fastest. Then the same rows are made at the schema
before the newest, and the newest migration is timed on them.
"""

from __future__ import annotations

import argparse
import statistics
import time

# A request's columns made by SQL from the row number i: random message ids, as real ones
# are; `{session}` is filled in by `fill` (its ledger too, apart from these).
ROW = {"message_id": "'msg_01' || md5(random()::text || i)", "request_id": "'req_' || md5(i::text)",
       "session_id": "{session}", "ts": "1750000000 + i * 1.5",
       "project": "'/home/u/p' || (i % 6)",
       "model": "(ARRAY['claude-opus-4-6', 'claude-sonnet-4-5'])[1 + i % 2]",
       "agent": "'main'", "is_sidechain": "0", "input_tokens": "i % 50",
       "output_tokens": "50 + i % 4000", "cache_creation_tokens": "i % 5000",
       "cache_creation_1h_tokens": "0", "cache_read_tokens": "i % 150000",
       "web_search_requests": "0", "cost_usd": "(i % 1000) / 1000.0",
       "catalog_version": "'bench'", "machine": "'box' || (i % 40)",
       "user_name": "'user' || (i % 20)"}
SESSION_REQUESTS = 200
LEDGERS = 100


def fill(connection, table: str, first: int, rows: int, session: str) -> None:
    """`rows` requests into `table`, numbered from `first`, a million at a time."""
    columns = ", ".join(ROW)
    values = ", ".join(ROW.values()).format(session=session)
    per_ledger = max(rows // LEDGERS, 1)
    for start in range(first, first + rows, 1_000_000):
        end = min(start + 1_000_000, first + rows) - 1
        connection.execute(f"INSERT INTO {table} ({columns}, ledger_id) SELECT {values},"
                           f" 1 + ((i - {first}) / {per_ledger}) % {LEDGERS}"
                           f" FROM generate_series({start}, {end}) i")


def made(connection, version: int, rows: int) -> None:
    """The schema at `version`, its ledgers, and `rows` requests."""
    from cmat.team import schema

    newest = schema.SCHEMA_VERSION
    schema.SCHEMA_VERSION = version
    try:
        schema.migrate(connection)
    finally:
        schema.SCHEMA_VERSION = newest
    connection.execute(f"INSERT INTO ledgers (ledger_id) SELECT generate_series(1, {LEDGERS})")
    fill(connection, "requests", 0, rows, f"'s-' || (i / {SESSION_REQUESTS})")
    connection.execute("VACUUM ANALYZE")
    connection.execute("CHECKPOINT")


def time_trigger(connection, batch: int, trials: int, rows: int) -> dict[int, list[float]]:
    """Seconds to merge the same batch with each form of the trigger, in turns."""
    from cmat.team.schema import ROLLUPS, SCHEMA_VERSION, _rollup_function

    connection.execute("CREATE TABLE batch (LIKE requests)")
    fill(connection, "batch", rows, batch, f"'new-' || (i / {SESSION_REQUESTS})")
    columns = ", ".join((*ROW, "ledger_id"))
    forms = {version: _rollup_function(ROLLUPS, version)
             for version in (SCHEMA_VERSION - 1, SCHEMA_VERSION)}
    seconds: dict[int, list[float]] = {version: [] for version in forms}
    for _ in range(trials):
        for version, function in forms.items():
            with connection.transaction(force_rollback=True):
                connection.execute(function)
                started = time.perf_counter()
                connection.execute(f"INSERT INTO requests ({columns}) SELECT {columns} FROM batch")
                seconds[version].append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--to", dest="url")
    args = parser.parse_args()

    import psycopg

    from benchmarks.team import RoundDatabases, server
    from cmat.team.schema import MIGRATIONS, SCHEMA_VERSION

    with server(args.url) as (url, _):
        databases = RoundDatabases(url)
        try:
            with psycopg.connect(databases.next(1), autocommit=True) as connection:
                started = time.monotonic()
                made(connection, SCHEMA_VERSION, args.rows)
                print(f"{args.rows:,} requests at schema {SCHEMA_VERSION} in "
                      f"{time.monotonic() - started:.0f} s; the same batch of {args.batch:,} "
                      f"merged {args.trials} times with each form, in turns, rolled back",
                      flush=True)
                for version, seconds in time_trigger(connection, args.batch, args.trials,
                                                     args.rows).items():
                    print(f"the rollups' trigger as migration {version} makes it: median "
                          f"{statistics.median(seconds) * 1000:.0f} ms, fastest "
                          f"{min(seconds) * 1000:.0f} ms", flush=True)
            with psycopg.connect(databases.next(2), autocommit=True) as connection:
                made(connection, SCHEMA_VERSION - 1, args.rows)
                started = time.monotonic()
                with connection.transaction():
                    connection.execute(MIGRATIONS[SCHEMA_VERSION - 1]())
                print(f"migration {SCHEMA_VERSION} on {args.rows:,} requests: "
                      f"{time.monotonic() - started:.1f} s", flush=True)
        finally:
            databases.drop()


if __name__ == "__main__":
    main()
