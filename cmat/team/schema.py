"""The team database's schema (PostgreSQL): numbered migrations like the local ledger's,
recorded in `cmat_schema`, each one transaction. The requests table is made from the local
ledger's one definition of a request's columns (ledger/schema.py: REQUEST_COLUMNS,
COLUMN_TYPES, NOT_NULL), so the two cannot drift.

    requests        every machine's requests, one row per message id (the better copy wins)
    sessions        whom each session was for (task, enhancement, agent), and whose it is
    daily_usage     sums per UTC day, machine, user, project and model, kept by triggers on
                    requests: what team reports by period read (server-side, small)
    session_usage   the same per day, session, agent and subagent run: what reports by task,
                    enhancement, agent or task type read, joined to sessions; both rollups
                    keep what compaction (`cmat ledger compact --team`) deletes
    quarter_hour_spend  the team's cost per quarter hour, kept by the same triggers: what
                    team budgets read, from a local midnight on (migration 5)
    sync_marks      how far each local ledger has been pushed (resumable, idempotent): its
                    requests, and apart from them its sessions and deletions
    team_budgets    budgets of the whole team, checked by every member's hooks
    ledgers         which database role each local ledger belongs to (migration 2)
    compacted_requests  the message ids compaction folded away: a copy sent again later (the
                    ledger was repriced, say) is not counted a second time
    session_owners  the ledger that sent each session's first request, kept by the rollups'
                    trigger: whose attribution of the session stands (migration 6)

Nobody's labels are trusted (docs/security.md): a row belongs to the ledger that first sent
it, and a ledger to the role that first synced it. Statement triggers refuse any write of a
row or sync mark into, or over, a ledger that is not the writing role's (one check per
batch, not per row), and CHECK constraints refuse values no request has (a negative or
absurd cost, tokens below zero, a time outside 2000-2100). The rollups are written by their
trigger alone, as the tables' owner (migration 5).
"""

from __future__ import annotations

from cmat.ledger.schema import COLUMN_TYPES, NOT_NULL, REQUEST_COLUMNS, SESSION_COLUMNS
from cmat.usage import (
    COLUMN,
    EARLIEST_TS,
    LATEST_TS,
    MAX_REQUEST_TOKENS,
    MAX_REQUEST_USD,
    TOKEN_FIELDS,
    rank_sql,
)

PG_TYPES = {"TEXT": "text", "REAL": "double precision", "INTEGER": "bigint"}
SUMMED = (*(COLUMN[kind] for kind in TOKEN_FIELDS), "web_search_requests")
UTC_DAY = "(to_timestamp(ts) AT TIME ZONE 'UTC')::date"
# The team budgets' spend is kept per quarter hour (migration 5): every zone's midnight, where
# a budget's period starts, falls on one (offsets are whole quarter hours since 1979).
QUARTER_HOUR = 900
QUARTER_HOUR_OF_TS = f"(floor(ts / {QUARTER_HOUR}) * {QUARTER_HOUR})::bigint"
# The two rollups triggers keep as requests arrive, change or go, and their keys: by period and
# who / where / what model (team reports by period), and the same per session, agent and
# subagent run (reports by task, enhancement, agent or task type join these to sessions).
# Migration 1 made them so; migration 3 added the coding agent and provider (`source`, '' for
# Claude Code's own requests) to both keys.
FIRST_ROLLUPS = {"daily_usage": ("day", "machine", "user_name", "project", "model"),
                 "session_usage": ("day", "session_id", "agent", "agent_id", "machine",
                                   "user_name", "project", "model")}
ROLLUPS = {table: (*keys, "source") for table, keys in FIRST_ROLLUPS.items()}


def _request_columns() -> str:
    return ",\n    ".join(
        f"{name} {PG_TYPES[COLUMN_TYPES[name]]}"
        + (" PRIMARY KEY" if name == "message_id" else " NOT NULL" if name in NOT_NULL else "")
        for name in REQUEST_COLUMNS)


def _changed_rows(columns: str, sources: tuple[tuple[str, int], ...]) -> str:
    """`columns` of the transition tables `sources`, each row with its sign (+1 added, -1
    removed)."""
    return " UNION ALL ".join(f"SELECT {columns}, {sign} AS sign FROM {table}"
                              for table, sign in sources)


