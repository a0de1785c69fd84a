"""The coding agents cmat reads beside Claude Code, each in a module of its own that finds
its log files and turns them into UsageRecords: Codex CLI (codex.py), Gemini CLI (gemini.py),
OpenCode (opencode.py, its database read by row). cmat.ingest.app_readers lists them.

A request of another agent is stored with `source` = "APP:PROVIDER" (Claude Code's own have
none): reports group and filter by either half (`--by app,provider`, `--app`); a request recorded
through CostTracker has "api:PROVIDER".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cmat.usage import CLAUDE_CODE, record_counts

if TYPE_CHECKING:
    from cmat.usage import UsageRecord



def plausible(records: list[UsageRecord], skipped: int) -> tuple[list[UsageRecord], int]:
    """The records whose counts and time a real request can have (the check every agent's
    reader makes, cmat.request.check_request), their times' unix seconds filled in, and
    `skipped` plus those left out."""
    # Here, not at the top: every ledger query imports this package for app_sql, the hooks too.
    from cmat.request import InvalidLine, check_request

    kept = []
    for record in records:
        try:
            record.seconds = check_request(record.timestamp, record_counts(record))
        except InvalidLine:
            skipped += 1
            continue
        kept.append(record)
    return kept, skipped


def count(value) -> int | None:
    """A token count as an agent's log gives it: a whole number from 0 (a missing one, None,
    is 0), or None for anything else (a flag, a fraction, a negative, text)."""
    if value.__class__ is int:  # nearly always: asked first
        return value if value >= 0 else None
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def text(value) -> str | None:
    """A field that names something (a session, a model, a folder): a non-blank string."""
    return value if isinstance(value, str) and value.strip() else None


def dump_carry(form: str, *fields) -> bytes:
    """What a reader knew where it stopped in a log that grows by lines, as the ledger keeps
    it beside the offset (`form` names what wrote it)."""
    import orjson

    return orjson.dumps([form, *fields])


def load_carry(note, form: str, fields: int) -> list | None:
    """The fields of a note `dump_carry` wrote for `form` with that many fields; None for
    anything else (the ledger is a file another program may have changed): the log is then
    read whole."""
    import orjson

    try:
        value = orjson.loads(note)
    except (TypeError, ValueError):
        return None
    if value.__class__ is not list or len(value) != fields + 1 or value[0] != form:
        return None
    return value[1:]


def source_tag(app: str, provider: str) -> str:
    return f"{app}:{provider}"


def app_sql(column: str = "source", find: str = "instr") -> str:
    """SQL: the app of a request, from its source column (`find`: SQLite's instr, or
    PostgreSQL's strpos)."""
    return (f"CASE WHEN {column} IS NULL THEN '{CLAUDE_CODE}' WHEN {find}({column}, ':') = 0"
            f" THEN {column} ELSE substr({column}, 1, {find}({column}, ':') - 1) END")


def provider_sql(column: str = "source", find: str = "instr") -> str:
    """SQL: the provider that served a request, from its source column."""
    return (f"CASE WHEN {column} IS NULL THEN 'anthropic' WHEN {find}({column}, ':') = 0"
            f" THEN 'unknown' ELSE substr({column}, {find}({column}, ':') + 1) END")
