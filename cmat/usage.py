"""The usage of one API request, as every stage of cmat sees it: the bottom of the pipeline,
importing from cmat only the rules of what a request is (cmat.request).

A request's tokens come in five kinds (TOKEN_FIELDS). Cache writes are counted once, in
`cache_creation`; `cache_creation_1h` says how many of them were 1-hour writes. Of the copies
of one request Claude Code may write (streamed snapshots, resumed sessions, side questions'
replays), the one that counts is the first by `rank`: a real response before a sidechain
replay, then the largest token total (the final snapshot). The ledger applies the same rule
in SQL (`rank_sql`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, fields
from typing import NamedTuple

from cmat.request import SIDECHAIN_PENALTY

TOKEN_FIELDS = ("input", "output", "cache_creation", "cache_creation_1h", "cache_read")
# Each kind once: 1-hour writes are a share of cache_creation, not more tokens.
COUNTED_TOKENS = ("input", "output", "cache_creation", "cache_read")
COLUMN = {kind: f"{kind}_tokens" for kind in TOKEN_FIELDS}  # the ledger's column of each kind
# A UsageRecord's counts in TOKEN_FIELDS order (its attributes are named as the columns), as
# a plain tuple: what pricing and checking every request of a first scan read.
record_counts = operator.attrgetter(*COLUMN.values())
# What one request can carry: far below, a cost or a count is an error, not a request.
MAX_REQUEST_USD = 100_000.0
MAX_REQUEST_TOKENS = 10**10
EARLIEST_TS = 946684800.0  # 2000-01-01
LATEST_TS = 4102444800.0  # 2100-01-01
# The session of figures CMAT's own hook wrote into a task before cmat recorded it, stored as
# one request of their own: this, then the session CMAT named (or the task's id).
LEGACY_SESSION = "legacy:"
# The coding agents a request can come from (UsageRecord.source names the others; cmat.apps
# reads them): what reports and budgets may be narrowed to.
CLAUDE_CODE = "claude-code"
APPS = (CLAUDE_CODE, "codex", "gemini-cli", "opencode")


class TokenCounts(NamedTuple):
    """A request's tokens of each kind (TOKEN_FIELDS). A named tuple: one is made for every
    request priced, and a frozen dataclass took five times as long to make."""

    input: int = 0
    output: int = 0
    cache_creation: int = 0  # all cache writes, 5-minute and 1-hour
    cache_creation_1h: int = 0  # the 1-hour share of cache_creation
    cache_read: int = 0

    @property
    def input_side(self) -> int:
        """The prompt: what tier thresholds are measured on."""
        return self.input + self.cache_creation + self.cache_read


def rank_sql(table: str) -> str:
    """`rank` of a ledger row of `table`, in SQL."""
    total = " + ".join(f"{table}.{COLUMN[kind]}" for kind in COUNTED_TOKENS)
    return f"(1 - {table}.is_sidechain) * {SIDECHAIN_PENALTY} + {total}"


@dataclass(slots=True)
class UsageRecord:
    """The usage of one API request, as Claude Code recorded it (or another coding agent:
    `source` then says which, as `app:provider`, cmat.apps)."""

    message_id: str
    request_id: str | None
    session_id: str | None
    timestamp: str  # ISO 8601, as the transcript has it
    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int  # all cache writes
    cache_creation_1h_tokens: int  # the 1-hour share of them
    cache_read_tokens: int
    web_search_requests: int
    speed: str | None
    inference_geo: str | None  # where inference ran ("us", "global", ...), when recorded
    is_sidechain: bool
    agent: str  # "main", or the subagent's type
    agent_id: str | None
    cwd: str | None
    source: str | None = None  # None: a Claude Code transcript
    # `timestamp` as unix seconds, where the reader worked them out already (the compiled
    # scanner does): equal to cmat.request.timestamp_seconds(timestamp), so not compared.
    seconds: float | None = field(default=None, compare=False)

    @property
    def total_tokens(self) -> int:
        return (self.input_tokens + self.output_tokens + self.cache_creation_tokens
                + self.cache_read_tokens)

    @property
    def token_counts(self) -> TokenCounts:
        return TokenCounts(*record_counts(self))

    def __reduce__(self):
        # Ships as a plain tuple between processes: 5x faster than a slotted dataclass's state.
        return (UsageRecord, _RECORD_FIELDS(self))


_RECORD_FIELDS = operator.attrgetter(*(f.name for f in fields(UsageRecord)))