def _delta(keys: tuple[str, ...], *sources: tuple[str, int]) -> str:
    """SELECT a rollup's sums of transition tables, each row counted with its sign, summed
    per key so that no key comes twice; NULL keys are ''."""
    fields = [k for k in keys if k != "day"]
    rows = _changed_rows(f"ts, {', '.join(fields)}, {', '.join(SUMMED)}, cost_usd", sources)
    sums = ", ".join(f"sum(sign * {c})" for c in SUMMED)
    picked = ", ".join(f"coalesce({k}, '')" for k in fields)
    return (f"SELECT {UTC_DAY}, {picked}, {sums}, sum(sign),"
            f" sum(CASE WHEN cost_usd IS NULL THEN 0 ELSE sign END),"
            f" coalesce(sum(sign * cost_usd), 0) FROM ({rows}) changed"
            f" GROUP BY {', '.join(str(i) for i in range(1, len(keys) + 1))}")


def _spend_delta(*sources: tuple[str, int]) -> str:
    """SELECT the changed rows' cost per quarter hour (quarter_hour_spend's rows)."""
    return (f"SELECT {QUARTER_HOUR_OF_TS}, sum(sign * cost_usd)"
            f" FROM ({_changed_rows('ts, cost_usd', sources)}) changed"
            " WHERE cost_usd IS NOT NULL GROUP BY 1")


def _upsert(table: str, keys: tuple[str, ...], source: str) -> str:
    columns = (*keys, *SUMMED, "requests", "priced", "cost_usd")
    added = ", ".join(f"{c} = u.{c} + excluded.{c}" for c in columns[len(keys):])
    return (f"INSERT INTO {table} AS u ({', '.join(columns)}) {source}"
            f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}")


def _apply(rollups: dict[str, tuple[str, ...]], *sources: tuple[str, int],
           spend: bool = False, owners: str | None = None) -> str:
    """One pass over the changed rows: their sums per session_usage key, upserted there, then
    those (far fewer) summed again per daily_usage key; with `spend` (migration 5 on), their
    cost per quarter hour too; with `owners` (migration 6 on: the transition table of rows
    written), the ledger of each session's first request."""
    daily, by_session = rollups["daily_usage"], rollups["session_usage"]
    measures = (*SUMMED, "requests", "priced", "cost_usd")
    totals = ", ".join(f"sum({c})" for c in measures)
    per_day = f"SELECT {', '.join(daily)}, {totals} FROM delta GROUP BY {', '.join(daily)}"
    by_quarter_hour = (
        f", by_quarter_hour AS (INSERT INTO quarter_hour_spend AS q {_spend_delta(*sources)}"
        " ON CONFLICT (quarter_hour) DO UPDATE SET cost_usd = q.cost_usd + excluded.cost_usd)"
        if spend else "")
    by_owner = (f", by_owner AS (INSERT INTO session_owners {_first_ledgers(owners)}"
                " ON CONFLICT (session_id) DO NOTHING)" if owners else "")
    return (f"WITH delta ({', '.join((*by_session, *measures))}) AS"
            f" ({_delta(by_session, *sources)}),"
            f" by_session AS ({_upsert('session_usage', by_session, 'SELECT * FROM delta')})"
            f"{by_quarter_hour}{by_owner} {_upsert('daily_usage', daily, per_day)};")


def _first_ledgers(rows: str) -> str:
    """SELECT a ledger of each session in `rows` (requests, or a transition table of them);
    where several ledgers sent one session's requests at once, the lowest id, so that the
    choice does not depend on the order of rows."""
    return (f"SELECT session_id, min(ledger_id) FROM {rows} WHERE session_id IS NOT NULL"
            " AND ledger_id IS NOT NULL GROUP BY session_id")


def _rollup_function(rollups: dict[str, tuple[str, ...]], version: int) -> str:
    """The trigger function that keeps the rollups of `rollups` as requests change, as
    migration `version` makes it. From migration 5 it keeps quarter_hour_spend too and runs
    as the tables' owner with its own search path, so a member needs no grant to write any
    rollup and no temporary table can stand in for one; a deleted request's sums stay when
    compaction recorded its id (which only the owner can), not on a setting any session may
    set. From migration 6 it records which ledger sent each session's first request."""
    spend = version >= 5
    if spend:
        header = "SECURITY DEFINER SET search_path FROM CURRENT AS $$\nBEGIN"
        removed = (f"{_NOT_COMPACTED.format(rows='removed')} AS removed", -1)
    else:
        header = """AS $$
BEGIN
    -- Compaction deletes old requests whose sums the rollups keep: they stay as they are.
    IF current_setting('cmat.compacting', true) = 'on' THEN RETURN NULL; END IF;"""
        removed = ("removed", -1)
    owned = version >= 6
    added = _apply(rollups, ("added", 1), spend=spend, owners="added" if owned else None)
    updated = _apply(rollups, ("after_update", 1), ("before_update", -1), spend=spend,
                     owners="after_update" if owned else None)
    return f"""
CREATE OR REPLACE FUNCTION cmat_rollups() RETURNS trigger LANGUAGE plpgsql {header}
    IF TG_OP = 'INSERT' THEN
        {added}
    ELSIF TG_OP = 'UPDATE' THEN
        {updated}
    ELSE
        {_apply(rollups, removed, spend=spend)}
    END IF;
    RETURN NULL;
END $$;"""


# The rows of a request transition table whose ids compaction has not recorded.
_NOT_COMPACTED = ("(SELECT * FROM {rows} WHERE NOT EXISTS (SELECT 1 FROM compacted_requests c"
                  " WHERE c.message_id = {rows}.message_id))")


def _rollup_table(table: str) -> str:
    keys = FIRST_ROLLUPS[table]
    key_columns = ", ".join(f"{k} {'date' if k == 'day' else 'text'} NOT NULL" for k in keys)
    sums = ", ".join(f"{c} bigint NOT NULL DEFAULT 0" for c in SUMMED)
    return (f"CREATE TABLE {table} ({key_columns}, {sums}, requests bigint NOT NULL DEFAULT 0,"
            f" priced bigint NOT NULL DEFAULT 0, cost_usd double precision NOT NULL DEFAULT 0,"
            f" PRIMARY KEY ({', '.join(keys)}));")


def _m001_team_ledger() -> str:
    return f"""
CREATE TABLE requests (
    {_request_columns()}
);
CREATE INDEX requests_ts ON requests (ts);
CREATE INDEX requests_session ON requests (session_id);
CREATE TABLE sessions (
    session_id text PRIMARY KEY,
    machine text, user_name text, project_dir text, task_id text, enhancement text,
    agent text, task_type text, recorded_at double precision
);
CREATE INDEX sessions_task ON sessions (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX sessions_enhancement ON sessions (enhancement) WHERE enhancement IS NOT NULL;
{_rollup_table("daily_usage")}
{_rollup_table("session_usage")}
CREATE INDEX session_usage_session ON session_usage (session_id);
CREATE TABLE sync_marks (
    ledger_id bigint PRIMARY KEY, machine text NOT NULL, user_name text NOT NULL,
    seq bigint NOT NULL, synced_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE team_budgets (
    scope text PRIMARY KEY, limit_usd double precision NOT NULL,
    set_by text, set_at timestamptz NOT NULL DEFAULT now()
);
{_rollup_function(FIRST_ROLLUPS, 1)}
CREATE TRIGGER requests_added AFTER INSERT ON requests REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION cmat_rollups();
CREATE TRIGGER requests_updated AFTER UPDATE ON requests
    REFERENCING OLD TABLE AS before_update NEW TABLE AS after_update
    FOR EACH STATEMENT EXECUTE FUNCTION cmat_rollups();
CREATE TRIGGER requests_removed AFTER DELETE ON requests REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION cmat_rollups();
"""


# The range a request's values can have: a single request costs far less than $100,000, carries
# fewer than 10^10 tokens of a kind, and happened between 2000 and 2100.
MAX_TOKENS = MAX_REQUEST_TOKENS
TS_RANGE = (EARLIEST_TS, LATEST_TS)


def _range_checks() -> str:
    tokens = " AND ".join(f"{c} BETWEEN 0 AND {MAX_TOKENS}" for c in SUMMED)
    return (f"ALTER TABLE requests ADD CONSTRAINT requests_in_range CHECK ("
            f"(cost_usd IS NULL OR (cost_usd >= 0 AND cost_usd <= {MAX_REQUEST_USD}))"
            f" AND ts BETWEEN {TS_RANGE[0]} AND {TS_RANGE[1]} AND {tokens}) NOT VALID;")


# What the database takes of a request, in Python: each value of its column's type (what the
# binary COPY can send), NULL only where the column allows it, no NUL in a text (PostgreSQL's
# text has none), and the ranges of requests_in_range. A test holds it equal to the server's
# answer, value by value.
_PYTHON_TYPES = {"TEXT": str, "REAL": (int, float), "INTEGER": int}
_RANGES = {"cost_usd": (0, MAX_REQUEST_USD), "ts": TS_RANGE,
           **{column: (0, MAX_TOKENS) for column in SUMMED}}
_COLUMN_CHECKS = [(_PYTHON_TYPES[COLUMN_TYPES[name]], name in NOT_NULL or name == "message_id",
                   _RANGES.get(name)) for name in REQUEST_COLUMNS]  # the key is never NULL


def accepted(row) -> bool:
    """Whether the team database takes a request row (REQUEST_COLUMNS' values, as the local
    ledger holds them, which anyone who can write the file may have changed)."""
    for value, (kind, not_null, bounds) in zip(row, _COLUMN_CHECKS, strict=True):
        if value is None:
            if not_null:
                return False
        elif not isinstance(value, kind) or (kind is str and "\0" in value) or (
                bounds is not None and not bounds[0] <= value <= bounds[1]):
            return False
    return True


def _foreign(rows: str, unowned_too: bool, source: str | None = None) -> str:
    """A condition: `rows` (a transition table, or the `source` named so) holds a row of a
    ledger the session's role does not own; with `unowned_too`, a row of no ledger counts as
    foreign as well (a write must name its ledger; a row synced before migration 2 may still
    be replaced)."""
    null = f"{rows}.ledger_id IS NULL OR " if unowned_too else f"{rows}.ledger_id IS NOT NULL AND "
    return (f"EXISTS (SELECT 1 FROM {source or rows} WHERE {null}NOT EXISTS (SELECT 1 FROM"
            f" ledgers l WHERE l.ledger_id = {rows}.ledger_id AND l.owner = session_user))")


def _ownership_function(table: str, version: int) -> str:
    """The trigger function that refuses a write of rows of another role's ledger to
    `table`, as migration `version` makes it. Migration 2 made it for requests and sessions,
    with a delete by compaction let through on a setting. From migration 5 a deleted request
    passes only when compaction recorded its id (which only the owner can), and the function
    has its own search path, so that no temporary table can stand in for `ledgers`. From
    migration 6 a session's row may be replaced by the ledger that sent the session's first
    request (session_owners), whoever's it was."""
    refuse = (f"RAISE EXCEPTION 'cmat: % may not change rows of another member''s ledger"
              f" in {table}', session_user USING ERRCODE = 'insufficient_privilege';")
    replaced = None
    if version < 5:
        header = "CREATE FUNCTION cmat_own_{table}() RETURNS trigger LANGUAGE plpgsql AS $$"
        deleted = f"""    -- Compaction folds old rows into the rollups, which keep every total.
    ELSIF current_setting('cmat.compacting', true) IS DISTINCT FROM 'on'
            AND {_foreign("removed", False)} THEN"""
    else:
        header = ("CREATE OR REPLACE FUNCTION cmat_own_{table}() RETURNS trigger LANGUAGE plpgsql"
                  " SET search_path FROM CURRENT AS $$")
        source = (f"{_NOT_COMPACTED.format(rows='removed')} AS removed" if table == "requests"
                  else None)
        deleted = f"""    ELSIF {_foreign("removed", False, source)} THEN"""
        if version >= 6 and table == "sessions":
            replaced = _NOT_TAKEN_OVER
    written = _foreign("written", True)
    return f"""
{header.format(table=table)}
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF {written} THEN {refuse} END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF {written} OR {_foreign("replaced", False, replaced)} THEN {refuse} END IF;
{deleted}
        {refuse}
    END IF;
    RETURN NULL;
END $$;"""


# The replaced rows of sessions that no row written in their place takes over: one takes over
# when its ledger (the writer's, as the written rows are checked to be) sent the session's
# first request.
_NOT_TAKEN_OVER = ("(SELECT * FROM replaced WHERE NOT EXISTS (SELECT 1 FROM written w"
                   " JOIN session_owners o ON o.session_id = w.session_id"
                   " AND o.ledger_id = w.ledger_id WHERE w.session_id = replaced.session_id))"
                   " AS replaced")


def _ownership_triggers(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_owned_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION cmat_own_{table}();
CREATE TRIGGER {table}_owned_update AFTER UPDATE ON {table}
    REFERENCING OLD TABLE AS replaced NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION cmat_own_{table}();
CREATE TRIGGER {table}_owned_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION cmat_own_{table}();"""


def _m002_ledger_owners() -> str:
    checks = [_ownership_function(table, 2) + _ownership_triggers(table)
              for table in ("requests", "sessions")]
    return f"""
CREATE TABLE ledgers (
    ledger_id bigint PRIMARY KEY,
    owner name NOT NULL DEFAULT session_user,
    registered_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE requests ADD COLUMN ledger_id bigint;
ALTER TABLE sessions ADD COLUMN ledger_id bigint;
ALTER TABLE sync_marks ADD COLUMN sessions_seq bigint NOT NULL DEFAULT 0;
CREATE TABLE compacted_requests (message_id text PRIMARY KEY);
{_range_checks()}
{"".join(checks)}
"""


def _m003_rollup_sources() -> str:
    """The coding agent and provider (`source`) in both rollups' keys, so that team reports
    group by them. Sums already kept under no source are moved to the source of the requests
    they came from; those of requests compaction deleted stay Claude Code's (all were, before
    other agents were read)."""
    # What _delta reads of a request: its time, the keys it sums by, the sums.
    requests = ", ".join(("ts", *FIRST_ROLLUPS["session_usage"][1:], *SUMMED, "cost_usd"))
    sourced = f"(SELECT {requests}, source FROM requests WHERE source IS NOT NULL)"
    keys = "".join(f"""
ALTER TABLE {table} ADD COLUMN source text NOT NULL DEFAULT '';
ALTER TABLE {table} DROP CONSTRAINT {table}_pkey;
ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(ROLLUPS[table])});""" for table in ROLLUPS)
    return f"""
ALTER TABLE requests ADD COLUMN IF NOT EXISTS source text;
{keys}
{_apply(ROLLUPS, (f"{sourced} AS moved_to", 1),
        (f"(SELECT {requests}, NULL::text AS source FROM requests"
         f" WHERE source IS NOT NULL) AS moved_from", -1))}
DELETE FROM daily_usage WHERE requests = 0 AND cost_usd = 0;
DELETE FROM session_usage WHERE requests = 0 AND cost_usd = 0;
{_rollup_function(ROLLUPS, 3)}
"""


# The columns that hold ids (Claude's message ids, session UUIDs): compared byte by byte
# whatever the server's locale. Under a libc locale (en_US.UTF-8, most servers) every
# comparison in their indexes went through strcoll, and such indexes can silently go out of
# order when the operating system's collation rules change; ids have no order to respect.
ID_COLUMNS = {"requests": ("message_id", "session_id"), "sessions": ("session_id",),
              "session_usage": ("session_id",), "compacted_requests": ("message_id",)}


def _m004_cheaper_merges() -> str:
    """ID_COLUMNS in the "C" collation (their indexes are rebuilt, no row is rewritten); and
    the index of requests by session dropped: no query reads it, and every merged row paid
    for it (10 % of a merge into 10 million rows)."""
    return "DROP INDEX IF EXISTS requests_session;\n" + "\n".join(
        f"ALTER TABLE {table} "
        + ", ".join(f'ALTER COLUMN {column} TYPE text COLLATE "C"' for column in columns) + ";"
        for table, columns in ID_COLUMNS.items())


# What the functions a migration makes search (their `SET search_path FROM CURRENT`): the
# migration's own schema, and a session's temporary tables last, never first.
_OWN_SEARCH_PATH = ("DO $$ BEGIN EXECUTE format('SET LOCAL search_path = %I, pg_temp',"
                    " current_schema()); END $$;")


def _for_each_grantee(table: str, privilege: str, *statements: str) -> str:
    """A block that runs `statements` (each with %s for a role) for every role but the
    owner that holds `privilege` on `table`: the members, as the owner granted them."""
    run = "".join(f"\n        EXECUTE format('{statement}', grantee);" for statement in statements)
    return f"""DO $$
DECLARE grantee text;
BEGIN
    FOR grantee IN SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                        ELSE quote_ident(pg_get_userbyid(a.grantee)) END
                   FROM pg_class c, aclexplode(c.relacl) a
                   WHERE c.oid = '{table}'::regclass AND a.privilege_type = '{privilege}'
                     AND a.grantee <> c.relowner
    LOOP{run}
    END LOOP;
END $$;"""


def _m005_spend_by_quarter_hour() -> str:
    """The team's spend per quarter hour, kept by the rollups' trigger, which the team
    budgets read in place of the index of requests by time; that index is dropped: every
    merged row paid for it (11 % of a merge into 10 million rows), and compaction, the one
    other reader, is rare.

    Since a team budget now reads a rollup, the rollups are written by their trigger alone:
    it runs as the tables' owner, and the members who could write daily_usage (as the
    documented grants allowed) may now only read the rollups; sync marks are guarded like
    requests and sessions; and no cmat function takes a table from a session's temporary
    schema (the search path they run with is the migration's, pg_temp last). Requests are
    locked against writers meanwhile: a row merged between the fill and the new trigger
    would be missed."""
    functions = "".join(_ownership_function(table, 5)
                        for table in ("requests", "sessions", "sync_marks"))
    return f"""
LOCK TABLE requests IN SHARE ROW EXCLUSIVE MODE;
{_OWN_SEARCH_PATH}
CREATE TABLE quarter_hour_spend (
    quarter_hour bigint PRIMARY KEY, cost_usd double precision NOT NULL DEFAULT 0
);
INSERT INTO quarter_hour_spend SELECT {QUARTER_HOUR_OF_TS}, sum(cost_usd) FROM requests
    WHERE cost_usd IS NOT NULL GROUP BY 1;
{_for_each_grantee("daily_usage", "INSERT", "GRANT SELECT ON quarter_hour_spend TO %s",
                   "REVOKE INSERT, UPDATE ON daily_usage, session_usage FROM %s")}
DROP INDEX IF EXISTS requests_ts;
{_rollup_function(ROLLUPS, 5)}
{functions}
{_ownership_triggers("sync_marks")}
"""


def _m006_session_owners() -> str:
    """Whose a session's attribution is: the ledger that sent the session's first request
    (`session_owners`, written by the rollups' trigger alone, as the tables' owner). Its
    attribution replaces any other ledger's, and until it sends one the first ledger's to
    send any stands, as before. So a member who reads a colleague's session id among the
    requests can no longer label the session first and keep it.

    Sessions already held are filled in first where their holder sent requests in them; the
    others go to the lowest ledger id among their requests' (which came first is not known).
    Requests are locked against writers meanwhile, as in migration 5."""
    return f"""
LOCK TABLE requests IN SHARE ROW EXCLUSIVE MODE;
{_OWN_SEARCH_PATH}
CREATE TABLE session_owners (
    session_id text COLLATE "C" PRIMARY KEY, ledger_id bigint NOT NULL
);
INSERT INTO session_owners SELECT s.session_id, s.ledger_id FROM sessions s
    WHERE s.ledger_id IS NOT NULL AND EXISTS (SELECT 1 FROM requests r
        WHERE r.session_id = s.session_id AND r.ledger_id = s.ledger_id);
INSERT INTO session_owners {_first_ledgers("requests")} ON CONFLICT (session_id) DO NOTHING;
{_for_each_grantee("sessions", "INSERT", "GRANT SELECT ON session_owners TO %s")}
{_rollup_function(ROLLUPS, 6)}
{_ownership_function("sessions", 6)}
"""


MIGRATIONS = [_m001_team_ledger, _m002_ledger_owners, _m003_rollup_sources,
              _m004_cheaper_merges, _m005_spend_by_quarter_hour, _m006_session_owners]
SCHEMA_VERSION = len(MIGRATIONS)

# A row belongs to the ledger that sent it first: that ledger's copy always replaces it (it was
# priced again, say); another ledger's copy of the same request (a session on two machines)
# never does. A row from before ledgers were owned goes to the better copy, as it did.
# A batch is inserted in id order: each id lands next to the one before in the id index, not
# on a random page of it (a batch arrives in the order its rows were written).
MERGE_REQUESTS = (
    f"INSERT INTO requests AS r ({', '.join(REQUEST_COLUMNS)}, ledger_id)"
    f" SELECT {', '.join(REQUEST_COLUMNS)}, %(ledger)s FROM staging"
    " WHERE NOT EXISTS (SELECT 1 FROM compacted_requests c"
    " WHERE c.message_id = staging.message_id) ORDER BY message_id"
    f" ON CONFLICT (message_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*REQUEST_COLUMNS, "ledger_id")
                if c != "message_id")
    + " WHERE r.ledger_id = excluded.ledger_id"
    f" OR (r.ledger_id IS NULL AND {rank_sql('excluded')} >= {rank_sql('r')})")


# A session's row is sent with who sent it; the attribution that stands is its owner's, the
# ledger that sent the session's first request (session_owners), once the owner sends one,
# and until then the first ledger's to send any (a session on two machines stays whom its
# owner said it was for). Rows from before ledgers were owned go to the next one sent.
SESSION_FIELDS = (*SESSION_COLUMNS, "machine", "user_name")
MERGE_SESSIONS = (
    f"INSERT INTO sessions ({', '.join(SESSION_FIELDS)}, ledger_id)"
    f" SELECT {', '.join(SESSION_FIELDS)}, %(ledger)s FROM staging_sessions"
    " ON CONFLICT (session_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*SESSION_FIELDS[1:], "ledger_id"))
    + " WHERE sessions.ledger_id = excluded.ledger_id OR sessions.ledger_id IS NULL"
    " OR excluded.ledger_id = (SELECT o.ledger_id FROM session_owners o"
    " WHERE o.session_id = excluded.session_id)")


def migrate(connection) -> int:
    """Bring the team database's schema up to date (one transaction per migration, under
    an advisory lock so that two machines never migrate at once); returns the version it
    started from."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(727001)")
        if connection.execute("SELECT to_regclass('cmat_schema')").fetchone()[0] is None:
            # Only the first sync creates anything: a member's role needs no CREATE.
            connection.execute("CREATE TABLE cmat_schema (version integer NOT NULL)")
        row = connection.execute("SELECT version FROM cmat_schema").fetchone()
        if row is None:
            connection.execute("INSERT INTO cmat_schema VALUES (0)")
        start = row[0] if row else 0
    if start > SCHEMA_VERSION:
        from cmat.errors import LedgerError

        raise LedgerError(f"the team database was made by a newer cmat (schema {start}, "
                          f"this cmat knows {SCHEMA_VERSION})", "upgrade cmat")
    import psycopg

    for version in range(start, SCHEMA_VERSION):
        try:
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(727001)")
                if connection.execute("SELECT version FROM cmat_schema").fetchone()[0] != version:
                    continue  # another machine migrated meanwhile
                connection.execute(MIGRATIONS[version]())
                connection.execute("UPDATE cmat_schema SET version = %s", (version + 1,))
        except psycopg.errors.InsufficientPrivilege:
            # A member upgraded before the owner: a member's grants cannot change tables.
            from cmat.errors import TeamDatabaseError

            owner = connection.execute(
                "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid ="
                " coalesce(to_regclass('requests'), to_regclass('cmat_schema'))").fetchone()[0]
            raise TeamDatabaseError(
                f"the team database's tables are at schema {version} and this cmat needs "
                f"{SCHEMA_VERSION}: only the role that owns them ({owner}) can change them",
                f"run 'cmat sync' once as {owner} with this cmat; every member's sync works "
                "after that (nothing local is lost meanwhile)") from None
    return start
